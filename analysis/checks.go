package analysis

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Validity checks on a point's interval log (DESIGN.md §8).
//
// The generator closes one histogram per interval of scheduled send time (the
// workload's interval, 50 ms by default; loadgen.DefaultInterval), so a point
// is a time series of per-interval distributions: 40 of them for a 2 s point.
// Its merged percentiles and their confidence intervals (QuantileCI) assume
// the latencies are drawn from one distribution, independently. Two things
// break that and can be seen in the series: drift (the machine, the stack or
// the generator changing during the point: warm-up not over, a queue building
// up, a noisy neighbour) and correlation between intervals (oscillations
// slower than an interval). CheckPoint tests both on the series of
// per-interval medians. The median, not a tail percentile: with 50 ms
// intervals a 10k req/s point has ~500 latencies per interval, whose median
// is well estimated (its standard error is a few percent of the spread of
// the latencies) while their p99 rests on the five largest. The tail is
// covered by the merged percentiles' confidence intervals, which assume what
// these checks test.
//
//   - Stationarity: augmented Dickey–Fuller test with a constant and one lagged
//     difference, Δy_t = α + γ·y_{t−1} + β·Δy_{t−1} + ε_t. Null hypothesis: a
//     unit root (γ = 0, the median wanders like a random walk). The point passes
//     when the null is rejected at 5%, i.e. τ = γ̂/se(γ̂) is below MacKinnon's
//     (2010) finite-sample 5% critical value for the constant-only case. The
//     p-value is MacKinnon's (1994) asymptotic approximation: good for a
//     ranking, approximate for short series; the decision uses the
//     finite-sample critical value. Assumes ε_t are uncorrelated with constant
//     variance once one lag is included; a deterministic trend is not modelled,
//     so a steady drift shows as a failure (which is what we want to see). A
//     failure means stationarity could not be shown, not that it was
//     disproved, so the test needs enough intervals to show it: simulated here
//     (checks_test.go), it rejects the unit root for white noise in 56% of
//     series of 20 intervals, 87% at 30, 99% at 40, and for a random walk in
//     about 5% at any length. With fewer than ADFMinIntervals (40) intervals it
//     is not run rather than flag a steady point one time in two. Simulated on
//     per-interval medians of latency histograms as the generator records
//     them (skewed latencies with a stall tail, 50 to 500 per interval,
//     TestChecksOnSimulatedIntervalLogs), a steady point of 40 intervals fails
//     it in about 1% of runs.
//   - Independence: Spearman rank correlation between each interval's median
//     and the next one's (lag 1), two-sided test at 5% by the t approximation
//     t = ρ·√((m−2)/(1−ρ²)) with m−2 degrees of freedom (m pairs). Ranks make it
//     insensitive to the skewed shape of latency; ties get average ranks.
//     Assumes the series is stationary (a drift shows here as correlation
//     too). When it fails, the smallest lag at which the correlation is no
//     longer significant is reported: medians that many intervals apart look
//     independent. Not run with fewer than IndepMinIntervals intervals. It
//     flags about 5% of steady points, by design of a 5% test (simulated as
//     above, on recorded medians too).
//   - Arrivals: the generator's Anderson–Darling test of its first send gaps
//     against the exponential of the offered rate (loadgen.checkArrivals),
//     failing above ArrivalCrit1 (1%). It needs the send times, which the
//     log does not keep: the runner adds it from the generator's result
//     (SetArrival), for Poisson schedules.
//
// What these checks cannot see: correlation between consecutive requests
// within an interval (the histograms do not keep the order). Passing is
// therefore necessary, not sufficient. A steady point with every check run
// still fails one of them in roughly 7% of runs (1% + 5% + 1%): a single
// failure is a prompt to look, a failure that repeats across repetitions or
// rates is a finding.

// Minimum number of non-empty intervals for each check.
const (
	ADFMinIntervals   = 40
	IndepMinIntervals = 10
)

// checkAlpha is the significance level of both checks.
const checkAlpha = 0.05

// ArrivalCrit1 is the Anderson–Darling statistic's 1% critical value for a
// fully specified continuous distribution (Stephens 1974, case 0): the
// arrival check fails above it (loadgen.ADCrit1 is this value).
const ArrivalCrit1 = 3.857

