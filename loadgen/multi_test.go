//go:build dpdk && cgo

package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/joyride-bench/joyride/analysis"
	"github.com/joyride-bench/joyride/nic"
	"github.com/joyride-bench/joyride/nic/arp"
	"github.com/joyride-bench/joyride/stacks/null"
	"github.com/joyride-bench/joyride/testbed/local"
	"golang.org/x/sys/unix"
)

// The multi-queue generator on real DPDK queues: two engines on the two queue
// pairs of the memif wire (TestMain opens them) against the null stack's
// reflector, which answers on the same queue or, to make every reply cross,
// on the other one; and jrgen with two af_xdp queues on a two-queue veth
// against the Linux kernel's UDP in the server namespace.

// steered is a server-side view of the memif port that receives on one queue
// and transmits on another (or the same), counting the UDP source ports it
// receives from.
type steered struct {
	nic.Port          // the receive queue
	tx       nic.Port // the transmit queue
	srcPorts map[uint16]uint64
}

func (s *steered) RxBurst(b *nic.Batch) int {
	n := s.Port.RxBurst(b)
	for _, f := range b.Frames[:n] {
		if len(f) >= udpOff+2 && f[12] == 0x08 && f[13] == 0x00 {
			s.srcPorts[binary.BigEndian.Uint16(f[udpOff:])]++
		}
	}
	return n
}
func (s *steered) Alloc(b *nic.Batch, n int) int { return s.tx.Alloc(b, n) }
func (s *steered) TxBurst(b *nic.Batch) int      { return s.tx.TxBurst(b) }

// reflectQueues reflects on both server queues until stop, which returns the
// source ports each server queue received from.
func reflectQueues(cross bool) (stop func() [2]map[uint16]uint64) {
	b := null.NewBouncer(srvPort.MAC(), arp.New(srvPort.MAC(), srvIP), 32)
	var views [2]*steered
	for q := range views {
		out := q
		if cross {
			out = 1 - q
		}
		views[q] = &steered{Port: srvPort.Queue(q), tx: srvPort.Queue(out), srcPorts: map[uint16]uint64{}}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rx := nic.NewBatch(32)
		for ctx.Err() == nil {
			b.Burst(views[0], rx)
			b.Burst(views[1], rx)
		}
	}()
	return func() [2]map[uint16]uint64 {
		cancel()
		wg.Wait()
		return [2]map[uint16]uint64{views[0].srcPorts, views[1].srcPorts}
	}
}

