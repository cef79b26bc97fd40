package plots

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"strconv"

	"github.com/joyride-bench/joyride/analysis"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgpdf"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Figure size and PNG resolution.
const (
	figWidth  = 8 * vg.Inch
	figHeight = 5 * vg.Inch
	pngDPI    = 150
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

// save writes p as outBase.png, outBase.svg and outBase.pdf (for papers: vector,
// fonts embedded), each atomically, creating the directory if needed.
func save(p *plot.Plot, outBase string) error {
	png := func(w io.Writer) error {
		c := vgimg.NewWith(vgimg.UseWH(figWidth, figHeight), vgimg.UseDPI(pngDPI), vgimg.UseBackgroundColor(color.White))
		drawFigure(p, draw.New(c))
		_, err := vgimg.PngCanvas{Canvas: c}.WriteTo(w)
		return err
	}
	svg := func(w io.Writer) error {
		c := vgsvg.New(figWidth, figHeight)
		drawFigure(p, draw.New(c))
		_, err := c.WriteTo(w)
		return err
	}
	pdf := func(w io.Writer) error {
		c := vgpdf.New(figWidth, figHeight)
		drawFigure(p, draw.New(c))
		_, err := c.WriteTo(w)
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

// drawFigure draws p on c with its legend in a column to the right of the plot,
// where it cannot hide data.
func drawFigure(p *plot.Plot, c draw.Canvas) {
	leg := p.Legend
	r := leg.Rectangle(c)
	width := r.Max.X - r.Min.X
	if width == 0 {
		p.Draw(c)
		return
	}
	gap := vg.Points(10)
	p.Legend = plot.NewLegend()
	defer func() { p.Legend = leg }()
	p.Draw(draw.Crop(c, 0, -(width + 2*gap), 0, 0))
	leg.Top, leg.Left = true, true
	leg.XOffs, leg.YOffs = 0, 0
	leg.Padding = vg.Points(2)
	top := p.Title.TextStyle.Height(p.Title.Text) + p.Title.Padding + gap
	leg.Draw(draw.Crop(c, c.Max.X-c.Min.X-width-gap, -gap, 0, -top))
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
