package plots

import (
	"errors"
	"fmt"
	"sort"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/joyride-bench/joyride/analysis"
)

// CDFAtRate pools, per stack, the interval logs of every valid repetition at
// rate into one CDF series (stacks sorted by name). path gives a point's log
// file. Logs that cannot be read are left out and reported in the error; the
// series built from the others are returned anyway.
func CDFAtRate(pts []analysis.Point, rate float64, path func(analysis.Point) (string, error)) ([]CDFSeries, error) {
	return CDFAt(pts, func(p analysis.Point) bool { return p.OfferedRPS == rate }, path)
}

// CDFAt is CDFAtRate for the points at is true of (a rate, a closed loop's
// window, a size).
func CDFAt(pts []analysis.Point, at func(analysis.Point) bool, path func(analysis.Point) (string, error)) ([]CDFSeries, error) {
	// One series per stack, or per stack and protocol when the points mix
	// protocols (an experiment over [udp, tcp]).
	type key struct{ stack, protocol string }
	pooled := map[key]*hdrhistogram.Histogram{}
	protocols := map[string]bool{}
	var errs []error
	for _, p := range pts {
		if !at(p) || !p.Valid {
			continue
		}
		protocols[p.Protocol] = true
		file, err := path(p)
		if err == nil && file == "" {
			continue // no log
		}
		var h *hdrhistogram.Histogram
		if err == nil {
			h, err = analysis.ReadHlog(file)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s at %.0f: %w", p.Stack, p.OfferedRPS, err))
			continue
		}
		k := key{p.Stack, p.Protocol}
		if pooled[k] == nil {
			pooled[k] = analysis.NewHistogram()
		}
		pooled[k].Merge(h)
	}
	keys := make([]key, 0, len(pooled))
	for k := range pooled {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].stack < keys[j].stack || keys[i].stack == keys[j].stack && keys[i].protocol < keys[j].protocol
	})
	out := make([]CDFSeries, 0, len(keys))
	for _, k := range keys {
		s := CDFSeries{Label: k.stack, Stack: k.stack, Hist: pooled[k]}
		if len(protocols) > 1 {
			s.Label += " " + k.protocol
			s.Protocol = k.protocol
		}
		out = append(out, s)
	}
	return out, errors.Join(errs...)
}
