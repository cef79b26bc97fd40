package loadgen

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/joyride-bench/joyride/analysis"
	"github.com/joyride-bench/joyride/internal/tsc"
	"github.com/joyride-bench/joyride/nic"
	"github.com/joyride-bench/joyride/nic/arp"
)

// The interval log: a point's latencies go to one histogram per interval of
// scheduled send time, so that the validity checks (analysis.CheckPoint) see
// the point as a time series. Interval lengths are whole milliseconds, the
// resolution of an interval log's time stamps.
const (
	// DefaultInterval is the span of one histogram unless the point asks for
	// another (Config.Interval): a 2 s point has the 40 intervals the
	// stationarity check needs (analysis.ADFMinIntervals).
	DefaultInterval = 50 * time.Millisecond
	// MinInterval and MaxInterval bound Config.Interval.
	MinInterval = 10 * time.Millisecond
	MaxInterval = time.Second
	// MaxIntervals bounds the histograms of one point: each is allocated
	// before the run and holds 25,600 counters (200 KiB: 1 ns .. 10 s at 3
	// significant digits, analysis.NewHistogram), so one engine's log takes
	// at most 40 MiB (connect mode keeps two logs). A point longer than
	// MaxIntervals intervals gets longer intervals instead (Config.Intervals):
	// at the default, points up to 10 s keep 50 ms, a 60 s point gets 300 ms,
	// a 600 s point 3 s.
	MaxIntervals = 200
)

// Config is one point of open-loop UDP load.
type Config struct {
	Flow     Flow          // DstMAC must be resolved (see Resolve)
	Size     int           // UDP payload bytes, >= HeaderLen
	Schedule string        // Poisson or Constant
	Rate     float64       // offered requests/s
	Duration time.Duration // measured span
	Warmup   time.Duration // span before it whose requests are sent but not recorded
	Seed     uint64        // seeds the schedule
	// LateThreshold: a request that leaves more than this after its scheduled
	// time is counted late.
	LateThreshold time.Duration
	// Drain is how long to wait for replies after the last request.
	Drain time.Duration
	// Interval is the span of one histogram of the interval log: 0 for
	// DefaultInterval, else MinInterval..MaxInterval in whole milliseconds;
	// lengthened for points of more than MaxIntervals intervals (Intervals).
	Interval time.Duration
	// Burst is the most frames sent or received per call (default 32).
	Burst int
	// Service, when enabled, makes every request ask the server for a service
	// time drawn from it (the synthetic application); Size must then be at
	// least SyntheticHeaderLen.
	Service ServiceDist
}

