package paperkit

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/joyride-bench/joyride/analysis"
)

// Run is one experiment's results: its points and where they were measured.
type Run struct {
	// Dir is the run directory (results/<experiment>/<run-id>, or latest).
	Dir string
	// ID is the run id (meta.json's, else the directory's name).
	ID string
	// Machine, Testbed, Commit and Start (UTC, to the minute) describe the
	// run from meta.json ("" when unknown).
	Machine, Testbed, Commit, Start string
	// State is meta.json's state ("complete", ...).
	State  string
	Points []analysis.Point
}

// LoadRun reads a run directory's summary.csv and meta.json (which may be
// missing: the run is then described by its directory).
func LoadRun(dir string) (*Run, error) {
	pts, err := analysis.ReadSummaryCSV(filepath.Join(dir, "summary.csv"))
	if err != nil {
		return nil, err
	}
	r := &Run{Dir: dir, Points: pts, ID: filepath.Base(dir)}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		r.ID = filepath.Base(real)
	}
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return r, nil
	}
	var m struct {
		RunID      string            `json:"run_id"`
		State      string            `json:"state"`
		Start      string            `json:"start"`
		Commit     string            `json:"commit"`
		Host       map[string]string `json:"host"`
		Experiment struct {
			Testbed string `json:"testbed"`
		} `json:"experiment"`
	}
	if json.Unmarshal(b, &m) != nil {
		return r, nil
	}
	if m.RunID != "" {
		r.ID = m.RunID
	}
	r.State, r.Commit = m.State, m.Commit
	if t, err := time.Parse(time.RFC3339Nano, m.Start); err == nil {
		r.Start = t.UTC().Format("2006-01-02 15:04")
	}
	var machine []string
	if c := m.Host["cpu"]; c != "" {
		machine = append(machine, c)
	}
	if c := m.Host["cores"]; c != "" {
		machine = append(machine, c+" cores")
	}
	if k := m.Host["kernel"]; k != "" {
		machine = append(machine, "Linux "+k)
	}
	r.Machine = strings.Join(machine, ", ")
	switch tb := m.Experiment.Testbed; tb {
	case "", "local":
		r.Testbed = "local (veth pair between two namespaces)"
	default:
		r.Testbed = tb
	}
	return r, nil
}

// stacks lists the stacks that have points in the run.
func (r *Run) stacks() []string {
	var out []string
	for _, p := range r.Points {
		if !slices.Contains(out, p.Stack) {
			out = append(out, p.Stack)
		}
	}
	return out
}

// Measured is one figure picked out of a run.
type Measured struct {
	Sel Selector
	// Why says why the figure could not be measured ("" when it was).
	Why string
	// Value is the point estimate (NaN when only a range is known: a peak
	// below the lowest rate tried); [Lo, Hi] the range it lies in (Lo = Hi
	// = Value when no range is known; Hi may be +Inf).
	Value, Lo, Hi float64
	// Range names what [Lo, Hi] is: "95% CI", "spread", "rate grid"; ""
	// when there is none.
	Range string
	// Inconclusive says why the figure cannot decide a claim ("" when it
	// can): a repetition failed its checks, or a latency has no interval.
	Inconclusive string
	// Note adds what a reader should know ("1 of 2 repetitions valid").
	Note string
}

// OK reports whether the figure was measured.
func (m Measured) OK() bool { return m.Why == "" }

// notMeasured builds a figure that could not be measured.
func notMeasured(sel Selector, format string, args ...any) Measured {
	return Measured{Sel: sel, Why: fmt.Sprintf(format, args...), Value: math.NaN(), Lo: math.NaN(), Hi: math.NaN()}
}

// keepUpFraction is the share of the offered rate a load level must achieve
// to count as kept up with (as in report.md's capacity).
const keepUpFraction = 0.99

