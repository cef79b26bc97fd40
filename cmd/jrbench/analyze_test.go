package main

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/joyride-bench/joyride/analysis"
	"github.com/joyride-bench/joyride/experiments"
)

// writeHlog writes an interval log at dir/rel with one interval per level:
// 500 latencies uniform in ±10% around the level (µs).
func writeHlog(t *testing.T, dir, rel string, levels []float64, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 42))
	start := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	var ivs []*hdrhistogram.Histogram
	for i, level := range levels {
		h := analysis.NewHistogram()
		h.SetStartTimeMs(start.UnixMilli() + int64(i)*1000)
		h.SetEndTimeMs(start.UnixMilli() + int64(i+1)*1000)
		for range 500 {
			if err := h.RecordValue(int64(level * 1000 * (0.9 + 0.2*rng.Float64()))); err != nil {
				t.Fatal(err)
			}
		}
		ivs = append(ivs, h)
	}
	var buf bytes.Buffer
	if err := analysis.WriteHlog(&buf, start, ivs); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// steadyLevels returns n levels around base with 1% noise.
func steadyLevels(n int, base float64, seed uint64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 7))
	l := make([]float64, n)
	for i := range l {
		l[i] = base * (1 + 0.01*rng.NormFloat64())
	}
	return l
}

// makeRun builds a results directory by hand: kernel and null at two rates,
// 45 one-second intervals each except one short point, a drifting point, a
// failed point without a log, the old summary.csv columns only (no CIs, no
// checks), a meta.json with a calibration and one point's generator
// counters, and a report.md with a stale calibration section and one added by
// hand.
func makeRun(t *testing.T, dir string, scale float64) {
	t.Helper()
	type pt struct {
		stack string
		rate  float64
		base  float64
		n     int
		drift bool
	}
	var rows []string
	for i, p := range []pt{
		{"kernel", 1000, 30, 45, false},
		{"kernel", 5000, 40, 45, true},
		{"null", 1000, 8, 45, false},
		{"null", 5000, 9, 2, false},
	} {
		rel := filepath.Join("hist", fmt.Sprintf("%s_udp_%.0f_rep0.hlog", p.stack, p.rate))
		levels := steadyLevels(p.n, p.base*scale, uint64(i)+uint64(scale*100))
		if p.drift {
			for k := range levels {
				levels[k] *= math.Pow(1.03, float64(k))
			}
		}
		writeHlog(t, dir, rel, levels, uint64(i))
		sent := int(p.rate) * p.n
		// Latency columns deliberately wrong: analyze recomputes them from the logs.
		rate := strconv.FormatFloat(p.rate, 'f', 2, 64)
		rows = append(rows, strings.Join([]string{p.stack, "udp", "echo", rate, rate,
			strconv.Itoa(sent), strconv.Itoa(sent), "0", "0", "1.00", "1.00", "1.00", "1.00", "1.00", "0", "true", "", rel}, ","))
	}
	rows = append(rows, "kernel,udp,echo,9000.00,0.00,0,0,0,0,0.00,0.00,0.00,0.00,0.00,0,false,jrgen: exit status 1,hist/kernel_udp_9000_rep0.hlog")
	csv := "stack,protocol,app,offered_rps,achieved_rps,sent,received,lost,late,p50_us,p90_us,p99_us,p999_us,max_us,rep,valid,reason,hlog\n" +
		strings.Join(rows, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "summary.csv"), []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	meta := `{"experiment": {"name": "offline", "description": "Built by hand.", "app": "echo",
  "workload": {"protocol": "udp", "size": 64, "schedule": "poisson", "duration": "45s", "warmup": "1s", "late_threshold": "50µs"},
  "slo": {"p99": "100µs"}, "plots": [{"kind": "latency-vs-load"}, {"kind": "cdf", "rate": 5000}]},
 "run_id": "20260506-070809-abcd", "state": "complete", "commit": "abc123", "host": {"hostname": "laptop"},
 "order": "interleaved", "seed": 1, "generator_driver": "af_xdp", "unknown_later_field": [1, 2],
 "points": [{"index": 0, "stack": "kernel", "rate": 1000, "rep": 0, "status": "ok",
   "generator": {"arrival_a2": 0.8, "arrival_n": 1000, "max_rss_kib": 204800}}],
 "calibration": {"seconds": 12.5, "rate": 10000, "wire": {"sent_pps": 1200000, "delivered_pps": 1190000, "frame_bytes": 60, "seconds": 1},
   "aa": {"noise_p50_us": 0.5, "noise_p99_us": 2}}}`
	if err := os.WriteFile(filepath.Join(dir, "meta.json"), []byte(meta), 0o644); err != nil {
		t.Fatal(err)
	}
	report := "# Experiment offline\n\n## Run\n\n| key | value |\n\n## Calibration\n\nWire limit: 1.2 Mpps.\n\n## Cabling\n\nSwapped on Tuesday.\n\n## Results\n\nold\n"
	if err := os.WriteFile(filepath.Join(dir, "report.md"), []byte(report), 0o644); err != nil {
		t.Fatal(err)
	}
}

