package experiments

// The experiment spec's types: what an experiment file holds once parsed,
// defaulted and validated (spec.go), its load levels and its points in run
// order.

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/joyride-bench/joyride/internal/strictyaml"
	"github.com/joyride-bench/joyride/loadgen"
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

// Level is the load level a cdf plot draws.
func (ps PlotSpec) Level(w Workload) Level {
	l := Level{Size: w.Size, Rate: ps.Rate, Window: ps.Window}
	if len(w.Sizes) > 0 {
		l.Size = ps.Size
	}
	return l
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
