package plots

import (
	"cmp"
	"fmt"
	"image/color"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/joyride-bench/joyride/analysis"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// spreadXYs are points with asymmetric y error bars (mean, min, max).
type spreadXYs []struct{ x, y, lo, hi float64 }

func (s spreadXYs) Len() int                        { return len(s) }
func (s spreadXYs) XY(i int) (float64, float64)     { return s[i].x, s[i].y }
func (s spreadXYs) YError(i int) (float64, float64) { return s[i].y - s[i].lo, s[i].hi - s[i].y }

// offScaleReach is how far beyond the measured lines' range (a factor) the
// latency scale of LatencyVsLoad stretches to show the markers of the other
// repetitions at their values.
const offScaleReach = 10

// sustainedShare is the fraction of the offered rate a point must achieve for
// a measured line to pass through it.
const sustainedShare = 0.99

// sustained reports whether a measured line may pass through p: p is valid
// and, in an open loop, achieved at least 99% of the rate it was offered (a
// closed loop offers no rate: what it achieved is its load).
func sustained(p analysis.Point) bool {
	return p.Valid && (p.Window > 0 || p.OfferedRPS <= 0 || p.AchievedRPS >= sustainedShare*p.OfferedRPS)
}

// LatencyVsLoad draws p50 (solid) and p99 (dashed) latency against offered
// load and writes outBase+".png", ".svg" and ".pdf".
//
// The figure has one panel per protocol and application (and per request size
// or instance count when the points sweep them), side by side, on one latency
// scale so that they compare. In a panel each stack has its colour and marker
// (StackStyle), the same in every figure; the legend names each stack once,
// with one key for the line patterns.
//
// A marker on a line is the mean over the repetitions of an offered rate that
// were valid and sustained it (achieved at least 99% of it). When those carry
// confidence intervals (analysis.Point.HasCI) a shaded band of the stack's
// colour spans each curve's 95% interval (over repetitions, the lowest lower to
// the highest upper bound); otherwise a bar spans the lowest to the highest
// repetition when there are several. An interval without an upper bound (too
// few samples) runs to the top of the panel. A rate with no such repetition
// breaks the line.
//
// Repetitions that were invalid or did not sustain their rate are not joined to
// the line: their mean is an open marker of the stack's shape, at its value
// (the scale stretches up to a decade beyond the lines for them) or, further,
// at the panel's edge with an arrow, and a caption under the panels lists
// them. A marker whose repetitions failed their validity checks
// (analysis.Checks.Failed) carries a small ×, one whose valid repetitions
// include an upper bound (analysis.Point.UpperBound) a small ▼ below it. The null stack (the floor: wire
// and generator, no stack) is a grey band from its p50 to its p99. When
// sloUs > 0 a horizontal line marks the p99 objective. Latency (µs) is on a log
// axis; load in krequests/s (a closed loop's windows at the throughput they
// achieved).
func LatencyVsLoad(pts []analysis.Point, title, outBase string, sloUs float64) error {
	f, _, err := latencyFigure(pts, title, sloUs)
	if err != nil {
		return fmt.Errorf("plot %s: %w", outBase, err)
	}
	return saveFigure(f, outBase)
}

// latKey is what tells a panel of LatencyVsLoad apart.
type latKey struct {
	protocol, app   string
	size, instances int
}

// latPanel is one panel of LatencyVsLoad and what was drawn on it.
type latPanel struct {
	key    latKey
	name   string
	series []*latSeries // in stack order
	// lines are the measured lines, one per stretch of consecutive rates;
	// open the markers of repetitions not on them; flags the markers whose
	// checks failed; bounds the markers on a line that are upper bounds.
	lines  []latLine
	open   []latMark
	flags  []latMark
	bounds []latMark
}

// latSeries is one stack in a panel: the aggregates of its valid, sustained
// repetitions (good) and of the others (bad, means of their values as they
// are), each sorted by load.
type latSeries struct {
	stack     string
	good, bad []analysis.Aggregate
}

type latLine struct {
	stack, quantile string
	xys             plotter.XYs
}

type latMark struct {
	stack, quantile string
	x, y            float64
	clamped         bool // off the scale, drawn at its edge
	label           string
}

// quantiles of LatencyVsLoad: p50 solid, p99 dashed.
var latQuantiles = []struct {
	name   string
	dashes []vg.Length
	// pick returns the mean and its interval (band) or the repetitions' spread.
	pick func(a analysis.Aggregate, band bool) (mean, lo, hi float64)
}{
	{"p50", nil, func(a analysis.Aggregate, band bool) (float64, float64, float64) {
		if band {
			return a.P50us, a.P50Lo, a.P50Hi
		}
		return a.P50us, a.P50Min, a.P50Max
	}},
	{"p99", p99Dashes, func(a analysis.Aggregate, band bool) (float64, float64, float64) {
		if band {
			return a.P99us, a.P99Lo, a.P99Hi
		}
		return a.P99us, a.P99Min, a.P99Max
	}},
}

// latX is where an aggregate goes on the load axis, krequests/s.
func latX(a analysis.Aggregate) float64 {
	if a.Window > 0 {
		return a.AchievedRPS / 1000
	}
	return a.OfferedRPS / 1000
}

// latencyPanels splits pts into LatencyVsLoad's panels.
func latencyPanels(pts []analysis.Point) []*latPanel {
	sizes, instances := map[int]bool{}, map[int]bool{}
	var good, bad []analysis.Point
	for _, p := range pts {
		sizes[p.Size] = true
		instances[max(p.Instances, 1)] = true
		if sustained(p) {
			good = append(good, p)
		} else {
			p.Valid = true // aggregate their values as they are
			bad = append(bad, p)
		}
	}
	byKey := map[latKey]*latPanel{}
	add := func(a analysis.Aggregate, isGood bool) {
		k := latKey{protocol: a.Protocol, app: a.App}
		if len(sizes) > 1 {
			k.size = a.Size
		}
		if len(instances) > 1 {
			k.instances = max(a.Instances, 1)
		}
		pn := byKey[k]
		if pn == nil {
			pn = &latPanel{key: k}
			byKey[k] = pn
		}
		i := slices.IndexFunc(pn.series, func(s *latSeries) bool { return s.stack == a.Stack })
		if i < 0 {
			pn.series = append(pn.series, &latSeries{stack: a.Stack})
			i = len(pn.series) - 1
		}
		if isGood {
			pn.series[i].good = append(pn.series[i].good, a)
		} else {
			pn.series[i].bad = append(pn.series[i].bad, a)
		}
	}
	for _, a := range analysis.AggregateByStackRate(good) {
		add(a, true)
	}
	for _, a := range analysis.AggregateByStackRate(bad) {
		add(a, false)
	}
	panels := make([]*latPanel, 0, len(byKey))
	for _, pn := range byKey {
		slices.SortFunc(pn.series, func(a, b *latSeries) int {
			return cmp.Or(stackRank(a.stack)-stackRank(b.stack), strings.Compare(a.stack, b.stack))
		})
		for _, s := range pn.series {
			byX := func(a, b analysis.Aggregate) int { return cmp.Compare(latX(a), latX(b)) }
			slices.SortStableFunc(s.good, byX)
			slices.SortStableFunc(s.bad, byX)
		}
		panels = append(panels, pn)
	}
	slices.SortFunc(panels, func(a, b *latPanel) int {
		return cmp.Or(compareProtocols(a.key.protocol, b.key.protocol),
			strings.Compare(a.key.app, b.key.app), cmp.Compare(a.key.size, b.key.size), cmp.Compare(a.key.instances, b.key.instances))
	})
	for _, pn := range panels {
		name := strings.TrimSpace(pn.key.protocol + " " + pn.key.app)
		if pn.key.size > 0 {
			name += fmt.Sprintf(", %d B", pn.key.size)
		}
		if pn.key.instances > 0 {
			name += fmt.Sprintf(", %d apps", pn.key.instances)
		}
		pn.name = name
	}
	return panels
}

// hasBand reports whether every aggregate of s's good ones carries intervals.
func (s *latSeries) hasBand() bool {
	for _, a := range s.good {
		if !a.HasCI() {
			return false
		}
	}
	return len(s.good) > 0
}

// segments splits s's good aggregates into stretches of consecutive loads: a
// load at which only bad repetitions were measured breaks the line.
func (s *latSeries) segments() [][]analysis.Aggregate {
	var out [][]analysis.Aggregate
	var cur []analysis.Aggregate
	bi := 0
	for _, a := range s.good {
		x := latX(a)
		broken := false
		for ; bi < len(s.bad) && latX(s.bad[bi]) <= x; bi++ {
			if latX(s.bad[bi]) < x && !slices.ContainsFunc(s.good, func(g analysis.Aggregate) bool { return latX(g) == latX(s.bad[bi]) }) {
				broken = true
			}
		}
		if broken && len(cur) > 0 {
			out = append(out, cur)
			cur = nil
		}
		cur = append(cur, a)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// latencyFigure builds LatencyVsLoad's figure and returns its panels too.
func latencyFigure(pts []analysis.Point, title string, sloUs float64) (*figure, []*latPanel, error) {
	panels := latencyPanels(pts)
	allClosed := len(pts) > 0
	for _, p := range pts {
		allClosed = allClosed && p.Window > 0
	}
	xLabel := "offered load (krequests/s)"
	if allClosed {
		// A closed loop offers no rate: each window is drawn at the
		// throughput it achieved (Machnet's latency-vs-throughput curves).
		xLabel = "throughput (krequests/s), one marker per window"
	}

	// One latency scale for every panel: that of the measured lines, their
	// intervals, the floor and the SLO; the others' markers only when
	// nothing was measured.
	ymin, ymax, xmax := math.Inf(1), math.Inf(-1), 0.0
	widen := func(v float64) {
		if v > 0 && !math.IsInf(v, 0) {
			ymin, ymax = math.Min(ymin, v), math.Max(ymax, v)
		}
	}
	anyGood := false
	for _, pn := range panels {
		for _, s := range pn.series {
			band := s.hasBand()
			for _, a := range s.good {
				xmax = math.Max(xmax, latX(a))
				for _, q := range latQuantiles {
					mean, lo, hi := q.pick(a, band)
					if !(mean > 0) {
						continue
					}
					anyGood = true
					widen(mean)
					widen(lo)
					widen(hi)
				}
			}
			for _, a := range s.bad {
				xmax = math.Max(xmax, latX(a))
			}
		}
	}
	if sloUs > 0 {
		widen(sloUs)
	}
	// The scale reaches a decade beyond the measured lines to show the
	// other markers at their values; what lies further is drawn on the edge.
	lo, hi := ymin/offScaleReach, ymax*offScaleReach
	if !anyGood {
		lo, hi = 0, math.Inf(1)
	}
	for _, pn := range panels {
		for _, s := range pn.series {
			for _, a := range s.bad {
				for _, v := range []float64{a.P50us, a.P99us} {
					if v >= lo && v <= hi {
						widen(v)
					}
				}
			}
		}
	}
	if !anyGood {
		title += " (no valid points)"
	}
	var yAxis plot.Axis
	logAxis(&yAxis, ymin, ymax)
	if xmax == 0 {
		xmax = 1
	}

	f := &figure{title: title, legend: newLegend()}
	stacks := map[string]bool{}
	anyBand, anyBars, anyNull, anyClamped := false, false, false, false
	floor := "" // the floor stack's name, when it ran
	for i, pn := range panels {
		p := newPlot("")
		if len(panels) > 1 {
			f.panelTitles = append(f.panelTitles, pn.name)
		}
		p.X.Label.Text = xLabel
		p.X.Tick.Marker = plainTicks{}
		p.Y.Label.Text = "latency (µs, log scale)"
		p.Y.Scale, p.Y.Tick.Marker, p.Y.Min, p.Y.Max = yAxis.Scale, yAxis.Tick.Marker, yAxis.Min, yAxis.Max
		p.X.Min, p.X.Max = 0, xmax*1.05
		p.Add(plotter.NewGrid())
		clampY := func(v float64) (float64, bool) {
			switch {
			case !(v > 0) || v > p.Y.Max:
				return p.Y.Max, true
			case v < p.Y.Min:
				return p.Y.Min, true
			}
			return v, false
		}
		bandPoly := func(xys spreadXYs, lo, hi func(int) float64) (*plotter.Polygon, error) {
			var poly plotter.XYs
			if len(xys) == 1 { // a single rate: a short vertical bar instead of an area
				w := 0.006 * xmax
				l, h := math.Max(lo(0), p.Y.Min), math.Min(hi(0), p.Y.Max)
				poly = plotter.XYs{{X: xys[0].x - w, Y: l}, {X: xys[0].x + w, Y: l}, {X: xys[0].x + w, Y: h}, {X: xys[0].x - w, Y: h}}
			} else {
				for j, v := range xys {
					poly = append(poly, plotter.XY{X: v.x, Y: math.Max(lo(j), p.Y.Min)})
				}
				for j := len(xys) - 1; j >= 0; j-- {
					poly = append(poly, plotter.XY{X: xys[j].x, Y: math.Min(hi(j), p.Y.Max)})
				}
			}
			return plotter.NewPolygon(poly)
		}

		// The floor first, then the intervals, so that lines and
		// markers are drawn over them.
		var lines, marks []plot.Plotter
		type edgeMark struct {
			xy    plotter.XY
			down  bool
			stack string
			style draw.GlyphStyle
		}
		var edge []edgeMark
		for _, s := range pn.series {
			stacks[s.stack] = true
			c, glyph := StackStyle(s.stack)
			if isFloor(s.stack) {
				for _, seg := range s.segments() {
					var xys spreadXYs
					for _, a := range seg {
						if a.P50us > 0 && a.P99us > 0 {
							xys = append(xys, struct{ x, y, lo, hi float64 }{latX(a), a.P50us, a.P50us, a.P99us})
						}
					}
					if len(xys) == 0 {
						continue
					}
					shade, err := bandPoly(xys, func(j int) float64 { return xys[j].lo }, func(j int) float64 { return xys[j].hi })
					if err != nil {
						return nil, nil, err
					}
					shade.Color = nullFill
					shade.LineStyle.Width = 0
					p.Add(shade)
					anyNull, floor = true, s.stack
					// Its edges, so that it does not read as an interval.
					if len(xys) > 1 {
						lo, hi := make(plotter.XYs, len(xys)), make(plotter.XYs, len(xys))
						for j, v := range xys {
							lo[j] = plotter.XY{X: v.x, Y: math.Max(v.lo, p.Y.Min)}
							hi[j] = plotter.XY{X: v.x, Y: math.Min(v.hi, p.Y.Max)}
						}
						for _, e := range []plotter.XYs{lo, hi} {
							l, err := plotter.NewLine(e)
							if err != nil {
								return nil, nil, err
							}
							l.LineStyle = nullEdge
							p.Add(l)
						}
					}
				}
			} else {
				band := s.hasBand()
				for _, seg := range s.segments() {
					for _, q := range latQuantiles {
						var xys spreadXYs
						for _, a := range seg {
							mean, lo, hi := q.pick(a, band)
							if !(mean > 0) || (!band && (!(lo > 0) || math.IsInf(hi, 0))) {
								continue
							}
							xys = append(xys, struct{ x, y, lo, hi float64 }{latX(a), mean, lo, hi})
						}
						if len(xys) == 0 {
							continue
						}
						if band {
							shade, err := bandPoly(xys, func(j int) float64 { return xys[j].lo }, func(j int) float64 { return xys[j].hi })
							if err != nil {
								return nil, nil, err
							}
							shade.Color = translucent(c, 0x38)
							shade.LineStyle.Width = 0
							p.Add(shade)
							anyBand = true
						}
						line, points, err := plotter.NewLinePoints(xys)
						if err != nil {
							return nil, nil, err
						}
						line.LineStyle = draw.LineStyle{Color: c, Width: lineWidth, Dashes: q.dashes}
						points.GlyphStyle = glyph
						lines = append(lines, line, points)
						xy := make(plotter.XYs, len(xys))
						for j, v := range xys {
							xy[j] = plotter.XY{X: v.x, Y: v.y}
						}
						pn.lines = append(pn.lines, latLine{stack: s.stack, quantile: q.name, xys: xy})
						if !band && slices.ContainsFunc(xys, func(v struct{ x, y, lo, hi float64 }) bool { return v.lo < v.hi }) {
							bars, err := plotter.NewYErrorBars(xys)
							if err != nil {
								return nil, nil, err
							}
							bars.LineStyle = draw.LineStyle{Color: c, Width: vg.Points(1)}
							bars.CapWidth = vg.Points(4)
							lines = append(lines, bars)
							anyBars = true
						}
					}
				}
			}
			// Markers of the repetitions not on the line, and the
			// flags of failed checks.
			open := openGlyph(glyph)
			var ox, beside, above, below plotter.XYs
			for _, a := range s.bad {
				for _, q := range latQuantiles {
					mean, _, _ := q.pick(a, false)
					y, clamped := clampY(mean)
					anyClamped = anyClamped || clamped
					pt := plotter.XY{X: latX(a), Y: y}
					switch {
					case !clamped && slices.ContainsFunc(s.good, func(g analysis.Aggregate) bool { return latX(g) == latX(a) }):
						beside = append(beside, pt) // beside the marker of the load's other repetitions
					case !clamped:
						ox = append(ox, pt)
					case y == p.Y.Max:
						above = append(above, pt)
					default:
						below = append(below, pt)
					}
					pn.open = append(pn.open, latMark{stack: s.stack, quantile: q.name, x: latX(a), y: y, clamped: clamped, label: loadLabel(a)})
				}
			}
			for _, m := range []struct {
				xys plotter.XYs
				dx  vg.Length
			}{{ox, 0}, {beside, vg.Points(7)}} {
				if len(m.xys) == 0 {
					continue
				}
				sc, err := plotter.NewScatter(m.xys)
				if err != nil {
					return nil, nil, err
				}
				sc.GlyphStyle = open
				if m.dx != 0 {
					sc.GlyphStyle.Shape = shiftGlyph{inner: open.Shape, dx: m.dx}
				}
				marks = append(marks, sc)
			}
			for _, pt := range above {
				edge = append(edge, edgeMark{pt, false, s.stack, open})
			}
			for _, pt := range below {
				edge = append(edge, edgeMark{pt, true, s.stack, open})
			}
			var fx plotter.XYs
			for _, a := range append(slices.Clone(s.good), s.bad...) {
				if a.NFailed == 0 {
					continue
				}
				y, _ := clampY(a.P99us)
				fx = append(fx, plotter.XY{X: latX(a), Y: y})
				pn.flags = append(pn.flags, latMark{stack: s.stack, quantile: "p99", x: latX(a), y: y, label: loadLabel(a)})
			}
			if len(fx) > 0 {
				sc, err := plotter.NewScatter(fx)
				if err != nil {
					return nil, nil, err
				}
				sc.GlyphStyle = draw.GlyphStyle{Color: darkGrey, Radius: glyphRadius, Shape: flagGlyph{}}
				marks = append(marks, sc)
			}
			// Upper bounds on the line: the p50 and p99 markers of a load
			// whose valid repetitions include one the VM stalled.
			var bx plotter.XYs
			for _, a := range s.good {
				if a.NUpper == 0 {
					continue
				}
				for _, q := range latQuantiles {
					mean, _, _ := q.pick(a, false)
					y, _ := clampY(mean)
					bx = append(bx, plotter.XY{X: latX(a), Y: y})
					pn.bounds = append(pn.bounds, latMark{stack: s.stack, quantile: q.name, x: latX(a), y: y, label: loadLabel(a)})
				}
			}
			if len(bx) > 0 {
				sc, err := plotter.NewScatter(bx)
				if err != nil {
					return nil, nil, err
				}
				sc.GlyphStyle = draw.GlyphStyle{Color: darkGrey, Radius: glyphRadius, Shape: boundGlyph{}}
				marks = append(marks, sc)
			}
		}
		// Markers off the scale sit on the edge; at one load, the stacks'
		// stand side by side instead of on top of each other.
		for _, m := range edge {
			var same []string
			for _, o := range edge {
				if o.xy.X == m.xy.X && o.down == m.down && !slices.Contains(same, o.stack) {
					same = append(same, o.stack)
				}
			}
			k := slices.Index(same, m.stack)
			sc, err := plotter.NewScatter(plotter.XYs{m.xy})
			if err != nil {
				return nil, nil, err
			}
			sc.GlyphStyle = m.style
			sc.GlyphStyle.Shape = offScaleGlyph{inner: m.style.Shape, down: m.down,
				dx: (vg.Length(k) - vg.Length(len(same)-1)/2) * vg.Points(10)}
			marks = append(marks, sc)
		}
		p.Add(lines...)
		p.Add(marks...)
		if sloUs > 0 {
			slo, err := plotter.NewLine(plotter.XYs{{X: 0, Y: sloUs}, {X: p.X.Max, Y: sloUs}})
			if err != nil {
				return nil, nil, err
			}
			slo.LineStyle = sloStyle
			p.Add(slo)
		}
		if i%latCols(len(panels)) != 0 {
			p.Y.Label.Text = "" // the row shares the first panel's label
		}
		// Add widened the axes to the data: the shared ranges again.
		p.Y.Min, p.Y.Max = yAxis.Min, yAxis.Max
		p.X.Min, p.X.Max = 0, xmax*1.05
		f.panels = append(f.panels, p)
	}
	f.cols = latCols(len(panels))
	if len(panels) == 0 {
		p := newPlot("")
		p.X.Label.Text, p.Y.Label.Text = xLabel, "latency (µs, log scale)"
		p.Y.Scale, p.Y.Tick.Marker, p.Y.Min, p.Y.Max = yAxis.Scale, yAxis.Tick.Marker, yAxis.Min, yAxis.Max
		p.X.Min, p.X.Max = 0, 1
		if sloUs > 0 {
			slo, err := plotter.NewLine(plotter.XYs{{X: 0, Y: sloUs}, {X: 1, Y: sloUs}})
			if err != nil {
				return nil, nil, err
			}
			slo.LineStyle = sloStyle
			p.Add(slo)
			p.Y.Min, p.Y.Max = yAxis.Min, yAxis.Max
		}
		p.Add(plotter.NewGrid())
		f.panels, f.cols = []*plot.Plot{p}, 1
	}

	// The legend: each stack once, the floor, the line patterns, the
	// intervals and the SLO.
	var names []string
	for s := range stacks {
		if !isFloor(s) {
			names = append(names, s)
		}
	}
	l := f.legend
	l.addStacks(names)
	if anyNull {
		l.add(floor+" (floor): p50 to p99", bandKey{fill: nullFill, line: nullEdge, edges: true})
	}
	l.addDashKey([]string{"p50", "p99"}, [][]vg.Length{nil, p99Dashes})
	if anyBand {
		l.add("shaded: 95% CI", bandKey{fill: translucent(grey, 0x50), line: draw.LineStyle{Color: darkGrey, Width: lineWidth}})
	}
	if anyBars {
		l.add("bars: min to max of repetitions", barKey{darkGrey})
	}
	if sloUs > 0 {
		l.add(fmt.Sprintf("SLO p99 ≤ %g µs", sloUs), &plotter.Line{LineStyle: sloStyle})
	}

	f.caption = latCaption(panels, anyClamped)
	if anyClamped {
		f.headroom = vg.Points(10)
	}
	return f, panels, nil
}

// The null stack's band: a light grey fill with thin edges.
var (
	nullFill = translucent(grey, 0x40)
	nullEdge = draw.LineStyle{Color: grey, Width: vg.Points(0.7)}
)

// sloStyle is the line of an SLO.
var sloStyle = draw.LineStyle{Color: grey, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(2), vg.Points(2)}}

// latCols is how many panels of n share a row.
func latCols(n int) int {
	switch {
	case n <= 3:
		return max(n, 1)
	case n == 4:
		return 2
	}
	return 3
}

// latCaption lists the open markers and the flags, panel by panel.
func latCaption(panels []*latPanel, clamped bool) []string {
	var out []string
	list := func(marks func(*latPanel) []latMark, counts func(pn *latPanel, stack string, x float64) string) []string {
		var parts []string
		for _, pn := range panels {
			var stacks []string
			byStack := map[string][]string{}
			for _, m := range marks(pn) {
				if m.quantile != "p99" {
					continue
				}
				if byStack[m.stack] == nil {
					stacks = append(stacks, m.stack)
				}
				byStack[m.stack] = append(byStack[m.stack], m.label+counts(pn, m.stack, m.x))
			}
			if len(stacks) == 0 {
				continue
			}
			var ss []string
			for _, s := range stacks {
				ss = append(ss, s+" "+strings.Join(byStack[s], ", "))
			}
			part := strings.Join(ss, "; ")
			if len(panels) > 1 {
				part = pn.name + ": " + part
			}
			parts = append(parts, part)
		}
		return parts
	}
	// "(1 of 2)" when other repetitions of the load are on the line.
	badOf := func(pn *latPanel, stack string, x float64) string {
		for _, s := range pn.series {
			if s.stack != stack {
				continue
			}
			gi := slices.IndexFunc(s.good, func(a analysis.Aggregate) bool { return latX(a) == x })
			bi := slices.IndexFunc(s.bad, func(a analysis.Aggregate) bool { return latX(a) == x })
			if gi >= 0 && bi >= 0 {
				return fmt.Sprintf(" (%d of %d reps)", s.bad[bi].N, s.bad[bi].N+s.good[gi].N)
			}
		}
		return ""
	}
	if parts := list(func(pn *latPanel) []latMark { return pn.open }, badOf); len(parts) > 0 {
		head := "Open markers: not sustained (achieved < 99% of offered) or invalid, not joined to the lines"
		if clamped {
			head += " (with an arrow: off the scale, drawn at the edge)"
		}
		if len(panels) > 1 {
			out = append(out, head+":")
			out = append(out, parts...)
		} else {
			out = append(out, head+": "+parts[0])
		}
	}
	none := func(*latPanel, string, float64) string { return "" }
	if parts := list(func(pn *latPanel) []latMark { return pn.flags }, none); len(parts) > 0 {
		out = append(out, "× beside a marker: validity checks failed (stationarity, independence or arrivals): "+strings.Join(parts, "; "))
	}
	if parts := list(func(pn *latPanel) []latMark { return pn.bounds }, none); len(parts) > 0 {
		out = append(out, "▼ beside a marker: upper bound, the VM stalled the generator in short spells during the point (latency at most this): "+strings.Join(parts, "; "))
	}
	return out
}

// loadLabel names an aggregate's load shortly: "50k", "1.2M", "window 8".
func loadLabel(a analysis.Aggregate) string {
	if a.Window > 0 {
		return fmt.Sprintf("window %d", a.Window)
	}
	return rateLabel(a.OfferedRPS)
}

func rateLabel(r float64) string {
	switch {
	case r >= 1e6:
		return strconv.FormatFloat(r/1e6, 'g', 3, 64) + "M"
	case r >= 1e3:
		return strconv.FormatFloat(r/1e3, 'g', 3, 64) + "k"
	}
	return strconv.FormatFloat(r, 'g', 3, 64)
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
