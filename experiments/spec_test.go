package experiments

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/joyride-bench/joyride/loadgen"
	"github.com/joyride-bench/joyride/stacks"
	_ "github.com/joyride-bench/joyride/stacks/all" // every registered stack, as jrbench sees them
	"github.com/joyride-bench/joyride/stacks/kernel"
	"github.com/joyride-bench/joyride/stacks/null"
)

func specError(t *testing.T, err error) *SpecError {
	t.Helper()
	var se *SpecError
	if !errors.As(err, &se) {
		t.Fatalf("got error %v (%T), want a *SpecError", err, err)
	}
	return se
}

// hasProblem reports whether se holds a problem at line with path whose
// message contains msg.
func hasProblem(se *SpecError, line int, path, msg string) bool {
	for _, p := range se.Problems {
		if p.Line == line && p.Path == path && strings.Contains(p.Msg, msg) {
			return true
		}
	}
	return false
}

func TestLoadRPCLatency(t *testing.T) {
	e, err := Load("rpc-latency.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if e.Name != "rpc-latency" || e.File != "rpc-latency.yaml" || e.Testbed != "local" || e.App != "echo" {
		t.Errorf("name/file/testbed/app = %q %q %q %q", e.Name, e.File, e.Testbed, e.App)
	}
	if len(e.Stacks) != 4 || e.Stacks[0].Name != "kernel" || e.Stacks[1].Name != "null" || e.Stacks[2].Name != "joyride" || e.Stacks[3].Name != "afxdp" {
		t.Fatalf("stacks = %+v", e.Stacks)
	}
	for _, s := range e.Stacks {
		if s.Options == nil || s.Line == 0 {
			t.Errorf("stack %s: options %v, line %d", s.Name, s.Options, s.Line)
		}
	}
	if o, ok := e.Stacks[1].Options.(*null.Options); !ok || o.Driver != "af_xdp" {
		t.Errorf("null options = %#v", e.Stacks[1].Options)
	}
	w := e.Workload
	wantRates := []float64{10000, 50000, 100000, 200000, 300000, 400000, 500000, 600000}
	if w.Protocol != "udp" || !slices.Equal(w.Protocols, []string{"udp", "tcp"}) || w.Connections != 16 || w.Size != 64 ||
		w.Schedule != "poisson" || !slices.Equal(w.Rates, wantRates) {
		t.Errorf("workload = %+v", w)
	}
	if w.Duration.Duration != 2*time.Second || w.Warmup.Duration != 500*time.Millisecond || w.LateThreshold.Duration != 50*time.Microsecond ||
		w.Interval.Duration != 50*time.Millisecond {
		t.Errorf("durations = %v %v %v %v", w.Duration, w.Warmup, w.LateThreshold, w.Interval)
	}
	if e.Repetitions != 2 || e.Seed != 1 || e.Order != "interleaved" || e.SLO.P99.Duration != 500*time.Microsecond || e.Machine.PMQoS != "on" {
		t.Errorf("reps %d seed %d order %q slo %v pm_qos %q", e.Repetitions, e.Seed, e.Order, e.SLO.P99, e.Machine.PMQoS)
	}
	wantPlots := []PlotSpec{{Kind: "latency-vs-load"}, {Kind: "cdf", Rate: 10000}, {Kind: "capacity"}, {Kind: "cores"}}
	if !slices.Equal(e.Plots, wantPlots) {
		t.Errorf("plots = %+v, want %+v", e.Plots, wantPlots)
	}
	// UDP on the four stacks, TCP on the three that serve it (null does not).
	pts := e.Points()
	if n := len(pts); n != 4*8*2+3*8*2 {
		t.Errorf("%d points, want 112", n)
	}
	for _, p := range pts {
		if p.Stack.Name == "null" && p.Protocol == "tcp" {
			t.Fatalf("null scheduled over tcp: %+v", p)
		}
	}
}

