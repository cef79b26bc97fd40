package emu

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Jitter distributions.
const (
	DistUniform = "uniform" // delay + U(-jitter, +jitter)
	DistNormal  = "normal"  // delay + N(0, jitter²), clipped at 0
	DistPareto  = "pareto"  // delay + a Pareto tail (shape 3) with mean jitter: never early, sometimes very late
)

// Link is what one direction of the emulated wire does to the frames crossing
// it. The zero value is a perfect wire: no delay, no loss, no limit.
type Link struct {
	// Delay is the one-way propagation delay added to every frame.
	Delay time.Duration
	// Jitter spreads the delay with distribution Dist (default uniform). A
	// frame's delay is drawn independently, so jitter larger than the gap
	// between frames reorders them (as netem does).
	Jitter time.Duration
	Dist   string
	// Loss is the probability that a frame is dropped at random, 0..1.
	Loss float64
	// BurstP and BurstR are the Gilbert–Elliott model of bursty loss: a
	// two-state chain, good → bad with probability BurstP per frame, bad →
	// good with BurstR; every frame arriving in the bad state is lost. The
	// mean burst is 1/BurstR frames, the long-run loss BurstP/(BurstP+BurstR).
	// BurstP 0 turns it off.
	BurstP, BurstR float64
	// Rate limits the wire to this many bits per second (frame bytes +
	// Overhead, times 8); 0 is unlimited. Frames wait for the wire in a FIFO
	// of QueueBytes bytes and QueuePackets frames (0: unbounded for that
	// measure); one arriving at a full queue is dropped (tail drop).
	Rate         float64
	Overhead     int
	QueueBytes   int
	QueuePackets int
	// Reorder is the probability that a frame skips the delay (not the rate
	// limit) and so overtakes the frames delayed before it, 0..1.
	Reorder float64
	// MTU drops frames whose IP packet (frame minus the 14-byte Ethernet
	// header) is larger; 0 is no limit (the emulator's buffer size still is).
	MTU int
}

// keys lists what ParseLink accepts, for error messages.
const keys = "delay, jitter, dist, loss, burst (P:R), rate, overhead, queue (bytes like 64KiB or packets like 100p), reorder, mtu"

// ParseLink reads a Link from its compact text form: comma-separated key=value
// pairs, e.g. "delay=1ms,jitter=100us,dist=normal,loss=0.01,burst=0.001:0.3,
// rate=1gbit,queue=64KiB,reorder=0.001,mtu=1500". Durations are Go durations;
// rates take bit, kbit, mbit, gbit (decimal) and bps (= bit); queues take B,
// KiB, MiB, KB, MB or a p suffix for packets; probabilities are 0..1 or a
// percentage ("1%"). The empty string is the perfect wire.
func ParseLink(s string) (Link, error) {
	var l Link
	s = strings.TrimSpace(s)
	if s == "" || s == "none" {
		return l, nil
	}
	seen := map[string]bool{}
	for _, kv := range strings.Split(s, ",") {
		kv = strings.TrimSpace(kv)
		k, v, ok := strings.Cut(kv, "=")
		if !ok || v == "" {
			return Link{}, fmt.Errorf("link %q: %q is not key=value (keys: %s)", s, kv, keys)
		}
		k = strings.ToLower(strings.TrimSpace(k))
		if seen[k] && k != "queue" { // queue may be given once in bytes and once in packets
			return Link{}, fmt.Errorf("link %q: %s given twice", s, k)
		}
		seen[k] = true
		var err error
		switch k {
		case "delay":
			l.Delay, err = parseDur(v)
		case "jitter":
			l.Jitter, err = parseDur(v)
		case "dist":
			switch v {
			case DistUniform, DistNormal, DistPareto:
				l.Dist = v
			default:
				err = fmt.Errorf("unknown distribution (allowed: %s, %s, %s)", DistUniform, DistNormal, DistPareto)
			}
		case "loss":
			l.Loss, err = parseProb(v)
		case "burst":
			p, r, ok := strings.Cut(v, ":")
			if !ok {
				err = fmt.Errorf("want P:R, the Gilbert–Elliott good→bad and bad→good probabilities, e.g. 0.001:0.3")
				break
			}
			if l.BurstP, err = parseProb(p); err == nil {
				l.BurstR, err = parseProb(r)
			}
		case "rate":
			l.Rate, err = parseRate(v)
		case "overhead":
			l.Overhead, err = strconv.Atoi(v)
			if err == nil && (l.Overhead < 0 || l.Overhead > 64) {
				err = fmt.Errorf("outside 0..64 bytes")
			}
		case "queue":
			err = parseQueue(v, &l)
		case "reorder":
			l.Reorder, err = parseProb(v)
		case "mtu":
			l.MTU, err = strconv.Atoi(v)
			if err == nil && (l.MTU < 68 || l.MTU > MaxFrame-14) {
				err = fmt.Errorf("outside 68..%d", MaxFrame-14)
			}
		default:
			return Link{}, fmt.Errorf("link %q: unknown key %q (keys: %s)", s, k, keys)
		}
		if err != nil {
			return Link{}, fmt.Errorf("link %q: %s=%s: %v", s, k, v, err)
		}
	}
	if err := l.Validate(); err != nil {
		return Link{}, fmt.Errorf("link %q: %w", s, err)
	}
	return l, nil
}

