package experiments

// Sites: where a run's roles execute. The local testbed is here; the SSH
// one is in remote.go.

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/joyride-bench/joyride/testbed/local"
)

// site is where a run's roles execute: the seam between the runner and the
// testbed. localSite is the local testbed's two namespaces; sshSite
// (remote.go) the nodes of a testbed file, over SSH. The runner decides what
// runs (arguments, order, checks, results); a site only decides where.
type site interface {
	// id names the run's testbed in DPDK file prefixes.
	id() string
	// serverEnd and clientEnd are each side's data-plane end.
	serverEnd() dataEnd
	clientEnd() dataEnd
	// runDir is a directory private to the run on the server side (the
	// control sockets of service stacks).
	runDir() (string, error)
	// startServer starts binary on the server side, pinned to cpu, and
	// waits until it prints READY.
	startServer(ctx context.Context, binary string, cpu int, args ...string) (*server, error)
	// startTool starts argv (a program of the side's own, by absolute path
	// or from PATH) on the server side, pinned to cpu, its standard output
	// and error its log; it does not wait for READY.
	startTool(ctx context.Context, cpu int, argv ...string) (*server, error)
	// runClient runs binary (jrgen, from the run's binaries, or a program
	// of the side's own by absolute path) with args on the client side,
	// pinned to cpus (taskset's list), until it exits or ctx ends (SIGTERM,
	// SIGKILL 5 s later). The file the argument after fileFlag names (jrgen's
	// -hlog) ends up at that path on this machine. It returns the standard
	// output and the tail of the standard error.
	runClient(ctx context.Context, binary, cpus string, args []string, fileFlag string) ([]byte, string, error)
	// resources samples a server process (zero values when it is gone).
	resources(s *server) ProcResources
	// cpuSampler samples the server's cores through a point; one that
	// cannot never reports a busy share.
	cpuSampler(cpus []int) *cpuSampler
	// readServerFile reads a file of the server side (a /sys or /proc
	// counter), as its namespace or its node sees it.
	readServerFile(ctx context.Context, path string) ([]byte, error)
	// stalls runs the stall probe on each of cpus, of the machine the
	// roles run on; nil when the site cannot.
	stalls(d time.Duration, cpus ...int) []CPUStalls
}

// dataEnd is one side's end of the measured wire.
type dataEnd struct {
	// Iface is the Linux interface of the NIC ("" for a PCI NIC that has
	// none).
	Iface string
	// Addr is the side's benchmark address and prefix.
	Addr netip.Prefix
	// GenArgs are jrgen's arguments that attach its port (the client side).
	GenArgs []string
	// DaemonArgs are appended to a stack daemon's arguments (the server
	// side): the testbed's NIC where it is not the stack's default.
	DaemonArgs []string
}

// localSite is the local testbed: the server and client namespaces on this
// machine.
type localSite struct {
	tb        *local.Testbed
	binDir    string
	genDriver string
}

func (l localSite) id() string { return l.tb.ID }

func (l localSite) serverEnd() dataEnd {
	return dataEnd{Iface: l.tb.Server.Iface, Addr: l.tb.Server.Addr}
}

func (l localSite) clientEnd() dataEnd {
	return dataEnd{Iface: l.tb.Client.Iface, Addr: l.tb.Client.Addr,
		GenArgs: []string{"-driver", l.genDriver, "-iface", l.tb.Client.Iface}}
}

func (l localSite) runDir() (string, error) {
	d := filepath.Join("/run/jrbench", l.tb.ID)
	return d, os.MkdirAll(d, 0o755)
}

func (l localSite) startServer(ctx context.Context, binary string, cpu int, args ...string) (*server, error) {
	return startProcess(ctx, l.tb, l.binDir, binary, cpu, args...)
}

func (l localSite) startTool(ctx context.Context, cpu int, argv ...string) (*server, error) {
	s := &server{exited: make(chan struct{})}
	s.cmd = l.tb.Command(context.Background(), l.tb.Server, "taskset", append([]string{"-c", strconv.Itoa(cpu)}, argv...)...)
	s.cmd.Stdout, s.cmd.Stderr = &s.log, &s.log
	if err := l.tb.Start(s.cmd); err != nil {
		return nil, fmt.Errorf("start %s: %w", filepath.Base(argv[0]), err)
	}
	go func() {
		s.cmd.Wait()
		close(s.exited)
	}()
	return s, nil
}

func (l localSite) runClient(ctx context.Context, binary, cpus string, args []string, _ string) ([]byte, string, error) {
	if !filepath.IsAbs(binary) {
		binary = filepath.Join(l.binDir, binary)
	}
	gen := l.tb.CommandWithBPFFS(ctx, l.tb.Client, "taskset", append([]string{"-c", cpus, binary}, args...)...)
	gen.Cancel = func() error { return gen.Process.Signal(syscall.SIGTERM) }
	gen.WaitDelay = 5 * time.Second
	var stdout bytes.Buffer
	var stderr tail
	gen.Stdout, gen.Stderr = &stdout, &stderr
	if err := l.tb.Start(gen); err != nil {
		return nil, "", err
	}
	if watch := clientWatch(ctx); watch != nil {
		watch(gen.Process.Pid)
	}
	err := gen.Wait()
	return stdout.Bytes(), stderr.String(), err
}

func (l localSite) resources(s *server) ProcResources { return procResources(s.cmd.Process.Pid) }

func (l localSite) cpuSampler(cpus []int) *cpuSampler {
	return startCPUSampler(cpus, 100*time.Millisecond)
}

func (l localSite) readServerFile(ctx context.Context, path string) ([]byte, error) {
	out, err := l.tb.Command(ctx, l.tb.Server, "cat", path).Output()
	if err != nil {
		return nil, fmt.Errorf("read %s in %s: %w", path, l.tb.Server.Netns, err)
	}
	return out, nil
}

func (l localSite) stalls(d time.Duration, cpus ...int) []CPUStalls { return measureStalls(d, cpus...) }
