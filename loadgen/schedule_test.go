package loadgen

import (
	"math"
	"testing"
	"time"
)

func TestPoissonScheduleHasTheOfferedRateAndExponentialGaps(t *testing.T) {
	const rate = 100000.0
	s, err := DrawSchedule(Poisson, rate, 2*time.Second, 7)
	if err != nil {
		t.Fatal(err)
	}
	want := rate * 2
	if math.Abs(float64(len(s))-want) > 4*math.Sqrt(want) {
		t.Fatalf("%d requests in 2 s at %v/s, want about %v", len(s), rate, want)
	}
	// Exponential gaps: mean = stddev = 1/rate, and increasing times.
	var sum, sumSq float64
	for i := 1; i < len(s); i++ {
		if s[i] < s[i-1] {
			t.Fatalf("schedule goes back in time at %d", i)
		}
		g := float64(s[i] - s[i-1])
		sum += g
		sumSq += g * g
	}
	n := float64(len(s) - 1)
	mean := sum / n
	sd := math.Sqrt(sumSq/n - mean*mean)
	if math.Abs(mean-1e4)/1e4 > 0.02 || math.Abs(sd-1e4)/1e4 > 0.05 {
		t.Fatalf("gaps: mean %.0f ns, sd %.0f ns; want both about 10000 ns", mean, sd)
	}
	again, _ := DrawSchedule(Poisson, rate, 2*time.Second, 7)
	other, _ := DrawSchedule(Poisson, rate, 2*time.Second, 8)
	if len(again) != len(s) || again[100] != s[100] {
		t.Fatal("same seed drew a different schedule")
	}
	if len(other) == len(s) && other[100] == s[100] {
		t.Fatal("different seeds drew the same schedule")
	}
}

func TestConstantSchedule(t *testing.T) {
	s, err := DrawSchedule(Constant, 1000, time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 1000 || s[1]-s[0] != time.Millisecond || s[999] != 999*time.Millisecond {
		t.Fatalf("constant 1000/s over 1 s: %d requests, first gap %v, last %v", len(s), s[1]-s[0], s[len(s)-1])
	}
}

func TestScheduleRefusesBadInput(t *testing.T) {
	for _, c := range []struct {
		kind string
		rate float64
		span time.Duration
	}{
		{Poisson, 0, time.Second},
		{Poisson, -5, time.Second},
		{Poisson, math.NaN(), time.Second},
		{Poisson, 1000, 0},
		{"bursty", 1000, time.Second},
		{Poisson, 1e9, time.Second}, // beyond MaxRequests
	} {
		if _, err := DrawSchedule(c.kind, c.rate, c.span, 1); err == nil {
			t.Errorf("DrawSchedule(%q, %v, %v) accepted", c.kind, c.rate, c.span)
		}
	}
}

func TestBurstyScheduleKeepsTheMeanRateInBursts(t *testing.T) {
	const rate = 50000.0
	s, err := DrawSchedule("bursty:1ms,4ms", rate, 2*time.Second, 3)
	if err != nil {
		t.Fatal(err)
	}
	if want := rate * 2; math.Abs(float64(len(s))-want) > 5*math.Sqrt(want) {
		t.Fatalf("%d requests in 2 s, want about %.0f", len(s), want)
	}
	for i, x := range s {
		if x%(5*time.Millisecond) >= time.Millisecond {
			t.Fatalf("request %d at %v falls in an OFF period", i, x)
		}
		if i > 0 && x < s[i-1] {
			t.Fatalf("schedule goes back in time at %d", i)
		}
	}
	for _, bad := range []string{"bursty", "bursty:1ms", "bursty:0s,1ms", "bursty:x,y", "spiky:1ms,1ms"} {
		if ValidSchedule(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