// Result is what one point measured. Counts without "warmup" in their name are of
// the measured span only.
type Result struct {
	Schedule   string  `json:"schedule"`
	OfferedRPS float64 `json:"offered_rps"`
	DurationS  float64 `json:"duration_s"`
	WarmupS    float64 `json:"warmup_s"`
	Size       int     `json:"size"`

	Scheduled  uint64 `json:"scheduled"`  // requests the schedule holds
	Sent       uint64 `json:"sent"`       // requests that left
	NotSent    uint64 `json:"not_sent"`   // refused by a full TX ring or empty pool
	Received   uint64 `json:"received"`   // requests answered
	Lost       uint64 `json:"lost"`       // sent and never answered within the drain
	Late       uint64 `json:"late"`       // sent more than LateThreshold after their time
	Duplicates uint64 `json:"duplicates"` // second replies to one request
	Unmatched  uint64 `json:"unmatched"`  // frames that were neither replies nor ARP

	WarmupSent     uint64 `json:"warmup_sent"`
	WarmupReceived uint64 `json:"warmup_received"`

	AchievedRPS float64 `json:"achieved_rps"` // Received / duration
	SentRPS     float64 `json:"sent_rps"`     // Sent / duration
	MaxLagUs    float64 `json:"max_send_lag_us"`
	// LateSpells counts the spells of consecutive late sends (late.go):
	// LongestLateSpellUs is the longest, LateSpellsUs their total, in
	// scheduled time. Short spells with the generator on time between them
	// are the VM taking its vCPU; one long spell is a generator that cannot
	// keep up.
	LateSpells         int     `json:"late_spells"`
	LongestLateSpellUs float64 `json:"longest_late_spell_us"`
	LateSpellsUs       float64 `json:"late_spells_us"`
	// IntervalS is the span of one histogram of the interval log, seconds
	// (the last one may be shorter: it ends with the measured span).
	IntervalS float64 `json:"interval_s"`
	// CPUSeconds is the generator process's CPU time (user + system) over the
	// whole run, setup included (filled by jrgen). Each engine busy-polls, so
	// it is close to the run's wall time times the engines by design; more
	// than that would mean the generator competed with itself.
	CPUSeconds float64 `json:"cpu_s,omitempty"`
	// MaxRSSKiB is the generator process's peak resident memory (filled by
	// jrgen): what its connections and buffers cost.
	MaxRSSKiB int64 `json:"max_rss_kib,omitempty"`
	// ArrivalA2 is the Anderson–Darling statistic of the first ArrivalN gaps
	// between measured requests as they really left, against the exponential
	// of the offered rate (Poisson schedules only): above ADCrit1 the sends did
	// not follow the schedule closely enough for the point to be read as
	// open-loop Poisson load.
	ArrivalA2 float64 `json:"arrival_a2,omitempty"`
	ArrivalN  int     `json:"arrival_n,omitempty"`

	// TCP points only (RunTCP).
	Protocol      string `json:"protocol,omitempty"`       // "tcp"; empty for UDP
	Conns         int    `json:"conns,omitempty"`          // connections the load was spread over
	Window        int    `json:"window,omitempty"`         // closed loop: requests outstanding per connection
	SizeDist      string `json:"size_dist,omitempty"`      // request sizes drawn from this (Size is then the largest)
	ReceivedBytes uint64 `json:"received_bytes,omitempty"` // payload bytes of the measured replies
	// Application points only: the application protocol ("memcached",
	// "redis", "http"; empty for the echo).
	App string `json:"app,omitempty"`
	// Memcached and redis points: the measured gets that found their value
	// (hits) or not (misses).
	Hits   uint64 `json:"hits,omitempty"`
	Misses uint64 `json:"misses,omitempty"`
	// HTTP points: the well-formed replies whose status was not 200 (part of
	// Unmatched; the rest of Unmatched were replies that could not be
	// parsed). ReceivedBytes are the bodies of the measured 200 replies.
	HTTPNot200 uint64 `json:"http_not_200,omitempty"`
	// Connect points only (RunConnect): the first byte of the echo of each
	// established connection's first request, from its scheduled time.
	FirstByteP50Us float64 `json:"first_byte_p50_us,omitempty"`
	FirstByteP99Us float64 `json:"first_byte_p99_us,omitempty"`
	FirstByteCount int64   `json:"first_byte_count,omitempty"`
	FirstByteLost  uint64  `json:"first_byte_lost,omitempty"` // established, never answered
	// FirstByte are their histograms (ns), per interval like Intervals.
	FirstByte      []*hdrhistogram.Histogram `json:"-"`
	ConnectSeconds float64                   `json:"connect_s,omitempty"`     // time to establish them, before the warm-up
	ConnFailures   uint64                    `json:"conn_failures,omitempty"` // connections reset or closed by the server during the run

	// Multi-queue points only (RunMulti): the engines (one per queue), the
	// replies (warm-up included) that arrived on another queue than the one
	// their request left from, and each engine's share.
	Queues     int            `json:"queues,omitempty"`
	CrossQueue uint64         `json:"cross_queue,omitempty"`
	Engines    []EngineResult `json:"engines,omitempty"`

	TSCHz     float64   `json:"tsc_hz"`
	ServerMAC string    `json:"server_mac"`
	Start     time.Time `json:"start"`
	// Port are the port's counters (with several queues, the sum of the
	// queues' counters).
	Port nic.Stats `json:"port"`

	// Intervals are the latency histograms (ns), one per IntervalS of the
	// measured span, by scheduled send time.
	Intervals []*hdrhistogram.Histogram `json:"-"`
}

