// Package emu is an emulated wire: a forwarder between two nic.Ports that does
// to the frames crossing it what a real path would — delay and jitter, random
// and bursty loss, a rate limit with a finite queue, reordering, an MTU — so a
// stack can be measured over a WAN-like link on one machine (this kernel has
// no tc netem).
//
// Each direction has its own Link. A frame received on one port goes through
// the Link's stages in wire order:
//
//	MTU check → loss (random, Gilbert–Elliott) → rate limiter + tail-drop queue → delay (+ jitter, or skipped: reorder)
//
// and so gets a departure time; the emulator copies it into its own buffer,
// frees the receive buffer at once, and keeps the copy in a heap ordered by
// departure. The rate limiter is a virtual transmitter: a frame starts
// serialising when the previous one finished (or when it arrives, if the wire is
// idle) and the queue is the frames that have not finished yet, so the
// departures are exactly at the configured bit rate whatever the bursts. A
// frame whose departure has come is copied into a buffer from the other port's
// Alloc and sent.
//
// One goroutine, locked to its thread, busy-polls both ports and reads the time
// from the TSC, so departures are late by the loop's period (tens of
// nanoseconds idle, a burst's work under load) plus the port's own latency;
// Stats reports how late, and the emulator's own cost per frame. All random
// decisions come from a seeded generator per direction: the same seed and the
// same arrivals give the same drops.
package emu

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"

	"github.com/joyride-bench/joyride/internal/tsc"
	"github.com/joyride-bench/joyride/nic"
)

// MaxFrame is the largest frame the emulator holds (DPDK's default mbuf data
// room): larger frames are dropped and counted as MTU drops.
const MaxFrame = 2048

// Config configures an Emulator.
type Config struct {
	// AB is the link from port A to port B, BA the way back.
	AB, BA Link
	// Seed seeds the random decisions (direction AB with stream 1, BA 2).
	Seed uint64
	// Burst is the most frames received or sent per call; default 32.
	Burst int
	// Slots is the most frames held per direction (delayed or queued);
	// default 16384 (32 MiB per direction). A frame arriving when all are
	// taken is dropped and counted as NoSlot.
	Slots int
}

// DirStats are one direction's counters.
type DirStats struct {
	Link      string `json:"link"`
	Received  uint64 `json:"received"`
	Forwarded uint64 `json:"forwarded"`
	Bytes     uint64 `json:"bytes"`     // bytes forwarded
	Reordered uint64 `json:"reordered"` // frames that skipped the delay
	// Drops by cause.
	DropLoss   uint64 `json:"drop_loss"`    // random loss
	DropBurst  uint64 `json:"drop_burst"`   // Gilbert–Elliott bad state
	DropQueue  uint64 `json:"drop_queue"`   // rate-limit queue full
	DropMTU    uint64 `json:"drop_mtu"`     // larger than the MTU (or MaxFrame)
	DropNoSlot uint64 `json:"drop_no_slot"` // all Slots held
	DropTx     uint64 `json:"drop_tx"`      // the TX port had no buffer or no room
	// Held is the frames still held (at the end of Run: never sent).
	Held    int `json:"held"`
	MaxHeld int `json:"max_held"`
	// LateMeanNs and LateMaxNs are how far after their departure time
	// frames were handed to the TX port.
	LateMeanNs float64 `json:"late_mean_ns"`
	LateMaxNs  float64 `json:"late_max_ns"`

	lateSum, lateMax uint64 // ticks
}

// Stats are the emulator's counters.
type Stats struct {
	AB DirStats `json:"ab"`
	BA DirStats `json:"ba"`
	// Seconds is how long Run has run.
	Seconds float64 `json:"seconds"`
	// Loops is the polling iterations, BusyLoops those that moved a frame.
	Loops     uint64 `json:"loops"`
	BusyLoops uint64 `json:"busy_loops"`
	// BusyNs is the time spent in busy iterations (port calls included), and
	// NsPerFrame that time per frame received: the emulator's own cost.
	BusyNs     float64 `json:"busy_ns"`
	NsPerFrame float64 `json:"ns_per_frame"`
	// LoopNs is the mean iteration time: the resolution of departures.
	LoopNs float64 `json:"loop_ns"`
}