// Validate checks the combination of fields.
func (l Link) Validate() error {
	switch {
	case l.Delay < 0 || l.Jitter < 0:
		return fmt.Errorf("delay and jitter must not be negative")
	case l.Delay > 10*time.Second:
		return fmt.Errorf("delay %v above 10s", l.Delay)
	case l.Dist != "" && l.Dist != DistUniform && l.Dist != DistNormal && l.Dist != DistPareto:
		return fmt.Errorf("unknown distribution %q (allowed: %s, %s, %s)", l.Dist, DistUniform, DistNormal, DistPareto)
	case (l.Dist == "" || l.Dist == DistUniform) && l.Jitter > l.Delay:
		return fmt.Errorf("uniform jitter %v larger than delay %v (a frame cannot leave before it arrived)", l.Jitter, l.Delay)
	case bad(l.Loss) || bad(l.BurstP) || bad(l.BurstR) || bad(l.Reorder):
		return fmt.Errorf("probabilities must be in 0..1")
	case l.BurstP > 0 && l.BurstR == 0:
		return fmt.Errorf("burst: R (bad → good) 0 would lose everything after the first burst")
	case l.Rate < 0 || math.IsNaN(l.Rate) || math.IsInf(l.Rate, 0):
		return fmt.Errorf("rate %v not a positive number of bits/s", l.Rate)
	case l.Rate == 0 && (l.QueueBytes > 0 || l.QueuePackets > 0):
		return fmt.Errorf("queue given without rate: a queue only fills when the wire is rate limited")
	case l.QueueBytes < 0 || l.QueuePackets < 0:
		return fmt.Errorf("negative queue")
	case l.MTU != 0 && (l.MTU < 68 || l.MTU > MaxFrame-14):
		return fmt.Errorf("mtu %d outside 68..%d", l.MTU, MaxFrame-14)
	}
	return nil
}

func bad(p float64) bool { return !(p >= 0 && p <= 1) }

// String writes the compact text form ParseLink reads.
func (l Link) String() string {
	var parts []string
	add := func(k, v string) { parts = append(parts, k+"="+v) }
	if l.Delay > 0 {
		add("delay", l.Delay.String())
	}
	if l.Jitter > 0 {
		add("jitter", l.Jitter.String())
		if l.Dist != "" {
			add("dist", l.Dist)
		}
	}
	if l.Loss > 0 {
		add("loss", strconv.FormatFloat(l.Loss, 'g', -1, 64))
	}
	if l.BurstP > 0 {
		add("burst", strconv.FormatFloat(l.BurstP, 'g', -1, 64)+":"+strconv.FormatFloat(l.BurstR, 'g', -1, 64))
	}
	if l.Rate > 0 {
		add("rate", strconv.FormatFloat(l.Rate, 'g', -1, 64)+"bit")
		if l.Overhead > 0 {
			add("overhead", strconv.Itoa(l.Overhead))
		}
		if l.QueueBytes > 0 {
			add("queue", strconv.Itoa(l.QueueBytes)+"B")
		}
		if l.QueuePackets > 0 {
			add("queue", strconv.Itoa(l.QueuePackets)+"p")
		}
	}
	if l.Reorder > 0 {
		add("reorder", strconv.FormatFloat(l.Reorder, 'g', -1, 64))
	}
	if l.MTU > 0 {
		add("mtu", strconv.Itoa(l.MTU))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}

func parseDur(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("not a duration (e.g. 1ms, 250us)")
	}
	if d < 0 {
		return 0, fmt.Errorf("negative")
	}
	return d, nil
}

func parseProb(v string) (float64, error) {
	scale := 1.0
	if s, ok := strings.CutSuffix(v, "%"); ok {
		v, scale = s, 0.01
	}
	p, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, fmt.Errorf("not a number")
	}
	p *= scale
	if bad(p) {
		return 0, fmt.Errorf("probability outside 0..1 (or 0%%..100%%)")
	}
	return p, nil
}

func splitUnit(v string) (float64, string, error) {
	i := 0
	for i < len(v) && (v[i] >= '0' && v[i] <= '9' || v[i] == '.' || v[i] == 'e' && i > 0 && i+1 < len(v) && (v[i+1] >= '0' && v[i+1] <= '9' || v[i+1] == '-' || v[i+1] == '+') || (v[i] == '-' || v[i] == '+') && i > 0 && v[i-1] == 'e') {
		i++
	}
	n, err := strconv.ParseFloat(v[:i], 64)
	if err != nil {
		return 0, "", fmt.Errorf("no number")
	}
	return n, strings.ToLower(v[i:]), nil
}

func parseRate(v string) (float64, error) {
	n, unit, err := splitUnit(v)
	if err != nil {
		return 0, fmt.Errorf("not a rate (e.g. 100mbit, 1gbit, 5e8bit)")
	}
	mult, ok := map[string]float64{"": 1, "bit": 1, "bps": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}[unit]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q (allowed: bit, kbit, mbit, gbit)", unit)
	}
	r := n * mult
	if r < 1000 || r > 1e12 {
		return 0, fmt.Errorf("outside 1kbit..1000gbit")
	}
	return r, nil
}

func parseQueue(v string, l *Link) error {
	n, unit, err := splitUnit(v)
	if err != nil || n != math.Trunc(n) || n < 1 {
		return fmt.Errorf("not a positive whole size (e.g. 64KiB, 100p)")
	}
	if unit == "p" {
		l.QueuePackets = int(n)
		return nil
	}
	mult, ok := map[string]float64{"b": 1, "kib": 1 << 10, "mib": 1 << 20, "kb": 1e3, "mb": 1e6}[unit]
	if !ok {
		return fmt.Errorf("unknown unit %q (allowed: B, KiB, MiB, KB, MB, or p for packets)", unit)
	}
	b := n * mult
	if b < 64 || b > 1<<30 {
		return fmt.Errorf("outside 64B..1GiB")
	}
	l.QueueBytes = int(b)
	return nil
}