func (c *Config) check() error {
	var errs []error
	if c.Size < HeaderLen {
		errs = append(errs, fmt.Errorf("size %d < %d", c.Size, HeaderLen))
	}
	if c.Duration <= 0 || c.Duration > 10*time.Minute {
		errs = append(errs, fmt.Errorf("duration %v outside (0, 10m]", c.Duration))
	}
	if c.Warmup < 0 || c.Warmup > time.Minute {
		errs = append(errs, fmt.Errorf("warmup %v outside [0, 1m]", c.Warmup))
	}
	if err := CheckInterval(c.Interval); err != nil {
		errs = append(errs, err)
	}
	if c.DstMACMissing() {
		errs = append(errs, errors.New("destination MAC not resolved"))
	}
	if c.Burst <= 0 {
		c.Burst = 32
	}
	if c.Burst > nic.MaxBurst {
		c.Burst = nic.MaxBurst
	}
	if c.Drain <= 0 {
		c.Drain = 200 * time.Millisecond
	}
	if c.LateThreshold <= 0 {
		c.LateThreshold = 50 * time.Microsecond
	}
	return errors.Join(errs...)
}

// CheckInterval refuses a Config.Interval outside MinInterval..MaxInterval or
// not a whole number of milliseconds (0 is the default).
func CheckInterval(iv time.Duration) error {
	if iv == 0 {
		return nil
	}
	if iv < MinInterval || iv > MaxInterval || iv%time.Millisecond != 0 {
		return fmt.Errorf("interval %v outside %v..%v in whole milliseconds", iv, MinInterval, MaxInterval)
	}
	return nil
}

// Intervals returns the span of one histogram of the point's interval log and
// how many there are: Interval (or DefaultInterval), lengthened to the next
// whole millisecond of Duration/MaxIntervals when the point would otherwise
// have more than MaxIntervals. The last interval ends with Duration, so it is
// shorter when Duration is not a multiple of the span.
func (c *Config) Intervals() (time.Duration, int) {
	iv := c.Interval
	if iv <= 0 {
		iv = DefaultInterval
	}
	if c.Duration <= 0 {
		return iv, 1
	}
	need := (c.Duration + MaxIntervals - 1) / MaxIntervals
	need = (need + time.Millisecond - 1) / time.Millisecond * time.Millisecond
	iv = max(iv, need)
	return iv, int((c.Duration + iv - 1) / iv)
}

// intervalOf returns the histogram (plus one; 0 is the warm-up) of a request
// scheduled off after the start, for a point of n intervals of span iv.
func intervalOf(off, warmup, iv time.Duration, n int) uint16 {
	if off < warmup {
		return 0
	}
	return uint16(min(int((off-warmup)/iv), n-1) + 1)
}

// newIntervals allocates n empty histograms and writes every counter once, so
// that the first value recorded in each does not page-fault inside the loop.
func newIntervals(n int) []*hdrhistogram.Histogram {
	hs := make([]*hdrhistogram.Histogram, n)
	for i := range hs {
		hs[i] = analysis.NewHistogram()
		hs[i].Reset()
	}
	return hs
}

// DstMACMissing reports whether the flow's destination MAC is unset.
func (c *Config) DstMACMissing() bool { return len(c.Flow.DstMAC) != 6 }

// Run offers one point of load on port and returns what it measured. It blocks
// for Warmup+Duration+Drain, on a goroutine locked to its OS thread; the caller
// pins the process to its core. It is the one-engine case of RunMulti, on the
// calling goroutine.
func Run(port nic.Port, resp *arp.Responder, cfg Config) (*Result, error) {
	res, _, err := run([]nic.Port{port}, nil, resp, cfg)
	return res, err
}

