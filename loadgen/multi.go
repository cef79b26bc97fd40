package loadgen

// The multi-core generator: one engine per queue, each on its own OS thread
// pinned to its own core, so that on a machine with more cores the generator
// is never the bottleneck.
//
// Each engine is the single-queue engine (engine.loop) with a share of the
// load: rate/N, a seed of its own (engineSeed), a UDP source port of its own
// (Flow.SrcPort+i, so that a NIC or a server that hashes flows spreads the
// engines' traffic over its queues), its own schedule, counters and latency
// histograms. At the end the histograms are added interval by interval and the
// counters summed (merge).
//
// Replies may arrive on a queue other than the one that sent the request: the
// server picks its transmit queue by its own hash (Linux: skb_tx_hash over the
// flow, or XPS), a veth delivers what its peer sent on TX queue i to RX queue
// i, and af_packet's fanout spreads frames by its own hash. Steering replies
// back (flow rules, or one RX queue for everything) needs features the LCD
// model does not assume, so every engine accepts replies to any engine's
// request instead:
//
//   - the request id carries its engine in its high bits (id = engine<<40 |
//     index; engine 0's ids are the plain indexes, so one engine's frames are
//     the same as before);
//   - what the receiving engine reads of the sender (its schedule and its
//     interval map) is written before any engine starts and never after, so
//     reading it from another thread is race-free;
//   - the "already answered" bit of each request is an atomic word, set with
//     an atomic OR by whichever engine sees the first reply, so a duplicate is
//     counted once however the two copies are spread;
//   - the receiving engine records the latency (receive time minus the
//     sender's scheduled time) in its own histograms and counts the reply in
//     its own Received: merging adds everything anyway, so which engine
//     recorded a latency does not matter, and no histogram is shared;
//   - when to stop is global: an engine keeps polling its queue until every
//     engine has sent its whole schedule and every request is answered (or
//     none was sent for the drain time), since replies to the others' requests
//     may still arrive on its queue. Requests sent and not yet answered are
//     one atomic counter, updated once per burst.
//
// The cost for one engine is an atomic OR per reply and an atomic add per
// burst (BenchmarkRoundTripPath measures it).

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/joyride-bench/joyride/internal/tsc"
	"github.com/joyride-bench/joyride/nic"
	"github.com/joyride-bench/joyride/nic/arp"
	"golang.org/x/sys/unix"
)

// MaxQueues bounds the engines of one run.
const MaxQueues = 64

// maxCPU bounds a cpu number: the cpus a unix.CPUSet holds (glibc's
// CPU_SETSIZE).
const maxCPU = 1024

// engineShift places the engine index in a request id, above any request index
// (MaxRequests < 1<<40).
const engineShift = 40

// EngineResult is one engine's share of a multi-queue point.
type EngineResult struct {
	Queue   int    `json:"queue"`
	CPU     int    `json:"cpu"` // -1: not pinned
	SrcPort uint16 `json:"src_port"`
	// Of this engine's own requests (measured span).
	Scheduled uint64  `json:"scheduled"`
	Sent      uint64  `json:"sent"`
	NotSent   uint64  `json:"not_sent"`
	Late      uint64  `json:"late"`
	MaxLagUs  float64 `json:"max_send_lag_us"`
	// Of the replies this engine's queue received, to anyone's requests:
	// Received those of measured requests, Crossed those (warm-up included)
	// to another engine's requests.
	Received uint64 `json:"received"`
	Crossed  uint64 `json:"crossed"`
}

