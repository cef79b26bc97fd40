package procstats

import (
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The fixture's numbers, worked by hand: busy is user+nice+system+irq+softirq,
// idle is idle+iowait, steal stands alone, and guest (already in user) is not
// added again.
func TestParseCPUFixture(t *testing.T) {
	b, err := os.ReadFile("testdata/stat")
	if err != nil {
		t.Fatal(err)
	}
	tick := 10 * time.Millisecond
	for _, c := range []struct {
		cpus []int
		want CPUTimes
	}{
		{nil, CPUTimes{Busy: 6075 * tick, Idle: 16770 * tick, Steal: 400 * tick}},
		{[]int{0}, CPUTimes{Busy: 3060 * tick, Idle: 8385 * tick, Steal: 200 * tick}},
		{[]int{0, 1}, CPUTimes{Busy: 6075 * tick, Idle: 16770 * tick, Steal: 400 * tick}},
		{[]int{1, 1}, CPUTimes{Busy: 3015 * tick, Idle: 8385 * tick, Steal: 200 * tick}},
	} {
		got, err := ParseCPU(strings.NewReader(string(b)), c.cpus...)
		if err != nil || got != c.want {
			t.Errorf("cpus %v: %+v %v, want %+v", c.cpus, got, err, c.want)
		}
	}
	if _, err := ParseCPU(strings.NewReader(string(b)), 0, 2); err == nil || !strings.Contains(err.Error(), "cpu2") {
		t.Errorf("a cpu the file lacks: %v", err)
	}
	for _, bad := range []string{"cpu 1 2 3\n", "cpu 1 2 3 x 5 6 7 8\n", "cpu 1 2 3 -4 5 6 7 8\n"} {
		if _, err := ParseCPU(strings.NewReader(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// Against the real /proc/stat: over a span, all CPUs together account for
// about the span's wall time each (every state counted, steal included), and
// a thread spinning through the span shows as busy time. The bounds are wide
// (half to one and a half of the wall time; a third of the spin) because the
// kernel accounts in 10 ms ticks and this VM's vCPUs are noisy: they catch a
// wrong field or a wrong unit, not a small error.
func TestReadCPUReal(t *testing.T) {
	before, err := ReadCPU()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for time.Since(start) < 400*time.Millisecond {
	}
	wall := time.Since(start)
	after, err := ReadCPU()
	if err != nil {
		t.Fatal(err)
	}
	d := after.Sub(before)
	cores := time.Duration(runtime.NumCPU())
	if d.Total() < wall*cores/2 || d.Total() > wall*cores*3/2 {
		t.Errorf("%d CPUs over %v accounted %v (%+v)", cores, wall, d.Total(), d)
	}
	if d.Busy < wall/3 {
		t.Errorf("a thread spinning %v showed %v busy (%+v)", wall, d.Busy, d)
	}
	one, err := ReadCPU(0)
	if err != nil || one.Total() <= 0 || one.Total() > after.Total() {
		t.Errorf("cpu0 %+v %v, all %+v", one, err, after)
	}
	if _, err := ReadCPU(runtime.NumCPU() + 4096); err == nil {
		t.Error("a CPU the machine lacks read without error")
	}
}
