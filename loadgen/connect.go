package loadgen

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime"
	"time"

	"github.com/joyride-bench/joyride/analysis"
	"github.com/joyride-bench/joyride/internal/tsc"
	"github.com/joyride-bench/joyride/nic"
	"github.com/joyride-bench/joyride/nic/netstack"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// ConnectTimeout is how long a connection attempt may take before it counts
// as lost.
const ConnectTimeout = time.Second

// RunConnect is the connection-setup workload: it opens TCP connections to the
// server on an open-loop schedule (cfg.Rate connections/s) from a client
// gVisor stack on port, and records each one's setup time — from its scheduled
// time to ESTABLISHED (the handshake, plus any queueing in the server's stack)
// — in the interval histograms, as Run records request latencies. Once
// established, each connection writes one request of cfg.Size bytes (the
// generator's header) and waits for the first byte of the echo: the time from
// the scheduled time to that byte (what an application that connects per
// request waits for, the accept and the server's first read included) goes to
// Result.FirstByte, its own histograms. The connection is then aborted (RST),
// so thousands of them leave no TIME_WAIT state to exhaust the client's
// ports. A connection refused, reset or not established within ConnectTimeout
// is lost; one established but not answered within ConnectTimeout counts in
// FirstByteLost. This is the figure Machnet reports for its connection setup.
func RunConnect(port nic.Port, cfg Config) (*Result, error) {
	if cfg.Duration <= 0 || cfg.Duration > 10*time.Minute || cfg.Warmup < 0 || cfg.Warmup > time.Minute {
		return nil, fmt.Errorf("loadgen: duration %v / warm-up %v out of range", cfg.Duration, cfg.Warmup)
	}
	if err := CheckInterval(cfg.Interval); err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	if cfg.LateThreshold <= 0 {
		cfg.LateThreshold = 50 * time.Microsecond
	}
	offsets, err := DrawSchedule(cfg.Schedule, cfg.Rate, cfg.Warmup+cfg.Duration, cfg.Seed)
	if err != nil {
		return nil, err
	}
	iv, nIntervals := cfg.Intervals()
	hz := tsc.Hz()
	nsPerTick := 1e9 / hz
	res := &Result{Schedule: cfg.Schedule, OfferedRPS: cfg.Rate, DurationS: cfg.Duration.Seconds(),
		WarmupS: cfg.Warmup.Seconds(), TSCHz: hz, Protocol: "tcp-connect"}
	res.Intervals, res.FirstByte = newIntervals(nIntervals), newIntervals(nIntervals)
	size := max(cfg.Size, HeaderLen)
	req := make([]byte, size)
	binary.BigEndian.PutUint16(req, Magic)
	var reader bytes.Reader

	// The client stack, on a prefix that holds the server (as RunTCP).
	bits := 32
	for bits > 0 && !netip.PrefixFrom(cfg.Flow.SrcIP, bits).Masked().Contains(cfg.Flow.DstIP) {
		bits--
	}
	link := netstack.New(port, netstack.Options{})
	s, err := netstack.NewStack(link, netip.PrefixFrom(cfg.Flow.SrcIP, bits), netip.Addr{})
	if err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	defer func() { link.SetSpinning(false); s.Close(); s.Wait() }()
	addr := tcpip.FullAddress{NIC: netstack.NICID, Addr: tcpip.AddrFrom4(cfg.Flow.DstIP.As4()), Port: cfg.Flow.DstPort}

	type attempt struct {
		id          int
		ep          tcpip.Endpoint
		wq          *waiter.Queue
		established bool // setup recorded, request written, waiting for its first byte
	}
	var pending []attempt
	timeoutTicks := tsc.FromDuration(ConnectTimeout)
	lateTicks := tsc.FromDuration(cfg.LateThreshold)
	// The late spells tell a VM's stall (short spells) from a generator
	// that cannot keep up (one long one), as for the echo engines.
	spells := lateSpells{threshold: lateTicks}
	res.Start = time.Now()
	start := tsc.Read() + tsc.FromDuration(time.Millisecond)
	sched := make([]uint64, len(offsets))
	for i, off := range offsets {
		sched[i] = start + uint64(float64(off.Nanoseconds())/nsPerTick)
	}
	measured := func(id int) int { // interval index+1, 0 for warm-up
		return int(intervalOf(offsets[id], cfg.Warmup, iv, nIntervals))
	}
	for _, off := range offsets {
		if off >= cfg.Warmup {
			res.Scheduled++
		}
	}
	link.SetSpinning(true)
	sendTimes := make([]uint64, 0, ArrivalSamples+1) // the first measured connection attempts
	next := 0
	hardStop := start + tsc.FromDuration(cfg.Warmup+cfg.Duration+ConnectTimeout+5*time.Second)
	var maxLag uint64
	for next < len(offsets) || len(pending) > 0 {
		now := tsc.Read()
		if now > hardStop {
			break
		}
		for next < len(offsets) && sched[next] <= now {
			wq := new(waiter.Queue)
			ep, terr := s.NewEndpoint(tcp.ProtocolNumber, ipv4.ProtocolNumber, wq)
			k := measured(next)
			if terr != nil {
				if k != 0 {
					res.NotSent++
				}
				next++
				continue
			}
			ep.Connect(addr) // ErrConnectStarted: the handshake runs in the stack
			if lag := now - sched[next]; lag > maxLag {
				maxLag = lag
			}
			if k != 0 {
				res.Sent++
				if now-sched[next] > lateTicks {
					res.Late++
				}
				spells.observe(sched[next], now-sched[next])
				if len(sendTimes) <= ArrivalSamples {
					sendTimes = append(sendTimes, now)
				}
			} else {
				res.WarmupSent++
			}
			pending = append(pending, attempt{id: next, ep: ep, wq: wq})
			next++
		}
		link.Poll()
		runtime.Gosched() // gVisor's TCP processors run the handshakes
		now = tsc.Read()
		kept := pending[:0]
		for _, a := range pending {
			k := measured(a.id)
			if a.established {
				// Waiting for the echo's first byte.
				switch {
				case a.ep.Readiness(waiter.ReadableEvents)&waiter.ReadableEvents != 0:
					if k != 0 {
						res.FirstByte[k-1].RecordValue(int64(float64(now-sched[a.id]) * nsPerTick))
					}
					a.ep.Abort()
				case now-sched[a.id] > timeoutTicks || tcp.EndpointState(a.ep.State()) != tcp.StateEstablished:
					if k != 0 {
						res.FirstByteLost++
					}
					a.ep.Abort()
				default:
					kept = append(kept, a)
				}
				continue
			}
			st := tcp.EndpointState(a.ep.State())
			switch {
			case st == tcp.StateEstablished:
				if k != 0 {
					res.Received++
					res.Intervals[k-1].RecordValue(int64(float64(now-sched[a.id]) * nsPerTick))
				} else {
					res.WarmupReceived++
				}
				binary.BigEndian.PutUint64(req[2:], uint64(a.id))
				reader.Reset(req)
				if n, err := a.ep.Write(&reader, tcpip.WriteOptions{}); err != nil || int(n) != len(req) {
					if k != 0 {
						res.FirstByteLost++
					}
					a.ep.Abort()
					continue
				}
				a.established = true
				kept = append(kept, a)
			case st == tcp.StateError || st == tcp.StateClose || now-sched[a.id] > timeoutTicks:
				if k != 0 {
					res.ConnFailures++
				}
				a.ep.Abort()
			default:
				kept = append(kept, a)
			}
		}
		pending = kept
	}
	for _, a := range pending {
		a.ep.Abort()
	}
	spells.finish(res, nsPerTick)
	finish(res, &cfg, float64(maxLag)*nsPerTick/1e3)
	checkArrivals(res, &cfg, sendTimes, nsPerTick)
	all := analysis.NewHistogram()
	for k, h := range res.FirstByte {
		h.SetStartTimeMs(res.Intervals[k].StartTimeMs())
		h.SetEndTimeMs(res.Intervals[k].EndTimeMs())
		all.Merge(h)
	}
	if res.FirstByteCount = all.TotalCount(); res.FirstByteCount > 0 {
		res.FirstByteP50Us = float64(all.ValueAtQuantile(50)) / 1e3
		res.FirstByteP99Us = float64(all.ValueAtQuantile(99)) / 1e3
	}
	if st, err := port.Stats(); err == nil {
		res.Port = st
	}
	return res, nil
}
