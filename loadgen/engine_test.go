//go:build dpdk && cgo

package loadgen

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/joyride-bench/joyride/nic"
	"github.com/joyride-bench/joyride/nic/arp"
	"github.com/joyride-bench/joyride/nic/dpdk"
	"github.com/joyride-bench/joyride/nic/dpdk/dpdktest"
	"github.com/joyride-bench/joyride/stacks/null"
)

// The engine is tested on a real DPDK wire: a memif pair in this process, the
// generator on one end and the null stack's reflector (its Bouncer) polling the
// other in a goroutine of its own.
var genPort, srvPort *dpdk.Port

var (
	genIP = netip.MustParseAddr("198.18.0.1")
	srvIP = netip.MustParseAddr("198.18.0.2")
)

func TestMain(m *testing.M) {
	// Two queue pairs per end: the multi-queue tests (multi_test.go) use
	// both, everything else queue 0 (the ports as nic.Ports).
	pair, err := dpdktest.OpenPair("jrlg", dpdk.PortConfig{RxQueues: 2, TxQueues: 2})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srvPort, genPort = pair.Server, pair.Client
	code := m.Run()
	pair.Close()
	os.Exit(code)
}

// reflect runs the null stack's bouncer on the server port until stop is called.
func reflect(t testing.TB) (stop func() *null.Bouncer) {
	b := null.NewBouncer(srvPort.MAC(), arp.New(srvPort.MAC(), srvIP), 32)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rx := nic.NewBatch(32)
		for ctx.Err() == nil {
			b.Burst(srvPort, rx)
		}
	}()
	return func() *null.Bouncer { cancel(); wg.Wait(); return b }
}

func resolve(t testing.TB) (*arp.Responder, net.HardwareAddr) {
	resp := arp.New(genPort.MAC(), genIP)
	mac, err := arp.Resolve(genPort, resp, srvIP, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return resp, mac
}

func flowTo(mac net.HardwareAddr) Flow {
	return Flow{SrcMAC: genPort.MAC(), DstMAC: mac, SrcIP: genIP, DstIP: srvIP, SrcPort: 40000, DstPort: 9000}
}

func TestEveryRequestIsAnsweredAndRecorded(t *testing.T) {
	stop := reflect(t)
	resp, mac := resolve(t)
	if mac.String() != srvPort.MAC().String() {
		t.Fatalf("ARP resolved %v, the reflector's MAC is %v", mac, srvPort.MAC())
	}
	res, err := Run(genPort, resp, Config{Flow: flowTo(mac), Size: 64, Schedule: Poisson, Rate: 20000,
		Duration: 1500 * time.Millisecond, Warmup: 200 * time.Millisecond, Seed: 3})
	b := stop()
	if err != nil {
		t.Fatal(err)
	}
	// Every request sent is answered and recorded. One the generator could
	// not send (the memif ring full while the VM stalled the reflector) is
	// counted as not sent, never as sent: a few percent of those are the
	// VM's, not a bug.
	if res.Scheduled < 25000 || res.Sent+res.NotSent != res.Scheduled || res.NotSent > res.Scheduled/20 ||
		res.Received != res.Sent || res.Lost != 0 {
		t.Fatalf("scheduled %d, sent %d, not sent %d, received %d, lost %d", res.Scheduled, res.Sent, res.NotSent, res.Received, res.Lost)
	}
	if res.WarmupSent == 0 || res.WarmupReceived != res.WarmupSent {
		t.Fatalf("warm-up sent %d received %d", res.WarmupSent, res.WarmupReceived)
	}
	if len(res.Intervals) != 30 || res.IntervalS != DefaultInterval.Seconds() {
		t.Fatalf("%d intervals of %v s for 1.5 s, want 30 of 50 ms", len(res.Intervals), res.IntervalS)
	}
	var recorded int64
	for _, h := range res.Intervals {
		recorded += h.TotalCount()
		if h.StartTimeMs() == 0 || h.EndTimeMs() <= h.StartTimeMs() {
			t.Fatalf("interval without its times: %d..%d", h.StartTimeMs(), h.EndTimeMs())
		}
	}
	if uint64(recorded) != res.Received {
		t.Fatalf("histograms hold %d latencies, %d replies were received", recorded, res.Received)
	}
	p50 := merged(res.Intervals).ValueAtQuantile(50)
	if p50 <= 0 || p50 > int64(10*time.Millisecond) {
		t.Fatalf("p50 of %v over a memif wire", time.Duration(p50))
	}
	if st := b.Stats(); st.TxPackets < res.Sent {
		t.Fatalf("reflector sent back %d frames for %d requests", st.TxPackets, res.Sent)
	}
}

func TestUnansweredRequestsCountAsLost(t *testing.T) {
	// No reflector: the server end only drops what arrives.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		rx := nic.NewBatch(32)
		for ctx.Err() == nil {
			srvPort.RxBurst(rx)
			srvPort.Free(rx)
		}
	}()
	res, err := Run(genPort, arp.New(genPort.MAC(), genIP), Config{Flow: flowTo(srvPort.MAC()), Size: 64,
		Schedule: Constant, Rate: 5000, Duration: 400 * time.Millisecond, Drain: 50 * time.Millisecond})
	cancel()
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 2000 || res.Received != 0 || res.Lost != 2000 {
		t.Fatalf("sent %d, received %d, lost %d; want 2000, 0, 2000", res.Sent, res.Received, res.Lost)
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	if _, err := Run(genPort, arp.New(genPort.MAC(), genIP), Config{Flow: flowTo(nil), Size: 64,
		Schedule: Poisson, Rate: 1000, Duration: time.Second}); err == nil {
		t.Fatal("unresolved destination MAC accepted")
	}
}

// BenchmarkRoundTripPath pushes b.N requests as fast as the schedule allows
// (constant 5 Mrequests/s, far above what one core sends) through the memif wire
// and the reflector: ns/request is the generator's cost per request sent and
// reply received; allocs/op shows any allocation on the packet path.
func BenchmarkRoundTripPath(b *testing.B) {
	stop := reflect(b)
	defer stop()
	resp, mac := resolve(b)
	rate := 5e6
	d := time.Duration(float64(b.N) / rate * float64(time.Second))
	if d < time.Millisecond {
		d = time.Millisecond
	}
	b.ReportAllocs()
	b.ResetTimer()
	res, err := Run(genPort, resp, Config{Flow: flowTo(mac), Size: 64, Schedule: Constant, Rate: rate,
		Duration: d, Drain: 20 * time.Millisecond, LateThreshold: time.Hour})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(res.Received)/b.Elapsed().Seconds()/1e6, "Mreplies/s")
}
