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
	c.SetArrival(2.5, 1000)
	steadyLevels := make([]float64, 45)
	rng := rand.New(rand.NewPCG(8, 9))
	for i := range steadyLevels {
		steadyLevels[i] = 100 * (1 + 0.02*rng.NormFloat64())
	}
	writeLevels(t, filepath.Join(dir, "steady.hlog"), steadyLevels, 1)
	steady, err := CheckPoint(filepath.Join(dir, "steady.hlog"))
	if err != nil {
		t.Fatal(err)
	}
	steady.SetArrival(6.25, 1000)
	pts := []Point{
		{Stack: "kernel", Protocol: "udp", App: "echo", OfferedRPS: 1000, AchievedRPS: 1000, P50us: 10, P99us: 20,
			P50Lo: 9, P50Hi: 11, P99Lo: 18, P99Hi: 25, Valid: true, Checks: &c},
		{Stack: "kernel", Protocol: "udp", App: "echo", OfferedRPS: 2000, AchievedRPS: 2000, P50us: 12, P99us: 30,
			P50Lo: 11, P50Hi: 13, P99Lo: 26, P99Hi: math.Inf(1), Valid: true,
			Checks: &Checks{Intervals: 2, ADF: ADF{Note: "too few intervals (2 < 40)"}, Verdict: "too few intervals (2)"}},
		{Stack: "null", Protocol: "udp", App: "echo", OfferedRPS: 1000, AchievedRPS: 1000, P50us: 5, P99us: 9,
			P50Lo: 4, P50Hi: 6, P99Lo: 8, P99Hi: 10, Valid: true, Checks: &steady},
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
		back[0].Checks.IntervalMs != 1000 || back[0].Checks.Arrival != c.Arrival ||
		back[1].Checks == nil || back[1].Checks.Failed() || !math.IsInf(back[1].P99Hi, 1) || back[1].Checks.Arrival.Ran {
		t.Errorf("checks after a round trip: %+v %+v", back[0].Checks, back[1].Checks)
	}
	// A failing arrival check alone marks the point.
	if b := back[2].Checks; b == nil || !b.Failed() || b.ADF.Stationary() != steady.ADF.Stationary() || b.Arrival.A2 != 6.25 ||
		b.Verdict != "FAIL: arrivals not Poisson (A²=6.25 > 3.857 over 1000 gaps)" {
		t.Errorf("arrivals after a round trip: %+v", b)
	}
	md := renderReport(Report{Title: "t", Points: back, SLOp99us: 26})
	for _, want := range []string{
		"| offered (req/s) | achieved (req/s) | p50 (µs) | p50 95% CI (µs) | p99 (µs) | p99 95% CI (µs) | p99.9 (µs) | lost | late | valid |",
		"| 1000 | 1000 (100.0%) | 10.00 | 9.00–11.00 | 20.00 | 18.00–25.00 |",
		"| 2000 | 2000 (100.0%) | 12.00 | 11.00–13.00 | 30.00 | 26.00–∞ |",
		"- Highest rate whose p99 upper 95% bound ≤ 26.00 µs (and achieved ≥ 99%): 1000 req/s\n",
		"## Validity checks\n",
		"one histogram per 1000 ms of scheduled send time",
		"**2 of 3 checked points fail a check**; 1 had too few intervals for either test.",
		"| stack | points | stationarity passed | independence passed | arrivals passed | failed a check |\n",
		"| kernel | 2 | 0 of 1 (1 not run) | 0 of 1 (1 not run) | 1 of 1 (1 not run) | 1 of 2 |\n",
		"| null | 1 | 1 of 1 | 1 of 1 | 0 of 1 | 1 of 1 |\n",
		"| kernel | udp/echo | 1000 | 0 | 45 | **τ=",
		"| 2.50 | **FAIL: stationarity not shown (ADF τ=",
		"| kernel | udp/echo | 2000 | 0 | 2 | — | — | — | too few intervals (2) |\n",
		"| **6.25 > 3.857** | **FAIL: arrivals not Poisson (A²=6.25 > 3.857 over 1000 gaps)** |\n",
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

// simLatencyNs draws one latency as a point at a steady state sees it: a
// floor, a skewed body and, for 1% of requests, a stall of 50..300 µs (a
// vCPU descheduled, an interrupt), in ns.
func simLatencyNs(rng *rand.Rand, floorUs, bodyUs float64) int64 {
	us := floorUs + bodyUs*math.Exp(0.5*rng.NormFloat64())
	if rng.Float64() < 0.01 {
		us += 50 + 250*rng.Float64()
	}
	return int64(us * 1000)
}

// TestChecksOnSimulatedIntervalLogs: the checks at the generator's default
// interval, on what they really run on. A steady point's latencies are
// independent draws of one skewed distribution; CheckPoint sees them only as
// the medians of 50 ms histograms of the project's shape (quantized to 3
// significant digits), 40 of them for a 2 s point, with 50 latencies each at
// 1k req/s and 500 at 10k req/s, and 200 of them for a 10 s point (the
// MaxIntervals bound of the generator). The false alarms must stay those of
// the Gaussian simulations above: ADF fails (power ≥ 95%) and the lag-1 test
// flags (about 5%). A point whose median drifts by 10% over the point, or
// that holds a slow oscillation, must fail.
func TestChecksOnSimulatedIntervalLogs(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation")
	}
	rng := rand.New(rand.NewPCG(11, 12))
	hs := make([]*hdrhistogram.Histogram, 200)
	for i := range hs {
		hs[i] = NewHistogram()
	}
	// run draws reps points of n intervals of m latencies each, the median
	// of interval k scaled by level(k), and counts the failures.
	run := func(reps, n, m int, level func(k int) float64) (adfFail, lagFlag, ran int) {
		for range reps {
			for k := range n {
				hs[k].Reset()
				f := level(k)
				for range m {
					hs[k].RecordValue(int64(f * float64(simLatencyNs(rng, 15, 5))))
				}
			}
			c := checkIntervals(hs[:n])
			if c.ADF.Ran && c.Lag1.Ran {
				ran++
			}
			if c.ADF.Ran && !c.ADF.Stationary() {
				adfFail++
			}
			if c.Lag1.Dependent() {
				lagFlag++
			}
		}
		return
	}
	steady := func(int) float64 { return 1 }
	const reps = 400
	for _, c := range []struct{ n, m int }{{ADFMinIntervals, 50}, {ADFMinIntervals, 500}, {maxIntervalsSim, 50}} {
		adf, lag, ran := run(reps, c.n, c.m, steady)
		t.Logf("steady, %d intervals of %d latencies: ADF fails %.3f, lag 1 flags %.3f (%d of %d run)",
			c.n, c.m, float64(adf)/reps, float64(lag)/reps, ran, reps)
		if ran != reps {
			t.Errorf("%d intervals of %d: the checks ran on only %d of %d points", c.n, c.m, ran, reps)
		}
		if f := float64(adf) / reps; f > 0.05 {
			t.Errorf("%d intervals of %d: ADF fails a steady point in %.3f of runs, want ≤ 0.05", c.n, c.m, f)
		}
		if f := float64(lag) / reps; f < 0.02 || f > 0.09 {
			t.Errorf("%d intervals of %d: lag 1 flags a steady point in %.3f of runs, want about 0.05", c.n, c.m, f)
		}
	}
	// Drift: the whole distribution 10% slower at the end of a 2 s point
	// than at its start (a queue building up, a clock ramping down).
	const powerReps = 100
	adf, lag, _ := run(powerReps, ADFMinIntervals, 500, func(k int) float64 { return 1 + 0.1*float64(k)/ADFMinIntervals })
	t.Logf("10%% drift over 40 intervals of 500: ADF fails %d, lag 1 flags %d of %d", adf, lag, powerReps)
	if adf+lag == 0 || lag < powerReps*9/10 {
		t.Errorf("a 10%% drift was flagged by lag 1 in only %d of %d points (ADF %d)", lag, powerReps, adf)
	}
	// A 400 ms oscillation of ±5% (a periodic housekeeping task): medians
	// of neighbouring 50 ms intervals are alike.
	_, lag, _ = run(powerReps, ADFMinIntervals, 500, func(k int) float64 { return 1 + 0.05*math.Sin(2*math.Pi*float64(k)/8) })
	t.Logf("±5%% oscillation with a 400 ms period: lag 1 flags %d of %d", lag, powerReps)
	if lag < powerReps*9/10 {
		t.Errorf("a 400 ms oscillation was flagged in only %d of %d points", lag, powerReps)
	}
}

// maxIntervalsSim is loadgen.MaxIntervals (loadgen imports this package).
const maxIntervalsSim = 200

func TestArrivalCheck(t *testing.T) {
	c := checkSeries(Checks{Intervals: 45}, whiteNoise(rand.New(rand.NewPCG(1, 2)), 45))
	if c.Verdict != "ok" {
		t.Fatalf("white noise: %+v", c)
	}
	c.SetArrival(1.2, 1000)
	if !c.Arrival.Ran || c.Arrival.Rejected() || c.Failed() || c.Verdict != "ok" {
		t.Errorf("accepted arrivals: %+v", c)
	}
	c.SetArrival(5.5, 1000)
	if !c.Arrival.Rejected() || !c.Failed() || c.Verdict != "FAIL: arrivals not Poisson (A²=5.50 > 3.857 over 1000 gaps)" {
		t.Errorf("rejected arrivals: %+v", c)
	}
	c.SetArrival(0, 0) // a constant schedule: not checked
	if c.Arrival.Ran || c.Failed() || c.Verdict != "ok" {
		t.Errorf("unchecked arrivals: %+v", c)
	}
	few := Checks{Intervals: 2}
	few = checkSeries(few, []float64{1, 2})
	few.SetArrival(9, 500)
	if !few.Failed() || few.Verdict != "FAIL: arrivals not Poisson (A²=9.00 > 3.857 over 500 gaps); too few intervals (2)" {
		t.Errorf("few intervals, rejected arrivals: %+v", few)
	}
}

// An upper-bound point is valid, its latencies are marked ≤ in the results
// table, and the report says what an upper bound is.
func TestUpperBoundPointsInTheReport(t *testing.T) {
	pts := []Point{
		{Stack: "kernel", Protocol: "udp", App: "echo", OfferedRPS: 1000, AchievedRPS: 1000, P50us: 10, P99us: 20, P999us: 30,
			Valid: true, UpperBound: true, Reason: "upper bound: generator sent 2.0% of requests late in 5 short spells"},
		{Stack: "kernel", Protocol: "udp", App: "echo", OfferedRPS: 1000, AchievedRPS: 1000, P50us: 12, P99us: 22, P999us: 32,
			Rep: 1, Valid: true},
	}
	md := renderReport(Report{Title: "t", Points: pts})
	for _, want := range []string{"1 valid points are **upper bounds**", "| 2/2 (1 ≤) |", "| ≤ 11.00"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "## Invalid points") {
		t.Errorf("an upper-bound point is listed as invalid:\n%s", md)
	}
}
