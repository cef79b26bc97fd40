//go:build dpdk && cgo

package experiments

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/joyride-bench/joyride/analysis"
	"github.com/joyride-bench/joyride/testbed/spec"
	"github.com/joyride-bench/joyride/testbed/ssh/sshtest"
)

// standinTestbed starts two stand-in SSH nodes (real sshd, each in a
// namespace of its own), joins them with a veth pair as their data plane and
// writes the testbed file that describes them: the client on core 1, the
// server on core 0, as on the local testbed.
func standinTestbed(t *testing.T) (*spec.Testbed, *sshtest.Node, *sshtest.Node) {
	t.Helper()
	client, server := sshtest.Start(t), sshtest.Start(t)
	wire := sshtest.Link(t, client, server)
	node := func(name, role string, n *sshtest.Node, iface, addr string, core int) string {
		return fmt.Sprintf(`  - name: %s
    roles: [%s]
    ssh: {host: %s, port: %d, user: %s, key: %s, known_hosts: %s, host_key_policy: strict}
    nic: {vdev: "net_af_xdp0,iface=%s"}
    ip: %s
    cores: [%d]
`, name, role, n.IP, sshtest.Port, n.User, n.Key, n.KnownHosts, iface, addr, core)
	}
	file := filepath.Join(t.TempDir(), "standins.yaml")
	text := "name: standins\ndescription: two stand-in nodes on this machine\nnodes:\n" +
		node("node0", "client", client, wire.IfaceA, wire.AddrA, 1) +
		node("node1", "server", server, wire.IfaceB, wire.AddrB, 0)
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	tb, err := spec.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	return tb, client, server
}

// The smoke experiment through SSH: every stack's roles run on the stand-in
// nodes (the binaries copied there, jrapp and joyrided on the server node,
// jrgen on the client node, the interval logs copied back), with the same
// results layout as a local run, and nothing of the run left on the nodes.
func TestSmokeOverSSH(t *testing.T) {
	bin := binDir(t)
	sshtest.Require(t)
	tb, client, server := standinTestbed(t)
	e, err := Load("smoke.yaml")
	if err != nil {
		t.Fatal(err)
	}
	results := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir, err := Run(ctx, e, RunOptions{BinDir: bin, ResultsDir: results, Testbed: tb, Log: testLog{t}})
	if err != nil {
		t.Fatalf("run: %v", err)
	}

	// The layout of a local run.
	for _, f := range []string{"summary.csv", "meta.json", "report.md", "plots", "hist", "logs"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("results: %v", err)
		}
	}
	m := readMeta(t, dir)
	if m.State != "complete" || m.RemoteTestbed == nil || !m.RemoteTestbed.Remote || m.Testbed != nil {
		t.Fatalf("meta.json: state %q, remote testbed %+v, local testbed %+v", m.State, m.RemoteTestbed, m.Testbed)
	}
	if !m.PMQoS.Held || m.Placement.Generator != 1 || m.Placement.Server != 0 {
		t.Errorf("meta.json: PM QoS %+v (want held on the nodes), placement %+v (want the file's cores: generator 1, server 0)", m.PMQoS, m.Placement)
	}
	pts, err := analysis.ReadSummaryCSV(filepath.Join(dir, "summary.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != len(e.Points()) {
		t.Fatalf("summary has %d points, the experiment %d", len(pts), len(e.Points()))
	}
	for i, pm := range m.Points {
		if pm.Status != "ok" {
			t.Errorf("point %d (%s at %.0f): %s: %s", i, pm.Stack, pm.Rate, pm.Status, pm.Reason)
		}
	}
	for _, p := range pts {
		if p.Received == 0 {
			t.Errorf("%s at %.0f: no reply (sent %d)", p.Stack, p.OfferedRPS, p.Sent)
		}
		// Validity is not asserted (a vCPU stall can make a point late),
		// but whatever an exact valid point sent was answered. An upper
		// bound is a point the VM stalled, and a stalled reflector drops
		// what overflows its ring meanwhile.
		if p.Valid && !p.UpperBound && p.Received < p.Sent*99/100 {
			t.Errorf("%s at %.0f: %d of %d answered", p.Stack, p.OfferedRPS, p.Received, p.Sent)
		}
		// The interval log came back from the client node, and is what the
		// percentiles were read from.
		if _, err := analysis.ReadHlog(filepath.Join(dir, p.Hlog)); err != nil {
			t.Errorf("%s at %.0f: interval log: %v", p.Stack, p.OfferedRPS, err)
		}
		if p.P50us <= 0 {
			t.Errorf("%s at %.0f: p50 %.1f µs", p.Stack, p.OfferedRPS, p.P50us)
		}
	}
	// The server's processes were sampled on the node.
	for _, pm := range m.Points {
		if r, ok := pm.Resources["jrapp"]; !ok || r[0].RSSKiB == 0 || r[0].Threads == 0 {
			t.Errorf("point %d (%s): jrapp's resources on the node: %+v", pm.Index, pm.Stack, pm.Resources)
		}
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "logs", "*_joyrided.log"))
	if len(logs) == 0 {
		t.Error("no joyrided log kept in logs/")
	}

	// Nothing of the run is left on the nodes: the work dirs are gone (the
	// stand-ins share this machine's file system) and no process started
	// over SSH runs.
	if len(m.RemoteTestbed.WorkDirs) != 2 {
		t.Errorf("work dirs recorded: %v", m.RemoteTestbed.WorkDirs)
	}
	assertNodesClean(t, m, client, server)
}