// engine is one open-loop sender and receiver on one queue, with its own
// schedule, request template (its own UDP source port) and counters. What
// other engines read of it (sched, interval, seen: a reply may arrive on
// their queue) is written before the engines start, except seen, which is
// atomic: see multi.go.
type engine struct {
	idx     int
	port    nic.Port
	tmpl    *UDPTemplate
	offsets []time.Duration
	service []uint64
	// sched[i] is request i's send time in TSC ticks after the run's start
	// (group.start), computed before the start is known so that the
	// conversion costs the first requests nothing.
	sched []uint64
	// interval[i] is the histogram of request i plus one (0 = warm-up);
	// computed before the run so the loop only indexes. Two bytes per
	// request: MaxIntervals fits with room to spare, next to the 24 bytes
	// of offsets, sched and service.
	interval []uint16
	// seen has one bit per request, set by whichever engine receives the
	// request's first reply.
	seen []atomic.Uint64
	// res holds this engine's counters: Sent, Late, NotSent, WarmupSent of
	// its own requests; Received, WarmupReceived, Duplicates, Unmatched and
	// the Intervals of the replies its queue received, whoever sent them.
	res *Result
	// sendTimes are the send times of its first measured requests (for the
	// arrival check; allocated before: the loop only appends within capacity).
	sendTimes []uint64
	maxLag    uint64 // ticks
	spells    lateSpells
	crossed   uint64 // first replies received here to another engine's requests
}

// newEngine prepares engine idx of nEngines for cfg (checked): a share of the
// offered rate, its own seed, source port and schedule.
func newEngine(cfg *Config, idx, nEngines int, port nic.Port) (*engine, error) {
	flow := cfg.Flow
	flow.SrcPort += uint16(idx)
	tmpl, err := newUDPTemplate(flow, cfg.Size, cfg.Service.Enabled())
	if err != nil {
		return nil, err
	}
	// Replies to every engine's source port are recognised on every queue.
	tmpl.rxPort, tmpl.rxPorts = cfg.Flow.SrcPort, uint16(nEngines)
	seed := engineSeed(cfg.Seed, idx)
	offsets, err := engineSchedule(cfg, idx, nEngines, seed)
	if err != nil {
		return nil, err
	}
	n := len(offsets)
	iv, nIntervals := cfg.Intervals()
	e := &engine{idx: idx, port: port, tmpl: tmpl, offsets: offsets,
		service: cfg.Service.Draw(n, seed), sched: make([]uint64, n), interval: make([]uint16, n),
		seen: make([]atomic.Uint64, (n+63)/64), sendTimes: make([]uint64, 0, ArrivalSamples+1),
		res: &Result{Intervals: newIntervals(nIntervals)}}
	e.spells.threshold = tsc.FromDuration(cfg.LateThreshold)
	nsPerTick := 1e9 / tsc.Hz()
	warmN := 0
	for i, off := range offsets {
		e.sched[i] = uint64(float64(off.Nanoseconds()) / nsPerTick)
		if e.interval[i] = intervalOf(off, cfg.Warmup, iv, nIntervals); e.interval[i] == 0 {
			warmN++
		}
	}
	e.res.Scheduled = uint64(n - warmN)
	return e, nil
}

