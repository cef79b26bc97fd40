package plots

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// CDFSeries is one distribution on a CDF figure.
type CDFSeries struct {
	// Label names the series in the legend.
	Label string
	// Stack, if set, gives the series its stack's colour (StackStyle); series
	// of the same stack then differ by dash pattern. Otherwise colours are
	// assigned in order.
	Stack string
	// Protocol, if set, picks the dash pattern of a stack's series by
	// protocol, the same in every figure: udp solid, tcp dashed (CDFAt sets
	// it when the points mix protocols). Otherwise a stack's series take
	// solid, dashed, dotted in order.
	Protocol string
	// Hist holds latencies in nanoseconds (analysis.ReadHlog).
	Hist *hdrhistogram.Histogram
}

// cdfStep is the smallest relative step in latency between two drawn points of a
// curve: it keeps the files small without visible change on a log axis.
const cdfStep = 1.004

// LatencyCDF draws the cumulative distribution of each series — latency (µs, log
// axis) against the fraction of requests at or below it — and writes
// outBase+".png", outBase+".svg" and outBase+".pdf". Empty or nil histograms are left out (their
// legend entry says so); zero latencies cannot be shown on a log axis and are
// counted in the fraction but not drawn. Each series has one legend entry, in
// its stack's colour (StackStyle), in the stacks' legend order; a stack's
// series differ by dash pattern (by protocol when CDFSeries.Protocol is set:
// udp solid, tcp dashed).
func LatencyCDF(series []CDFSeries, title, outBase string) error {
	p := newPlot(title)
	p.X.Label.Text = "latency (µs, log scale)"
	p.Y.Label.Text = "fraction of requests ≤ latency"
	p.Legend.Top, p.Legend.Left = false, false
	p.Legend.YOffs = vg.Points(10)

	xmin, xmax := math.Inf(1), math.Inf(-1)
	perStack := map[string]int{}
	var protocols []string
	for _, s := range series {
		if s.Protocol != "" && !slices.Contains(protocols, s.Protocol) {
			protocols = append(protocols, s.Protocol)
		}
	}
	slices.SortFunc(protocols, compareProtocols)
	// The legend in the order of every figure's: stacks in legend order,
	// udp before tcp; series without a stack after them, as given.
	order := make([]int, len(series))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		sa, sb := series[a], series[b]
		switch {
		case sa.Stack == "" && sb.Stack == "":
			return 0
		case sa.Stack == "":
			return 1
		case sb.Stack == "":
			return -1
		}
		return cmp.Or(stackRank(sa.Stack)-stackRank(sb.Stack), strings.Compare(sa.Stack, sb.Stack),
			compareProtocols(sa.Protocol, sb.Protocol))
	})
	for _, i := range order {
		s := series[i]
		var c = palette[i%len(palette)]
		var dashes []vg.Length
		if s.Stack != "" {
			c, _ = StackStyle(s.Stack)
			if s.Protocol != "" {
				dashes = dashCycle[slices.Index(protocols, s.Protocol)%len(dashCycle)]
			} else {
				dashes = dashCycle[perStack[s.Stack]%len(dashCycle)]
				perStack[s.Stack]++
			}
		}
		xys := cdfPoints(s.Hist)
		if len(xys) == 0 {
			if s.Hist == nil || s.Hist.TotalCount() == 0 {
				p.Legend.Add(s.Label + " (no data)")
			} else {
				p.Legend.Add(s.Label + " (no latency > 0)")
			}
			continue
		}
		line, err := plotter.NewLine(xys)
		if err != nil {
			return fmt.Errorf("plot %s: %w", outBase, err)
		}
		line.LineStyle = draw.LineStyle{Color: c, Width: lineWidth, Dashes: dashes}
		p.Add(line)
		p.Legend.Add(s.Label, line)
		xmin, xmax = math.Min(xmin, xys[0].X), math.Max(xmax, xys[len(xys)-1].X)
	}
	p.Add(plotter.NewGrid())
	logAxis(&p.X, xmin, xmax)
	p.Y.Min, p.Y.Max = 0, 1
	return save(p, outBase)
}

// cdfPoints returns the cumulative distribution of h (ns) as (µs, fraction)
// points: a start at the lowest recorded value with fraction 0, then the top of
// each bucket with its cumulative fraction, thinned to steps of cdfStep.
func cdfPoints(h *hdrhistogram.Histogram) plotter.XYs {
	if h == nil || h.TotalCount() == 0 {
		return nil
	}
	total := float64(h.TotalCount())
	var xys plotter.XYs
	var cum int64
	bars := h.Distribution()
	last := -1 // index of the last bar with a count
	for i, b := range bars {
		if b.Count > 0 {
			last = i
		}
	}
	for i, b := range bars[:last+1] {
		if b.Count == 0 {
			continue
		}
		cum += b.Count
		x := float64(b.To) / 1000
		if !(x > 0) {
			continue // a log axis cannot show 0
		}
		if len(xys) == 0 {
			if from := float64(b.From) / 1000; from > 0 && float64(cum-b.Count) == 0 {
				xys = append(xys, plotter.XY{X: from, Y: 0})
			}
		}
		y := float64(cum) / total
		if n := len(xys); n > 0 && x < xys[n-1].X*cdfStep && i != last {
			continue
		}
		xys = append(xys, plotter.XY{X: x, Y: y})
	}
	return xys
}
