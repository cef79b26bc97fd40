package loadgen

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/joyride-bench/joyride/nic"
	"github.com/joyride-bench/joyride/nic/arp"
)

// The multi-queue generator's parts that need no wire: how the schedule is
// split, which replies a template accepts, and the engines on an in-memory
// port (loopPort), which is also where the generator's per-core rate is
// measured (BenchmarkEngineRate). The tests on real DPDK queues are in
// multi_test.go.

func TestEngineSchedulesAddUpToThePoint(t *testing.T) {
	if engineSeed(7, 0) != 7 {
		t.Fatal("engine 0 must keep the point's seed (one engine draws Run's schedule)")
	}
	if engineSeed(7, 1) == engineSeed(7, 2) {
		t.Fatal("engines share a seed")
	}
	cfg := Config{Rate: 30000, Duration: time.Second, Warmup: 100 * time.Millisecond, Seed: 3}
	span := cfg.Warmup + cfg.Duration
	for _, kind := range []string{Constant, Poisson, "bursty:1ms,4ms"} {
		cfg.Schedule = kind
		var all []time.Duration
		for i := 0; i < 3; i++ {
			offs, err := engineSchedule(&cfg, i, 3, engineSeed(cfg.Seed, i))
			if err != nil {
				t.Fatal(err)
			}
			if len(offs) == 0 || offs[len(offs)-1] >= span {
				t.Fatalf("%s: engine %d: %d requests, last at %v (span %v)", kind, i, len(offs), offs[len(offs)-1], span)
			}
			all = append(all, offs...)
		}
		want := cfg.Rate * span.Seconds()
		if got := float64(len(all)); got < 0.97*want || got > 1.03*want {
			t.Fatalf("%s: 3 engines hold %.0f requests, the point %.0f", kind, got, want)
		}
		if kind != Constant {
			continue
		}
		// Constant streams interleave: the merged sends are 1/rate apart.
		slices.Sort(all)
		gap := time.Duration(float64(time.Second) / cfg.Rate)
		for j := 1; j < len(all); j++ {
			if d := all[j] - all[j-1]; d < gap-2 || d > gap+2 {
				t.Fatalf("constant: sends %d and %d are %v apart, want %v", j-1, j, d, gap)
			}
		}
	}
	cfg.Schedule = Poisson
	cfg.Rate = 0
	if _, err := engineSchedule(&cfg, 1, 2, 1); err == nil || !strings.Contains(err.Error(), "engine 1 of 2") {
		t.Fatalf("a bad rate should name the engine: %v", err)
	}
}

func TestTemplateAcceptsRepliesToEveryEnginesPort(t *testing.T) {
	f := Flow{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2},
		SrcIP: netip.MustParseAddr("198.18.0.1"), DstIP: netip.MustParseAddr("198.18.0.2"), SrcPort: 40001, DstPort: 9000}
	tmpl, err := NewUDPTemplate(f, 64)
	if err != nil {
		t.Fatal(err)
	}
	reply := func(dstPort uint16, id uint64) []byte {
		fr := tmpl.Write(make([]byte, tmpl.Len()), id, 0, 0)
		swapPorts(fr)
		fr[udpOff+2], fr[udpOff+3] = byte(dstPort>>8), byte(dstPort)
		return fr
	}
	if _, ok := tmpl.ParseReply(reply(40000, 1)); ok {
		t.Fatal("a one-engine template accepted a reply to another port")
	}
	tmpl.rxPort, tmpl.rxPorts = 40000, 3 // engine 1 of 3, ports 40000..40002
	for p, want := range map[uint16]bool{39999: false, 40000: true, 40002: true, 40003: false} {
		id := uint64(2)<<engineShift | 5
		got, ok := tmpl.ParseReply(reply(p, id))
		if ok != want || (ok && got != id) {
			t.Errorf("reply to port %d: id %x ok %v, want ok %v", p, got, ok, want)
		}
	}
}

