//go:build dpdk && cgo

package experiments

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/joyride-bench/joyride/analysis"
	"github.com/joyride-bench/joyride/testbed/local"
)

// runInline runs an experiment given as YAML text on a fresh testbed and
// returns its summary.
func runInline(t *testing.T, yaml string) []analysis.Point {
	t.Helper()
	pts, _ := runInlineDir(t, yaml)
	return pts
}

// runInlineDir is runInline that also returns the run directory.
func runInlineDir(t *testing.T, yaml string) ([]analysis.Point, string) {
	t.Helper()
	bin := binDir(t)
	e, err := Parse("inline.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := Run(context.Background(), e, RunOptions{BinDir: bin, ResultsDir: t.TempDir(), SkipCalibration: true})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	pts, err := analysis.ReadSummaryCSV(filepath.Join(dir, "summary.csv"))
	if err != nil {
		t.Fatal(err)
	}
	m := readMeta(t, dir)
	assertTestbedGone(t, m)
	// A failed point's reason and its logs' tails, for the test that then
	// fails on its numbers (CI gives no other way to see them).
	for _, pm := range m.Points {
		if pm.Status == "failed" {
			t.Logf("point %d (%s at %v) failed: %s", pm.Index, pm.Stack, pm.Rate, pm.Reason)
			if pm.ServerLog != "" {
				t.Logf("server log: …%s", pm.ServerLog[max(0, len(pm.ServerLog)-2000):])
			}
		}
	}
	return pts, dir
}

// TCP load from the DPDK generator over 16 connections, through the runner.
func TestTCPWorkloadThroughTheRunner(t *testing.T) {
	pts := runInline(t, `name: tcp-inline
stacks: [kernel, joyride]
workload: {protocol: tcp, connections: 16, rates: [3000], duration: 1s, warmup: 200ms}
`)
	for _, p := range pts {
		if p.Protocol != "tcp" || p.Sent == 0 || p.Received != p.Sent || p.Lost != 0 {
			t.Errorf("%s over %s: sent %d received %d lost %d", p.Stack, p.Protocol, p.Sent, p.Received, p.Lost)
		}
	}
}

// Synthetic requests take at least their service time: with a constant 300 µs
// the median round trip cannot be shorter.
func TestSyntheticServiceTimeShowsInLatency(t *testing.T) {
	pts := runInline(t, `name: synthetic-inline
stacks: [kernel]
app: synthetic
workload: {service: "constant:300us", rates: [1000], duration: 1s, warmup: 200ms}
`)
	for _, p := range pts {
		if p.Received == 0 || p.P50us < 300 || p.P50us > 5000 {
			t.Errorf("%s: %d replies, p50 %.1f µs for a 300 µs service time", p.Stack, p.Received, p.P50us)
		}
	}
}

// Connection setup through the runner: every connection established, each
// setup time recorded, and the time to the echo's first byte in its own log
// and in report.md.
func TestConnectWorkloadThroughTheRunner(t *testing.T) {
	pts, dir := runInlineDir(t, `name: connect-inline
stacks: [kernel, joyride]
workload: {mode: connect, protocol: tcp, rates: [300], duration: 1s, warmup: 200ms}
`)
	for _, p := range pts {
		if p.Sent < 200 || p.Received != p.Sent || p.P50us <= 0 || p.P50us > 5000 {
			t.Errorf("%s: %d connections opened, %d established, p50 setup %.1f µs", p.Stack, p.Sent, p.Received, p.P50us)
		}
		ttfb, err := analysis.ReadHlog(filepath.Join(dir, strings.TrimSuffix(p.Hlog, ".hlog")+".ttfb.hlog"))
		if err != nil {
			t.Fatal(err)
		}
		if n := ttfb.TotalCount(); n < int64(p.Received)*99/100 || float64(ttfb.ValueAtQuantile(50))/1e3 <= p.P50us {
			t.Errorf("%s: %d first bytes for %d connections, p50 %.1f µs (setup p50 %.1f µs)", p.Stack, n, p.Received,
				float64(ttfb.ValueAtQuantile(50))/1e3, p.P50us)
		}
	}
	report, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil || !strings.Contains(string(report), "## Time to first byte") || !strings.Contains(string(report), "| joyride | 300 |") {
		t.Errorf("report.md has no time-to-first-byte table for joyride: %v\n%s", err, report)
	}
}

// A closed loop over a sweep of sizes through the runner: every point keeps
// its window, replies come back whole at each size, the throughput is the
// bytes answered, and the msg-size figures are drawn.
func TestClosedLoopSizeSweepThroughTheRunner(t *testing.T) {
	pts, dir := runInlineDir(t, `name: msg-size-inline
stacks: [kernel, joyride]
workload: {protocol: tcp, connections: 2, sizes: [64, 16384], windows: [2], duration: 500ms, warmup: 200ms}
`)
	if len(pts) != 4 {
		t.Fatalf("%d points, want 4", len(pts))
	}
	for _, p := range pts {
		if p.Window != 2 || (p.Size != 64 && p.Size != 16384) || p.OfferedRPS != 0 || p.Sent < 100 || p.Received != p.Sent || !p.Valid {
			t.Errorf("%s %d B window %d: offered %v sent %d received %d valid %v (%s)", p.Stack, p.Size, p.Window, p.OfferedRPS,
				p.Sent, p.Received, p.Valid, p.Reason)
		}
		// The throughput is the answered bytes over the measured second half.
		if want := p.AchievedRPS * float64(p.Size) * 8 / 1e9; math.Abs(p.Gbps-want) > 0.01*want+1e-4 {
			t.Errorf("%s %d B: %.4f Gbit/s, %.0f replies/s of %d B make %.4f", p.Stack, p.Size, p.Gbps, p.AchievedRPS, p.Size, want)
		}
	}
	for _, f := range []string{"msg-size-throughput.png", "msg-size-latency.pdf", "cdf-w2-64B.svg"} {
		if _, err := os.Stat(filepath.Join(dir, "plots", f)); err != nil {
			t.Error(err)
		}
	}
	report, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil || !strings.Contains(string(report), "### kernel (tcp/echo, 16384 B)") || !strings.Contains(string(report), "| window 2 |") {
		t.Errorf("report.md lacks the per-size closed-loop tables: %v\n%s", err, report)
	}
}

// A short soak: connection churn on Joyride must not grow joyrided's or
// jrapp's memory, descriptors or threads beyond a small allowance, and every
// connection is set up.
func TestSoakChurnLeaksNothing(t *testing.T) {
	bin := binDir(t)
	e, err := Parse("inline.yaml", []byte(`name: soak-inline
stacks: [joyride]
workload: {mode: connect, protocol: tcp, rates: [400], duration: 5s, warmup: 500ms}
`))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := Run(context.Background(), e, RunOptions{BinDir: bin, ResultsDir: t.TempDir(), SkipCalibration: true})
	if err != nil {
		t.Fatal(err)
	}
	m := readMeta(t, dir)
	pm := m.Points[0]
	if pm.Generator == nil || pm.Generator.Received < 1800 || pm.Generator.Lost != 0 {
		t.Fatalf("connections: %+v", pm.Generator)
	}
	// The local testbed puts joyrided and jrapp on one core: the engine
	// must have found that out and said so in meta.json.
	if pm.Engine == nil || pm.Engine.CorePolicy != "shared" {
		t.Errorf("meta.json engine %+v: want core_policy shared (joyrided and jrapp share the server core)", pm.Engine)
	}
	for _, name := range []string{"jrapp", "daemon"} {
		r, ok := pm.Resources[name]
		if !ok || r[0].RSSKiB == 0 || r[1].RSSKiB == 0 {
			t.Fatalf("%s: no resources sampled: %+v", name, pm.Resources)
		}
		t.Logf("%s: %+v -> %+v", name, r[0], r[1])
		if grow := r[1].RSSKiB - r[0].RSSKiB; grow > 32<<10 {
			t.Errorf("%s grew by %d KiB over %d connections", name, grow, pm.Generator.Received)
		}
		if r[1].FDs > r[0].FDs+4 || r[1].Threads > r[0].Threads+4 {
			t.Errorf("%s: descriptors %d -> %d, threads %d -> %d", name, r[0].FDs, r[1].FDs, r[0].Threads, r[1].Threads)
		}
		// A goroutine per connection that never ended would show here: 2000
		// connections came and went.
		if r[0].Goroutines == 0 || r[1].Goroutines == 0 {
			t.Errorf("%s did not report its goroutines: %+v", name, r)
		} else if r[1].Goroutines > r[0].Goroutines+20 {
			t.Errorf("%s: goroutines %d -> %d over %d connections", name, r[0].Goroutines, r[1].Goroutines, pm.Generator.Received)
		}
		if r[0].HeapKiB == 0 || r[1].HeapKiB == 0 {
			t.Errorf("%s did not report its heap: %+v", name, r)
		} else if r[1].HeapKiB > r[0].HeapKiB+16<<10 {
			t.Errorf("%s: Go heap %d -> %d KiB over %d connections", name, r[0].HeapKiB, r[1].HeapKiB, pm.Generator.Received)
		}
	}
	// report.md shows the same, so a soak's reader sees flatness without
	// opening meta.json.
	report, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	section := string(report)
	if i := strings.Index(section, "## Server-side resources"); i < 0 {
		t.Fatalf("report.md has no server-side resources section:\n%s", report)
	} else {
		section = section[i:]
	}
	for _, name := range []string{"jrapp", "daemon"} {
		r := pm.Resources[name]
		row := fmt.Sprintf("| joyride | %s | 1 | %d → %d | ", name, r[0].Goroutines, r[1].Goroutines)
		if !strings.Contains(section, row) {
			t.Errorf("report.md's resources lack %q:\n%s", row, section)
		}
	}
}

// Debian's unmodified memcached, redis-server and nginx as the application,
// on the kernel's sockets and on Joyride through the preload shim, driven by
// the generator speaking their protocols: every request answered, the gets
// hit the keys stored before the run (the sets and gets both travel), every
// HTTP reply is a 200 with the whole file, and on Joyride the program itself
// attached to joyrided (it did not fall back to the kernel).
func TestUnmodifiedProgramsThroughTheRunner(t *testing.T) {
	for _, c := range []struct{ app, workload, attached string }{
		{"memcached", `memcached: {keys: 2000, popularity: "zipf:0.99", get_fraction: 0.7, value_size: 300}`, "name=memcached"},
		{"redis", `redis: {keys: 2000, popularity: "zipf:0.99", get_fraction: 0.7, value_size: 300}`, "name=redis-server"},
		{"nginx", `size: 300`, "name=nginx"},
	} {
		t.Run(c.app, func(t *testing.T) {
			pts, dir := runInlineDir(t, `name: `+c.app+`-inline
stacks: [kernel, joyride]
app: `+c.app+`
workload:
  protocol: tcp
  connections: 4
  `+c.workload+`
  rates: [2000]
  duration: 1s
  warmup: 200ms
`)
			if len(pts) != 2 {
				t.Fatalf("%d points, want 2", len(pts))
			}
			for _, p := range pts {
				if p.App != c.app || p.Size != 300 || p.Sent < 1500 || p.Received != p.Sent || p.Lost != 0 {
					t.Errorf("%s: %+v", p.Stack, p)
				}
			}
			for _, pm := range readMeta(t, dir).Points {
				g := pm.Generator
				if g == nil || g.Unmatched != 0 || g.Misses != 0 {
					t.Fatalf("%s generator: %+v", pm.Stack, g)
				}
				if c.app != "nginx" {
					// About 70% of the measured requests are gets, and every one hit.
					if share := float64(g.Hits) / float64(g.Received); share < 0.6 || share > 0.8 {
						t.Errorf("%s: %d hits of %d replies: %.2f, want about 0.7 gets", pm.Stack, g.Hits, g.Received, share)
					}
				}
				if pm.Stack == "joyride" {
					logs, _ := filepath.Glob(filepath.Join(dir, "logs", fmt.Sprintf("point%03d_*joyrided.log", pm.Index)))
					var all []byte
					for _, l := range logs {
						b, _ := os.ReadFile(l)
						all = append(all, b...)
					}
					if !strings.Contains(string(all), "application attached") || !strings.Contains(string(all), c.attached) {
						t.Errorf("joyrided's log does not show %s attaching (%v):\n%s", c.app, logs, all)
					}
				}
			}
		})
	}
}

// The generator on two cores: two engines, one per queue of a two-queue veth,
// their results merged into one point; the kernel answers on both queues.
func TestMultiCoreGeneratorThroughTheRunner(t *testing.T) {
	bin := binDir(t)
	e, err := Parse("inline.yaml", []byte("name: multi-inline\nstacks: [kernel]\nworkload: {rates: [4000], duration: 1s, warmup: 200ms}\n"))
	if err != nil {
		t.Fatal(err)
	}
	pl := Placement{Generator: 1, Server: 0, GeneratorExtra: []int{0}}
	dir, err := Run(context.Background(), e, RunOptions{BinDir: bin, ResultsDir: t.TempDir(), SkipCalibration: true, Placement: &pl})
	if err != nil {
		t.Fatal(err)
	}
	m := readMeta(t, dir)
	assertTestbedGone(t, m)
	g := m.Points[0].Generator
	if g == nil || g.Queues != 2 || len(g.Engines) != 2 || g.Sent < 3000 || g.Received != g.Sent {
		t.Fatalf("generator: %+v", g)
	}
	for i, eng := range g.Engines {
		if eng.Sent == 0 {
			t.Errorf("engine %d sent nothing: %+v", i, eng)
		}
	}
	// Where several engines cannot work, the run is refused before it starts.
	j, _ := Parse("inline.yaml", []byte("name: multi-inline\nstacks: [joyride]\nworkload: {rates: [4000]}\n"))
	if _, err := Run(context.Background(), j, RunOptions{BinDir: bin, ResultsDir: t.TempDir(), SkipCalibration: true, Placement: &pl}); err == nil || !strings.Contains(err.Error(), `stack "joyride" lacks capability multi-queue`) {
		t.Fatalf("joyride with 2 generator cores: %v", err)
	}
}

// disturbFirstPoint is a progress writer that, once the first point's
// generator has run for a while, sends a signal to one of the run's
// processes: SIGSTOP to the jrapp serving it (a hung server), SIGKILL to the
// generator (a crash). It finds them in the run's testbed's process records,
// never by name across the machine, where other runs' roles may be.
type disturbFirstPoint struct {
	results string // the run's results root, whose meta.json names the testbed
	match   string // a word of the victim's command line ("/jrapp ", "/jrgen ")
	sig     syscall.Signal
	after   time.Duration // from the generator's start
	once    sync.Once
	mu      sync.Mutex
	pid     int
	err     error
}

func (d *disturbFirstPoint) Write(p []byte) (int, error) {
	if strings.Contains(string(p), "point 1/") {
		d.once.Do(func() { go d.disturb() })
	}
	return len(p), nil
}

func (d *disturbFirstPoint) disturb() {
	pid, err := d.find()
	if err == nil {
		err = syscall.Kill(pid, d.sig)
	}
	d.mu.Lock()
	d.pid, d.err = pid, err
	d.mu.Unlock()
}

// find waits for the first point's generator, then after d.after returns
// the run's process whose command line has d.match.
func (d *disturbFirstPoint) find() (int, error) {
	deadline := time.Now().Add(30 * time.Second)
	var tb *local.Testbed
	find := func(word string) int {
		if tb == nil {
			metas, _ := filepath.Glob(filepath.Join(d.results, "*", "2*", "meta.json"))
			if len(metas) == 1 {
				b, _ := os.ReadFile(metas[0])
				var m Meta
				if json.Unmarshal(b, &m) == nil && m.Testbed != nil {
					tb = m.Testbed
				}
			}
		}
		if tb == nil {
			return 0
		}
		for _, p := range tb.Running() {
			if strings.Contains(strings.Join(p.Argv, " ")+" ", word) {
				return p.PID
			}
		}
		return 0
	}
	for find("/jrgen ") == 0 {
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no generator of the run found within 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(d.after)
	if pid := find(d.match); pid > 0 {
		return pid, nil
	}
	return 0, fmt.Errorf("no process of the run matching %q", d.match)
}

func (d *disturbFirstPoint) target() (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pid, d.err
}

// runDisturbed runs experiment e (kernel points in sequence) with the first
// point disturbed by d, and checks that the run went on: the second point
// succeeded, the testbed is gone.
func runDisturbed(t *testing.T, e *Experiment, d *disturbFirstPoint) (*Meta, string, time.Duration) {
	bin := binDir(t)
	d.results = t.TempDir()
	start := time.Now()
	dir, err := Run(context.Background(), e, RunOptions{BinDir: bin, ResultsDir: d.results, SkipCalibration: true, Progress: d})
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if pid, err := d.target(); pid == 0 || err != nil {
		t.Fatalf("disturbing the first point: pid %d: %v", pid, err)
	}
	m := readMeta(t, dir)
	assertTestbedGone(t, m)
	if second := m.Points[1]; second.Status != "ok" || second.Generator == nil || second.Generator.Received == 0 {
		t.Errorf("the point after the disturbed one: %+v", second)
	}
	return &m, dir, took
}

// A generator that crashes mid-point (SIGKILL) fails that point with the
// reason, and the run goes on.
func TestCrashedGeneratorFailsItsPointOnly(t *testing.T) {
	e, err := Parse("inline.yaml", []byte("name: disturbed-inline\nstacks: [kernel]\norder: sequential\nworkload: {rates: [1000, 2000], duration: 1s, warmup: 200ms}\n"))
	if err != nil {
		t.Fatal(err)
	}
	m, _, _ := runDisturbed(t, e, &disturbFirstPoint{match: "/jrgen ", sig: syscall.SIGKILL, after: 500 * time.Millisecond})
	if first := m.Points[0]; first.Status != "failed" || !strings.Contains(first.Reason, "generator") || !strings.Contains(first.Reason, "killed") {
		t.Errorf("the point whose generator crashed: status %q reason %q", first.Status, first.Reason)
	}
}

// Several application instances on one stack: each serves its share of the
// connections (on Joyride all attach to the one joyrided), and the server
// side's memory is counted across all of them.
func TestInstancesThroughTheRunner(t *testing.T) {
	pts, dir := runInlineDir(t, `name: density-inline
stacks: [kernel, joyride]
workload: {protocol: tcp, connections: 6, instances: [1, 3], rates: [2000], duration: 500ms, warmup: 200ms}
`)
	mem := map[string]map[int]float64{"kernel": {}, "joyride": {}}
	for _, p := range pts {
		if (p.Instances != 1 && p.Instances != 3) || p.Sent < 800 || p.Received != p.Sent || p.ServerMemMiB <= 0 {
			t.Errorf("%s with %d instances: sent %d received %d memory %.1f MiB", p.Stack, p.Instances, p.Sent, p.Received, p.ServerMemMiB)
		}
		mem[p.Stack][p.Instances] = p.ServerMemMiB
	}
	for s, m := range mem {
		if m[3] <= m[1] {
			t.Errorf("%s: %.1f MiB with 3 instances, %.1f with 1", s, m[3], m[1])
		}
	}
	m := readMeta(t, dir)
	for _, pm := range m.Points {
		if pm.Instances == 3 {
			for _, name := range []string{"jrapp", "jrapp2", "jrapp3"} {
				if r, ok := pm.Resources[name]; !ok || r[1].PSSKiB == 0 {
					t.Errorf("%s point: no resources of %s: %+v", pm.Stack, name, pm.Resources)
				}
			}
		}
	}
	for _, f := range []string{"density-latency.png", "density-memory.pdf"} {
		if _, err := os.Stat(filepath.Join(dir, "plots", f)); err != nil {
			t.Error(err)
		}
	}
}

// One experiment over [udp, tcp]: each stack runs each protocol it serves
// (null: udp only), the points say which, and the figures keep them apart.
func TestProtocolListThroughTheRunner(t *testing.T) {
	pts, dir := runInlineDir(t, `name: protocols-inline
stacks: [kernel, "null"]
workload: {protocol: [udp, tcp], connections: 4, rates: [2000], duration: 500ms, warmup: 200ms, late_threshold: 1ms}
plots: [{kind: latency-vs-load}, {kind: cdf}]
`)
	var got []string
	for _, p := range pts {
		got = append(got, p.Stack+"/"+p.Protocol)
		if p.Received == 0 || p.Received != p.Sent {
			t.Errorf("%s over %s: sent %d received %d", p.Stack, p.Protocol, p.Sent, p.Received)
		}
		if !strings.Contains(p.Hlog, "_"+p.Protocol+"_") {
			t.Errorf("%s over %s logged to %s", p.Stack, p.Protocol, p.Hlog)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"kernel/tcp", "kernel/udp", "null/udp"}) {
		t.Fatalf("points %v", got)
	}
	// Every curve of the CDF (valid points only) names its protocol.
	svg, err := os.ReadFile(filepath.Join(dir, "plots", "cdf-2000.svg"))
	if err != nil {
		t.Fatal(err)
	}
	labels := regexp.MustCompile(`>(kernel|null)( udp| tcp)?<`).FindAllStringSubmatch(string(svg), -1)
	if len(labels) == 0 {
		t.Fatal("no curve in the CDF")
	}
	for _, l := range labels {
		if l[2] == "" {
			t.Errorf("CDF curve %q does not say its protocol", l[1])
		}
	}
}

// An experiment with a link runs through the emulated wire: 1 ms each way
// shows in every round trip, and the wire's counters land in meta.json.
func TestLinkThroughTheRunner(t *testing.T) {
	pts, dir := runInlineDir(t, `name: link-inline
link: delay=1ms
stacks: [kernel]
workload: {rates: [1000], duration: 1s, warmup: 200ms}
`)
	p := pts[0]
	if p.Received == 0 || p.Received != p.Sent || p.P50us < 2000 || p.P50us > 2500 {
		t.Fatalf("through a 1 ms wire: received %d of %d, p50 %.1f µs", p.Received, p.Sent, p.P50us)
	}
	m := readMeta(t, dir)
	if len(m.Wire) == 0 || !strings.Contains(string(m.Wire), "forwarded") {
		t.Fatalf("meta.json wire counters: %s", m.Wire)
	}
	if m.Testbed.Wire == nil {
		t.Fatal("the testbed in meta.json has no wire")
	}
}

// Ten thousand TCP connections from the generator to each stack that serves
// TCP on the local testbed: all established, every request answered, and the
// generator's memory recorded.
func TestTenThousandConnections(t *testing.T) {
	pts, dir := runInlineDir(t, `name: conns-inline
stacks: [kernel, joyride]
workload: {protocol: tcp, connections: 10000, rates: [2000], duration: 500ms, warmup: 200ms}
`)
	for _, p := range pts {
		if p.Sent < 800 || p.Received != p.Sent || p.Lost != 0 {
			t.Errorf("%s: sent %d received %d lost %d", p.Stack, p.Sent, p.Received, p.Lost)
		}
	}
	for _, pm := range readMeta(t, dir).Points {
		g := pm.Generator
		if g == nil || g.Conns != 10000 || g.MaxRSSKiB == 0 || g.ConnFailures != 0 {
			t.Fatalf("%s: generator %+v", pm.Stack, g)
		}
		t.Logf("%s: 10000 connections set up in %.2f s, generator peak memory %d MiB", pm.Stack, g.ConnectSeconds, g.MaxRSSKiB>>10)
	}
}