// Measure picks sel's figure out of the run.
func Measure(r *Run, sel Selector) Measured {
	if !slices.ContainsFunc(r.Points, func(p analysis.Point) bool { return p.Stack == sel.Stack }) {
		return notMeasured(sel, "stack %s was not in run %s (it ran %s)", sel.Stack, r.ID, strings.Join(r.stacks(), ", "))
	}
	var pts []analysis.Point
	for _, p := range r.Points {
		if p.Stack != sel.Stack || (sel.Protocol != "" && p.Protocol != sel.Protocol) ||
			(sel.Size != 0 && p.Size != sel.Size) || (sel.Instances != 0 && max(p.Instances, 1) != sel.Instances) {
			continue
		}
		if sel.Metric == "peak" {
			if p.Window == 0 {
				pts = append(pts, p)
			}
		} else if p.OfferedRPS == sel.Rate && p.Window == sel.Window {
			pts = append(pts, p)
		}
	}
	if len(pts) == 0 {
		if sel.Metric == "peak" {
			return notMeasured(sel, "run %s has no open-loop point of %s%s", r.ID, sel.Stack, at(sel))
		}
		return notMeasured(sel, "run %s has no point of %s at %s", r.ID, sel.Stack, sel.Where())
	}
	if amb := ambiguous(pts); amb != "" {
		return notMeasured(sel, "the measure matches several %s of %s in run %s: name one in the manifest", amb, sel.Stack, r.ID)
	}
	if sel.Metric == "peak" {
		return peak(r, sel, pts)
	}
	aggs := analysis.AggregateByStackRate(pts)
	a := aggs[0] // one group: one load level of one series
	if a.NValid == 0 {
		return notMeasured(sel, "no valid repetition of %s at %s in run %s (%s)", sel.Stack, sel.Where(), r.ID, invalidReason(pts))
	}
	m := Measured{Sel: sel}
	if a.NValid < a.N {
		m.Note = fmt.Sprintf("%d of %d repetitions valid", a.NValid, a.N)
	}
	var valid []analysis.Point
	for _, p := range pts {
		if p.Valid {
			valid = append(valid, p)
		}
	}
	switch sel.Metric {
	case "p50", "p99":
		m.Value, m.Lo, m.Hi = a.P50us, a.P50Lo, a.P50Hi
		if sel.Metric == "p99" {
			m.Value, m.Lo, m.Hi = a.P99us, a.P99Lo, a.P99Hi
		}
		if a.HasCI() {
			m.Range = "95% CI"
		} else {
			m.Lo, m.Hi = m.Value, m.Value
			m.Inconclusive = fmt.Sprintf("%s has no confidence interval", sel.Stack)
		}
		failed, checks := 0, map[string]bool{}
		for _, p := range valid {
			if p.Checks != nil && p.Checks.Failed() {
				failed++
				if p.Checks.ADF.Ran && !p.Checks.ADF.Stationary() {
					checks["stationarity"] = true
				}
				if p.Checks.Lag1.Dependent() {
					checks["independence"] = true
				}
				if p.Checks.Arrival.Rejected() {
					checks["arrival"] = true
				}
			}
		}
		if failed > 0 {
			var names []string
			for _, c := range []string{"stationarity", "independence", "arrival"} {
				if checks[c] {
					names = append(names, c)
				}
			}
			m.Inconclusive = join2(m.Inconclusive, fmt.Sprintf("%d of %d valid repetitions of %s failed the %s check", failed, len(valid), sel.Stack, strings.Join(names, " and ")))
		}
		return m
	case "cpu":
		var v []float64
		for _, p := range valid {
			if p.ServerCores > 0 {
				v = append(v, p.CPUUsPerReq)
			}
		}
		if len(v) == 0 {
			return notMeasured(sel, "run %s measured no server CPU for %s at %s", r.ID, sel.Stack, sel.Where())
		}
		m.Value = a.CPUUsPerReq
		m.Note = join2(m.Note, fmt.Sprintf("%.2f server cores busy at %.0f req/s", a.ServerCores, a.AchievedRPS))
		spread(&m, v)
	case "gbps":
		var v []float64
		for _, p := range valid {
			v = append(v, p.Gbps)
		}
		m.Value = a.Gbps
		m.Note = join2(m.Note, fmt.Sprintf("at %.0f req/s", a.AchievedRPS))
		spread(&m, v)
	case "mem":
		var v []float64
		for _, p := range valid {
			if p.ServerMemMiB > 0 {
				v = append(v, p.ServerMemMiB)
			}
		}
		if len(v) == 0 {
			return notMeasured(sel, "run %s measured no server memory for %s at %s", r.ID, sel.Stack, sel.Where())
		}
		m.Value = a.ServerMemMiB
		spread(&m, v)
	}
	return m
}

// spread sets m's range to the min–max of v (several repetitions), or to the
// value alone.
func spread(m *Measured, v []float64) {
	m.Lo, m.Hi = m.Value, m.Value
	if len(v) < 2 {
		return
	}
	m.Lo, m.Hi = slices.Min(v), slices.Max(v)
	m.Range = "spread"
}