// Checks are the validity checks of one point (CheckPoint).
type Checks struct {
	// Intervals is the number of intervals in the log; Empty of them had no
	// samples and are left out of the series.
	Intervals, Empty int
	// IntervalMs is the span of the log's first interval, ms (0: no
	// interval, or unknown).
	IntervalMs int64
	// ADF is the stationarity check of the per-interval medians.
	ADF ADF
	// Lag1 is the independence check of the per-interval medians.
	Lag1 RankCorr
	// Arrival is the arrival check (SetArrival); not run when the point's
	// generator did not check its sends (not Poisson, a closed loop, too few
	// sends) or nobody added it.
	Arrival Arrival
	// Verdict is one short line: "ok", "too few intervals (n)", or the
	// failures ("FAIL: ...") and skipped checks.
	Verdict string
}

// ADF is an augmented Dickey–Fuller test (constant, one lag).
type ADF struct {
	// Ran is false when the test was not run; Note says why.
	Ran  bool
	Note string
	// N is the number of observations in the regression.
	N int
	// Stat is τ; P the approximate p-value; Crit1, Crit5, Crit10 the
	// finite-sample critical values at N observations.
	Stat, P              float64
	Crit1, Crit5, Crit10 float64
}

// Stationary reports whether the test ran and rejected a unit root at 5%.
func (a ADF) Stationary() bool { return a.Ran && a.Stat < a.Crit5 }

// RankCorr is a Spearman rank autocorrelation test at lag 1.
type RankCorr struct {
	// Ran is false when the test was not run; Note says why.
	Ran  bool
	Note string
	// N is the number of pairs.
	N int
	// Rho is Spearman's ρ at lag 1, P its two-sided p-value.
	Rho, P float64
	// IndepLag, when the lag-1 test fails, is the smallest lag at which the
	// correlation is not significant (0: none up to a quarter of the series).
	IndepLag int
}

// Dependent reports whether the test ran and found significant correlation.
func (r RankCorr) Dependent() bool { return r.Ran && r.P < checkAlpha }

// Arrival is the generator's check that its requests left as a Poisson
// process of the offered rate.
type Arrival struct {
	// Ran is false when the sends were not checked.
	Ran bool
	// N is the number of gaps between sends tested, A2 their Anderson–Darling
	// statistic against the exponential of the offered rate.
	N  int
	A2 float64
}

// Rejected reports whether the check ran and A2 is above ArrivalCrit1.
func (a Arrival) Rejected() bool { return a.Ran && a.A2 > ArrivalCrit1 }

// Failed reports whether a check that ran failed.
func (c Checks) Failed() bool {
	return (c.ADF.Ran && !c.ADF.Stationary()) || c.Lag1.Dependent() || c.Arrival.Rejected()
}

// SetArrival records the arrival check of the point's generator: a2 over n
// gaps between sends (n = 0: not checked), and rewrites the verdict.
func (c *Checks) SetArrival(a2 float64, n int) {
	c.Arrival = Arrival{Ran: n > 0, N: n, A2: a2}
	c.Verdict = verdict(*c, c.Intervals-c.Empty)
}

// CheckPoint reads the interval log at path and runs the validity checks on
// the series of per-interval medians. A log that cannot be read is an error;
// too few intervals is not, it is reported in the result.
func CheckPoint(path string) (Checks, error) {
	intervals, err := ReadHlogIntervals(path)
	if err != nil {
		return Checks{}, err
	}
	return checkIntervals(intervals), nil
}

// checkIntervals runs the checks on the series of the intervals' medians (µs).
func checkIntervals(intervals []*hdrhistogram.Histogram) Checks {
	var series []float64
	c := Checks{Intervals: len(intervals)}
	if len(intervals) > 0 {
		c.IntervalMs = intervals[0].EndTimeMs() - intervals[0].StartTimeMs()
	}
	for _, h := range intervals {
		if h.TotalCount() == 0 {
			c.Empty++
			continue
		}
		series = append(series, nsToUs(float64(h.ValueAtQuantile(50))))
	}
	return checkSeries(c, series)
}

// checkSeries runs both checks on series and sets the verdict.
func checkSeries(c Checks, series []float64) Checks {
	n := len(series)
	constant := n > 0 && slices.Min(series) == slices.Max(series)
	switch {
	case n < ADFMinIntervals:
		c.ADF.Note = fmt.Sprintf("too few intervals (%d < %d)", n, ADFMinIntervals)
	case constant:
		c.ADF.Note = "per-interval median constant"
	default:
		c.ADF = adfTest(series)
	}
	switch {
	case n < IndepMinIntervals:
		c.Lag1.Note = fmt.Sprintf("too few intervals (%d < %d)", n, IndepMinIntervals)
	case constant:
		c.Lag1.Note = "per-interval median constant"
	default:
		c.Lag1 = lagRankTest(series)
	}
	c.Verdict = verdict(c, n)
	return c
}

