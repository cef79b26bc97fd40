package loadgen

// Late spells: why a generator sent late. A request sent more than the late
// threshold after its scheduled time makes the latency the generator records
// (from the schedule, so coordinated omission cannot hide it) include time
// the stack never saw. Two causes look alike in the late count and differ in
// time: a generator that cannot keep up (saturation) falls behind and stays
// behind, one long spell; a VM that takes the generator's vCPU away for a
// while (up to ~1 ms on the AMD EPYC guest) makes a short spell, after which
// the generator catches up and sends on time again. The spells tell them
// apart: the runner invalidates a point only for the first cause, and reports
// the second as an upper bound (experiments.judge).

// lateSpells follows the spells of consecutive late sends of one engine, in
// scheduled time: a spell starts at the schedule of its first late request
// and ends at the schedule of the next request sent on time (or the last
// one's, at the end of the run).
type lateSpells struct {
	threshold uint64 // ticks
	in        bool
	from      uint64 // scheduled time of the spell's first late request
	last      uint64 // scheduled time of the latest request seen
	n         int
	longest   uint64 // ticks
	total     uint64 // ticks
}

// observe takes one measured send: its scheduled time and its lag (ticks),
// in send order.
func (s *lateSpells) observe(sched, lag uint64) {
	s.last = sched
	switch late := lag > s.threshold; {
	case late && !s.in:
		s.in, s.from = true, sched
	case !late && s.in:
		s.close(sched)
	}
}

func (s *lateSpells) close(at uint64) {
	s.in = false
	d := uint64(0)
	if at > s.from {
		d = at - s.from
	}
	s.n++
	s.total += d
	s.longest = max(s.longest, d)
}

// finish closes a spell still open at the end of the run and writes the
// counters into res (merged with what is there: several engines).
func (s *lateSpells) finish(res *Result, nsPerTick float64) {
	if s.in {
		s.close(s.last)
	}
	res.LateSpells += s.n
	res.LongestLateSpellUs = max(res.LongestLateSpellUs, float64(s.longest)*nsPerTick/1e3)
	res.LateSpellsUs += float64(s.total) * nsPerTick / 1e3
}