// RunMulti offers one point of load from several queues at once: one engine per
// queue (queues[i] is engine i's), each on a goroutine locked to an OS thread
// of its own pinned to cpus[i] (or not pinned when cpus is nil). cfg is the
// whole point: each engine offers cfg.Rate/len(queues) from source port
// cfg.Flow.SrcPort+i. resp answers ARP on every queue (it is used under a
// lock: the slow path only). It blocks for Warmup+Duration+Drain and returns
// the merged result, with each engine's share in Result.Engines.
//
// The queues are usually the queues of one port (dpdk.Port.Queue) or ports of
// one interface (dpdk.VdevQueues): nic.Port's one-goroutine-per-queue rule is
// what makes one engine per queue safe.
func RunMulti(queues []nic.Port, cpus []int, resp *arp.Responder, cfg Config) (*Result, error) {
	if cpus != nil && len(cpus) != len(queues) {
		return nil, fmt.Errorf("loadgen: %d cpus for %d queues: give one cpu per queue, or none to leave the engines unpinned", len(cpus), len(queues))
	}
	for i, c := range cpus {
		if c < 0 || c >= maxCPU {
			return nil, fmt.Errorf("loadgen: cpu %d of engine %d outside 0..%d", c, i, maxCPU-1)
		}
	}
	res, engines, err := run(queues, cpus, resp, cfg)
	if err != nil {
		return nil, err
	}
	res.Queues = len(queues)
	res.Engines = engines
	return res, nil
}

// group is what the engines of one run share.
type group struct {
	engines []*engine
	// resp is not safe for concurrent use; only the slow path (frames that are
	// not replies) takes it, under arpMu.
	resp  *arp.Responder
	arpMu sync.Mutex

	// Fixed before the engines start.
	start, hardStop       uint64 // TSC
	lateTicks, drainTicks uint64
	nsPerTick             float64
	burst                 int

	pending  atomic.Int64  // requests sent and not yet answered, all engines
	sending  atomic.Int32  // engines that have not sent their whole schedule
	lastSend atomic.Uint64 // latest last send of the engines that finished
}

// owner returns the engine that sent request id and the request's index in its
// schedule, or nil when id is no request of this run.
func (g *group) owner(id uint64, ok bool) (*engine, uint64) {
	i, k := id>>engineShift, id&(1<<engineShift-1)
	if !ok || i >= uint64(len(g.engines)) {
		return nil, 0
	}
	if o := g.engines[i]; k < uint64(len(o.sched)) {
		return o, k
	}
	return nil, 0
}

// slowPath answers ARP on the queue the request came in on and counts anything
// else as unmatched.
func (g *group) slowPath(port nic.Port, b *nic.Batch, f []byte, res *Result) {
	g.arpMu.Lock()
	defer g.arpMu.Unlock()
	if answer, _, _ := g.resp.Handle(f); answer != nil {
		arp.SendOne(port, b, answer) // copies answer, which resp reuses
	} else {
		res.Unmatched++
	}
}

// doneSending records that an engine sent its whole schedule, the last request
// at tick last.
func (g *group) doneSending(last uint64) {
	for old := g.lastSend.Load(); last > old && !g.lastSend.CompareAndSwap(old, last); old = g.lastSend.Load() {
	}
	g.sending.Add(-1)
}

// drained reports whether the run is over at tick now: every engine has sent
// everything, and every request is answered or the drain time has passed
// since the last one left.
func (g *group) drained(now uint64) bool {
	if g.sending.Load() != 0 {
		return false
	}
	if g.pending.Load() <= 0 {
		return true
	}
	// Another engine's last send may be stamped after this engine read now.
	last := g.lastSend.Load()
	return now > last && now-last > g.drainTicks
}

// engineSeed derives engine i's seed from the point's; engine 0 keeps it, so
// a one-engine run draws the schedule Run always drew.
func engineSeed(seed uint64, i int) uint64 {
	return seed ^ uint64(i)*0x9e3779b97f4a7c15 // 2^64/phi: spreads consecutive i
}

