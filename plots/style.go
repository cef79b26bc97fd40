package plots

import (
	"hash/fnv"
	"image/color"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Colours of the Okabe–Ito palette, readable by colour-blind readers.
var (
	okBlack     = color.RGBA{0x00, 0x00, 0x00, 0xff}
	okOrange    = color.RGBA{0xe6, 0x9f, 0x00, 0xff}
	okSkyBlue   = color.RGBA{0x56, 0xb4, 0xe9, 0xff}
	okGreen     = color.RGBA{0x00, 0x9e, 0x73, 0xff}
	okBlue      = color.RGBA{0x00, 0x72, 0xb2, 0xff}
	okVermilion = color.RGBA{0xd5, 0x5e, 0x00, 0xff}
	okPurple    = color.RGBA{0xcc, 0x79, 0xa7, 0xff}
	grey        = color.RGBA{0x77, 0x77, 0x77, 0xff}
)

// glyphRadius is the marker size used in every figure.
var glyphRadius = vg.Points(3)

// fixedStyles are the stacks every figure of the project shows.
var fixedStyles = map[string]struct {
	color color.Color
	shape draw.GlyphDrawer
}{
	"kernel":  {okBlue, draw.CircleGlyph{}},
	"null":    {grey, draw.CrossGlyph{}},
	"afxdp":   {okGreen, draw.PyramidGlyph{}},
	"joyride": {okVermilion, draw.BoxGlyph{}},
}

// palette and shapes serve the other stacks, chosen by a hash of the name so
// that a stack gets the same style in every figure and every run.
var (
	palette = []color.Color{okOrange, okSkyBlue, okPurple, okBlack,
		color.RGBA{0x8c, 0x56, 0x4b, 0xff}, color.RGBA{0x6a, 0x3d, 0x9a, 0xff}}
	shapes = []draw.GlyphDrawer{draw.RingGlyph{}, draw.SquareGlyph{}, draw.TriangleGlyph{}, draw.PlusGlyph{}}
)

// StackStyle returns the colour and marker of a stack. kernel, null, afxdp and
// joyride have fixed styles; any other name gets one from a palette by a hash of
// the name, so the same name always looks the same (two unknown names may share
// a colour, but then most likely not a marker).
func StackStyle(stack string) (color.Color, draw.GlyphStyle) {
	if s, ok := fixedStyles[stack]; ok {
		return s.color, draw.GlyphStyle{Color: s.color, Radius: glyphRadius, Shape: s.shape}
	}
	h := fnv.New32a()
	h.Write([]byte(stack))
	sum := h.Sum32()
	c := palette[sum%uint32(len(palette))]
	shape := shapes[(sum/uint32(len(palette)))%uint32(len(shapes))]
	return c, draw.GlyphStyle{Color: c, Radius: glyphRadius, Shape: shape}
}

// stackOrder puts the fixed stacks first (null, kernel, afxdp, joyride), so
// that legends read the same in every figure.
var stackOrder = map[string]int{"null": 0, "kernel": 1, "afxdp": 2, "joyride": 3}

func stackRank(s string) int {
	if r, ok := stackOrder[s]; ok {
		return r
	}
	return len(stackOrder)
}

// sortStacks sorts stack names in legend order, others by name after them.
func sortStacks(names []string) {
	slices.SortFunc(names, func(a, b string) int {
		if d := stackRank(a) - stackRank(b); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
}

// addCurve draws xys on p as a line with markers in a stack's colour and
// glyph (dashed when dashes is set) and names it in the legend; an empty xys
// draws nothing.
func addCurve(p *plot.Plot, xys plotter.XYs, label string, c color.Color, glyph draw.GlyphStyle, dashes []vg.Length) error {
	if len(xys) == 0 {
		return nil
	}
	line, points, err := plotter.NewLinePoints(xys)
	if err != nil {
		return err
	}
	line.LineStyle = draw.LineStyle{Color: c, Width: vg.Points(1.5), Dashes: dashes}
	points.GlyphStyle = glyph
	p.Add(line, points)
	p.Legend.Add(label, line, points)
	return nil
}
