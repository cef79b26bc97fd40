package experiments

// Process supervision: the server side's processes (the application, a
// stack's daemon) started until READY, sampled, stopped with SIGTERM, and
// counted hung or dead; their logs.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/joyride-bench/joyride/internal/procstats"
	"github.com/joyride-bench/joyride/testbed/local"
)

// ProcResources is what one process held at one moment (from /proc).
type ProcResources struct {
	RSSKiB int64 `json:"rss_kib"`
	// PSSKiB is the proportional set size: shared pages split among the
	// processes sharing them (smaps_rollup), so that summing processes counts
	// a shared region once.
	PSSKiB  int64 `json:"pss_kib,omitempty"`
	FDs     int   `json:"fds"`
	Threads int   `json:"threads"`
	// Goroutines and HeapKiB are what the Go process reported when asked
	// (SIGUSR1, internal/procstats); 0 when it did not answer within a
	// second.
	Goroutines int   `json:"goroutines,omitempty"`
	HeapKiB    int64 `json:"heap_kib,omitempty"`
}

// procResources reads a process's resident memory, open descriptors and
// threads; zero values when it is gone.
func procResources(pid int) ProcResources {
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	smaps, _ := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	fds := 0
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		fds = len(ents)
	}
	return parseProcResources(string(status), string(smaps), fds)
}

