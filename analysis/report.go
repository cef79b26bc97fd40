package analysis

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/joyride-bench/joyride/stacks"
)

// Report is what WriteReport renders into report.md.
type Report struct {
	// Title is the top heading, usually the experiment name.
	Title string
	// Description is an optional paragraph under the title (what was measured).
	Description string
	// Meta is shown as a key/value table, ordered by key: commit, host, kernel,
	// PM QoS, point order, seed, ...
	Meta map[string]string
	// Points are all the points of the run, valid or not.
	Points []Point
	// SLOp99us is the p99 latency objective in µs; 0 for none.
	SLOp99us float64
	// Notes are appended as a list (validity checks, warnings, anomalies).
	Notes []string
	// Sections are extra Markdown sections shown before the results (for
	// example the run's calibration).
	Sections []Section
	// NoiseP50us and NoiseP99us are the run's noise floor (an A/A test's
	// difference); a difference between stacks smaller than it is flagged
	// "within noise". 0 means unknown: nothing is flagged.
	NoiseP50us, NoiseP99us float64
}

// Section is a titled block of Markdown.
type Section struct {
	Title    string
	Markdown string
}

// isFloor reports whether stack gives the latency floor (the null
// reflector): the report subtracts its latency from the others'.
func isFloor(stack string) bool { return stacks.Has(stack, stacks.Floor) }

// capacityFraction is how much of the offered rate must be achieved for a point
// to count as "keeping up".
const capacityFraction = 0.99

// WriteReport renders r as Markdown to path, atomically.
func WriteReport(path string, r Report) error {
	return WriteFileAtomic(path, func(w io.Writer) error {
		_, err := io.WriteString(w, renderReport(r))
		return err
	})
}

