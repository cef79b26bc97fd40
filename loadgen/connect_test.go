//go:build dpdk && cgo

package loadgen

import (
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/joyride-bench/joyride/analysis"
)

// Connections opened on a schedule against a gVisor server over the memif
// wire: every one established and recorded, the server saw them all.
func TestConnectRecordsEverySetup(t *testing.T) {
	srv := startTCPEcho(t, 0)
	cfg := tcpCfg(1, 500, time.Second).Config
	res, err := RunConnect(genPort, cfg)
	srv.shutdown()
	if err != nil {
		t.Fatal(err)
	}
	if res.Scheduled < 400 || res.Sent != res.Scheduled || res.Received != res.Sent || res.Lost != 0 || res.ConnFailures != 0 {
		t.Fatalf("%+v", res)
	}
	var recorded int64
	for _, h := range res.Intervals {
		recorded += h.TotalCount()
	}
	if res.ArrivalN < 400 || !(res.ArrivalA2 > 0) {
		t.Fatalf("arrival check: A2 %v over %d gaps", res.ArrivalA2, res.ArrivalN)
	}
	if uint64(recorded) != res.Received || res.Protocol != "tcp-connect" {
		t.Fatalf("histograms hold %d setups, %d were established (protocol %q)", recorded, res.Received, res.Protocol)
	}
	if got := srv.accepted.Load(); got < int64(res.Sent) {
		t.Fatalf("server accepted %d connections, %d were opened", got, res.Sent)
	}
	// Every established connection's request was echoed: its first byte
	// comes after the connection was set up.
	var firstBytes int64
	for _, h := range res.FirstByte {
		firstBytes += h.TotalCount()
	}
	if firstBytes != res.FirstByteCount || uint64(firstBytes)+res.FirstByteLost != res.Received || res.FirstByteLost > res.Received/100 {
		t.Fatalf("%d first bytes recorded (%d counted, %d lost) for %d connections", firstBytes, res.FirstByteCount, res.FirstByteLost, res.Received)
	}
	setup := merged(res.Intervals)
	if p50 := setup.ValueAtQuantile(50); res.FirstByteP50Us*1e3 <= float64(p50) {
		t.Fatalf("first byte p50 %.1f us is not after the setup p50 %.1f us", res.FirstByteP50Us, float64(p50)/1e3)
	}
	t.Logf("setup p50 %.1f us, first byte p50 %.1f us p99 %.1f us", float64(setup.ValueAtQuantile(50))/1e3, res.FirstByteP50Us, res.FirstByteP99Us)
}

func merged(hs []*hdrhistogram.Histogram) *hdrhistogram.Histogram {
	all := analysis.NewHistogram()
	for _, h := range hs {
		all.Merge(h)
	}
	return all
}

// Nobody listening: every attempt is refused and counted lost, and the run
// ends on time.
func TestConnectToAClosedPortLosesEveryAttempt(t *testing.T) {
	srv := startTCPEcho(t, 0)
	cfg := tcpCfg(1, 200, 500*time.Millisecond).Config
	cfg.Flow.DstPort = 9999
	start := time.Now()
	res, err := RunConnect(genPort, cfg)
	srv.shutdown()
	if err != nil {
		t.Fatal(err)
	}
	if res.Received != 0 || res.Lost != res.Sent || res.ConnFailures != res.Sent || res.Sent == 0 {
		t.Fatalf("%+v", res)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
}

// The connect engine follows its late spells like the echo engines, so a
// stalled connect point is judged an upper bound, not invalid: with a
// threshold of 1 ns every attempt is late and the run is one spell as long
// as the measured span.
func TestConnectFollowsLateSpells(t *testing.T) {
	srv := startTCPEcho(t, 0)
	cfg := tcpCfg(1, 300, 400*time.Millisecond).Config
	cfg.LateThreshold = time.Nanosecond
	res, err := RunConnect(genPort, cfg)
	srv.shutdown()
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent == 0 || res.Late != res.Sent || res.LateSpells != 1 || res.LongestLateSpellUs < 300000 {
		t.Fatalf("sent %d, late %d, %d spells, longest %.0f µs; want all late, one spell of about 400 ms",
			res.Sent, res.Late, res.LateSpells, res.LongestLateSpellUs)
	}
}
