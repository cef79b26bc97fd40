package tsc

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

func TestCounterAdvancesWithTime(t *testing.T) {
	a := Read()
	time.Sleep(20 * time.Millisecond)
	b := Read()
	if b <= a {
		t.Fatalf("TSC did not advance: %d then %d", a, b)
	}
	got := time.Duration(ToNanos(b - a))
	if got < 15*time.Millisecond || got > 200*time.Millisecond {
		t.Fatalf("20 ms sleep measured as %v with %.0f Hz", got, Hz())
	}
}

func BenchmarkRead(b *testing.B) {
	for i := 0; i < b.N; i++ {
		Read()
	}
}

func TestMeasureStallsSeesTimeTakenAway(t *testing.T) {
	// With one P, a second spinning goroutine takes the CPU from the probe every
	// time the scheduler preempts it (every ~10 ms): those are stalls it must see.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var stop atomic.Bool
	go func() {
		for !stop.Load() {
		}
	}()
	s := MeasureStalls(200 * time.Millisecond)
	stop.Store(true)
	if s.Over1ms == 0 || s.MaxGapUs < 1000 || s.Over50us < s.Over1ms {
		t.Fatalf("a competing goroutine went unseen: %+v", s)
	}
	if s.Seconds < 0.19 || s.Seconds > 2 {
		t.Fatalf("probe of 200 ms lasted %.3f s", s.Seconds)
	}
}
