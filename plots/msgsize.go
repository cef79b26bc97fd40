package plots

import (
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/joyride-bench/joyride/analysis"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// MsgSize draws what each stack does as messages grow (the figure of
// Machnet's and Junction's message-size sweeps): outBase+"-throughput" is the
// payload throughput in Gbit/s against the request size, outBase+"-latency"
// p50 (solid) and p99 (dashed) against it, both on log axes, one colour and
// marker per stack (StackStyle), named once in the legend, each marker the mean over the valid repetitions. When a size was
// measured at several loads (rates or windows), the throughput is that of the
// load that achieved the most (what the size allows when pushed), the
// latency that of the lightest load (what one message costs, without
// queueing). Points without a size (older runs) are left out.
func MsgSize(pts []analysis.Point, title, outBase string) error {
	best := map[string]map[int]analysis.Aggregate{}  // highest throughput
	light := map[string]map[int]analysis.Aggregate{} // lightest load
	for _, a := range analysis.AggregateByStackRate(pts) {
		if a.NValid == 0 || a.Size <= 0 {
			continue
		}
		if best[a.Stack] == nil {
			best[a.Stack] = map[int]analysis.Aggregate{}
			light[a.Stack] = map[int]analysis.Aggregate{}
		}
		if b, ok := best[a.Stack][a.Size]; !ok || a.Gbps > b.Gbps {
			best[a.Stack][a.Size] = a
		}
		// Aggregates come sorted by window, then rate: the first is the lightest.
		if _, ok := light[a.Stack][a.Size]; !ok {
			light[a.Stack][a.Size] = a
		}
	}
	stacks := make([]string, 0, len(best))
	for s := range best {
		stacks = append(stacks, s)
	}
	sortStacks(stacks)

	tp := newPlot(title + ": throughput")
	tp.X.Label.Text = "request size (bytes, log scale)"
	tp.Y.Label.Text = "throughput (Gbit/s, log scale)"
	lp := newPlot(title + ": latency")
	lp.X.Label.Text = tp.X.Label.Text
	lp.Y.Label.Text = "latency (µs, log scale)"

	xmin, xmax := math.Inf(1), math.Inf(-1)
	tmin, tmax, lmin, lmax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range stacks {
		sizes := best[s]
		var tput, p50, p99 plotter.XYs
		for size := range sizes {
			xmin, xmax = math.Min(xmin, float64(size)), math.Max(xmax, float64(size))
		}
		for _, size := range sortedSizes(sizes) {
			a := sizes[size]
			x := float64(size)
			if a.Gbps > 0 {
				tput = append(tput, plotter.XY{X: x, Y: a.Gbps})
				tmin, tmax = math.Min(tmin, a.Gbps), math.Max(tmax, a.Gbps)
			}
			a = light[s][size]
			if a.P50us > 0 && a.P99us > 0 {
				p50 = append(p50, plotter.XY{X: x, Y: a.P50us})
				p99 = append(p99, plotter.XY{X: x, Y: a.P99us})
				lmin, lmax = math.Min(lmin, a.P50us), math.Max(lmax, a.P99us)
			}
		}
		c, glyph := StackStyle(s)
		for _, l := range []struct {
			p      *plot.Plot
			xys    plotter.XYs
			dashes []vg.Length
		}{{tp, tput, nil}, {lp, p50, nil}, {lp, p99, p99Dashes}} {
			if err := addCurve(l.p, l.xys, c, glyph, l.dashes); err != nil {
				return fmt.Errorf("plot %s: %w", outBase, err)
			}
		}
	}
	// Each stack once; on the latency figure one key for p50 and p99.
	tl, ll := newLegend(), newLegend()
	tl.addStacks(stacks)
	ll.addStacks(stacks)
	ll.addDashKey([]string{"p50", "p99"}, [][]vg.Length{nil, p99Dashes})
	if math.IsInf(xmin, 1) {
		tp.Title.Text += " (no valid points)"
		lp.Title.Text += " (no valid points)"
	}
	for _, p := range []*plot.Plot{tp, lp} {
		sizeAxis(&p.X, xmin, xmax)
		p.Add(plotter.NewGrid())
	}
	logAxis(&tp.Y, tmin, tmax)
	logAxis(&lp.Y, lmin, lmax)
	if err := saveFigure(singlePanel(tp, tl), outBase+"-throughput"); err != nil {
		return err
	}
	return saveFigure(singlePanel(lp, ll), outBase+"-latency")
}

// sizeAxis is a log2 axis of byte counts labelled 64, 1K, 64K.
func sizeAxis(a *plot.Axis, lo, hi float64) {
	if !(lo > 0) || !(hi >= lo) || math.IsInf(hi, 0) {
		lo, hi = 64, 65536
	}
	a.Scale = plot.LogScale{}
	a.Min, a.Max = lo/1.5, hi*1.5
	var ticks []plot.Tick
	for v := math.Pow(2, math.Floor(math.Log2(lo))); v <= hi*1.001; v *= 2 {
		ticks = append(ticks, plot.Tick{Value: v, Label: byteLabel(v)})
	}
	a.Tick.Marker = plot.ConstantTicks(ticks)
}

func byteLabel(v float64) string {
	switch {
	case v >= 1<<20 && math.Mod(v, 1<<20) == 0:
		return strconv.Itoa(int(v)>>20) + "M"
	case v >= 1<<10 && math.Mod(v, 1<<10) == 0:
		return strconv.Itoa(int(v)>>10) + "K"
	}
	return strconv.Itoa(int(v))
}

func sortedSizes(m map[int]analysis.Aggregate) []int {
	out := make([]int, 0, len(m))
	for s := range m {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}