func TestRunMultiRefusesBadInput(t *testing.T) {
	ports := []nic.Port{newLoopPort(), newLoopPort()}
	resp := arp.New(loopMAC, netip.MustParseAddr("198.18.0.1"))
	cfg := loopConfig(1000, 100*time.Millisecond)
	for _, c := range []struct {
		queues []nic.Port
		cpus   []int
		want   string
	}{
		{ports, []int{0}, "1 cpus for 2 queues"},
		{ports, []int{0, -1}, "cpu -1 of engine 1 outside 0..1023"},
		{nil, nil, "0 queues (allowed: 1..64)"},
	} {
		if _, err := RunMulti(c.queues, c.cpus, resp, cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("RunMulti(%d queues, cpus %v): %v, want %q", len(c.queues), c.cpus, err, c.want)
		}
	}
	cfg.Flow.SrcPort = 65535
	if _, err := RunMulti(ports, nil, resp, cfg); err == nil || !strings.Contains(err.Error(), "exceed 65535") {
		t.Errorf("source ports past 65535: %v", err)
	}
}

// TestRunMultiOnLoopPorts runs two unpinned engines, each on a port that
// answers everything at once, and checks the merge.
func TestRunMultiOnLoopPorts(t *testing.T) {
	ports := []nic.Port{newLoopPort(), newLoopPort()}
	cfg := loopConfig(20000, 500*time.Millisecond)
	cfg.Warmup = 100 * time.Millisecond
	res, err := RunMulti(ports, nil, arp.New(loopMAC, netip.MustParseAddr("198.18.0.1")), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Queues != 2 || len(res.Engines) != 2 || res.Sent != res.Scheduled || res.Received != res.Sent || res.Lost != 0 {
		t.Fatalf("queues %d engines %d scheduled %d sent %d received %d lost %d",
			res.Queues, len(res.Engines), res.Scheduled, res.Sent, res.Received, res.Lost)
	}
	if want := 20000 * 0.5; float64(res.Scheduled) < 0.95*want || float64(res.Scheduled) > 1.05*want {
		t.Fatalf("%d requests scheduled at 20k/s over 0.5 s", res.Scheduled)
	}
	var sent, recv uint64
	for i, e := range res.Engines {
		if e.Queue != i || e.CPU != -1 || e.SrcPort != cfg.Flow.SrcPort+uint16(i) || e.Sent == 0 || e.Crossed != 0 {
			t.Fatalf("engine %d: %+v", i, e)
		}
		sent += e.Sent
		recv += e.Received
	}
	var recorded int64
	for _, h := range res.Intervals {
		recorded += h.TotalCount()
	}
	if sent != res.Sent || recv != res.Received || uint64(recorded) != res.Received {
		t.Fatalf("engines sent %d received %d, histograms %d; merged sent %d received %d", sent, recv, recorded, res.Sent, res.Received)
	}
	if res.Port.TxPackets != res.Sent+res.WarmupSent {
		t.Fatalf("port stats summed to %d TX packets for %d requests", res.Port.TxPackets, res.Sent+res.WarmupSent)
	}
}

// BenchmarkEngineRate measures the requests/s one engine sustains, and two on
// two cores (queues=2; skipped with fewer than 2 cpus), with nothing but the
// generator's own work: each engine's port is a loopPort, which answers every
// request at once without copying. Every engine is offered far more than it
// can send (constant 50M requests/s), falls behind, and sends b.N/queues
// requests back to back; since its lag grows steadily, its last request's lag
// is the max lag, and the rate it sustained is its requests over (offered span
// + max lag). Reported: req/s per engine and in all (ns/op includes drawing
// the schedule).
func BenchmarkEngineRate(b *testing.B) {
	for _, nq := range []int{1, 2} {
		b.Run(fmt.Sprintf("queues=%d", nq), func(b *testing.B) {
			if runtime.NumCPU() < nq {
				b.Skipf("%d cpus, need %d", runtime.NumCPU(), nq)
			}
			ports := make([]nic.Port, nq)
			cpus := make([]int, nq)
			for i := range ports {
				ports[i], cpus[i] = newLoopPort(), runtime.NumCPU()-nq+i
			}
			rate := 50e6 * float64(nq)
			d := max(time.Duration(float64(b.N)/rate*float64(time.Second)), time.Millisecond)
			cfg := loopConfig(rate, d)
			cfg.LateThreshold = time.Hour
			b.ReportAllocs()
			b.ResetTimer()
			res, err := RunMulti(ports, cpus, arp.New(loopMAC, netip.MustParseAddr("198.18.0.1")), cfg)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			if res.Received != res.Sent {
				b.Fatalf("sent %d, received %d", res.Sent, res.Received)
			}
			var total float64
			for _, e := range res.Engines {
				total += float64(e.Sent) / (d.Seconds() + e.MaxLagUs/1e6)
			}
			b.ReportMetric(total/float64(nq), "req/s/engine")
			b.ReportMetric(total, "req/s")
		})
	}
}

var loopMAC = net.HardwareAddr{2, 0, 0, 0, 0, 1}

func loopConfig(rate float64, d time.Duration) Config {
	return Config{Flow: Flow{SrcMAC: loopMAC, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2},
		SrcIP: netip.MustParseAddr("198.18.0.1"), DstIP: netip.MustParseAddr("198.18.0.2"), SrcPort: 40000, DstPort: 9000},
		Size: 64, Schedule: Constant, Rate: rate, Duration: d, Drain: 50 * time.Millisecond}
}