// renderReport returns report.md's text.
func renderReport(r Report) string {
	var b strings.Builder
	pf := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	title := r.Title
	if title == "" {
		title = "Benchmark report"
	}
	pf("# %s\n\n", mdText(title))
	if r.Description != "" {
		pf("%s\n\n", strings.TrimSpace(r.Description))
	}
	pf("**How to read this.** Each row is one offered rate on one stack: the open-loop " +
		"generator asked for *offered* requests/s and got answers at *achieved* requests/s. " +
		"Latencies are in microseconds, counted from each request's scheduled send time " +
		"(so queueing in the generator counts), read from the HdrHistogram logs in `hist/`. " +
		"With several repetitions a latency is the mean over the valid repetitions followed " +
		"by their [min–max]; a *95%% CI* is the confidence interval of the percentile from order statistics " +
		"(for several repetitions, from the lowest lower bound to the highest upper bound). *lost* and *late* (sent after their scheduled time) are totals " +
		"over all repetitions; *valid* is valid repetitions / repetitions. Invalid repetitions " +
		"(listed at the end with their reason) are left out of every mean.\n\n")

	if len(r.Meta) > 0 {
		pf("## Run\n\n| key | value |\n|---|---|\n")
		keys := make([]string, 0, len(r.Meta))
		for k := range r.Meta {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			pf("| %s | %s |\n", mdCell(k), mdCell(r.Meta[k]))
		}
		pf("\n")
	}

	aggs := AggregateByStackRate(r.Points)
	for _, sec := range r.Sections {
		pf("## %s\n\n%s\n", mdText(sec.Title), strings.TrimRight(sec.Markdown, "\n")+"\n")
	}
	pf("## Results\n\n")
	if n := countUpper(r.Points); n > 0 {
		pf("%d valid points are **upper bounds** (≤, and the count in the valid column): their generator sent more than 1%% of "+
			"its requests late, but only in short spells with on-time sends between them, which is the VM taking the "+
			"generator's vCPU away, not the generator falling behind. Latency counts from the scheduled send time, so "+
			"those stalls are in it: the stack's own latency is at most the figure shown.\n\n", n)
	}
	if len(aggs) == 0 {
		pf("No points.\n\n")
	}
	for _, g := range groupAggregates(aggs) {
		first := g[0]
		withCI := slices.ContainsFunc(g, Aggregate.HasCI)
		pf("### %s\n\n", mdText(groupName(first)))
		// A closed loop's load is its window, and its result the throughput.
		closed := first.Window > 0
		offered, tput, tputAlign := "offered (req/s)", "", ""
		if closed {
			offered, tput, tputAlign = "load", " Gbit/s |", "---:|"
		}
		if withCI {
			pf("| %s | achieved (req/s) |%s p50 (µs) | p50 95%% CI (µs) | p99 (µs) | p99 95%% CI (µs) | p99.9 (µs) | lost | late | valid |\n", offered, tput)
			pf("|---:|---:|%s---:|:---:|---:|:---:|---:|---:|---:|:---:|\n", tputAlign)
		} else {
			pf("| %s | achieved (req/s) |%s p50 (µs) | p99 (µs) | p99.9 (µs) | lost | late | valid |\n", offered, tput)
			pf("|---:|---:|%s---:|---:|---:|---:|---:|:---:|\n", tputAlign)
		}
		for _, a := range g {
			achieved, p50, p99, p999 := "—", "—", "—", "—"
			p50ci, p99ci := "—", "—"
			if a.NValid > 0 && closed {
				achieved = fmtRate(math.Round(a.AchievedRPS))
			}
			if a.NValid > 0 && !closed {
				achieved = fmt.Sprintf("%s (%.1f%%)", fmtRate(a.AchievedRPS), pct(a.AchievedRPS, a.OfferedRPS))
			}
			if a.NValid > 0 {
				p50 = fmtSpread(a.P50us, a.P50Min, a.P50Max, a.NValid)
				p99 = fmtSpread(a.P99us, a.P99Min, a.P99Max, a.NValid)
				p999 = fmtSpread(a.P999us, a.P999Min, a.P999Max, a.NValid)
			}
			if a.HasCI() {
				p50ci, p99ci = FormatCI(a.P50Lo, a.P50Hi), FormatCI(a.P99Lo, a.P99Hi)
			}
			valid := fmt.Sprintf("%d/%d", a.NValid, a.N)
			if !a.AllValid {
				valid = "**" + valid + "**"
			}
			if a.NUpper > 0 {
				// Latencies that include the VM's stalls of the generator.
				valid += fmt.Sprintf(" (%d ≤)", a.NUpper)
				p50, p99, p999 = "≤ "+p50, "≤ "+p99, "≤ "+p999
			}
			if closed {
				achieved += fmt.Sprintf(" | %.3f", a.Gbps)
			}
			if withCI {
				pf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", fmtLoad(a), achieved, p50, p50ci, p99, p99ci, p999,
					fmtCount(a.Lost, a.Sent), fmtCount(a.Late, a.Sent), valid)
			} else {
				pf("| %s | %s | %s | %s | %s | %s | %s | %s |\n", fmtLoad(a), achieved, p50, p99, p999,
					fmtCount(a.Lost, a.Sent), fmtCount(a.Late, a.Sent), valid)
			}
		}
		pf("\n")
		keep, ok := highestRate(g, func(a Aggregate) bool { return keepsUp(a) })
		what := "rate" // whose achieved rate was kept up with
		if closed {
			what = "throughput"
			pf("- Highest throughput: %s\n", rateOrNone(keep, ok))
		} else {
			pf("- Highest rate with achieved ≥ %.0f%% of offered: %s\n", capacityFraction*100, rateOrNone(keep, ok))
		}
		if r.SLOp99us > 0 {
			if withCI {
				// The knee is judged on the upper confidence bound: a rate
				// "meets" the SLO only if its p99 does with 95% confidence.
				slo, ok := highestRate(g, func(a Aggregate) bool { return keepsUp(a) && a.HasCI() && a.P99Hi <= r.SLOp99us })
				pf("- Highest %s whose p99 upper 95%% bound ≤ %s µs (and achieved ≥ %.0f%%): %s\n", what, fmtUs(r.SLOp99us), capacityFraction*100, rateOrNone(slo, ok))
			} else {
				slo, ok := highestRate(g, func(a Aggregate) bool { return keepsUp(a) && a.P99us <= r.SLOp99us })
				pf("- Highest %s meeting p99 ≤ %s µs (and achieved ≥ %.0f%%): %s\n", what, fmtUs(r.SLOp99us), capacityFraction*100, rateOrNone(slo, ok))
			}
		}
		pf("\n")
	}

	writeNullSection(&b, aggs, r.NoiseP50us, r.NoiseP99us)
	writeCPUSection(&b, aggs)
	writeRatioSection(&b, aggs, r.SLOp99us, r.NoiseP50us, r.NoiseP99us)
	writeChecksSection(&b, r.Points)

	var invalid []Point
	for _, p := range r.Points {
		if !p.Valid {
			invalid = append(invalid, p)
		}
	}
	if len(invalid) > 0 {
		slices.SortStableFunc(invalid, func(a, b Point) int {
			return cmp.Or(cmp.Compare(a.Stack, b.Stack), cmp.Compare(a.Protocol, b.Protocol),
				cmp.Compare(a.App, b.App), cmp.Compare(a.OfferedRPS, b.OfferedRPS), cmp.Compare(a.Rep, b.Rep))
		})
		pf("## Invalid points\n\n| stack | protocol | app | offered (req/s) | rep | reason |\n|---|---|---|---:|---:|---|\n")
		for _, p := range invalid {
			reason := p.Reason
			if reason == "" {
				reason = "(no reason given)"
			}
			pf("| %s | %s | %s | %s | %d | %s |\n", mdCell(p.Stack), mdCell(p.Protocol), mdCell(p.App),
				fmtLoad(Aggregate{OfferedRPS: p.OfferedRPS, Window: p.Window}), p.Rep, mdCell(reason))
		}
		pf("\n")
	}

	if len(r.Notes) > 0 {
		pf("## Notes\n\n")
		for _, n := range r.Notes {
			pf("- %s\n", strings.ReplaceAll(strings.TrimSpace(n), "\n", " "))
		}
		pf("\n")
	}
	return b.String()
}

