package plots

import (
	"fmt"
	"math"

	"github.com/joyride-bench/joyride/analysis"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Density draws what many applications on one stack cost (Junction's and
// NetKernel's density figures): outBase+"-latency" is p50 (solid) and p99
// (dashed) against the number of application instances at the offered rate
// rate, outBase+"-memory" the server side's memory (proportional set size, all
// applications and the stack's daemon) against it; one colour and marker per
// stack (StackStyle), named once in the legend, each marker the mean over the
// valid repetitions.
func Density(pts []analysis.Point, rate float64, title, outBase string) error {
	lp := newPlot(fmt.Sprintf("%s: latency at %.0f requests/s", title, rate))
	lp.X.Label.Text = "application instances"
	lp.Y.Label.Text = "latency (µs, log scale)"
	mp := newPlot(title + ": server memory")
	mp.X.Label.Text = lp.X.Label.Text
	mp.Y.Label.Text = "server-side memory, proportional set size (MiB)"
	lmin, lmax, mmax, xmax := math.Inf(1), math.Inf(-1), 0.0, 1.0
	byStack := map[string][]analysis.Aggregate{}
	var stacks []string
	for _, a := range analysis.AggregateByStackRate(pts) {
		if a.OfferedRPS != rate || a.NValid == 0 {
			continue
		}
		if byStack[a.Stack] == nil {
			stacks = append(stacks, a.Stack)
		}
		byStack[a.Stack] = append(byStack[a.Stack], a) // sorted by instances
	}
	sortStacks(stacks)
	for _, s := range stacks {
		var p50, p99, mem plotter.XYs
		for _, a := range byStack[s] {
			x := float64(max(a.Instances, 1))
			xmax = math.Max(xmax, x)
			if a.P50us > 0 && a.P99us > 0 {
				p50 = append(p50, plotter.XY{X: x, Y: a.P50us})
				p99 = append(p99, plotter.XY{X: x, Y: a.P99us})
				lmin, lmax = math.Min(lmin, a.P50us), math.Max(lmax, a.P99us)
			}
			if a.ServerMemMiB > 0 {
				mem = append(mem, plotter.XY{X: x, Y: a.ServerMemMiB})
				mmax = math.Max(mmax, a.ServerMemMiB)
			}
		}
		c, glyph := StackStyle(s)
		for _, l := range []struct {
			p      *plot.Plot
			xys    plotter.XYs
			dashes []vg.Length
		}{{lp, p50, nil}, {lp, p99, p99Dashes}, {mp, mem, nil}} {
			if err := addCurve(l.p, l.xys, c, glyph, l.dashes); err != nil {
				return fmt.Errorf("plot %s: %w", outBase, err)
			}
		}
	}
	// Each stack once; on the latency figure one key for p50 and p99.
	ll, ml := newLegend(), newLegend()
	ll.addStacks(stacks)
	ll.addDashKey([]string{"p50", "p99"}, [][]vg.Length{nil, p99Dashes})
	ml.addStacks(stacks)
	if len(stacks) == 0 {
		lp.Title.Text += " (no valid points)"
		mp.Title.Text += " (no valid points)"
	}
	logAxis(&lp.Y, lmin, lmax)
	for _, p := range []*plot.Plot{lp, mp} {
		p.X.Min, p.X.Max = 0, xmax*1.05
		p.Add(plotter.NewGrid())
	}
	mp.Y.Min, mp.Y.Max = 0, math.Max(mmax*1.1, 1)
	if err := saveFigure(singlePanel(lp, ll), outBase+"-latency"); err != nil {
		return err
	}
	return saveFigure(singlePanel(mp, ml), outBase+"-memory")
}