func join2(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// peak is the highest offered rate kept up with (valid repetitions achieved
// ≥ 99% of it); its range runs to the lowest higher rate whose valid
// repetitions fell short (+Inf when none did: the peak is at least that).
func peak(r *Run, sel Selector, pts []analysis.Point) Measured {
	aggs := analysis.AggregateByStackRate(pts)
	m := Measured{Sel: sel, Value: math.NaN(), Range: "rate grid"}
	best, tried := -1.0, 0
	for _, a := range aggs {
		if a.NValid == 0 {
			continue
		}
		tried++
		if a.AchievedRPS >= keepUpFraction*a.OfferedRPS && a.OfferedRPS > best {
			best = a.OfferedRPS
		}
	}
	if tried == 0 {
		return notMeasured(sel, "no valid repetition of %s%s at any rate in run %s (%s)", sel.Stack, at(sel), r.ID, invalidReason(pts))
	}
	m.Hi = math.Inf(1)
	for _, a := range aggs {
		if a.NValid > 0 && a.OfferedRPS > best && a.OfferedRPS < m.Hi && a.AchievedRPS < keepUpFraction*a.OfferedRPS {
			m.Hi = a.OfferedRPS
		}
	}
	if best < 0 {
		m.Lo = 0 // below the lowest rate tried
		return m
	}
	m.Value, m.Lo = best, best
	return m
}

// at is " at " and where sel's point is, or "" when that is nothing.
func at(sel Selector) string {
	if w := sel.Where(); w != "" {
		return " at " + w
	}
	return ""
}

// ambiguous names what varies among pts besides the rate and the
// repetition ("protocols", "sizes", ...); "" when they are one series.
func ambiguous(pts []analysis.Point) string {
	var dims []string
	differ := func(f func(analysis.Point) string) bool {
		for _, p := range pts[1:] {
			if f(p) != f(pts[0]) {
				return true
			}
		}
		return false
	}
	if differ(func(p analysis.Point) string { return p.Protocol }) {
		dims = append(dims, "protocols")
	}
	if differ(func(p analysis.Point) string { return p.App }) {
		dims = append(dims, "applications")
	}
	if differ(func(p analysis.Point) string { return fmt.Sprint(p.Size) }) {
		dims = append(dims, "sizes")
	}
	if differ(func(p analysis.Point) string { return fmt.Sprint(max(p.Instances, 1)) }) {
		dims = append(dims, "instance counts")
	}
	return strings.Join(dims, " and ")
}

// invalidReason is the reasons the points were not valid, each once.
func invalidReason(pts []analysis.Point) string {
	var why []string
	for _, p := range pts {
		r := p.Reason
		if p.Valid {
			continue
		}
		if r == "" {
			r = "marked invalid"
		}
		if !slices.Contains(why, r) {
			why = append(why, r)
		}
	}
	if len(why) == 0 {
		return "none valid"
	}
	if len(why) > 2 {
		why = append(why[:2], fmt.Sprintf("and %d more reasons", len(why)-2))
	}
	return strings.Join(why, "; ")
}

// Verdict is what a claim's row concludes.
type Verdict int

const (
	// NoExpectation: measured, but the claim states no bound to test.
	NoExpectation Verdict = iota
	// Reproduced: the expectation holds over the whole range.
	Reproduced
	// NotReproduced: it holds at most for the point estimate, not over the
	// whole range, or the figures are inconclusive.
	NotReproduced
	// Contradicted: the expectation fails over the whole range.
	Contradicted
	// NotMeasurable: this testbed or this run cannot test the claim.
	NotMeasurable
)

// Verdicts in the order RESULTS.md tallies them.
var Verdicts = []Verdict{Reproduced, NotReproduced, Contradicted, NotMeasurable, NoExpectation}

func (v Verdict) String() string {
	switch v {
	case Reproduced:
		return "reproduced"
	case NotReproduced:
		return "not reproduced"
	case Contradicted:
		return "contradicted"
	case NotMeasurable:
		return "not measurable here"
	}
	return "measured (no expectation)"
}

// Result is one claim evaluated against a run.
type Result struct {
	Figure string
	Claim  Claim
	// Run is the run the figures came from (nil: the experiment has none).
	Run *Run
	// Measured and Baseline are the claim's figures (Baseline only with
	// Versus); zero when the claim has no Measure.
	Measured, Baseline Measured
	// Compared is Measured against Baseline: the ratio, or with a
	// difference expectation the difference, and its range. HasCompared
	// is false without both figures.
	Compared, CompLo, CompHi float64
	HasCompared              bool
	// CompRange is set when the comparison has a range (a side has one).
	CompRange bool
	Verdict   Verdict
	// Why explains the verdict in one line.
	Why string
}

// Evaluate judges claim c of figure fig against run r (nil: no run of the
// figure's experiment).
func Evaluate(fig Figure, c Claim, r *Run) Result {
	res := Result{Figure: fig.ID, Claim: c, Run: r}
	if r == nil {
		res.Verdict = NotMeasurable
		res.Why = fmt.Sprintf("no run of experiment %s", fig.Experiment)
		if c.NotMeasurable != "" {
			res.Why = c.NotMeasurable
		}
		return res
	}
	if c.Measure != nil {
		res.Measured = Measure(r, *c.Measure)
	}
	if c.Versus != nil {
		res.Baseline = Measure(r, *c.Versus)
	}
	if c.Measure != nil && c.Versus != nil && res.Measured.OK() && res.Baseline.OK() {
		m, b := res.Measured, res.Baseline
		res.CompRange = m.Range != "" || b.Range != ""
		if c.Expect != nil && c.Expect.Of == Difference {
			res.Compared, res.CompLo, res.CompHi = m.Value-b.Value, m.Lo-b.Hi, m.Hi-b.Lo
			res.HasCompared = true
		} else if !(b.Value <= 0) { // NaN: only a range is known
			res.Compared, res.CompLo, res.CompHi = m.Value/b.Value, div(m.Lo, b.Hi), div(m.Hi, b.Lo)
			res.HasCompared = true
		}
	}
	switch {
	case c.NotMeasurable != "":
		res.Verdict, res.Why = NotMeasurable, c.NotMeasurable
	case c.Measure != nil && !res.Measured.OK():
		res.Verdict, res.Why = NotMeasurable, res.Measured.Why
	case c.Versus != nil && !res.Baseline.OK():
		res.Verdict, res.Why = NotMeasurable, "baseline: "+res.Baseline.Why
	case c.Expect == nil:
		res.Verdict = NoExpectation
	default:
		res.Verdict, res.Why = judge(*c.Expect, res)
	}
	return res
}

// div is a/b for non-negative range ends: x/0 is +Inf, 0/0 and x/Inf 0.
func div(a, b float64) float64 {
	switch {
	case a == 0 || math.IsInf(b, 1):
		return 0
	case b == 0:
		return math.Inf(1)
	}
	return a / b
}

// judge applies an expectation to the figures it bounds.
func judge(e Expectation, res Result) (Verdict, string) {
	v, lo, hi := res.Measured.Value, res.Measured.Lo, res.Measured.Hi
	what := "the measured figure"
	if e.Of != Absolute {
		if !res.HasCompared {
			return NotMeasurable, fmt.Sprintf("baseline %s measured %s: no ratio", res.Baseline.Sel.Stack, fmtNum(res.Baseline.Value, -1))
		}
		v, lo, hi = res.Compared, res.CompLo, res.CompHi
		what = "the ratio"
		if e.Of == Difference {
			what = "the difference"
		}
	}
	inc := res.Measured.Inconclusive
	if e.Of != Absolute {
		inc = join2(inc, res.Baseline.Inconclusive)
	}
	if inc != "" {
		return NotReproduced, "inconclusive: " + inc
	}
	unit := ""
	if e.Of != Ratio {
		unit = " " + res.Measured.Sel.Unit()
	}
	rng := fmtRange(lo, hi, prec(e, res))
	holdsAll := (e.AtMost && hi <= e.Bound) || (!e.AtMost && lo >= e.Bound)
	failsAll := (e.AtMost && lo > e.Bound) || (!e.AtMost && hi < e.Bound)
	single := lo == hi
	switch {
	case holdsAll && single:
		return Reproduced, fmt.Sprintf("expected %s%s; %s is %s (no range)", e, unit, what, rng)
	case holdsAll:
		return Reproduced, fmt.Sprintf("expected %s%s over the whole range %s", e, unit, rng)
	case failsAll && single:
		return Contradicted, fmt.Sprintf("expected %s%s; %s is %s (no range)", e, unit, what, rng)
	case failsAll:
		return Contradicted, fmt.Sprintf("expected %s%s; it fails over the whole range %s", e, unit, rng)
	case math.IsNaN(v):
		return NotReproduced, fmt.Sprintf("expected %s%s; the range %s reaches past the bound", e, unit, rng)
	case e.Holds(v):
		return NotReproduced, fmt.Sprintf("expected %s%s; it holds at the point estimate %s but not over the range %s", e, unit, fmtNum(v, prec(e, res)), rng)
	default:
		return NotReproduced, fmt.Sprintf("expected %s%s; it fails at the point estimate %s but not over the whole range %s", e, unit, fmtNum(v, prec(e, res)), rng)
	}
}

func prec(e Expectation, res Result) int {
	if e.Of == Ratio {
		return 2
	}
	return metricPrec(res.Measured.Sel.Metric)
}
