package analysis_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/joyride-bench/joyride/analysis"
)

// A point's latencies go into one-second interval histograms (nanoseconds), the
// intervals into the point's .hlog, and the reported numbers (microseconds) come
// back out of that file.
func Example() {
	dir, err := os.MkdirTemp("", "run")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// Three seconds of measurement, 1000 requests a second taking 20..29.99 µs.
	start := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	var intervals []*hdrhistogram.Histogram
	for s := range 3 {
		h := analysis.NewHistogram()
		h.SetStartTimeMs(start.Add(time.Duration(s) * time.Second).UnixMilli())
		h.SetEndTimeMs(start.Add(time.Duration(s+1) * time.Second).UnixMilli())
		for i := range 1000 {
			h.RecordValue(20_000 + int64(i)*10) // ns
		}
		intervals = append(intervals, h)
	}
	f, err := os.Create(filepath.Join(dir, "kernel-udp-1000-r0.hlog"))
	if err != nil {
		log.Fatal(err)
	}
	if err := analysis.WriteHlog(f, start, intervals); err != nil {
		log.Fatal(err)
	}
	f.Close()

	h, err := analysis.ReadHlog(f.Name())
	if err != nil {
		log.Fatal(err)
	}
	l := analysis.Summarize(h)
	p := analysis.Point{Stack: "kernel", Protocol: "udp", App: "echo", OfferedRPS: 1000, AchievedRPS: 1000,
		Valid: true, Hlog: "hist/kernel-udp-1000-r0.hlog"}
	analysis.FillLatency(&p, l)
	fmt.Printf("%d requests, p50 %.2f µs, p99 %.2f µs, max %.2f µs\n", l.Count, p.P50us, p.P99us, p.MaxUs)
	// Values are exact to 3 significant digits (the recorded max is 29.99 µs).

	// Output: 3000 requests, p50 24.99 µs, p99 29.90 µs, max 30.00 µs
}