// writeNullSection writes the "latency above the null stack" table: for each
// rate of each other stack with valid repetitions, its p50 and p99 minus the null
// stack's at the same rate (same protocol when the null stack ran it, else any).
func writeNullSection(b *strings.Builder, aggs []Aggregate, noiseP50, noiseP99 float64) {
	var nulls []Aggregate
	for _, a := range aggs {
		if isFloor(a.Stack) && a.NValid > 0 {
			nulls = append(nulls, a)
		}
	}
	if len(nulls) == 0 {
		return
	}
	findNull := func(a Aggregate) (Aggregate, bool) {
		var any *Aggregate
		for i, n := range nulls {
			if !sameLoad(n, a) {
				continue
			}
			if n.Protocol == a.Protocol {
				return n, true
			}
			if any == nil {
				any = &nulls[i]
			}
		}
		if any != nil {
			return *any, true
		}
		return Aggregate{}, false
	}
	fmt.Fprintf(b, "## Latency above the null stack\n\n"+
		"The null stack reflects frames straight off the NIC: its latency is the floor set by "+
		"the generator, the NIC and the wire. Below, each stack's mean p50 and p99 minus the null "+
		"stack's at the same offered rate: the latency the stack itself adds.")
	if noiseP50 > 0 || noiseP99 > 0 {
		fmt.Fprintf(b, " A difference smaller than the run's noise floor (A/A test: p50 ±%.2f µs, "+
			"p99 ±%.2f µs) is marked *within noise*: it cannot be told apart from no difference.", noiseP50, noiseP99)
	}
	fmt.Fprintf(b, "\n\n")
	noise := func(d, floor float64) string {
		if floor > 0 && math.Abs(d) < floor {
			return " (within noise)"
		}
		return ""
	}
	fmt.Fprintf(b, "| stack | offered (req/s) | p50 (µs) | null p50 (µs) | p50 above null (µs) | p99 above null (µs) |\n")
	fmt.Fprintf(b, "|---|---:|---:|---:|---:|---:|\n")
	rows := 0
	for _, a := range aggs {
		if isFloor(a.Stack) || a.NValid == 0 {
			continue
		}
		n, ok := findNull(a)
		if !ok {
			continue
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s%s | %s%s |\n", mdCell(groupName(a)), fmtLoad(a),
			fmtUs(a.P50us), fmtUs(n.P50us), fmtSigned(a.P50us-n.P50us), noise(a.P50us-n.P50us, noiseP50),
			fmtSigned(a.P99us-n.P99us), noise(a.P99us-n.P99us, noiseP99))
		rows++
	}
	if rows == 0 {
		fmt.Fprintf(b, "| (no other stack ran at the null stack's rates) | | | | | |\n")
	}
	fmt.Fprintf(b, "\n")
}

