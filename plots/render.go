package plots

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/joyride-bench/joyride/analysis"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgpdf"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Figure size (of one panel) and PNG resolution.
const (
	figWidth  = 8 * vg.Inch
	figHeight = 5 * vg.Inch
	pngDPI    = 150
)

// Sizes of a figure of several panels: each panel's share, and room for the
// legend column.
const (
	panelWidth   = 4.6 * vg.Inch
	panelHeight  = 4.2 * vg.Inch
	legendColumn = 2 * vg.Inch
)

// newPlot returns a plot with the project's fonts and a light grid.
func newPlot(title string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(14)
	p.X.Label.TextStyle.Font.Size = vg.Points(12)
	p.Y.Label.TextStyle.Font.Size = vg.Points(12)
	p.X.Tick.Label.Font.Size = vg.Points(10)
	p.Y.Tick.Label.Font.Size = vg.Points(10)
	p.Legend.TextStyle.Font.Size = vg.Points(10)
	return p
}

// figure is one image: a title, panels side by side (in rows of cols), one
// legend in a column to the right of them, where it cannot hide data, and
// caption lines under them.
type figure struct {
	title  string
	panels []*plot.Plot
	// panelTitles name the panels, over their data (a panel's own title
	// would not align with its neighbours').
	panelTitles []string
	cols        int
	legend      *legend
	caption     []string
	// headroom is space above the panels' data for what is drawn beyond
	// it (the arrows of markers off the scale).
	headroom vg.Length
}

// size is the figure's size: figWidth × figHeight for one panel, more for
// several, and taller for a caption of more than two lines.
func (f *figure) size() (w, h vg.Length) {
	cols := max(min(f.cols, len(f.panels)), 1)
	rows := (len(f.panels) + cols - 1) / cols
	w, h = figWidth, figHeight
	if cols > 1 || rows > 1 {
		w = vg.Length(cols)*panelWidth + legendColumn
		if rows > 1 {
			h = vg.Length(rows)*panelHeight + 0.8*vg.Inch
		}
	}
	if lines := len(f.captionLines(w)); lines > 2 {
		h += vg.Length(lines-2) * captionLineHeight()
	}
	return w, h
}

// captionLines are f's caption wrapped to a figure w wide.
func (f *figure) captionLines(w vg.Length) []string {
	cs := captionStyle()
	var lines []string
	for _, l := range f.caption {
		lines = append(lines, wrap(cs, l, w-2*captionMargin)...)
	}
	return lines
}

// captionMargin is the caption's margin left and right.
const captionMargin = vg.Length(10)

func captionLineHeight() vg.Length { return captionStyle().Height("Mg") * 1.15 }

// save writes p as outBase.png, outBase.svg and outBase.pdf: a figure of one
// panel whose title and legend are p's.
func save(p *plot.Plot, outBase string) error {
	return saveFigure(singlePanel(p, nil), outBase)
}

// singlePanel is the figure of p alone, with p's title, and l as its legend
// (nil: p's own legend).
func singlePanel(p *plot.Plot, l *legend) *figure {
	f := &figure{title: p.Title.Text, panels: []*plot.Plot{p}, cols: 1, legend: l}
	if l == nil {
		f.legend = &legend{Legend: p.Legend}
	}
	p.Title.Text = ""
	p.Legend = plot.NewLegend()
	return f
}

// saveFigure writes f as outBase.png, outBase.svg and outBase.pdf (for papers:
// vector, fonts embedded), each atomically, creating the directory if needed.
func saveFigure(f *figure, outBase string) error {
	w, h := f.size()
	png := func(out io.Writer) error {
		c := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(pngDPI), vgimg.UseBackgroundColor(color.White))
		drawFigure(f, draw.New(c))
		_, err := vgimg.PngCanvas{Canvas: c}.WriteTo(out)
		return err
	}
	svg := func(out io.Writer) error {
		c := vgsvg.New(w, h)
		drawFigure(f, draw.New(c))
		_, err := c.WriteTo(out)
		return err
	}
	pdf := func(out io.Writer) error {
		c := vgpdf.New(w, h)
		drawFigure(f, draw.New(c))
		_, err := c.WriteTo(out)
		return err
	}
	if err := analysis.WriteFileAtomic(outBase+".png", png); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if err := analysis.WriteFileAtomic(outBase+".svg", svg); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if err := analysis.WriteFileAtomic(outBase+".pdf", pdf); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

