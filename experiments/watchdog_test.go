//go:build dpdk && cgo

package experiments

import (
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/joyride-bench/joyride/analysis"
)

// A server stopped (SIGSTOP) in the middle of a point stops making progress:
// the point's watchdog kills it when the load ends, the point fails with
// that reason and keeps what it measured (the generator's counters, the
// histogram of the replies before the stop), and the next point runs on a
// fresh server and succeeds. The whole run stays within a bound.
func TestStoppedServerFailsItsPointWithPartialData(t *testing.T) {
	e, err := Load(filepath.Join("testdata", "watchdog.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Stopped 1.2 s after the generator started: past its DPDK start-up
	// and the 200 ms warm-up, so about a second of replies is measured.
	d := &disturbFirstPoint{match: "/jrapp ", sig: syscall.SIGSTOP, after: 1200 * time.Millisecond}
	m, dir, took := runDisturbed(t, e, d)
	// Two points of 4.2 s of load, each with ~1 s of start-up and stop, and
	// the testbed: ~13 s. 30 s is the bound a point would reach if the run
	// waited for the generator's own time bound or a server's SIGTERM grace
	// on top of it.
	if took > 30*time.Second {
		t.Errorf("the run took %v", took)
	}
	victim, _ := d.target()
	first := m.Points[0]
	if first.Status != "failed" {
		t.Fatalf("the point whose server was stopped: status %q reason %q", first.Status, first.Reason)
	}
	re := regexp.MustCompile(`server stopped making progress for ([0-9.]+)s: jrapp \(pid ([0-9]+)\)`)
	sub := re.FindStringSubmatch(first.Reason)
	if sub == nil || sub[2] != strconv.Itoa(victim) {
		t.Fatalf("reason %q does not name the stopped jrapp (pid %d)", first.Reason, victim)
	}
	// Stopped ~1.2 s into a ~4.4 s generator run: ~3 s without progress.
	if s, _ := strconv.ParseFloat(sub[1], 64); s < stallGrace.Seconds() || s > 4.5 {
		t.Errorf("stalled for %s s, want between the grace (%v) and the point's length", sub[1], stallGrace)
	}
	if err := syscall.Kill(victim, 0); err == nil {
		t.Errorf("the stopped jrapp (pid %d) is still there", victim)
	}
	// The partial data: counters in meta.json, latencies in the histogram
	// and in summary.csv (an invalid row, with the failure as its reason).
	g := first.Generator
	if g == nil || g.Received == 0 || g.Received >= g.Sent {
		t.Fatalf("the failed point's generator counters: %+v", g)
	}
	pts, err := analysis.ReadSummaryCSV(filepath.Join(dir, "summary.csv"))
	if err != nil || len(pts) != 2 {
		t.Fatalf("summary.csv: %d rows, %v", len(pts), err)
	}
	h, err := analysis.ReadHlog(filepath.Join(dir, pts[0].Hlog))
	if err != nil {
		t.Fatalf("the failed point's histogram: %v", err)
	}
	if h.TotalCount() == 0 || uint64(h.TotalCount()) > g.Received {
		t.Errorf("the failed point's histogram holds %d latencies (generator received %d)", h.TotalCount(), g.Received)
	}
	if p := pts[0]; p.Valid || !strings.Contains(p.Reason, "stopped making progress") || p.P50us <= 0 || p.Received != g.Received {
		t.Errorf("the failed point's summary row: valid %v reason %q p50 %.1f µs received %d", p.Valid, p.Reason, p.P50us, p.Received)
	}
	if p := pts[1]; !p.Valid || p.Received == 0 {
		t.Errorf("the next point's summary row: %+v", p)
	}
}
