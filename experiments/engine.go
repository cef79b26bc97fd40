package experiments

import (
	"regexp"
	"strconv"
)

// EngineFacts is what a stack's daemon logged about how its engine ran the
// point (joyrided: its core policy and the fast path's counters), recorded in
// meta.json with the point so that a result can be tied to the engine's mode.
type EngineFacts struct {
	// CorePolicy is the engine's core policy while applications were
	// attached (the last one decided with at least one): "shared" (it hands
	// its core over when it has posted work) or "dedicated" (it spins, then
	// sleeps); empty when the daemon did not say.
	CorePolicy string `json:"core_policy,omitempty"`
	// PolicyChanges counts the policy lines (the engine decides again when
	// an application attaches or detaches).
	PolicyChanges int `json:"policy_changes,omitempty"`
	// FastPath are the fast path's counters at the daemon's exit (rx, tx,
	// tx_fallbacks, resolves, ports_left, filtered); nil when it logged none
	// (fast path off, or another daemon).
	FastPath map[string]uint64 `json:"fast_path,omitempty"`
	// Limits are the daemon's refusals at its per-application limits at its
	// exit (sockets, listeners, backlog, buffered_bytes, flows,
	// control_rate; docs/SECURITY.md); nil when it logged none.
	Limits map[string]uint64 `json:"limits,omitempty"`
}

var (
	policyLine   = regexp.MustCompile(`msg="engine core policy" policy=(\w+)(?: apps=(\d+))?`)
	fastPathLine = regexp.MustCompile(`msg="fast path counters"((?: \w+=\d+)+)`)
	limitsLine   = regexp.MustCompile(`msg="limit counters"((?: \w+=\d+)+)`)
	counterField = regexp.MustCompile(`(\w+)=(\d+)`)
)

// engineFacts reads them from a daemon's log (slog text lines); nil when the
// log has none.
func engineFacts(log string) *EngineFacts {
	var f EngineFacts
	for _, m := range policyLine.FindAllStringSubmatch(log, -1) {
		if f.PolicyChanges++; m[2] != "0" {
			f.CorePolicy = m[1] // with apps attached (or a log that does not say)
		}
	}
	f.FastPath = lastCounters(fastPathLine, log)
	f.Limits = lastCounters(limitsLine, log)
	if f.CorePolicy == "" && f.FastPath == nil && f.Limits == nil {
		return nil
	}
	return &f
}

// lastCounters reads the name=value fields of line's last match in log; nil
// when there is none.
func lastCounters(line *regexp.Regexp, log string) map[string]uint64 {
	m := line.FindAllStringSubmatch(log, -1)
	if m == nil {
		return nil
	}
	c := map[string]uint64{}
	for _, kv := range counterField.FindAllStringSubmatch(m[len(m)-1][1], -1) {
		v, _ := strconv.ParseUint(kv[2], 10, 64)
		c[kv[1]] = v
	}
	return c
}
