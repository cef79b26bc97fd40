// Command jrapp is the RPC application: it opens a stack by name and serves an
// echo (UDP or TCP) or a stock net/http server on it, or, for a stack without
// sockets (null), runs the
// stack's reflector. The runner starts it inside the server's network namespace,
// waits for the line "READY" on its standard output, and stops it with SIGTERM;
// on exit it prints "STATS {json}" with the stack's counters.
//
// Exit status: 0 after a clean stop, 1 when the stack or the server fails, 2 for
// bad flags.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"

	"github.com/joyride-bench/joyride/app"
	"github.com/joyride-bench/joyride/internal/procstats"
	"github.com/joyride-bench/joyride/stacks"
	_ "github.com/joyride-bench/joyride/stacks/all"
)

func main() {
	stackName := flag.String("stack", "kernel", "stack to serve on (one of the registered stacks)")
	options := flag.String("options", "", "stack options as YAML or JSON, e.g. '{driver: af_xdp}'")
	iface := flag.String("iface", "", "network interface the stack serves on")
	addr := flag.String("addr", "198.18.0.2/24", "the server's address and prefix on iface")
	port := flag.Int("port", 9000, "UDP/TCP port the echo listens on")
	protocol := flag.String("protocol", "udp", "transport of the echo: udp or tcp")
	application := flag.String("app", "echo", "application: echo, synthetic (spin for each request's service time, then echo) over -protocol, http (a stock net/http server, tcp), or memcached (Debian's memcached, run as a child on the kernel stack, tcp)")
	size := flag.Int("size", 64, "request size in bytes (synthetic over tcp frames the stream by it)")
	cpu := flag.Int("cpu", 0, "core the stack's polling loop runs on (the process is pinned by its parent)")
	prefix := flag.String("file-prefix", fmt.Sprintf("jrapp%d", os.Getpid()), "DPDK runtime file prefix")
	runDir := flag.String("run-dir", "", "directory private to this run (control sockets of service stacks)")
	cpuProfile := flag.String("cpuprofile", "", "write a Go CPU profile of the serving here (for go tool pprof)")
	flag.Parse()
	// The runner samples goroutines and heap with SIGUSR1 (internal/procstats).
	procstats.Report(os.Stdout, nil)

	fail := func(code int, format string, a ...any) {
		fmt.Fprintf(os.Stderr, "jrapp: "+format+"\n", a...)
		os.Exit(code)
	}
	prefixAddr, err := netip.ParsePrefix(*addr)
	if err != nil {
		fail(2, "-addr: %v", err)
	}
	if *protocol != "udp" && *protocol != "tcp" {
		fail(2, "-protocol %q: allowed udp, tcp", *protocol)
	}
	if _, external := app.Externals[*application]; external {
		// An unmodified C program: on the kernel's sockets, or on a stack
		// that can preload it (Joyride's shim); checked once the stack is open.
		if *protocol != "tcp" {
			fail(2, "-app %s serves tcp, not %q", *application, *protocol)
		}
	} else if *application != "echo" && *application != "http" && *application != "synthetic" {
		fail(2, "-app %q: allowed echo, synthetic, http, %s", *application, strings.Join(slices.Sorted(maps.Keys(app.Externals)), ", "))
	}
	if *size < 1 || *size > 1<<20 {
		fail(2, "-size %d outside 1..1048576", *size)
	}
	if *port <= 0 || *port > 65535 {
		fail(2, "-port %d outside 1..65535", *port)
	}
	opts, err := stacks.DecodeOptionsBytes(*stackName, []byte(*options))
	if err != nil {
		fail(2, "%v", err)
	}
	st, err := stacks.Open(*stackName, opts, stacks.Env{Iface: *iface, Addr: prefixAddr, CPUs: []int{*cpu}, FilePrefix: *prefix, RunDir: *runDir})
	if err != nil {
		fail(1, "%v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	if *cpuProfile != "" {
		if f, err := os.Create(*cpuProfile); err == nil {
			pprof.StartCPUProfile(f)
			defer f.Close()
			defer pprof.StopCPUProfile()
		}
	}
	serveErr := serve(ctx, st, *application, *protocol, netip.AddrPortFrom(prefixAddr.Addr(), uint16(*port)).String(), *size)
	stats, _ := json.Marshal(st.Stats())
	fmt.Printf("STATS %s\n", stats)
	if err := st.Close(); err != nil && serveErr == nil {
		serveErr = err
	}
	if serveErr != nil {
		fail(1, "%s stack: %v", *stackName, serveErr)
	}
}

func serve(ctx context.Context, st stacks.Stack, application, protocol, listen string, size int) error {
	if r, ok := st.(stacks.Reflector); ok {
		fmt.Println("READY")
		return r.Reflect(ctx)
	}
	if x, ok := app.Externals[application]; ok {
		if err := stacks.Require(st.Name(), stacks.Preload); err != nil {
			return fmt.Errorf("-app %s is an unmodified program: %w", application, err)
		}
		var env []string
		dial := app.Dialer(app.KernelDialer)
		// A stack that preloads programs gives them its environment; one
		// that has the capability without a Preloader (the kernel) runs
		// them on its own sockets as they are.
		if p, ok := st.(stacks.Preloader); ok {
			var err error
			if env, err = p.PreloadEnv(); err != nil {
				return err
			}
			// Through the stack itself: the kernel does not see the program's
			// listener.
			dial = func(ctx context.Context, addr string) (net.Conn, error) { return st.Dial("tcp4", addr) }
		}
		return x.Run(ctx, listen, size, env, dial, func() { fmt.Println("READY") })
	}
	if application == "http" {
		ln, err := st.Listen("tcp4", listen)
		if err != nil {
			return err
		}
		fmt.Println("READY")
		return app.ServeHTTP(ctx, ln, st.Name())
	}
	switch protocol {
	case "udp":
		pc, err := st.ListenPacket("udp4", listen)
		if err != nil {
			return err
		}
		fmt.Println("READY")
		if application == "synthetic" {
			return app.ServeUDPSynthetic(ctx, pc)
		}
		return app.ServeUDPEcho(ctx, pc)
	default:
		ln, err := st.Listen("tcp4", listen)
		if err != nil {
			return err
		}
		fmt.Println("READY")
		if application == "synthetic" {
			return app.ServeTCPSynthetic(ctx, ln, size)
		}
		return app.ServeTCPEcho(ctx, ln)
	}
}
