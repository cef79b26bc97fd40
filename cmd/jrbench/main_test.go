package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/joyride-bench/joyride/testbed/local"
	"github.com/joyride-bench/joyride/testbed/pmqos"
)

// jrbench is tested as the user runs it: the built binary, its stderr and its
// exit status.
func jrbench(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("JRBENCH_BIN")
	if dir == "" {
		dir, _ = filepath.Abs("../../bin")
	}
	p := filepath.Join(dir, "jrbench")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s missing: run make build (or make test) first", p)
	}
	return p
}

func TestBadExperimentFailsBeforeAnythingStarts(t *testing.T) {
	bin := jrbench(t)
	nsBefore, _ := exec.Command("ip", "netns", "list").Output()
	for file, want := range map[string]string{
		"unknown-key.yaml":    "unknown-key.yaml:3:",
		"wrong-type.yaml":     "wrong-type.yaml:6:",
		"negative-rate.yaml":  "negative-rate.yaml:7:",
		"unknown-stack.yaml":  "unknown-stack.yaml:4:",
		"unknown-option.yaml": "unknown-option.yaml:6:",
	} {
		cmd := exec.Command(bin, "run", filepath.Join("..", "..", "experiments", "testdata", file))
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%s: exit %v, want status 2; output:\n%s", file, err, out)
			continue
		}
		if !strings.Contains(string(out), want) {
			t.Errorf("%s: output does not name %q:\n%s", file, want, out)
		}
	}
	nsAfter, _ := exec.Command("ip", "netns", "list").Output()
	if string(nsAfter) != string(nsBefore) {
		t.Errorf("a rejected experiment changed the namespaces:\nbefore:\n%s\nafter:\n%s", nsBefore, nsAfter)
	}
}

func TestValidateAcceptsTheShippedExperiments(t *testing.T) {
	bin := jrbench(t)
	cmd := exec.Command(bin, "validate", "smoke", "rpc-latency")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("validate: %v\n%s", err, out)
	}
}

func TestUnknownExperimentName(t *testing.T) {
	bin := jrbench(t)
	cmd := exec.Command(bin, "run", "no-such-experiment")
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "no-such-experiment.yaml") {
		t.Fatalf("exit %v, output %s", err, out)
	}
}

