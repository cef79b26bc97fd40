package experiments

import (
	"strings"
	"testing"

	"github.com/joyride-bench/joyride/loadgen"
)

// A generator late in short spells (the VM stalling it) leaves a valid point
// that is an upper bound; one that fell behind for good, or could not send,
// invalidates it.
func TestJudgeTellsStallsFromSaturation(t *testing.T) {
	base := loadgen.Result{Scheduled: 20000, Sent: 20000, Received: 20000, DurationS: 2}
	for _, c := range []struct {
		name         string
		late, spells int
		longestUs    float64
		totalUs      float64
		notSent      uint64
		valid, upper bool
		reason       string
	}{
		{"on time", 10, 3, 300, 500, 0, true, false, ""},
		{"stalled", 400, 12, 1800, 9000, 0, true, true, "upper bound: generator sent 2.0% of requests late in 12 short spells (longest 1.80 ms"},
		{"one long spell", 400, 1, 60000, 60000, 0, false, false, "fell behind: longest late spell 60.0 ms"},
		{"late a quarter of the time", 4000, 300, 5000, 500000, 0, false, false, "fell behind"},
		{"stalled but could not send", 400, 12, 1800, 9000, 200, false, false, "could not send 200 of 20000"},
	} {
		r := base
		r.Late, r.LateSpells, r.LongestLateSpellUs, r.LateSpellsUs, r.NotSent = uint64(c.late), c.spells, c.longestUs, c.totalUs, c.notSent
		valid, upper, reason := judge(&r)
		if valid != c.valid || upper != c.upper || !strings.Contains(reason, c.reason) {
			t.Errorf("%s: valid %v upper %v reason %q; want %v %v containing %q", c.name, valid, upper, reason, c.valid, c.upper, c.reason)
		}
	}
}
