package analysis

import (
	"math"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// CILevel is the confidence level of every percentile interval the package
// computes.
const CILevel = 0.95

// QuantileCI returns a distribution-free 95% confidence interval for the q-th
// quantile (0 < q < 1) of the distribution the values of h (nanoseconds) were
// drawn from, in nanoseconds.
//
// Method, the classic distribution-free interval from order statistics (e.g.
// Le Boudec, "Performance Evaluation of Computer and Communication Systems",
// ch. 2): of n independent samples, the number B
// lying below the true quantile ξ_q is Binomial(n, q) whatever the
// distribution, so with X(1) <= ... <= X(n) the sorted samples,
// P(X(l) <= ξ_q <= X(u)) >= P(l <= B <= u-1). Taking l = the 2.5% quantile of
// Binomial(n, q) and u = its 97.5% quantile + 1 gives coverage of at least 95%.
//
// Assumptions, stated because they are not checked here: the samples are
// independent and identically distributed (CheckPoint looks for drift and
// correlation between the seconds of a point; it cannot see correlation
// between consecutive requests). The histogram stores each value to within
// its precision (0.1%), so the bound is read conservatively: lo is the lowest
// value equivalent to X(l) and hi the highest value equivalent to X(u), which
// widens the interval by at most one bucket and never narrows it.
//
// When l would be 0 (too few samples to bound the quantile from below) lo is
// 0, the smallest possible latency; when u would exceed n, hi is +Inf. An empty
// histogram gives ok == false.
func QuantileCI(h *hdrhistogram.Histogram, q float64) (lo, hi float64, ok bool) {
	if h == nil || h.TotalCount() == 0 || !(q > 0 && q < 1) {
		return 0, 0, false
	}
	n := h.TotalCount()
	l, u := orderStatRanks(n, q)
	bars := h.Distribution()
	lo, hi = 0, math.Inf(1)
	if l >= 1 {
		lo = float64(barAtRank(bars, l).From)
	}
	if u <= n {
		hi = float64(barAtRank(bars, u).To)
	}
	return lo, hi, true
}

// orderStatRanks returns the 1-based ranks (l, u) of the order statistics that
// bound the q-quantile of n samples with confidence CILevel. l may be 0 and u
// may be n+1: no bound on that side.
func orderStatRanks(n int64, q float64) (l, u int64) {
	tail := (1 - CILevel) / 2
	return binomQuantile(tail, n, q), binomQuantile(1-tail, n, q) + 1
}

// barAtRank returns the bucket holding the rank-th smallest value (1-based;
// 1 <= rank <= total count).
func barAtRank(bars []hdrhistogram.Bar, rank int64) hdrhistogram.Bar {
	var cum int64
	for _, b := range bars {
		cum += b.Count
		if cum >= rank {
			return b
		}
	}
	return bars[len(bars)-1]
}