// A run on an SSH testbed is calibrated on its nodes, as a local run is on
// the namespaces: the wire and round-trip limits, the null and kernel round
// trips and the A/A noise, in meta.json and in report.md (the stall probe and
// the kernel without PM QoS are what it does not measure, and says so).
func TestCalibrationOverSSH(t *testing.T) {
	bin := binDir(t)
	sshtest.Require(t)
	tb, client, server := standinTestbed(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir, err := Run(ctx, CalibrationExperiment(), RunOptions{BinDir: bin, ResultsDir: t.TempDir(), Testbed: tb, Log: testLog{t}})
	if err != nil {
		t.Fatalf("calibrate: %v", err)
	}
	m := readMeta(t, dir)
	c := m.Calibration
	if c == nil {
		t.Fatal("meta.json: no calibration")
	}
	if len(c.Errors) > 0 {
		t.Errorf("failed probes: %v", c.Errors)
	}
	if c.Wire == nil || c.Wire.SentPPS <= 0 || c.Wire.DeliveredPPS <= 0 {
		t.Errorf("wire limit: %+v", c.Wire)
	}
	if c.RoundTrip == nil || c.RoundTrip.DeliveredPPS <= 0 {
		t.Errorf("round-trip limit: %+v", c.RoundTrip)
	}
	for name, p := range map[string]*ProbeLatency{"null": c.Null, "kernel": c.Kernel} {
		if p == nil || p.Count == 0 || p.P50us <= 0 || !p.PMQoS {
			t.Errorf("%s round trip: %+v", name, p)
		}
	}
	if c.AA == nil || c.AA.Second.Count == 0 {
		t.Errorf("A/A test: %+v", c.AA)
	}
	if len(c.Stalls) != 0 || c.KernelNoQoS != nil {
		t.Errorf("measured on the nodes what a run over SSH cannot: stalls %+v, kernel without PM QoS %+v", c.Stalls, c.KernelNoQoS)
	}
	report, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Calibration", "Mpps delivered", "| null round trip (the floor) | p50 ", "| noise floor (A/A: kernel twice) |", "stall probe"} {
		if !strings.Contains(string(report), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	if strings.Contains(string(report), "No calibration was run") {
		t.Error("report.md says the run was not calibrated")
	}
	assertNodesClean(t, m, client, server)
}

// The peer check through the SSH site: sockperf's server and jrapp on the
// server node, sockperf ping-pong and jrgen on the client node, sockperf's
// per-message log copied back, and nothing left on the nodes.
func TestPeerCheckOverSSH(t *testing.T) {
	bin := binDir(t)
	sshtest.Require(t)
	if _, err := exec.LookPath("sockperf"); err != nil {
		t.Fatalf("sockperf is not installed (apt-get install sockperf; make deps installs it): %v", err)
	}
	tb, client, server := standinTestbed(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := PeerCheck(ctx, PeerOptions{BinDir: bin, ResultsDir: t.TempDir(), Rate: 1000, Duration: time.Second,
		Repetitions: 1, Protocols: []string{"udp"}, NoFloor: true, Testbed: tb, Log: testLog{t}})
	if err != nil {
		t.Fatalf("PeerCheck: %v", err)
	}
	if res.State != "complete" || res.RemoteTestbed == nil || res.Testbed != nil || !res.PMQoS.Held {
		t.Fatalf("state %q (%s), remote testbed %+v, local testbed %+v, PM QoS %+v", res.State, res.Error, res.RemoteTestbed, res.Testbed, res.PMQoS)
	}
	if len(res.Runs) != 2 {
		t.Fatalf("%d runs, want 2 (udp, jrgen and sockperf)", len(res.Runs))
	}
	for _, run := range res.Runs {
		if run.Error != "" || run.Count <= 0 || !(run.P50us > 0) {
			t.Errorf("%s: %d round trips, p50 %.2f µs: %s", run.Tool, run.Count, run.P50us, run.Error)
		}
		if run.Tool == ToolSockperf && (run.Sockperf == nil || run.Sockperf.FullLogSamples == 0) {
			t.Errorf("sockperf: no per-message log came back: %+v", run.Sockperf)
		}
	}
	assertNodesClean(t, Meta{RunRecord: res.RunRecord}, client, server)
}

// assertNodesClean fails on a work dir of the run left on a node (the
// stand-ins share this machine's file system) or a process still running there.
func assertNodesClean(t *testing.T, m Meta, nodes ...*sshtest.Node) {
	t.Helper()
	for node, d := range m.RemoteTestbed.WorkDirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("node %s: work dir %s left behind (%v)", node, d, err)
		}
	}
	assertNoRemoteProcesses(t, nodes...)
}

// assertNoRemoteProcesses waits a few seconds for the nodes' last sessions
// to end, then fails on any process still running there.
func assertNoRemoteProcesses(t *testing.T, nodes ...*sshtest.Node) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, n := range nodes {
		for len(n.Processes()) > 0 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		for _, pid := range n.Processes() {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			t.Errorf("node %s: process %d left running: %s", n.IP, pid, strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
}

// An experiment with an emulated wire is refused on an SSH testbed before
// anything connects: that wire exists between the local namespaces only.
func TestLinkRefusedOverSSH(t *testing.T) {
	e, err := Parse("link.yaml", []byte("name: link-ssh\nlink: delay=1ms\nstacks: [kernel]\nworkload: {rates: [1000], duration: 1s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	tb, err := spec.Parse("tb.yaml", []byte(`name: two
nodes:
  - {name: a, roles: [client], ssh: {host: 192.0.2.1, user: u, key: /nonexistent}, nic: {vdev: "net_af_xdp0,iface=x"}, ip: 198.18.0.1/24}
  - {name: b, roles: [server], ssh: {host: 192.0.2.2, user: u, key: /nonexistent}, nic: {vdev: "net_af_xdp0,iface=y"}, ip: 198.18.0.2/24}
`))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := Run(context.Background(), e, RunOptions{BinDir: t.TempDir(), ResultsDir: t.TempDir(), Testbed: tb})
	if err == nil || !strings.Contains(err.Error(), "link") || dir != "" {
		t.Fatalf("run with link: on an SSH testbed: dir %q, err %v", dir, err)
	}
	// And a vdev the roles cannot open is named.
	tb.Nodes[1].NIC.Vdev = "net_memif0,role=server"
	e.Link = ""
	if _, err := Run(context.Background(), e, RunOptions{BinDir: t.TempDir(), ResultsDir: t.TempDir(), Testbed: tb}); err == nil || !strings.Contains(err.Error(), "net_memif0") {
		t.Fatalf("run with a memif vdev: %v", err)
	}
}

// testLog passes the runner's log lines to the test's log as they come.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Ctrl-C during a run over SSH: the run stops within a bounded time, keeps
// the points it measured, and leaves nothing on the nodes.
func TestInterruptedSSHRunCleansTheNodes(t *testing.T) {
	bin := binDir(t)
	sshtest.Require(t)
	tb, client, server := standinTestbed(t)
	e, err := Parse("interrupt.yaml", []byte(`name: ssh-interrupt
stacks: [joyride, kernel]
workload: {rates: [2000, 3000], duration: 3s, warmup: 200ms, late_threshold: 1ms}
`))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Interrupted while the second point runs: its roles are up on both
	// nodes then.
	log := &afterFirstPoint{t: t, do: cancel}
	start := time.Now()
	dir, err := Run(ctx, e, RunOptions{BinDir: bin, ResultsDir: t.TempDir(), Testbed: tb, Log: log})
	if err == nil {
		t.Fatal("interrupted run returned no error")
	}
	if took := time.Since(start); took > 2*time.Minute {
		t.Errorf("the interrupted run took %v to return", took)
	}
	m := readMeta(t, dir)
	if m.State != "interrupted" || m.Points[0].Status != "ok" {
		t.Fatalf("meta.json: state %q, first point %q (%s)", m.State, m.Points[0].Status, m.Points[0].Reason)
	}
	assertNodesClean(t, m, client, server)
}

// A dropped SSH connection during a point (the nodes' sessions killed, as a
// network failure or a rebooted sshd would): the run ends within a bounded
// time, records the point as failed rather than measured, keeps the points
// before it, and the roles on the nodes end by themselves (their sessions'
// input closed) — nothing is left running or on disk there.
func TestDroppedSSHConnectionEndsTheRoles(t *testing.T) {
	bin := binDir(t)
	sshtest.Require(t)
	tb, client, server := standinTestbed(t)
	e, err := Parse("drop.yaml", []byte(`name: ssh-drop
stacks: [joyride, kernel]
workload: {rates: [2000, 3000], duration: 3s, warmup: 200ms, late_threshold: 1ms}
`))
	if err != nil {
		t.Fatal(err)
	}
	log := &afterFirstPoint{t: t, do: func() { server.KillSessions(); client.KillSessions() }}
	start := time.Now()
	dir, _ := Run(context.Background(), e, RunOptions{BinDir: bin, ResultsDir: t.TempDir(), Testbed: tb, Log: log})
	if took := time.Since(start); took > 3*time.Minute {
		t.Errorf("the run with a dropped connection took %v to return", took)
	}
	if dir == "" {
		t.Fatal("no results directory")
	}
	m := readMeta(t, dir)
	if m.Points[0].Status != "ok" {
		t.Errorf("the point before the drop: %s (%s)", m.Points[0].Status, m.Points[0].Reason)
	}
	failed := 0
	for _, pm := range m.Points[1:] {
		if pm.Status == "failed" {
			failed++
			t.Logf("point %d (%s at %.0f): failed: %s", pm.Index, pm.Stack, pm.Rate, pm.Reason)
		}
	}
	if failed == 0 {
		t.Errorf("no point recorded as failed after the connections dropped: %+v", m.Points)
	}
	assertNodesClean(t, m, client, server)
}

// afterFirstPoint calls do a second after the run's first point is logged.
type afterFirstPoint struct {
	t    *testing.T
	do   func()
	once sync.Once
}

func (a *afterFirstPoint) Write(p []byte) (int, error) {
	a.t.Log(strings.TrimRight(string(p), "\n"))
	if strings.HasPrefix(string(p), "point ") && strings.Contains(string(p), "rep 0:") {
		a.once.Do(func() { time.AfterFunc(time.Second, a.do) })
	}
	return len(p), nil
}
