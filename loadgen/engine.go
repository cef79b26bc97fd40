package loadgen

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/joyride-bench/joyride/analysis"
	"github.com/joyride-bench/joyride/internal/tsc"
	"github.com/joyride-bench/joyride/nic"
	"github.com/joyride-bench/joyride/nic/arp"
)

// Interval is the span of one histogram in the interval log.
const Interval = time.Second

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
	// CPUSeconds is the generator process's CPU time (user + system) over the
	// whole run, setup included (filled by jrgen). The generator busy-polls,
	// so it is close to the run's wall time by design; more than one core's
	// worth would mean it competed with itself.
	CPUSeconds float64 `json:"cpu_s,omitempty"`
	// ArrivalA2 is the Anderson–Darling statistic of the first ArrivalN gaps
	// between measured requests as they really left, against the exponential
	// of the offered rate (Poisson schedules only): above ADCrit1 the sends did
	// not follow the schedule closely enough for the point to be read as
	// open-loop Poisson load.
	ArrivalA2 float64 `json:"arrival_a2,omitempty"`
	ArrivalN  int     `json:"arrival_n,omitempty"`

	// TCP points only (RunTCP).
	Protocol       string  `json:"protocol,omitempty"`      // "tcp"; empty for UDP
	Conns          int     `json:"conns,omitempty"`         // connections the load was spread over
	ConnectSeconds float64 `json:"connect_s,omitempty"`     // time to establish them, before the warm-up
	ConnFailures   uint64  `json:"conn_failures,omitempty"` // connections reset or closed by the server during the run

	TSCHz     float64   `json:"tsc_hz"`
	ServerMAC string    `json:"server_mac"`
	Start     time.Time `json:"start"`
	Port      nic.Stats `json:"port"`

	// Intervals are the latency histograms (ns), one per Interval of the measured
	// span, by scheduled send time.
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

// DstMACMissing reports whether the flow's destination MAC is unset.
func (c *Config) DstMACMissing() bool { return len(c.Flow.DstMAC) != 6 }