func TestMultiQueueEveryRequestAnswered(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cross bool
		cpus  []int
	}{
		{"same-queue", false, nil},
		{"replies-cross", true, []int{0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.cpus) > runtime.NumCPU() {
				tc.cpus = nil
			}
			// The two engines spin on locked threads, each holding a P: the
			// in-process reflector needs a P of its own, or it only runs when
			// the scheduler preempts an engine (every 10 ms) and the rings
			// overflow meanwhile. (jrgen has no such neighbour.)
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
			// A memif client hands the server receive buffers when it polls:
			// poll queue 1 once, as OpenPair did queue 0.
			b := nic.NewBatch(32)
			for genPort.Queue(1).RxBurst(b) > 0 {
				genPort.Queue(1).Free(b)
			}
			cfg := Config{Flow: flowTo(srvPort.MAC()), Size: 64, Schedule: Poisson, Rate: 20000,
				Duration: 1500 * time.Millisecond, Warmup: 200 * time.Millisecond, Seed: 11}
			// The reflector shares the two vCPUs with two spinning engines:
			// when the machine takes one away for long, its rings overflow
			// and replies are lost that the generator had nothing to do with.
			// A loss that recurs three times is the generator's.
			var res *Result
			var seen [2]map[uint16]uint64
			for attempt := 1; ; attempt++ {
				stop := reflectQueues(tc.cross)
				var err error
				res, err = RunMulti([]nic.Port{genPort.Queue(0), genPort.Queue(1)}, tc.cpus,
					arp.New(genPort.MAC(), genIP), cfg)
				seen = stop()
				if err != nil {
					t.Fatal(err)
				}
				if res.Lost == 0 || attempt == 3 {
					break
				}
				t.Logf("attempt %d lost %d of %d: again", attempt, res.Lost, res.Sent)
			}
			checkMerged(t, res, 2)
			if res.Sent < 25000 || res.Lost != 0 || res.Duplicates != 0 || res.WarmupReceived != res.WarmupSent {
				t.Fatalf("sent %d lost %d duplicates %d, warm-up sent %d received %d",
					res.Sent, res.Lost, res.Duplicates, res.WarmupSent, res.WarmupReceived)
			}
			all := res.Received + res.WarmupReceived
			for i, e := range res.Engines {
				// Each engine sent about half, from its own queue and port.
				if e.Sent < res.Sent/3 {
					t.Errorf("engine %d sent %d of %d", i, e.Sent, res.Sent)
				}
				if want := cfg.Flow.SrcPort + uint16(i); len(seen[i]) != 1 || seen[i][want] == 0 {
					t.Errorf("server queue %d received from source ports %v, want only engine %d's %d", i, seen[i], i, want)
				}
				if tc.cpus != nil && e.CPU != tc.cpus[i] {
					t.Errorf("engine %d on cpu %d, want %d", i, e.CPU, tc.cpus[i])
				}
			}
			// The two queues' stats add up to the port's share of the run.
			if res.Port.TxPackets < res.Sent+res.WarmupSent || res.Port.RxPackets < all {
				t.Errorf("the queues' stats add up to %d TX / %d RX packets for %d requests and %d replies",
					res.Port.TxPackets, res.Port.RxPackets, res.Sent+res.WarmupSent, all)
			}
			if tc.cross && res.CrossQueue != all {
				t.Errorf("every reply crossed queues, CrossQueue says %d of %d", res.CrossQueue, all)
			}
			if !tc.cross && res.CrossQueue != 0 {
				t.Errorf("no reply crossed queues, CrossQueue says %d", res.CrossQueue)
			}
		})
	}
}

// checkMerged checks that a multi-queue result is the sum of its engines and
// that its histograms hold every measured reply.
func checkMerged(t *testing.T, res *Result, queues int) {
	t.Helper()
	if res.Queues != queues || len(res.Engines) != queues {
		t.Fatalf("result of %d queues with %d engines, want %d", res.Queues, len(res.Engines), queues)
	}
	var sched, sent, recv, late, notSent uint64
	for _, e := range res.Engines {
		sched += e.Scheduled
		sent += e.Sent
		recv += e.Received
		late += e.Late
		notSent += e.NotSent
	}
	if sched != res.Scheduled || sent != res.Sent || recv != res.Received || late != res.Late || notSent != res.NotSent {
		t.Fatalf("engines add up to scheduled %d sent %d received %d late %d not sent %d; merged %d %d %d %d %d",
			sched, sent, recv, late, notSent, res.Scheduled, res.Sent, res.Received, res.Late, res.NotSent)
	}
	if res.Sent != res.Scheduled || res.Received != res.Sent || res.Lost != 0 {
		t.Fatalf("scheduled %d, sent %d, received %d, lost %d", res.Scheduled, res.Sent, res.Received, res.Lost)
	}
	var recorded int64
	for _, h := range res.Intervals {
		recorded += h.TotalCount()
	}
	if uint64(recorded) != res.Received {
		t.Fatalf("merged histograms hold %d latencies, %d replies were received", recorded, res.Received)
	}
}

