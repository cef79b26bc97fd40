// Package stall injects vCPU stalls on purpose: a thread pinned to one core,
// at a real-time priority above the roles' normal one, that spins for a
// fixed time at a fixed period. Whatever else runs on that core (the load
// generator, say) loses the CPU for that long, exactly as when a
// hypervisor takes a vCPU away. It exists to test, on a quiet machine, that
// the harness tells such stalls from saturation (a stalled point is an upper
// bound; a generator that falls behind for its own reasons is invalid), and
// to measure how a result degrades on a noisy machine without needing one.
//
// Linux's real-time throttling (sched_rt_runtime_us, 95% by default) bounds
// what any SCHED_FIFO spinner may take; Spec.Validate keeps the duty cycle
// far below that.
package stall

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Spec is one injection: a stall of Length every Period on CPU.
type Spec struct {
	CPU    int           `json:"cpu"`
	Length time.Duration `json:"length_ns"`
	Period time.Duration `json:"period_ns"`
}

// maxDuty is the largest share of the core a Spec may take: a tenth, which is
// already a far noisier machine than the VMs measured here (their stalls took
// well under 1%).
const maxDuty = 0.1

// Parse reads "LENGTH/PERIOD" (e.g. "2ms/100ms": 2 ms of stall every 100 ms).
// The CPU is the caller's to set.
func Parse(s string) (Spec, error) {
	l, p, ok := strings.Cut(s, "/")
	if !ok {
		return Spec{}, fmt.Errorf("stall injection %q: want LENGTH/PERIOD, e.g. 2ms/100ms", s)
	}
	length, err := time.ParseDuration(strings.TrimSpace(l))
	if err != nil {
		return Spec{}, fmt.Errorf("stall injection %q: length: %v", s, err)
	}
	period, err := time.ParseDuration(strings.TrimSpace(p))
	if err != nil {
		return Spec{}, fmt.Errorf("stall injection %q: period: %v", s, err)
	}
	sp := Spec{Length: length, Period: period}
	return sp, sp.Validate()
}

// Validate checks that the stall is positive and takes at most a tenth of
// the core.
func (s Spec) Validate() error {
	switch {
	case s.Length <= 0 || s.Period <= 0:
		return fmt.Errorf("stall injection %v every %v: length and period must be positive", s.Length, s.Period)
	case float64(s.Length) > maxDuty*float64(s.Period):
		return fmt.Errorf("stall injection %v every %v takes %.0f%% of the core; at most %.0f%% is allowed (LENGTH ≤ PERIOD/10)",
			s.Length, s.Period, 100*float64(s.Length)/float64(s.Period), 100*maxDuty)
	case s.CPU < 0:
		return fmt.Errorf("stall injection: cpu %d is negative", s.CPU)
	}
	return nil
}

func (s Spec) String() string { return fmt.Sprintf("%v every %v on cpu %d", s.Length, s.Period, s.CPU) }

// Stats is what an injector did.
type Stats struct {
	Stalls int           `json:"stalls"`
	Spun   time.Duration `json:"spun_ns"` // CPU time taken in total
}

// Injector is a running injection; Stop ends it.
type Injector struct {
	spec  Spec
	quit  atomic.Bool
	done  chan struct{}
	stats Stats
	once  sync.Once
	ready chan error
}

// fifoPriority is the injector's SCHED_FIFO priority: any real-time priority
// preempts the roles, which run SCHED_OTHER.
const fifoPriority = 10

// Start begins injecting. It returns once the thread runs pinned at its
// priority, or the reason it could not (not root, no such CPU).
func Start(s Spec) (*Injector, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	in := &Injector{spec: s, done: make(chan struct{}), ready: make(chan error, 1)}
	go in.run()
	if err := <-in.ready; err != nil {
		return nil, err
	}
	return in, nil
}

func (in *Injector) run() {
	defer close(in.done)
	// The thread is this goroutine's alone and ends with it (never unlocked),
	// so its affinity and priority never leak to other goroutines.
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(in.spec.CPU)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		in.ready <- fmt.Errorf("stall injection: pin to cpu %d: %w", in.spec.CPU, err)
		return
	}
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: fifoPriority}
	if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
		in.ready <- fmt.Errorf("stall injection: SCHED_FIFO priority %d: %w (needs root)", fifoPriority, err)
		return
	}
	in.ready <- nil
	next := time.Now().Add(in.spec.Period)
	for !in.quit.Load() {
		// Sleep (the core is the roles') until the next stall, in short
		// steps so that Stop does not wait a whole period.
		for d := time.Until(next); d > 0 && !in.quit.Load(); d = time.Until(next) {
			time.Sleep(min(d, 10*time.Millisecond))
		}
		if in.quit.Load() {
			return
		}
		start := time.Now()
		for time.Since(start) < in.spec.Length {
		}
		in.stats.Stalls++
		in.stats.Spun += time.Since(start)
		next = next.Add(in.spec.Period)
		if now := time.Now(); next.Before(now) {
			next = now.Add(in.spec.Period) // never stall twice in a row
		}
	}
}

// Stop ends the injection and returns what it did. Safe to call twice.
func (in *Injector) Stop() Stats {
	in.once.Do(func() { in.quit.Store(true); <-in.done })
	return in.stats
}
