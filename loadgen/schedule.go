package loadgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// MaxRequests bounds one point's schedule (and so its memory: 8 bytes a request).
const MaxRequests = 50_000_000

// Schedules the generator knows.
const (
	Poisson  = "poisson"  // exponential inter-arrival times: independent arrivals
	Constant = "constant" // fixed inter-arrival time 1/rate
)

// DrawSchedule returns the send times of every request of a point, as offsets
// from the start, for an open-loop arrival process of the given mean rate
// (requests/s) over span. It is drawn before the run so that drawing costs the
// packet loop nothing and so that the times are fixed whatever the stack does:
// latency is then measured from these scheduled times (no coordinated omission).
func DrawSchedule(kind string, rate float64, span time.Duration, seed uint64) ([]time.Duration, error) {
	if !(rate > 0) || math.IsInf(rate, 0) {
		return nil, fmt.Errorf("schedule: rate %v is not a positive number of requests/s", rate)
	}
	if span <= 0 {
		return nil, fmt.Errorf("schedule: span %v must be positive", span)
	}
	expected := rate * span.Seconds()
	if expected > MaxRequests {
		return nil, fmt.Errorf("schedule: %.0f requests (rate %.0f/s over %v) exceed the bound of %d", expected, rate, span, MaxRequests)
	}
	out := make([]time.Duration, 0, int(expected*1.01)+16)
	mean := float64(time.Second) / rate
	switch kind {
	case Constant:
		for i := 0; ; i++ {
			t := time.Duration(float64(i) * mean)
			if t >= span {
				break
			}
			out = append(out, t)
		}
	case Poisson:
		rng := rand.New(rand.NewPCG(seed, 0x6a6f7972696465)) // "joyride"
		t := 0.0
		for {
			t += rng.ExpFloat64() * mean
			if time.Duration(t) >= span {
				break
			}
			if len(out) >= MaxRequests {
				return nil, fmt.Errorf("schedule: more than %d requests drawn", MaxRequests)
			}
			out = append(out, time.Duration(t))
		}
	default:
		return nil, fmt.Errorf("schedule: unknown arrival process %q (allowed: %s, %s)", kind, Poisson, Constant)
	}
	return out, nil
}
