package loadgen

import (
	"net/netip"
	"testing"
	"time"

	"github.com/joyride-bench/joyride/internal/tsc"
	"github.com/joyride-bench/joyride/nic"
	"github.com/joyride-bench/joyride/nic/arp"
)

func TestLateSpells(t *testing.T) {
	s := lateSpells{threshold: 10}
	// on time, a spell of three late sends (scheduled 20..40, closed at 50),
	// on time, then a spell still open at the end (80..90).
	for _, c := range [][2]uint64{{0, 0}, {10, 5}, {20, 11}, {30, 50}, {40, 30}, {50, 2}, {60, 0}, {80, 20}, {90, 15}} {
		s.observe(c[0], c[1])
	}
	var res Result
	s.finish(&res, 1000) // 1 µs a tick
	if res.LateSpells != 2 || res.LongestLateSpellUs != 30 || res.LateSpellsUs != 40 {
		t.Errorf("spells %d, longest %v µs, total %v µs; want 2, 30, 40", res.LateSpells, res.LongestLateSpellUs, res.LateSpellsUs)
	}
}

// stallPort is a loopPort whose transmit stalls once, for stall, as a vCPU
// taken away by the hypervisor stalls a generator; with every set too, each
// burst costs it (a generator too slow for its rate).
type stallPort struct {
	*loopPort
	stall   time.Duration
	every   bool
	after   uint64 // frames sent before the (first) stall
	stalled bool
}

func (p *stallPort) TxBurst(b *nic.Batch) int {
	if p.tx >= p.after && (p.every || !p.stalled) {
		p.stalled = true
		deadline := tsc.Read() + tsc.FromDuration(p.stall)
		for tsc.Read() < deadline {
		}
	}
	return p.loopPort.TxBurst(b)
}

// One stall of 3 ms: the sends during it are late, and the generator is on
// time again after it: one short spell. A generator whose every burst costs
// more than the schedule allows falls behind and stays behind: one spell as
// long as the point.
func TestLateSpellsTellAStallFromSaturation(t *testing.T) {
	resp := arp.New(loopMAC, netip.MustParseAddr("198.18.0.1"))
	cfg := loopConfig(100000, 400*time.Millisecond)
	cfg.Warmup = 50 * time.Millisecond
	res, err := RunMulti([]nic.Port{&stallPort{loopPort: newLoopPort(), stall: 3 * time.Millisecond, after: 20000}}, nil, resp, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stall: late %d of %d, %d spells, longest %.0f µs, total %.0f µs", res.Late, res.Sent, res.LateSpells,
		res.LongestLateSpellUs, res.LateSpellsUs)
	if res.Late < 200 || res.LateSpells < 1 || res.LongestLateSpellUs < 2500 || res.LongestLateSpellUs > 50000 {
		t.Errorf("one 3 ms stall: late %d, %d spells, longest %.0f µs; want ≥ 200 late in a spell of about 3 ms",
			res.Late, res.LateSpells, res.LongestLateSpellUs)
	}
	// 32 frames a burst at most, 1 ms a burst: 32k/s, against 100k/s.
	cfg = loopConfig(100000, 300*time.Millisecond)
	cfg.Warmup = 0
	res, err = RunMulti([]nic.Port{&stallPort{loopPort: newLoopPort(), stall: time.Millisecond, every: true}}, nil, resp, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("saturated: late %d of %d, %d spells, longest %.0f µs", res.Late, res.Sent, res.LateSpells, res.LongestLateSpellUs)
	if res.LongestLateSpellUs < 200000 {
		t.Errorf("a saturated generator's longest late spell is %.0f µs; want most of the 300 ms point", res.LongestLateSpellUs)
	}
}
