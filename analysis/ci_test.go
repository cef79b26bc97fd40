package analysis

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestOrderStatRanksClassicTable(t *testing.T) {
	// The textbook distribution-free 95% interval for the median of 100
	// samples is [X(40), X(61)].
	if l, u := orderStatRanks(100, 0.5); l != 40 || u != 61 {
		t.Errorf("median of 100: ranks %d, %d; want 40, 61", l, u)
	}
	// p99 of 100 samples has no finite upper bound: X(100) is below the true
	// p99 with probability 0.99^100 = 37%.
	if l, u := orderStatRanks(100, 0.99); u != 101 || l < 95 {
		t.Errorf("p99 of 100: ranks %d, %d; want an upper rank past the sample", l, u)
	}
	// Too few samples to bound the median from below or above.
	if l, u := orderStatRanks(5, 0.5); l != 0 || u != 6 {
		t.Errorf("median of 5: ranks %d, %d; want 0, 6", l, u)
	}
}

func TestQuantileCIKnownHistogram(t *testing.T) {
	// 1..1000 µs once each: X(k) = k µs.
	h := NewHistogram()
	for v := int64(1); v <= 1000; v++ {
		h.RecordValue(v * 1000)
	}
	l, u := orderStatRanks(1000, 0.5)
	lo, hi, ok := QuantileCI(h, 0.5)
	if !ok || !near(lo/1000, float64(l)) || !near(hi/1000, float64(u)) || lo > float64(l)*1000 || hi < float64(u)*1000 {
		t.Errorf("median CI = [%g, %g] ns, want about [%d, %d] µs, widened by the bucket", lo, hi, l, u)
	}
	lat := Summarize(h)
	if !(lat.P50Lo <= lat.P50us && lat.P50us <= lat.P50Hi && lat.P99Lo <= lat.P99us && lat.P99us <= lat.P99Hi) {
		t.Errorf("point estimates outside their intervals: %+v", lat)
	}
	if lat.P50Hi-lat.P50Lo > 70 || lat.P99Hi-lat.P99Lo > 20 {
		t.Errorf("intervals too wide: %+v", lat)
	}
	if _, _, ok := QuantileCI(NewHistogram(), 0.5); ok {
		t.Error("empty histogram has a CI")
	}
	var p Point
	FillLatency(&p, lat)
	if !p.HasCI() || p.P99Hi != lat.P99Hi || p.P50Lo != lat.P50Lo {
		t.Errorf("FillLatency: %+v", p)
	}

	small := NewHistogram()
	for v := int64(1); v <= 50; v++ {
		small.RecordValue(v * 1000)
	}
	if s := Summarize(small); !math.IsInf(s.P99Hi, 1) || !(s.P99Lo > 0) {
		t.Errorf("p99 of 50 samples: [%g, %g], want a finite lower bound and no upper bound", s.P99Lo, s.P99Hi)
	}
}

// TestQuantileCICoverage draws exponential samples again and again: the 95%
// intervals of p50 and p99 must cover the true quantiles about 95% of the time
// (at least 95%: the interval is conservative by construction).
func TestQuantileCICoverage(t *testing.T) {
	const (
		meanUs = 100.0
		n      = 2000
		draws  = 400
	)
	rng := rand.New(rand.NewPCG(7, 11))
	truth := map[float64]float64{0.5: meanUs * math.Ln2, 0.99: meanUs * math.Log(100)}
	covered := map[float64]int{}
	h := NewHistogram()
	for range draws {
		h.Reset()
		for range n {
			h.RecordValue(int64(rng.ExpFloat64() * meanUs * 1000))
		}
		for q, want := range truth {
			lo, hi, ok := QuantileCI(h, q)
			if !ok {
				t.Fatal("no CI")
			}
			if lo/1000 <= want && want <= hi/1000 {
				covered[q]++
			}
		}
	}
	for q := range truth {
		c := float64(covered[q]) / draws
		t.Logf("q=%g: coverage %.3f over %d draws of %d samples", q, c, draws, n)
		if c < 0.92 || c > 0.995 {
			t.Errorf("q=%g: coverage %.3f, want about 0.95", q, c)
		}
	}
}