// loopPort is an in-memory nic.Port that answers every frame sent on it: the
// frame comes back from RxBurst with its UDP ports swapped, as an echo server
// sends it, without a copy. An engine on it runs as fast as its own code lets
// it. One goroutine, like any queue.
type loopPort struct {
	free    [][]byte // buffers to Alloc
	pending [][]byte // sent, to be received
	head    int      // pending[head:] are still to be received
	tx      uint64
}

func newLoopPort() *loopPort {
	const n = 4096
	p := &loopPort{pending: make([][]byte, 0, n)}
	mem := make([]byte, n*2048)
	for i := 0; i < n; i++ {
		p.free = append(p.free, mem[i*2048:(i+1)*2048:(i+1)*2048])
	}
	return p
}

func (p *loopPort) Alloc(b *nic.Batch, n int) int {
	n = min(n, b.Cap(), len(p.free))
	for i := 0; i < n; i++ {
		f := p.free[len(p.free)-1-i]
		b.Frames[i] = f[:cap(f)]
	}
	p.free = p.free[:len(p.free)-n]
	b.N = n
	return n
}

func (p *loopPort) TxBurst(b *nic.Batch) int {
	n := b.N
	for _, f := range b.Frames[:n] {
		swapPorts(f)
		p.pending = append(p.pending, f)
	}
	p.tx += uint64(n)
	b.N = 0
	return n
}

func (p *loopPort) RxBurst(b *nic.Batch) int {
	n := copy(b.Frames, p.pending[p.head:])
	if p.head += n; p.head == len(p.pending) {
		p.pending, p.head = p.pending[:0], 0
	}
	b.N = n
	return n
}

func (p *loopPort) Free(b *nic.Batch) {
	p.free = append(p.free, b.Frames[:b.N]...)
	b.N = 0
}

func (p *loopPort) MAC() net.HardwareAddr  { return loopMAC }
func (p *loopPort) MTU() int               { return 1500 }
func (p *loopPort) Features() nic.Features { return nic.Features{} }
func (p *loopPort) Stats() (nic.Stats, error) {
	return nic.Stats{TxPackets: p.tx, RxPackets: p.tx}, nil
}
func (p *loopPort) Close() error { return nil }

// swapPorts turns a request frame into its echo's UDP ports.
func swapPorts(f []byte) {
	u := f[udpOff:]
	u[0], u[1], u[2], u[3] = u[2], u[3], u[0], u[1]
}
