//go:build dpdk && cgo

package loadgen

import (
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/joyride-bench/joyride/nic/netstack"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
)

// tcpEchoServer is a gVisor stack on srvPort with a TCP echo on port 9000, its
// endpoint polled by a goroutine of its own; closeAfter > 0 makes it close
// every connection that long after accepting it.
type tcpEchoServer struct {
	ln       *gonet.TCPListener
	stop     atomic.Bool
	done     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	accepted atomic.Int64
	shutdown func()
}

func startTCPEcho(tb testing.TB, closeAfter time.Duration) *tcpEchoServer {
	tb.Helper()
	ep := netstack.New(srvPort, netstack.Options{})
	s, err := netstack.NewStack(ep, netip.PrefixFrom(srvIP, 24), netip.Addr{})
	if err != nil {
		tb.Fatal(err)
	}
	srv := &tcpEchoServer{done: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	go func() {
		defer close(srv.done)
		for !srv.stop.Load() {
			if rx, tx := ep.Poll(); rx+tx == 0 {
				runtime.Gosched()
			}
		}
	}()
	ln, err := gonet.ListenTCP(s, tcpip.FullAddress{NIC: netstack.NICID, Addr: tcpip.AddrFrom4(srvIP.As4()), Port: 9000}, ipv4.ProtocolNumber)
	if err != nil {
		tb.Fatal(err)
	}
	srv.ln = ln
	srv.wg.Add(1)
	go func() {
		defer srv.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			srv.accepted.Add(1)
			srv.mu.Lock()
			srv.conns[c] = struct{}{}
			srv.mu.Unlock()
			if closeAfter > 0 {
				time.AfterFunc(closeAfter, func() { c.Close() })
			}
			srv.wg.Add(1)
			go func() {
				defer srv.wg.Done()
				io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	srv.shutdown = func() {
		ln.Close()
		srv.mu.Lock()
		for c := range srv.conns {
			c.Close()
		}
		srv.mu.Unlock()
		srv.wg.Wait()
		s.Close() // while the poller still runs, so the last frames leave
		srv.stop.Store(true)
		<-srv.done
		s.Wait()
	}
	return srv
}

func tcpCfg(conns int, rate float64, d time.Duration) TCPConfig {
	return TCPConfig{Config: Config{Flow: Flow{SrcIP: genIP, DstIP: srvIP, DstPort: 9000}, Size: 64,
		Schedule: Poisson, Rate: rate, Duration: d, Warmup: 200 * time.Millisecond, Seed: 5,
		// Generous: the two vCPUs are shared with the server, and often with
		// other work.
		Drain: 2 * time.Second}, Conns: conns}
}

func TestTCPEveryRequestIsAnswered(t *testing.T) {
	for _, conns := range []int{1, 16} {
		srv := startTCPEcho(t, 0)
		cfg := tcpCfg(conns, 5000, time.Second)
		res, err := RunTCP(genPort, cfg)
		srv.shutdown()
		if err != nil {
			t.Fatalf("%d conns: %v", conns, err)
		}
		if got := srv.accepted.Load(); got != int64(conns) {
			t.Fatalf("server accepted %d connections, want %d", got, conns)
		}
		if res.Scheduled < 4000 || res.Sent != res.Scheduled || res.Received != res.Sent || res.Lost != 0 ||
			res.NotSent != 0 || res.ConnFailures != 0 || res.Unmatched != 0 || res.Duplicates != 0 {
			t.Fatalf("%d conns: %+v", conns, res)
		}
		if res.WarmupSent == 0 || res.WarmupReceived != res.WarmupSent {
			t.Fatalf("%d conns: warm-up sent %d received %d", conns, res.WarmupSent, res.WarmupReceived)
		}
		if res.Conns != conns || res.Protocol != "tcp" || res.ConnectSeconds <= 0 || res.ServerMAC != srvPort.MAC().String() {
			t.Fatalf("%d conns: conns %d protocol %q connect %v s, server MAC %q", conns, res.Conns, res.Protocol,
				res.ConnectSeconds, res.ServerMAC)
		}
		if iv, n := cfg.Intervals(); len(res.Intervals) != n || res.IntervalS != iv.Seconds() {
			t.Fatalf("%d intervals of %v s for 1 s, want %d of %v", len(res.Intervals), res.IntervalS, n, iv)
		}
		// The arrival check ran on the first 1000 writes.
		if res.ArrivalN != ArrivalSamples || !(res.ArrivalA2 > 0) {
			t.Fatalf("arrival check: A2 %v over %d gaps", res.ArrivalA2, res.ArrivalN)
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
		h := merged(res.Intervals)
		p50 := h.ValueAtQuantile(50)
		if p50 <= 0 || p50 > int64(20*time.Millisecond) {
			t.Fatalf("p50 of %v over a memif wire", time.Duration(p50))
		}
		t.Logf("%d conns: connect %.1f ms, p50 %v p99 %v max %v, late %d, max lag %.1f us", conns,
			res.ConnectSeconds*1e3, time.Duration(p50), time.Duration(h.ValueAtQuantile(99)),
			time.Duration(h.Max()), res.Late, res.MaxLagUs)
	}
}

// TestTCPClosedLoop: with a window of W per connection the generator keeps
// exactly that many requests outstanding — it never has more in flight (the
// server sees at most conns*W unanswered requests) — and every request it
// issues is answered, with no schedule (nothing late, offered rate 0).
func TestTCPClosedLoop(t *testing.T) {
	srv := startTCPEcho(t, 0)
	cfg := tcpCfg(4, 0, 500*time.Millisecond)
	cfg.Window = 3
	res, err := RunTCP(genPort, cfg)
	srv.shutdown()
	if err != nil {
		t.Fatal(err)
	}
	if res.Schedule != "closed" || res.Window != 3 || res.OfferedRPS != 0 || res.Late != 0 {
		t.Fatalf("closed loop reported as schedule %q window %d offered %v late %d", res.Schedule, res.Window, res.OfferedRPS, res.Late)
	}
	if res.Sent < 1000 || res.Scheduled != res.Sent || res.Received != res.Sent || res.Lost != 0 || res.Unmatched != 0 || res.NotSent != 0 {
		t.Fatalf("%+v", res)
	}
	var recorded int64
	for _, h := range res.Intervals {
		recorded += h.TotalCount()
	}
	if uint64(recorded) != res.Received || res.ReceivedBytes != 64*res.Received {
		t.Fatalf("histograms hold %d latencies and %d bytes for %d replies", recorded, res.ReceivedBytes, res.Received)
	}
	// Little's law: throughput = outstanding / latency. With 12 requests
	// always outstanding, the mean latency must match 12 / achieved rate
	// (within a factor covering the gaps between a reply and the next write).
	all := merged(res.Intervals)
	mean := all.Mean() / 1e9
	if little := 12 / res.AchievedRPS; mean > 1.5*little || mean < little/3 {
		t.Fatalf("mean latency %.1f us, Little's law with 12 outstanding at %.0f/s says %.1f us", mean*1e6, res.AchievedRPS, little*1e6)
	}
	t.Logf("window 3 x 4 conns: %.0f replies/s, mean %.1f us, p99 %.1f us", res.AchievedRPS, mean*1e6,
		float64(all.ValueAtQuantile(99))/1e3)
}

// TestTCPSizeDistribution: requests of drawn sizes up to 64 KiB (spanning many
// segments) come back whole, each reply cut at its request's length.
func TestTCPSizeDistribution(t *testing.T) {
	srv := startTCPEcho(t, 0)
	cfg := tcpCfg(2, 2000, 500*time.Millisecond)
	var err error
	if cfg.Sizes, err = ParseSize("bimodal:100,65536,0.2"); err != nil {
		t.Fatal(err)
	}
	res, err := RunTCP(genPort, cfg)
	srv.shutdown()
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent < 500 || res.Received != res.Sent || res.Lost != 0 || res.Unmatched != 0 || res.SizeDist != "bimodal:100,65536,0.2" {
		t.Fatalf("%+v", res)
	}
	// The mean size is 0.8*100 + 0.2*65536 = 13187 bytes.
	mean := float64(res.ReceivedBytes) / float64(res.Received)
	if mean < 10000 || mean > 16500 {
		t.Fatalf("mean reply %.0f bytes, want about 13187", mean)
	}
	t.Logf("%d replies, mean %.0f bytes, p50 %.1f us, p99 %.1f us", res.Received, mean,
		float64(merged(res.Intervals).ValueAtQuantile(50))/1e3, float64(merged(res.Intervals).ValueAtQuantile(99))/1e3)
}

// TestTCPConnectionsClosedByTheServer: the server closes every connection 300 ms
// after accepting it, in the middle of the warm-up-plus-measured span: every
// connection is counted failed, what was in flight is lost, what was due later
// is not sent, and the run ends on time.
func TestTCPConnectionsClosedByTheServer(t *testing.T) {
	srv := startTCPEcho(t, 300*time.Millisecond)
	cfg := tcpCfg(4, 5000, time.Second)
	cfg.Drain = 100 * time.Millisecond
	t0 := time.Now()
	res, err := RunTCP(genPort, cfg)
	elapsed := time.Since(t0)
	srv.shutdown()
	if err != nil {
		t.Fatal(err)
	}
	if limit := cfg.Warmup + cfg.Duration + cfg.Drain + 3*time.Second; elapsed > limit {
		t.Fatalf("run took %v, more than %v", elapsed, limit)
	}
	if res.ConnFailures != 4 {
		t.Fatalf("%d connection failures, want 4: %+v", res.ConnFailures, res)
	}
	if res.NotSent == 0 || res.Sent+res.NotSent != res.Scheduled || res.Received > res.Sent || res.Lost != res.Sent-res.Received {
		t.Fatalf("scheduled %d sent %d not sent %d received %d lost %d", res.Scheduled, res.Sent, res.NotSent,
			res.Received, res.Lost)
	}
	t.Logf("in %v: %d failures, scheduled %d sent %d not sent %d received %d lost %d", elapsed.Round(time.Millisecond),
		res.ConnFailures, res.Scheduled, res.Sent, res.NotSent, res.Received, res.Lost)
}

func TestRunTCPRefusesBadConfig(t *testing.T) {
	for _, c := range []TCPConfig{tcpCfg(0, 1000, time.Second), tcpCfg(MaxConns+1, 1000, time.Second),
		tcpCfg(1, 1000, 0), {Config: tcpCfg(1, 1000, time.Second).Config, Window: MaxWindow + 1}} {
		if c.Conns == 0 {
			c.Size = 10
		}
		if _, err := RunTCP(genPort, c); err == nil {
			t.Fatalf("accepted %+v", c)
		}
	}
}

// BenchmarkTCPRoundTripPath pushes b.N requests over 16 connections as fast as
// the schedule allows (constant 2 Mrequests/s, above what one core sends)
// through the client stack, the memif wire and a gVisor echo server:
// ns/request is the whole path's cost per request (generator, both stacks and
// the server share the two vCPUs); allocs/op counts both stacks' allocations.
func BenchmarkTCPRoundTripPath(b *testing.B) {
	benchTCP(b, 16)
}

func BenchmarkTCPRoundTripPath1Conn(b *testing.B) { benchTCP(b, 1) }

// BenchmarkTCPRoundTripPathLocked: the same with the engine locked to its OS
// thread (see tcpLockThread), to show what the lock costs.
func BenchmarkTCPRoundTripPathLocked(b *testing.B) {
	tcpLockThread = true
	defer func() { tcpLockThread = false }()
	benchTCP(b, 16)
}

func benchTCP(b *testing.B, conns int) {
	srv := startTCPEcho(b, 0)
	defer srv.shutdown()
	rate := 2e6
	d := time.Duration(float64(b.N) / rate * float64(time.Second))
	if d < time.Millisecond {
		d = time.Millisecond
	}
	cfg := tcpCfg(conns, rate, d)
	cfg.Schedule, cfg.Warmup, cfg.Drain, cfg.LateThreshold = Constant, 0, time.Second, time.Hour
	b.ReportAllocs()
	b.ResetTimer()
	res, err := RunTCP(genPort, cfg)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	el := b.Elapsed().Seconds() - res.ConnectSeconds
	b.ReportMetric(float64(res.Received)/el/1e6, "Mreplies/s")
	b.ReportMetric(el*1e9/float64(b.N), "ns/request")
	if res.Lost != 0 || res.NotSent != 0 {
		b.Logf("N=%d: sent %d not sent %d received %d lost %d", b.N, res.Sent, res.NotSent, res.Received, res.Lost)
	}
}
