package experiments

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/joyride-bench/joyride/internal/strictyaml"
	"github.com/joyride-bench/joyride/loadgen"
	"github.com/joyride-bench/joyride/nic/emu"
	"github.com/joyride-bench/joyride/stacks"
)

// Allowed values, in the order error messages list them.
var (
	topKeys       = []string{"name", "description", "testbed", "link", "stacks", "app", "workload", "repetitions", "seed", "order", "slo", "machine", "plots"}
	stackKeys     = []string{"name", "options"}
	workloadKeys  = []string{"mode", "protocol", "connections", "service", "memcached", "redis", "size", "sizes", "instances", "schedule", "rates", "windows", "duration", "warmup", "late_threshold", "interval"}
	memcachedKeys = []string{"keys", "popularity", "get_fraction", "value_size"}
	sloKeys       = []string{"p99"}
	machineKeys   = []string{"pm_qos"}
	plotKeys      = []string{"kind", "rate", "window", "size"}

	testbeds = []string{"local"}
	apps     = []string{"echo", "synthetic", "memcached", "redis", "nginx"}
	// kvApps take a key-value workload; externalApps are unmodified
	// programs, which run on the stacks with capability stacks.Preload only.
	kvApps       = []string{"memcached", "redis"}
	externalApps = []string{"memcached", "redis", "nginx"}
	protocols    = []string{"udp", "tcp"}
	schedules    = []string{"poisson", "constant"}
	modes        = []string{"rpc", "connect"}
	orders       = []string{"interleaved", "sequential"}
	pmQoS        = []string{"on", "off"}
	plotKinds    = []string{"latency-vs-load", "cdf", "capacity", "msg-size", "cores", "density"}
)

// Limits on values.
const (
	MaxRate        = 5e6 // requests/s
	MaxRepetitions = 100
	MinSize        = 18 // the generator's header
	MaxUDPSize     = 1472
	MaxTCPSize     = 65536
)

var nameRE = regexp.MustCompile(`^[a-z0-9-]+$`)

// Load reads an experiment file, parses it strictly, fills in the defaults and
// validates it. Problems in the file are returned together as a *SpecError.
func Load(path string) (*Experiment, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parse(path, data, true)
}

// Parse is Load from bytes; file names the source in error messages and is
// stored in Experiment.File, but the name is not checked against it.
func Parse(file string, data []byte) (*Experiment, error) {
	return parse(file, data, false)
}

// parser collects problems while walking the YAML tree.
type parser struct {
	strictyaml.Parser
	nameNode *yaml.Node // the value of "name", for the file-name check
}

func parse(file string, data []byte, checkName bool) (*Experiment, error) {
	p := &parser{}
	e := p.document(data)
	if e != nil {
		e.File = file
		if checkName && e.Name != "" {
			base := filepath.Base(file)
			if ext := filepath.Ext(base); ext == ".yaml" || ext == ".yml" {
				base = strings.TrimSuffix(base, ext)
			}
			if e.Name != base {
				p.Add(p.nameNode, "name", "%q must equal the file's base name %q", e.Name, base)
			}
		}
	}
	if err := p.Err(file); err != nil {
		return nil, err
	}
	return e, nil
}

// document parses the single YAML document in data.
func (p *parser) document(data []byte) *Experiment {
	root := p.Document(data, "empty file: an experiment needs at least name, stacks and workload.rates", "an experiment file")
	if root == nil {
		return nil
	}
	return p.experiment(root)
}