// verdict summarizes c in one line.
func verdict(c Checks, n int) string {
	var fails, skipped []string
	arrival := ""
	if c.Arrival.Rejected() {
		arrival = fmt.Sprintf("arrivals not Poisson (A²=%.2f > %.3f over %d gaps)", c.Arrival.A2, ArrivalCrit1, c.Arrival.N)
	}
	if !c.ADF.Ran && !c.Lag1.Ran && n < IndepMinIntervals {
		few := fmt.Sprintf("too few intervals (%d)", n)
		if arrival != "" {
			return "FAIL: " + arrival + "; " + few
		}
		return few
	}
	if c.ADF.Ran && !c.ADF.Stationary() {
		fails = append(fails, fmt.Sprintf("stationarity not shown (ADF τ=%.2f ≥ %.2f, p≈%.2f)", c.ADF.Stat, c.ADF.Crit5, c.ADF.P))
	} else if !c.ADF.Ran {
		skipped = append(skipped, "stationarity not tested: "+c.ADF.Note)
	}
	if c.Lag1.Dependent() {
		s := fmt.Sprintf("correlated at lag 1 (ρ=%.2f, p=%.3f", c.Lag1.Rho, c.Lag1.P)
		if c.Lag1.IndepLag > 0 {
			s += fmt.Sprintf("; independent from lag %d", c.Lag1.IndepLag)
		}
		fails = append(fails, s+")")
	} else if !c.Lag1.Ran {
		skipped = append(skipped, "independence not tested: "+c.Lag1.Note)
	}
	if arrival != "" {
		fails = append(fails, arrival)
	}
	var parts []string
	if len(fails) > 0 {
		parts = append(parts, "FAIL: "+strings.Join(fails, ", "))
	} else {
		parts = append(parts, "ok")
	}
	return strings.Join(append(parts, skipped...), "; ")
}

// MacKinnon (2010, Table 2) response surface for the 1%, 5% and 10% critical
// values of τ, constant, no trend, one variable: β∞ + β1/T + β2/T² + β3/T³.
var adfCritC = [3][4]float64{
	{-3.43035, -6.5393, -16.786, -79.433},
	{-2.86154, -2.8903, -4.234, -40.040},
	{-2.56677, -1.5384, -2.809, 0},
}

// adfCrit returns the critical value at level index i (0: 1%, 1: 5%, 2: 10%)
// for a regression with T observations.
func adfCrit(i int, T float64) float64 {
	b := adfCritC[i]
	return b[0] + b[1]/T + b[2]/(T*T) + b[3]/(T*T*T)
}

// adfPValue is MacKinnon's (1994) approximate asymptotic p-value of τ,
// constant, no trend, one variable (the coefficients statsmodels uses).
func adfPValue(tau float64) float64 {
	const tauMax, tauMin, tauStar = 2.74, -18.83, -1.61
	switch {
	case tau > tauMax:
		return 1
	case tau < tauMin:
		return 0
	case tau <= tauStar:
		return normCDF(2.1659 + 1.4412*tau + 0.038269*tau*tau)
	default:
		return normCDF(1.7339 + 0.93202*tau - 0.12745*tau*tau - 0.010368*tau*tau*tau)
	}
}

// adfTest runs the augmented Dickey–Fuller regression with a constant and one
// lagged difference on y (len(y) >= 5) by ordinary least squares.
func adfTest(y []float64) ADF {
	// Rows t = 2..n-1: Δy_t on (1, y_{t-1}, Δy_{t-1}).
	var xtx [3][3]float64
	var xty [3]float64
	var rows [][4]float64 // x0, x1, x2, dependent
	for t := 2; t < len(y); t++ {
		r := [4]float64{1, y[t-1], y[t-1] - y[t-2], y[t] - y[t-1]}
		rows = append(rows, r)
		for i := range 3 {
			for j := range 3 {
				xtx[i][j] += r[i] * r[j]
			}
			xty[i] += r[i] * r[3]
		}
	}
	T := len(rows)
	res := ADF{N: T, Crit1: adfCrit(0, float64(T)), Crit5: adfCrit(1, float64(T)), Crit10: adfCrit(2, float64(T))}
	inv, ok := invert3(xtx)
	if !ok || T <= 3 {
		res.Note = "regression singular"
		return res
	}
	var beta [3]float64
	for i := range 3 {
		for j := range 3 {
			beta[i] += inv[i][j] * xty[j]
		}
	}
	ssr := 0.0
	for _, r := range rows {
		e := r[3] - beta[0]*r[0] - beta[1]*r[1] - beta[2]*r[2]
		ssr += e * e
	}
	s2 := ssr / float64(T-3)
	se := math.Sqrt(s2 * inv[1][1])
	if !(se > 0) {
		res.Note = "perfect fit: τ undefined"
		return res
	}
	res.Ran = true
	res.Stat = beta[1] / se
	res.P = adfPValue(res.Stat)
	return res
}

