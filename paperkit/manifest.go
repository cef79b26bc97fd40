// Package paperkit evaluates paper/manifest.yaml: the figures and claims of the
// papers this project reproduces. It reads the manifest strictly (Load), picks
// each claim's figures out of a run's summary.csv (Evaluate), judges them
// against the claim's expectation (reproduced, not reproduced, contradicted,
// not measurable here) and writes paper/RESULTS.md and paper/figures (Write).
// Running the experiments is the caller's business (jrbench paper).
package paperkit

import (
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/joyride-bench/joyride/internal/strictyaml"
	"gopkg.in/yaml.v3"
)

// Manifest is paper/manifest.yaml: the figures and claims the project
// reproduces.
type Manifest struct {
	// File is the manifest's path, for messages.
	File    string
	Figures []Figure
}

// Figure is one figure of a paper, drawn from one experiment's plot.
type Figure struct {
	// ID names the figure's files: figures/<id>.pdf, .png, .svg.
	ID     string
	Title  string
	Papers []string
	// Experiment names experiments/<experiment>.yaml and results/<experiment>/.
	Experiment string
	// Plot is the file stem under the run's plots/ (latency-vs-load, cdf-10000).
	Plot   string
	Claims []Claim
}

// Claim is one row of RESULTS.md.
type Claim struct {
	// Claim says what is claimed, Published what a paper published (from
	// ANCHORS.md).
	Claim, Published string
	// Measure picks the measured figure out of the run; nil only when
	// NotMeasurable is set.
	Measure *Selector
	// Versus picks the baseline in the same run (Measure's keys where the
	// manifest does not override them); nil when the claim has none.
	Versus *Selector
	// Expect is what the claim expects of the figures; nil: none (the row
	// is reported as measured, without a verdict).
	Expect *Expectation
	// NotMeasurable says why this testbed cannot test the claim (e.g.
	// "needs a 100G NIC"); the row still shows what Measure and Versus
	// measured, for context.
	NotMeasurable string
}

// Metrics a selector can pick, with what each is.
var Metrics = []string{"p50", "p99", "peak", "cpu", "gbps", "mem"}

// Protocols a selector can name.
var Protocols = []string{"udp", "tcp"}

// Selector picks one figure out of a run's points.
type Selector struct {
	Stack string
	// Protocol picks one transport of an experiment that runs several ("":
	// any, which must then be one).
	Protocol string
	// Rate is the offered rate (open loop), Window the requests outstanding
	// per connection (closed loop); one of them for every metric but peak,
	// which takes neither (it is over every rate).
	Rate   float64
	Window int
	// Size and Instances pick one value of a sweep (0: any, which must then
	// be one).
	Size, Instances int
	// Metric is p50 or p99 (µs, at the load), peak (the highest offered rate
	// kept up with, req/s), cpu (server CPU µs per request at the load),
	// gbps (payload Gbit/s at the load) or mem (server-side MiB at the load).
	Metric string
}

// Unit is the unit of the selector's metric.
func (s Selector) Unit() string { return metricUnit(s.Metric) }

func metricUnit(metric string) string {
	switch metric {
	case "p50", "p99":
		return "µs"
	case "peak":
		return "req/s"
	case "cpu":
		return "µs CPU/req"
	case "gbps":
		return "Gbit/s"
	case "mem":
		return "MiB"
	}
	return ""
}

// Where describes the point a selector picks, without its stack and metric:
// "udp, 10000 req/s", "window 8, 65536 B", "tcp, every rate".
func (s Selector) Where() string {
	var parts []string
	if s.Protocol != "" {
		parts = append(parts, s.Protocol)
	}
	switch {
	case s.Metric == "peak":
	case s.Window > 0:
		parts = append(parts, fmt.Sprintf("window %d", s.Window))
	default:
		parts = append(parts, fmtNum(s.Rate, 0)+" req/s")
	}
	if s.Size > 0 {
		parts = append(parts, fmt.Sprintf("%d B", s.Size))
	}
	if s.Instances > 0 {
		parts = append(parts, fmt.Sprintf("%d instances", s.Instances))
	}
	return strings.Join(parts, ", ")
}

// Quantity is what an expectation bounds.
type Quantity int

