package loadgen

import (
	"math"
	"sort"

	"github.com/joyride-bench/joyride/analysis"
)

// ArrivalSamples is how many inter-send gaps the arrival check uses: enough to
// see batching, stalls and catch-up bursts, few enough that the loop's
// microsecond granularity alone does not reject a good schedule (with 20,000
// gaps every point failed, A² 8-1000, though sends were within µs of their
// times).
const ArrivalSamples = 1000

// ADCrit1 is the Anderson–Darling statistic's 1% critical value for a fully
// specified continuous distribution (Stephens 1974, case 0); the analysis
// package's validity checks hold it (analysis.ArrivalCrit1).
const ADCrit1 = analysis.ArrivalCrit1

// AndersonDarlingExp is the Anderson–Darling statistic A² of gaps (ns)
// against the exponential distribution with the given mean (ns), fully
// specified (case 0). It tells whether the requests really left as a Poisson
// process of the offered rate: batching, stalls and catch-up bursts of the
// generator all show as a large A², which Lancet checks before trusting a
// latency measurement. Gaps of 0 (sent in the same burst) are legal and
// push A² up, as they should.
func AndersonDarlingExp(gaps []float64, mean float64) float64 {
	n := len(gaps)
	if n == 0 || mean <= 0 {
		return math.NaN()
	}
	u := make([]float64, n)
	for i, g := range gaps {
		// F(x) = 1 - exp(-x/mean), kept inside (0, 1) so the logs stay finite.
		u[i] = math.Min(math.Max(-math.Expm1(-g/mean), 1e-12), 1-1e-12)
	}
	sort.Float64s(u)
	s := 0.0
	for i := 0; i < n; i++ {
		s += float64(2*i+1) * (math.Log(u[i]) + math.Log1p(-u[n-1-i]))
	}
	return -float64(n) - s/float64(n)
}

// checkArrivals fills res.ArrivalA2 and ArrivalN from the first measured send
// times (TSC ticks, sorted; at most ArrivalSamples+1 are used) of a Poisson
// schedule; other schedules, and too few sends, are not checked.
func checkArrivals(res *Result, cfg *Config, sendTimes []uint64, nsPerTick float64) {
	if len(sendTimes) > ArrivalSamples+1 {
		sendTimes = sendTimes[:ArrivalSamples+1]
	}
	if cfg.Schedule != Poisson || len(sendTimes) <= 100 {
		return
	}
	gaps := make([]float64, len(sendTimes)-1)
	for i := range gaps {
		gaps[i] = float64(sendTimes[i+1]-sendTimes[i]) * nsPerTick
	}
	res.ArrivalA2 = AndersonDarlingExp(gaps, 1e9/cfg.Rate)
	res.ArrivalN = len(gaps)
}
