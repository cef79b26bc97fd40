package analysis

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram shape shared by the generator, the logs and the analysis: values are
// latencies in nanoseconds from 1 ns to 10 s, kept to 3 significant digits.
const (
	HistLowestNs  = 1
	HistHighestNs = 10_000_000_000
	HistSigFigs   = 3
)

// NewHistogram returns an empty histogram of the project's one shape
// (nanoseconds, 1 ns .. 10 s, 3 significant digits).
func NewHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(HistLowestNs, HistHighestNs, HistSigFigs)
}

// WriteHlog writes intervals as a standard HdrHistogram interval log (format
// version 1.3, as written by the Java HistogramLogWriter): a version comment, the
// StartTime and BaseTime headers (start, with millisecond precision), the column
// legend, then one line per interval with its start relative to start, its length
// and its maximum in seconds/milliseconds, and its compressed histogram.
//
// Each interval must carry its absolute time span, as HdrHistogram expects:
// SetStartTimeMs/SetEndTimeMs in milliseconds since the Unix epoch, with
// start <= StartTimeMs <= EndTimeMs. Values are taken to be nanoseconds (the
// interval maximum is written in milliseconds). Tags are written when set.
func WriteHlog(w io.Writer, start time.Time, intervals []*hdrhistogram.Histogram) error {
	baseMs := start.UnixMilli()
	for i, h := range intervals {
		switch {
		case h == nil:
			return fmt.Errorf("hlog: interval %d is nil", i)
		case h.StartTimeMs() == 0:
			return fmt.Errorf("hlog: interval %d has no start time (SetStartTimeMs, ms since the epoch)", i)
		case h.StartTimeMs() < baseMs:
			return fmt.Errorf("hlog: interval %d starts at %d ms, before the log start %d ms", i, h.StartTimeMs(), baseMs)
		case h.EndTimeMs() < h.StartTimeMs():
			return fmt.Errorf("hlog: interval %d ends (%d ms) before it starts (%d ms)", i, h.EndTimeMs(), h.StartTimeMs())
		}
	}
	secs := float64(baseMs) / 1000
	iso := time.UnixMilli(baseMs).UTC().Format("2006-01-02T15:04:05.000Z")
	lw := hdrhistogram.NewHistogramLogWriter(w)
	lw.SetBaseTime(baseMs)
	if err := lw.OutputLogFormatVersion(); err != nil {
		return err
	}
	// The library writes whole seconds here; the Java format (and its readers)
	// take %.3f, which keeps the millisecond of start.
	if _, err := fmt.Fprintf(w, "#[StartTime: %.3f (seconds since epoch), %s]\n", secs, iso); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w, "#[BaseTime: %.3f (seconds since epoch)]\n", secs); err != nil {
		return err
	}
	if err := lw.OutputLegend(); err != nil {
		return err
	}
	for i, h := range intervals {
		if err := lw.OutputIntervalHistogram(h); err != nil {
			return fmt.Errorf("hlog: interval %d: %w", i, err)
		}
	}
	return nil
}

// intervalLine is the shape of an interval line: optional tag, start, length,
// max, compressed histogram.
var intervalLine = regexp.MustCompile(`^(Tag=[^,\s]*,)?[0-9.]+,[0-9.]+,[0-9.]+,[A-Za-z0-9+/=]+$`)

// ReadHlog reads the HdrHistogram interval log at path and merges all its
// intervals into one histogram of the project's shape (NewHistogram). A log with
// a header and no intervals gives an empty histogram. Lines that are neither
// comments, the legend, nor well-formed intervals, intervals that do not decode,
// and values outside 1 ns .. 10 s are errors naming path and line, never skipped:
// a percentile computed from part of a log would look valid and be wrong.
func ReadHlog(path string) (*hdrhistogram.Histogram, error) {
	intervals, lines, err := readHlog(path)
	if err != nil {
		return nil, err
	}
	merged := NewHistogram()
	for k, h := range intervals {
		if dropped := merged.Merge(h); dropped > 0 {
			return nil, fmt.Errorf("%s:%d: interval %d: %d values outside 1 ns .. 10 s", path, lines[k], k, dropped)
		}
	}
	return merged, nil
}

// ReadHlogIntervals reads the interval log at path like ReadHlog but returns
// its intervals one by one, in file order (one per second of measurement for
// the generator's logs), each as decoded, with its start and end times.
func ReadHlogIntervals(path string) ([]*hdrhistogram.Histogram, error) {
	intervals, lines, err := readHlog(path)
	if err != nil {
		return nil, err
	}
	for k, h := range intervals {
		if h.Max() > HistHighestNs {
			return nil, fmt.Errorf("%s:%d: interval %d: values outside 1 ns .. 10 s", path, lines[k], k)
		}
	}
	return intervals, nil
}

