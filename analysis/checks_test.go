package analysis

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

func randomWalk(rng *rand.Rand, n int) []float64 {
	y := make([]float64, n)
	for i := 1; i < n; i++ {
		y[i] = y[i-1] + rng.NormFloat64()
	}
	return y
}

func whiteNoise(rng *rand.Rand, n int) []float64 {
	y := make([]float64, n)
	for i := range y {
		y[i] = 50 + rng.NormFloat64()
	}
	return y
}

func ar1(rng *rand.Rand, n int, phi float64) []float64 {
	y := make([]float64, n)
	for i := 1; i < n; i++ {
		y[i] = phi*y[i-1] + rng.NormFloat64()
	}
	return y
}

// TestADFSizeAndPower: the test rejects a unit root for white noise nearly
// always, and for a random walk about 5% of the time (its size), at the
// shortest series it runs on and at a longer one.
func TestADFSizeAndPower(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const reps = 400
	for _, n := range []int{ADFMinIntervals, 100} {
		rwRejects, wnRejects := 0, 0
		for range reps {
			if adfTest(randomWalk(rng, n)).Stationary() {
				rwRejects++
			}
			if adfTest(whiteNoise(rng, n)).Stationary() {
				wnRejects++
			}
		}
		size, power := float64(rwRejects)/reps, float64(wnRejects)/reps
		t.Logf("n=%d: random walk rejected %.3f, white noise rejected %.3f", n, size, power)
		if size < 0.02 || size > 0.09 {
			t.Errorf("n=%d: random walk: unit root rejected in %.3f of draws, want about 0.05", n, size)
		}
		minPower := 0.99
		if n == ADFMinIntervals {
			minPower = 0.95
		}
		if power < minPower {
			t.Errorf("n=%d: white noise: unit root rejected in only %.3f of draws", n, power)
		}
	}
}

func TestADFPValueAgreesWithCriticalValues(t *testing.T) {
	// Asymptotically (T → ∞) the 1%, 5% and 10% critical values have those p-values.
	for i, want := range []float64{0.01, 0.05, 0.10} {
		if p := adfPValue(adfCritC[i][0]); math.Abs(p-want) > 0.003 {
			t.Errorf("p-value at the asymptotic %.0f%% critical value: %.4f", want*100, p)
		}
	}
	if adfPValue(-30) != 0 || adfPValue(5) != 1 {
		t.Error("p-value outside the surface")
	}
	// Finite-sample critical values are further left than the asymptotic ones.
	if c := adfCrit(1, 25); c > -2.95 || c < -3.0 {
		t.Errorf("5%% critical value at T=25: %.4f, want about -2.99", c)
	}
}

func TestLagRankTest(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const reps = 400
	iidFlags, arFlags, arLag := 0, 0, 0
	for range reps {
		if lagRankTest(whiteNoise(rng, 30)).Dependent() {
			iidFlags++
		}
		r := lagRankTest(ar1(rng, 60, 0.8))
		if r.Dependent() {
			arFlags++
			if r.IndepLag > 1 {
				arLag++
			}
		}
	}
	t.Logf("iid flagged %d/%d, AR(1) 0.8 flagged %d/%d (independent lag found in %d)", iidFlags, reps, arFlags, reps, arLag)
	if f := float64(iidFlags) / reps; f < 0.02 || f > 0.09 {
		t.Errorf("iid series flagged in %.3f of draws, want about 0.05", f)
	}
	if f := float64(arFlags) / reps; f < 0.95 {
		t.Errorf("AR(1) φ=0.8 flagged in only %.3f of draws", f)
	}
	if arLag < arFlags/2 {
		t.Errorf("independent lag found for only %d of %d flagged AR(1) series", arLag, arFlags)
	}

	if got := ranks([]float64{3, 1, 3, 2}); got[0] != 3.5 || got[1] != 1 || got[2] != 3.5 || got[3] != 2 {
		t.Errorf("ranks with ties: %v", got)
	}
	// A monotone series is perfectly rank-correlated with itself shifted.
	if r := lagRankTest([]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}); !r.Dependent() || r.Rho != 1 {
		t.Errorf("monotone: %+v", r)
	}
}