func TestProtocolList(t *testing.T) {
	e, err := Parse("x.yaml", []byte("name: x\nstacks: [kernel, \"null\"]\nworkload: {protocol: [tcp, udp], connections: 4, rates: [1000]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Workload.ProtocolText(); got != "tcp+udp" || e.Workload.Protocol != "udp" {
		t.Fatalf("protocols %q, protocol %q", got, e.Workload.Protocol)
	}
	var kinds []string
	for _, p := range e.Points() {
		kinds = append(kinds, p.Stack.Name+"/"+e.Workload.ProtocolOf(p.Level))
	}
	slices.Sort(kinds)
	if !slices.Equal(kinds, []string{"kernel/tcp", "kernel/udp", "null/udp"}) {
		t.Fatalf("points %v", kinds)
	}
	expectProblems(t, "name: x\n", []problemCase{
		{"stacks: [\"null\"]\nworkload: {protocol: tcp, rates: [1]}", "stacks", "does not serve tcp"},
		{"stacks: [kernel]\nworkload: {protocol: [udp, udp], rates: [1]}", "workload.protocol[1]", "listed twice"},
		{"stacks: [kernel]\nworkload: {protocol: [udp, sctp], rates: [1]}", "workload.protocol[1]", "not allowed"},
		{"stacks: [kernel]\nworkload: {protocol: [udp, tcp], windows: [1]}", "workload.windows", "needs protocol: tcp"},
		{"stacks: [kernel]\nworkload: {protocol: [udp, tcp], size: 2000, rates: [1]}", "workload.size", "out of range for udp"},
	})
}

func TestLoadSmoke(t *testing.T) {
	e, err := Load("smoke.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range e.Stacks {
		names = append(names, s.Name)
	}
	// Every registered stack is in the smoke test.
	slices.Sort(names)
	if !slices.Equal(names, stacks.Names()) {
		t.Errorf("smoke stacks = %v, registered %v", names, stacks.Names())
	}
	w := e.Workload
	if !slices.Equal(w.Rates, []float64{5000, 20000}) || w.Duration.Duration != time.Second || w.Warmup.Duration != 200*time.Millisecond || e.Repetitions != 1 {
		t.Errorf("smoke = %+v", e)
	}
}

func TestBadFiles(t *testing.T) {
	for _, tc := range []struct {
		file string
		line int
		path string
		msg  string
	}{
		{"unknown-key.yaml", 3, "", `unknown key "stackz" (allowed: name, description, testbed, link, stacks, app, workload, repetitions, seed, order, slo, machine, plots)`},
		{"wrong-type.yaml", 6, "workload.size", `size "abc": want a byte count in 1..65536 or a distribution`},
		{"wrong-type.yaml", 7, "workload.duration", `expected a duration with a unit such as "2s", "500ms" or "50us", got 2`},
		{"negative-rate.yaml", 7, "workload.rates[2]", `-5 is not a positive rate (requests/s > 0)`},
		{"unknown-stack.yaml", 4, "stacks[1].name", `unknown stack "foo" (registered: `},
		{"unknown-option.yaml", 6, "stacks[1].options", `unknown option "drvier" for stack "null" (allowed: `},
		{"many-problems.yaml", 1, "name", `"not-the-file-name" must equal the file's base name "many-problems"`},
		{"many-problems.yaml", 2, "testbed", `"cloudlab" is not allowed (allowed: local)`},
		{"many-problems.yaml", 5, "stacks[1].name", `stack "kernel" is already listed at line 4`},
		{"many-problems.yaml", 7, "workload.size", `2000 is out of range for udp (18..1472 bytes`},
		{"many-problems.yaml", 9, "workload.warmup", `90s is out of range (0s..60s)`},
		{"many-problems.yaml", 10, "workload.late_threshold", `0s is out of range (> 0`},
		{"many-problems.yaml", 11, "repetitions", `0 is out of range (1..100)`},
		{"many-problems.yaml", 12, "order", `"random" is not allowed (allowed: interleaved, sequential)`},
		{"many-problems.yaml", 15, "plots[0].rate", `7 is not one of workload.rates (allowed: 1000, 2000, or 0 for the lowest)`},
		{"many-problems.yaml", 16, "plots[1].kind", `"histogram" is not allowed (allowed: latency-vs-load, cdf, capacity, msg-size, cores, density)`},
	} {
		path := filepath.Join("testdata", tc.file)
		_, err := Load(path)
		if err == nil {
			t.Errorf("%s: loaded, want an error", tc.file)
			continue
		}
		se := specError(t, err)
		if se.File != path {
			t.Errorf("%s: SpecError.File = %q", tc.file, se.File)
		}
		if !hasProblem(se, tc.line, tc.path, tc.msg) {
			t.Errorf("%s: no problem at line %d, %s: %s; got:\n%v", tc.file, tc.line, tc.path, tc.msg, err)
		}
		// Each problem is a line of Error(), naming file and line.
		want := fmt.Sprintf("%s:%d: ", path, tc.line)
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: Error() lacks %q:\n%v", tc.file, want, err)
		}
	}
}

// The single-problem files have exactly one problem; many-problems has all of them.
func TestBadFilesProblemCounts(t *testing.T) {
	for file, want := range map[string]int{
		"unknown-key.yaml": 1, "wrong-type.yaml": 2, "negative-rate.yaml": 1,
		"unknown-stack.yaml": 1, "unknown-option.yaml": 1, "many-problems.yaml": 10,
	} {
		_, err := Load(filepath.Join("testdata", file))
		if se := specError(t, err); len(se.Problems) != want {
			t.Errorf("%s: %d problems, want %d:\n%v", file, len(se.Problems), want, err)
		}
	}
}

func TestSpecErrorFormat(t *testing.T) {
	_, err := Parse("experiments/bad.yaml", []byte(`name: bad
stacks: [kernel]
stackz: 1
workload:
  rates: [1000, 2000, -5]
`))
	want := `experiments/bad.yaml:3: unknown key "stackz" (allowed: name, description, testbed, link, stacks, app, workload, repetitions, seed, order, slo, machine, plots)
experiments/bad.yaml:5: workload.rates[2]: -5 is not a positive rate (requests/s > 0)`
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}

const minimal = "name: min\nstacks: [kernel]\nworkload:\n  rates: [1000]\n"

