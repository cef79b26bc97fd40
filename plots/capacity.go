package plots

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/joyride-bench/joyride/analysis"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Capacity is one bar of CapacityBars: a stack's highest offered rate that it
// kept up with (achieved >= 99%) while its p99 met the SLO.
type Capacity struct {
	Stack string
	// Protocol is set when the points mixed protocols: one bar per stack and
	// protocol then.
	Protocol string
	// RPS is that rate (0 when no rate met the SLO).
	RPS float64
	// Min and Max are the same judged on each repetition alone (its own
	// achieved rate and p99 upper bound): the spread of the capacity over
	// repetitions, drawn as the bar's error bar.
	Min, Max float64
}

// CapacityAtSLO computes, per stack, the highest offered rate whose valid
// repetitions achieved at least 99% of it with a p99 within sloUs — judged on
// the p99's upper 95% bound when the points carry intervals, as report.md
// does. Stacks are sorted by name.
func CapacityAtSLO(pts []analysis.Point, sloUs float64) []Capacity {
	type key struct{ stack, protocol string }
	multi := multiProtocol(pts)
	best := map[key]float64{}
	for _, a := range analysis.AggregateByStackRate(pts) {
		k := key{stack: a.Stack}
		if multi {
			k.protocol = a.Protocol
		}
		if _, ok := best[k]; !ok {
			best[k] = 0
		}
		p99 := a.P99us
		if a.HasCI() {
			p99 = a.P99Hi
		}
		load := a.OfferedRPS
		if a.Window > 0 {
			load = a.AchievedRPS // a closed loop offers no rate: what it achieved
		}
		if a.NValid > 0 && a.AchievedRPS >= 0.99*a.OfferedRPS && p99 > 0 && p99 <= sloUs && load > best[k] {
			best[k] = load
		}
	}
	// The same per repetition.
	type repKey struct {
		key
		rep int
	}
	perRep := map[repKey]float64{}
	for _, pt := range pts {
		k := key{stack: pt.Stack}
		if multi {
			k.protocol = pt.Protocol
		}
		rk := repKey{k, pt.Rep}
		if _, ok := perRep[rk]; !ok {
			perRep[rk] = 0
		}
		p99 := pt.P99us
		if pt.HasCI() {
			p99 = pt.P99Hi
		}
		load := pt.OfferedRPS
		if pt.Window > 0 {
			load = pt.AchievedRPS
		}
		if pt.Valid && pt.AchievedRPS >= 0.99*pt.OfferedRPS && p99 > 0 && p99 <= sloUs && load > perRep[rk] {
			perRep[rk] = load
		}
	}
	out := make([]Capacity, 0, len(best))
	for k, r := range best {
		c := Capacity{Stack: k.stack, Protocol: k.protocol, RPS: r, Min: r, Max: r}
		for rk, v := range perRep {
			if rk.key == k {
				c.Min, c.Max = min(c.Min, v), max(c.Max, v)
			}
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Stack < out[j].Stack || out[i].Stack == out[j].Stack && out[i].Protocol < out[j].Protocol
	})
	return out
}

// CapacityBars draws the throughput each stack sustains under the p99 SLO
// (CapacityAtSLO), one bar per stack in its colour (StackStyle; the bars are
// named on the axis, so there is no legend), in the order of every figure's
// legends, with an error bar over
// the repetitions' own capacities, and writes outBase+".png",
// ".svg" and ".pdf". The offered rates are a sweep, so a bar is only as fine as
// the rates the experiment offered.
func CapacityBars(pts []analysis.Point, sloUs float64, title, outBase string) error {
	caps := CapacityAtSLO(pts, sloUs)
	// In legend order, as every figure: null, kernel, afxdp, joyride, others;
	// udp before tcp.
	slices.SortStableFunc(caps, func(a, b Capacity) int {
		return cmp.Or(stackRank(a.Stack)-stackRank(b.Stack), strings.Compare(a.Stack, b.Stack), compareProtocols(a.Protocol, b.Protocol))
	})
	p := newPlot(title)
	p.Y.Label.Text = fmt.Sprintf("krequests/s with p99 ≤ %.0f µs", sloUs)
	p.X.Label.Text = "stack"
	names := make([]string, len(caps))
	w := vg.Points(28)
	for i, c := range caps {
		names[i] = strings.TrimSpace(c.Stack + " " + c.Protocol)
		bars, err := plotter.NewBarChart(plotter.Values{c.RPS / 1000}, w)
		if err != nil {
			return err
		}
		col, _ := StackStyle(c.Stack)
		bars.Color = col
		bars.LineStyle.Width = 0
		bars.XMin = float64(i)
		p.Add(bars)
		if c.Min != c.Max {
			eb, err := plotter.NewYErrorBars(spreadXYs{{x: float64(i), y: c.RPS / 1000, lo: c.Min / 1000, hi: c.Max / 1000}})
			if err != nil {
				return err
			}
			eb.LineStyle.Width = vg.Points(1.2)
			eb.CapWidth = vg.Points(8)
			p.Add(eb)
		}
	}
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.6, float64(len(caps))-0.4 // room beside the outer bars
	p.Y.Min = 0
	top := 0.0
	for _, c := range caps {
		top = max(top, c.Max/1000, c.RPS/1000)
	}
	p.Y.Max = max(top*1.1, 1) // room above the tallest bar and its error bar
	return save(p, outBase)
}