func (p *parser) experiment(root *yaml.Node) *Experiment {
	e := &Experiment{
		Testbed:     "local",
		App:         "echo",
		Repetitions: 1,
		Seed:        1,
		Order:       "interleaved",
		Machine:     Machine{PMQoS: "on"},
		Workload: Workload{
			Protocol:      "udp",
			Mode:          "rpc",
			Connections:   1,
			Size:          64,
			Schedule:      "poisson",
			Duration:      Duration{2 * time.Second},
			Warmup:        Duration{500 * time.Millisecond},
			LateThreshold: Duration{50 * time.Microsecond},
			Interval:      Duration{loadgen.DefaultInterval},
		},
	}
	m, ok := p.Mapping(root, "", topKeys)
	if !ok {
		return e
	}
	if n := m["name"]; n != nil {
		p.nameNode = n
		if s, ok := p.Str(n, "name"); ok {
			switch {
			case s == "":
				p.Add(n, "name", "required: the experiment's name, [a-z0-9-]+")
			case !nameRE.MatchString(s):
				p.Add(n, "name", "%q must match [a-z0-9-]+ (lowercase letters, digits and dashes)", s)
			default:
				e.Name = s
			}
		}
	} else {
		p.Add(root, "", "missing key \"name\" (the experiment's name, [a-z0-9-]+)")
	}
	if n := m["description"]; n != nil {
		e.Description, _ = p.Str(n, "description")
	}
	p.Enum(m["testbed"], "testbed", testbeds, &e.Testbed)
	if n := m["link"]; n != nil {
		if v, ok := p.Str(n, "link"); ok {
			if _, err := emu.ParseLink(v); err != nil {
				p.Add(n, "link", "%v", err)
			} else {
				e.Link = v
			}
		}
	}
	p.Enum(m["app"], "app", apps, &e.App)
	p.Enum(m["order"], "order", orders, &e.Order)

	if n := m["stacks"]; n != nil {
		e.Stacks = p.stacks(n)
	} else {
		p.Add(root, "", "missing key \"stacks\" (a list of stacks; registered: %s)", strings.Join(stacks.Names(), ", "))
	}
	if n := m["workload"]; n != nil {
		p.workload(n, &e.Workload)
		w := e.Workload
		switch {
		case e.App == "synthetic" && w.Service == "":
			p.Add(n, "workload", "app synthetic needs workload.service (e.g. service: exponential:10us)")
		case e.App != "synthetic" && w.Service != "":
			p.Add(n, "workload.service", "only the synthetic app takes a service time (app is %q)", e.App)
		case w.Memcached != nil && w.kvKey != e.App:
			p.Add(n, "workload."+w.kvKey, "only app %s takes a workload.%s (app is %q)", w.kvKey, w.kvKey, e.App)
		case slices.Contains(externalApps, e.App):
			p.externalApp(n, e)
		case e.App == "synthetic" && w.SizeDist != "":
			p.Add(n, "workload.size", "the synthetic app frames its TCP stream by one fixed size: give size a number (or sweep sizes), not a distribution")
		case e.App == "synthetic" && w.Size < loadgen.SyntheticHeaderLen:
			p.Add(n, "workload.size", "%d is too small for synthetic requests (at least %d bytes: header and service time)", w.Size, loadgen.SyntheticHeaderLen)
		}
		for _, s := range e.Stacks {
			f, err := stacks.Lookup(s.Name)
			if err == nil && len(w.Protocols) == 0 && !f.Serves(w.Protocol) {
				p.Add(m["stacks"], "stacks", "stack %q does not serve %s (it serves %s)", s.Name, w.Protocol, strings.Join(f.Protocols, ", "))
			}
		}
		if k := len(w.Instances); k > 0 && w.Instances[k-1] > 1 {
			most := w.Instances[k-1]
			if w.Mode != "rpc" {
				p.Add(m["workload"], "workload.instances", "several application instances need mode rpc")
			}
			if w.Connections < most {
				p.Add(m["workload"], "workload.connections", "%d connections cannot reach %d instances: give at least as many connections as instances", w.Connections, most)
			}
			for _, s := range e.Stacks {
				if err := stacks.Require(s.Name, stacks.MultiInstance); err != nil {
					p.Add(m["stacks"], "stacks", "%d application instances: %v", most, err)
				}
			}
		}
	} else {
		p.Add(root, "", "missing key \"workload\" (a mapping with at least rates: [requests/s, ...])")
	}
	if n := m["repetitions"]; n != nil {
		if v, ok := p.Integer(n, "repetitions"); ok {
			if v < 1 || v > MaxRepetitions {
				p.Add(n, "repetitions", "%s is out of range (1..%d)", n.Value, MaxRepetitions)
			} else {
				e.Repetitions = int(v)
			}
		}
	}
	if n := m["seed"]; n != nil {
		if v, ok := p.Integer(n, "seed"); ok {
			e.Seed = v
		}
	}
	if n := m["slo"]; n != nil {
		if sm, ok := p.Mapping(n, "slo", sloKeys); ok {
			p.duration(sm["p99"], "slo.p99", 0, time.Hour, "0 (none)..1h", &e.SLO.P99)
		}
	}
	if n := m["machine"]; n != nil {
		if mm, ok := p.Mapping(n, "machine", machineKeys); ok {
			p.Enum(mm["pm_qos"], "machine.pm_qos", pmQoS, &e.Machine.PMQoS)
		}
	}
	if n := m["plots"]; n != nil {
		e.Plots = p.plots(n, &e.Workload)
		for i, ps := range e.Plots {
			if ps.Kind == "capacity" && e.SLO.P99.Duration <= 0 {
				p.Add(n, fmt.Sprintf("plots[%d]", i), "a capacity plot needs slo.p99 (the throughput each stack sustains under it)")
			}
		}
	} else {
		e.Plots = []PlotSpec{{Kind: "latency-vs-load"}, defaultCDF(e.Workload, PlotSpec{Kind: "cdf"})}
		if len(e.Workload.Sizes) > 1 {
			e.Plots = append(e.Plots, PlotSpec{Kind: "msg-size"})
		}
		if len(e.Workload.Instances) > 1 && len(e.Workload.Rates) > 0 {
			e.Plots = append(e.Plots, PlotSpec{Kind: "density"})
		}
	}
	return e
}