// loop sends engine e's requests at their times and receives replies on its
// queue until every engine of g has sent everything and every request is
// answered, or nothing was sent for the drain time.
func (e *engine) loop(g *group) {
	port, tmpl, res := e.port, e.tmpl, e.res
	sched, interval := e.sched, e.interval
	n := len(sched)
	idBase := uint64(e.idx) << engineShift
	burst, start, nsPerTick := g.burst, g.start, g.nsPerTick
	tx, rx, slow := nic.NewBatch(burst), nic.NewBatch(burst), nic.NewBatch(1)
	var maxLag uint64
	lastSend := start
	next := 0
	announced := false
	for {
		now := tsc.Read()
		// Send everything that is due, a burst at a time.
		if next < n && start+sched[next] <= now {
			k := 0
			for next+k < n && k < burst && start+sched[next+k] <= now {
				k++
			}
			sent := sendBurst(port, tx, tmpl, e.offsets, e.service, idBase, next, k)
			for j := 0; j < k; j++ {
				id := next + j
				measured := interval[id] != 0
				if j >= sent {
					if measured {
						res.NotSent++
					}
					continue
				}
				lag := now - (start + sched[id])
				if lag > maxLag {
					maxLag = lag
				}
				if measured {
					res.Sent++
					if lag > g.lateTicks {
						res.Late++
					}
					e.spells.observe(sched[id], lag)
					if len(e.sendTimes) < cap(e.sendTimes) {
						e.sendTimes = append(e.sendTimes, now)
					}
				} else {
					res.WarmupSent++
				}
			}
			g.pending.Add(int64(sent))
			next += k
			lastSend = now
		}
		// Receive replies (to any engine's requests) and stamp them once per burst.
		if m := port.RxBurst(rx); m > 0 {
			now = tsc.Read()
			answered := int64(0)
			for j := 0; j < m; j++ {
				o, k := g.owner(tmpl.ParseReply(rx.Frames[j]))
				if o == nil {
					g.slowPath(port, slow, rx.Frames[j], res)
					continue
				}
				w, bit := k/64, uint64(1)<<(k%64)
				if o.seen[w].Or(bit)&bit != 0 {
					res.Duplicates++
					continue
				}
				answered++
				if o != e {
					e.crossed++
				}
				if iv := o.interval[k]; iv != 0 {
					res.Received++
					res.Intervals[iv-1].RecordValue(int64(float64(now-(start+o.sched[k])) * nsPerTick))
				} else {
					res.WarmupReceived++
				}
			}
			g.pending.Add(-answered)
			port.Free(rx)
		}
		if next == n {
			if !announced {
				g.doneSending(lastSend)
				announced = true
			}
			if g.drained(now) {
				break
			}
		}
		if now > g.hardStop {
			break
		}
	}
	e.maxLag = maxLag
	e.spells.finish(res, nsPerTick)
}

// finish stamps the interval histograms with their times and derives the
// totals. Interval k covers scheduled send times [warmup+k·iv, warmup+(k+1)·iv)
// for the span iv of cfg.Intervals (the schedule starts 1 ms after res.Start).
func finish(res *Result, cfg *Config, maxLagUs float64) {
	iv, _ := cfg.Intervals()
	res.IntervalS = iv.Seconds()
	base := res.Start.Add(time.Millisecond + cfg.Warmup)
	for k, h := range res.Intervals {
		from := base.Add(time.Duration(k) * iv)
		to := from.Add(iv)
		if end := base.Add(cfg.Duration); to.After(end) {
			to = end
		}
		h.SetStartTimeMs(from.UnixMilli())
		h.SetEndTimeMs(to.UnixMilli())
	}
	res.Lost = res.Sent - res.Received
	res.AchievedRPS = float64(res.Received) / cfg.Duration.Seconds()
	res.SentRPS = float64(res.Sent) / cfg.Duration.Seconds()
	res.MaxLagUs = maxLagUs
}

// sendBurst writes requests first..first+k-1 (ids idBase|index) into fresh
// buffers and transmits them; it returns how many left (the rest were never
// on the wire).
func sendBurst(port nic.Port, tx *nic.Batch, tmpl *UDPTemplate, offsets []time.Duration, service []uint64, idBase uint64, first, k int) int {
	got := port.Alloc(tx, k)
	for j := 0; j < got; j++ {
		id := first + j
		tx.Frames[j] = tmpl.Write(tx.Frames[j], idBase|uint64(id), uint64(offsets[id]), service[id])
	}
	tx.N = got
	return port.TxBurst(tx)
}
