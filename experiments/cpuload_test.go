package experiments

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// currentCPU pins the calling thread to the machine's last CPU and returns it.
func currentCPU(t *testing.T) int {
	cpu := runtime.NumCPU() - 1
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var all unix.CPUSet
		for c := range runtime.NumCPU() {
			all.Set(c)
		}
		unix.SchedSetaffinity(0, &all)
	})
	return cpu
}

// A goroutine spinning on a core for the window makes the sampler read about
// one busy core there; the window before it reads about idle.
func TestCPUSamplerSeesABusyCore(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu := currentCPU(t)
	s := startCPUSampler([]int{cpu}, 20*time.Millisecond)
	start := time.Now()
	for time.Since(start) < 600*time.Millisecond {
	}
	end := time.Now()
	s.Stop()
	busy, ok := s.Busy(start, end)
	if !ok || busy < 0.7 || busy > 1.05 {
		t.Fatalf("a spinning thread on cpu %d read as %.2f busy cores (ok %v)", cpu, busy, ok)
	}
	if _, ok := s.Busy(end.Add(time.Hour), end.Add(2*time.Hour)); ok {
		t.Fatal("an empty window gave a number")
	}
}
