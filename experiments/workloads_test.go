//go:build dpdk && cgo

package experiments

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/joyride-bench/joyride/analysis"
)

// runInline runs an experiment given as YAML text on a fresh testbed and
// returns its summary.
func runInline(t *testing.T, yaml string) []analysis.Point {
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
	assertTestbedGone(t, readMeta(t, dir))
	return pts
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
// setup time recorded.
func TestConnectWorkloadThroughTheRunner(t *testing.T) {
	pts := runInline(t, `name: connect-inline
stacks: [kernel, joyride]
workload: {mode: connect, protocol: tcp, rates: [300], duration: 1s, warmup: 200ms}
`)
	for _, p := range pts {
		if p.Sent < 200 || p.Received != p.Sent || p.P50us <= 0 || p.P50us > 5000 {
			t.Errorf("%s: %d connections opened, %d established, p50 setup %.1f µs", p.Stack, p.Sent, p.Received, p.P50us)
		}
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
	}
}
