package stall

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/joyride-bench/joyride/internal/tsc"
	"golang.org/x/sys/unix"
)

func TestParse(t *testing.T) {
	s, err := Parse("2ms/100ms")
	if err != nil || s.Length != 2*time.Millisecond || s.Period != 100*time.Millisecond {
		t.Fatalf("Parse(2ms/100ms) = %+v, %v", s, err)
	}
	for in, want := range map[string]string{
		"2ms":        "want LENGTH/PERIOD",
		"x/100ms":    "length",
		"2ms/y":      "period",
		"20ms/100ms": "at most 10%",
		"0s/100ms":   "must be positive",
	} {
		if _, err := Parse(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want an error saying %q", in, err, want)
		}
	}
}

// A thread spinning on the injector's core sees a gap of about the stall's
// length once per period: the injector really takes the core away, as a
// hypervisor would.
func TestInjectorTakesTheCore(t *testing.T) {
	const cpu = 1
	if runtime.NumCPU() <= cpu {
		t.Fatalf("needs cpu %d; this machine has %d", cpu, runtime.NumCPU())
	}
	in, err := Start(Spec{CPU: cpu, Length: 3 * time.Millisecond, Period: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan tsc.Stalls)
	go func() {
		runtime.LockOSThread() // discarded with the goroutine, never unlocked
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			t.Error(err)
		}
		got <- tsc.MeasureStalls(time.Second)
	}()
	probe := <-got
	st := in.Stop()
	t.Logf("injector: %d stalls, %v spun; probe: longest gap %.0f µs, %d > 1 ms", st.Stalls, st.Spun, probe.MaxGapUs, probe.Over1ms)
	// 1 s at one stall per 50 ms: about 20; a loaded VM may delay a few.
	if st.Stalls < 10 || st.Spun < time.Duration(st.Stalls)*3*time.Millisecond {
		t.Errorf("injector stalled %d times for %v, want ≥ 10 of ≥ 3 ms", st.Stalls, st.Spun)
	}
	if probe.Over1ms < 10 || probe.MaxGapUs < 2500 {
		t.Errorf("the spinning probe on cpu %d saw %d gaps > 1 ms (longest %.0f µs), want ≥ 10 of about 3 ms", cpu, probe.Over1ms, probe.MaxGapUs)
	}
	if again := in.Stop(); again != st {
		t.Errorf("second Stop %+v, want %+v", again, st)
	}
}