func (p *parser) stacks(n *yaml.Node) []StackSpec {
	const path = "stacks"
	seq, ok := p.Sequence(n, path)
	if !ok {
		return nil
	}
	if len(seq) == 0 {
		p.Add(n, path, "empty: list at least one stack (registered: %s)", strings.Join(stacks.Names(), ", "))
		return nil
	}
	var out []StackSpec
	first := map[string]int{} // name -> line of first use
	for i, item := range seq {
		ipath := fmt.Sprintf("%s[%d]", path, i)
		var nameNode, optNode *yaml.Node
		if item.Kind == yaml.ScalarNode {
			nameNode = item // shorthand: "- kernel"
		} else {
			m, ok := p.Mapping(item, ipath, stackKeys)
			if !ok {
				continue
			}
			nameNode, optNode = m["name"], m["options"]
			if nameNode == nil {
				p.Add(item, ipath, "missing key \"name\" (registered: %s)", strings.Join(stacks.Names(), ", "))
				continue
			}
		}
		// The literal text, not the YAML value: a stack is called "null",
		// which YAML would read as nothing.
		name, ok := p.Str(nameNode, ipath+".name")
		if !ok {
			continue
		}
		name = nameNode.Value
		if name == "" {
			p.Add(nameNode, ipath+".name", "required (registered: %s)", strings.Join(stacks.Names(), ", "))
			continue
		}
		if _, err := stacks.Lookup(name); err != nil {
			p.AddErr(nameNode, ipath+".name", err)
			continue
		}
		if l, dup := first[name]; dup {
			p.Add(nameNode, ipath+".name", "stack %q is already listed at line %d (names must be unique)", name, l)
			continue
		}
		first[name] = nameNode.Line
		if optNode != nil && optNode.Kind == yaml.ScalarNode && optNode.ShortTag() == "!!null" {
			optNode = nil // "options:" with nothing after it
		}
		opts, err := stacks.DecodeOptions(name, optNode)
		if err != nil {
			p.AddErr(optNode, ipath+".options", err)
			continue
		}
		out = append(out, StackSpec{Name: name, Options: opts, Line: item.Line})
	}
	return out
}

