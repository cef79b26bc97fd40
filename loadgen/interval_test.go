package loadgen

import (
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/joyride-bench/joyride/analysis"
	"github.com/joyride-bench/joyride/nic"
	"github.com/joyride-bench/joyride/nic/arp"
)

// The interval log's spans: the default, a chosen one, and longer ones for
// long points so that no point holds more than MaxIntervals histograms.
func TestIntervalsOfAPoint(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		duration, interval time.Duration
		want               time.Duration
		n                  int
	}{
		{2 * time.Second, 0, 50 * ms, 40}, // every default experiment's point
		{time.Second, 25 * ms, 25 * ms, 40},
		{1500 * ms, 0, 50 * ms, 30},
		{1020 * ms, 0, 50 * ms, 21}, // the last interval is 20 ms
		{10 * time.Second, 0, 50 * ms, MaxIntervals},
		{10*time.Second + ms, 0, 51 * ms, 197}, // 50.005 ms rounds up to a whole ms
		{60 * time.Second, 0, 300 * ms, MaxIntervals},
		{60 * time.Second, time.Second, time.Second, 60}, // long enough already
		{600 * time.Second, 0, 3 * time.Second, MaxIntervals},
		{100 * ms, 0, 50 * ms, 2},
		{30 * ms, 0, 50 * ms, 1},
	} {
		cfg := Config{Duration: c.duration, Interval: c.interval}
		iv, n := cfg.Intervals()
		if iv != c.want || n != c.n {
			t.Errorf("duration %v, interval %v: %v × %d, want %v × %d", c.duration, c.interval, iv, n, c.want, c.n)
		}
		if n > MaxIntervals || time.Duration(n)*iv < c.duration || time.Duration(n-1)*iv >= c.duration {
			t.Errorf("duration %v: %d intervals of %v do not tile it", c.duration, n, iv)
		}
	}
	for _, bad := range []time.Duration{-ms, 9 * ms, 10*ms + 500*time.Microsecond, time.Second + ms} {
		if err := CheckInterval(bad); err == nil || !strings.Contains(err.Error(), "outside 10ms..1s in whole milliseconds") {
			t.Errorf("interval %v: %v", bad, err)
		}
	}
	for _, good := range []time.Duration{0, 10 * ms, 50 * ms, 333 * ms, time.Second} {
		if err := CheckInterval(good); err != nil {
			t.Errorf("interval %v refused: %v", good, err)
		}
	}
}

func TestIntervalOf(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		off  time.Duration
		want uint16
	}{
		{0, 0}, {99 * ms, 0}, // warm-up
		{100 * ms, 1}, {149 * ms, 1}, {150 * ms, 2},
		{100*ms + 199*50*ms, 200}, // the last of MaxIntervals
		{100*ms + 250*50*ms, 200}, // past the end: clamped to the last
	} {
		if got := intervalOf(c.off, 100*ms, 50*ms, MaxIntervals); got != c.want {
			t.Errorf("offset %v: interval %d, want %d", c.off, got, c.want)
		}
	}
}

// Every request lands in the histogram of its scheduled send time: a constant
// schedule puts the same number in every 20 ms interval, and the log's spans
// are contiguous 20 ms.
func TestEnginesRecordPerInterval(t *testing.T) {
	ports := []nic.Port{newLoopPort(), newLoopPort()}
	cfg := loopConfig(20000, 500*time.Millisecond)
	cfg.Warmup = 100 * time.Millisecond
	cfg.Interval = 20 * time.Millisecond
	res, err := RunMulti(ports, nil, arp.New(loopMAC, netip.MustParseAddr("198.18.0.1")), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Intervals) != 25 || res.IntervalS != 0.02 {
		t.Fatalf("%d intervals of %v s for 500 ms at 20 ms", len(res.Intervals), res.IntervalS)
	}
	var recorded int64
	for k, h := range res.Intervals {
		// 20,000 req/s × 20 ms, constant: 400 per interval (±1 at the edges).
		if n := h.TotalCount(); n < 399 || n > 401 {
			t.Errorf("interval %d holds %d latencies, want 400", k, n)
		}
		recorded += h.TotalCount()
		if h.EndTimeMs()-h.StartTimeMs() != 20 {
			t.Errorf("interval %d spans %d..%d ms", k, h.StartTimeMs(), h.EndTimeMs())
		}
		if k > 0 && h.StartTimeMs() != res.Intervals[k-1].EndTimeMs() {
			t.Errorf("interval %d starts at %d ms, the one before ends at %d", k, h.StartTimeMs(), res.Intervals[k-1].EndTimeMs())
		}
	}
	if uint64(recorded) != res.Received || res.Received != res.Sent {
		t.Fatalf("histograms hold %d latencies; sent %d, received %d", recorded, res.Sent, res.Received)
	}

	cfg.Interval = 5 * time.Millisecond
	if _, err := RunMulti(ports[:1], nil, arp.New(loopMAC, netip.MustParseAddr("198.18.0.1")), cfg); err == nil ||
		!strings.Contains(err.Error(), "interval 5ms outside 10ms..1s") {
		t.Errorf("a 5 ms interval: %v", err)
	}
}

// The memory a point's interval log takes: one histogram's counters, and the
// bound MaxIntervals puts on a point (the constant's comment says 200 KiB and
// 40 MiB).
func TestIntervalMemory(t *testing.T) {
	h := analysis.NewHistogram()
	perHist := h.ByteSize() // the counters, 8 bytes each, and a few words
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	hs := newIntervals(MaxIntervals)
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(hs)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("one histogram: %d bytes (ByteSize); %d intervals: %.1f MiB allocated", perHist, MaxIntervals, float64(alloc)/(1<<20))
	if perHist < 200<<10 || perHist > 201<<10 {
		t.Errorf("one histogram is %d bytes, the MaxIntervals comment says 200 KiB", perHist)
	}
	if alloc > 41<<20 {
		t.Errorf("%d intervals take %.1f MiB, more than the 40 MiB MaxIntervals promises", MaxIntervals, float64(alloc)/(1<<20))
	}
}
