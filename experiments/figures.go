package experiments

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/joyride-bench/joyride/analysis"
	"github.com/joyride-bench/joyride/plots"
)

// DrawPlots draws the figures e asks for (e.Plots) from pts into outDir, as
// PNG, SVG and PDF, under title (Title(e) for a run), and returns the names drawn. hlog gives a point's
// interval log file (the CDFs pool them); a CDF whose logs cannot be read is
// reported in the error, and the other figures are drawn anyway. The runner
// and `jrbench plot` both draw through it, so a run re-plotted offline looks
// as it did.
func DrawPlots(e *Experiment, title string, pts []analysis.Point, outDir string, hlog func(analysis.Point) (string, error)) ([]string, error) {
	var errs []error
	var drawn []string
	slo := float64(e.SLO.P99.Duration) / 1e3
	draw := func(name string, err error) {
		if err != nil {
			errs = append(errs, err)
			return
		}
		drawn = append(drawn, name)
	}
	for _, ps := range e.Plots {
		switch ps.Kind {
		case "latency-vs-load":
			draw("latency-vs-load", plots.LatencyVsLoad(pts, title, filepath.Join(outDir, "latency-vs-load"), slo))
		case "capacity":
			draw("capacity", plots.CapacityBars(pts, slo, title+": throughput under the p99 SLO", filepath.Join(outDir, "capacity")))
		case "density":
			rate := ps.Rate
			if rate == 0 {
				rate = lowest(e.Workload.Rates)
			}
			draw("density", plots.Density(pts, rate, title, filepath.Join(outDir, "density")))
		case "cores":
			draw("cores", plots.CoresVsLoad(pts, title+": server cores", filepath.Join(outDir, "cores")))
		case "msg-size":
			draw("msg-size", plots.MsgSize(pts, title, filepath.Join(outDir, "msg-size")))
		case "cdf":
			l := ps.Level(e.Workload)
			series, err := plots.CDFAt(pts, func(p analysis.Point) bool {
				return p.OfferedRPS == l.Rate && p.Window == l.Window && (p.Size == l.Size || p.Size == 0)
			}, hlog)
			if err != nil {
				errs = append(errs, err)
			}
			if len(series) == 0 {
				continue
			}
			name := fmt.Sprintf("cdf-%.0f", l.Rate)
			if l.Window > 0 {
				name = fmt.Sprintf("cdf-w%d", l.Window)
			}
			if len(e.Workload.Sizes) > 0 {
				name += fmt.Sprintf("-%dB", l.Size)
			}
			draw(name, plots.LatencyCDF(series, fmt.Sprintf("%s at %s", title, e.Workload.Describe(l)), filepath.Join(outDir, name)))
		}
	}
	return drawn, errors.Join(errs...)
}
