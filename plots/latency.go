package plots

import (
	"fmt"
	"math"
	"slices"

	"github.com/joyride-bench/joyride/analysis"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// spreadXYs are points with asymmetric y error bars (mean, min, max).
type spreadXYs []struct{ x, y, lo, hi float64 }

func (s spreadXYs) Len() int                        { return len(s) }
func (s spreadXYs) XY(i int) (float64, float64)     { return s[i].x, s[i].y }
func (s spreadXYs) YError(i int) (float64, float64) { return s[i].y - s[i].lo, s[i].hi - s[i].y }

// Line patterns: p50 solid, p99 dashed.
var p99Dashes = []vg.Length{vg.Points(6), vg.Points(3)}

// LatencyVsLoad draws p50 (solid) and p99 (dashed) latency against offered load,
// one colour per stack, and writes outBase+".png" and outBase+".svg". Each marker
// is the mean over the valid repetitions of an offered rate, with a bar from the
// lowest to the highest repetition when there are several; invalid points and
// latencies that are not positive are left out. When sloUs > 0 a horizontal line
// marks the p99 objective. Latency (µs) is on a log axis; load in krequests/s.
//
// Points of several protocols or applications are drawn as separate curves of
// their stack's colour; one figure per protocol reads better.
func LatencyVsLoad(pts []analysis.Point, title, outBase string, sloUs float64) error {
	p := newPlot(title)
	p.X.Label.Text = "offered load (krequests/s)"
	p.Y.Label.Text = "latency (µs, log scale)"
	p.Legend.Top, p.Legend.Left = true, true

	aggs := analysis.AggregateByStackRate(pts)
	multi := false
	for _, a := range aggs {
		if a.Protocol != aggs[0].Protocol || a.App != aggs[0].App {
			multi = true
		}
	}
	ymin, ymax, xmax := math.Inf(1), math.Inf(-1), 0.0
	for _, g := range groups(aggs) {
		c, glyph := StackStyle(g[0].Stack)
		name := g[0].Stack
		if multi {
			name += " " + g[0].Protocol + "/" + g[0].App
		}
		for _, q := range []struct {
			label  string
			dashes []vg.Length
			pick   func(analysis.Aggregate) (mean, lo, hi float64)
		}{
			{"p50", nil, func(a analysis.Aggregate) (float64, float64, float64) { return a.P50us, a.P50Min, a.P50Max }},
			{"p99", p99Dashes, func(a analysis.Aggregate) (float64, float64, float64) { return a.P99us, a.P99Min, a.P99Max }},
		} {
			var xys spreadXYs
			for _, a := range g {
				mean, lo, hi := q.pick(a)
				if a.NValid == 0 || !(lo > 0) || !(mean > 0) || math.IsInf(hi, 0) {
					continue
				}
				x := a.OfferedRPS / 1000
				xys = append(xys, struct{ x, y, lo, hi float64 }{x, mean, lo, hi})
				ymin, ymax, xmax = math.Min(ymin, lo), math.Max(ymax, hi), math.Max(xmax, x)
			}
			if len(xys) == 0 {
				continue
			}
			line, points, err := plotter.NewLinePoints(xys)
			if err != nil {
				return fmt.Errorf("plot %s: %w", outBase, err)
			}
			line.LineStyle = draw.LineStyle{Color: c, Width: vg.Points(1.5), Dashes: q.dashes}
			points.GlyphStyle = glyph
			bars, err := plotter.NewYErrorBars(xys)
			if err != nil {
				return fmt.Errorf("plot %s: %w", outBase, err)
			}
			bars.LineStyle = draw.LineStyle{Color: c, Width: vg.Points(1)}
			bars.CapWidth = vg.Points(4)
			p.Add(line, points, bars)
			p.Legend.Add(name+" "+q.label, line, points)
		}
	}
	if math.IsInf(ymin, 1) {
		p.Title.Text += " (no valid points)"
	}
	if sloUs > 0 {
		hi := xmax
		if hi == 0 {
			hi = 1
		}
		slo, err := plotter.NewLine(plotter.XYs{{X: 0, Y: sloUs}, {X: hi * 1.05, Y: sloUs}})
		if err != nil {
			return fmt.Errorf("plot %s: %w", outBase, err)
		}
		slo.LineStyle = draw.LineStyle{Color: grey, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(2), vg.Points(2)}}
		p.Add(slo)
		p.Legend.Add(fmt.Sprintf("SLO p99 ≤ %g µs", sloUs), slo)
		ymin, ymax = math.Min(ymin, sloUs), math.Max(ymax, sloUs)
	}
	p.Add(plotter.NewGrid())
	logAxis(&p.Y, ymin, ymax)
	p.X.Min = 0
	if xmax > 0 {
		p.X.Max = xmax * 1.05
	} else {
		p.X.Max = 1
	}
	return save(p, outBase)
}

// groups splits aggregates (sorted by stack, protocol, app, rate) into curves.
func groups(aggs []analysis.Aggregate) [][]analysis.Aggregate {
	var out [][]analysis.Aggregate
	for i, a := range aggs {
		if i == 0 || a.Stack != aggs[i-1].Stack || a.Protocol != aggs[i-1].Protocol || a.App != aggs[i-1].App {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], a)
	}
	// Fixed stacks first (null, kernel, afxdp, joyride), so the legend reads the same in every figure.
	order := map[string]int{"null": 0, "kernel": 1, "afxdp": 2, "joyride": 3}
	rank := func(s string) int {
		if r, ok := order[s]; ok {
			return r
		}
		return len(order)
	}
	slices.SortStableFunc(out, func(a, b []analysis.Aggregate) int { return rank(a[0].Stack) - rank(b[0].Stack) })
	return out
}
