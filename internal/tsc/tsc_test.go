package tsc

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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
	// Two OS threads pinned to the same CPU: the kernel's scheduler
	// time-shares it in slices of milliseconds, so the probe must see gaps of
	// over a millisecond. (A second goroutine under GOMAXPROCS=1 is not enough:
	// Go cannot preempt the probe while it is inside the assembly counter read,
	// and on CI the competitor sometimes never ran.)
	cpu := pinnableCPU(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var was unix.CPUSet
	if err := unix.SchedGetaffinity(0, &was); err != nil {
		t.Fatal(err)
	}
	defer unix.SchedSetaffinity(0, &was)
	pin(t, cpu)
	var stop, started atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Exiting while locked ends this pinned thread rather than
		// returning it to the runtime's pool.
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return
		}
		started.Store(true)
		for !stop.Load() {
		}
	}()
	for deadline := time.Now().Add(2 * time.Second); !started.Load() && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if !started.Load() {
		stop.Store(true)
		t.Fatal("competing thread did not start (affinity refused?)")
	}
	s := MeasureStalls(200 * time.Millisecond)
	stop.Store(true)
	<-done
	if s.Over1ms == 0 || s.MaxGapUs < 1000 || s.Over50us < s.Over1ms {
		t.Fatalf("a competing thread on the same CPU went unseen: %+v", s)
	}
	if s.Seconds < 0.19 || s.Seconds > 2 {
		t.Fatalf("probe of 200 ms lasted %.3f s", s.Seconds)
	}
}

// pinnableCPU is the last CPU this test may run on.
func pinnableCPU(t *testing.T) int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	for cpu := 1023; cpu >= 0; cpu-- {
		if set.IsSet(cpu) {
			return cpu
		}
	}
	t.Fatal("no CPU in the affinity mask")
	return 0
}

func pin(t *testing.T, cpu int) {
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
}