// runJrbench runs the built jrbench with args and returns stdout, stderr and
// the exit status.
func runJrbench(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(jrbench(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), errb.String(), 0
	case errors.As(err, &ee):
		return out.String(), errb.String(), ee.ExitCode()
	default:
		t.Fatal(err)
		return "", "", -1
	}
}

func TestAnalyzeRecomputesFromLogs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "copied-from-cloudlab")
	makeRun(t, dir, 1)
	stdout, stderr, code := runJrbench(t, "analyze", dir)
	if code != 0 {
		t.Fatalf("analyze: exit %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "4 points recomputed from hist/ (1 kept as they were); checks: 1 failed, 1 too few intervals") {
		t.Errorf("stderr: %s", stderr)
	}
	pts, err := analysis.ReadSummaryCSV(filepath.Join(dir, "summary.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 5 {
		t.Fatalf("%d points", len(pts))
	}
	k := pts[0]
	if math.Abs(k.P50us-30) > 1 || !k.HasCI() || !(k.P50Lo <= k.P50us && k.P50us <= k.P50Hi) || k.P50Hi-k.P50Lo > 1 ||
		k.Checks == nil || k.Checks.Intervals != 45 || k.Checks.Failed() || k.Checks.Verdict != "ok" {
		t.Errorf("kernel@1000: %+v checks %+v", k, k.Checks)
	}
	if d := pts[1]; d.Checks == nil || !d.Checks.Failed() {
		t.Errorf("drifting kernel@5000 passes its checks: %+v", d.Checks)
	}
	if s := pts[3]; s.Checks == nil || s.Checks.Verdict != "too few intervals (2)" {
		t.Errorf("null@5000: %+v", s.Checks)
	}
	if f := pts[4]; f.Valid || f.Checks != nil || f.HasCI() || f.Reason != "jrgen: exit status 1" {
		t.Errorf("failed point changed: %+v", f)
	}
	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# Experiment offline\n", "Built by hand.", "| commit | abc123 |", "## Calibration\n\n", "## Cabling\n\nSwapped on Tuesday.\n",
		"p50 95% CI (µs)", "## Validity checks\n", "**1 of 4 checked points fail a check**",
		"**FAIL: stationarity not shown", "recomputed from hist/ by `jrbench analyze`", "A/A test: p50 ±0.50 µs",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	if strings.Contains(string(md), "\nold\n") {
		t.Error("the old Results section was carried over")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}

	// Analysing again gives the same numbers (the new columns read back).
	before, _ := os.ReadFile(filepath.Join(dir, "summary.csv"))
	if _, stderr, code := runJrbench(t, "analyze", dir); code != 0 {
		t.Fatalf("second analyze: %d %s", code, stderr)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "summary.csv"))
	if !bytes.Equal(before, after) {
		t.Errorf("summary.csv changed on a second analyze:\n%s\n---\n%s", before, after)
	}
	if md2, _ := os.ReadFile(filepath.Join(dir, "report.md")); strings.Count(string(md2), "## Calibration") != 1 || strings.Count(string(md2), "## Cabling") != 1 {
		t.Error("a section duplicated by a second analyze")
	}

	// The arrival check cannot be recomputed from the logs: analyze keeps
	// what summary.csv holds, and a rejection marks the point.
	pts[0].Checks.SetArrival(7.5, 1000)
	if err := analysis.WriteSummaryCSV(filepath.Join(dir, "summary.csv"), pts); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := runJrbench(t, "analyze", dir); code != 0 || !strings.Contains(stderr, "checks: 2 failed") {
		t.Fatalf("analyze after an arrival check: %d %s", code, stderr)
	}
	pts, err = analysis.ReadSummaryCSV(filepath.Join(dir, "summary.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if c := pts[0].Checks; c == nil || c.Arrival.A2 != 7.5 || c.Arrival.N != 1000 || c.IntervalMs != 1000 ||
		c.Verdict != "FAIL: arrivals not Poisson (A²=7.50 > 3.857 over 1000 gaps)" {
		t.Errorf("kernel@1000 after analyze: %+v", c)
	}
	if md3, _ := os.ReadFile(filepath.Join(dir, "report.md")); !strings.Contains(string(md3), "| kernel | 2 | 1 of 2 | 1 of 2 | 0 of 1 (1 not run) | 2 of 2 |") {
		t.Errorf("per-stack checks in report.md:\n%s", md3)
	}
}

// analyze's report is the runner's (experiments.BuildReport): the calibration
// section and the notes come from meta.json, not from the old report.md,
// whose sections are carried over only when nothing builds them.
func TestAnalyzeReportIsTheRunners(t *testing.T) {
	dir := t.TempDir()
	makeRun(t, dir, 1)
	pts, err := readRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := runReport(dir, pts)
	if err != nil {
		t.Fatal(err)
	}
	m, err := readMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The runner's report of the same meta.json has the same sections and
	// notes, less the one analyze adds and the section carried over.
	want := experiments.BuildReport(&m.Meta, pts)
	if len(rep.Notes) != len(want.Notes)+1 || !slices.Equal(rep.Notes[:len(want.Notes)], want.Notes) {
		t.Errorf("notes:\n%q\nthe runner's:\n%q", rep.Notes, want.Notes)
	}
	if len(rep.Sections) != len(want.Sections)+1 || !slices.Equal(rep.Sections[:len(want.Sections)], want.Sections) {
		t.Errorf("sections:\n%q\nthe runner's:\n%q", rep.Sections, want.Sections)
	}
	out := filepath.Join(dir, "report.md")
	if err := analysis.WriteReport(out, rep); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(out)
	for _, want := range []string{
		"# Experiment offline\n",
		"## Calibration\n\nMeasured at the start of this run (12.5 s)", "| 1.200 Mpps sent, 1.190 Mpps delivered |",
		"## Cabling\n\nSwapped on Tuesday.\n",
		"Arrival check (Anderson–Darling", "The generator's peak resident memory was 200 MiB (kernel at 1000 req/s, rep 0;",
		"A/A test: p50 ±0.50 µs",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	if strings.Contains(string(md), "Wire limit: 1.2 Mpps.") {
		t.Error("the old calibration section was carried over")
	}
}

func TestPlotRedrawsFigures(t *testing.T) {
	dir := t.TempDir()
	makeRun(t, dir, 1)
	if _, stderr, code := runJrbench(t, "analyze", dir); code != 0 {
		t.Fatalf("analyze: %d %s", code, stderr)
	}
	if _, stderr, code := runJrbench(t, "plot", dir); code != 0 {
		t.Fatalf("plot: %d %s", code, stderr)
	}
	for _, base := range []string{"latency-vs-load", "cdf-1000", "cdf-5000"} {
		for _, ext := range []string{".png", ".svg", ".pdf"} {
			st, err := os.Stat(filepath.Join(dir, "plots", base+ext))
			if err != nil || st.Size() < 1000 {
				t.Errorf("%s%s: %v", base, ext, err)
			}
		}
	}
	svg, _ := os.ReadFile(filepath.Join(dir, "plots", "latency-vs-load.svg"))
	if !bytes.Contains(svg, []byte("95% CI")) || !bytes.Contains(svg, []byte("offline: udp echo, 64 B")) {
		t.Error("latency-vs-load.svg lacks the CI legend or the title")
	}
}

func TestCompareRuns(t *testing.T) {
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	makeRun(t, a, 1)
	makeRun(t, b, 1.5) // every latency 50% higher
	for _, d := range []string{a, b} {
		if _, stderr, code := runJrbench(t, "analyze", d); code != 0 {
			t.Fatalf("analyze %s: %d %s", d, code, stderr)
		}
	}
	out, stderr, code := runJrbench(t, "compare", a, b)
	if code != 0 {
		t.Fatalf("compare: exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"- A: " + a + "\n- B: " + b + "\n",
		"| stack | protocol/app | offered (req/s) | p50 A | p50 B | Δp50 | p99 A | p99 B | Δp99 |",
		"| kernel | udp/echo | 1000 | 30.",
		"(outside CIs)**",
		"| kernel | udp/echo | 9000 | no valid rep. | no valid rep. | — |",
		"4 of 4 points measured by both runs differ outside the CIs",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("compare output lacks %q:\n%s", want, out)
		}
	}
	// A run compared with itself: no difference is outside the CIs.
	out, _, code = runJrbench(t, "compare", a, a)
	if code != 0 || !strings.Contains(out, "0 of 4 points measured by both runs differ outside the CIs") {
		t.Errorf("self-comparison: exit %d\n%s", code, out)
	}
}

func TestAnalysisCommandErrors(t *testing.T) {
	tmp := t.TempDir()
	good := filepath.Join(tmp, "good")
	makeRun(t, good, 1)
	badLog := filepath.Join(tmp, "badlog")
	makeRun(t, badLog, 1)
	os.WriteFile(filepath.Join(badLog, "hist", "null_udp_1000_rep0.hlog"), []byte("#[Histogram log format version 1.3]\ngarbage here\n"), 0o644)
	badCSV := filepath.Join(tmp, "badcsv")
	os.MkdirAll(badCSV, 0o755)
	os.WriteFile(filepath.Join(badCSV, "summary.csv"), []byte("stack,protocol\nkernel,udp\n"), 0o644)
	badMeta := filepath.Join(tmp, "badmeta")
	makeRun(t, badMeta, 1)
	os.WriteFile(filepath.Join(badMeta, "meta.json"), []byte("{not json"), 0o644)
	noLog := filepath.Join(tmp, "nolog")
	makeRun(t, noLog, 1)
	os.Remove(filepath.Join(noLog, "hist", "kernel_udp_1000_rep0.hlog"))
	file := filepath.Join(tmp, "file")
	os.WriteFile(file, nil, 0o644)

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"analyze", filepath.Join(tmp, "missing")}, filepath.Join(tmp, "missing")},
		{[]string{"analyze", file}, file + ": not a directory"},
		{[]string{"analyze", filepath.Join(tmp, "empty-but-missing-csv")}, "empty-but-missing-csv"},
		{[]string{"analyze", badCSV}, filepath.Join(badCSV, "summary.csv") + ":1: missing column"},
		{[]string{"analyze", badLog}, filepath.Join(badLog, "hist", "null_udp_1000_rep0.hlog") + ":2:"},
		{[]string{"analyze", badMeta}, filepath.Join(badMeta, "meta.json")},
		{[]string{"analyze", noLog}, filepath.Join(noLog, "hist", "kernel_udp_1000_rep0.hlog")},
		{[]string{"analyze"}, "accepts 1 arg"},
		{[]string{"plot", badLog}, "null_udp_1000_rep0.hlog:2:"},
		{[]string{"plot", filepath.Join(tmp, "missing")}, "missing"},
		{[]string{"compare", good}, "accepts 2 arg"},
		{[]string{"compare", good, badCSV}, filepath.Join(badCSV, "summary.csv")},
	} {
		stdout, stderr, code := runJrbench(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("jrbench %s: exit %d, want 2 naming %q\nstdout: %s\nstderr: %s", strings.Join(c.args, " "), code, c.want, stdout, stderr)
		}
	}
	// A failed analyze leaves the files as they were.
	if data, _ := os.ReadFile(filepath.Join(badLog, "summary.csv")); bytes.Contains(data, []byte("p50_lo_us")) {
		t.Error("a failed analyze rewrote summary.csv")
	}
}