// writeCPUSection writes the "Server CPU" table: for every load level with a
// measured server CPU, the busy cores and the CPU time per request, and what
// that cost means at a million requests/s.
func writeCPUSection(b *strings.Builder, aggs []Aggregate) {
	if !slices.ContainsFunc(aggs, func(a Aggregate) bool { return a.ServerCores > 0 }) {
		return
	}
	fmt.Fprintf(b, "## Server CPU\n\n"+
		"How busy the server side's cores were over each point's measured span (1.00 = one core fully busy), and "+
		"that time per answered request: at X µs per request, a million requests/s need X cores. A polling stack "+
		"(DPDK, AF_XDP) keeps its core busy whatever the load, so its cost per request falls as load grows; the "+
		"kernel's grows with the load. On a veth testbed part of the kernel's receive path runs on the sending "+
		"core, so its figure is a lower bound.\n\n"+
		"| stack | load | achieved (req/s) | server cores busy | CPU per request (µs) | cores for 1M req/s |\n"+
		"|---|---:|---:|---:|---:|---:|\n")
	for _, a := range aggs {
		if a.ServerCores <= 0 || a.NValid == 0 {
			continue
		}
		fmt.Fprintf(b, "| %s | %s | %s | %.2f | %.2f | %.1f |\n", mdCell(groupName(a)), fmtLoad(a),
			fmtRate(math.Round(a.AchievedRPS)), a.ServerCores, a.CPUUsPerReq, a.CPUUsPerReq)
	}
	fmt.Fprintf(b, "\n")
}

// writeChecksSection writes the "Validity checks" section: how many points of
// each stack passed each check, then every point's checks (CheckPoint,
// SetArrival), failures in bold and counted at the top.
func writeChecksSection(b *strings.Builder, pts []Point) {
	pf := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	pf("## Validity checks\n\n")
	var checked []Point
	for _, p := range pts {
		if p.Checks != nil {
			checked = append(checked, p)
		}
	}
	if len(checked) == 0 {
		pf("No point of this run was checked. `jrbench analyze RUN_DIR` runs the checks on the interval logs in `hist/`.\n\n")
		return
	}
	failed, few := 0, 0
	spans := map[int64]bool{}
	for _, p := range checked {
		if p.Checks.Failed() {
			failed++
		}
		if !p.Checks.ADF.Ran && !p.Checks.Lag1.Ran {
			few++
		}
		if p.Checks.IntervalMs > 0 {
			spans[p.Checks.IntervalMs] = true
		}
	}
	span := "interval"
	if len(spans) == 1 {
		for ms := range spans {
			span = fmt.Sprintf("%d ms", ms)
		}
	}
	pf("Each point's interval log holds one histogram per %s of scheduled send time (the workload's `interval`); "+
		"the first two checks run on the series of per-interval medians. *Stationarity*: augmented Dickey–Fuller "+
		"test (constant, one lag; MacKinnon critical values), passing when a unit root is rejected at 5%% (needs ≥ %d "+
		"intervals). *Independence*: Spearman rank correlation of consecutive medians, failing when significant at 5%% "+
		"(needs ≥ %d intervals); when it fails, the lag from which medians look independent. *Arrivals*: "+
		"Anderson–Darling test of the generator's first gaps between sends against the exponential of the offered "+
		"rate, failing above A² = %.3f (1%%; Poisson schedules only). "+
		"A failed check means the point's percentiles and confidence intervals, which assume "+
		"independent samples from one distribution under the offered load, should not be trusted as they are; "+
		"a steady point still fails one of the three in roughly 7%% of runs, so a failure that repeats across "+
		"repetitions or rates is the finding. Passing is necessary, not sufficient: correlation between "+
		"consecutive requests within an interval cannot be seen in per-interval histograms.\n\n",
		span, ADFMinIntervals, IndepMinIntervals, ArrivalCrit1)
	pf("**%d of %d checked points fail a check**", failed, len(checked))
	if few > 0 {
		pf("; %d had too few intervals for either test", few)
	}
	pf(".\n\n")
	sorted := slices.Clone(checked)
	slices.SortStableFunc(sorted, func(a, b Point) int {
		return cmp.Or(cmp.Compare(a.Stack, b.Stack), cmp.Compare(a.Protocol, b.Protocol),
			cmp.Compare(a.App, b.App), cmp.Compare(a.OfferedRPS, b.OfferedRPS), cmp.Compare(a.Rep, b.Rep))
	})
	writeChecksPerStack(b, sorted)
	pf("| stack | protocol/app | offered (req/s) | rep | intervals | stationarity (ADF τ vs 5%% crit.) | independence (lag-1 ρ) | arrivals (A²) | verdict |\n")
	pf("|---|---|---:|---:|---:|---|---|---|---|\n")
	for _, p := range sorted {
		c := p.Checks
		adf, ind, arr := "—", "—", "—"
		if c.ADF.Ran {
			if c.ADF.Stationary() {
				adf = fmt.Sprintf("τ=%.2f < %.2f (p≈%.2g)", c.ADF.Stat, c.ADF.Crit5, c.ADF.P)
			} else {
				adf = fmt.Sprintf("**τ=%.2f ≥ %.2f (p≈%.2g)**", c.ADF.Stat, c.ADF.Crit5, c.ADF.P)
			}
		}
		if c.Lag1.Ran {
			if c.Lag1.Dependent() {
				ind = fmt.Sprintf("**ρ=%.2f (p=%.2g)**", c.Lag1.Rho, c.Lag1.P)
				if c.Lag1.IndepLag > 0 {
					ind += fmt.Sprintf(", independent from lag %d", c.Lag1.IndepLag)
				} else {
					ind += ", no independent lag found"
				}
			} else {
				ind = fmt.Sprintf("ρ=%.2f (p=%.2g)", c.Lag1.Rho, c.Lag1.P)
			}
		}
		if c.Arrival.Ran {
			if c.Arrival.Rejected() {
				arr = fmt.Sprintf("**%.2f > %.3f**", c.Arrival.A2, ArrivalCrit1)
			} else {
				arr = fmt.Sprintf("%.2f", c.Arrival.A2)
			}
		}
		v := mdCell(c.Verdict)
		if c.Failed() {
			v = "**" + v + "**"
		}
		pf("| %s | %s/%s | %s | %d | %d | %s | %s | %s | %s |\n", mdCell(p.Stack), mdCell(p.Protocol), mdCell(p.App),
			fmtRate(p.OfferedRPS), p.Rep, c.Intervals, adf, ind, arr, v)
	}
	pf("\n")
}

