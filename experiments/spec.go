package experiments

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
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

// Experiment is one experiment file, parsed, defaulted and validated.
type Experiment struct {
	// Name identifies the experiment (results go to results/<name>/); it is
	// required, matches [a-z0-9-]+, and equals the file's base name without
	// ".yaml" when loaded from a file.
	Name string `yaml:"name" json:"name"`
	// Description is free text for people; optional.
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	// Testbed is where the experiment runs; "local" (the default) is the only
	// testbed accepted for now.
	Testbed string `yaml:"testbed" json:"testbed"`
	// Link, when set, puts an emulated wire between the client and the server
	// (nic/emu's text form, applied in both directions: "delay=5ms,jitter=200us,
	// loss=0.1%,rate=1gbit,queue=64KiB,reorder=0.01,mtu=1500"): the local
	// testbed gets a wire namespace where jremu forwards, on the server's core.
	Link string `yaml:"link,omitempty" json:"link,omitempty"`
	// Stacks are the stacks under test, at least one, names unique.
	Stacks []StackSpec `yaml:"stacks" json:"stacks"`
	// App is the application served on each stack: "echo" (the default),
	// "synthetic" (spins for each request's service time, then echoes), or an
	// unmodified program from Debian, on the kernel's sockets or on Joyride
	// through its preload shim: "memcached" and "redis" (the generator speaks
	// their protocols, gets and sets shaped by Workload.Memcached) and "nginx"
	// (keep-alive GETs of a file of workload.size bytes).
	App string `yaml:"app" json:"app"`
	// Workload is the offered load, the same for every stack.
	Workload Workload `yaml:"workload" json:"workload"`
	// Repetitions is how many times every (stack, rate) point runs; 1..100,
	// default 1.
	Repetitions int `yaml:"repetitions" json:"repetitions"`
	// Seed seeds the request schedules and the order of the points; default 1.
	Seed int64 `yaml:"seed" json:"seed"`
	// Order is how points are ordered: "interleaved" (the default) or
	// "sequential"; see Points.
	Order string `yaml:"order" json:"order"`
	// SLO is the service-level objective drawn on the plots.
	SLO SLO `yaml:"slo" json:"slo"`
	// Machine is how the machine is held still while measuring.
	Machine Machine `yaml:"machine" json:"machine"`
	// Plots are the figures to draw; default latency-vs-load and cdf. An
	// explicit empty list draws none.
	Plots []PlotSpec `yaml:"plots" json:"plots"`
	// File is the path the experiment was loaded from (the name given to Parse).
	File string `yaml:"-" json:"file,omitempty"`
}

// StackSpec is one stack under test: a registered name and its typed options.
//
// In the file a stack is a mapping {name: null, options: {driver: af_xdp}} or,
// without options, just its name.
type StackSpec struct {
	// Name is the registered stack name (see stacks.Names).
	Name string `yaml:"name" json:"name"`
	// Options is the stack's own options struct (a pointer, as returned by
	// stacks.DecodeOptions), holding the defaults for keys the file leaves out;
	// never nil after Load or Parse.
	Options any `yaml:"options,omitempty" json:"options,omitempty"`
	// Line is the line of the stack's entry in the file (0 if not from a file).
	Line int `yaml:"-" json:"-"`
}

