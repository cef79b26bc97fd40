package paperkit

import (
	"math"
	"strings"
	"testing"

	"github.com/joyride-bench/joyride/analysis"
)

// lat is a valid UDP open-loop point at rate with p50 in [lo, hi] (p99 twice
// as much), checked and passing.
func lat(stack string, rate, p50, lo, hi float64) analysis.Point {
	return analysis.Point{Stack: stack, Protocol: "udp", App: "echo", Size: 64, OfferedRPS: rate, AchievedRPS: rate,
		P50us: p50, P50Lo: lo, P50Hi: hi, P99us: 2 * p50, P99Lo: 2 * lo, P99Hi: 2 * hi, Valid: true,
		Checks: &analysis.Checks{Intervals: 40, ADF: analysis.ADF{Ran: true, Stat: -5, Crit5: -2.9}, Verdict: "ok"}}
}

// achieved is a valid point at rate that achieved got.
func achieved(stack string, rate, got float64) analysis.Point {
	p := lat(stack, rate, 10, 9, 11)
	p.AchievedRPS = got
	return p
}

func claimOf(src string) Claim {
	m, err := Parse("t.yaml", []byte(manifestWith(src)))
	if err != nil {
		panic(err)
	}
	return m.Figures[0].Claims[0]
}

var fig = Figure{ID: "lat", Experiment: "rpc-latency", Plot: "latency-vs-load"}

func eval(t *testing.T, claim string, pts ...analysis.Point) Result {
	t.Helper()
	return Evaluate(fig, claimOf(claim), &Run{ID: "run-1", Points: pts})
}

const p50Claim = "{claim: c, measure: {protocol: udp, stack: joyride, rate: 10000, metric: p50}, versus: {stack: kernel}, expect: {ratio_at_most: 1.0}}"