// writeChecksPerStack writes, per stack (in the order of sorted), how many
// points passed each check of those it ran on, how many it could not run on,
// and how many failed at least one.
func writeChecksPerStack(b *strings.Builder, sorted []Point) {
	type tally struct {
		points, failed int
		ran, passed    [3]int // stationarity, independence, arrivals
	}
	var stacks []string
	by := map[string]*tally{}
	for _, p := range sorted {
		t := by[p.Stack]
		if t == nil {
			t = &tally{}
			by[p.Stack] = t
			stacks = append(stacks, p.Stack)
		}
		c := p.Checks
		t.points++
		if c.Failed() {
			t.failed++
		}
		for i, r := range [3]struct{ ran, pass bool }{
			{c.ADF.Ran, c.ADF.Stationary()},
			{c.Lag1.Ran, !c.Lag1.Dependent()},
			{c.Arrival.Ran, !c.Arrival.Rejected()},
		} {
			if r.ran {
				t.ran[i]++
				if r.pass {
					t.passed[i]++
				}
			}
		}
	}
	fmt.Fprintf(b, "Points that passed each check, of those it ran on (not run: too few intervals; for arrivals, "+
		"a schedule that is not Poisson or a closed loop):\n\n"+
		"| stack | points | stationarity passed | independence passed | arrivals passed | failed a check |\n"+
		"|---|---:|---:|---:|---:|---:|\n")
	for _, s := range stacks {
		t := by[s]
		cell := func(i int) string {
			c := fmt.Sprintf("%d of %d", t.passed[i], t.ran[i])
			if n := t.points - t.ran[i]; n > 0 {
				c += fmt.Sprintf(" (%d not run)", n)
			}
			return c
		}
		fmt.Fprintf(b, "| %s | %d | %s | %s | %s | %d of %d |\n", mdCell(s), t.points, cell(0), cell(1), cell(2),
			t.failed, t.points)
	}
	fmt.Fprintf(b, "\n")
}

// countUpper counts the valid points that are upper bounds.
func countUpper(pts []Point) int {
	n := 0
	for _, p := range pts {
		if p.Valid && p.UpperBound {
			n++
		}
	}
	return n
}