// Emulator forwards frames between two ports, each direction through its Link.
type Emulator struct {
	dirs  [2]*direction
	burst int
	hz    float64

	mu    sync.Mutex
	stats Stats // published snapshot, under mu

	loops, busyLoops uint64
	busyTicks        uint64
	start            uint64
	running          bool
}

// New builds an emulator between a and b. It does not start it: call Run.
func New(a, b nic.Port, cfg Config) (*Emulator, error) {
	if cfg.Burst == 0 {
		cfg.Burst = 32
	}
	if cfg.Burst < 1 || cfg.Burst > nic.MaxBurst {
		return nil, fmt.Errorf("emu: burst %d outside 1..%d", cfg.Burst, nic.MaxBurst)
	}
	if cfg.Slots == 0 {
		cfg.Slots = 16384
	}
	if cfg.Slots < cfg.Burst || cfg.Slots > 1<<20 {
		return nil, fmt.Errorf("emu: slots %d outside %d..%d", cfg.Slots, cfg.Burst, 1<<20)
	}
	for _, l := range []struct {
		name string
		l    Link
	}{{"A→B", cfg.AB}, {"B→A", cfg.BA}} {
		if err := l.l.Validate(); err != nil {
			return nil, fmt.Errorf("emu: link %s: %w", l.name, err)
		}
	}
	e := &Emulator{burst: cfg.Burst, hz: tsc.Hz()}
	e.dirs[0] = newDirection(a, b, cfg.AB, cfg, 1, e.hz)
	e.dirs[1] = newDirection(b, a, cfg.BA, cfg, 2, e.hz)
	e.publish()
	return e, nil
}

// Run forwards until ctx is done, busy-polling on the calling goroutine's
// thread (locked for the duration). Frames still held when it returns are
// not sent; Stats counts them as Held. Run can be called again to resume.
func (e *Emulator) Run(ctx context.Context) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	e.mu.Lock()
	if e.running {
		e.mu.Unlock()
		return errors.New("emu: Run called twice concurrently")
	}
	e.running = true
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.running = false
		e.mu.Unlock()
	}()
	if e.start == 0 {
		e.start = tsc.Read()
	}
	done := ctx.Done()
	ab, ba := e.dirs[0], e.dirs[1]
	for {
		for range 1024 {
			t0 := tsc.Read()
			n := ab.receive() + ba.receive()
			now := tsc.Read()
			n += ab.transmit(now) + ba.transmit(now)
			e.loops++
			if n > 0 {
				e.busyLoops++
				e.busyTicks += tsc.Read() - t0
			}
		}
		e.publish()
		select {
		case <-done:
			return nil
		default:
		}
	}
}

// Stats returns the counters as of the last publication (every ~1024 loops,
// and when Run returns). Safe from any goroutine.
func (e *Emulator) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

func (e *Emulator) publish() {
	var s Stats
	for i, d := range e.dirs {
		ds := d.st
		ds.Link = d.linkText
		ds.Held = d.heap.len()
		if ds.Forwarded > 0 {
			ds.LateMeanNs = float64(ds.lateSum) / float64(ds.Forwarded) * 1e9 / e.hz
		}
		ds.LateMaxNs = float64(ds.lateMax) * 1e9 / e.hz
		if i == 0 {
			s.AB = ds
		} else {
			s.BA = ds
		}
	}
	s.Loops, s.BusyLoops = e.loops, e.busyLoops
	s.BusyNs = float64(e.busyTicks) * 1e9 / e.hz
	if rx := s.AB.Received + s.BA.Received; rx > 0 {
		s.NsPerFrame = s.BusyNs / float64(rx)
	}
	if e.start != 0 {
		s.Seconds = float64(tsc.Read()-e.start) / e.hz
		if e.loops > 0 {
			s.LoopNs = s.Seconds * 1e9 / float64(e.loops)
		}
	}
	e.mu.Lock()
	e.stats = s
	e.mu.Unlock()
}

