package plots

import (
	"fmt"
	"image/color"
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
// one colour per stack, and writes outBase+".png", ".svg" and ".pdf". Each
// marker is the mean over the valid repetitions of an offered rate. When the
// points carry confidence intervals (analysis.Point.HasCI) a shaded band of the
// stack's colour spans each curve's 95% interval (over repetitions, the lowest
// lower to the highest upper bound, which also covers every repetition's
// value); otherwise a bar spans the lowest to the highest repetition when there
// are several. An interval without an upper bound (too few samples) runs to the
// top of the figure. Invalid points and latencies that are not positive are left
// out. When sloUs > 0 a horizontal line marks the p99 objective. Latency (µs) is
// on a log axis; load in krequests/s.
//
// Points of several protocols or applications are drawn as separate curves of
// their stack's colour; one figure per protocol reads better.
func LatencyVsLoad(pts []analysis.Point, title, outBase string, sloUs float64) error {
	p := newPlot(title)
	p.X.Label.Text = "offered load (krequests/s)"
	p.Y.Label.Text = "latency (µs, log scale)"
	p.Legend.Top, p.Legend.Left = true, true

	aggs := analysis.AggregateByStackRate(pts)
	multi, allClosed := false, len(aggs) > 0
	for _, a := range aggs {
		if a.Protocol != aggs[0].Protocol || a.App != aggs[0].App {
			multi = true
		}
		allClosed = allClosed && a.Window > 0
	}
	if allClosed {
		// A closed loop offers no rate: each window is drawn at the
		// throughput it achieved (Machnet's latency-vs-throughput curves).
		p.X.Label.Text = "throughput (krequests/s), one marker per window"
	}
	type curve struct {
		name, label string
		c           color.Color
		glyph       draw.GlyphStyle
		dashes      []vg.Length
		xys         spreadXYs
		band        bool // lo/hi are a confidence interval, not the repetitions' spread
	}
	var curves []curve
	ymin, ymax, xmax := math.Inf(1), math.Inf(-1), 0.0
	anyBand := false
	for _, g := range groups(aggs) {
		c, glyph := StackStyle(g[0].Stack)
		name := g[0].Stack
		if multi {
			name += " " + g[0].Protocol + "/" + g[0].App
		}
		if g[0].SizeSwept {
			name += fmt.Sprintf(" %d B", g[0].Size)
		}
		if g[0].InstancesSwept {
			name += fmt.Sprintf(" %d apps", max(g[0].Instances, 1))
		}
		band := true
		for _, a := range g {
			if a.NValid > 0 && !a.HasCI() {
				band = false
			}
		}
		for _, q := range []struct {
			label  string
			dashes []vg.Length
			pick   func(analysis.Aggregate) (mean, lo, hi float64)
		}{
			{"p50", nil, func(a analysis.Aggregate) (float64, float64, float64) {
				if band {
					return a.P50us, a.P50Lo, a.P50Hi
				}
				return a.P50us, a.P50Min, a.P50Max
			}},
			{"p99", p99Dashes, func(a analysis.Aggregate) (float64, float64, float64) {
				if band {
					return a.P99us, a.P99Lo, a.P99Hi
				}
				return a.P99us, a.P99Min, a.P99Max
			}},
		} {
			cv := curve{name: name, label: q.label, c: c, glyph: glyph, dashes: q.dashes, band: band}
			for _, a := range g {
				mean, lo, hi := q.pick(a)
				if a.NValid == 0 || !(mean > 0) || (!band && (!(lo > 0) || math.IsInf(hi, 0))) {
					continue
				}
				x := a.OfferedRPS / 1000
				if a.Window > 0 {
					x = a.AchievedRPS / 1000
				}
				cv.xys = append(cv.xys, struct{ x, y, lo, hi float64 }{x, mean, lo, hi})
				ymin, ymax, xmax = math.Min(ymin, mean), math.Max(ymax, mean), math.Max(xmax, x)
				if lo > 0 {
					ymin = math.Min(ymin, lo)
				}
				if !math.IsInf(hi, 0) {
					ymax = math.Max(ymax, hi)
				}
			}
			if len(cv.xys) > 0 {
				curves = append(curves, cv)
				anyBand = anyBand || band
			}
		}
	}
	if math.IsInf(ymin, 1) {
		p.Title.Text += " (no valid points)"
	}
	if sloUs > 0 {
		ymin, ymax = math.Min(ymin, sloUs), math.Max(ymax, sloUs)
	}
	logAxis(&p.Y, ymin, ymax)

	// Bands first, so that lines and markers are drawn over them.
	for _, cv := range curves {
		if !cv.band {
			continue
		}
		var poly plotter.XYs
		for _, v := range cv.xys {
			poly = append(poly, plotter.XY{X: v.x, Y: math.Max(v.lo, p.Y.Min)})
		}
		for i := len(cv.xys) - 1; i >= 0; i-- {
			poly = append(poly, plotter.XY{X: cv.xys[i].x, Y: math.Min(cv.xys[i].hi, p.Y.Max)})
		}
		if len(cv.xys) == 1 { // a single rate: a short vertical bar instead of an area
			v := cv.xys[0]
			poly = plotter.XYs{{X: v.x - 0.005*math.Max(xmax, 1), Y: math.Max(v.lo, p.Y.Min)}, {X: v.x + 0.005*math.Max(xmax, 1), Y: math.Max(v.lo, p.Y.Min)},
				{X: v.x + 0.005*math.Max(xmax, 1), Y: math.Min(v.hi, p.Y.Max)}, {X: v.x - 0.005*math.Max(xmax, 1), Y: math.Min(v.hi, p.Y.Max)}}
		}
		shade, err := plotter.NewPolygon(poly)
		if err != nil {
			return fmt.Errorf("plot %s: %w", outBase, err)
		}
		shade.Color = translucent(cv.c, 0x38)
		shade.LineStyle.Width = 0
		p.Add(shade)
	}
	for _, cv := range curves {
		line, points, err := plotter.NewLinePoints(cv.xys)
		if err != nil {
			return fmt.Errorf("plot %s: %w", outBase, err)
		}
		line.LineStyle = draw.LineStyle{Color: cv.c, Width: vg.Points(1.5), Dashes: cv.dashes}
		points.GlyphStyle = cv.glyph
		p.Add(line, points)
		if !cv.band {
			bars, err := plotter.NewYErrorBars(cv.xys)
			if err != nil {
				return fmt.Errorf("plot %s: %w", outBase, err)
			}
			bars.LineStyle = draw.LineStyle{Color: cv.c, Width: vg.Points(1)}
			bars.CapWidth = vg.Points(4)
			p.Add(bars)
		}
		p.Legend.Add(cv.name+" "+cv.label, line, points)
	}
	if anyBand {
		key, err := plotter.NewPolygon(plotter.XYs{{X: 0, Y: 1}, {X: 1, Y: 1}, {X: 1, Y: 2}})
		if err != nil {
			return fmt.Errorf("plot %s: %w", outBase, err)
		}
		key.Color = translucent(grey, 0x60)
		key.LineStyle.Width = 0
		p.Legend.Add("shaded: 95% CI", key)
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
	}
	p.Add(plotter.NewGrid())
	p.X.Min = 0
	if xmax > 0 {
		p.X.Max = xmax * 1.05
	} else {
		p.X.Max = 1
	}
	return save(p, outBase)
}

// translucent returns c with alpha a (0..255).
func translucent(c color.Color, a uint8) color.Color {
	r, g, b, _ := c.RGBA()
	return color.NRGBA{R: uint8(r >> 8), G: uint8(g >> 8), B: uint8(b >> 8), A: a}
}

// groups splits aggregates (sorted by stack, protocol, app, size, window,
// rate) into curves: one per stack, protocol, app and size.
func groups(aggs []analysis.Aggregate) [][]analysis.Aggregate {
	var out [][]analysis.Aggregate
	for i, a := range aggs {
		if i == 0 || a.Stack != aggs[i-1].Stack || a.Protocol != aggs[i-1].Protocol || a.App != aggs[i-1].App || a.Size != aggs[i-1].Size ||
			a.Instances != aggs[i-1].Instances {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], a)
	}
	slices.SortStableFunc(out, func(a, b []analysis.Aggregate) int { return stackRank(a[0].Stack) - stackRank(b[0].Stack) })
	return out
}