// FormatCI formats a confidence interval in µs as "lo–hi"; an upper bound of
// +Inf (not bounded) is shown as "∞".
func FormatCI(lo, hi float64) string {
	h := fmtUs(hi)
	if math.IsInf(hi, 1) {
		h = "∞"
	}
	return fmtUs(lo) + "–" + h
}

// isBaseline reports whether stack is the one every other is compared with
// in the ratios (the kernel).
func isBaseline(stack string) bool { return stacks.Has(stack, stacks.Baseline) }

// writeRatioSection compares each stack with the kernel: capacity (highest
// rate kept up with), capacity under the SLO, and p50/p99 at the lowest rate
// both ran validly. Ratios > 1 favour the stack for capacity, < 1 for latency.
func writeRatioSection(b *strings.Builder, aggs []Aggregate, slo, noiseP50, noiseP99 float64) {
	groups := groupAggregates(aggs)
	// Each group is compared with the kernel's group of the same protocol,
	// application and size.
	baseOf := func(g []Aggregate) []Aggregate {
		for _, k := range groups {
			if isBaseline(k[0].Stack) && k[0].Protocol == g[0].Protocol && k[0].App == g[0].App && k[0].Size == g[0].Size &&
				k[0].Instances == g[0].Instances {
				return k
			}
		}
		return nil
	}
	rows := 0
	for _, g := range groups {
		if !isBaseline(g[0].Stack) && baseOf(g) != nil {
			rows++
		}
	}
	if rows == 0 {
		return
	}
	capacity := func(g []Aggregate) (float64, bool) { return highestRate(g, keepsUp) }
	sloCap := func(g []Aggregate) (float64, bool) {
		return highestRate(g, func(a Aggregate) bool {
			p99 := a.P99us
			if a.HasCI() {
				p99 = a.P99Hi
			}
			return keepsUp(a) && p99 <= slo
		})
	}
	ratio := func(x float64, okx bool, y float64, oky bool) string {
		if !okx || !oky || y == 0 {
			return "—"
		}
		return fmt.Sprintf("%.2f×", x/y)
	}
	fmt.Fprintf(b, "## Ratios to the kernel\n\nEach stack against the Linux kernel on the same workload: capacity is the highest "+
		"offered rate kept up with (achieved ≥ %.0f%%), under the SLO also with p99 (its upper 95%% bound when known) "+
		"within it; latencies (and the server's CPU per request, when measured) are compared at the lowest rate both ran validly. Capacity ratios above 1 and latency "+
		"ratios below 1 favour the stack.\n\n", capacityFraction*100)
	if noiseP50 > 0 || noiseP99 > 0 {
		fmt.Fprintf(b, "Caveat: on this machine the kernel measured twice differed by %.1f µs at p50 and %.1f µs at p99 "+
			"(the calibration's noise floor); a latency ratio whose two sides differ by less than that is noise.\n\n",
			noiseP50, noiseP99)
	}
	fmt.Fprintf(b, "| stack | capacity | capacity ratio | capacity under SLO ratio | at rate | p50 ratio | p99 ratio | CPU per request ratio |\n")
	fmt.Fprintf(b, "|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, g := range groups {
		base := baseOf(g)
		if isBaseline(g[0].Stack) || base == nil {
			continue
		}
		bc, bok := capacity(base)
		bs, bsok := sloCap(base)
		c, ok := capacity(g)
		sc, sok := sloCap(g)
		sloRatio := "—"
		if slo > 0 {
			sloRatio = ratio(sc, sok, bs, bsok)
		}
		rate, p50r, p99r, cpur := "—", "—", "—", "—"
	search:
		for _, a := range g {
			if a.NValid == 0 {
				continue
			}
			for _, k := range base {
				if sameLoad(k, a) && k.NValid > 0 && k.P50us > 0 && k.P99us > 0 {
					rate = fmtLoad(a)
					p50r = fmt.Sprintf("%.2f×", a.P50us/k.P50us)
					p99r = fmt.Sprintf("%.2f×", a.P99us/k.P99us)
					if a.CPUUsPerReq > 0 && k.CPUUsPerReq > 0 {
						cpur = fmt.Sprintf("%.2f×", a.CPUUsPerReq/k.CPUUsPerReq)
					}
					break search
				}
			}
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", mdCell(groupName(g[0])), rateOrNone(c, ok),
			ratio(c, ok, bc, bok), sloRatio, rate, p50r, p99r, cpur)
	}
	fmt.Fprintf(b, "\n")
}