// direction is one way through the emulator: rx → link → tx.
type direction struct {
	rx, tx   nic.Port
	link     Link
	linkText string // link.String(), made once: publishing allocates nothing
	rng      *rand.Rand
	rb, tb   *nic.Batch
	burst    int

	// Precomputed link in ticks.
	delay, jitter float64
	ticksPerByte  float64 // 0: no rate limit
	dist          int

	geBad bool // Gilbert–Elliott state

	// The rate limiter's virtual transmitter: when it is free next, and the
	// frames not yet serialised (FIFO of their finish times and sizes).
	wireFree float64
	rq       []rateEntry
	rqHead   int
	rqLen    int
	rqBytes  int

	slab []byte  // Slots × MaxFrame
	free []int32 // free slot indices (stack)
	heap depHeap
	seq  uint64
	due  []entry

	st DirStats

	onDelay func(ticks float64) // tests: sees every delay drawn
}

type rateEntry struct {
	finish float64
	bytes  int
}

const (
	distUniform = iota
	distNormal
	distPareto
)

func newDirection(rx, tx nic.Port, l Link, cfg Config, stream uint64, hz float64) *direction {
	d := &direction{
		rx: rx, tx: tx, link: l, linkText: l.String(),
		rng:   rand.New(rand.NewPCG(cfg.Seed, stream)),
		rb:    nic.NewBatch(cfg.Burst),
		tb:    nic.NewBatch(cfg.Burst),
		burst: cfg.Burst,
		slab:  make([]byte, cfg.Slots*MaxFrame),
		free:  make([]int32, cfg.Slots),
		heap:  depHeap{e: make([]entry, 0, cfg.Slots)},
		due:   make([]entry, cfg.Burst),
		rq:    make([]rateEntry, cfg.Slots),
	}
	for i := range d.free {
		d.free[i] = int32(cfg.Slots - 1 - i)
	}
	tick := hz / 1e9 // ticks per ns
	d.delay = float64(l.Delay.Nanoseconds()) * tick
	d.jitter = float64(l.Jitter.Nanoseconds()) * tick
	switch l.Dist {
	case DistNormal:
		d.dist = distNormal
	case DistPareto:
		d.dist = distPareto
	}
	if l.Rate > 0 {
		d.ticksPerByte = 8 / l.Rate * hz
	}
	return d
}

// delayTicks draws this frame's delay.
func (d *direction) delayTicks() float64 {
	if d.jitter == 0 {
		return d.delay
	}
	var v float64
	switch d.dist {
	case distNormal:
		v = d.delay + d.jitter*d.rng.NormFloat64()
	case distPareto:
		// Pareto with shape 3 and scale 2·jitter, shifted to start at 0:
		// mean jitter, a heavy right tail.
		const alpha = 3
		v = d.delay + 2*d.jitter*(math.Pow(1-d.rng.Float64(), -1.0/alpha)-1)
	default:
		v = d.delay + d.jitter*(2*d.rng.Float64()-1)
	}
	return max(v, 0)
}

// receive takes one burst from rx and schedules or drops each frame.
func (d *direction) receive() int {
	n := d.rx.RxBurst(d.rb)
	if n == 0 {
		return 0
	}
	// The arrival time is read after the burst: read before, a stall between
	// the two would date the frames before they were sent.
	now := tsc.Read()
	l := &d.link
	fnow := float64(now)
	for i := 0; i < n; i++ {
		f := d.rb.Frames[i]
		d.st.Received++
		if len(f) > MaxFrame || (l.MTU > 0 && len(f)-14 > l.MTU) {
			d.st.DropMTU++
			continue
		}
		if l.BurstP > 0 {
			bad := d.geBad
			if bad {
				d.geBad = d.rng.Float64() >= l.BurstR
			} else {
				d.geBad = d.rng.Float64() < l.BurstP
			}
			if bad {
				d.st.DropBurst++
				continue
			}
		}
		if l.Loss > 0 && d.rng.Float64() < l.Loss {
			d.st.DropLoss++
			continue
		}
		if len(d.free) == 0 {
			d.st.DropNoSlot++
			continue
		}
		dep := fnow
		if d.ticksPerByte > 0 {
			// Frames whose serialisation has finished have left the queue.
			for d.rqLen > 0 && d.rq[d.rqHead].finish <= fnow {
				d.rqBytes -= d.rq[d.rqHead].bytes
				d.rqHead++
				if d.rqHead == len(d.rq) {
					d.rqHead = 0
				}
				d.rqLen--
			}
			size := len(f) + l.Overhead
			if (l.QueueBytes > 0 && d.rqBytes+size > l.QueueBytes) ||
				(l.QueuePackets > 0 && d.rqLen >= l.QueuePackets) || d.rqLen == len(d.rq) {
				d.st.DropQueue++
				continue
			}
			start := max(fnow, d.wireFree)
			d.wireFree = start + float64(size)*d.ticksPerByte
			dep = d.wireFree
			tail := d.rqHead + d.rqLen
			if tail >= len(d.rq) {
				tail -= len(d.rq)
			}
			d.rq[tail] = rateEntry{finish: dep, bytes: size}
			d.rqLen++
			d.rqBytes += size
		}
		if l.Reorder > 0 && d.rng.Float64() < l.Reorder {
			d.st.Reordered++
		} else {
			dl := d.delayTicks()
			if d.onDelay != nil {
				d.onDelay(dl)
			}
			dep += dl
		}
		slot := d.free[len(d.free)-1]
		d.free = d.free[:len(d.free)-1]
		copy(d.slab[int(slot)*MaxFrame:], f)
		d.seq++
		d.heap.push(entry{dep: uint64(dep), seq: d.seq, slot: slot, len: int32(len(f))})
	}
	if h := d.heap.len(); h > d.st.MaxHeld {
		d.st.MaxHeld = h
	}
	d.rx.Free(d.rb)
	return n
}