// invert3 inverts a 3×3 matrix by Gauss–Jordan elimination with partial
// pivoting; ok is false when it is singular (relative to its scale).
func invert3(m [3][3]float64) (inv [3][3]float64, ok bool) {
	a := m
	scale := 0.0
	for i := range 3 {
		for j := range 3 {
			scale = math.Max(scale, math.Abs(a[i][j]))
		}
		inv[i][i] = 1
	}
	if scale == 0 {
		return inv, false
	}
	for col := range 3 {
		p := col
		for r := col + 1; r < 3; r++ {
			if math.Abs(a[r][col]) > math.Abs(a[p][col]) {
				p = r
			}
		}
		if math.Abs(a[p][col]) <= 1e-12*scale {
			return inv, false
		}
		a[col], a[p] = a[p], a[col]
		inv[col], inv[p] = inv[p], inv[col]
		d := a[col][col]
		for j := range 3 {
			a[col][j] /= d
			inv[col][j] /= d
		}
		for r := range 3 {
			if r == col {
				continue
			}
			f := a[r][col]
			for j := range 3 {
				a[r][j] -= f * a[col][j]
				inv[r][j] -= f * inv[col][j]
			}
		}
	}
	return inv, true
}

// lagRankTest tests the lag-1 Spearman rank autocorrelation of x and, when it
// is significant, finds the smallest lag (up to len(x)/4, with at least
// IndepMinIntervals-1 pairs) at which it is not.
func lagRankTest(x []float64) RankCorr {
	rho, p, m := lagSpearman(x, 1)
	r := RankCorr{Ran: !math.IsNaN(rho), N: m, Rho: rho, P: p}
	if !r.Ran {
		r.Note = "no variation in ranks"
		r.Rho, r.P = 0, 0
		return r
	}
	if r.Dependent() {
		for k := 2; k <= len(x)/4 && len(x)-k >= IndepMinIntervals-1; k++ {
			if rk, pk, _ := lagSpearman(x, k); math.IsNaN(rk) || pk >= checkAlpha {
				r.IndepLag = k
				break
			}
		}
	}
	return r
}

// lagSpearman is Spearman's ρ between x[t] and x[t+k], its two-sided p-value
// (t approximation) and the number of pairs. ρ is NaN when either side has
// no variation.
func lagSpearman(x []float64, k int) (rho, p float64, m int) {
	m = len(x) - k
	if m < 3 {
		return math.NaN(), math.NaN(), m
	}
	rho = pearson(ranks(x[:m]), ranks(x[k:]))
	if math.IsNaN(rho) {
		return rho, math.NaN(), m
	}
	if math.Abs(rho) >= 1 {
		return rho, 0, m
	}
	df := float64(m - 2)
	t := rho * math.Sqrt(df/(1-rho*rho))
	return rho, studentTTwoSided(t, df), m
}

// ranks returns the ranks of x (1-based), ties sharing their average rank.
func ranks(x []float64) []float64 {
	idx := make([]int, len(x))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(x[a], x[b]) })
	r := make([]float64, len(x))
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && x[idx[j+1]] == x[idx[i]] {
			j++
		}
		avg := float64(i+j)/2 + 1
		for k := i; k <= j; k++ {
			r[idx[k]] = avg
		}
		i = j + 1
	}
	return r
}

// pearson is the correlation of a and b (same length); NaN when either is
// constant.
func pearson(a, b []float64) float64 {
	n := float64(len(a))
	var ma, mb float64
	for i := range a {
		ma += a[i]
		mb += b[i]
	}
	ma, mb = ma/n, mb/n
	var sab, saa, sbb float64
	for i := range a {
		da, db := a[i]-ma, b[i]-mb
		sab += da * db
		saa += da * da
		sbb += db * db
	}
	if saa == 0 || sbb == 0 {
		return math.NaN()
	}
	return sab / math.Sqrt(saa*sbb)
}
