package experiments

import (
	"fmt"

	"github.com/joyride-bench/joyride/testbed/stall"
)

// StallRecord is meta.json's record of stalls injected on purpose during a
// run (RunOptions.InjectStalls): what was asked and what the injector did.
type StallRecord struct {
	Spec  stall.Spec  `json:"spec"`
	Stats stall.Stats `json:"stats"`
}

// startStalls starts the run's stall injection, if any, on the generator's
// core unless the spec names another. The returned stop ends it and returns
// the record for meta.json (nil when nothing was injected).
func startStalls(o *RunOptions, remote bool) (stop func() *StallRecord, err error) {
	if o.InjectStalls == nil {
		return func() *StallRecord { return nil }, nil
	}
	if remote {
		return nil, fmt.Errorf("stall injection runs on the local testbed only (it pins a thread on this machine)")
	}
	sp := *o.InjectStalls
	if sp.CPU < 0 {
		sp.CPU = o.Placement.Generator
	}
	in, err := stall.Start(sp)
	if err != nil {
		return nil, err
	}
	return func() *StallRecord { return &StallRecord{Spec: sp, Stats: in.Stop()} }, nil
}

// stallText is report.md's line for an injection.
func stallText(s *StallRecord) string {
	return fmt.Sprintf("%s on purpose (a SCHED_FIFO spinner): %d stalls, %.1f ms in total",
		s.Spec, s.Stats.Stalls, float64(s.Stats.Spun.Microseconds())/1000)
}