// Text styles of a figure's title and caption.
func titleStyle() text.Style { return newPlot("").Title.TextStyle }
func panelTitleStyle() text.Style {
	s := newPlot("").Title.TextStyle
	s.Font.Size = vg.Points(12)
	return s
}
func captionStyle() text.Style {
	s := newPlot("").Legend.TextStyle
	s.Font.Size = vg.Points(9)
	return s
}

// drawFigure draws f on c: the title centred at the top, the caption lines
// (wrapped to the width) at the bottom, the legend in a column at the right,
// and the panels, aligned, in what remains.
func drawFigure(f *figure, c draw.Canvas) {
	gap := vg.Points(10)
	if f.title != "" {
		ts := titleStyle()
		ts.XAlign, ts.YAlign = draw.XCenter, draw.YTop
		c.FillText(ts, vg.Point{X: c.Center().X, Y: c.Max.Y - vg.Points(4)}, f.title)
		c.Max.Y -= ts.Height(f.title) + vg.Points(4) + gap/2
	}
	if lines := f.captionLines(c.Max.X - c.Min.X); len(lines) > 0 {
		cs := captionStyle()
		cs.XAlign, cs.YAlign = draw.XLeft, draw.YBottom
		y := c.Min.Y + vg.Points(4)
		for i := len(lines) - 1; i >= 0; i-- {
			c.FillText(cs, vg.Point{X: c.Min.X + captionMargin, Y: y}, lines[i])
			y += captionLineHeight()
		}
		c.Min.Y = y + gap/2
	}
	if f.legend != nil {
		leg := f.legend.Legend
		if width := leg.Rectangle(c).Size().X; width > 0 {
			leg.Top, leg.Left = true, true
			leg.XOffs, leg.YOffs = 0, 0
			leg.Padding = vg.Points(2)
			leg.Draw(draw.Crop(c, c.Max.X-c.Min.X-width-gap, -gap, 0, 0))
			c.Max.X -= width + 2*gap
		}
	}
	if len(f.panels) == 0 {
		return
	}
	cols := max(min(f.cols, len(f.panels)), 1)
	rows := (len(f.panels) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for i := range grid {
		grid[i] = make([]*plot.Plot, cols)
	}
	for i, p := range f.panels {
		grid[i/cols][i%cols] = p
	}
	// gonum centres the label of a log axis at the linear midpoint of its
	// range, near the top, and pads the data area to make room for it there:
	// the figure draws the first column's labels itself, beside the data.
	yLabels := make([]string, len(f.panels))
	var lw vg.Length
	for i, p := range f.panels {
		if _, log := p.Y.Scale.(plot.LogScale); log && i%cols == 0 && p.Y.Label.Text != "" {
			yLabels[i] = p.Y.Label.Text
			lw = max(lw, p.Y.Label.TextStyle.Height(p.Y.Label.Text)+p.Y.Label.Padding)
			p.Y.Label.Text = ""
		}
	}
	defer func() {
		for i, l := range yLabels {
			if l != "" {
				f.panels[i].Y.Label.Text = l
			}
		}
	}()
	ps := panelTitleStyle()
	th := vg.Length(0)
	if len(f.panelTitles) > 0 {
		th = ps.Height("Mg") + vg.Points(14)
	}
	if th == 0 {
		th = f.headroom
	}
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(14), PadY: vg.Points(14) + th, PadTop: th}
	canvases := plot.Align(grid, tiles, draw.Crop(c, lw, 0, 0, 0))
	for i, p := range f.panels {
		tc := canvases[i/cols][i%cols]
		p.Draw(tc)
		dc := p.DataCanvas(tc)
		if i < len(f.panelTitles) && f.panelTitles[i] != "" {
			ps.XAlign, ps.YAlign = draw.XCenter, draw.YBottom
			c.FillText(ps, vg.Point{X: dc.Center().X, Y: dc.Max.Y + vg.Points(14)}, f.panelTitles[i])
		}
		if yLabels[i] != "" {
			ls := p.Y.Label.TextStyle
			ls.Rotation += math.Pi / 2
			x := c.Min.X + p.Y.Label.TextStyle.Height(yLabels[i]) - ls.FontExtents().Descent
			c.FillText(ls, vg.Point{X: x, Y: dc.Center().Y}, yLabels[i])
		}
	}
}

