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
	pooled := map[string]*hdrhistogram.Histogram{}
	var errs []error
	for _, p := range pts {
		if !at(p) || !p.Valid {
			continue
		}
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
		if pooled[p.Stack] == nil {
			pooled[p.Stack] = analysis.NewHistogram()
		}
		pooled[p.Stack].Merge(h)
	}
	stacks := make([]string, 0, len(pooled))
	for s := range pooled {
		stacks = append(stacks, s)
	}
	sort.Strings(stacks)
	out := make([]CDFSeries, 0, len(stacks))
	for _, s := range stacks {
		out = append(out, CDFSeries{Label: s, Stack: s, Hist: pooled[s]})
	}
	return out, errors.Join(errs...)
}
