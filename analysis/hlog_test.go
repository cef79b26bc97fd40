package analysis

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// uniformIntervals records 1..n µs once each, spread round-robin over k
// one-second intervals starting at start, and returns the intervals and one
// histogram holding everything.
func uniformIntervals(t *testing.T, start time.Time, n, k int) ([]*hdrhistogram.Histogram, *hdrhistogram.Histogram) {
	t.Helper()
	all := NewHistogram()
	ivs := make([]*hdrhistogram.Histogram, k)
	for i := range ivs {
		ivs[i] = NewHistogram()
		ivs[i].SetStartTimeMs(start.UnixMilli() + int64(i)*1000)
		ivs[i].SetEndTimeMs(start.UnixMilli() + int64(i+1)*1000)
	}
	for v := 1; v <= n; v++ {
		ns := int64(v) * 1000
		if err := ivs[v%k].RecordValue(ns); err != nil {
			t.Fatal(err)
		}
		if err := all.RecordValue(ns); err != nil {
			t.Fatal(err)
		}
	}
	return ivs, all
}

// near reports whether got is within HDR precision (3 significant digits) of want.
func near(got, want float64) bool {
	return math.Abs(got-want) <= want*2e-3+1e-3
}

func TestHlogRoundTrip(t *testing.T) {
	start := time.Date(2025, 3, 1, 12, 0, 0, 250e6, time.UTC)
	ivs, all := uniformIntervals(t, start, 10000, 5)
	path := filepath.Join(t.TempDir(), "kernel-udp-10000-r0.hlog")
	var buf bytes.Buffer
	if err := WriteHlog(&buf, start, ivs); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	for _, want := range []string{
		"#[Histogram log format version 1.3]\n",
		"#[StartTime: 1740830400.250 (seconds since epoch), 2025-03-01T12:00:00.250Z]\n",
		"#[BaseTime: 1740830400.250 (seconds since epoch)]\n",
		`"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"` + "\n",
		"\n0.000000,1.000000,", "\n4.000000,1.000000,",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("log lacks %q:\n%s", want, text[:min(len(text), 600)])
		}
	}

	h, err := ReadHlog(path)
	if err != nil {
		t.Fatal(err)
	}
	if h.TotalCount() != 10000 {
		t.Fatalf("merged count = %d, want 10000", h.TotalCount())
	}
	got, direct := Summarize(h), Summarize(all)
	if got != direct {
		t.Errorf("from log %+v\ndirect   %+v", got, direct)
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"min", got.MinUs, 1}, {"p50", got.P50us, 5000}, {"p90", got.P90us, 9000},
		{"p99", got.P99us, 9900}, {"p99.9", got.P999us, 9990}, {"max", got.MaxUs, 10000},
		{"mean", got.MeanUs, 5000.5},
	} {
		if !near(c.got, c.want) {
			t.Errorf("%s = %v µs, want %v within HDR precision", c.name, c.got, c.want)
		}
	}

	// Timestamps survive for any standard reader.
	r := hdrhistogram.NewHistogramLogReader(bytes.NewReader(buf.Bytes()))
	first, err := r.NextIntervalHistogram()
	if err != nil || first == nil {
		t.Fatalf("library reader: %v, %v", first, err)
	}
	if d := first.StartTimeMs() - start.UnixMilli(); d < -1 || d > 1 {
		t.Errorf("first interval starts %d ms from the log start", d)
	}
}

func TestWriteHlogRejectsUnstampedIntervals(t *testing.T) {
	start := time.Now()
	var buf bytes.Buffer
	if err := WriteHlog(&buf, start, []*hdrhistogram.Histogram{NewHistogram()}); err == nil ||
		!strings.Contains(err.Error(), "interval 0 has no start time") {
		t.Errorf("unstamped interval: err = %v", err)
	}
	h := NewHistogram()
	h.SetStartTimeMs(start.UnixMilli() - 5000)
	h.SetEndTimeMs(start.UnixMilli())
	if err := WriteHlog(&buf, start, []*hdrhistogram.Histogram{h}); err == nil {
		t.Error("interval before the log start: no error")
	}
}

func TestReadHlogEmptyAndBroken(t *testing.T) {
	dir := t.TempDir()
	start := time.Unix(1_700_000_000, 0)

	// Header only (everything lost): an empty histogram, not an error.
	var hdr bytes.Buffer
	if err := WriteHlog(&hdr, start, nil); err != nil {
		t.Fatal(err)
	}
	headerOnly := filepath.Join(dir, "empty.hlog")
	os.WriteFile(headerOnly, hdr.Bytes(), 0o644)
	if h, err := ReadHlog(headerOnly); err != nil || h.TotalCount() != 0 {
		t.Errorf("header-only log: %v, %v", h, err)
	}

	ivs, _ := uniformIntervals(t, start, 100, 2)
	var good bytes.Buffer
	if err := WriteHlog(&good, start, ivs); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(good.String(), "\n") // 4 header lines, 2 intervals, ""
	garbage := append(append([]string{}, lines[:5]...), "this is not an interval")
	garbage = append(garbage, lines[5:]...)
	corrupt := append([]string{}, lines...)
	corrupt[5] = strings.Replace(corrupt[5], ",HISTF", ",HISTX", 1)

	for _, c := range []struct{ name, content, want string }{
		{"zero.hlog", "", "zero.hlog: empty"},
		{"garbage.hlog", strings.Join(garbage, "\n"), "garbage.hlog:6: not a histogram log line"},
		{"corrupt.hlog", strings.Join(corrupt, "\n"), "corrupt.hlog:6: interval 1"},
		{"truncated.hlog", good.String()[:good.Len()-40], "truncated.hlog:6: interval 1"},
	} {
		path := filepath.Join(dir, c.name)
		os.WriteFile(path, []byte(c.content), 0o644)
		_, err := ReadHlog(path)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to contain %q", c.name, err, c.want)
		}
	}
	if _, err := ReadHlog(filepath.Join(dir, "missing.hlog")); err == nil || !strings.Contains(err.Error(), "missing.hlog") {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestSummarizeEmpty(t *testing.T) {
	if l := Summarize(NewHistogram()); l != (Latency{}) {
		t.Errorf("empty histogram: %+v", l)
	}
	if l := Summarize(nil); l != (Latency{}) {
		t.Errorf("nil histogram: %+v", l)
	}
}
