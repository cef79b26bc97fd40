package plots

import (
	"hash/fnv"
	"image/color"
	"math"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/joyride-bench/joyride/stacks"
)

// Colours of the Okabe–Ito palette, readable by colour-blind readers, that
// the registered stacks' Displays leave for the others (the kernel has its
// blue, afxdp its bluish green, joyride its vermilion, null the grey).
var (
	okBlack   = color.RGBA{0x00, 0x00, 0x00, 0xff}
	okOrange  = color.RGBA{0xe6, 0x9f, 0x00, 0xff}
	okSkyBlue = color.RGBA{0x56, 0xb4, 0xe9, 0xff}
	okPurple  = color.RGBA{0xcc, 0x79, 0xa7, 0xff}
	grey      = color.RGBA{0x77, 0x77, 0x77, 0xff}
	darkGrey  = color.RGBA{0x33, 0x33, 0x33, 0xff}
)

// glyphRadius is the marker size used in every figure.
var glyphRadius = vg.Points(3)

// palette and shapes serve the stacks registered without a Display (and
// names no longer registered), chosen by a hash of the name so that a stack
// gets the same style in every figure and every run. The shapes are filled,
// so that each has an open twin (openGlyph) for the points a figure shows
// but does not trust.
var (
	palette = []color.Color{okOrange, okSkyBlue, okPurple, okBlack,
		color.RGBA{0x8c, 0x56, 0x4b, 0xff}, color.RGBA{0x6a, 0x3d, 0x9a, 0xff}}
	shapes = []draw.GlyphDrawer{markGlyph{shape: shapeDiamond}, markGlyph{shape: shapeDown},
		markGlyph{shape: shapeCircle}, markGlyph{shape: shapeBox}}
)

// isFloor reports whether stack is the latency floor (the null reflector),
// which figures draw as a band, not as a contender's line.
func isFloor(stack string) bool { return stacks.Has(stack, stacks.Floor) }

// markerGlyph draws a registered stack's marker.
func markerGlyph(m stacks.Marker) draw.GlyphDrawer {
	switch m {
	case stacks.MarkerCross:
		return draw.CrossGlyph{}
	case stacks.MarkerBox:
		return markGlyph{shape: shapeBox}
	case stacks.MarkerUp:
		return markGlyph{shape: shapeUp}
	case stacks.MarkerDown:
		return markGlyph{shape: shapeDown}
	case stacks.MarkerDiamond:
		return markGlyph{shape: shapeDiamond}
	}
	return markGlyph{shape: shapeCircle}
}

// StackStyle returns the colour and marker of a stack: its registered
// Display (stacks.Factory), or for a stack without one a colour from a
// palette by a hash of the name, so the same name always looks the same (two
// such names may share a colour, but then most likely not a marker). Every
// figure takes its colours and markers from here.
func StackStyle(stack string) (color.Color, draw.GlyphStyle) {
	if d := stacks.DisplayOf(stack); d != nil {
		return d.Color, draw.GlyphStyle{Color: d.Color, Radius: glyphRadius, Shape: markerGlyph(d.Marker)}
	}
	h := fnv.New32a()
	h.Write([]byte(stack))
	sum := h.Sum32()
	c := palette[sum%uint32(len(palette))]
	shape := shapes[(sum/uint32(len(palette)))%uint32(len(shapes))]
	return c, draw.GlyphStyle{Color: c, Radius: glyphRadius, Shape: shape}
}

// openGlyph is the open twin of a stack's marker: the same shape and colour,
// outlined, hollow (so that open markers at one place all show), a little
// larger. Figures draw with it the points they show
// but do not join to a measured line (invalid, or not sustained).
func openGlyph(g draw.GlyphStyle) draw.GlyphStyle {
	m, ok := g.Shape.(markGlyph)
	if !ok {
		m = markGlyph{shape: shapeCircle} // the null stack's cross
	}
	m.open = true
	g.Shape = m
	g.Radius = glyphRadius * 1.25
	return g
}

// markShape is the outline of a marker.
type markShape int

const (
	shapeCircle markShape = iota
	shapeBox
	shapeUp // a triangle pointing up
	shapeDiamond
	shapeDown // a triangle pointing down
)