// Each verdict from crafted points.
func TestVerdicts(t *testing.T) {
	kernel := lat("kernel", 10000, 20, 19, 21)
	failed := lat("joyride", 10000, 10, 9, 11)
	failed.Checks.Lag1 = analysis.RankCorr{Ran: true, Rho: 0.6, P: 0.001}
	invalid := lat("joyride", 10000, 10, 9, 11)
	invalid.Valid, invalid.Reason = false, "generator sent 3.5% of requests late"
	noCI := lat("joyride", 10000, 10, 0, 0)
	noCI.P50Hi, noCI.P99Hi = 0, 0
	tcp := lat("joyride", 10000, 10, 9, 11)
	tcp.Protocol = "tcp"
	for _, tc := range []struct {
		name    string
		claim   string
		pts     []analysis.Point
		verdict Verdict
		why     string
	}{
		{"reproduced", p50Claim, []analysis.Point{lat("joyride", 10000, 10, 9, 11), kernel}, Reproduced,
			"expected ratio ≤ 1 over the whole range 0.43–0.58"},
		{"not reproduced: holds at the point only", p50Claim, []analysis.Point{lat("joyride", 10000, 19, 17, 22), kernel}, NotReproduced,
			"expected ratio ≤ 1; it holds at the point estimate 0.95 but not over the range 0.81–1.16"},
		{"not reproduced: fails at the point only", p50Claim, []analysis.Point{lat("joyride", 10000, 21, 18, 24), kernel}, NotReproduced,
			"it fails at the point estimate 1.05 but not over the whole range 0.86–1.26"},
		{"not reproduced: inconclusive checks", p50Claim, []analysis.Point{failed, lat("joyride", 10000, 10, 9, 11), kernel}, NotReproduced,
			"inconclusive: 1 of 2 valid repetitions of joyride failed the independence check"},
		{"not reproduced: no interval", p50Claim, []analysis.Point{noCI, kernel}, NotReproduced,
			"inconclusive: joyride has no confidence interval"},
		{"contradicted", p50Claim, []analysis.Point{lat("joyride", 10000, 40, 38, 42), kernel}, Contradicted,
			"expected ratio ≤ 1; it fails over the whole range 1.81–2.21"},
		{"not measurable: missing point", p50Claim, []analysis.Point{lat("joyride", 50000, 10, 9, 11), kernel}, NotMeasurable,
			"run run-1 has no point of joyride at udp, 10000 req/s"},
		{"not measurable: invalid point", p50Claim, []analysis.Point{invalid, kernel}, NotMeasurable,
			"no valid repetition of joyride at udp, 10000 req/s in run run-1 (generator sent 3.5% of requests late)"},
		{"not measurable: missing stack", p50Claim, []analysis.Point{kernel, lat("null", 10000, 5, 4, 6)}, NotMeasurable,
			"stack joyride was not in run run-1 (it ran kernel, null)"},
		{"not measurable: missing baseline stack", p50Claim, []analysis.Point{lat("joyride", 10000, 10, 9, 11)}, NotMeasurable,
			"baseline: stack kernel was not in run run-1 (it ran joyride)"},
		{"not measurable: ambiguous", "{claim: c, measure: {stack: joyride, rate: 10000, metric: p50}}", []analysis.Point{lat("joyride", 10000, 10, 9, 11), tcp}, NotMeasurable,
			"the measure matches several protocols of joyride in run run-1: name one in the manifest"},
		{"not measurable: the manifest's reason", "{claim: c, measure: {protocol: udp, stack: joyride, rate: 10000, metric: p50}, not_measurable: needs a 100G NIC}",
			[]analysis.Point{lat("joyride", 10000, 10, 9, 11)}, NotMeasurable, "needs a 100G NIC"},
		{"no expectation", "{claim: c, measure: {protocol: udp, stack: joyride, rate: 10000, metric: p50}, versus: {stack: kernel}}",
			[]analysis.Point{lat("joyride", 10000, 10, 9, 11), kernel}, NoExpectation, ""},
		{"absolute bound", "{claim: c, measure: {stack: joyride, rate: 10000, metric: p99}, expect: {at_most: 25}}",
			[]analysis.Point{lat("joyride", 10000, 10, 9, 11)}, Reproduced, "expected ≤ 25 µs over the whole range 18.0–22.0"},
		{"difference", "{claim: c, measure: {stack: joyride, rate: 10000, metric: p50}, versus: {stack: kernel}, expect: {difference_at_most: 5}}",
			[]analysis.Point{lat("joyride", 10000, 23, 22, 25), kernel}, NotReproduced,
			"expected difference ≤ 5 µs; it holds at the point estimate 3.0 but not over the range 1.0–6.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := eval(t, tc.claim, tc.pts...)
			if r.Verdict != tc.verdict || !strings.Contains(r.Why, tc.why) {
				t.Errorf("got %s: %q, want %s: %q", r.Verdict, r.Why, tc.verdict, tc.why)
			}
		})
	}
	// Without a run of the experiment.
	r := Evaluate(fig, claimOf(p50Claim), nil)
	if r.Verdict != NotMeasurable || r.Why != "no run of experiment rpc-latency" {
		t.Errorf("no run: %s %q", r.Verdict, r.Why)
	}
}

// The ratio's range is measured low / baseline high to measured high /
// baseline low; with a side without an interval, that side is a point.
func TestRatioRange(t *testing.T) {
	r := eval(t, p50Claim, lat("joyride", 10000, 10, 8, 12.5), lat("kernel", 10000, 20, 16, 25))
	if !r.HasCompared || !r.CompRange || r.Compared != 0.5 || r.CompLo != 8.0/25 || r.CompHi != 12.5/16 {
		t.Fatalf("ratio %v [%v, %v] (has %v, range %v)", r.Compared, r.CompLo, r.CompHi, r.HasCompared, r.CompRange)
	}
	// An interval unbounded above on the baseline: the ratio is unbounded below.
	r = eval(t, p50Claim, lat("joyride", 10000, 10, 8, 12.5), lat("kernel", 10000, 20, 0, math.Inf(1)))
	if r.CompLo != 0 || !math.IsInf(r.CompHi, 1) || r.Verdict != NotReproduced {
		t.Errorf("unbounded: [%v, %v] %s", r.CompLo, r.CompHi, r.Verdict)
	}
	// CPU has the spread over repetitions, and a side with one repetition is a point.
	cpu := func(stack string, us float64) analysis.Point {
		p := lat(stack, 100000, 10, 9, 11)
		p.ServerCores, p.CPUUsPerReq = us/10, us
		return p
	}
	r = eval(t, "{claim: c, measure: {stack: joyride, rate: 100000, metric: cpu}, versus: {stack: kernel}, expect: {ratio_at_most: 0.5}}",
		cpu("joyride", 2), cpu("joyride", 3), cpu("kernel", 10))
	if r.Measured.Range != "spread" || r.Measured.Lo != 2 || r.Measured.Hi != 3 || r.Baseline.Range != "" ||
		r.CompLo != 0.2 || r.CompHi != 0.3 || r.Verdict != Reproduced {
		t.Errorf("cpu: %+v %+v [%v, %v] %s", r.Measured, r.Baseline, r.CompLo, r.CompHi, r.Verdict)
	}
	// No CPU measured: not measurable.
	r = eval(t, "{claim: c, measure: {stack: joyride, rate: 10000, metric: cpu}}", lat("joyride", 10000, 10, 9, 11))
	if r.Verdict != NotMeasurable || r.Why != "run run-1 measured no server CPU for joyride at 10000 req/s" {
		t.Errorf("no cpu: %s %q", r.Verdict, r.Why)
	}
}

