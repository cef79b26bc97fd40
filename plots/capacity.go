package plots

import (
	"fmt"
	"sort"

	"github.com/joyride-bench/joyride/analysis"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Capacity is one bar of CapacityBars: a stack's highest offered rate that it
// kept up with (achieved >= 99%) while its p99 met the SLO.
type Capacity struct {
	Stack string
	// RPS is that rate (0 when no rate met the SLO).
	RPS float64
}

// CapacityAtSLO computes, per stack, the highest offered rate whose valid
// repetitions achieved at least 99% of it with a p99 within sloUs — judged on
// the p99's upper 95% bound when the points carry intervals, as report.md
// does. Stacks are sorted by name.
func CapacityAtSLO(pts []analysis.Point, sloUs float64) []Capacity {
	best := map[string]float64{}
	for _, a := range analysis.AggregateByStackRate(pts) {
		if _, ok := best[a.Stack]; !ok {
			best[a.Stack] = 0
		}
		p99 := a.P99us
		if a.HasCI() {
			p99 = a.P99Hi
		}
		load := a.OfferedRPS
		if a.Window > 0 {
			load = a.AchievedRPS // a closed loop offers no rate: what it achieved
		}
		if a.NValid > 0 && a.AchievedRPS >= 0.99*a.OfferedRPS && p99 > 0 && p99 <= sloUs && load > best[a.Stack] {
			best[a.Stack] = load
		}
	}
	out := make([]Capacity, 0, len(best))
	for s, r := range best {
		out = append(out, Capacity{Stack: s, RPS: r})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Stack < out[j].Stack })
	return out
}

// CapacityBars draws the throughput each stack sustains under the p99 SLO
// (CapacityAtSLO), one bar per stack in its colour, and writes outBase+".png",
// ".svg" and ".pdf". The offered rates are a sweep, so a bar is only as fine as
// the rates the experiment offered.
func CapacityBars(pts []analysis.Point, sloUs float64, title, outBase string) error {
	caps := CapacityAtSLO(pts, sloUs)
	p := newPlot(title)
	p.Y.Label.Text = fmt.Sprintf("krequests/s with p99 ≤ %.0f µs", sloUs)
	p.X.Label.Text = "stack"
	names := make([]string, len(caps))
	w := vg.Points(28)
	for i, c := range caps {
		names[i] = c.Stack
		bars, err := plotter.NewBarChart(plotter.Values{c.RPS / 1000}, w)
		if err != nil {
			return err
		}
		col, _ := StackStyle(c.Stack)
		bars.Color = col
		bars.LineStyle.Width = 0
		bars.XMin = float64(i)
		p.Add(bars)
	}
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.6, float64(len(caps))-0.4 // room beside the outer bars
	p.Y.Min = 0
	return save(p, outBase)
}