// markGlyph draws a marker filled, or open: a hollow outline, thicker than
// gonum's RingGlyph and kin so that it reads over a shaded band too. Its sizes
// match gonum's CircleGlyph, BoxGlyph and PyramidGlyph.
type markGlyph struct {
	shape markShape
	open  bool
}

func (g markGlyph) DrawGlyph(c *draw.Canvas, sty draw.GlyphStyle, pt vg.Point) {
	r := sty.Radius
	var p vg.Path
	poly := func(pts ...vg.Point) {
		p.Move(pts[0])
		for _, q := range pts[1:] {
			p.Line(q)
		}
		p.Close()
	}
	switch g.shape {
	case shapeBox:
		x := (r-r*math.Sqrt2/2)/2 + r*math.Sqrt2/2 // as BoxGlyph
		poly(vg.Point{X: pt.X - x, Y: pt.Y - x}, vg.Point{X: pt.X + x, Y: pt.Y - x},
			vg.Point{X: pt.X + x, Y: pt.Y + x}, vg.Point{X: pt.X - x, Y: pt.Y + x})
	case shapeUp, shapeDown:
		t := r + (r-r*0.5)/2
		s := vg.Length(1)
		if g.shape == shapeDown {
			s = -1
		}
		poly(vg.Point{X: pt.X, Y: pt.Y + s*t}, vg.Point{X: pt.X - t*vg.Length(math.Sqrt(3)/2), Y: pt.Y - s*t/2},
			vg.Point{X: pt.X + t*vg.Length(math.Sqrt(3)/2), Y: pt.Y - s*t/2})
	case shapeDiamond:
		d := r * 1.3
		poly(vg.Point{X: pt.X, Y: pt.Y + d}, vg.Point{X: pt.X + d, Y: pt.Y}, vg.Point{X: pt.X, Y: pt.Y - d}, vg.Point{X: pt.X - d, Y: pt.Y})
	default:
		p.Move(vg.Point{X: pt.X + r, Y: pt.Y})
		p.Arc(pt, r, 0, 2*math.Pi)
		p.Close()
	}
	if !g.open {
		c.SetColor(sty.Color)
		c.Fill(p)
		return
	}
	c.SetLineStyle(draw.LineStyle{Color: sty.Color, Width: vg.Points(1.3)})
	c.Stroke(p)
}

// flagGlyph is the small mark beside a marker whose repetitions failed their
// validity checks (analysis.Checks.Failed): a dark × up and to the right.
type flagGlyph struct{}

func (flagGlyph) DrawGlyph(c *draw.Canvas, sty draw.GlyphStyle, pt vg.Point) {
	d := glyphRadius * 1.9
	draw.CrossGlyph{}.DrawGlyph(c, draw.GlyphStyle{Color: darkGrey, Radius: vg.Points(2.2), Shape: draw.CrossGlyph{}},
		vg.Point{X: pt.X + d, Y: pt.Y + d})
}

// boundGlyph is the small mark beside a marker whose valid repetitions
// include upper bounds (analysis.Point.UpperBound: the VM stalled the
// generator, so some requests waited for their send and the latency drawn is
// at most what was measured): a dark downward triangle, down and to the
// right, read "≤".
type boundGlyph struct{}

func (boundGlyph) DrawGlyph(c *draw.Canvas, sty draw.GlyphStyle, pt vg.Point) {
	d := glyphRadius * 1.9
	r := vg.Points(2.4)
	at := vg.Point{X: pt.X + d, Y: pt.Y - d}
	var tri vg.Path
	tri.Move(vg.Point{X: at.X - r, Y: at.Y + r*0.6})
	tri.Line(vg.Point{X: at.X + r, Y: at.Y + r*0.6})
	tri.Line(vg.Point{X: at.X, Y: at.Y - r})
	tri.Close()
	c.SetColor(darkGrey)
	c.Fill(tri)
}

// stackRank is a stack's place in legends: its registered Display's Order
// (null, kernel, afxdp, joyride), so that legends read the same in every
// figure; stacks without one come after all of them.
func stackRank(s string) int {
	if d := stacks.DisplayOf(s); d != nil {
		return d.Order
	}
	return unranked
}