func TestDefaults(t *testing.T) {
	e, err := Parse("min.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	w := e.Workload
	if e.Testbed != "local" || e.App != "echo" || e.Repetitions != 1 || e.Seed != 1 || e.Order != "interleaved" ||
		e.Machine.PMQoS != "on" || e.SLO.P99.Duration != 0 || e.File != "min.yaml" {
		t.Errorf("defaults: %+v", e)
	}
	if w.Protocol != "udp" || w.Size != 64 || w.Schedule != "poisson" || w.Duration.Duration != 2*time.Second ||
		w.Warmup.Duration != 500*time.Millisecond || w.LateThreshold.Duration != 50*time.Microsecond ||
		w.Interval.Duration != loadgen.DefaultInterval {
		t.Errorf("workload defaults: %+v", w)
	}
	// A chosen interval, at either end of its range.
	for _, iv := range []time.Duration{10 * time.Millisecond, 25 * time.Millisecond, time.Second} {
		e, err := Parse("iv.yaml", []byte(minimal+"  interval: "+iv.String()+"\n"))
		if err != nil || e.Workload.Interval.Duration != iv {
			t.Errorf("interval %v: %v, %v", iv, err, e.Workload.Interval)
		}
	}
	if want := []PlotSpec{{Kind: "latency-vs-load"}, {Kind: "cdf", Rate: 1000}}; !slices.Equal(e.Plots, want) {
		t.Errorf("plots = %+v, want %+v", e.Plots, want)
	}
	if _, ok := e.Stacks[0].Options.(*kernel.Options); !ok {
		t.Errorf("kernel options = %#v", e.Stacks[0].Options)
	}
}

func TestParseAccepts(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		check      func(*Experiment) bool
	}{
		{"null stack name unquoted", "name: x\nstacks:\n  - null\n  - name: kernel\nworkload: {rates: [1]}\n",
			func(e *Experiment) bool { return e.Stacks[0].Name == "null" && e.Stacks[1].Name == "kernel" }},
		{"empty options", "name: x\nstacks:\n  - name: null\n    options:\nworkload: {rates: [1]}\n",
			func(e *Experiment) bool { return e.Stacks[0].Options != nil }},
		{"float rates", "name: x\nstacks: [kernel]\nworkload: {rates: [1.5, 2e3, 5e6]}\n",
			func(e *Experiment) bool { return slices.Equal(e.Workload.Rates, []float64{1.5, 2000, 5e6}) }},
		{"tcp size", "name: x\nstacks: [kernel]\nworkload: {protocol: tcp, size: 4096, rates: [1]}\n",
			func(e *Experiment) bool { return e.Workload.Size == 4096 }},
		{"no plots", "name: x\nstacks: [kernel]\nworkload: {rates: [1]}\nplots: []\n",
			func(e *Experiment) bool { return e.Plots != nil && len(e.Plots) == 0 }},
		{"cdf rate 0 is lowest", "name: x\nstacks: [kernel]\nworkload: {rates: [3, 4]}\nplots: [{kind: cdf, rate: 0}]\n",
			func(e *Experiment) bool { return e.Plots[0].Rate == 3 }},
		{"zero warmup and seed", "name: x\nstacks: [kernel]\nworkload: {rates: [1], warmup: 0s}\nseed: 0\n",
			func(e *Experiment) bool { return e.Workload.Warmup.Duration == 0 && e.Seed == 0 }},
		{"alias", "name: x\nstacks: [kernel]\nworkload: {rates: &r [1, 2]}\nplots: [{kind: cdf, rate: 2}]\n",
			func(e *Experiment) bool { return e.Plots[0].Rate == 2 }},
		{"pm_qos off and sequential", "name: x\nstacks: [kernel]\nworkload: {rates: [1]}\nmachine: {pm_qos: off}\norder: sequential\n",
			func(e *Experiment) bool { return e.Machine.PMQoS == "off" && e.Order == "sequential" }},
	} {
		e, err := Parse(tc.name, []byte(tc.yaml))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !tc.check(e) {
			t.Errorf("%s: unexpected result %+v", tc.name, e)
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want string // a line of Error()
	}{
		{"", `x.yaml: empty file`},
		{"# only a comment\n", `x.yaml: empty file`},
		{"name: [\n", `x.yaml:1: invalid YAML: did not find expected node content`},
		{"- a\n", `x.yaml:1: expected a mapping (keys: name, description`},
		{minimal + "---\nname: y\n", `x.yaml:5: a second YAML document`},
		{"stacks: [kernel]\nworkload: {rates: [1]}\n", `x.yaml:1: missing key "name"`},
		{"name: x\nworkload: {rates: [1]}\n", `x.yaml:1: missing key "stacks" (a list of stacks; registered: `},
		{"name: x\nstacks: [kernel]\n", `x.yaml:1: missing key "workload"`},
		{"name: x\nstacks: [kernel]\nworkload: {size: 64}\n", `x.yaml:3: workload: missing key "rates"`},
		{"name: Rpc_Latency\nstacks: [kernel]\nworkload: {rates: [1]}\n", `x.yaml:1: name: "Rpc_Latency" must match [a-z0-9-]+`},
		{"name: x\nname: y\nstacks: [kernel]\nworkload: {rates: [1]}\n", `x.yaml:2: duplicate key "name" (first given at line 1)`},
		{"name: x\nstacks: []\nworkload: {rates: [1]}\n", `x.yaml:2: stacks: empty: list at least one stack`},
		{"name: x\nstacks: kernel\nworkload: {rates: [1]}\n", `x.yaml:2: stacks: expected a list, got "kernel"`},
		{"name: x\nstacks:\n  - {name: kernel, opts: {}}\nworkload: {rates: [1]}\n", `x.yaml:3: stacks[0]: unknown key "opts" (allowed: name, options)`},
		{"name: x\nstacks:\n  - options: {}\nworkload: {rates: [1]}\n", `x.yaml:3: stacks[0]: missing key "name"`},
		{"name: x\nstacks:\n  - name: null\n    options: af_xdp\nworkload: {rates: [1]}\n", `x.yaml:4: stacks[0].options: options of stack "null" must be a mapping`},
		{"name: x\nstacks:\n  - name: null\n    options:\n      driver: dpdk\nworkload: {rates: [1]}\n", `x.yaml:5: stacks[0].options: options of stack "null": driver "dpdk" is not allowed`},
		{"name: x\nstacks:\n  - name: kernel\n    options:\n      busy_poll_us: maybe\nworkload: {rates: [1]}\n", `x.yaml:5: stacks[0].options: options of stack "kernel": cannot unmarshal`},
		{"name: x\nstacks: [kernel]\nworkload: {rates: 1000}\n", `x.yaml:3: workload.rates: expected a list, got 1000`},
		{"name: x\nstacks: [kernel]\nworkload: {rates: []}\n", `x.yaml:3: workload.rates: empty`},
		{"name: x\nstacks: [kernel]\nworkload: {rates: [\"1000\"]}\n", `x.yaml:3: workload.rates[0]: expected a number, got "1000"`},
		{"name: x\nstacks: [kernel]\nworkload: {rates: [0]}\n", `x.yaml:3: workload.rates[0]: 0 is not a positive rate`},
		{"name: x\nstacks: [kernel]\nworkload: {rates: [.nan]}\n", `x.yaml:3: workload.rates[0]: .nan is not a positive rate`},
		{"name: x\nstacks: [kernel]\nworkload: {rates: [6e6]}\n", `x.yaml:3: workload.rates[0]: 6e6 is above the maximum rate (requests/s <= 5e+06)`},
		{"name: x\nstacks: [kernel]\nworkload:\n  rates:\n    - 2000\n    - 1000\n", `x.yaml:6: workload.rates[1]: 1000 is not above the previous rate 2000 (rates must be strictly increasing)`},
		{"name: x\nstacks: [kernel]\nworkload: {rates: [1, 1]}\n", `x.yaml:3: workload.rates[1]: 1 is not above the previous rate 1`},
		{"name: x\nstacks: [kernel]\nworkload: {rates: [1], protocol: quic}\n", `x.yaml:3: workload.protocol: "quic" is not allowed (allowed: udp, tcp)`},
		{"name: x\nstacks: [kernel]\nworkload: {rates: [1], schedule: bursty}\n", `x.yaml:3: workload.schedule: "bursty" is not allowed (allowed: poisson, constant, bursty:ON,OFF`},
		{"name: x\nstacks: [kernel]\nworkload: {rates: [1], size: 10}\n", `x.yaml:3: workload.size: 10 is out of range for udp (18..1472 bytes`},
		{"name: x\nstacks: [kernel]\nworkload: {rates: [1], size: 1.5}\n", `x.yaml:3: workload.size: expected an integer, got 1.5`},
		{"name: x\nstacks: [kernel]\nworkload: {rates: [1], duration: 50ms}\n", `x.yaml:3: workload.duration: 50ms is out of range (100ms..600s)`},
		{"name: x\nstacks: [kernel]\nworkload: {rates: [1], duration: 2 s}\n", `x.yaml:3: workload.duration: expected a duration with a unit such as "2s", "500ms" or "50us", got "2 s"`},
		{"name: x\nstacks: [kernel]\nworkload: {rates: [1], warmup: -1s}\n", `x.yaml:3: workload.warmup: -1s is out of range (0s..60s)`},
		{"name: x\nstacks: [kernel]\nworkload: {rates: [1], speed: 9}\n", `x.yaml:3: workload: unknown key "speed" (allowed: mode, protocol, connections, service, memcached, redis, size, sizes, instances, schedule, rates, windows, duration, warmup, late_threshold, interval)`},
		{"name: x\nstacks: [kernel]\nworkload: {rates: [1], interval: 5ms}\n", `x.yaml:3: workload.interval: 5ms is out of range (10ms..1s in whole milliseconds)`},
		{"name: x\nstacks: [kernel]\nworkload: {rates: [1], interval: 2s}\n", `x.yaml:3: workload.interval: 2s is out of range (10ms..1s in whole milliseconds)`},
		{"name: x\nstacks: [kernel]\nworkload: {rates: [1], interval: 12.5ms}\n", `x.yaml:3: workload.interval: 12.5ms is not a whole number of milliseconds (10ms..1s in whole milliseconds;`},
		{"name: x\nstacks: [kernel]\nworkload: {rates: [1], interval: 50}\n", `x.yaml:3: workload.interval: expected a duration with a unit`},
		{"name: x\nstacks: [kernel]\nworkload: [1]\n", `x.yaml:3: workload: expected a mapping (keys: mode, protocol, connections, service, memcached, redis, size`},
		{"name: x\nstacks: [kernel]\nworkload: {rates: [1]}\ntestbed: cloudlab\n", `x.yaml:4: testbed: "cloudlab" is not allowed (allowed: local)`},
		{"name: x\nstacks: [kernel]\nworkload: {rates: [1]}\napp: postgres\n", `x.yaml:4: app: "postgres" is not allowed (allowed: echo, synthetic, memcached, redis, nginx)`},
		{"name: x\nstacks: [kernel]\nworkload: {rates: [1]}\nrepetitions: 101\n", `x.yaml:4: repetitions: 101 is out of range (1..100)`},
		{"name: x\nstacks: [kernel]\nworkload: {rates: [1]}\nrepetitions: three\n", `x.yaml:4: repetitions: expected an integer, got "three"`},
		{"name: x\nstacks: [kernel]\nworkload: {rates: [1]}\nseed: 1.5\n", `x.yaml:4: seed: expected an integer, got 1.5`},
		{"name: x\nstacks: [kernel]\nworkload: {rates: [1]}\nslo: {p99: 500}\n", `x.yaml:4: slo.p99: expected a duration with a unit`},
		{"name: x\nstacks: [kernel]\nworkload: {rates: [1]}\nslo: {p50: 1ms}\n", `x.yaml:4: slo: unknown key "p50" (allowed: p99)`},
		{"name: x\nstacks: [kernel]\nworkload: {rates: [1]}\nmachine: {pm_qos: maybe}\n", `x.yaml:4: machine.pm_qos: "maybe" is not allowed (allowed: on, off)`},
		{"name: x\nstacks: [kernel]\nworkload: {rates: [1]}\nmachine: {governor: performance}\n", `x.yaml:4: machine: unknown key "governor" (allowed: pm_qos)`},
		{"name: x\nstacks: [kernel]\nworkload: {rates: [1]}\nplots: [{rate: 1}]\n", `x.yaml:4: plots[0]: missing key "kind" (allowed: latency-vs-load, cdf, capacity, msg-size, cores, density)`},
		{"name: x\nstacks: [kernel]\nworkload: {rates: [1]}\nplots: [{kind: latency-vs-load, rate: 1}]\n", `x.yaml:4: plots[0].rate: only a cdf or density plot takes a rate`},
		{"name: x\nstacks: [kernel]\nworkload: {rates: [1]}\nplots: [{kind: cdf, title: a}]\n", `x.yaml:4: plots[0]: unknown key "title" (allowed: kind, rate, window, size)`},
	} {
		_, err := Parse("x.yaml", []byte(tc.yaml))
		if err == nil {
			t.Errorf("%q: parsed, want error %q", tc.yaml, tc.want)
			continue
		}
		specError(t, err)
		found := false
		for _, line := range strings.Split(err.Error(), "\n") {
			if strings.HasPrefix(line, tc.want) {
				found = true
			}
		}
		if !found {
			t.Errorf("%q:\ngot  %v\nwant a line starting %s", tc.yaml, err, tc.want)
		}
	}
}

func TestLoadChecksFileName(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "other.yaml")
	if err := os.WriteFile(path, []byte(minimal), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if se := specError(t, err); !hasProblem(se, 1, "name", `"min" must equal the file's base name "other"`) {
		t.Errorf("got %v", err)
	}
	// Parse does not check the name.
	if _, err := Parse(path, []byte(minimal)); err != nil {
		t.Errorf("Parse: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestDurationYAML(t *testing.T) {
	var v struct {
		D Duration `yaml:"d"`
	}
	if err := yaml.Unmarshal([]byte("d: 250us\n"), &v); err != nil || v.D.Duration != 250*time.Microsecond {
		t.Errorf("250us: %v %v", v.D, err)
	}
	if err := yaml.Unmarshal([]byte("d: 2\n"), &v); err == nil {
		t.Errorf("plain number accepted")
	}
	out, err := yaml.Marshal(v)
	if err != nil || string(out) != "d: 250µs\n" {
		t.Errorf("marshal = %q, %v", out, err)
	}
}

func TestConnectionsNeedTCP(t *testing.T) {
	e, err := Parse("x.yaml", []byte("name: x\nstacks: [kernel]\nworkload: {protocol: tcp, connections: 16, rates: [1000]}\n"))
	if err != nil || e.Workload.Connections != 16 {
		t.Fatalf("tcp with 16 connections: %v %+v", err, e)
	}
	if e, _ := Parse("x.yaml", []byte("name: x\nstacks: [kernel]\nworkload: {rates: [1000]}\n")); e.Workload.Connections != 1 {
		t.Fatalf("default connections %d, want 1", e.Workload.Connections)
	}
	for _, bad := range []string{
		"workload: {connections: 4, rates: [1000]}",                // udp
		"workload: {protocol: tcp, connections: 0, rates: [1000]}", // out of range
		"workload: {protocol: tcp, connections: 20000, rates: [1000]}",
	} {
		if _, err := Parse("x.yaml", []byte("name: x\nstacks: [kernel]\n"+bad+"\n")); err == nil || !strings.Contains(err.Error(), "x.yaml:3: workload.connections") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func TestSyntheticNeedsAServiceTime(t *testing.T) {
	e, err := Parse("x.yaml", []byte("name: x\nstacks: [kernel]\napp: synthetic\nworkload: {service: \"exponential:10us\", rates: [1000]}\n"))
	if err != nil || e.Workload.Service != "exponential:10us" {
		t.Fatalf("%v %+v", err, e)
	}
	for _, bad := range []string{
		"app: synthetic\nworkload: {rates: [1000]}",                                   // no service
		"workload: {service: \"exponential:10us\", rates: [1000]}",                    // echo with a service
		"app: synthetic\nworkload: {service: \"uniform:5us\", rates: [1000]}",         // unknown distribution
		"app: synthetic\nworkload: {service: \"constant:5us\", size: 20, rates: [1]}", // too small
	} {
		if _, err := Parse("x.yaml", []byte("name: x\nstacks: [kernel]\n"+bad+"\n")); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

func TestBurstySchedule(t *testing.T) {
	e, err := Parse("x.yaml", []byte("name: x\nstacks: [kernel]\nworkload: {schedule: \"bursty:1ms,4ms\", rates: [1000]}\n"))
	if err != nil || e.Workload.Schedule != "bursty:1ms,4ms" {
		t.Fatalf("%v %+v", err, e)
	}
	if _, err := Parse("x.yaml", []byte("name: x\nstacks: [kernel]\nworkload: {schedule: \"bursty:1ms\", rates: [1000]}\n")); err == nil {
		t.Fatal("bursty without an OFF period accepted")
	}
}

func TestConnectModeNeedsTCP(t *testing.T) {
	e, err := Parse("x.yaml", []byte("name: x\nstacks: [kernel]\nworkload: {mode: connect, protocol: tcp, rates: [100]}\n"))
	if err != nil || e.Workload.Mode != "connect" {
		t.Fatalf("%v %+v", err, e)
	}
	if _, err := Parse("x.yaml", []byte("name: x\nstacks: [kernel]\nworkload: {mode: connect, rates: [100]}\n")); err == nil || !strings.Contains(err.Error(), "workload.mode") {
		t.Fatalf("connect over udp: %v", err)
	}
}

func TestCapacityPlotNeedsAnSLO(t *testing.T) {
	if _, err := Parse("x.yaml", []byte("name: x\nstacks: [kernel]\nworkload: {rates: [1000]}\nslo: {p99: 200us}\nplots: [{kind: capacity}]\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := Parse("x.yaml", []byte("name: x\nstacks: [kernel]\nworkload: {rates: [1000]}\nplots: [{kind: capacity}]\n")); err == nil || !strings.Contains(err.Error(), "slo.p99") {
		t.Fatalf("capacity without an SLO: %v", err)
	}
}

func TestClosedLoopWindows(t *testing.T) {
	e, err := Parse("x.yaml", []byte("name: x\nstacks: [kernel, joyride]\nworkload: {protocol: tcp, connections: 4, windows: [1, 4, 16]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(e.Workload.Windows, []int{1, 4, 16}) || e.Workload.Rates != nil {
		t.Fatalf("windows %v rates %v", e.Workload.Windows, e.Workload.Rates)
	}
	if pts := e.Points(); len(pts) != 6 || pts[0].Window == 0 || pts[0].Rate != 0 || pts[0].Size != 64 {
		t.Fatalf("points %+v", pts)
	}
	// The default CDF is of the smallest window.
	if len(e.Plots) != 2 || e.Plots[1].Kind != "cdf" || e.Plots[1].Window != 1 || e.Plots[1].Rate != 0 {
		t.Fatalf("plots %+v", e.Plots)
	}
	expectProblems(t, "name: x\nstacks: [kernel]\n", []problemCase{
		{"workload: {windows: [1]}", "workload.windows", "needs protocol: tcp"},
		{"workload: {protocol: tcp, windows: [1], rates: [1000]}", "workload.windows", "not both"},
		{"workload: {protocol: tcp, windows: [0]}", "workload.windows[0]", "out of range"},
		{"workload: {protocol: tcp, windows: [4, 2]}", "workload.windows[1]", "strictly increasing"},
		{"workload: {protocol: tcp, windows: [1], schedule: constant}", "workload.schedule", "no schedule"},
		{"workload: {protocol: tcp, windows: []}", "workload.windows", "empty"},
		{"workload: {protocol: tcp, mode: connect, windows: [2]}", "workload.mode", "do not apply"},
		{"workload: {protocol: tcp, windows: [2]}\nplots: [{kind: cdf, window: 3}]", "plots[0].window", "not one of"},
		{"workload: {protocol: tcp, rates: [100]}\nplots: [{kind: latency-vs-load, window: 3}]", "plots[0].window", "only a cdf"},
	})
}

func TestSizesSweepAndDistribution(t *testing.T) {
	e, err := Parse("x.yaml", []byte("name: x\nstacks: [kernel]\nworkload: {protocol: tcp, sizes: [64, 1024, 65536], windows: [1, 8]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	levels := e.Workload.Levels()
	if len(levels) != 6 || levels[0] != (Level{Size: 64, Window: 1}) || levels[5] != (Level{Size: 65536, Window: 8}) {
		t.Fatalf("levels %+v", levels)
	}
	// A sweep of sizes draws the msg-size figure by default, and the CDF of
	// the smallest size.
	if len(e.Plots) != 3 || e.Plots[2].Kind != "msg-size" || e.Plots[1].Size != 64 {
		t.Fatalf("plots %+v", e.Plots)
	}
	if got := e.Workload.Describe(levels[3]); got != "window 8, 1024 B" {
		t.Fatalf("describe: %q", got)
	}
	// Seeds depend on the level index: distinct for every level.
	seeds := map[int64]bool{}
	for _, p := range e.Points() {
		seeds[p.Seed] = true
	}
	if len(seeds) != 6 {
		t.Fatalf("%d distinct seeds for 6 points", len(seeds))
	}
	d, err := Parse("x.yaml", []byte("name: x\nstacks: [kernel]\nworkload: {protocol: tcp, size: \"bimodal:64,65536,0.1\", rates: [1000]}\n"))
	if err != nil || d.Workload.SizeDist != "bimodal:64,65536,0.1" || d.Workload.Size != 6611 {
		t.Fatalf("distribution: %v %+v", err, d.Workload)
	}
	expectProblems(t, "name: x\nstacks: [kernel]\n", []problemCase{
		{"workload: {size: \"uniform:64,128\", rates: [1]}", "workload.size", "needs protocol: tcp"},
		{"workload: {protocol: tcp, size: \"pareto:3\", rates: [1]}", "workload.size", "unknown distribution"},
		{"workload: {sizes: [64, 2000], rates: [1]}", "workload.sizes[1]", "out of range for udp"},
		{"workload: {sizes: [64, 64], rates: [1]}", "workload.sizes[1]", "strictly increasing"},
		{"workload: {size: 64, sizes: [64, 128], rates: [1]}", "workload.sizes", "not both"},
		{"workload: {rates: [1]}\nplots: [{kind: msg-size}]", "plots[0].kind", "at least two sizes"},
		{"app: synthetic\nworkload: {protocol: tcp, service: \"constant:1us\", size: \"uniform:64,128\", rates: [1]}", "workload.size", "fixed size"},
	})
}

func TestMemcachedApp(t *testing.T) {
	e, err := Parse("x.yaml", []byte("name: x\nstacks: [kernel]\napp: memcached\nworkload: {protocol: tcp, rates: [1000]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m := e.Workload.Memcached; m == nil || *m != (MemcachedSpec{Keys: 10000, Popularity: "zipf:0.99", GetFraction: 0.9, ValueSize: 64}) {
		t.Fatalf("defaults: %+v", m)
	}
	e, err = Parse("x.yaml", []byte("name: x\nstacks: [kernel]\napp: memcached\nworkload: {protocol: tcp, rates: [1000], memcached: {keys: 5, popularity: uniform, get_fraction: 1, value_size: 4000}}\n"))
	if err != nil || e.Workload.Memcached.Keys != 5 || e.Workload.Size != 4000 {
		t.Fatalf("%v %+v", err, e)
	}
	e, err = Parse("x.yaml", []byte("name: x\nstacks: [kernel, joyride]\napp: redis\nworkload: {protocol: tcp, rates: [1000], redis: {keys: 7, value_size: 100}}\n"))
	if err != nil || e.Workload.Memcached.Keys != 7 || e.Workload.Size != 100 || e.Workload.Memcached.GetFraction != 0.9 {
		t.Fatalf("redis: %v %+v", err, e)
	}
	expectProblems(t, "name: x\n", []problemCase{
		{"stacks: [afxdp]\napp: memcached\nworkload: {protocol: tcp, rates: [1]}", "stacks", `stack "afxdp" lacks capability preload (runs unmodified programs on its sockets): its netstack lives inside a Go application; no shim puts a C program's sockets on it; stacks with it: joyride, kernel`},
		{"stacks: [null]\napp: nginx\nworkload: {protocol: tcp, rates: [1]}", "stacks", `stack "null" lacks capability preload`},
		{"stacks: [kernel]\napp: redis\nworkload: {protocol: tcp, rates: [1], memcached: {keys: 3}}", "workload.memcached", "only app memcached"},
		{"stacks: [kernel]\napp: redis\nworkload: {protocol: tcp, rates: [1], memcached: {keys: 3}, redis: {keys: 3}}", "workload.redis", "not both"},
		{"stacks: [kernel]\napp: nginx\nworkload: {protocol: tcp, rates: [1], size: exponential:100}", "workload.size", "one file"},
		{"stacks: [kernel]\napp: memcached\nworkload: {rates: [1]}", "workload", "needs protocol: tcp"},
		{"stacks: [kernel]\nworkload: {protocol: tcp, rates: [1], memcached: {keys: 3}}", "workload.memcached", "only app memcached"},
		{"stacks: [kernel]\napp: memcached\nworkload: {protocol: tcp, rates: [1], memcached: {popularity: zipf:9}}", "workload.memcached.popularity", "zipf:θ"},
		{"stacks: [kernel]\napp: memcached\nworkload: {protocol: tcp, rates: [1], memcached: {keys: 0}}", "workload.memcached.keys", "out of range"},
		{"stacks: [kernel]\napp: memcached\nworkload: {protocol: tcp, rates: [1], memcached: {get_fraction: 2}}", "workload.memcached.get_fraction", "out of range"},
		{"stacks: [kernel]\napp: memcached\nworkload: {protocol: tcp, rates: [1], memcached: {valuesize: 2}}", "workload.memcached", "unknown key"},
		{"stacks: [kernel]\napp: memcached\nworkload: {protocol: tcp, rates: [1], sizes: [64, 128]}", "workload", "do not apply"},
	})
}

func TestInstances(t *testing.T) {
	e, err := Parse("x.yaml", []byte("name: x\nstacks: [kernel, joyride]\nworkload: {protocol: tcp, connections: 16, instances: [1, 4, 16], rates: [1000, 2000]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	levels := e.Workload.Levels()
	if len(levels) != 6 || levels[0] != (Level{Size: 64, Rate: 1000, Instances: 1}) || levels[5] != (Level{Size: 64, Rate: 2000, Instances: 16}) {
		t.Fatalf("levels %+v", levels)
	}
	if got := e.Workload.Describe(levels[3]); got != "2000 req/s, 4 apps" {
		t.Fatalf("describe: %q", got)
	}
	if !slices.ContainsFunc(e.Plots, func(p PlotSpec) bool { return p.Kind == "density" }) {
		t.Fatalf("no default density plot: %+v", e.Plots)
	}
	expectProblems(t, "name: x\n", []problemCase{
		{"stacks: [kernel]\nworkload: {instances: [1, 2], rates: [1]}", "workload.instances", "needs protocol: tcp"},
		{"stacks: [kernel]\nworkload: {protocol: tcp, connections: 2, instances: [1, 4], rates: [1]}", "workload.connections", "at least as many connections"},
		{"stacks: [afxdp]\nworkload: {protocol: tcp, connections: 4, instances: [1, 4], rates: [1]}", "stacks", "one application per queue"},
		{"stacks: [\"null\"]\nworkload: {protocol: tcp, connections: 4, instances: [2], rates: [1]}", "stacks", "no application instances"},
		{"stacks: [kernel]\nworkload: {protocol: tcp, connections: 4, instances: [100], rates: [1]}", "workload.instances[0]", "out of range"},
		{"stacks: [kernel]\nworkload: {protocol: tcp, rates: [1]}\nplots: [{kind: density}]", "plots[0].kind", "at least two counts"},
	})
}

// problemCase is an experiment file (after a common prefix) and a problem it
// must be refused with: the key path and a part of the message.
type problemCase struct{ yaml, path, msg string }

// expectProblems parses prefix+c.yaml for every case and checks
// that it is refused with a problem at c.path whose message holds c.msg.
func expectProblems(t *testing.T, prefix string, cases []problemCase) {
	t.Helper()
	for _, c := range cases {
		_, err := Parse("x.yaml", []byte(prefix+c.yaml+"\n"))
		if err == nil {
			t.Errorf("%s: accepted", c.yaml)
			continue
		}
		if se := specError(t, err); !slices.ContainsFunc(se.Problems, func(p Problem) bool { return p.Path == c.path && strings.Contains(p.Msg, c.msg) }) {
			t.Errorf("%s: %v, want %s: ...%s...", c.yaml, err, c.path, c.msg)
		}
	}
}

func TestLink(t *testing.T) {
	e, err := Parse("x.yaml", []byte("name: x\nlink: delay=5ms,loss=0.1%\nstacks: [kernel]\nworkload: {rates: [1]}\n"))
	if err != nil || e.Link != "delay=5ms,loss=0.1%" {
		t.Fatalf("%v %+v", err, e)
	}
	expectProblems(t, "name: x\nstacks: [kernel]\nworkload: {rates: [1]}\n", []problemCase{
		{"link: delay=fast", "link", "delay"},
		{"link: warp=9", "link", "warp"},
	})
}

// The af_packet generator cannot carry TCP (the client's kernel resets its
// connections): refused before anything starts, naming the fix.
func TestAFPacketGeneratorRefusesTCP(t *testing.T) {
	e, err := Parse("x.yaml", []byte("name: x\nstacks: [kernel]\nworkload: {protocol: tcp, rates: [1000]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), e, RunOptions{BinDir: t.TempDir(), ResultsDir: t.TempDir(), GenDriver: "af_packet"})
	if err == nil || !strings.Contains(err.Error(), "af_packet carries UDP only") {
		t.Fatalf("af_packet with tcp: %v", err)
	}
}
