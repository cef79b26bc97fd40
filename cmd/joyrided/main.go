// Command joyrided is the Joyride network service: it owns one NIC through DPDK,
// runs gVisor's TCP/IP stack over it, and serves applications that attach over
// its control socket (see stacks/joyride/service). It prints "READY" on standard
// output once applications can attach, logs with log/slog to standard error,
// and on SIGTERM or SIGINT disconnects the applications and exits cleanly.
//
// Exit status: 0 after a clean stop, 1 when the service fails, 2 for bad flags.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"syscall"
	"time"

	"github.com/joyride-bench/joyride/internal/procstats"
	"github.com/joyride-bench/joyride/nic"
	"github.com/joyride-bench/joyride/nic/dpdk"
	"github.com/joyride-bench/joyride/nic/dpdk/eal"
	"github.com/joyride-bench/joyride/nic/netstack"
	"github.com/joyride-bench/joyride/stacks/joyride/channel"
	"github.com/joyride-bench/joyride/stacks/joyride/proto"
	"github.com/joyride-bench/joyride/stacks/joyride/service"
)

func main() {
	iface := flag.String("iface", "", "network interface the service owns (through a DPDK vdev)")
	driver := flag.String("driver", "af_xdp", "DPDK vdev over -iface: af_xdp or af_packet")
	pci := flag.String("pci", "", "instead of a vdev, a PCI device (a real NIC; EAL's -a argument: address[,pmd args], e.g. 0000:41:00.0,mprq_en=1)")
	addr := flag.String("addr", "198.18.0.2/24", "the service's IPv4 address and prefix")
	gateway := flag.String("gateway", "", "default gateway (optional)")
	socket := flag.String("socket", proto.DefaultSocket, "control socket path")
	cpu := flag.Int("cpu", 0, "EAL main lcore (the process is pinned by its parent)")
	prefix := flag.String("file-prefix", fmt.Sprintf("joyrided%d", os.Getpid()), "DPDK runtime file prefix")
	spin := flag.Duration("spin", time.Millisecond, "how long the engine polls after its last work before it sleeps")
	idle := flag.Duration("idle-poll", time.Millisecond, "while asleep, poll the NIC at least this often")
	ring := flag.Int("ring", 1024, "descriptors per ring of each application's region")
	buffers := flag.Int("buffers", 1024, "buffers per direction of each application's region")
	bufSize := flag.Int("buf-size", 2048, "bytes per buffer")
	profileName := flag.String("profile", "lcd", "NIC profile the port is opened under: lcd (one queue, no offloads, 256-entry rings) or cx5")
	maxSockets := flag.Int("max-sockets", service.DefaultMaxSockets, "sockets one application may hold (more are refused with EMFILE)")
	maxListeners := flag.Int("max-listeners", service.DefaultMaxListeners, "TCP listeners one application may hold (more are refused with EMFILE)")
	maxBacklog := flag.Int("max-backlog", service.DefaultMaxBacklog, "connections accepted for one application that its full ring could not announce yet (more are reset); also caps each listener's backlog")
	maxBuffered := flag.Int64("max-buffered-bytes", service.DefaultMaxBufferedBytes, "bytes the service holds for one application's sockets, sent or received (a send beyond fails its socket with ENOBUFS; beyond it nothing more is read for the application)")
	maxFlows := flag.Int("max-flows", service.DefaultMaxFlows, "UDP fast-path entries one application's sockets may hold (more are served by gVisor)")
	controlRate := flag.Float64("max-control-rate", service.DefaultControlRate, "control requests per second one application may make (more get EAGAIN; negative: unlimited)")
	upBatch := flag.Int("up-batch", service.DefaultUpBatch, "messages the engine takes from one application's ring per round before it serves the next (the ring's size: drain each ring whole)")
	controlBurst := flag.Int("control-burst", service.DefaultControlBurst, "control requests one application may make at once before -max-control-rate paces it")
	fastPath := flag.Bool("fast-path", true, "deliver and send UDP datagrams of bound sockets without gVisor (false: every datagram through gVisor, for comparison)")
	corePolicy := flag.String("core-policy", "auto", "whether the engine has a core of its own: dedicated (spin, then sleep), shared (hand the core to the applications whenever it can), or auto (shared when an attached application may run on one of the engine's CPUs)")
	cpuProfile := flag.String("cpuprofile", "", "write a Go CPU profile of the whole run here (for go tool pprof)")
	traceOut := flag.String("trace", "", "write a Go execution trace of the whole run here (go tool trace; -pprof=sched shows how long goroutines waited to run)")
	flag.Parse()
	// The engine goroutine holds a P while it polls; pinned to one core the
	// runtime would give the process a single P, and every other goroutine
	// (control requests, gVisor's TCP processors and timers) would wait for
	// the engine to yield it. A second P lets them run on the same core as
	// threads the kernel schedules.
	if runtime.GOMAXPROCS(0) < 2 {
		runtime.GOMAXPROCS(2)
	}
	// The runner samples goroutines and heap with SIGUSR1 (internal/procstats).
	procstats.Report(os.Stdout, nil)
	if stopProfile := startCPUProfile(*cpuProfile); stopProfile != nil {
		defer stopProfile()
	}
	if stopTrace := startTrace(*traceOut); stopTrace != nil {
		defer stopTrace()
	}

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	fail := func(code int, format string, a ...any) {
		log.Error(fmt.Sprintf(format, a...))
		os.Exit(code)
	}
	prefixAddr, err := netip.ParsePrefix(*addr)
	if err != nil || !prefixAddr.Addr().Is4() {
		fail(2, "-addr %q: want an IPv4 address with prefix, such as 198.18.0.2/24", *addr)
	}
	var gw netip.Addr
	if *gateway != "" {
		if gw, err = netip.ParseAddr(*gateway); err != nil || !gw.Is4() {
			fail(2, "-gateway %q is not an IPv4 address", *gateway)
		}
	}
	var args []string
	var name string
	if *pci != "" {
		if name, err = eal.ParsePCIDevice(*pci); err != nil { // the port is named by its address alone
			fail(2, "-pci: %v", err)
		}
		args = eal.Args{Program: "joyrided", Core: *cpu, FilePrefix: *prefix, PCI: []string{*pci}}.List()
	} else {
		if *iface == "" {
			fail(2, "-iface (or -pci) is required")
		}
		if args, name, err = dpdk.VdevArgs(*driver, *iface, *cpu, *prefix); err != nil {
			fail(2, "%v", err)
		}
	}
	policy, err := service.ParseCorePolicy(*corePolicy)
	if err != nil {
		fail(2, "-core-policy: %v", err)
	}
	profile, err := nic.LookupProfile(*profileName)
	if err != nil {
		fail(2, "-profile: %v", err)
	}
	if err := dpdk.Init(args); err != nil {
		fail(1, "%v", err)
	}
	dport, err := dpdk.OpenPort(name, dpdk.ProfileConfig(profile))
	if err != nil {
		dpdk.Cleanup()
		fail(1, "%v", err)
	}
	// The stack sees the port as the profile allows it.
	port := nic.Restrict(dport, profile)
	link := netstack.New(port, netstack.Options{})
	svc, err := service.New(link, service.Config{Addr: prefixAddr, Gateway: gw, Socket: *socket, Spin: *spin, IdlePoll: *idle,
		Region: channel.Config{RingSize: *ring, Buffers: *buffers, BufSize: *bufSize}, MaxSockets: *maxSockets,
		MaxListeners: *maxListeners, MaxBacklog: *maxBacklog, MaxBufferedBytes: *maxBuffered, MaxFlows: *maxFlows,
		ControlRate: *controlRate, ControlBurst: *controlBurst, UpBatch: *upBatch, CorePolicy: policy, NoFastPath: !*fastPath, Log: log})
	if err != nil {
		port.Close()
		dpdk.Cleanup()
		fail(1, "%v", err)
	}
	log.Info("joyrided serving", "port", name, "mac", port.MAC().String(), "addr", prefixAddr.String(),
		"socket", *socket, "profile", profile.Name, "features", port.Features().String(),
		"core_policy", policy, "nic_wait_fds", len(link.RxWaitFds()), "fast_path", *fastPath)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	closed := make(chan struct{})
	go func() {
		<-ctx.Done()
		svc.Close()
		close(closed)
	}()
	fmt.Println("READY")
	svc.Run()
	<-closed // the stack is closed: nothing transmits on the port any more
	st := svc.Stats()
	log.Info("joyrided stopped", "msgs_up", st.MsgsUp.Load(), "msgs_down", st.MsgsDown.Load(), "sleeps", st.Sleeps.Load(), "hand_overs", st.HandOvers.Load(),
		"corrupt_apps", st.Corrupt.Load(), "down_full", st.DownFull.Load())
	// Refusals at the per-application limits (the runner records them in
	// meta.json with the point).
	lc := st.LimitCounts()
	log.Info("limit counters", "sockets", lc["sockets"], "listeners", lc["listeners"], "backlog", lc["backlog"],
		"buffered_bytes", lc["buffered_bytes"], "flows", lc["flows"], "control_rate", lc["control_rate"])
	if fp := svc.FastPath(); fp != nil {
		fs := fp.Stats()
		log.Info("fast path counters", "rx", fs.RxDatagrams, "tx", fs.TxDatagrams, "tx_fallbacks", fs.TxFallbacks,
			"resolves", fs.Resolves, "ports_left", fp.Ports(), "filtered", st.FastFiltered.Load())
	}
	// What the TCP/IP stack saw: where a segment went that no socket got.
	ns := svc.Stack().Stats()
	log.Info("netstack counters", "ip_rx", ns.IP.PacketsReceived.Value(), "ip_malformed", ns.IP.MalformedPacketsReceived.Value(),
		"tcp_rx", ns.TCP.ValidSegmentsReceived.Value(), "tcp_invalid", ns.TCP.InvalidSegmentsReceived.Value(),
		"tcp_csum_errors", ns.TCP.ChecksumErrors.Value(), "tcp_resets_rx", ns.TCP.ResetsReceived.Value(),
		"tcp_resets_tx", ns.TCP.ResetsSent.Value(), "tcp_retransmits", ns.TCP.Retransmits.Value(),
		"tcp_timeouts", ns.TCP.Timeouts.Value(), "tcp_established_resets", ns.TCP.EstablishedResets.Value(),
		"tcp_listen_overflow_syn_drop", ns.TCP.ListenOverflowSynDrop.Value(), "tcp_segment_send_errors", ns.TCP.SegmentSendErrors.Value())
	port.Close()
	dpdk.Cleanup()
}

// startCPUProfile starts a CPU profile into path ("" = none) and returns its stop.
// startTrace starts a runtime execution trace into path; the returned
// function stops it (nil: no trace).
func startTrace(path string) func() {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		slog.Error("trace", "err", err)
		return nil
	}
	if err := trace.Start(f); err != nil {
		slog.Error("trace", "err", err)
		f.Close()
		return nil
	}
	return func() { trace.Stop(); f.Close() }
}

func startCPUProfile(path string) func() {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		slog.Error("cpuprofile", "err", err)
		return nil
	}
	pprof.StartCPUProfile(f)
	return func() { pprof.StopCPUProfile(); f.Close() }
}
