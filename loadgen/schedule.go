package loadgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"
)

// MaxRequests bounds one point's schedule (and so its memory: 8 bytes a request).
const MaxRequests = 50_000_000

// Schedules the generator knows.
const (
	Poisson  = "poisson"  // exponential inter-arrival times: independent arrivals
	Constant = "constant" // fixed inter-arrival time 1/rate
	// Bursty, written "bursty:ON,OFF" (e.g. "bursty:1ms,4ms"), alternates ON
	// periods of Poisson arrivals and OFF periods of none, at the rate that
	// keeps the mean at the offered rate: the same load, arriving in bursts.
	Bursty = "bursty"
)

// parseBursty reads "bursty:ON,OFF".
func parseBursty(kind string) (on, off time.Duration, err error) {
	_, args, _ := strings.Cut(kind, ":")
	a, b, ok := strings.Cut(args, ",")
	if ok {
		on, err = time.ParseDuration(a)
		if err == nil {
			off, err = time.ParseDuration(b)
		}
	}
	if !ok || err != nil || on <= 0 || off < 0 || on > time.Minute || off > time.Minute {
		return 0, 0, fmt.Errorf("schedule %q: want bursty:ON,OFF with durations such as bursty:1ms,4ms (ON > 0)", kind)
	}
	return on, off, nil
}

// ValidSchedule checks a schedule's name (and a bursty schedule's periods).
func ValidSchedule(kind string) error {
	switch {
	case kind == Poisson, kind == Constant:
		return nil
	case strings.HasPrefix(kind, Bursty+":"):
		_, _, err := parseBursty(kind)
		return err
	}
	return fmt.Errorf("unknown arrival process %q (allowed: %s, %s, %s:ON,OFF)", kind, Poisson, Constant, Bursty)
}

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
		if !strings.HasPrefix(kind, Bursty+":") {
			return nil, fmt.Errorf("schedule: %w", ValidSchedule(kind))
		}
		on, off, err := parseBursty(kind)
		if err != nil {
			return nil, err
		}
		// Poisson in "active time" at the ON rate, each active instant mapped
		// to its ON period: active time a lands at (a div on)*(on+off) + a mod on.
		cycle := on + off
		onMean := mean * float64(on) / float64(cycle)
		rng := rand.New(rand.NewPCG(seed, 0x627572737479)) // "bursty"
		a := 0.0
		for {
			a += rng.ExpFloat64() * onMean
			at := time.Duration(a)
			t := (at/on)*cycle + at%on
			if t >= span {
				break
			}
			if len(out) >= MaxRequests {
				return nil, fmt.Errorf("schedule: more than %d requests drawn", MaxRequests)
			}
			out = append(out, t)
		}
	}
	return out, nil
}