// transmit sends the frames whose departure time has come, one burst at most.
func (d *direction) transmit(now uint64) int {
	k := 0
	for k < d.burst && d.heap.len() > 0 && d.heap.e[0].dep <= now {
		d.due[k] = d.heap.pop()
		k++
	}
	if k == 0 {
		return 0
	}
	got := d.tx.Alloc(d.tb, k)
	for i := got; i < k; i++ {
		// No buffer now: keep them for the next round, in order.
		d.heap.push(d.due[i])
	}
	j := 0 // frames that fit go to the front of the batch
	for i := 0; i < got; i++ {
		e := d.due[i]
		d.free = append(d.free, e.slot)
		buf := d.tb.Frames[i]
		if cap(buf) < int(e.len) {
			continue // the TX port's buffers are smaller than the frame
		}
		buf = buf[:e.len]
		copy(buf, d.slab[int(e.slot)*MaxFrame:int(e.slot)*MaxFrame+int(e.len)])
		d.tb.Frames[i], d.tb.Frames[j] = d.tb.Frames[j], buf
		d.tb.Handles[i], d.tb.Handles[j] = d.tb.Handles[j], d.tb.Handles[i]
		j++
		late := now - e.dep
		d.st.lateSum += late
		d.st.lateMax = max(d.st.lateMax, late)
		d.st.Bytes += uint64(e.len)
	}
	d.tb.N = j
	sent := d.tx.TxBurst(d.tb)
	if rest := got - j; rest > 0 {
		copy(d.tb.Frames, d.tb.Frames[j:got])
		copy(d.tb.Handles, d.tb.Handles[j:got])
		d.tb.N = rest
		d.tx.Free(d.tb)
		d.st.DropTx += uint64(rest)
	}
	d.st.Forwarded += uint64(sent)
	d.st.DropTx += uint64(j - sent)
	return k
}

// entry is a held frame.
type entry struct {
	dep  uint64 // departure, TSC ticks
	seq  uint64 // arrival order: equal departures leave in it
	slot int32
	len  int32
}

func (a entry) before(b entry) bool { return a.dep < b.dep || a.dep == b.dep && a.seq < b.seq }

// depHeap is a binary min-heap of entries by (dep, seq), written out so the hot
// path has no interface calls.
type depHeap struct{ e []entry }

func (h *depHeap) len() int { return len(h.e) }

func (h *depHeap) push(x entry) {
	h.e = append(h.e, x)
	i := len(h.e) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h.e[i].before(h.e[p]) {
			break
		}
		h.e[i], h.e[p] = h.e[p], h.e[i]
		i = p
	}
}

func (h *depHeap) pop() entry {
	top := h.e[0]
	last := len(h.e) - 1
	h.e[0] = h.e[last]
	h.e = h.e[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= last {
			break
		}
		m := l
		if r := l + 1; r < last && h.e[r].before(h.e[l]) {
			m = r
		}
		if !h.e[m].before(h.e[i]) {
			break
		}
		h.e[i], h.e[m] = h.e[m], h.e[i]
		i = m
	}
	return top
}