// engineSchedule draws engine i's share of the point's schedule: the arrival
// process at rate/n. Independent Poisson (and bursty, whose ON and OFF periods
// are in absolute time and so line up) streams add up to the process at the
// full rate; constant streams would coincide, so engine i's is shifted by i
// periods of the full rate, interleaving the engines' sends evenly.
func engineSchedule(cfg *Config, i, n int, seed uint64) ([]time.Duration, error) {
	span := cfg.Warmup + cfg.Duration
	offsets, err := DrawSchedule(cfg.Schedule, cfg.Rate/float64(n), span, seed)
	if err != nil {
		if n > 1 {
			err = fmt.Errorf("engine %d of %d (%.0f of the %.0f requests/s): %w", i, n, cfg.Rate/float64(n), cfg.Rate, err)
		}
		return nil, err
	}
	if cfg.Schedule == Constant && i > 0 {
		shift := time.Duration(float64(i) * float64(time.Second) / cfg.Rate)
		for j := range offsets {
			offsets[j] += shift
		}
		for len(offsets) > 0 && offsets[len(offsets)-1] >= span {
			offsets = offsets[:len(offsets)-1]
		}
	}
	return offsets, nil
}

// run prepares one engine per queue, starts them together and merges what they
// measured. One engine without a cpu runs on the calling goroutine (Run);
// otherwise each runs on a goroutine of its own, locked to its thread and
// pinned to its cpu when cpus is set.
func run(queues []nic.Port, cpus []int, resp *arp.Responder, cfg Config) (*Result, []EngineResult, error) {
	if err := cfg.check(); err != nil {
		return nil, nil, fmt.Errorf("loadgen: %w", err)
	}
	n := len(queues)
	if n < 1 || n > MaxQueues {
		return nil, nil, fmt.Errorf("loadgen: %d queues (allowed: 1..%d)", n, MaxQueues)
	}
	if int(cfg.Flow.SrcPort)+n-1 > 65535 {
		return nil, nil, fmt.Errorf("loadgen: source ports %d..%d of %d engines exceed 65535", cfg.Flow.SrcPort, int(cfg.Flow.SrcPort)+n-1, n)
	}
	g := &group{resp: resp, burst: cfg.Burst, nsPerTick: 1e9 / tsc.Hz(),
		lateTicks: tsc.FromDuration(cfg.LateThreshold), drainTicks: tsc.FromDuration(cfg.Drain)}
	for i, q := range queues {
		e, err := newEngine(&cfg, i, n, q)
		if err != nil {
			return nil, nil, err
		}
		g.engines = append(g.engines, e)
	}
	g.sending.Store(int32(n))

	var started time.Time
	begin := func() {
		started = time.Now()
		g.start = tsc.Read() + tsc.FromDuration(time.Millisecond)
		g.hardStop = g.start + tsc.FromDuration(cfg.Warmup+cfg.Duration+cfg.Drain+5*time.Second)
		g.lastSend.Store(g.start)
	}
	if n == 1 && cpus == nil {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		begin()
		g.engines[0].loop(g)
	} else if err := g.runPinned(cpus, begin); err != nil {
		return nil, nil, err
	}
	res, engines := g.merge(&cfg, cpus, started)
	return res, engines, nil
}

// runPinned runs every engine on a goroutine of its own, locked to its thread
// and pinned to cpus[i] (unless cpus is nil). The engines start together once
// all are pinned: begin then fixes the start, 1 ms ahead, time enough for
// their threads to wake up.
func (g *group) runPinned(cpus []int, begin func()) error {
	ready := make(chan error, len(g.engines))
	gate := make(chan struct{})
	var abort bool // written before gate closes, read after
	var wg sync.WaitGroup
	for i, e := range g.engines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			if cpus == nil {
				defer runtime.UnlockOSThread()
			} else if err := pinThread(cpus[i]); err != nil {
				// The goroutine ends locked, so the runtime retires the
				// thread (as below): its affinity may be half changed.
				ready <- fmt.Errorf("loadgen: pin engine %d to cpu %d: %w", i, cpus[i], err)
				return
			}
			// A pinned thread never goes back to the scheduler: it ends with
			// this goroutine, still locked, instead of carrying the engine's
			// affinity to other goroutines.
			ready <- nil
			<-gate
			if !abort {
				e.loop(g)
			}
		}()
	}
	var errs []error
	for range g.engines {
		if err := <-ready; err != nil {
			errs = append(errs, err)
		}
	}
	if abort = len(errs) > 0; !abort {
		begin()
	}
	close(gate)
	wg.Wait()
	return errors.Join(errs...)
}

