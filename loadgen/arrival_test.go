package loadgen

import (
	"math/rand/v2"
	"testing"
	"time"
)

// The statistic accepts a real Poisson schedule about 99% of the time at the 1%
// critical value, and rejects regular or bunched sends.
func TestAndersonDarlingSeesWhetherArrivalsArePoisson(t *testing.T) {
	const mean = 10000.0 // ns
	rejected := 0
	for seed := uint64(0); seed < 200; seed++ {
		s, _ := DrawSchedule(Poisson, 1e5, 20*time.Millisecond, seed)
		gaps := make([]float64, len(s)-1)
		for i := range gaps {
			gaps[i] = float64(s[i+1] - s[i])
		}
		if AndersonDarlingExp(gaps, mean) > ADCrit1 {
			rejected++
		}
	}
	if rejected > 10 { // expect ~2 of 200
		t.Errorf("a true Poisson schedule was rejected %d times in 200", rejected)
	}
	constant := make([]float64, 2000)
	for i := range constant {
		constant[i] = mean
	}
	if a := AndersonDarlingExp(constant, mean); a < ADCrit1 {
		t.Errorf("constant gaps accepted as exponential: A² %.2f", a)
	}
	// Bunched: pairs sent together (a gap of 0 then a double gap).
	rng := rand.New(rand.NewPCG(1, 2))
	bunched := make([]float64, 0, 2000)
	for len(bunched) < 2000 {
		g := rng.ExpFloat64() * mean
		bunched = append(bunched, 0, 2*g)
	}
	if a := AndersonDarlingExp(bunched, mean); a < ADCrit1 {
		t.Errorf("bunched sends accepted as Poisson: A² %.2f", a)
	}
}