// TestJrgenMultiQueueAgainstKernel runs jrgen -queues 2 (two af_xdp vdevs, one
// per queue of a two-queue veth, engines pinned to cpus 0 and 1) against a
// kernel UDP echo in the server namespace. XPS on the server's veth sends
// every reply from cpu 0, where the echo runs, out of TX queue 1, so every
// reply arrives on the client's RX queue 1: engine 1 receives them all, and
// engine 0's cross.
func TestJrgenMultiQueueAgainstKernel(t *testing.T) {
	jrgen := jrgenBin(t)
	if runtime.NumCPU() < 2 {
		t.Skip("needs 2 cpus")
	}
	var rnd [3]byte
	rand.Read(rnd[:])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tb, err := local.Up(ctx, local.Options{ID: "lgmq" + hex.EncodeToString(rnd[:]), Queues: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tb.Down(); err != nil {
			t.Error(err)
		}
	})

	var conn net.PacketConn
	if err := local.InNetns(tb.Server.Netns, func() (err error) {
		conn, err = net.ListenPacket("udp4", tb.Server.Addr.Addr().String()+":9000")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go func() {
		// Pinned to cpu 0 for XPS; the thread is retired with the goroutine.
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(0)
		unix.SchedSetaffinity(0, &set)
		buf := make([]byte, 2048)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			conn.WriteTo(buf[:n], from)
		}
	}()
	xps := fmt.Sprintf("echo 1 > /sys/class/net/%[1]s/queues/tx-1/xps_cpus && echo 2 > /sys/class/net/%[1]s/queues/tx-0/xps_cpus", tb.Server.Iface)
	out, err := tb.Command(ctx, tb.Server, "sh", "-c", xps).CombinedOutput()
	steered := err == nil
	if !steered {
		t.Logf("no XPS on the veth (%v: %s): replies go out by flow hash; crossing not asserted", err, out)
	}

	hlog := filepath.Join(t.TempDir(), "multi.hlog")
	cmd := tb.CommandWithBPFFS(ctx, tb.Client, jrgen, "-driver", "af_xdp", "-iface", tb.Client.Iface,
		"-cpu", "1", "-file-prefix", "jrgen-"+tb.ID, "-src", tb.Client.Addr.Addr().String(),
		"-dst", tb.Server.Addr.Addr().String(), "-port", "9000", "-rate", "10000", "-duration", "1s",
		"-warmup", "200ms", "-queues", "2", "-cpus", "0,1", "-hlog", hlog)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("jrgen: %v\n%s", err, stderr.String())
	}
	var res Result
	if err := json.Unmarshal(stdout, &res); err != nil {
		t.Fatalf("jrgen output: %v\n%s", err, stdout)
	}
	hs, err := analysis.ReadHlogIntervals(hlog)
	if err != nil {
		t.Fatal(err)
	}
	res.Intervals = hs
	checkMerged(t, &res, 2)
	if res.Scheduled < 9000 || res.Duplicates != 0 {
		t.Fatalf("scheduled %d duplicates %d", res.Scheduled, res.Duplicates)
	}
	for i, e := range res.Engines {
		if e.Sent < res.Sent/3 || e.CPU != i || e.SrcPort != 40000+uint16(i) {
			t.Errorf("engine %d: %+v", i, e)
		}
	}
	if res.Port.TxPackets < res.Sent+res.WarmupSent {
		t.Errorf("the ports sent %d frames for %d requests", res.Port.TxPackets, res.Sent+res.WarmupSent)
	}
	t.Logf("engines %+v, cross-queue replies %d, p50 %v", res.Engines, res.CrossQueue,
		time.Duration(hs[0].ValueAtQuantile(50)))
	if steered {
		e0, e1 := res.Engines[0], res.Engines[1]
		if e0.Received != 0 || e1.Received != res.Received || res.CrossQueue < e0.Sent || e1.Crossed != res.CrossQueue {
			t.Errorf("with every reply on queue 1: engine 0 received %d, engine 1 %d (crossed %d) of %d; cross-queue %d, engine 0 sent %d",
				e0.Received, e1.Received, e1.Crossed, res.Received, res.CrossQueue, e0.Sent)
		}
	}
}

// jrgenBin is the jrgen binary (make test builds it and sets JRBENCH_BIN).
func jrgenBin(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("JRBENCH_BIN")
	if dir == "" {
		dir, _ = filepath.Abs("../bin")
	}
	p := filepath.Join(dir, "jrgen")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("jrgen missing in %s: run make build (or make test) first", dir)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("ip (iproute2) missing: make deps installs it")
	}
	return p
}