// readHlog decodes every interval of the log at path, with the line number of
// each.
func readHlog(path string) ([]*hdrhistogram.Histogram, []int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read hlog: %w", err)
	}
	// Check the structure ourselves first: the library reader silently skips
	// lines it cannot parse and cannot say which line an error came from.
	var lines []int // line numbers of interval lines, in order
	header := false
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case strings.TrimSpace(line) == "":
		case strings.HasPrefix(line, "#"), strings.HasPrefix(line, `"`):
			header = true
		case intervalLine.MatchString(line):
			lines = append(lines, n+1)
		default:
			return nil, nil, fmt.Errorf("%s:%d: not a histogram log line: %.60q", path, n+1, line)
		}
	}
	if !header && len(lines) == 0 {
		return nil, nil, fmt.Errorf("%s: empty: no histogram log header and no intervals", path)
	}
	var out []*hdrhistogram.Histogram
	r := hdrhistogram.NewHistogramLogReader(bytes.NewReader(bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))))
	for k := 0; ; k++ {
		h, err := r.NextIntervalHistogram()
		if err != nil {
			if k < len(lines) {
				return nil, nil, fmt.Errorf("%s:%d: interval %d: %w", path, lines[k], k, err)
			}
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		if h == nil {
			if k != len(lines) {
				return nil, nil, fmt.Errorf("%s: read %d intervals, the file has %d interval lines", path, k, len(lines))
			}
			return out, lines, nil
		}
		if k >= len(lines) {
			return nil, nil, errors.New(path + ": more intervals decoded than interval lines")
		}
		out = append(out, h)
	}
}

// Latency is the distribution of a histogram in microseconds.
type Latency struct {
	// Count is the number of recorded latencies.
	Count int64
	// MinUs, MeanUs, ..., MaxUs are in microseconds; all zero when Count is 0.
	MinUs, MeanUs, P50us, P90us, P99us, P999us, MaxUs float64
	// P50Lo..P99Hi are the 95% confidence intervals of p50 and p99 in
	// microseconds (QuantileCI): P50Lo <= true median <= P50Hi with 95%
	// confidence. A lower bound of 0 means "not bounded from below", an upper
	// bound of +Inf "not bounded from above" (too few samples); all zero when
	// Count is 0.
	P50Lo, P50Hi, P99Lo, P99Hi float64
}

// nsToUs converts a histogram value in nanoseconds to microseconds.
func nsToUs(ns float64) float64 { return ns / 1000 }

// Summarize reads the distribution of h (nanoseconds) in microseconds.
// Percentiles are HdrHistogram's: the highest value equivalent (within the
// histogram's precision) to the recorded value at that rank. The confidence
// intervals of p50 and p99 are QuantileCI's.
func Summarize(h *hdrhistogram.Histogram) Latency {
	if h == nil || h.TotalCount() == 0 {
		return Latency{}
	}
	p50lo, p50hi, _ := QuantileCI(h, 0.50)
	p99lo, p99hi, _ := QuantileCI(h, 0.99)
	return Latency{
		Count:  h.TotalCount(),
		MinUs:  nsToUs(float64(h.Min())),
		MeanUs: nsToUs(h.Mean()),
		P50us:  nsToUs(float64(h.ValueAtQuantile(50))),
		P90us:  nsToUs(float64(h.ValueAtQuantile(90))),
		P99us:  nsToUs(float64(h.ValueAtQuantile(99))),
		P999us: nsToUs(float64(h.ValueAtQuantile(99.9))),
		MaxUs:  nsToUs(float64(h.Max())),
		P50Lo:  nsToUs(p50lo), P50Hi: nsToUs(p50hi),
		P99Lo: nsToUs(p99lo), P99Hi: nsToUs(p99hi),
	}
}

// FillLatency copies the latency columns of l (with the confidence intervals) into p; counts and rates are left alone.
func FillLatency(p *Point, l Latency) {
	p.MinUs, p.MeanUs = l.MinUs, l.MeanUs
	p.P50us, p.P90us, p.P99us, p.P999us = l.P50us, l.P90us, l.P99us, l.P999us
	p.MaxUs = l.MaxUs
	p.P50Lo, p.P50Hi, p.P99Lo, p.P99Hi = l.P50Lo, l.P50Hi, l.P99Lo, l.P99Hi
}