// Ctrl-C during a run: jrbench stops within seconds, releases the PM QoS
// request, removes its testbed, and leaves a results directory with what it had.
func TestInterruptReleasesEverything(t *testing.T) {
	bin := jrbench(t)
	if os.Geteuid() != 0 {
		t.Fatal("needs root")
	}
	before, err := pmqos.Current()
	if err != nil {
		t.Fatal(err)
	}
	results := t.TempDir()
	cmd, stderr := startRunUntilFirstPoint(t, bin, results, "smoke")
	if held, _ := pmqos.Current(); held != 0 {
		t.Errorf("while a point runs the CPU latency bound is %d µs, want 0", held)
	}
	cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("jrbench still running 15 s after SIGINT:\n%s", stderr.String())
	}
	if after, _ := pmqos.Current(); after != before {
		t.Errorf("after SIGINT the CPU latency bound is %d µs (before the run: %d)", after, before)
	}
	metas, _ := filepath.Glob(filepath.Join(results, "smoke", "2*", "meta.json")) // run ids, not "latest"
	if len(metas) != 1 {
		t.Fatalf("%d meta.json files after the interrupted run:\n%s", len(metas), stderr.String())
	}
	b, _ := os.ReadFile(metas[0])
	var meta struct {
		State   string `json:"state"`
		Testbed struct {
			ID     string                 `json:"id"`
			Client struct{ Netns string } `json:"client"`
		} `json:"testbed"`
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	if meta.State != "interrupted" {
		t.Errorf("meta.json state %q, want interrupted", meta.State)
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	if meta.Testbed.Client.Netns == "" || strings.Contains(string(out), meta.Testbed.Client.Netns) {
		t.Errorf("testbed namespace %q left behind (or not recorded):\n%s", meta.Testbed.Client.Netns, out)
	}
}

// startRunUntilFirstPoint starts `jrbench run --no-calibrate` of exp from the
// repository's root and returns once the first point is under way (its
// progress line is out), with the run's stderr.
func startRunUntilFirstPoint(t *testing.T, bin, results, exp string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(bin, "run", "--no-calibrate", "--results", results, exp)
	cmd.Dir = "../.."
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), "point 1/") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no point started within 30 s:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cmd, stderr
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// jrbench killed with SIGKILL in the middle of a Joyride point cannot clean up:
// its jrapp, joyrided and jrgen live on in the testbed's namespaces, with
// their XDP programs, DPDK runtime directories and control sockets. The
// testbed's records say what the run started (PIDs with start times); the
// next jrbench run warns about the testbed and says how to remove it; and
// `jrbench testbed down --all` ends those processes and removes the
// namespaces, the veths with their XDP programs, and the runtime files: the
// machine is as it was.
func TestKilledRunIsCleanedByTestbedDown(t *testing.T) {
	bin := jrbench(t)
	results := t.TempDir()
	exp := filepath.Join(t.TempDir(), "killed.yaml")
	os.WriteFile(exp, []byte("name: killed\nstacks: [joyride]\nworkload: {rates: [1000], duration: 20s, warmup: 100ms}\n"), 0o644)
	cmd, _ := startRunUntilFirstPoint(t, bin, results, exp)
	defer cmd.Process.Kill()
	metas, _ := filepath.Glob(filepath.Join(results, "killed", "2*", "meta.json"))
	if len(metas) != 1 {
		t.Fatalf("no meta.json: %v", metas)
	}
	b, _ := os.ReadFile(metas[0])
	var meta struct {
		Testbed *local.Testbed `json:"testbed"`
	}
	if err := json.Unmarshal(b, &meta); err != nil || meta.Testbed == nil || meta.Testbed.ID == "" {
		t.Fatalf("meta.json: %v %s", err, b)
	}
	tb := meta.Testbed
	id := tb.ID
	// Wait until the load is on: joyrided, jrapp and jrgen all recorded
	// and running.
	var started []local.StartedProcess
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		started = tb.Running()
		if len(started) >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run's processes were not all recorded: %+v", started)
		}
	}
	time.Sleep(500 * time.Millisecond)
	if tb.Owner == nil || tb.Owner.PID != cmd.Process.Pid || !tb.Owner.Alive() {
		t.Fatalf("the testbed's owner %+v is not the running jrbench (pid %d)", tb.Owner, cmd.Process.Pid)
	}
	roles := func() []string { // our roles still running for this testbed
		out, _ := exec.Command("pgrep", "-a", "-f", id).Output()
		var left []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l != "" && !strings.Contains(l, "pgrep") {
				left = append(left, l)
			}
		}
		return left
	}
	xdpProgs := func() []int { // XDP programs attached to the testbed's veth ends
		var ids []int
		for _, n := range []local.Node{tb.Client, tb.Server} {
			out, _ := exec.Command("ip", "netns", "exec", n.Netns, "ip", "-d", "-j", "link", "show", "dev", n.Iface).Output()
			var links []struct {
				XDP struct {
					Prog struct {
						ID int `json:"id"`
					} `json:"prog"`
				} `json:"xdp"`
			}
			json.Unmarshal(out, &links)
			for _, l := range links {
				if l.XDP.Prog.ID > 0 {
					ids = append(ids, l.XDP.Prog.ID)
				}
			}
		}
		return ids
	}
	runtimeFiles := []string{"/var/run/dpdk/*-" + id, "/run/jrbench/" + id, "/run/jrbench/testbeds/" + id + ".*", "/dev/shm/*" + id + "*"}
	leftFiles := func() []string {
		var left []string
		for _, pattern := range runtimeFiles {
			m, _ := filepath.Glob(pattern)
			left = append(left, m...)
		}
		return left
	}

	cmd.Process.Kill()
	cmd.Wait()
	// What the killed run leaves.
	if len(roles()) < 2 {
		t.Fatalf("after SIGKILL of jrbench, expected its roles orphaned and running, found %v", roles())
	}
	progs := xdpProgs()
	if len(progs) == 0 {
		t.Errorf("no XDP program attached to the testbed's veths while its roles run")
	}
	if dirs, _ := filepath.Glob("/var/run/dpdk/*-" + id); len(dirs) < 2 {
		t.Errorf("DPDK runtime directories of the run: %v", dirs)
	}
	if _, err := os.Stat("/run/jrbench/" + id); err != nil {
		t.Errorf("the run's socket directory: %v", err)
	}
	if tb.Owner.Alive() {
		t.Fatal("the killed jrbench still counts as alive")
	}
	// The next run warns and says how to clean up (and then fails here on
	// purpose, before it starts anything: no binaries in --bin).
	warn, err := exec.Command(bin, "run", "--no-calibrate", "--results", t.TempDir(), "--bin", t.TempDir(), "../../experiments/smoke.yaml").CombinedOutput()
	if err == nil || !strings.Contains(string(warn), "warning: testbed "+id+": left by a run that is gone") ||
		!strings.Contains(string(warn), "jrbench testbed down "+id) {
		t.Errorf("the next run does not warn about testbed %s (%v):\n%s", id, err, warn)
	}
	status, _ := exec.Command(bin, "testbed", "status").CombinedOutput()
	if !regexp.MustCompile(id + `\s+abandoned`).Match(status) {
		t.Errorf("testbed status does not call %s abandoned:\n%s", id, status)
	}

	if out, err := exec.Command(bin, "testbed", "down", "--all").CombinedOutput(); err != nil {
		t.Fatalf("testbed down --all: %v\n%s", err, out)
	}
	if left := roles(); len(left) > 0 {
		t.Errorf("processes left after testbed down: %v", left)
	}
	for _, p := range started {
		if p.Alive() {
			t.Errorf("recorded process %d (%s) still running", p.PID, strings.Join(p.Argv, " "))
		}
	}
	ns, _ := exec.Command("ip", "netns", "list").Output()
	links, _ := exec.Command("ip", "-o", "link").Output()
	if strings.Contains(string(ns), id) || strings.Contains(string(links), id) {
		t.Errorf("namespaces or links of testbed %s left:\n%s\n%s", id, ns, links)
	}
	for _, p := range progs {
		if prog, err := ebpf.NewProgramFromID(ebpf.ProgramID(p)); err == nil {
			prog.Close()
			t.Errorf("XDP program %d of the testbed still loaded", p)
		}
	}
	if left := leftFiles(); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}
