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
