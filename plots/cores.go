package plots

import (
	"fmt"
	"math"

	"github.com/joyride-bench/joyride/analysis"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// CoresVsLoad draws how busy the server side's cores were (analysis.Point's
// ServerCores, mean over valid repetitions) against the throughput achieved,
// one line per stack, and writes outBase+".png", ".svg" and ".pdf": the
// figure behind Joyride's claim that Linux needs several cores where DPDK
// needs one. A polling stack sits at one core whatever the load; a stack
// whose line rises reaches its cores' limit where it meets 1.0 per core.
// Points without a CPU measurement are left out.
func CoresVsLoad(pts []analysis.Point, title, outBase string) error {
	p := newPlot(title)
	p.X.Label.Text = "throughput achieved (krequests/s)"
	p.Y.Label.Text = "server cores busy"
	p.Legend.Top, p.Legend.Left = true, true
	xmax, ymax := 0.0, 1.0
	for _, g := range groups(analysis.AggregateByStackRate(pts)) {
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
		name := g[0].Stack
		var dashes []vg.Length
		if multiProtocol(pts) {
			name += " " + g[0].Protocol
			if g[0].Protocol == "tcp" {
				dashes = p99Dashes // tcp dashed, udp solid
			}
		}
		if g[0].SizeSwept {
			name += fmt.Sprintf(" %d B", g[0].Size)
		}
		if err := addCurve(p, xys, name, c, glyph, dashes); err != nil {
			return fmt.Errorf("plot %s: %w", outBase, err)
		}
	}
	if xmax == 0 {
		p.Title.Text += " (no CPU measurements)"
		xmax = 1
	}
	p.Add(plotter.NewGrid())
	p.X.Min, p.X.Max = 0, xmax*1.05
	p.Y.Min, p.Y.Max = 0, math.Ceil(ymax*1.1*4)/4
	return save(p, outBase)
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