// A peak's range runs from the highest rate kept up with to the next rate
// whose valid repetitions fell short, or to ∞ when the highest rate tried
// was kept up with.
func TestPeak(t *testing.T) {
	const claim = "{claim: c, measure: {stack: joyride, metric: peak}, versus: {stack: kernel}, expect: {ratio_at_least: 1.5}}"
	slow := []analysis.Point{achieved("joyride", 100000, 100000), achieved("joyride", 200000, 120000), achieved("joyride", 300000, 110000)}
	fast := []analysis.Point{achieved("kernel", 100000, 100000), achieved("kernel", 300000, 299000), achieved("kernel", 400000, 350000)}
	r := eval(t, claim, append(slow, fast...)...)
	m, b := r.Measured, r.Baseline
	if m.Value != 100000 || m.Lo != 100000 || m.Hi != 200000 || b.Value != 300000 || b.Hi != 400000 {
		t.Fatalf("peaks %+v %+v", m, b)
	}
	if r.CompLo != 0.25 || r.CompHi != 200000.0/300000 || r.Verdict != Contradicted {
		t.Errorf("ratio [%v, %v] %s %s", r.CompLo, r.CompHi, r.Verdict, r.Why)
	}
	// The other way round, and the baseline kept up with everything: the
	// ratio's range is bounded below only, and the claim holds over it.
	r = eval(t, claim, achieved("joyride", 100000, 100000), achieved("joyride", 400000, 400000),
		achieved("kernel", 100000, 100000), achieved("kernel", 200000, 150000), achieved("kernel", 400000, 200000))
	if !math.IsInf(r.Measured.Hi, 1) || r.CompLo != 2 || !math.IsInf(r.CompHi, 1) || r.Verdict != Reproduced {
		t.Errorf("unbounded peak: %+v [%v, %v] %s", r.Measured, r.CompLo, r.CompHi, r.Verdict)
	}
	// A rate whose repetitions were all invalid says nothing about the peak.
	bad := achieved("kernel", 200000, 10)
	bad.Valid = false
	r = eval(t, claim, achieved("joyride", 100000, 100000), achieved("kernel", 100000, 100000), bad)
	if r.Baseline.Value != 100000 || !math.IsInf(r.Baseline.Hi, 1) {
		t.Errorf("invalid rate: %+v", r.Baseline)
	}
	// No rate kept up with: below the lowest rate tried.
	r = eval(t, claim, achieved("joyride", 100000, 50000), achieved("kernel", 100000, 100000), achieved("kernel", 200000, 100000))
	if !math.IsNaN(r.Measured.Value) || r.Measured.Lo != 0 || r.Measured.Hi != 100000 || r.Verdict != Contradicted {
		t.Errorf("none kept up: %+v %s %s", r.Measured, r.Verdict, r.Why)
	}
	// No valid repetition at all.
	bad = achieved("joyride", 100000, 10)
	bad.Valid, bad.Reason = false, "no reply received"
	r = eval(t, claim, bad, achieved("kernel", 100000, 100000))
	if r.Verdict != NotMeasurable || r.Why != "no valid repetition of joyride at any rate in run run-1 (no reply received)" {
		t.Errorf("no valid: %s %q", r.Verdict, r.Why)
	}
}
