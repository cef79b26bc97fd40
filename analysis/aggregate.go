package analysis

import (
	"cmp"
	"slices"
)

// Aggregate summarizes the repetitions of one offered rate on one stack (and one
// protocol and application). Latencies and the achieved rate are means over the
// valid repetitions with their min–max spread; the counts are totals over all
// repetitions, valid or not. When NValid is 0 the means and spreads are 0.
type Aggregate struct {
	Stack, Protocol, App string
	// OfferedRPS is the offered rate the repetitions share, requests/s.
	OfferedRPS float64
	// N counts all repetitions, NValid the valid ones.
	N, NValid int
	// AchievedRPS is the mean achieved rate, AchievedMin/Max its spread.
	AchievedRPS, AchievedMin, AchievedMax float64
	// P50us, P99us and P999us are mean percentiles in µs; *Min/*Max their spread.
	P50us, P50Min, P50Max    float64
	P99us, P99Min, P99Max    float64
	P999us, P999Min, P999Max float64
	// Sent, Lost and Late are totals over all repetitions.
	Sent, Lost, Late uint64
	// AllValid is true when every repetition is valid.
	AllValid bool
}

// spread accumulates a mean and a min–max range.
type spread struct {
	n             int
	sum, min, max float64
}

func (s *spread) add(v float64) {
	if s.n == 0 || v < s.min {
		s.min = v
	}
	if s.n == 0 || v > s.max {
		s.max = v
	}
	s.sum += v
	s.n++
}

// get returns mean, min, max (zeros when empty).
func (s *spread) get() (mean, lo, hi float64) {
	if s.n == 0 {
		return 0, 0, 0
	}
	return s.sum / float64(s.n), s.min, s.max
}

// AggregateByStackRate groups pts by (stack, protocol, app, offered rate) and
// summarizes the repetitions of each group. Invalid points are counted (N, the
// totals, AllValid) but left out of the means. The result is sorted by stack,
// protocol, app, then offered rate.
func AggregateByStackRate(pts []Point) []Aggregate {
	type key struct {
		stack, protocol, app string
		rate                 float64
	}
	type acc struct {
		agg                 Aggregate
		ach, p50, p99, p999 spread
	}
	groups := map[key]*acc{}
	for _, p := range pts {
		k := key{p.Stack, p.Protocol, p.App, p.OfferedRPS}
		a := groups[k]
		if a == nil {
			a = &acc{agg: Aggregate{Stack: p.Stack, Protocol: p.Protocol, App: p.App, OfferedRPS: p.OfferedRPS, AllValid: true}}
			groups[k] = a
		}
		a.agg.N++
		a.agg.Sent += p.Sent
		a.agg.Lost += p.Lost
		a.agg.Late += p.Late
		if !p.Valid {
			a.agg.AllValid = false
			continue
		}
		a.agg.NValid++
		a.ach.add(p.AchievedRPS)
		a.p50.add(p.P50us)
		a.p99.add(p.P99us)
		a.p999.add(p.P999us)
	}
	out := make([]Aggregate, 0, len(groups))
	for _, a := range groups {
		g := a.agg
		g.AchievedRPS, g.AchievedMin, g.AchievedMax = a.ach.get()
		g.P50us, g.P50Min, g.P50Max = a.p50.get()
		g.P99us, g.P99Min, g.P99Max = a.p99.get()
		g.P999us, g.P999Min, g.P999Max = a.p999.get()
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b Aggregate) int {
		return cmp.Or(
			cmp.Compare(a.Stack, b.Stack),
			cmp.Compare(a.Protocol, b.Protocol),
			cmp.Compare(a.App, b.App),
			cmp.Compare(a.OfferedRPS, b.OfferedRPS),
		)
	})
	return out
}