// Workload is the load offered to every stack: an open-loop arrival process at
// each of a list of rates.
type Workload struct {
	// Protocol is the transport: "udp" (the default) or "tcp". In the file it
	// may also be a list, [udp, tcp]: every load level then runs over each
	// (Protocols), a stack that does not serve one skipping it, and Protocol
	// is "udp" so that the checks of sizes and of tcp-only keys hold for both.
	Protocol string `yaml:"protocol" json:"protocol"`
	// Protocols is the list when protocol is one; nil for a single protocol.
	Protocols []string `yaml:"-" json:"protocols,omitempty"`
	// Size is the request payload in bytes, default 64: 18..1472 for udp (the
	// generator's header needs 18 bytes; 1472 fills one 1500-byte frame),
	// 18..65536 for tcp.
	Size int `yaml:"size" json:"size"`
	// Schedule is the arrival process: "poisson" (the default), "constant", or
	// "bursty:ON,OFF" (Poisson arrivals during ON periods, none during OFF, at
	// the rate that keeps the offered mean).
	Schedule string `yaml:"schedule" json:"schedule"`
	// SizeDist, set when the file gives size as a distribution such as
	// "exponential:1024" or "bimodal:64,65536,0.1" (tcp only; see
	// loadgen.ParseSize), draws every request's size from it; Size is then its
	// mean.
	SizeDist string `yaml:"-" json:"size_dist,omitempty"`
	// Sizes, instead of size, sweeps the request size: every load level runs
	// at each size (each in size's range, strictly increasing).
	Sizes []int `yaml:"sizes,omitempty" json:"sizes,omitempty"`
	// Rates are the offered loads in requests/s, each in (0, 5e6], strictly
	// increasing; required unless Windows is given.
	Rates []float64 `yaml:"rates" json:"rates"`
	// Windows, instead of rates, makes the load closed-loop (tcp only): each
	// connection keeps W requests outstanding, for each W of the list (each in
	// 1..1024, strictly increasing), and the result is the throughput achieved
	// and the latency from each request's issue.
	Windows []int `yaml:"windows,omitempty" json:"windows,omitempty"`
	// Instances sweeps how many instances of the application serve at once
	// on one stack (density: Junction's and NetKernel's many applications on
	// one service), each on its own port from 9000 up, the connections spread
	// over them; tcp only, each in 1..MaxInstances, strictly increasing.
	// Absent: one.
	Instances []int `yaml:"instances,omitempty" json:"instances,omitempty"`
	// Duration is the measured time of each point, 100ms..600s, default 2s.
	Duration Duration `yaml:"duration" json:"duration"`
	// Warmup runs before Duration and is discarded, 0..60s, default 500ms.
	Warmup Duration `yaml:"warmup" json:"warmup"`
	// LateThreshold: a request sent this much after its scheduled time counts
	// as late; > 0, default 50us.
	LateThreshold Duration `yaml:"late_threshold" json:"late_threshold"`
	// Interval is the span of one histogram of each point's interval log,
	// the time step of the validity checks' series (analysis.CheckPoint):
	// 10ms..1s in whole milliseconds, default 50ms, so that a 2 s point has
	// the 40 intervals the stationarity check needs. A point of more than
	// loadgen.MaxIntervals intervals gets longer ones (loadgen.Config.Intervals).
	Interval Duration `yaml:"interval" json:"interval"`
	// Mode is "rpc" (the default: requests and replies) or "connect" (the
	// generator opens TCP connections at each rate, per second, and records
	// each one's setup time as its latency; needs protocol tcp).
	Mode string `yaml:"mode" json:"mode"`
	// Connections is how many TCP connections the generator spreads the
	// requests over, 1..10000 (default 1); only for tcp.
	Connections int `yaml:"connections" json:"connections"`
	// Service is the distribution of the service time each request asks the
	// synthetic application for, e.g. "exponential:10us", "constant:5us",
	// "bimodal:5us,100us,0.1", "lognormal:10us,1.0"; required with app:
	// synthetic, refused otherwise.
	Service string `yaml:"service,omitempty" json:"service,omitempty"`
	// Memcached shapes the requests of a key-value app, memcached or redis;
	// in the file its key is the app's name (workload.memcached,
	// workload.redis). Defaults filled for those apps, refused for others.
	Memcached *MemcachedSpec `yaml:"memcached,omitempty" json:"memcached,omitempty"`
	kvKey     string         // the file's key of Memcached: memcached or redis
}

// MemcachedSpec is the key-value workload of memcached and redis: gets and sets of keys of a given
// popularity, every key stored before the measurement.
type MemcachedSpec struct {
	// Keys is the key space, 1..1048576, default 10000.
	Keys int `yaml:"keys" json:"keys"`
	// Popularity is "uniform" or "zipf:θ" (default zipf:0.99, the skew of
	// YCSB and of Facebook's ETC trace).
	Popularity string `yaml:"popularity" json:"popularity"`
	// GetFraction is the share of gets, [0, 1], default 0.9.
	GetFraction float64 `yaml:"get_fraction" json:"get_fraction"`
	// ValueSize is the bytes of every value, 1..65536, default 64.
	ValueSize int `yaml:"value_size" json:"value_size"`
}

