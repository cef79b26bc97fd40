package plots

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/joyride-bench/joyride/analysis"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// CoresVsLoad draws how busy the server side's cores were (analysis.Point's
// ServerCores, mean over valid repetitions) against the throughput achieved,
// one colour per stack (and, when the points mix them, one dash pattern per
// protocol or size: udp solid, tcp dashed), and writes outBase+".png", ".svg" and ".pdf": the
// figure behind Joyride's claim that Linux needs several cores where DPDK
// needs one. A polling stack sits at one core whatever the load; a stack
// whose line rises reaches its cores' limit where it meets 1.0 per core.
// Points without a CPU measurement are left out.
func CoresVsLoad(pts []analysis.Point, title, outBase string) error {
	p := newPlot(title)
	p.X.Label.Text = "throughput achieved (krequests/s)"
	p.Y.Label.Text = "server cores busy"
	xmax, ymax := 0.0, 1.0
	// One colour per stack, one dash pattern per protocol and size (udp
	// solid, tcp dashed): the legend names each once.
	variant := func(a analysis.Aggregate) string {
		var parts []string
		if multiProtocol(pts) {
			parts = append(parts, a.Protocol)
		}
		if a.SizeSwept && a.Size > 0 {
			parts = append(parts, fmt.Sprintf("%d B", a.Size))
		}
		return strings.Join(parts, " ")
	}
	gs := groups(analysis.AggregateByStackRate(pts))
	var vs variants
	ordered := slices.Clone(gs)
	slices.SortStableFunc(ordered, func(a, b []analysis.Aggregate) int {
		return cmp.Or(compareProtocols(a[0].Protocol, b[0].Protocol), cmp.Compare(a[0].Size, b[0].Size))
	})
	for _, g := range ordered {
		if v := variant(g[0]); v != "" {
			vs.dashes(v)
		}
	}
	var stacks []string
	for _, g := range gs {
		var xys plotter.XYs
		for _, a := range g {
			if a.NValid == 0 || a.ServerCores <= 0 {
				continue
			}
			xys = append(xys, plotter.XY{X: a.AchievedRPS / 1000, Y: a.ServerCores})
			xmax, ymax = math.Max(xmax, a.AchievedRPS/1000), math.Max(ymax, a.ServerCores)
		}
		if len(xys) == 0 {
			continue
		}
		c, glyph := StackStyle(g[0].Stack)
		var dashes []vg.Length
		if v := variant(g[0]); v != "" {
			dashes = vs.dashes(v)
		}
		if err := addCurve(p, xys, c, glyph, dashes); err != nil {
			return fmt.Errorf("plot %s: %w", outBase, err)
		}
		stacks = append(stacks, g[0].Stack)
	}
	l := newLegend()
	l.addStacks(stacks)
	vs.addKey(l)
	if xmax == 0 {
		p.Title.Text += " (no CPU measurements)"
		xmax = 1
	}
	p.Add(plotter.NewGrid())
	p.X.Min, p.X.Max = 0, xmax*1.05
	p.Y.Min, p.Y.Max = 0, math.Ceil(ymax*1.1*4)/4
	return saveFigure(singlePanel(p, l), outBase)
}

// multiProtocol reports whether pts mix protocols (an experiment over
// [udp, tcp]), so that legends must name them.
func multiProtocol(pts []analysis.Point) bool {
	for _, p := range pts {
		if p.Protocol != pts[0].Protocol {
			return true
		}
	}
	return false
}