func (p *parser) plots(n *yaml.Node, w *Workload) []PlotSpec {
	rates := w.Rates
	const path = "plots"
	seq, ok := p.Sequence(n, path)
	if !ok {
		return nil
	}
	out := []PlotSpec{}
	for i, item := range seq {
		ipath := fmt.Sprintf("%s[%d]", path, i)
		m, ok := p.Mapping(item, ipath, plotKeys)
		if !ok {
			continue
		}
		var ps PlotSpec
		kn := m["kind"]
		if kn == nil {
			p.Add(item, ipath, "missing key \"kind\" (allowed: %s)", strings.Join(plotKinds, ", "))
			continue
		}
		if !p.Enum(kn, ipath+".kind", plotKinds, &ps.Kind) {
			continue
		}
		if rn := m["rate"]; rn != nil {
			v, ok := p.Number(rn, ipath+".rate")
			if !ok {
				continue
			}
			switch {
			case ps.Kind != "cdf" && ps.Kind != "density":
				p.Add(rn, ipath+".rate", "only a cdf or density plot takes a rate (this plot is %q)", ps.Kind)
				continue
			case v == 0:
			case rates != nil && !slices.Contains(rates, v):
				p.Add(rn, ipath+".rate", "%s is not one of workload.rates (allowed: %s, or 0 for the lowest)", rn.Value, formatRates(rates))
				continue
			}
			ps.Rate = v
		}
		if !p.plotSelector(m["window"], ipath+".window", ps.Kind, "window", w.Windows, &ps.Window) ||
			!p.plotSelector(m["size"], ipath+".size", ps.Kind, "size", w.Sizes, &ps.Size) {
			continue
		}
		if ps.Kind == "density" && (len(w.Instances) < 2 || len(w.Rates) == 0) {
			p.Add(kn, ipath+".kind", "a density plot draws a sweep of application instances at a rate: it needs workload.instances with at least two counts, and rates")
			continue
		}
		if ps.Kind == "msg-size" && len(w.Sizes) < 2 {
			p.Add(kn, ipath+".kind", "a msg-size plot draws a sweep of sizes: it needs workload.sizes with at least two sizes")
			continue
		}
		if ps.Kind == "cdf" {
			ps = defaultCDF(*w, ps)
		}
		out = append(out, ps)
	}
	return out
}

// plotSelector reads a cdf's window or size: one of the workload's list, or
// 0 for the smallest.
func (p *parser) plotSelector(n *yaml.Node, path, kind, what string, allowed []int, dst *int) bool {
	if n == nil {
		return true
	}
	v, ok := p.Integer(n, path)
	switch {
	case !ok:
		return false
	case kind != "cdf":
		p.Add(n, path, "only a cdf plot takes a %s (this plot is %q)", what, kind)
		return false
	case v != 0 && !slices.Contains(allowed, int(v)):
		p.Add(n, path, "%s is not one of workload.%ss (allowed: %v, or 0 for the smallest)", n.Value, what, allowed)
		return false
	}
	*dst = int(v)
	return true
}

// defaultCDF fills a cdf's unset selectors with the workload's first level.
func defaultCDF(w Workload, ps PlotSpec) PlotSpec {
	if len(w.Windows) > 0 {
		ps.Rate = 0
		if ps.Window == 0 {
			ps.Window = w.Windows[0]
		}
	} else if ps.Rate == 0 {
		ps.Rate = lowest(w.Rates)
	}
	if len(w.Sizes) > 0 && ps.Size == 0 {
		ps.Size = w.Sizes[0]
	}
	return ps
}

func formatRates(rates []float64) string {
	s := make([]string, len(rates))
	for i, r := range rates {
		s[i] = strconv.FormatFloat(r, 'f', -1, 64)
	}
	return strings.Join(s, ", ")
}

// duration sets *dst from n when n is a duration within [lo, hi]; nil n keeps
// the default.
func (p *parser) duration(n *yaml.Node, path string, lo, hi time.Duration, allowed string, dst *Duration) {
	if n == nil {
		return
	}
	var d Duration
	if err := d.UnmarshalYAML(n); err != nil {
		p.AddErr(n, path, err)
		return
	}
	if d.Duration < lo || d.Duration > hi {
		p.Add(n, path, "%s is out of range (%s)", n.Value, allowed)
		return
	}
	*dst = d
}