// Loadgen is the spec as the generator's configuration.
func (m MemcachedSpec) Loadgen() loadgen.MemcachedConfig {
	return loadgen.MemcachedConfig{Keys: m.Keys, Popularity: m.Popularity, GetFraction: m.GetFraction, ValueSize: m.ValueSize}
}

// MaxConnections bounds workload.connections.
const MaxConnections = 10000

// MaxInstances bounds workload.instances.
const MaxInstances = 64

// SLO is a service-level objective.
type SLO struct {
	// P99 is the target 99th-percentile latency; 0 means none.
	P99 Duration `yaml:"p99" json:"p99"`
}

// Machine is how the machine is prepared for measuring.
type Machine struct {
	// PMQoS is "on" (the default: hold a PM QoS request of 0 on
	// /dev/cpu_dma_latency so idle vCPUs do not halt) or "off".
	PMQoS string `yaml:"pm_qos" json:"pm_qos"`
}

// PlotSpec is one figure to draw.
type PlotSpec struct {
	// Kind is "latency-vs-load" (percentiles against offered rate, one line
	// per stack), "cdf" (the latency distribution at one rate), "capacity"
	// (bars: the throughput each stack sustains under slo.p99), "msg-size"
	// (throughput and latency against the request size, for workload.sizes)
	// "cores" (the server's busy cores against the throughput achieved) or
	// "density" (latency and server memory against workload.instances, at
	// Rate or the lowest rate).
	Kind string `yaml:"kind" json:"kind"`
	// Rate is, for a cdf, which offered rate to draw; it must be one of
	// Workload.Rates. 0 in the file means the lowest rate, and Load replaces it
	// with that rate. Not allowed for other kinds.
	Rate float64 `yaml:"rate,omitempty" json:"rate,omitempty"`
	// Window is, for a cdf of a closed loop, which window to draw (one of
	// Workload.Windows; 0 in the file means the smallest).
	Window int `yaml:"window,omitempty" json:"window,omitempty"`
	// Size is, for a cdf of a size sweep, which size to draw (one of
	// Workload.Sizes; 0 in the file means the smallest).
	Size int `yaml:"size,omitempty" json:"size,omitempty"`
}

// Level is one load level of the workload: a request size and either an
// offered rate (open loop) or a window (closed loop).
type Level struct {
	Protocol  string // "" means Workload.Protocol
	Size      int
	Rate      float64
	Window    int
	Instances int // application instances; 0 means one
}

// Levels lists the workload's load levels: for each size of the sweep (or the
// one size), each rate or window, in increasing order.
func (w Workload) Levels() []Level {
	sizes := w.Sizes
	if len(sizes) == 0 {
		sizes = []int{w.Size}
	}
	instances := w.Instances
	if len(instances) == 0 {
		instances = []int{0}
	}
	protocols := w.Protocols
	if len(protocols) == 0 {
		protocols = []string{""}
	}
	var out []Level
	for _, proto := range protocols {
		for _, sz := range sizes {
			for _, n := range instances {
				for _, r := range w.Rates {
					out = append(out, Level{Protocol: proto, Size: sz, Rate: r, Instances: n})
				}
				for _, win := range w.Windows {
					out = append(out, Level{Protocol: proto, Size: sz, Window: win, Instances: n})
				}
			}
		}
	}
	return out
}

// Describe names a level for people: "10000 req/s", "window 4", with the size
// when the workload sweeps sizes.
func (w Workload) Describe(l Level) string {
	s := strconv.FormatFloat(l.Rate, 'f', -1, 64) + " req/s"
	if l.Window > 0 {
		s = fmt.Sprintf("window %d", l.Window)
	}
	if len(w.Sizes) > 0 {
		s += fmt.Sprintf(", %d B", l.Size)
	}
	if len(w.Instances) > 0 {
		s += fmt.Sprintf(", %d apps", max(l.Instances, 1))
	}
	if l.Protocol != "" {
		s = l.Protocol + " " + s
	}
	return s
}

