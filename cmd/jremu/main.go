// Command jremu is the emulated wire as a process: it opens two Linux
// interfaces as DPDK vdevs (af_xdp or af_packet) and forwards every frame
// between them through nic/emu, each direction with its own link (delay,
// jitter, loss, rate limit and queue, reordering, MTU). The local testbed's
// wire namespace (testbed/local Options.Wire) runs it between the client's and
// the server's veth:
//
//	ip netns exec jr-wire-<id> jremu -iface-a jwc-<id> -iface-b jws-<id> -link delay=1ms
//
// It prints READY once forwarding, runs until SIGTERM or SIGINT (or -duration),
// then prints its counters (nic/emu Stats plus both ports' counters) as one
// JSON object on standard output.
//
// Exit status: 0 after a run, 1 when it could not run, 2 for bad flags.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/joyride-bench/joyride/nic"
	"github.com/joyride-bench/joyride/nic/dpdk"
	"github.com/joyride-bench/joyride/nic/emu"
)

// Result is what jremu prints on exit.
type Result struct {
	emu.Stats
	PortA nic.Stats `json:"port_a"`
	PortB nic.Stats `json:"port_b"`
	// CPUSeconds is the process's user+system CPU time (it spins: about its
	// wall time).
	CPUSeconds float64 `json:"cpu_seconds"`
}

func main() {
	driver := flag.String("driver", "af_xdp", "DPDK vdev over both interfaces: af_xdp or af_packet")
	ifA := flag.String("iface-a", "", "interface A (the testbed's client side)")
	ifB := flag.String("iface-b", "", "interface B (the server side)")
	both := flag.String("link", "", "link applied in both directions unless -ab/-ba is given, e.g. delay=1ms,loss=0.01,rate=1gbit,queue=64KiB")
	abSpec := flag.String("ab", "", "link from A to B (overrides -link)")
	baSpec := flag.String("ba", "", "link from B to A (overrides -link)")
	seed := flag.Uint64("seed", 1, "seed of the random decisions (loss, jitter, reordering)")
	burst := flag.Int("burst", 32, "frames per receive/transmit call")
	slots := flag.Int("slots", 16384, "most frames held per direction (delayed or queued)")
	cpu := flag.Int("cpu", 0, "EAL main lcore (pin the process with taskset)")
	prefix := flag.String("file-prefix", fmt.Sprintf("jremu%d", os.Getpid()), "DPDK runtime file prefix")
	duration := flag.Duration("duration", 0, "stop after this long (0: at SIGTERM/SIGINT)")
	flag.Parse()

	fail := func(code int, format string, a ...any) {
		fmt.Fprintf(os.Stderr, "jremu: "+format+"\n", a...)
		os.Exit(code)
	}
	if *ifA == "" || *ifB == "" || *ifA == *ifB {
		fail(2, "-iface-a and -iface-b are required and must differ")
	}
	if flag.NArg() > 0 {
		fail(2, "unexpected arguments %q", flag.Args())
	}
	parse := func(name, s string) emu.Link {
		if s == "" {
			s = *both
		}
		l, err := emu.ParseLink(s)
		if err != nil {
			fail(2, "-%s: %v", name, err)
		}
		return l
	}
	cfg := emu.Config{AB: parse("ab", *abSpec), BA: parse("ba", *baSpec), Seed: *seed, Burst: *burst, Slots: *slots}

	args, nameA, nameB, err := twoVdevs(*driver, *ifA, *ifB, *cpu, *prefix)
	if err != nil {
		fail(2, "%v", err)
	}
	if err := dpdk.Init(args); err != nil {
		fail(1, "%v", err)
	}
	plainFail := fail
	fail = func(code int, format string, a ...any) {
		dpdk.Cleanup()
		plainFail(code, format, a...)
	}
	pa, err := dpdk.OpenPort(nameA, dpdk.PortConfig{})
	if err != nil {
		fail(1, "%s (%s): %v", nameA, *ifA, err)
	}
	pb, err := dpdk.OpenPort(nameB, dpdk.PortConfig{})
	if err != nil {
		pa.Close()
		fail(1, "%s (%s): %v", nameB, *ifB, err)
	}
	e, err := emu.New(pa, pb, cfg)
	if err != nil {
		pa.Close()
		pb.Close()
		fail(2, "%v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	fmt.Fprintf(os.Stderr, "jremu: %s ⇄ %s (%s): A→B %s; B→A %s\n", *ifA, *ifB, *driver, cfg.AB, cfg.BA)
	// The forwarding loop allocates nothing: with the collector off, no GC
	// cycle ever needs the (one, when pinned) P the loop spins on.
	runtime.GC()
	debug.SetGCPercent(-1)
	fmt.Println("READY")
	e.Run(ctx)

	res := Result{Stats: e.Stats()}
	res.PortA, _ = pa.Stats()
	res.PortB, _ = pb.Stats()
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		res.CPUSeconds = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	pa.Close()
	pb.Close()
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	dpdk.Cleanup()
}

// twoVdevs returns EAL arguments opening ifA and ifB as two vdevs of the
// driver (vdev 0 and 1), and the two port names.
func twoVdevs(driver, ifA, ifB string, cpu int, prefix string) (args []string, nameA, nameB string, err error) {
	vdevA, portsA, _, err := dpdk.Vdevs(driver, ifA, 0, 1)
	if err != nil {
		return nil, "", "", err
	}
	vdevB, portsB, _, err := dpdk.Vdevs(driver, ifB, 1, 1)
	if err != nil {
		return nil, "", "", err
	}
	return dpdk.VdevEAL(cpu, prefix, append(vdevA, vdevB...)...).List(), portsA[0], portsB[0], nil
}