// Run offers one point of load on port and returns what it measured. It blocks
// for Warmup+Duration+Drain, on a goroutine locked to its OS thread; the caller
// pins the process to its core.
func Run(port nic.Port, resp *arp.Responder, cfg Config) (*Result, error) {
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	tmpl, err := newUDPTemplate(cfg.Flow, cfg.Size, cfg.Service.Enabled())
	if err != nil {
		return nil, err
	}
	offsets, err := DrawSchedule(cfg.Schedule, cfg.Rate, cfg.Warmup+cfg.Duration, cfg.Seed)
	if err != nil {
		return nil, err
	}
	service := cfg.Service.Draw(len(offsets), cfg.Seed)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	hz := tsc.Hz()
	nsPerTick := 1e9 / hz
	nIntervals := int((cfg.Duration + Interval - 1) / Interval)
	res := &Result{Schedule: cfg.Schedule, OfferedRPS: cfg.Rate, DurationS: cfg.Duration.Seconds(),
		WarmupS: cfg.Warmup.Seconds(), Size: cfg.Size, TSCHz: hz, ServerMAC: cfg.Flow.DstMAC.String()}
	res.Intervals = make([]*hdrhistogram.Histogram, nIntervals)
	for i := range res.Intervals {
		res.Intervals[i] = analysis.NewHistogram()
	}
	// interval[i] is the histogram of request i (nil during warm-up); computed
	// before the run so the loop only indexes.
	n := len(offsets)
	interval := make([]uint8, n) // 0 = warm-up, k = interval k-1
	warmN := 0
	for i, off := range offsets {
		if off < cfg.Warmup {
			warmN++
			continue
		}
		k := int((off - cfg.Warmup) / Interval)
		if k >= nIntervals {
			k = nIntervals - 1
		}
		interval[i] = uint8(k + 1)
	}
	if nIntervals > 254 {
		return nil, fmt.Errorf("loadgen: %d intervals exceed the 254 a point may have", nIntervals)
	}
	res.Scheduled = uint64(n - warmN)

	seen := make([]uint64, (n+63)/64)
	sched := make([]uint64, n)
	tx, rx, slow := nic.NewBatch(cfg.Burst), nic.NewBatch(cfg.Burst), nic.NewBatch(1)
	lateTicks := tsc.FromDuration(cfg.LateThreshold)
	drainTicks := tsc.FromDuration(cfg.Drain)
	var maxLag uint64
	var sentAll, recvAll uint64

	res.Start = time.Now()
	start := tsc.Read() + tsc.FromDuration(time.Millisecond)
	for i, off := range offsets {
		sched[i] = start + uint64(float64(off.Nanoseconds())/nsPerTick)
	}
	hardStop := start + tsc.FromDuration(cfg.Warmup+cfg.Duration+cfg.Drain+5*time.Second)
	lastSend := start
	next := 0
	// Send times of the first measured requests, for the arrival check
	// (allocated here: the loop only appends within capacity).
	sendTimes := make([]uint64, 0, ArrivalSamples+1)
	for {
		now := tsc.Read()
		// Send everything that is due, a burst at a time.
		if next < n && sched[next] <= now {
			k := 0
			for next+k < n && k < cfg.Burst && sched[next+k] <= now {
				k++
			}
			sent := sendBurst(port, tx, tmpl, offsets, service, next, k)
			for j := 0; j < k; j++ {
				id := next + j
				measured := interval[id] != 0
				if j >= sent {
					if measured {
						res.NotSent++
					}
					continue
				}
				lag := now - sched[id]
				if lag > maxLag {
					maxLag = lag
				}
				if measured {
					res.Sent++
					if lag > lateTicks {
						res.Late++
					}
					if len(sendTimes) < cap(sendTimes) {
						sendTimes = append(sendTimes, now)
					}
				} else {
					res.WarmupSent++
				}
			}
			sentAll += uint64(sent)
			next += k
			lastSend = now
		}
		// Receive replies and stamp them once per burst.
		if m := port.RxBurst(rx); m > 0 {
			now = tsc.Read()
			for j := 0; j < m; j++ {
				id, ok := tmpl.ParseReply(rx.Frames[j])
				if !ok || id >= uint64(n) {
					if answer, _, _ := resp.Handle(rx.Frames[j]); answer != nil {
						arp.SendOne(port, slow, answer)
					} else {
						res.Unmatched++
					}
					continue
				}
				w, bit := id/64, uint64(1)<<(id%64)
				if seen[w]&bit != 0 {
					res.Duplicates++
					continue
				}
				seen[w] |= bit
				recvAll++
				if k := interval[id]; k != 0 {
					res.Received++
					res.Intervals[k-1].RecordValue(int64(float64(now-sched[id]) * nsPerTick))
				} else {
					res.WarmupReceived++
				}
			}
			port.Free(rx)
		}
		if next == n && (recvAll == sentAll || now-lastSend > drainTicks) {
			break
		}
		if now > hardStop {
			break
		}
	}
	finish(res, &cfg, float64(maxLag)*nsPerTick/1e3)
	if cfg.Schedule == Poisson && len(sendTimes) > 100 {
		gaps := make([]float64, len(sendTimes)-1)
		for i := range gaps {
			gaps[i] = float64(sendTimes[i+1]-sendTimes[i]) * nsPerTick
		}
		res.ArrivalA2 = AndersonDarlingExp(gaps, 1e9/cfg.Rate)
		res.ArrivalN = len(gaps)
	}
	if st, err := port.Stats(); err == nil {
		res.Port = st
	}
	return res, nil
}

// finish stamps the interval histograms with their times and derives the
// totals. Interval k covers scheduled send times [warmup+k s, warmup+(k+1) s)
// (the schedule starts 1 ms after res.Start).
func finish(res *Result, cfg *Config, maxLagUs float64) {
	base := res.Start.Add(time.Millisecond + cfg.Warmup)
	for k, h := range res.Intervals {
		from := base.Add(time.Duration(k) * Interval)
		to := from.Add(Interval)
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

// sendBurst writes requests first..first+k-1 into fresh buffers and transmits
// them; it returns how many left (the rest were never on the wire).
func sendBurst(port nic.Port, tx *nic.Batch, tmpl *UDPTemplate, offsets []time.Duration, service []uint64, first, k int) int {
	got := port.Alloc(tx, k)
	for j := 0; j < got; j++ {
		id := first + j
		tx.Frames[j] = tmpl.Write(tx.Frames[j], uint64(id), uint64(offsets[id]), service[id])
	}
	tx.N = got
	return port.TxBurst(tx)
}