// ProtocolOf is the transport of a level.
func (w Workload) ProtocolOf(l Level) string { return cmp.Or(l.Protocol, w.Protocol) }

// ProtocolText names the workload's transports: "udp", or "udp+tcp".
func (w Workload) ProtocolText() string {
	if len(w.Protocols) > 0 {
		return strings.Join(w.Protocols, "+")
	}
	return w.Protocol
}

// Duration is a time.Duration written in YAML as a string with a unit, such as
// "2s", "500ms" or "50us". Plain numbers are refused: a bare 2 could be seconds
// or nanoseconds.
type Duration struct{ time.Duration }

// MarshalText writes the duration as time.Duration.String does ("2s").
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// UnmarshalText parses a duration with a unit ("500ms").
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("expected a duration with a unit such as \"2s\", \"500ms\" or \"50us\", got %q", b)
	}
	d.Duration = v
	return nil
}

// UnmarshalYAML accepts only string scalars, so that a plain number is an error.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		return fmt.Errorf("line %d: expected a duration with a unit such as \"2s\", \"500ms\" or \"50us\", got %s", n.Line, strictyaml.Describe(n))
	}
	return d.UnmarshalText([]byte(n.Value))
}

// Problem is one thing wrong in an experiment file.
type Problem = strictyaml.Problem