// parseProcResources reads a process's /proc/<pid>/status and smaps_rollup
// (local, or printed by a remote node), with its count of descriptors.
func parseProcResources(status, smapsRollup string, fds int) ProcResources {
	r := ProcResources{FDs: fds}
	for _, line := range strings.Split(status, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			r.RSSKiB, _ = strconv.ParseInt(f[1], 10, 64)
		case "Threads:":
			r.Threads, _ = strconv.Atoi(f[1])
		}
	}
	for _, line := range strings.Split(smapsRollup, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "Pss:" {
			r.PSSKiB, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	return r
}

// server is a process of the server side (the application, or a stack's
// daemon) in the server namespace, or on the server node of an SSH testbed.
type server struct {
	cmd    *exec.Cmd   // a local process
	remote *remoteProc // or a process on an SSH node
	log    tail
	once   sync.Once
	result string
	exited chan struct{}
	stats  chan string // PROCSTATS lines, answers to SIGUSR1
	hung   bool        // stop had to kill it (set by stop)
	// stalled: the point's watchdog killed it for making no progress
	// (set by killStalled).
	stalled bool
}

// stopGrace is how long a server has to exit after SIGTERM before it is
// killed and counted hung.
const stopGrace = 5 * time.Second

// goStats asks the server for its goroutines and Go heap (SIGUSR1, answered
// by a PROCSTATS line on its standard output) and waits up to timeout.
func (s *server) goStats(timeout time.Duration) (procstats.Stats, bool) {
	select { // an answer that came too late for an earlier question
	case <-s.stats:
	default:
	}
	if s.died() || s.signal(syscall.SIGUSR1) != nil {
		return procstats.Stats{}, false
	}
	select {
	case line := <-s.stats:
		st, err := procstats.Parse(line)
		return st, err == nil
	case <-time.After(timeout):
		return procstats.Stats{}, false
	}
}

// startProcess starts binary (from binDir) in the server namespace, pinned to
// cpu, and waits until it says READY.
func startProcess(ctx context.Context, tb *local.Testbed, binDir, binary string, cpu int, args ...string) (*server, error) {
	return startProcessIn(ctx, tb, tb.Server, binDir, binary, cpu, args...)
}

// startProcessIn is startProcess in node's namespace.
func startProcessIn(ctx context.Context, tb *local.Testbed, node local.Node, binDir, binary string, cpu int, args ...string) (*server, error) {
	s := &server{exited: make(chan struct{}), stats: make(chan string, 1)}
	s.cmd = tb.CommandWithBPFFS(context.Background(), node, "taskset",
		append([]string{"-c", strconv.Itoa(cpu), filepath.Join(binDir, binary)}, args...)...)
	s.cmd.Stderr = &s.log
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	// Recorded in the testbed, so that cleanup after a killed runner finds it.
	if err := tb.Start(s.cmd); err != nil {
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		lines := s.lineHandler(ready)
		for sc.Scan() {
			lines(sc.Text())
		}
		s.cmd.Wait()
		close(s.exited)
	}()
	return s.waitReady(ctx, ready)
}

// lineHandler is what a server's standard output goes through, line by line:
// the first READY closes ready, PROCSTATS lines answer goStats, the rest is
// its log. Its lines come from one goroutine.
func (s *server) lineHandler(ready chan struct{}) func(string) {
	signalled := false
	return func(line string) {
		if line == "READY" && !signalled {
			close(ready)
			signalled = true
			return
		}
		if strings.HasPrefix(line, procstats.Prefix) {
			select {
			case s.stats <- line:
			default:
			}
			return
		}
		s.log.Write([]byte(line + "\n"))
	}
}

// waitReady waits until the started server says READY (30 s at most).
func (s *server) waitReady(ctx context.Context, ready chan struct{}) (*server, error) {
	select {
	case <-ready:
		return s, nil
	case <-s.exited:
		return nil, fmt.Errorf("server exited before it was ready: %s", lastLine(s.log.String()))
	case <-time.After(30 * time.Second):
		s.stop()
		return nil, fmt.Errorf("server not ready within 30 s: %s", lastLine(s.log.String()))
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
}

// died reports whether the process has exited on its own (before stop).
func (s *server) died() bool {
	select {
	case <-s.exited:
		return true
	default:
		return false
	}
}

// signal delivers sig to the server's process.
func (s *server) signal(sig syscall.Signal) error {
	if s.remote != nil {
		return s.remote.signal(sig)
	}
	return s.cmd.Process.Signal(sig)
}

// stop ends the server with SIGTERM (SIGKILL after 5 s) and returns its log.
func (s *server) stop() string {
	s.once.Do(func() {
		s.signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(stopGrace):
			s.signal(syscall.SIGKILL)
			s.awaitKilled()
			s.hung = true
			s.log.Write([]byte("(killed after 5 s without exiting on SIGTERM)\n"))
		}
		s.result = s.log.String()
	})
	return s.result
}

// killStalled ends a server the point's watchdog found without progress:
// SIGKILL at once (a stopped process would hold SIGTERM pending until it is
// killed anyway), then waits until it is gone.
func (s *server) killStalled() {
	s.stalled = true
	if s.cmd != nil && s.cmd.Process != nil {
		// Its children first (an external program under jrapp): they were
		// as silent as it was, and one left running would keep its output
		// pipe, and so the wait below, open.
		for _, pid := range descendants(s.cmd.Process.Pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	s.signal(syscall.SIGKILL)
	s.awaitKilled()
	s.log.Write([]byte("(killed by the point's watchdog: no progress under load)\n"))
}

// tail keeps the last 64 KiB written to it (a process's log).
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 64<<10 {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-64<<10:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" && !strings.HasPrefix(l, "libbpf:") && !strings.HasPrefix(l, "TELEMETRY:") {
			return l
		}
	}
	return "(no output)"
}

// lastJSONLine is the last line of out that is a JSON object (a process's
// final counters), or nil.
func lastJSONLine(out string) json.RawMessage {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if strings.HasPrefix(l, "{") && json.Valid([]byte(l)) {
			return json.RawMessage(l)
		}
	}
	return nil
}

// awaitKilled waits until a server sent SIGKILL is gone. A local process
// always goes; the session of a remote one may hang on a node that stopped
// answering, so that wait is bounded (the role's watchdog and the run's
// cleanup kill it on the node).
func (s *server) awaitKilled() {
	if s.remote == nil {
		<-s.exited
		return
	}
	select {
	case <-s.exited:
	case <-time.After(remoteKillWait):
		s.remote.abandon()
	}
}
