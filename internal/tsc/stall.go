package tsc

import "time"

// Stalls is what a spinning thread saw of the time its CPU was taken from it.
type Stalls struct {
	Seconds  float64 `json:"seconds"`
	MaxGapUs float64 `json:"max_gap_us"`
	Over50us int     `json:"gaps_over_50us"`
	Over1ms  int     `json:"gaps_over_1ms"`
}

// MeasureStalls spins on the calling thread for d, reading the counter, and
// records the gaps between consecutive reads. A spinning loop reads it every few
// nanoseconds, so a long gap is time the thread did not run: the hypervisor
// running another vCPU, an interrupt, a kernel thread. On a VM these gaps, not
// the network, can dominate a tail latency; the caller pins the thread to the
// CPU it wants to probe.
func MeasureStalls(d time.Duration) Stalls {
	t50, t1ms := FromDuration(50*time.Microsecond), FromDuration(time.Millisecond)
	start := Read()
	end := start + FromDuration(d)
	var s Stalls
	var maxGap uint64
	last := start
	for last < end {
		now := Read()
		gap := now - last
		if gap > t50 {
			s.Over50us++
			if gap > t1ms {
				s.Over1ms++
			}
			if gap > maxGap {
				maxGap = gap
			}
		}
		last = now
	}
	s.Seconds = float64(ToNanos(last-start)) / 1e9
	s.MaxGapUs = float64(ToNanos(maxGap)) / 1e3
	return s
}