// pinThread binds the calling OS thread to cpu.
func pinThread(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		online, _ := os.ReadFile("/sys/devices/system/cpu/online")
		return fmt.Errorf("%w (cpus online: %s)", err, strings.TrimSpace(string(online)))
	}
	return nil
}

// merge adds the engines' histograms interval by interval and sums their
// counters into one Result, and lists each engine's share.
func (g *group) merge(cfg *Config, cpus []int, start time.Time) (*Result, []EngineResult) {
	res := &Result{Schedule: cfg.Schedule, OfferedRPS: cfg.Rate, DurationS: cfg.Duration.Seconds(),
		WarmupS: cfg.Warmup.Seconds(), Size: cfg.Size, TSCHz: tsc.Hz(), ServerMAC: cfg.Flow.DstMAC.String(),
		Start: start, Intervals: g.engines[0].res.Intervals}
	var maxLag uint64
	var sendTimes []uint64
	engines := make([]EngineResult, len(g.engines))
	for i, e := range g.engines {
		r := e.res
		if i > 0 {
			for k, h := range r.Intervals {
				res.Intervals[k].Merge(h)
			}
		}
		res.Scheduled += r.Scheduled
		res.Sent += r.Sent
		res.NotSent += r.NotSent
		res.Received += r.Received
		res.Late += r.Late
		res.LateSpells += r.LateSpells
		res.LongestLateSpellUs = max(res.LongestLateSpellUs, r.LongestLateSpellUs)
		res.LateSpellsUs += r.LateSpellsUs
		res.Duplicates += r.Duplicates
		res.Unmatched += r.Unmatched
		res.WarmupSent += r.WarmupSent
		res.WarmupReceived += r.WarmupReceived
		res.CrossQueue += e.crossed
		maxLag = max(maxLag, e.maxLag)
		sendTimes = append(sendTimes, e.sendTimes...)
		if st, err := e.port.Stats(); err == nil {
			addStats(&res.Port, st)
		}
		cpu := -1
		if cpus != nil {
			cpu = cpus[i]
		}
		engines[i] = EngineResult{Queue: i, CPU: cpu, SrcPort: cfg.Flow.SrcPort + uint16(i),
			Scheduled: r.Scheduled, Sent: r.Sent, NotSent: r.NotSent, Late: r.Late,
			MaxLagUs: float64(e.maxLag) * g.nsPerTick / 1e3, Received: r.Received, Crossed: e.crossed}
	}
	finish(res, cfg, float64(maxLag)*g.nsPerTick/1e3)
	// The first measured sends of the whole generator: every engine kept its
	// first ArrivalSamples+1, so the earliest ArrivalSamples+1 of all are
	// among them.
	slices.Sort(sendTimes)
	checkArrivals(res, cfg, sendTimes, g.nsPerTick)
	return res, engines
}

// addStats adds port counters b to a (the driver's extended counters by name).
func addStats(a *nic.Stats, b nic.Stats) {
	a.RxPackets += b.RxPackets
	a.TxPackets += b.TxPackets
	a.RxBytes += b.RxBytes
	a.TxBytes += b.TxBytes
	a.RxMissed += b.RxMissed
	a.RxErrors += b.RxErrors
	a.TxErrors += b.TxErrors
	a.RxNoMbuf += b.RxNoMbuf
	if a.Extended == nil && b.Extended != nil {
		a.Extended = maps.Clone(b.Extended)
		return
	}
	for k, v := range b.Extended {
		a.Extended[k] += v
	}
}
