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
	// OfferedRPS is the offered rate the repetitions share, requests/s (0 in
	// a closed loop).
	OfferedRPS float64
	// Size and Window are the request size and closed-loop window the
	// repetitions share (see Point). SizeSwept is set when the points
	// aggregated together had several sizes, so that names tell them apart.
	Size, Window int
	SizeSwept    bool
	// Instances is the application instances the repetitions share;
	// InstancesSwept is set when the points had several counts.
	Instances      int
	InstancesSwept bool
	// ServerMemMiB is the mean server-side resident memory (see Point).
	ServerMemMiB float64
	// Gbps is the mean payload throughput of the valid repetitions, Gbit/s.
	Gbps float64
	// ServerCores and CPUUsPerReq are means over the valid repetitions that
	// measured them (see Point); 0 when none did.
	ServerCores, CPUUsPerReq float64
	// N counts all repetitions, NValid the valid ones.
	N, NValid int
	// AchievedRPS is the mean achieved rate, AchievedMin/Max its spread.
	AchievedRPS, AchievedMin, AchievedMax float64
	// P50us, P99us and P999us are mean percentiles in µs; *Min/*Max their spread.
	P50us, P50Min, P50Max    float64
	P99us, P99Min, P99Max    float64
	P999us, P999Min, P999Max float64
	// P50Lo, P50Hi, P99Lo and P99Hi bound the 95% confidence intervals of the
	// valid repetitions together: the lowest of their lower bounds and the
	// highest of their upper bounds, so every repetition's interval lies inside.
	// Set only when every valid repetition has intervals (HasCI); 0 otherwise.
	P50Lo, P50Hi, P99Lo, P99Hi float64
	// Sent, Lost and Late are totals over all repetitions.
	Sent, Lost, Late uint64
	// AllValid is true when every repetition is valid.
	AllValid bool
	// NUpper counts the valid repetitions that are upper bounds (the
	// generator stalled by the VM, Point.UpperBound).
	NUpper int
	// NChecked counts the repetitions with validity checks, NFailed those
	// whose checks failed (Checks.Failed), valid or not.
	NChecked, NFailed int
}

// HasCI reports whether a carries confidence intervals (every valid
// repetition had them).
func (a Aggregate) HasCI() bool { return a.NValid > 0 && a.P50Hi > 0 && a.P99Hi > 0 }

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

// AggregateByStackRate groups pts by (stack, protocol, app, size, window,
// offered rate) and summarizes the repetitions of each group. Invalid points
// are counted (N, the totals, AllValid) but left out of the means. The result
// is sorted by stack, protocol, app, size, window, then offered rate.
func AggregateByStackRate(pts []Point) []Aggregate {
	type key struct {
		stack, protocol, app string
		size, window         int
		instances            int
		rate                 float64
	}
	type acc struct {
		agg                        Aggregate
		ach, p50, p99, p999, gbps  spread
		cores, cpuPerReq, rss      spread
		ciReps                     int
		p50lo, p50hi, p99lo, p99hi spread
	}
	groups := map[key]*acc{}
	sizes, instances := map[int]bool{}, map[int]bool{}
	for _, p := range pts {
		sizes[p.Size] = true
		instances[max(p.Instances, 1)] = true
		k := key{p.Stack, p.Protocol, p.App, p.Size, p.Window, p.Instances, p.OfferedRPS}
		a := groups[k]
		if a == nil {
			a = &acc{agg: Aggregate{Stack: p.Stack, Protocol: p.Protocol, App: p.App, OfferedRPS: p.OfferedRPS,
				Size: p.Size, Window: p.Window, Instances: p.Instances, AllValid: true}}
			groups[k] = a
		}
		a.agg.N++
		if p.Checks != nil {
			a.agg.NChecked++
			if p.Checks.Failed() {
				a.agg.NFailed++
			}
		}
		a.agg.Sent += p.Sent
		a.agg.Lost += p.Lost
		a.agg.Late += p.Late
		if !p.Valid {
			a.agg.AllValid = false
			continue
		}
		a.agg.NValid++
		if p.UpperBound {
			a.agg.NUpper++
		}
		a.ach.add(p.AchievedRPS)
		a.gbps.add(p.Gbps)
		if p.ServerMemMiB > 0 {
			a.rss.add(p.ServerMemMiB)
		}
		if p.ServerCores > 0 {
			a.cores.add(p.ServerCores)
			a.cpuPerReq.add(p.CPUUsPerReq)
		}
		a.p50.add(p.P50us)
		a.p99.add(p.P99us)
		a.p999.add(p.P999us)
		if p.HasCI() {
			a.ciReps++
			a.p50lo.add(p.P50Lo)
			a.p50hi.add(p.P50Hi)
			a.p99lo.add(p.P99Lo)
			a.p99hi.add(p.P99Hi)
		}
	}
	out := make([]Aggregate, 0, len(groups))
	for _, a := range groups {
		g := a.agg
		g.AchievedRPS, g.AchievedMin, g.AchievedMax = a.ach.get()
		g.Gbps, _, _ = a.gbps.get()
		g.ServerCores, _, _ = a.cores.get()
		g.CPUUsPerReq, _, _ = a.cpuPerReq.get()
		g.SizeSwept = len(sizes) > 1
		g.InstancesSwept = len(instances) > 1
		g.ServerMemMiB, _, _ = a.rss.get()
		g.P50us, g.P50Min, g.P50Max = a.p50.get()
		g.P99us, g.P99Min, g.P99Max = a.p99.get()
		g.P999us, g.P999Min, g.P999Max = a.p999.get()
		if a.ciReps > 0 && a.ciReps == g.NValid {
			g.P50Lo, g.P50Hi, g.P99Lo, g.P99Hi = a.p50lo.min, a.p50hi.max, a.p99lo.min, a.p99hi.max
		}
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b Aggregate) int {
		return cmp.Or(
			cmp.Compare(a.Stack, b.Stack),
			cmp.Compare(a.Protocol, b.Protocol),
			cmp.Compare(a.App, b.App),
			cmp.Compare(a.Size, b.Size),
			cmp.Compare(a.Instances, b.Instances),
			cmp.Compare(a.Window, b.Window),
			cmp.Compare(a.OfferedRPS, b.OfferedRPS),
		)
	})
	return out
}