const (
	// Absolute bounds the measured figure itself, in its metric's unit.
	Absolute Quantity = iota
	// Ratio bounds measured / baseline.
	Ratio
	// Difference bounds measured − baseline, in the metric's unit.
	Difference
)

// Expectation is one bound on a claim's figures.
type Expectation struct {
	Of Quantity
	// AtMost is set for an upper bound, clear for a lower one.
	AtMost bool
	Bound  float64
}

// Holds reports whether v satisfies the expectation.
func (e Expectation) Holds(v float64) bool {
	if e.AtMost {
		return v <= e.Bound
	}
	return v >= e.Bound
}

// String is "ratio ≤ 1", "≥ 1.5", "difference ≤ 5".
func (e Expectation) String() string {
	op := "≥"
	if e.AtMost {
		op = "≤"
	}
	b := fmtNum(e.Bound, -1)
	switch e.Of {
	case Ratio:
		return "ratio " + op + " " + b
	case Difference:
		return "difference " + op + " " + b
	}
	return op + " " + b
}

// Experiments lists the experiments the figures name, each once, in order.
func (m *Manifest) Experiments() []string {
	var out []string
	for _, f := range m.Figures {
		if !slices.Contains(out, f.Experiment) {
			out = append(out, f.Experiment)
		}
	}
	return out
}

// Load reads and parses a manifest file.
func Load(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, b)
}

// Allowed keys, in the order messages list them.
var (
	topKeys      = []string{"figures"}
	figureKeys   = []string{"id", "title", "papers", "experiment", "plot", "claims"}
	claimKeys    = []string{"claim", "published", "measure", "versus", "expect", "not_measurable"}
	selectorKeys = []string{"stack", "protocol", "rate", "window", "size", "instances", "metric"}
	expectKeys   = []string{"at_most", "at_least", "ratio_at_most", "ratio_at_least", "difference_at_most", "difference_at_least"}
)

// MaxRate bounds a selector's rate (the experiments' own limit).
const MaxRate = 5e6