// writeLevels writes an interval log at path with one interval per level: 400
// latencies uniform in ±20% around the level (µs).
func writeLevels(t *testing.T, path string, levels []float64, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var ivs []*hdrhistogram.Histogram
	for i, level := range levels {
		h := NewHistogram()
		h.SetStartTimeMs(start.UnixMilli() + int64(i)*1000)
		h.SetEndTimeMs(start.UnixMilli() + int64(i+1)*1000)
		for range 400 {
			if err := h.RecordValue(int64(level * 1000 * (0.8 + 0.4*rng.Float64()))); err != nil {
				t.Fatal(err)
			}
		}
		ivs = append(ivs, h)
	}
	var buf bytes.Buffer
	if err := WriteHlog(&buf, start, ivs); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCheckPoint(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(8, 9))
	steady, drift := make([]float64, 45), make([]float64, 45)
	for i := range steady {
		steady[i] = 100 * (1 + 0.02*rng.NormFloat64())
		drift[i] = 100 * math.Pow(1.04, float64(i)) * (1 + 0.01*rng.NormFloat64())
	}
	writeLevels(t, filepath.Join(dir, "steady.hlog"), steady, 1)
	writeLevels(t, filepath.Join(dir, "drift.hlog"), drift, 2)
	writeLevels(t, filepath.Join(dir, "short.hlog"), steady[:2], 3)
	writeLevels(t, filepath.Join(dir, "twelve.hlog"), steady[:12], 4)

	c, err := CheckPoint(filepath.Join(dir, "steady.hlog"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Intervals != 45 || !c.ADF.Ran || !c.ADF.Stationary() || !c.Lag1.Ran || c.Lag1.Dependent() || c.Failed() || c.Verdict != "ok" {
		t.Errorf("steady: %+v", c)
	}

	c, err = CheckPoint(filepath.Join(dir, "drift.hlog"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Failed() || c.ADF.Stationary() || !c.Lag1.Dependent() ||
		!strings.HasPrefix(c.Verdict, "FAIL: stationarity not shown (ADF τ=") || !strings.Contains(c.Verdict, "correlated at lag 1") {
		t.Errorf("drift: %+v", c)
	}

	c, err = CheckPoint(filepath.Join(dir, "short.hlog"))
	if err != nil {
		t.Fatal(err)
	}
	if c.ADF.Ran || c.Lag1.Ran || c.Failed() || c.Verdict != "too few intervals (2)" {
		t.Errorf("short: %+v", c)
	}

	c, err = CheckPoint(filepath.Join(dir, "twelve.hlog"))
	if err != nil {
		t.Fatal(err)
	}
	if c.ADF.Ran || !c.Lag1.Ran || c.Verdict != "ok; stationarity not tested: too few intervals (12 < 40)" {
		t.Errorf("twelve: %+v", c)
	}

	bad := filepath.Join(dir, "bad.hlog")
	os.WriteFile(bad, []byte("#[Histogram log format version 1.3]\nnot,a,line\n"), 0o644)
	if _, err := CheckPoint(bad); err == nil || !strings.Contains(err.Error(), "bad.hlog:2") {
		t.Errorf("malformed log: %v", err)
	}
	if _, err := CheckPoint(filepath.Join(dir, "missing.hlog")); err == nil || !strings.Contains(err.Error(), "missing.hlog") {
		t.Errorf("missing log: %v", err)
	}
}

func TestChecksInSummaryAndReport(t *testing.T) {
	dir := t.TempDir()
	levels := make([]float64, 45)
	for i := range levels {
		levels[i] = 50 + 10*float64(i)
	}
	writeLevels(t, filepath.Join(dir, "drift.hlog"), levels, 5)
	c, err := CheckPoint(filepath.Join(dir, "drift.hlog"))
	if err != nil {
		t.Fatal(err)
	}
	pts := []Point{
		{Stack: "kernel", Protocol: "udp", App: "echo", OfferedRPS: 1000, AchievedRPS: 1000, P50us: 10, P99us: 20,
			P50Lo: 9, P50Hi: 11, P99Lo: 18, P99Hi: 25, Valid: true, Checks: &c},
		{Stack: "kernel", Protocol: "udp", App: "echo", OfferedRPS: 2000, AchievedRPS: 2000, P50us: 12, P99us: 30,
			P50Lo: 11, P50Hi: 13, P99Lo: 26, P99Hi: math.Inf(1), Valid: true,
			Checks: &Checks{Intervals: 2, ADF: ADF{Note: "too few intervals (2 < 40)"}, Verdict: "too few intervals (2)"}},
	}
	csvPath := filepath.Join(dir, "summary.csv")
	if err := WriteSummaryCSV(csvPath, pts); err != nil {
		t.Fatal(err)
	}
	back, err := ReadSummaryCSV(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	if back[0].Checks == nil || !back[0].Checks.Failed() || back[0].Checks.Verdict != c.Verdict ||
		back[1].Checks == nil || back[1].Checks.Failed() || !math.IsInf(back[1].P99Hi, 1) {
		t.Errorf("checks after a round trip: %+v %+v", back[0].Checks, back[1].Checks)
	}
	md := renderReport(Report{Title: "t", Points: back, SLOp99us: 26})
	for _, want := range []string{
		"| offered (req/s) | achieved (req/s) | p50 (µs) | p50 95% CI (µs) | p99 (µs) | p99 95% CI (µs) | p99.9 (µs) | lost | late | valid |",
		"| 1000 | 1000 (100.0%) | 10.00 | 9.00–11.00 | 20.00 | 18.00–25.00 |",
		"| 2000 | 2000 (100.0%) | 12.00 | 11.00–13.00 | 30.00 | 26.00–∞ |",
		"- Highest rate whose p99 upper 95% bound ≤ 26.00 µs (and achieved ≥ 99%): 1000 req/s\n",
		"## Validity checks\n",
		"**1 of 2 checked points fail a check**; 1 had too few intervals for either test.",
		"| kernel | udp/echo | 1000 | 0 | 45 | **τ=",
		"| **FAIL: stationarity not shown (ADF τ=",
		"| kernel | udp/echo | 2000 | 0 | 2 | — | — | too few intervals (2) |\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("report:\n%s", md)
	}
	if md := renderReport(Report{Title: "t", Points: []Point{{Stack: "k", Valid: true}}}); !strings.Contains(md, "No point of this run was checked.") {
		t.Errorf("unchecked run:\n%s", md)
	}
}