// SpecError lists every problem found in an experiment file, one per line as
// "file:line: path: message".
type SpecError = strictyaml.Error

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
	// programs, which run on the stacks in preloadStacks only (the kernel's
	// own sockets, Joyride's preload shim).
	kvApps        = []string{"memcached", "redis"}
	externalApps  = []string{"memcached", "redis", "nginx"}
	preloadStacks = []string{"kernel", "joyride"}
	protocols     = []string{"udp", "tcp"}
	schedules     = []string{"poisson", "constant"}
	modes         = []string{"rpc", "connect"}
	orders        = []string{"interleaved", "sequential"}
	pmQoS         = []string{"on", "off"}
	plotKinds     = []string{"latency-vs-load", "cdf", "capacity", "msg-size", "cores", "density"}
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
				switch s.Name {
				case "null":
					p.Add(m["stacks"], "stacks", "the null stack reflects frames: it has no application instances to multiply")
				case "afxdp":
					p.Add(m["stacks"], "stacks", "afxdp is a library OS that owns the NIC queue: one application per queue, so no more than 1 instance (the density Joyride's service design allows and a library OS does not)")
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

func lowest(rates []float64) float64 {
	if len(rates) == 0 {
		return 0
	}
	return rates[0]
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

func (p *parser) workload(n *yaml.Node, w *Workload) {
	m, ok := p.Mapping(n, "workload", workloadKeys)
	if !ok {
		return
	}
	if pn := m["protocol"]; pn != nil && pn.Kind == yaml.SequenceNode {
		p.protocolList(pn, w)
	} else {
		p.Enum(pn, "workload.protocol", protocols, &w.Protocol)
	}
	if sn := m["schedule"]; sn != nil {
		// poisson, constant, or bursty:ON,OFF (periods with arrivals, without).
		if v, ok := p.Str(sn, "workload.schedule"); ok {
			if err := loadgen.ValidSchedule(v); err != nil {
				p.Add(sn, "workload.schedule", "%q is not allowed (allowed: %s, bursty:ON,OFF such as bursty:1ms,4ms)", v, strings.Join(schedules, ", "))
			} else {
				w.Schedule = v
			}
		}
	}
	if sn := m["size"]; sn != nil {
		if sn.Kind == yaml.ScalarNode && sn.ShortTag() == "!!str" {
			// A distribution of sizes.
			d, err := loadgen.ParseSize(sn.Value)
			switch {
			case err != nil:
				p.Add(sn, "workload.size", "%v", err)
			case w.Protocol != "tcp":
				p.Add(sn, "workload.size", "a distribution of sizes needs protocol: tcp (a udp request is one frame of one size)")
			case d.Fixed():
				if p.sizeInRange(sn, "workload.size", w.Protocol, d.Mean) {
					w.Size = d.Mean
				}
			default:
				w.SizeDist, w.Size = d.String(), max(d.Mean, MinSize)
			}
		} else if v, ok := p.Integer(sn, "workload.size"); ok && p.sizeInRange(sn, "workload.size", w.Protocol, int(v)) {
			w.Size = int(v)
		}
	}
	if sn := m["sizes"]; sn != nil {
		if m["size"] != nil {
			p.Add(sn, "workload.sizes", "give either size (one size or a distribution) or sizes (a sweep), not both")
		} else {
			w.Sizes = p.intList(sn, "workload.sizes", "size", func(item *yaml.Node, path string, v int64) bool {
				return p.sizeInRange(item, path, w.Protocol, int(v))
			})
			if len(w.Sizes) > 0 {
				w.Size = w.Sizes[0]
			}
		}
	}
	if in := m["instances"]; in != nil {
		w.Instances = p.intList(in, "workload.instances", "instance count", func(item *yaml.Node, path string, v int64) bool {
			if v < 1 || v > MaxInstances {
				p.Add(item, path, "%s is out of range (1..%d application instances)", item.Value, MaxInstances)
				return false
			}
			return true
		})
		if w.Protocol != "tcp" {
			p.Add(in, "workload.instances", "several application instances share the load by connection: it needs protocol: tcp")
		}
	}
	rn, wn := m["rates"], m["windows"]
	switch {
	case rn != nil && wn != nil:
		p.Add(wn, "workload.windows", "give either rates (open loop) or windows (closed loop), not both")
	case wn != nil:
		if w.Protocol != "tcp" {
			p.Add(wn, "workload.windows", "a closed loop keeps requests outstanding on connections: it needs protocol: tcp")
		}
		if sn := m["schedule"]; sn != nil {
			p.Add(sn, "workload.schedule", "a closed loop (windows) has no schedule: each reply sends the next request")
		}
		w.Windows = p.intList(wn, "workload.windows", "window", func(item *yaml.Node, path string, v int64) bool {
			if v < 1 || v > loadgen.MaxWindow {
				p.Add(item, path, "%s is out of range (1..%d requests outstanding per connection)", item.Value, loadgen.MaxWindow)
				return false
			}
			return true
		})
	case rn != nil:
		w.Rates = p.rates(rn)
	default:
		p.Add(n, "workload", "missing key \"rates\" (offered requests/s, a strictly increasing list such as [10000, 50000]; or windows: [1, 4, 16] for a closed loop over tcp)")
	}
	p.duration(m["duration"], "workload.duration", 100*time.Millisecond, 600*time.Second, "100ms..600s", &w.Duration)
	p.duration(m["warmup"], "workload.warmup", 0, 60*time.Second, "0s..60s", &w.Warmup)
	p.duration(m["late_threshold"], "workload.late_threshold", 1, time.Second, "> 0, at most 1s", &w.LateThreshold)
	intervals := fmt.Sprintf("%v..%v in whole milliseconds", loadgen.MinInterval, loadgen.MaxInterval)
	if in := m["interval"]; in != nil {
		var iv Duration
		p.duration(in, "workload.interval", loadgen.MinInterval, loadgen.MaxInterval, intervals, &iv)
		if iv.Duration != 0 && loadgen.CheckInterval(iv.Duration) != nil {
			p.Add(in, "workload.interval", "%s is not a whole number of milliseconds (%s; interval logs stamp intervals to the millisecond)", in.Value, intervals)
		} else if iv.Duration != 0 {
			w.Interval = iv
		}
	}
	p.Enum(m["mode"], "workload.mode", modes, &w.Mode)
	if w.Mode == "connect" && w.Protocol != "tcp" {
		p.Add(m["mode"], "workload.mode", "connect opens TCP connections: it needs protocol: tcp")
	}
	if w.Mode == "connect" && (w.Windows != nil || w.Sizes != nil || w.SizeDist != "") {
		p.Add(m["mode"], "workload.mode", "connect opens connections at rates: windows and sizes do not apply")
	}
	if sn := m["service"]; sn != nil {
		if v, ok := p.Str(sn, "workload.service"); ok {
			if _, err := loadgen.ParseService(v); err != nil {
				p.Add(sn, "workload.service", "%v", err)
			} else {
				w.Service = v
			}
		}
	}
	for _, key := range kvApps {
		if mn := m[key]; mn != nil {
			if w.Memcached != nil {
				p.Add(mn, "workload."+key, "give one key-value workload, workload.%s or workload.%s, not both", kvApps[0], kvApps[1])
				continue
			}
			w.Memcached, w.kvKey = p.memcached(mn, "workload."+key), key
		}
	}
	if cn := m["connections"]; cn != nil {
		if v, ok := p.Integer(cn, "workload.connections"); ok {
			switch {
			case v < 1 || v > MaxConnections:
				p.Add(cn, "workload.connections", "%s is out of range (1..%d)", cn.Value, MaxConnections)
			case w.Protocol != "tcp" && v != 1 && !slices.Contains(w.Protocols, "tcp"):
				p.Add(cn, "workload.connections", "%s connections need protocol: tcp (udp has no connections)", cn.Value)
			default:
				w.Connections = int(v)
			}
		}
	}
}

// protocolList reads protocol: [udp, tcp].
func (p *parser) protocolList(n *yaml.Node, w *Workload) {
	seq, _ := p.Sequence(n, "workload.protocol")
	var list []string
	for i, item := range seq {
		var v string
		path := fmt.Sprintf("workload.protocol[%d]", i)
		if !p.Enum(item, path, protocols, &v) {
			return
		}
		if slices.Contains(list, v) {
			p.Add(item, path, "%q is listed twice", v)
			return
		}
		list = append(list, v)
	}
	switch len(list) {
	case 0:
		p.Add(n, "workload.protocol", "empty: give udp, tcp, or a list of them")
	case 1:
		w.Protocol = list[0]
	default:
		// The checks of sizes and of tcp-only keys run as for udp, which is
		// the stricter.
		w.Protocols, w.Protocol = list, "udp"
	}
}

// externalApp checks an experiment of an unmodified program and fills the
// workload's defaults.
func (p *parser) externalApp(n *yaml.Node, e *Experiment) {
	w := &e.Workload
	kv := slices.Contains(kvApps, e.App)
	if kv && w.Memcached == nil {
		w.Memcached, w.kvKey = &MemcachedSpec{Keys: 10000, Popularity: "zipf:0.99", GetFraction: 0.9, ValueSize: 64}, e.App
	}
	if w.Protocol != "tcp" || w.Mode != "rpc" {
		p.Add(n, "workload", "app %s is served over tcp: it needs protocol: tcp and mode rpc", e.App)
	}
	if kv {
		w.Size = w.Memcached.ValueSize // what summary.csv's size column reports
		if w.Sizes != nil || w.SizeDist != "" {
			p.Add(n, "workload", "app %s sizes its requests by %s.value_size: size and sizes do not apply", e.App, e.App)
		}
	} else if w.SizeDist != "" {
		p.Add(n, "workload.size", "app %s serves one file of workload.size bytes: give a number, not a distribution", e.App)
	}
	for _, s := range e.Stacks {
		if !slices.Contains(preloadStacks, s.Name) {
			p.Add(n, "stacks", "app %s is Debian's unmodified program: it runs on the kernel's sockets or on Joyride through the preload shim (stacks %s), not %q",
				e.App, strings.Join(preloadStacks, ", "), s.Name)
		}
	}
}

// memcached reads a key-value workload at path, defaults filled.
func (p *parser) memcached(n *yaml.Node, path string) *MemcachedSpec {
	ms := &MemcachedSpec{Keys: 10000, Popularity: "zipf:0.99", GetFraction: 0.9, ValueSize: 64}
	m, ok := p.Mapping(n, path, memcachedKeys)
	if !ok {
		return ms
	}
	if kn := m["keys"]; kn != nil {
		if v, ok := p.Integer(kn, path+".keys"); ok {
			if v < 1 || v > loadgen.MaxMemcachedKeys {
				p.Add(kn, path+".keys", "%s is out of range (1..%d)", kn.Value, loadgen.MaxMemcachedKeys)
			} else {
				ms.Keys = int(v)
			}
		}
	}
	if pn := m["popularity"]; pn != nil {
		if v, ok := p.Str(pn, path+".popularity"); ok {
			if _, err := loadgen.ParsePopularity(v); err != nil {
				p.Add(pn, path+".popularity", "%v", err)
			} else {
				ms.Popularity = v
			}
		}
	}
	if gn := m["get_fraction"]; gn != nil {
		if v, ok := p.Number(gn, path+".get_fraction"); ok {
			if !(v >= 0 && v <= 1) {
				p.Add(gn, path+".get_fraction", "%s is out of range (a share of gets in [0, 1])", gn.Value)
			} else {
				ms.GetFraction = v
			}
		}
	}
	if vn := m["value_size"]; vn != nil {
		if v, ok := p.Integer(vn, path+".value_size"); ok {
			if v < 1 || v > loadgen.MaxMemcachedValue {
				p.Add(vn, path+".value_size", "%s is out of range (1..%d bytes)", vn.Value, loadgen.MaxMemcachedValue)
			} else {
				ms.ValueSize = int(v)
			}
		}
	}
	return ms
}

// sizeInRange checks a request size against the protocol's limits.
func (p *parser) sizeInRange(n *yaml.Node, path, protocol string, v int) bool {
	switch {
	case protocol == "tcp" && (v < MinSize || v > MaxTCPSize):
		p.Add(n, path, "%d is out of range for tcp (%d..%d bytes; the generator's header needs %d)", v, MinSize, MaxTCPSize, MinSize)
	case protocol != "tcp" && (v < MinSize || v > MaxUDPSize):
		p.Add(n, path, "%d is out of range for udp (%d..%d bytes: the generator's header needs %d, and one 1500-byte frame holds %d)", v, MinSize, MaxUDPSize, MinSize, MaxUDPSize)
	default:
		return true
	}
	return false
}

// intList reads a non-empty, strictly increasing list of integers, each
// checked by ok (which reports its own problem); nil when any is wrong.
func (p *parser) intList(n *yaml.Node, path, what string, ok func(*yaml.Node, string, int64) bool) []int {
	seq, isSeq := p.Sequence(n, path)
	if !isSeq {
		return nil
	}
	if len(seq) == 0 {
		p.Add(n, path, "empty: list at least one %s", what)
		return nil
	}
	var out []int
	good := true
	for i, item := range seq {
		ipath := fmt.Sprintf("%s[%d]", path, i)
		v, isInt := p.Integer(item, ipath)
		switch {
		case !isInt || !ok(item, ipath, v):
			good = false
		case len(out) > 0 && int(v) <= out[len(out)-1]:
			p.Add(item, ipath, "%s is not above the previous %s %d (the list must be strictly increasing)", item.Value, what, out[len(out)-1])
			good = false
		}
		out = append(out, int(v))
	}
	if !good {
		return nil
	}
	return out
}

func (p *parser) rates(n *yaml.Node) []float64 {
	const path = "workload.rates"
	seq, ok := p.Sequence(n, path)
	if !ok {
		return nil
	}
	if len(seq) == 0 {
		p.Add(n, path, "empty: list at least one offered rate (requests/s)")
		return nil
	}
	var out []float64
	good := true
	prev, prevText := math.Inf(-1), ""
	for i, item := range seq {
		ipath := fmt.Sprintf("%s[%d]", path, i)
		v, ok := p.Number(item, ipath)
		if !ok {
			good = false
			continue
		}
		switch {
		case math.IsNaN(v) || v <= 0:
			p.Add(item, ipath, "%s is not a positive rate (requests/s > 0)", item.Value)
			good = false
		case v > MaxRate:
			p.Add(item, ipath, "%s is above the maximum rate (requests/s <= %g)", item.Value, MaxRate)
			good = false
		case v <= prev:
			p.Add(item, ipath, "%s is not above the previous rate %s (rates must be strictly increasing)", item.Value, prevText)
			good = false
		}
		if !math.IsNaN(v) {
			prev, prevText = v, item.Value
		}
		out = append(out, v)
	}
	if !good {
		return nil
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

// Level is the load level a cdf plot draws.
func (ps PlotSpec) Level(w Workload) Level {
	l := Level{Size: w.Size, Rate: ps.Rate, Window: ps.Window}
	if len(w.Sizes) > 0 {
		l.Size = ps.Size
	}
	return l
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

// Point is one measurement: one stack at one offered rate, in one repetition.
type Point struct {
	// Index is the point's position in the run order, from 0.
	Index int
	// Stack is the stack under test.
	Stack StackSpec
	// Level is the load: size, and rate or window.
	Level
	// Rep is the repetition, from 0.
	Rep int
	// Seed seeds this point's request schedule; it depends only on the
	// experiment's seed and the point's (stack index, rate index, Rep), so a
	// point's schedule is the same whatever the order of the run.
	Seed int64
}

// Points lists every point of the experiment, stacks × rates × repetitions, in
// the order they run.
//
// With order "interleaved" (the default) each repetition runs all its (stack,
// rate) pairs before the next repetition starts. Within a repetition, a
// generator from math/rand/v2 seeded by Seed+rep shuffles each stack's rates,
// then the points are dealt in rounds: each round takes the next rate of every
// stack, the stacks in a shuffled order, the first stack of a round never being
// the last of the round before. Consecutive points therefore always change stack
// (when there are two or more), and every stack meets every part of the run.
// The reason is the machine: a shared or virtual machine drifts (other tenants,
// frequency, thermal state, background work), and running stack by stack would
// hand all of one stack's points one period of that drift, which then reads as a
// difference between stacks. Interleaved in a random order, the drift falls on
// every stack alike and shows up as variance, which repetitions measure, rather
// than as bias.
//
// With order "sequential" the points run stack by stack (in file order), each
// stack's rates ascending, and each (stack, rate) all its repetitions in a row:
// easier to watch, but exposed to drift; use it for debugging.
//
// Each point's Seed is derived from (Seed, stack index, rate index, rep) and is
// distinct from every other point's, so the schedules are reproducible and do
// not depend on the order.
func (e *Experiment) Points() []Point {
	levels := e.Workload.Levels()
	nStacks, nRates, reps := len(e.Stacks), len(levels), max(e.Repetitions, 1)
	if nStacks == 0 || nRates == 0 {
		return nil
	}
	pts := make([]Point, 0, nStacks*nRates*reps)
	add := func(s, r, rep int) {
		if f, err := stacks.Lookup(e.Stacks[s].Name); err == nil && !f.Serves(e.Workload.ProtocolOf(levels[r])) {
			return // a stack that does not serve this level's protocol skips it
		}
		pts = append(pts, Point{
			Index: len(pts),
			Stack: e.Stacks[s],
			Level: levels[r],
			Rep:   rep,
			Seed:  pointSeed(e.Seed, s, r, rep),
		})
	}
	if e.Order == "sequential" {
		for s := range nStacks {
			for r := range nRates {
				for rep := range reps {
					add(s, r, rep)
				}
			}
		}
		return pts
	}
	last := -1 // stack of the previous point
	for rep := range reps {
		rng := rand.New(rand.NewPCG(uint64(e.Seed+int64(rep)), orderStream))
		perm := make([][]int, nStacks) // perm[s][k]: rate index of stack s in round k
		for s := range perm {
			perm[s] = rng.Perm(nRates)
		}
		for k := range nRates {
			round := rng.Perm(nStacks)
			if nStacks > 1 && round[0] == last {
				j := 1 + rng.IntN(nStacks-1)
				round[0], round[j] = round[j], round[0]
			}
			for _, s := range round {
				add(s, perm[s][k], rep)
			}
			last = round[nStacks-1]
		}
	}
	return pts
}

// orderStream is the second PCG seed word of the point order ("joyride\n").
const orderStream = 0x6a6f79726964650a

// pointSeed derives a point's schedule seed. The packed id is distinct for
// distinct (stack < 2^20, rate < 2^28, rep < 2^16); adding it to a mixed seed and
// mixing again (a bijection) keeps the results distinct.
func pointSeed(seed int64, stack, rate, rep int) int64 {
	id := uint64(stack)<<44 | uint64(rate)<<16 | uint64(rep)
	return int64(mix64(mix64(uint64(seed)+0x9e3779b97f4a7c15) + id))
}

// mix64 is the SplitMix64 finalizer, a bijection on uint64.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