var (
	idRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	fileRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`)
	stackRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)
)

// Parse reads a manifest from data; file names it in messages. Every problem
// is reported at once, each with its line, key path and what is allowed, as a
// *strictyaml.Error.
func Parse(file string, data []byte) (*Manifest, error) {
	var p parser
	m := &Manifest{File: file}
	if root := p.Document(data, "empty file: a manifest needs figures (a list of id, experiment, plot, claims)", "a manifest"); root != nil {
		p.manifest(root, m)
	}
	if err := p.Err(file); err != nil {
		return nil, err
	}
	return m, nil
}

type parser struct {
	strictyaml.Parser
}

func (p *parser) manifest(root *yaml.Node, m *Manifest) {
	top, ok := p.Mapping(root, "", topKeys)
	if !ok {
		return
	}
	n := top["figures"]
	if n == nil {
		p.Add(root, "", "missing key \"figures\" (a list of id, title, papers, experiment, plot, claims)")
		return
	}
	seq, ok := p.Sequence(n, "figures")
	if !ok {
		return
	}
	if len(seq) == 0 {
		p.Add(n, "figures", "empty list: a manifest needs at least one figure")
	}
	ids := strictyaml.Unique[string]{}
	for i, fn := range seq {
		path := fmt.Sprintf("figures[%d]", i)
		f, ok := p.figure(fn, path)
		if !ok {
			continue
		}
		if f.ID != "" {
			if prev, dup := ids.Seen(f.ID, fn); dup {
				p.Add(fn, path+".id", "duplicate figure id %q (first given at line %d)", f.ID, prev)
			}
		}
		m.Figures = append(m.Figures, f)
	}
}

// name reads a required string key matching re.
func (p *parser) name(parent *yaml.Node, m map[string]*yaml.Node, key, path string, re *regexp.Regexp, what string) string {
	n := m[key]
	if n == nil {
		p.Add(parent, path, "missing key %q (%s)", key, what)
		return ""
	}
	s, ok := p.Str(n, join(path, key))
	if !ok {
		return ""
	}
	if !re.MatchString(s) {
		p.Add(n, join(path, key), "%q is not allowed (%s)", s, what)
		return ""
	}
	return s
}

func (p *parser) figure(n *yaml.Node, path string) (Figure, bool) {
	var f Figure
	m, ok := p.Mapping(n, path, figureKeys)
	if !ok {
		return f, false
	}
	f.ID = p.name(n, m, "id", path, idRE, "lowercase letters, digits and -: it names figures/<id>.pdf")
	f.Experiment = p.name(n, m, "experiment", path, fileRE, "the name of an experiments/<name>.yaml")
	f.Plot = p.name(n, m, "plot", path, fileRE, "a plot of the experiment's run, as named under its plots/: latency-vs-load, cdf-10000")
	if v := m["title"]; v != nil {
		f.Title, _ = p.Str(v, path+".title")
	}
	if v := m["papers"]; v != nil {
		if seq, ok := p.Sequence(v, path+".papers"); ok {
			for i, s := range seq {
				if name, ok := p.Str(s, fmt.Sprintf("%s.papers[%d]", path, i)); ok && name != "" {
					f.Papers = append(f.Papers, name)
				}
			}
		}
	}
	if v := m["claims"]; v != nil {
		if seq, ok := p.Sequence(v, path+".claims"); ok {
			for i, cn := range seq {
				if c, ok := p.claim(cn, fmt.Sprintf("%s.claims[%d]", path, i)); ok {
					f.Claims = append(f.Claims, c)
				}
			}
		}
	}
	return f, true
}

func (p *parser) claim(n *yaml.Node, path string) (Claim, bool) {
	var c Claim
	m, ok := p.Mapping(n, path, claimKeys)
	if !ok {
		return c, false
	}
	if v := m["claim"]; v == nil {
		p.Add(n, path, "missing key \"claim\" (what is claimed, one line)")
	} else if s, ok := p.Str(v, path+".claim"); ok {
		if strings.TrimSpace(s) == "" {
			p.Add(v, path+".claim", "empty: say what is claimed")
		}
		c.Claim = s
	}
	if v := m["published"]; v != nil {
		c.Published, _ = p.Str(v, path+".published")
	}
	if v := m["not_measurable"]; v != nil {
		if s, ok := p.Str(v, path+".not_measurable"); ok {
			if strings.TrimSpace(s) == "" {
				p.Add(v, path+".not_measurable", "empty: say why this testbed cannot measure the claim (e.g. \"needs a 100G NIC\")")
			}
			c.NotMeasurable = s
		}
	}
	mn := m["measure"]
	if mn == nil {
		if c.NotMeasurable == "" {
			p.Add(n, path, "missing key \"measure\" (stack, metric and the point: %s), or \"not_measurable\" with the reason", strings.Join(selectorKeys, ", "))
		}
		for _, k := range []string{"versus", "expect"} {
			if m[k] != nil {
				p.Add(m[k], path+"."+k, "%s needs a measure", k)
			}
		}
		return c, true
	}
	var measure Selector
	given, ok := p.selector(mn, path+".measure", &measure)
	if ok {
		for _, k := range []string{"stack", "metric"} {
			if !given[k] {
				p.Add(mn, path+".measure", "missing key %q", k)
			}
		}
		if given["stack"] && given["metric"] && p.checkSelector(mn, path+".measure", measure) {
			c.Measure = &measure
		}
	}
	if vn := m["versus"]; vn != nil {
		versus := measure
		if given, ok := p.selector(vn, path+".versus", &versus); ok {
			if versus.Metric == "peak" && !given["rate"] && !given["window"] {
				versus.Rate, versus.Window = 0, 0 // a peak is over every rate
			}
			if len(given) == 0 {
				p.Add(vn, path+".versus", "empty: name the baseline's stack (and any of %s that differ from measure)", strings.Join(selectorKeys[1:], ", "))
			} else if c.Measure != nil {
				if versus == measure {
					p.Add(vn, path+".versus", "names the same point as measure: change its stack or another key")
				} else if p.checkSelector(vn, path+".versus", versus) {
					c.Versus = &versus
				}
			}
		}
	}
	if en := m["expect"]; en != nil {
		c.Expect = p.expect(en, path+".expect", m["versus"] != nil)
	}
	return c, true
}

// selector reads the keys present in n into s (keys absent keep s's values)
// and reports which were given.
func (p *parser) selector(n *yaml.Node, path string, s *Selector) (map[string]bool, bool) {
	m, ok := p.Mapping(n, path, selectorKeys)
	if !ok {
		return nil, false
	}
	given := map[string]bool{}
	for k := range m {
		given[k] = true
	}
	if v := m["stack"]; v != nil {
		if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null" {
			p.Add(v, path+".stack", "null is YAML's empty value: write the null stack as \"null\", quoted")
		} else if st, ok := p.Str(v, path+".stack"); ok {
			if !stackRE.MatchString(st) {
				p.Add(v, path+".stack", "%q is not a stack name (a registered stack: kernel, joyride, afxdp, \"null\", ...)", st)
			} else {
				s.Stack = st
			}
		}
	}
	p.Enum(m["protocol"], path+".protocol", Protocols, &s.Protocol)
	p.Enum(m["metric"], path+".metric", Metrics, &s.Metric)
	if v := m["rate"]; v != nil {
		if r, ok := p.Number(v, path+".rate"); ok {
			if !(r > 0 && r <= MaxRate) {
				p.Add(v, path+".rate", "%s is out of range (an offered rate in requests/s, > 0 and <= %.0f)", v.Value, MaxRate)
			} else {
				s.Rate = r
			}
		}
	}
	for _, k := range []struct {
		key, what string
		dst       *int
	}{
		{"window", "requests outstanding per connection of a closed loop", &s.Window},
		{"size", "request size in bytes, one of the experiment's sizes", &s.Size},
		{"instances", "application instances, one of the experiment's instances", &s.Instances},
	} {
		v := m[k.key]
		if v == nil {
			continue
		}
		if i, ok := p.Integer(v, path+"."+k.key); ok {
			if i <= 0 || i > math.MaxInt32 {
				p.Add(v, path+"."+k.key, "%d is out of range (%s, > 0)", i, k.what)
			} else {
				*k.dst = int(i)
			}
		}
	}
	return given, true
}

// checkSelector checks that a complete selector picks one kind of point.
func (p *parser) checkSelector(n *yaml.Node, path string, s Selector) bool {
	ok := true
	switch {
	case s.Metric == "peak" && (s.Rate > 0 || s.Window > 0):
		p.Add(n, path, "metric peak is the highest offered rate kept up with, over every rate: give neither rate nor window")
		ok = false
	case s.Metric != "peak" && s.Rate > 0 && s.Window > 0:
		p.Add(n, path, "give rate (an open loop's offered rate) or window (a closed loop's requests outstanding), not both")
		ok = false
	case s.Metric != "peak" && s.Metric != "" && s.Rate == 0 && s.Window == 0:
		p.Add(n, path, "metric %s is read at one load: give rate (requests/s) or window (closed loop)", s.Metric)
		ok = false
	}
	return ok
}

func (p *parser) expect(n *yaml.Node, path string, hasVersus bool) *Expectation {
	m, ok := p.Mapping(n, path, expectKeys)
	if !ok {
		return nil
	}
	if len(m) != 1 {
		p.Add(n, path, "%d bounds: give exactly one of %s", len(m), strings.Join(expectKeys, ", "))
		return nil
	}
	for k, v := range m {
		b, ok := p.Number(v, path+"."+k)
		if !ok {
			return nil
		}
		e := &Expectation{AtMost: strings.HasSuffix(k, "at_most"), Bound: b}
		switch {
		case strings.HasPrefix(k, "ratio_"):
			e.Of = Ratio
		case strings.HasPrefix(k, "difference_"):
			e.Of = Difference
		}
		if e.Of != Absolute && !hasVersus {
			p.Add(v, path+"."+k, "a %s needs a baseline: add versus (e.g. versus: {stack: kernel})", strings.TrimSuffix(strings.TrimSuffix(k, "_at_most"), "_at_least"))
			return nil
		}
		switch {
		case math.IsInf(b, 0) || math.IsNaN(b):
			p.Add(v, path+"."+k, "%s is out of range (a finite number)", v.Value)
			return nil
		case e.Of == Ratio && b <= 0:
			p.Add(v, path+"."+k, "%s is out of range (a ratio's bound is > 0)", v.Value)
			return nil
		}
		return e
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