// groupAggregates splits sorted aggregates into runs of the same stack,
// protocol and app.
func groupAggregates(aggs []Aggregate) [][]Aggregate {
	var out [][]Aggregate
	for i, a := range aggs {
		if i == 0 || !sameGroup(a, aggs[i-1]) {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], a)
	}
	return out
}

func sameGroup(a, b Aggregate) bool {
	return a.Stack == b.Stack && a.Protocol == b.Protocol && a.App == b.App && a.Size == b.Size && a.Instances == b.Instances
}

// sameLoad reports whether a and b are the same load level: the same offered
// rate, or the same closed-loop window, at the same size.
func sameLoad(a, b Aggregate) bool {
	return a.OfferedRPS == b.OfferedRPS && a.Window == b.Window && a.Size == b.Size && a.Instances == b.Instances
}

// load is a's load in requests/s: the offered rate, or in a closed loop (which
// offers none) the rate achieved.
func load(a Aggregate) float64 {
	if a.Window > 0 {
		return a.AchievedRPS
	}
	return a.OfferedRPS
}

// fmtLoad names a's load level: its offered rate, or "window W".
func fmtLoad(a Aggregate) string {
	if a.Window > 0 {
		return fmt.Sprintf("window %d", a.Window)
	}
	return fmtRate(a.OfferedRPS)
}

// groupName is "stack (protocol/app)", leaving out empty parts, with the
// request size when the run swept sizes: "stack (protocol/app, 1024 B)".
func groupName(a Aggregate) string {
	var parts []string
	for _, s := range []string{a.Protocol, a.App} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	var extra []string
	if a.SizeSwept && a.Size > 0 {
		extra = append(extra, fmt.Sprintf("%d B", a.Size))
	}
	if a.InstancesSwept {
		extra = append(extra, fmt.Sprintf("%d apps", max(a.Instances, 1)))
	}
	if len(extra) > 0 {
		if len(parts) == 0 {
			return a.Stack + " (" + strings.Join(extra, ", ") + ")"
		}
		parts[len(parts)-1] += ", " + strings.Join(extra, ", ")
	}
	if len(parts) == 0 {
		return a.Stack
	}
	return a.Stack + " (" + strings.Join(parts, "/") + ")"
}

// keepsUp reports whether the valid repetitions achieved enough of the offered
// rate (a closed loop, which offers no rate, always does).
func keepsUp(a Aggregate) bool {
	return a.NValid > 0 && (a.Window > 0 || a.AchievedRPS >= capacityFraction*a.OfferedRPS)
}

// highestRate returns the highest load (see load) in g satisfying ok.
func highestRate(g []Aggregate, ok func(Aggregate) bool) (float64, bool) {
	best, found := 0.0, false
	for _, a := range g {
		if ok(a) && (!found || load(a) > best) {
			best, found = load(a), true
		}
	}
	return best, found
}

func rateOrNone(v float64, ok bool) string {
	if !ok {
		return "none"
	}
	return fmtRate(v) + " req/s"
}

func pct(v, of float64) float64 {
	if of == 0 {
		return 0
	}
	return 100 * v / of
}

// fmtRate formats a rate in requests/s: whole numbers without decimals.
func fmtRate(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func fmtUs(v float64) string { return fmt.Sprintf("%.2f", v) }

func fmtSigned(v float64) string { return fmt.Sprintf("%+.2f", v) }

// fmtSpread is "mean [min–max]", or just the value for a single repetition.
func fmtSpread(mean, lo, hi float64, n int) string {
	if n <= 1 {
		return fmtUs(mean)
	}
	return fmt.Sprintf("%s [%s–%s]", fmtUs(mean), fmtUs(lo), fmtUs(hi))
}

// fmtCount is "n (x%)" of sent, or just n when nothing was sent or n is 0.
func fmtCount(n, sent uint64) string {
	if n == 0 || sent == 0 {
		return fmt.Sprintf("%d", n)
	}
	return fmt.Sprintf("%d (%.3g%%)", n, 100*float64(n)/float64(sent))
}

// mdText makes s safe on one Markdown line.
func mdText(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// mdCell makes s safe in a Markdown table cell.
func mdCell(s string) string {
	return strings.ReplaceAll(mdText(s), "|", `\|`)
}