// wrap breaks s into lines at most width wide, at spaces.
func wrap(sty text.Style, s string, width vg.Length) []string {
	words := strings.Fields(s)
	var lines []string
	line := ""
	for _, w := range words {
		if line != "" && sty.Width(line+" "+w) > width {
			lines = append(lines, line)
			line = "    " + w // continuation lines are indented
			continue
		}
		if line == "" {
			line = w
		} else {
			line += " " + w
		}
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}

// logAxis puts a on a log scale covering [lo, hi] (both > 0), widened to the
// nearest 1, 2 or 5 × 10^k. Without positive data (lo or hi not positive) it
// shows 1 .. 10.
func logAxis(a *plot.Axis, lo, hi float64) {
	if !(lo > 0) || !(hi > 0) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		lo, hi = 1, 10
	}
	a.Scale = plot.LogScale{}
	a.Tick.Marker = logTicks{}
	a.Min, a.Max = niceBelow(lo), niceAbove(hi)
	if a.Max <= a.Min {
		a.Max = niceAbove(a.Min * 1.01)
	}
}

// niceBelow returns the largest 1, 2 or 5 × 10^k that is at most v (v > 0).
func niceBelow(v float64) float64 {
	p := math.Pow10(int(math.Floor(math.Log10(v))))
	for _, m := range []float64{5, 2, 1} {
		if m*p <= v {
			return m * p
		}
	}
	return p / 2
}

// niceAbove returns the smallest 1, 2 or 5 × 10^k that is at least v (v > 0).
func niceAbove(v float64) float64 {
	p := math.Pow10(int(math.Floor(math.Log10(v))))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 20 * p
}

// logTicks marks 1..9 × 10^k, labelling the powers of ten, also 2 and 5 × 10^k
// when the axis spans at most two decades, and every mark when it spans less
// than one. Labels are plain numbers
// ("0.5", "20", "1000"), not exponents.
type logTicks struct{}

func (logTicks) Ticks(min, max float64) []plot.Tick {
	if !(min > 0) || !(max > min) {
		return nil
	}
	elo, ehi := int(math.Floor(math.Log10(min))), int(math.Ceil(math.Log10(max)))
	decades := math.Log10(max / min)
	dense, all := decades <= 2, decades < 1
	var ticks []plot.Tick
	for e := elo; e <= ehi; e++ {
		for m := 1; m <= 9; m++ {
			v := float64(m) * math.Pow10(e)
			if v < min*(1-1e-9) || v > max*(1+1e-9) {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || all || (dense && (m == 2 || m == 5)) {
				t.Label = strconv.FormatFloat(v, 'f', max0(-e), 64)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}

func max0(v int) int {
	if v < 0 {
		return 0
	}
	return v
}

// plainTicks are gonum's default ticks labelled as plain numbers without
// trailing zeros ("250", not "250.00").
type plainTicks struct{}

func (plainTicks) Ticks(min, max float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(min, max)
	for i, t := range ticks {
		if t.Label != "" {
			ticks[i].Label = strconv.FormatFloat(t.Value, 'g', 12, 64)
		}
	}
	return ticks
}
