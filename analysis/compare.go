package analysis

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Diff compares one (stack, protocol, app, size, window, offered rate)
// between two runs A and B.
type Diff struct {
	Stack, Protocol, App string
	OfferedRPS           float64
	Size, Window         int
	// A and B are the aggregates of each run (AggregateByStackRate); InA and
	// InB say whether the run measured the point at all.
	A, B     Aggregate
	InA, InB bool
	// DP50 and DP99 are B's mean p50 and p99 minus A's, in µs; meaningful
	// only when Comparable.
	DP50, DP99 float64
	// P50Outside and P99Outside say whether the difference is outside both
	// runs' confidence intervals: B's mean lies outside A's 95% interval and
	// A's mean outside B's. Only set when both runs have intervals (HasCI).
	P50Outside, P99Outside bool
}

// Comparable reports whether both runs have valid repetitions of the point.
func (d Diff) Comparable() bool { return d.InA && d.InB && d.A.NValid > 0 && d.B.NValid > 0 }

// HasCI reports whether both runs carry confidence intervals for the point.
func (d Diff) HasCI() bool { return d.Comparable() && d.A.HasCI() && d.B.HasCI() }

// Compare matches the points of runs a and b by (stack, protocol, app, size,
// window, offered rate), aggregates the repetitions of each (means over the valid
// ones; intervals from the lowest lower bound to the highest upper bound) and
// returns one Diff per point measured by either run, sorted like
// AggregateByStackRate.
//
// "Outside both CIs" is deliberately strict: each run's mean must fall
// outside the other's interval. It is not a test at a stated level (the
// intervals are of percentiles, not of their difference, and repetitions are
// pooled conservatively); a difference flagged outside is one that the runs'
// own uncertainty does not explain, one not flagged may still be real.
func Compare(a, b []Point) []Diff {
	type key struct {
		stack, protocol, app string
		size, window         int
		instances            int
		rate                 float64
	}
	diffs := map[key]*Diff{}
	get := func(g Aggregate) *Diff {
		k := key{g.Stack, g.Protocol, g.App, g.Size, g.Window, g.Instances, g.OfferedRPS}
		d := diffs[k]
		if d == nil {
			d = &Diff{Stack: g.Stack, Protocol: g.Protocol, App: g.App, OfferedRPS: g.OfferedRPS, Size: g.Size, Window: g.Window}
			diffs[k] = d
		}
		return d
	}
	for _, g := range AggregateByStackRate(a) {
		d := get(g)
		d.A, d.InA = g, true
	}
	for _, g := range AggregateByStackRate(b) {
		d := get(g)
		d.B, d.InB = g, true
	}
	out := make([]Diff, 0, len(diffs))
	for _, d := range diffs {
		if d.Comparable() {
			d.DP50, d.DP99 = d.B.P50us-d.A.P50us, d.B.P99us-d.A.P99us
		}
		if d.HasCI() {
			d.P50Outside = outside(d.B.P50us, d.A.P50Lo, d.A.P50Hi) && outside(d.A.P50us, d.B.P50Lo, d.B.P50Hi)
			d.P99Outside = outside(d.B.P99us, d.A.P99Lo, d.A.P99Hi) && outside(d.A.P99us, d.B.P99Lo, d.B.P99Hi)
		}
		out = append(out, *d)
	}
	slices.SortFunc(out, func(x, y Diff) int {
		return cmp.Or(cmp.Compare(x.Stack, y.Stack), cmp.Compare(x.Protocol, y.Protocol),
			cmp.Compare(x.App, y.App), cmp.Compare(x.Size, y.Size), cmp.Compare(x.Window, y.Window),
			cmp.Compare(x.OfferedRPS, y.OfferedRPS))
	})
	return out
}

// outside reports whether v lies outside [lo, hi].
func outside(v, lo, hi float64) bool { return v < lo || v > hi }

// CompareMarkdown renders diffs as a Markdown section: a sentence on how to
// read it and one table row per point. nameA and nameB label the runs.
func CompareMarkdown(nameA, nameB string, diffs []Diff) string {
	var b strings.Builder
	pf := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	pf("# Comparison\n\n- A: %s\n- B: %s\n\n", mdText(nameA), mdText(nameB))
	pf("Latencies in µs: the mean over valid repetitions, with its 95%% confidence interval in brackets " +
		"(lowest lower to highest upper bound over the repetitions). Δ is B − A. A Δ is **outside CIs** when " +
		"B's mean lies outside A's interval and A's mean outside B's: the runs' own uncertainty does not explain it. " +
		"*within CIs* means it might; *no CI* means a run has no intervals (recompute them with `jrbench analyze`).\n\n")
	if len(diffs) == 0 {
		pf("No points in either run.\n")
		return b.String()
	}
	pf("| stack | protocol/app | offered (req/s) | p50 A | p50 B | Δp50 | p99 A | p99 B | Δp99 |\n")
	pf("|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
	outsideN, comparable := 0, 0
	for _, d := range diffs {
		cell := func(in bool, g Aggregate, mean, lo, hi float64) string {
			switch {
			case !in:
				return "not measured"
			case g.NValid == 0:
				return "no valid rep."
			case g.HasCI():
				return fmtUs(mean) + " [" + FormatCI(lo, hi) + "]"
			default:
				return fmtUs(mean)
			}
		}
		delta := func(v float64, out bool) string {
			switch {
			case !d.Comparable():
				return "—"
			case !d.HasCI():
				return fmtSigned(v) + " (no CI)"
			case out:
				return "**" + fmtSigned(v) + " (outside CIs)**"
			default:
				return fmtSigned(v) + " (within CIs)"
			}
		}
		if d.Comparable() {
			comparable++
			if d.P50Outside || d.P99Outside {
				outsideN++
			}
		}
		pf("| %s | %s/%s | %s | %s | %s | %s | %s | %s | %s |\n", mdCell(d.Stack), mdCell(d.Protocol), mdCell(d.App), fmtLoad(Aggregate{OfferedRPS: d.OfferedRPS, Window: d.Window}),
			cell(d.InA, d.A, d.A.P50us, d.A.P50Lo, d.A.P50Hi), cell(d.InB, d.B, d.B.P50us, d.B.P50Lo, d.B.P50Hi), delta(d.DP50, d.P50Outside),
			cell(d.InA, d.A, d.A.P99us, d.A.P99Lo, d.A.P99Hi), cell(d.InB, d.B, d.B.P99us, d.B.P99Lo, d.B.P99Hi), delta(d.DP99, d.P99Outside))
	}
	pf("\n%d of %d points measured by both runs differ outside the CIs in p50 or p99.\n", outsideN, comparable)
	return b.String()
}

// WriteCompare writes CompareMarkdown(nameA, nameB, diffs) to path, atomically.
func WriteCompare(path, nameA, nameB string, diffs []Diff) error {
	return WriteFileAtomic(path, func(w io.Writer) error {
		_, err := io.WriteString(w, CompareMarkdown(nameA, nameB, diffs))
		return err
	})
}