// unranked is the rank of the stacks without a Display: after any Order a
// registration gives, and small enough that ranks subtract without overflow.
const unranked = math.MaxInt32

// sortStacks sorts stack names in legend order, stacks of equal rank by name.
func sortStacks(names []string) {
	slices.SortFunc(names, func(a, b string) int {
		if d := stackRank(a) - stackRank(b); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
}

// compareProtocols orders protocols as every figure shows them: udp, tcp,
// then the others by name.
func compareProtocols(a, b string) int {
	rank := func(p string) int {
		switch p {
		case "udp":
			return 0
		case "tcp":
			return 1
		}
		return 2
	}
	if d := rank(a) - rank(b); d != 0 {
		return d
	}
	return strings.Compare(a, b)
}

// lineWidth is the width of every data line.
var lineWidth = vg.Points(1.5)

// addCurve draws xys on p as a line with markers in a stack's colour and
// glyph (dashed when dashes is set); an empty xys draws nothing. The legend is
// the caller's (stackLegend and a key of the dash patterns).
func addCurve(p *plot.Plot, xys plotter.XYs, c color.Color, glyph draw.GlyphStyle, dashes []vg.Length) error {
	if len(xys) == 0 {
		return nil
	}
	line, points, err := plotter.NewLinePoints(xys)
	if err != nil {
		return err
	}
	line.LineStyle = draw.LineStyle{Color: c, Width: lineWidth, Dashes: dashes}
	points.GlyphStyle = glyph
	p.Add(line, points)
	return nil
}

// legend is a figure's legend and the names of its entries.
type legend struct {
	plot.Legend
	names []string
}

func newLegend() *legend {
	l := &legend{Legend: plot.NewLegend()}
	l.TextStyle.Font.Size = vg.Points(10)
	l.ThumbnailWidth = vg.Points(26)
	return l
}

func (l *legend) add(name string, thumbs ...plot.Thumbnailer) {
	l.Add(name, thumbs...)
	l.names = append(l.names, name)
}

// addStacks adds one entry per stack, in legend order: its colour and marker
// on a solid line.
func (l *legend) addStacks(stacks []string) {
	stacks = slices.Clone(stacks)
	sortStacks(stacks)
	stacks = slices.Compact(stacks)
	for _, s := range stacks {
		c, g := StackStyle(s)
		l.add(s, &plotter.Line{LineStyle: draw.LineStyle{Color: c, Width: lineWidth}}, &plotter.Scatter{GlyphStyle: g})
	}
}

// addDashKey adds one entry telling two dash patterns apart ("p50 solid,
// p99 dashed", "udp solid, tcp dashed"), or one entry per pattern for more.
func (l *legend) addDashKey(names []string, dashes [][]vg.Length) {
	if len(names) < 2 {
		return
	}
	if len(names) > 2 { // one line each, which reads better than one long line
		for i, n := range names {
			l.add(n, dashKey{dashes[i]})
		}
		return
	}
	var parts []string
	for i, n := range names {
		parts = append(parts, n+" "+dashName(dashes[i]))
	}
	l.add(strings.Join(parts, ", "), dashKey(dashes))
}

func dashName(d []vg.Length) string {
	switch {
	case d == nil:
		return "solid"
	case slices.Equal(d, dashCycle[1]):
		return "dashed"
	case slices.Equal(d, dashCycle[2]):
		return "dotted"
	}
	return "dash-dot"
}

// dashKey is a legend thumbnail of dash patterns, one short dark line each,
// stacked.
type dashKey [][]vg.Length

func (k dashKey) Thumbnail(c *draw.Canvas) {
	n := len(k)
	h := c.Max.Y - c.Min.Y
	for i, d := range k {
		y := c.Max.Y - h*vg.Length(2*i+1)/vg.Length(2*n)
		c.StrokeLine2(draw.LineStyle{Color: darkGrey, Width: vg.Points(1.3), Dashes: d}, c.Min.X, y, c.Max.X, y)
	}
}

// Dash patterns, in the order variants of one stack take them: solid, dashed,
// dotted, dash-dot. p50 is solid and p99 dashed in every latency figure.
var (
	dashCycle = [][]vg.Length{nil, {vg.Points(6), vg.Points(3)}, {vg.Points(2), vg.Points(2)}, {vg.Points(8), vg.Points(2), vg.Points(2), vg.Points(2)}}
	p99Dashes = dashCycle[1]
)

// variants assigns dash patterns to the variants of a figure's curves (the
// protocols, the sizes): the first solid, the next dashed and so on, so that
// a legend names each stack once and each variant once.
type variants struct {
	names []string
}

// dashes returns the pattern of variant name, adding it when new.
func (v *variants) dashes(name string) []vg.Length {
	i := slices.Index(v.names, name)
	if i < 0 {
		i = len(v.names)
		v.names = append(v.names, name)
	}
	return dashCycle[i%len(dashCycle)]
}

// addKey adds the variants' dash key to l (nothing for fewer than two).
func (v *variants) addKey(l *legend) {
	var ds [][]vg.Length
	for i := range v.names {
		ds = append(ds, dashCycle[i%len(dashCycle)])
	}
	l.addDashKey(v.names, ds)
}

// barKey is a legend thumbnail of an error bar: a vertical line with caps.
type barKey struct{ c color.Color }

func (k barKey) Thumbnail(c *draw.Canvas) {
	sty := draw.LineStyle{Color: k.c, Width: vg.Points(1)}
	x, h := c.Center().X, (c.Max.Y-c.Min.Y)*0.4
	y0, y1 := c.Center().Y-h, c.Center().Y+h
	c.StrokeLine2(sty, x, y0, x, y1)
	c.StrokeLine2(sty, x-vg.Points(3), y0, x+vg.Points(3), y0)
	c.StrokeLine2(sty, x-vg.Points(3), y1, x+vg.Points(3), y1)
}

// offScaleGlyph is a marker drawn at the edge of a panel because its value is
// off the scale: the marker with a short arrow pointing the way out.
// dx moves it sideways, so that several at one place stand side by side.
type offScaleGlyph struct {
	inner draw.GlyphDrawer
	down  bool
	dx    vg.Length
}

func (g offScaleGlyph) DrawGlyph(c *draw.Canvas, sty draw.GlyphStyle, pt vg.Point) {
	pt.X += g.dx
	g.inner.DrawGlyph(c, sty, pt)
	s := vg.Length(1)
	if g.down {
		s = -1
	}
	y0, y1 := pt.Y+s*(sty.Radius+vg.Points(1)), pt.Y+s*(sty.Radius+vg.Points(7))
	ls := draw.LineStyle{Color: sty.Color, Width: vg.Points(1.1)}
	c.StrokeLine2(ls, pt.X, y0, pt.X, y1)
	c.StrokeLines(ls, []vg.Point{{X: pt.X - vg.Points(2.5), Y: y1 - s*vg.Points(2.5)}, {X: pt.X, Y: y1}, {X: pt.X + vg.Points(2.5), Y: y1 - s*vg.Points(2.5)}})
}

// bandKey is a legend thumbnail of a shaded band: its fill, and a line
// through its middle (a curve's interval) or along its edges (a range).
type bandKey struct {
	fill  color.Color
	line  draw.LineStyle
	edges bool
}

func (k bandKey) Thumbnail(c *draw.Canvas) {
	h := (c.Max.Y - c.Min.Y) * 0.4
	y0, y1 := c.Center().Y-h, c.Center().Y+h
	c.FillPolygon(k.fill, []vg.Point{{X: c.Min.X, Y: y0}, {X: c.Max.X, Y: y0}, {X: c.Max.X, Y: y1}, {X: c.Min.X, Y: y1}})
	if k.edges {
		c.StrokeLine2(k.line, c.Min.X, y0, c.Max.X, y0)
		c.StrokeLine2(k.line, c.Min.X, y1, c.Max.X, y1)
		return
	}
	c.StrokeLine2(k.line, c.Min.X, c.Center().Y, c.Max.X, c.Center().Y)
}

// shiftGlyph draws a marker moved sideways by dx, beside another at the same
// place.
type shiftGlyph struct {
	inner draw.GlyphDrawer
	dx    vg.Length
}

func (g shiftGlyph) DrawGlyph(c *draw.Canvas, sty draw.GlyphStyle, pt vg.Point) {
	pt.X += g.dx
	g.inner.DrawGlyph(c, sty, pt)
}
