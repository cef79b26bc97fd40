//go:build dpdk && cgo

package experiments

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/joyride-bench/joyride/analysis"
	"github.com/joyride-bench/joyride/testbed/stall"
)

// With the generator's core taken away for 2 ms every 100 ms (a noisier
// machine than any VM measured here), every point below saturation still has
// a result: valid, marked an upper bound, with the late spells that say why,
// and report.md says so. Without the marking the stalls would void the run
// (more than 1% of requests late at the 50 µs threshold).
func TestInjectedStallsMakeUpperBounds(t *testing.T) {
	bin := binDir(t)
	e, err := Load("testdata/stalled.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sp := stall.Spec{CPU: -1, Length: 2 * time.Millisecond, Period: 100 * time.Millisecond}
	dir, err := Run(context.Background(), e, RunOptions{BinDir: bin, ResultsDir: t.TempDir(), SkipCalibration: true, InjectStalls: &sp})
	if err != nil {
		t.Fatal(err)
	}
	m := readMeta(t, dir)
	if s := m.InjectedStalls; s == nil || s.Spec.CPU != DefaultPlacement.Generator || s.Stats.Stalls < 30 {
		t.Fatalf("meta.json injected_stalls %+v, want ≥ 30 stalls on the generator's cpu %d", s, DefaultPlacement.Generator)
	}
	pts, err := analysis.ReadSummaryCSV(filepath.Join(dir, "summary.csv"))
	if err != nil || len(pts) != 2 {
		t.Fatalf("summary.csv: %d points, %v", len(pts), err)
	}
	for _, p := range pts {
		t.Logf("%s %.0f req/s: valid %t, upper bound %t, late %d of %d, p50 %.1f µs, p99 %.1f µs (%s)",
			p.Stack, p.OfferedRPS, p.Valid, p.UpperBound, p.Late, p.Sent, p.P50us, p.P99us, p.Reason)
		if !p.Valid || !p.UpperBound {
			t.Errorf("%.0f req/s: valid %t, upper bound %t (%s); want a valid upper bound", p.OfferedRPS, p.Valid, p.UpperBound, p.Reason)
		}
		// A 2 ms stall leaves at 5k req/s about 10 requests behind each time:
		// far more than 1% of them late.
		if float64(p.Late) < 0.01*float64(p.Sent) {
			t.Errorf("%.0f req/s: %d of %d late: the injected stalls did not reach the generator", p.OfferedRPS, p.Late, p.Sent)
		}
	}
	for _, pm := range m.Points {
		if pm.Generator == nil || pm.Generator.LateSpells == 0 || pm.Generator.LongestLateSpellUs < 1000 || pm.Generator.LongestLateSpellUs > 20000 {
			t.Errorf("point %d: late spells %+v, want spells of about the stall (1–20 ms)", pm.Index, pm.Generator)
		}
	}
	report, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"stalls injected", "2ms every 100ms on cpu 1", "≤"} {
		if !strings.Contains(string(report), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
}
