package experiments

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/joyride-bench/joyride/analysis"
	"github.com/joyride-bench/joyride/internal/procstats"
	"github.com/joyride-bench/joyride/loadgen"
	"github.com/joyride-bench/joyride/stacks"
	"github.com/joyride-bench/joyride/testbed/local"
	"github.com/joyride-bench/joyride/testbed/pmqos"
	"github.com/joyride-bench/joyride/testbed/spec"
)

// Placement is which core each role runs on. On the 2-core local testbed the
// generator and the stack under test each get a core of their own, so neither
// time-slices with the other (a busy-polling pair sharing a vCPU measures the
// scheduler, not the network).
type Placement struct {
	Generator int `json:"generator"`
	Server    int `json:"server"`
	// GeneratorExtra are more cores for the generator: with them it runs one
	// engine per core, each on a queue of its own (jrgen -queues, loadgen's
	// RunMulti), on a testbed whose veth has that many queues. UDP echo only,
	// and only the kernel stack serves several queues. On a machine with spare
	// cores this keeps the generator from being the bottleneck; on this
	// 2-core VM an extra engine shares the server's core.
	GeneratorExtra []int `json:"generator_extra,omitempty"`
}

// generatorCPUs lists every core the generator runs on, its main one first.
func (p Placement) generatorCPUs() []int { return append([]int{p.Generator}, p.GeneratorExtra...) }

// checkGeneratorCores refuses extra generator cores where they cannot work.
func checkGeneratorCores(e *Experiment, p Placement) error {
	if len(p.GeneratorExtra) == 0 {
		return nil
	}
	w := e.Workload
	if w.Protocol != "udp" || len(w.Protocols) > 0 || w.Mode != "rpc" || slices.Contains(externalApps, e.App) {
		return fmt.Errorf("%d generator cores: several engines offer UDP requests only (this experiment is %s %s)", len(p.generatorCPUs()), w.ProtocolText(), w.Mode)
	}
	for _, s := range e.Stacks {
		if s.Name != "kernel" {
			return fmt.Errorf("%d generator cores: only the kernel stack serves the veth's several queues, not %q", len(p.generatorCPUs()), s.Name)
		}
	}
	return nil
}

// DefaultPlacement is the local testbed's placement.
var DefaultPlacement = Placement{Generator: 1, Server: 0}

// RunOptions are the runner's settings that are not part of the experiment.
type RunOptions struct {
	// BinDir holds jrgen and jrapp.
	BinDir string
	// ResultsDir is the root of all results (default "results").
	ResultsDir string
	// Order overrides the experiment's point order when not empty.
	Order string
	// Placement of the roles (default DefaultPlacement).
	Placement *Placement
	// GenDriver is the generator's DPDK vdev (default af_xdp).
	GenDriver string
	// Progress receives the live progress line (nil: none).
	Progress io.Writer
	// Log receives one line per finished point (nil: none).
	Log io.Writer
	// SkipCalibration leaves out the calibration probes at the start (for
	// debugging; a run without them has no noise floor).
	SkipCalibration bool
	// Resume, when set, continues the run in this results directory instead
	// of starting a new one: points already measured are kept and skipped.
	Resume string
	// AllowMix lets Resume continue a run made from a different experiment
	// file or commit (otherwise refused: its points would not be comparable).
	AllowMix bool
	// Testbed is where the roles run: nil or the built-in local testbed
	// (spec.Local) creates two namespaces on this machine; a testbed file's
	// SSH nodes run them remotely (remote.go). With a testbed file and no
	// Placement, the roles are pinned to each node's first listed core.
	Testbed *spec.Testbed
}

// RunRecord is what every results file of a run records about it (meta.json,
// peer-check.json): which run, its state, the code and machine, the testbed,
// placement and PM QoS.
type RunRecord struct {
	RunID     string            `json:"run_id"`
	State     string            `json:"state"` // running, complete, interrupted, failed
	Error     string            `json:"error,omitempty"`
	Start     time.Time         `json:"start"`
	End       time.Time         `json:"end,omitempty"`
	Commit    string            `json:"commit"`
	Host      map[string]string `json:"host"`
	Tools     map[string]string `json:"tools"`
	Testbed   *local.Testbed    `json:"testbed,omitempty"`
	Placement Placement         `json:"placement"`
	PMQoS     PMQoSState        `json:"pm_qos"`
	GenDriver string            `json:"generator_driver"`
	// RemoteTestbed is the testbed file of a run over SSH (Testbed is then
	// empty), with what such a run does not measure.
	RemoteTestbed *RemoteTestbed `json:"remote_testbed,omitempty"`
}

// newRunRecord starts the record of a run with this machine's and code's
// identity.
func newRunRecord(pl Placement, genDriver string) RunRecord {
	return RunRecord{RunID: time.Now().UTC().Format("20060102-150405") + "-" + randomHex(2), State: "running",
		Start: time.Now().UTC(), Commit: gitCommit(), Host: hostInfo(), Tools: toolVersions(), Placement: pl, GenDriver: genDriver}
}

// Meta is meta.json: everything needed to know what a run measured and where.
type Meta struct {
	Experiment *Experiment `json:"experiment"`
	// Wire is the emulated wire's final counters (jremu's JSON), when the
	// experiment has a link.
	Wire json.RawMessage `json:"wire,omitempty"`
	RunRecord
	Order  string      `json:"order"`
	Seed   int64       `json:"seed"`
	Points []PointMeta `json:"points"`
	// Calibration is the testbed measured at the start of the run.
	Calibration *Calibration `json:"calibration,omitempty"`
}

// PMQoSState records the PM QoS request of the run.
type PMQoSState struct {
	Requested string `json:"requested"` // "on" or "off"
	Held      bool   `json:"held"`
	ValueUs   int32  `json:"value_us"`
	Error     string `json:"error,omitempty"`
}

// PointMeta is one point as run: its place in the order, what ran, where, and
// how it ended.
type PointMeta struct {
	Index     int             `json:"index"`
	Stack     string          `json:"stack"`
	Rate      float64         `json:"rate"`
	Window    int             `json:"window,omitempty"`
	Size      int             `json:"size,omitempty"`
	Instances int             `json:"instances,omitempty"`
	Rep       int             `json:"rep"`
	Seed      int64           `json:"seed"`
	Placement Placement       `json:"placement"`
	Start     time.Time       `json:"start,omitempty"`
	Seconds   float64         `json:"seconds,omitempty"`
	Status    string          `json:"status"` // pending, ok, failed
	Reason    string          `json:"reason,omitempty"`
	Generator *loadgen.Result `json:"generator,omitempty"`
	ServerLog string          `json:"server_log,omitempty"`
	// Resources are the server-side processes' resources when the load
	// started and when it ended (a leak shows as growth within the point).
	Resources map[string][2]ProcResources `json:"resources,omitempty"`
	// Engine is what the stack's daemon logged about its engine (nil: no
	// daemon, or it said nothing).
	Engine *EngineFacts `json:"engine,omitempty"`
}

// ServerPort is the UDP/TCP port the application listens on.
const ServerPort = 9000

// Run executes every point of e on a fresh local testbed and writes the results
// layout (docs/RESULTS.md) under ResultsDir/<name>/<run-id>/. It returns the run
// directory, which holds whatever was measured even when err is not nil.
func Run(ctx context.Context, e *Experiment, o RunOptions) (string, error) {
	if o.ResultsDir == "" {
		o.ResultsDir = "results"
	}
	remote := o.Testbed != nil && !o.Testbed.Builtin
	if remote {
		if err := checkRemote(e, &o); err != nil {
			return "", err
		}
	}
	if o.Placement == nil {
		p := DefaultPlacement
		o.Placement = &p
	}
	if err := checkGeneratorCores(e, *o.Placement); err != nil {
		return "", err
	}
	if o.GenDriver == "" {
		o.GenDriver = "af_xdp"
	}
	// An af_packet port only taps the interface: the client namespace's
	// kernel sees the server's SYN-ACKs too and answers them with RST, so
	// the generator's TCP connections die. (af_xdp takes the frames away.)
	if o.GenDriver == "af_packet" && (e.Workload.Protocol == "tcp" || slices.Contains(e.Workload.Protocols, "tcp")) {
		return "", fmt.Errorf("generator driver af_packet carries UDP only: the client's kernel resets the generator's TCP connections (use af_xdp, the default)")
	}
	if o.Order != "" {
		if o.Order != "interleaved" && o.Order != "sequential" {
			return "", fmt.Errorf("order %q: allowed interleaved, sequential", o.Order)
		}
		e.Order = o.Order
	}
	for _, b := range []string{"jrgen", "jrapp"} {
		if _, err := os.Stat(filepath.Join(o.BinDir, b)); err != nil {
			return "", fmt.Errorf("binary %s not found in %s (run make build): %w", b, o.BinDir, err)
		}
	}
	var r *runner
	var err error
	if o.Resume != "" {
		if r, err = resumeRunner(e, o); err != nil {
			return o.Resume, err
		}
	} else {
		rec := newRunRecord(*o.Placement, o.GenDriver)
		if remote {
			rec.RemoteTestbed = newRemoteTestbed(o.Testbed)
			rec.GenDriver = rec.RemoteTestbed.GeneratorNIC
		}
		r = &runner{e: e, o: o, dir: filepath.Join(o.ResultsDir, e.Name, rec.RunID)}
		r.meta = Meta{Experiment: e, RunRecord: rec, Order: e.Order, Seed: e.Seed}
		for _, p := range e.Points() {
			r.meta.Points = append(r.meta.Points, PointMeta{Index: p.Index, Stack: p.Stack.Name, Rate: p.Rate,
				Window: p.Window, Size: p.Size, Instances: p.Instances, Rep: p.Rep, Seed: p.Seed, Placement: *o.Placement, Status: "pending"})
		}
	}
	dir := r.dir
	for _, d := range []string{"hist", "plots", "logs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return "", err
		}
	}
	r.meta.State = "running"
	r.meta.Error = ""
	pts := e.Points()
	updateLatest(o.ResultsDir, e.Name, r.meta.RunID)
	err = r.run(ctx, pts)
	r.meta.End = time.Now().UTC()
	switch {
	case err == nil:
		r.meta.State = "complete"
	case ctx.Err() != nil:
		r.meta.State = "interrupted"
		r.meta.Error = err.Error()
	default:
		r.meta.State = "failed"
		r.meta.Error = err.Error()
	}
	if ferr := r.finish(); ferr != nil {
		err = errors.Join(err, ferr)
	}
	return dir, err
}

// resumeRunner reloads an interrupted run from o.Resume: its meta.json and the
// points its summary.csv holds. It refuses a run of another experiment file or
// commit unless o.AllowMix, and a run that is complete.
func resumeRunner(e *Experiment, o RunOptions) (*runner, error) {
	b, err := os.ReadFile(filepath.Join(o.Resume, "meta.json"))
	if err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("resume: %s: %w", filepath.Join(o.Resume, "meta.json"), err)
	}
	if m.State == "complete" {
		return nil, fmt.Errorf("resume: run %s is complete: nothing to resume", o.Resume)
	}
	if !o.AllowMix {
		if fingerprint(m.Experiment) != fingerprint(e) {
			return nil, fmt.Errorf("resume: %s was run from a different experiment than %s: its points would not compare (--allow-mix to resume anyway)", o.Resume, e.File)
		}
		if now := gitCommit(); m.Commit != now {
			return nil, fmt.Errorf("resume: %s was measured at commit %s, this is %s (--allow-mix to resume anyway)", o.Resume, m.Commit, now)
		}
	}
	if len(m.Points) != len(e.Points()) {
		return nil, fmt.Errorf("resume: %s has %d points, the experiment %d", o.Resume, len(m.Points), len(e.Points()))
	}
	r := &runner{e: e, o: o, dir: o.Resume, meta: m}
	r.meta.Experiment = e
	if rows, err := analysis.ReadSummaryCSV(filepath.Join(o.Resume, "summary.csv")); err == nil {
		// summary.csv has one row per processed point, in run order: keep the
		// rows of the points that were measured; failed ones run again.
		k := 0
		for _, pm := range m.Points {
			if pm.Status == "pending" || k >= len(rows) {
				continue
			}
			if pm.Status == "ok" {
				r.points = append(r.points, rows[k])
			}
			k++
		}
	}
	for i := range r.meta.Points {
		if r.meta.Points[i].Status != "ok" {
			r.meta.Points[i].Status, r.meta.Points[i].Reason = "pending", ""
		}
	}
	return r, nil
}

// fingerprint identifies what an experiment measures (its file path aside).
func fingerprint(e *Experiment) string {
	if e == nil {
		return ""
	}
	c := *e
	c.File = ""
	// Through a generic value, so typed options and the maps meta.json
	// decodes them into print the same (sorted keys).
	b, _ := json.Marshal(&c)
	var v any
	json.Unmarshal(b, &v)
	b, _ = json.Marshal(v)
	return string(b)
}

// ProcResources is what one process held at one moment (from /proc).
type ProcResources struct {
	RSSKiB int64 `json:"rss_kib"`
	// PSSKiB is the proportional set size: shared pages split among the
	// processes sharing them (smaps_rollup), so that summing processes counts
	// a shared region once.
	PSSKiB  int64 `json:"pss_kib,omitempty"`
	FDs     int   `json:"fds"`
	Threads int   `json:"threads"`
	// Goroutines and HeapKiB are what the Go process reported when asked
	// (SIGUSR1, internal/procstats); 0 when it did not answer within a
	// second.
	Goroutines int   `json:"goroutines,omitempty"`
	HeapKiB    int64 `json:"heap_kib,omitempty"`
}

// procResources reads a process's resident memory, open descriptors and
// threads; zero values when it is gone.
func procResources(pid int) ProcResources {
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	smaps, _ := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	fds := 0
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		fds = len(ents)
	}
	return parseProcResources(string(status), string(smaps), fds)
}

// parseProcResources reads a process's /proc/<pid>/status and smaps_rollup
// (local, or printed by a remote node), with its count of descriptors.
func parseProcResources(status, smapsRollup string, fds int) ProcResources {
	r := ProcResources{FDs: fds}
	for _, line := range strings.Split(status, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			r.RSSKiB, _ = strconv.ParseInt(f[1], 10, 64)
		case "Threads:":
			r.Threads, _ = strconv.Atoi(f[1])
		}
	}
	for _, line := range strings.Split(smapsRollup, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "Pss:" {
			r.PSSKiB, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	return r
}

type runner struct {
	e      *Experiment
	o      RunOptions
	dir    string
	meta   Meta
	points []analysis.Point
	tb     *local.Testbed // the local testbed (nil over SSH)
	// site is where the roles run: the local testbed, or SSH nodes.
	site site
	// lastResources are the resources measure sampled for its point.
	lastResources map[string][2]ProcResources
	// lastEngine is what the daemon of the point just run logged about its
	// engine.
	lastEngine *EngineFacts
}

func (r *runner) run(ctx context.Context, pts []Point) error {
	if r.o.Testbed != nil && !r.o.Testbed.Builtin {
		st, err := openSSHSite(ctx, r.o.Testbed, r.o.BinDir, r.meta.RunID, r.o.Log)
		if err != nil {
			return fmt.Errorf("testbed %s: %w", r.o.Testbed.Name, err)
		}
		r.site = st
		if r.meta.RemoteTestbed == nil { // resuming a run recorded before
			r.meta.RemoteTestbed = newRemoteTestbed(r.o.Testbed)
		}
		r.meta.RemoteTestbed.WorkDirs = st.workDirs()
		r.meta.PMQoS = PMQoSState{Requested: r.e.Machine.PMQoS}
		defer func() {
			if err := st.close(); err != nil && r.o.Log != nil {
				fmt.Fprintf(r.o.Log, "testbed %s: cleaning the nodes: %v\n", r.o.Testbed.Name, err)
			}
		}()
		// Hold the nodes still, as the local testbed holds this machine.
		if r.e.Machine.PMQoS != "off" {
			if err := st.holdPMQoS(); err != nil {
				r.meta.PMQoS.Error = err.Error()
				r.writeMeta()
				return fmt.Errorf("hold PM QoS on the nodes (set machine: {pm_qos: off} to run without): %w", err)
			}
			r.meta.PMQoS.Held = true // ValueUs 0: the request is 0 µs on every node
		}
		if err := r.writeMeta(); err != nil {
			return err
		}
		return r.runPoints(ctx, pts)
	}
	// Hold the machine still before anything is measured.
	r.meta.PMQoS.Requested = r.e.Machine.PMQoS
	var setQoS func(on bool) error
	if r.e.Machine.PMQoS != "off" {
		var q *pmqos.Request
		setQoS = func(on bool) error {
			if !on {
				return q.Release()
			}
			var err error
			q, err = pmqos.Hold(0)
			return err
		}
		if err := setQoS(true); err != nil {
			r.meta.PMQoS.Error = err.Error()
			return fmt.Errorf("hold PM QoS (set machine: {pm_qos: off} to run without): %w", err)
		}
		defer func() { q.Release() }()
		r.meta.PMQoS.Held, r.meta.PMQoS.ValueUs = true, q.Value
	}
	if err := local.EnsureBPFFS(); err != nil {
		return err
	}
	tb, err := local.Up(ctx, local.Options{Queues: len(r.o.Placement.generatorCPUs()), Wire: r.e.Link != ""})
	if err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	r.tb = tb
	r.site = localSite{tb: tb, binDir: r.o.BinDir, genDriver: r.o.GenDriver}
	r.meta.Testbed = tb
	defer tb.Down()
	if r.e.Link != "" {
		// The emulated wire forwards for the whole run, on the server's core
		// (this machine has no third): its polling competes with the
		// server's, which matters at microseconds, not at the milliseconds a
		// WAN link adds.
		w := tb.Wire
		wire, err := startProcessIn(ctx, tb, w.Node(), r.o.BinDir, "jremu", r.o.Placement.Server,
			"-iface-a", w.ClientIface, "-iface-b", w.ServerIface, "-link", r.e.Link,
			"-cpu", strconv.Itoa(r.o.Placement.Server), "-file-prefix", "jremu-"+tb.ID, "-seed", strconv.FormatInt(r.e.Seed, 10))
		if err != nil {
			return fmt.Errorf("emulated wire: %w", err)
		}
		defer func() {
			out := wire.stop()
			r.meta.Wire = lastJSONLine(out)
			r.writeMeta()
		}()
	}
	defer os.RemoveAll(filepath.Join("/run/jrbench", tb.ID)) // the run's sockets
	if err := r.writeMeta(); err != nil {
		return err
	}
	if !r.o.SkipCalibration {
		if r.o.Log != nil {
			fmt.Fprintln(r.o.Log, "calibrating the testbed (wire limit, null and kernel round trips, A/A noise, vCPU stalls)")
		}
		r.meta.Calibration = r.calibrate(ctx, setQoS)
		if err := r.writeMeta(); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return r.runPoints(ctx, pts)
}

// runPoints measures every point not measured yet, writing the results after
// each.
func (r *runner) runPoints(ctx context.Context, pts []Point) error {
	progress := newProgress(r.o.Progress, len(pts))
	defer progress.done()
	for i, p := range pts {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if r.meta.Points[i].Status == "ok" {
			continue // measured before the run was interrupted (resume)
		}
		progress.update(i, p)
		pm := &r.meta.Points[i]
		pm.Start = time.Now().UTC()
		pt, gen, serverLog, perr := r.runPoint(ctx, p)
		pm.Seconds = time.Since(pm.Start).Seconds()
		pm.Generator, pm.ServerLog, pm.Resources, pm.Engine = gen, serverLog, r.lastResources, r.lastEngine
		if perr != nil {
			pm.Status, pm.Reason = "failed", perr.Error()
			pt.Valid, pt.Reason = false, perr.Error()
		} else {
			pm.Status = "ok"
			if !pt.Valid {
				pm.Reason = pt.Reason
			}
		}
		r.points = append(r.points, pt)
		if r.o.Log != nil {
			progress.clear()
			fmt.Fprintf(r.o.Log, "point %d/%d %-7s %s rep %d: %s\n", i+1, len(pts), p.Stack.Name, r.e.Workload.Describe(p.Level), p.Rep, describePoint(pt, perr))
		}
		// Nothing measured is lost if a later point or the run dies.
		if err := analysis.WriteSummaryCSV(filepath.Join(r.dir, "summary.csv"), r.points); err != nil {
			return err
		}
		if err := r.writeMeta(); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

func describePoint(p analysis.Point, err error) string {
	if err != nil {
		return "FAILED: " + err.Error()
	}
	s := fmt.Sprintf("achieved %.0f rps, p50 %.1f µs, p99 %.1f µs, lost %d, late %d", p.AchievedRPS, p.P50us, p.P99us, p.Lost, p.Late)
	if !p.Valid {
		s += " (invalid: " + p.Reason + ")"
	}
	return s
}

// hlogName is the interval log of one point, relative to the run directory:
// stack_protocol_<rate>_rep<n>.hlog, with w<window> for a closed loop's rate
// and _<size>B after it when the workload sweeps sizes.
func hlogName(p Point, w Workload) string {
	load := fmt.Sprintf("%.0f", p.Rate)
	if p.Window > 0 {
		load = fmt.Sprintf("w%d", p.Window)
	}
	if len(w.Sizes) > 0 {
		load += fmt.Sprintf("_%dB", p.Size)
	}
	if len(w.Instances) > 0 {
		load += fmt.Sprintf("_%dapps", max(p.Instances, 1))
	}
	return filepath.Join("hist", fmt.Sprintf("%s_%s_%s_rep%d.hlog", p.Stack.Name, w.ProtocolOf(p.Level), load, p.Rep))
}

// probe is one measurement the runner makes: an experiment point or a
// calibration probe.
type probe struct {
	Stack     StackSpec
	Protocol  string // "" means Workload.Protocol
	Rate      float64
	Window    int // closed loop; Rate is then 0
	Size      int // request size; 0 means Workload.Size
	Instances int // application instances; 0 means one
	Rep       int
	Seed      int64
	Workload  Workload
	Hlog      string // relative to the run directory
	Log       string // name of the log file under logs/
}

func (r *runner) pointProbe(p Point) probe {
	return probe{Stack: p.Stack, Protocol: p.Protocol, Rate: p.Rate, Window: p.Window, Size: p.Size, Instances: p.Instances, Rep: p.Rep, Seed: p.Seed, Workload: r.e.Workload,
		Hlog: hlogName(p, r.e.Workload), Log: fmt.Sprintf("point%03d_%s.log", p.Index, p.Stack.Name)}
}

// runPoint runs one point of the experiment.
func (r *runner) runPoint(ctx context.Context, p Point) (analysis.Point, *loadgen.Result, string, error) {
	return r.measure(ctx, r.pointProbe(p))
}

// measure starts the stack and its application in the server namespace, runs
// the generator in the client namespace, and stops the server. The returned
// point is filled as far as the run got.
func (r *runner) measure(ctx context.Context, p probe) (analysis.Point, *loadgen.Result, string, error) {
	r.lastResources, r.lastEngine = nil, nil
	w := p.Workload
	size := cmp.Or(p.Size, w.Size)
	proto := cmp.Or(p.Protocol, w.Protocol)
	pt := analysis.Point{Stack: p.Stack.Name, Protocol: proto, App: r.e.App, OfferedRPS: p.Rate, Rep: p.Rep,
		Hlog: p.Hlog, Size: size, Window: p.Window, Instances: p.Instances}
	opts, err := json.Marshal(p.Stack.Options)
	if err != nil {
		return pt, nil, "", err
	}
	if err := os.MkdirAll(filepath.Dir(filepath.Join(r.dir, p.Hlog)), 0o755); err != nil {
		return pt, nil, "", err
	}
	pl := *r.o.Placement
	runDir, err := r.site.runDir()
	if err != nil {
		return pt, nil, "", err
	}
	srv := r.site.serverEnd()
	env := stacks.Env{Iface: srv.Iface, Addr: srv.Addr, CPUs: []int{pl.Server}, RunDir: runDir}
	var dmn *server // the stack's daemon, if it has one
	if f, err := stacks.Lookup(p.Stack.Name); err == nil && f.Daemon != nil {
		d := f.Daemon(p.Stack.Options, env)
		var err error
		dmn, err = r.site.startServer(ctx, d.Binary, pl.Server, slices.Concat(d.Args, srv.DaemonArgs)...)
		if err != nil {
			return pt, nil, "", fmt.Errorf("%s: %w", d.Binary, err)
		}
		// Stopped after the application (defers run last first).
		logPath := filepath.Join(r.dir, "logs", strings.TrimSuffix(p.Log, ".log")+"_"+d.Binary+".log")
		defer func() {
			log := dmn.stop()
			os.WriteFile(logPath, []byte(log), 0o644)
			r.lastEngine = engineFacts(log)
		}()
	}
	// One jrapp per application instance, each on its own port.
	nApps := max(p.Instances, 1)
	apps := make([]*server, 0, nApps)
	defer func() {
		for _, a := range apps {
			a.stop()
		}
	}()
	for i := range nApps {
		prefix := "jrapp-" + r.site.id()
		if i > 0 {
			prefix = fmt.Sprintf("jrapp%d-%s", i, r.site.id())
		}
		app, err := r.site.startServer(ctx, "jrapp", pl.Server,
			"-stack", p.Stack.Name, "-options", string(opts), "-iface", srv.Iface,
			"-addr", srv.Addr.String(), "-port", strconv.Itoa(ServerPort+i), "-protocol", proto,
			"-cpu", strconv.Itoa(pl.Server), "-file-prefix", prefix, "-run-dir", runDir,
			"-app", r.e.App, "-size", strconv.Itoa(size))
		if err != nil {
			if nApps > 1 {
				err = fmt.Errorf("application instance %d of %d: %w", i+1, nApps, err)
			}
			return pt, nil, "", err
		}
		apps = append(apps, app)
	}

	// Resources of the server side when the load starts and when it ends.
	procs := map[string]*server{}
	for i, a := range apps {
		name := "jrapp"
		if i > 0 {
			name = fmt.Sprintf("jrapp%d", i+1)
		}
		procs[name] = a
	}
	if dmn != nil {
		procs["daemon"] = dmn
	}
	r.lastResources = map[string][2]ProcResources{}
	sample := func(at int) {
		for name, pr := range procs {
			v := r.lastResources[name]
			v[at] = r.site.resources(pr)
			if st, ok := pr.goStats(time.Second); ok {
				v[at].Goroutines, v[at].HeapKiB = st.Goroutines, st.HeapKiB
			}
			r.lastResources[name] = v
		}
	}
	sample(0)
	// The server side's cores, sampled through the point and read over the
	// measured span once the generator says when that was.
	cpuLoad := r.site.cpuSampler([]int{pl.Server})
	bound := w.Warmup.Duration + w.Duration.Duration + 30*time.Second
	conns := max(w.Connections, 1)
	if proto == "udp" {
		conns = 1 // a udp point of a [udp, tcp] experiment has no connections
	}
	genArgs := []string{}
	if r.e.App == "nginx" {
		genArgs = append(genArgs, "-app", "http")
	}
	if mc := w.Memcached; slices.Contains(kvApps, r.e.App) && mc != nil {
		genArgs = append(genArgs, "-app", r.e.App, "-mc-keys", strconv.Itoa(mc.Keys), "-mc-popularity", mc.Popularity,
			"-mc-gets", strconv.FormatFloat(mc.GetFraction, 'f', -1, 64), "-mc-value", strconv.Itoa(mc.ValueSize))
	}
	if nApps > 1 {
		genArgs = append(genArgs, "-ports", strconv.Itoa(nApps))
	}
	out, genLog, gerr := r.generator(ctx, bound, append(genArgs,
		"-rate", strconv.FormatFloat(p.Rate, 'f', -1, 64),
		"-duration", w.Duration.String(), "-warmup", w.Warmup.String(), "-size", strconv.Itoa(size),
		"-sizes", w.SizeDist, "-window", strconv.Itoa(p.Window),
		"-schedule", w.Schedule, "-seed", strconv.FormatUint(uint64(p.Seed), 10),
		"-late", w.LateThreshold.String(), "-interval", w.Interval.String(), "-hlog", filepath.Join(r.dir, p.Hlog),
		"-protocol", proto, "-conns", strconv.Itoa(conns), "-service", w.Service,
		"-mode", cmp.Or(w.Mode, "rpc"))...)
	cpuLoad.Stop()
	sample(1)
	for _, v := range r.lastResources {
		pt.ServerMemMiB += float64(v[1].PSSKiB) / 1024
	}
	// A server-side process that died during the point makes it a failure,
	// not a latency result (whatever the generator saw).
	died := -1
	for i, a := range apps {
		if a.died() && died < 0 {
			died = i
		}
	}
	daemonDied := dmn != nil && dmn.died()
	var logs []string
	for _, a := range apps {
		logs = append(logs, a.stop())
	}
	serverLog := strings.Join(logs, "\n== next instance\n")
	logPath := filepath.Join(r.dir, "logs", p.Log)
	os.WriteFile(logPath, []byte("== generator stderr\n"+genLog+"\n== server\n"+serverLog), 0o644)
	if gerr != nil {
		return pt, nil, serverLog, fmt.Errorf("%w (log: %s)", gerr, logPath)
	}
	// A server that did not stop on SIGTERM was hung (stopped, deadlocked,
	// spinning): whatever the generator saw, it did not measure a stack.
	for _, a := range apps {
		if a.hung {
			return pt, nil, serverLog, fmt.Errorf("jrapp hung: it did not exit within %v of SIGTERM and was killed (log: %s)", stopGrace, logPath)
		}
	}
	if dmn != nil && !daemonDied {
		if dmn.stop(); dmn.hung {
			return pt, nil, serverLog, fmt.Errorf("the stack's daemon hung: it did not exit within %v of SIGTERM and was killed", stopGrace)
		}
	}
	if daemonDied {
		return pt, nil, serverLog, fmt.Errorf("the stack's daemon exited during the point: %s", lastLine(dmn.stop()))
	}
	if died >= 0 {
		return pt, nil, serverLog, fmt.Errorf("jrapp exited during the point: %s", lastLine(logs[died]))
	}
	var res loadgen.Result
	if err := json.Unmarshal(out, &res); err != nil {
		return pt, nil, serverLog, fmt.Errorf("generator output: %v", err)
	}
	pt.AchievedRPS, pt.Sent, pt.Received, pt.Lost, pt.Late = res.AchievedRPS, res.Sent, res.Received, res.Lost, res.Late
	bytes := res.ReceivedBytes // counted per reply by the TCP engine
	if bytes == 0 {
		bytes = res.Received * uint64(size)
	}
	pt.Gbps = float64(bytes) * 8 / w.Duration.Seconds() / 1e9
	from := res.Start.Add(time.Millisecond + w.Warmup.Duration)
	if cores, ok := cpuLoad.Busy(from, from.Add(w.Duration.Duration)); ok {
		pt.ServerCores = cores
		if res.AchievedRPS > 0 {
			pt.CPUUsPerReq = cores / res.AchievedRPS * 1e6
		}
	}
	// Percentiles come from the interval log on disk, as any later analysis will.
	h, err := analysis.ReadHlog(filepath.Join(r.dir, p.Hlog))
	if err != nil {
		return pt, &res, serverLog, err
	}
	analysis.FillLatency(&pt, analysis.Summarize(h))
	// Stationarity and independence of the per-interval medians, and the
	// generator's arrival check (reported, and flagged in summary.csv and
	// report.md when they fail; too few intervals says so).
	if c, err := analysis.CheckPoint(filepath.Join(r.dir, p.Hlog)); err == nil {
		c.SetArrival(res.ArrivalA2, res.ArrivalN)
		pt.Checks = &c
	}
	pt.Valid, pt.Reason = judge(&res)
	return pt, &res, serverLog, nil
}

// generator runs jrgen in the client namespace, pinned to the generator's core,
// with the common flags plus args, bounded by bound. It returns its standard
// output (the JSON result) and the tail of its standard error.
func (r *runner) generator(ctx context.Context, bound time.Duration, args ...string) ([]byte, string, error) {
	pl := *r.o.Placement
	gctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	cpus := make([]string, 0, 1+len(pl.GeneratorExtra))
	for _, c := range pl.generatorCPUs() {
		cpus = append(cpus, strconv.Itoa(c))
	}
	client := r.site.clientEnd()
	base := slices.Concat(client.GenArgs, []string{
		"-cpu", strconv.Itoa(pl.Generator), "-file-prefix", "jrgen-" + r.site.id(),
		"-src", client.Addr.Addr().String(), "-dst", r.site.serverEnd().Addr.Addr().String(),
		"-port", strconv.Itoa(ServerPort)})
	if len(pl.GeneratorExtra) > 0 && !slices.Contains(args, "-blast") {
		base = append(base, "-queues", strconv.Itoa(len(cpus)), "-cpus", strings.Join(cpus, ","))
	}
	out, stderr, err := r.site.runGenerator(gctx, strings.Join(cpus, ","), append(base, args...))
	if err != nil {
		if gctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
			return out, stderr, fmt.Errorf("generator exceeded its time bound of %v", bound)
		}
		return out, stderr, fmt.Errorf("generator: %v: %s", err, lastLine(stderr))
	}
	return out, stderr, nil
}

// judge decides whether a point measured the stack or the generator: a point
// where the generator could not keep its own schedule is not the stack's result.
func judge(res *loadgen.Result) (bool, string) {
	var why []string
	if res.Scheduled > 0 && float64(res.NotSent) > 0.001*float64(res.Scheduled) {
		why = append(why, fmt.Sprintf("generator could not send %d of %d requests", res.NotSent, res.Scheduled))
	}
	if res.Sent > 0 && float64(res.Late) > 0.01*float64(res.Sent) {
		why = append(why, fmt.Sprintf("generator sent %.1f%% of requests late", 100*float64(res.Late)/float64(res.Sent)))
	}
	if res.Received == 0 {
		why = append(why, "no reply received")
	}
	if len(why) == 0 {
		return true, ""
	}
	return false, strings.Join(why, "; ")
}

// server is a process of the server side (the application, or a stack's
// daemon) in the server namespace, or on the server node of an SSH testbed.
type server struct {
	cmd    *exec.Cmd   // a local process
	remote *remoteProc // or a process on an SSH node
	log    tail
	once   sync.Once
	result string
	exited chan struct{}
	stats  chan string // PROCSTATS lines, answers to SIGUSR1
	hung   bool        // stop had to kill it (set by stop)
}

// stopGrace is how long a server has to exit after SIGTERM before it is
// killed and counted hung.
const stopGrace = 5 * time.Second

// goStats asks the server for its goroutines and Go heap (SIGUSR1, answered
// by a PROCSTATS line on its standard output) and waits up to timeout.
func (s *server) goStats(timeout time.Duration) (procstats.Stats, bool) {
	select { // an answer that came too late for an earlier question
	case <-s.stats:
	default:
	}
	if s.died() || s.signal(syscall.SIGUSR1) != nil {
		return procstats.Stats{}, false
	}
	select {
	case line := <-s.stats:
		st, err := procstats.Parse(line)
		return st, err == nil
	case <-time.After(timeout):
		return procstats.Stats{}, false
	}
}

// startProcess starts binary (from binDir) in the server namespace, pinned to
// cpu, and waits until it says READY.
func startProcess(ctx context.Context, tb *local.Testbed, binDir, binary string, cpu int, args ...string) (*server, error) {
	return startProcessIn(ctx, tb, tb.Server, binDir, binary, cpu, args...)
}

// startProcessIn is startProcess in node's namespace.
func startProcessIn(ctx context.Context, tb *local.Testbed, node local.Node, binDir, binary string, cpu int, args ...string) (*server, error) {
	s := &server{exited: make(chan struct{}), stats: make(chan string, 1)}
	s.cmd = tb.CommandWithBPFFS(context.Background(), node, "taskset",
		append([]string{"-c", strconv.Itoa(cpu), filepath.Join(binDir, binary)}, args...)...)
	s.cmd.Stderr = &s.log
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		lines := s.lineHandler(ready)
		for sc.Scan() {
			lines(sc.Text())
		}
		s.cmd.Wait()
		close(s.exited)
	}()
	return s.waitReady(ctx, ready)
}

// lineHandler is what a server's standard output goes through, line by line:
// the first READY closes ready, PROCSTATS lines answer goStats, the rest is
// its log. Its lines come from one goroutine.
func (s *server) lineHandler(ready chan struct{}) func(string) {
	signalled := false
	return func(line string) {
		if line == "READY" && !signalled {
			close(ready)
			signalled = true
			return
		}
		if strings.HasPrefix(line, procstats.Prefix) {
			select {
			case s.stats <- line:
			default:
			}
			return
		}
		s.log.Write([]byte(line + "\n"))
	}
}

// waitReady waits until the started server says READY (30 s at most).
func (s *server) waitReady(ctx context.Context, ready chan struct{}) (*server, error) {
	select {
	case <-ready:
		return s, nil
	case <-s.exited:
		return nil, fmt.Errorf("server exited before it was ready: %s", lastLine(s.log.String()))
	case <-time.After(30 * time.Second):
		s.stop()
		return nil, fmt.Errorf("server not ready within 30 s: %s", lastLine(s.log.String()))
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
}

// died reports whether the process has exited on its own (before stop).
func (s *server) died() bool {
	select {
	case <-s.exited:
		return true
	default:
		return false
	}
}

// signal delivers sig to the server's process.
func (s *server) signal(sig syscall.Signal) error {
	if s.remote != nil {
		return s.remote.signal(sig)
	}
	return s.cmd.Process.Signal(sig)
}

// stop ends the server with SIGTERM (SIGKILL after 5 s) and returns its log.
func (s *server) stop() string {
	s.once.Do(func() {
		s.signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(stopGrace):
			s.signal(syscall.SIGKILL)
			s.awaitKilled()
			s.hung = true
			s.log.Write([]byte("(killed after 5 s without exiting on SIGTERM)\n"))
		}
		s.result = s.log.String()
	})
	return s.result
}

// finish writes meta.json, the summary, the plots and the report from whatever
// points were measured.
func (r *runner) finish() error {
	var errs []error
	errs = append(errs, r.writeMeta())
	if err := analysis.WriteSummaryCSV(filepath.Join(r.dir, "summary.csv"), r.points); err != nil {
		errs = append(errs, err)
	}
	if len(r.points) > 0 {
		_, err := DrawPlots(r.e, Title(r.e), r.points, filepath.Join(r.dir, "plots"), func(p analysis.Point) (string, error) {
			f := filepath.Join(r.dir, p.Hlog)
			if _, err := os.Stat(f); err != nil {
				return "", nil // its point already reported why it has no log
			}
			return f, nil
		})
		errs = append(errs, err)
	}
	errs = append(errs, analysis.WriteReport(filepath.Join(r.dir, "report.md"), r.report()))
	return errors.Join(errs...)
}

// Title is the figures' title for an experiment.
func Title(e *Experiment) string {
	return e.Name + ": " + e.Workload.ProtocolText() + " " + e.App + ", " + sizeText(e.Workload)
}

// sizeText says what sizes the workload's requests have.
func sizeText(w Workload) string {
	switch {
	case len(w.Sizes) > 0:
		return fmt.Sprintf("%d–%d B", w.Sizes[0], w.Sizes[len(w.Sizes)-1])
	case w.SizeDist != "":
		return "sizes " + w.SizeDist + " B"
	}
	return strconv.Itoa(w.Size) + " B"
}

// ReportTable is report.md's run table, from what meta.json holds (the runner
// and jrbench analyze both render it).
func ReportTable(m *Meta) map[string]string {
	t := map[string]string{
		"run":       m.RunID,
		"state":     m.State,
		"commit":    m.Commit,
		"host":      m.Host["hostname"],
		"kernel":    m.Host["kernel"],
		"cpu":       m.Host["cpu"],
		"pm_qos":    fmt.Sprintf("requested %s, held %t (value %d µs)", m.PMQoS.Requested, m.PMQoS.Held, m.PMQoS.ValueUs),
		"placement": fmt.Sprintf("generator on cpu %s, server on cpu %d", strings.Trim(fmt.Sprint(m.Placement.generatorCPUs()), "[]"), m.Placement.Server),
		"order":     fmt.Sprintf("%s, seed %d", m.Order, m.Seed),
		"generator": "DPDK " + m.GenDriver + " vdev (jrgen)",
	}
	if e := m.Experiment; e != nil {
		arrivals := e.Workload.Schedule + " arrivals"
		if len(e.Workload.Windows) > 0 {
			arrivals = fmt.Sprintf("closed loop (windows %v per connection)", e.Workload.Windows)
		}
		t["workload"] = fmt.Sprintf("%s %s, %s, %s, %v per point after %v warm-up, late after %v",
			e.Workload.ProtocolText(), e.App, sizeText(e.Workload), arrivals, e.Workload.Duration,
			e.Workload.Warmup, e.Workload.LateThreshold)
	}
	if m.Testbed != nil {
		t["testbed"] = fmt.Sprintf("local veth %s (%s) <-> %s (%s)", m.Testbed.Client.Iface, m.Testbed.Client.Addr, m.Testbed.Server.Iface, m.Testbed.Server.Addr)
	}
	if rt := m.RemoteTestbed; rt != nil && rt.Testbed != nil {
		if c, s := rt.Testbed.Node(spec.RoleClient), rt.Testbed.Node(spec.RoleServer); c != nil && s != nil {
			t["testbed"] = fmt.Sprintf("%s over SSH: client %s (%s) <-> server %s (%s)", rt.Testbed.Name, c.Name, c.IP, s.Name, s.IP)
		}
		t["generator"] = "DPDK " + m.GenDriver + " (jrgen)"
		t["pm_qos"] = "not held on the nodes"
	}
	return t
}

func (r *runner) report() analysis.Report {
	m := r.meta
	meta := ReportTable(&m)
	var notes []string
	if m.Error != "" {
		notes = append(notes, "The run ended early: "+m.Error)
	}
	if rt := m.RemoteTestbed; rt != nil {
		notes = append(notes, "The roles ran on remote nodes over SSH; not measured there: "+strings.Join(rt.NotMeasured, "; ")+".")
	}
	// The arrival check: did the requests really leave as a Poisson process?
	checked, rejected, worst := 0, 0, ""
	worstA2 := 0.0
	for _, pm := range m.Points {
		g := pm.Generator
		if g == nil || g.ArrivalN == 0 {
			continue
		}
		checked++
		if g.ArrivalA2 > loadgen.ADCrit1 {
			rejected++
		}
		if g.ArrivalA2 > worstA2 {
			worstA2, worst = g.ArrivalA2, fmt.Sprintf("%s at %.0f req/s, rep %d", pm.Stack, pm.Rate, pm.Rep)
		}
	}
	if checked > 0 {
		notes = append(notes, fmt.Sprintf("Arrival check (Anderson–Darling of the first %d gaps between sends against "+
			"the exponential of the offered rate, per point; meta.json points[].generator.arrival_a2): %d of %d points "+
			"reject it at 1%% (A² > %.3f); the largest A² is %.1f (%s). A rejection means the sends bunched (the "+
			"generator batched after a stall) more than a Poisson process would: compare with the late counts and the "+
			"calibration's vCPU stalls.", loadgen.ArrivalSamples, rejected, checked, loadgen.ADCrit1, worstA2, worst))
	}
	// What the generator itself cost: with thousands of connections its
	// client stack's memory is part of the result.
	var peakRSS int64
	var peakAt string
	for _, pm := range m.Points {
		if g := pm.Generator; g != nil && g.MaxRSSKiB > peakRSS {
			peakRSS, peakAt = g.MaxRSSKiB, fmt.Sprintf("%s at %s, rep %d", pm.Stack, r.e.Workload.Describe(Level{Rate: pm.Rate, Window: pm.Window, Size: pm.Size, Instances: pm.Instances}), pm.Rep)
		}
	}
	if peakRSS > 0 {
		notes = append(notes, fmt.Sprintf("The generator's peak resident memory was %.0f MiB (%s; meta.json points[].generator.max_rss_kib), with %d connections.",
			float64(peakRSS)/1024, peakAt, max(r.e.Workload.Connections, 1)))
	}
	rep := analysis.Report{Title: "Experiment " + r.e.Name, Description: r.e.Description, Meta: meta,
		Points: r.points, SLOp99us: float64(r.e.SLO.P99.Duration) / 1e3, Notes: notes}
	if md := firstByteMarkdown(m.Points); md != "" {
		rep.Sections = append(rep.Sections, analysis.Section{Title: "Time to first byte", Markdown: md})
	}
	if c := m.Calibration; c != nil {
		rep.Sections = append(rep.Sections, analysis.Section{Title: "Calibration", Markdown: c.markdown(generatorPeak(r.points))})
		if c.AA != nil {
			rep.NoiseP50us, rep.NoiseP99us = c.AA.NoiseP50us, c.AA.NoiseP99us
		}
	} else {
		notes = append(notes, "No calibration was run: no noise floor, no wire limit.")
		rep.Notes = notes
	}
	return rep
}

// firstByteMarkdown tabulates, for connect points, the time from each
// connection's scheduled start to the first byte of the echo of its first
// request (the setup time is the latency of the Results tables), per stack and
// rate: means over the repetitions that measured it. "" when no point did.
func firstByteMarkdown(pms []PointMeta) string {
	type key struct {
		stack string
		rate  float64
	}
	type acc struct {
		n        int
		p50, p99 float64
		count    int64
		lost     uint64
	}
	groups := map[key]*acc{}
	var keys []key
	for _, pm := range pms {
		g := pm.Generator
		if g == nil || g.Protocol != "tcp-connect" {
			continue
		}
		k := key{pm.Stack, pm.Rate}
		a := groups[k]
		if a == nil {
			a = &acc{}
			groups[k] = a
			keys = append(keys, k)
		}
		a.lost += g.FirstByteLost
		if g.FirstByteCount > 0 {
			a.n++
			a.p50 += g.FirstByteP50Us
			a.p99 += g.FirstByteP99Us
			a.count += g.FirstByteCount
		}
	}
	if len(keys) == 0 {
		return ""
	}
	slices.SortFunc(keys, func(a, b key) int { return cmp.Or(cmp.Compare(a.stack, b.stack), cmp.Compare(a.rate, b.rate)) })
	var b strings.Builder
	b.WriteString("Each established connection writes one request and waits for the first byte of its echo: the time from " +
		"the connection's scheduled start to that byte is what an application connecting per request waits for (the server's " +
		"accept and first read included). Means over the repetitions; the logs are hist/*.ttfb.hlog.\n\n" +
		"| stack | connections/s | first byte p50 (µs) | first byte p99 (µs) | answered | not answered |\n|---|---:|---:|---:|---:|---:|\n")
	for _, k := range keys {
		a := groups[k]
		p50, p99 := "—", "—"
		if a.n > 0 {
			p50, p99 = fmt.Sprintf("%.2f", a.p50/float64(a.n)), fmt.Sprintf("%.2f", a.p99/float64(a.n))
		}
		fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %d | %d |\n", k.stack, k.rate, p50, p99, a.count, a.lost)
	}
	return b.String()
}

// generatorPeak is the highest achieved rate of any valid point that achieved
// at least 99% of its offered rate: what the generator demonstrably sustains.
func generatorPeak(pts []analysis.Point) float64 {
	peak := 0.0
	for _, p := range pts {
		if p.Valid && p.AchievedRPS >= 0.99*p.OfferedRPS && p.AchievedRPS > peak {
			peak = p.AchievedRPS
		}
	}
	return peak
}

func (r *runner) writeMeta() error {
	return analysis.WriteFileAtomic(filepath.Join(r.dir, "meta.json"), func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(&r.meta)
	})
}

// updateLatest points results/<name>/latest at the run, atomically.
func updateLatest(root, name, runID string) {
	link := filepath.Join(root, name, "latest")
	tmp := link + ".tmp"
	os.Remove(tmp)
	if os.Symlink(runID, tmp) == nil {
		os.Rename(tmp, link)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		c += "-dirty"
	}
	return c
}

func hostInfo() map[string]string {
	h := map[string]string{"cores": strconv.Itoa(runtime.NumCPU())}
	h["hostname"], _ = os.Hostname()
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		h["kernel"] = utsString(u.Release[:])
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				h["cpu"] = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
				break
			}
		}
	}
	if b, err := os.ReadFile("/sys/devices/system/cpu/cpuidle/current_driver"); err == nil {
		h["cpuidle_driver"] = strings.TrimSpace(string(b))
	}
	return h
}

func utsString(b []int8) string {
	s := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

func toolVersions() map[string]string {
	t := map[string]string{"go": runtime.Version()}
	if out, err := exec.Command("pkg-config", "--modversion", "libdpdk").Output(); err == nil {
		t["dpdk"] = strings.TrimSpace(string(out))
	}
	return t
}

// tail keeps the last 64 KiB written to it (a process's log).
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 64<<10 {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-64<<10:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" && !strings.HasPrefix(l, "libbpf:") && !strings.HasPrefix(l, "TELEMETRY:") {
			return l
		}
	}
	return "(no output)"
}

// lastJSONLine is the last line of out that is a JSON object (a process's
// final counters), or nil.
func lastJSONLine(out string) json.RawMessage {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if strings.HasPrefix(l, "{") && json.Valid([]byte(l)) {
			return json.RawMessage(l)
		}
	}
	return nil
}

// site is where a run's roles execute: the seam between the runner and the
// testbed. localSite is the local testbed's two namespaces; sshSite
// (remote.go) the nodes of a testbed file, over SSH. The runner decides what
// runs (arguments, order, checks, results); a site only decides where.
type site interface {
	// id names the run's testbed in DPDK file prefixes.
	id() string
	// serverEnd and clientEnd are each side's data-plane end.
	serverEnd() dataEnd
	clientEnd() dataEnd
	// runDir is a directory private to the run on the server side (the
	// control sockets of service stacks).
	runDir() (string, error)
	// startServer starts binary on the server side, pinned to cpu, and
	// waits until it prints READY.
	startServer(ctx context.Context, binary string, cpu int, args ...string) (*server, error)
	// runGenerator runs jrgen with args on the client side, pinned to cpus
	// (taskset's list), until it exits or ctx ends (SIGTERM, SIGKILL 5 s
	// later). Its -hlog file ends up at the path args name on this machine.
	// It returns jrgen's standard output and the tail of its standard error.
	runGenerator(ctx context.Context, cpus string, args []string) ([]byte, string, error)
	// resources samples a server process (zero values when it is gone).
	resources(s *server) ProcResources
	// cpuSampler samples the server's cores through a point; one that
	// cannot never reports a busy share.
	cpuSampler(cpus []int) *cpuSampler
}

// dataEnd is one side's end of the measured wire.
type dataEnd struct {
	// Iface is the Linux interface of the NIC ("" for a PCI NIC that has
	// none).
	Iface string
	// Addr is the side's benchmark address and prefix.
	Addr netip.Prefix
	// GenArgs are jrgen's arguments that attach its port (the client side).
	GenArgs []string
	// DaemonArgs are appended to a stack daemon's arguments (the server
	// side): the testbed's NIC where it is not the stack's default.
	DaemonArgs []string
}

// localSite is the local testbed: the server and client namespaces on this
// machine.
type localSite struct {
	tb        *local.Testbed
	binDir    string
	genDriver string
}

func (l localSite) id() string { return l.tb.ID }

func (l localSite) serverEnd() dataEnd {
	return dataEnd{Iface: l.tb.Server.Iface, Addr: l.tb.Server.Addr}
}

func (l localSite) clientEnd() dataEnd {
	return dataEnd{Iface: l.tb.Client.Iface, Addr: l.tb.Client.Addr,
		GenArgs: []string{"-driver", l.genDriver, "-iface", l.tb.Client.Iface}}
}

func (l localSite) runDir() (string, error) {
	d := filepath.Join("/run/jrbench", l.tb.ID)
	return d, os.MkdirAll(d, 0o755)
}

func (l localSite) startServer(ctx context.Context, binary string, cpu int, args ...string) (*server, error) {
	return startProcess(ctx, l.tb, l.binDir, binary, cpu, args...)
}

func (l localSite) runGenerator(ctx context.Context, cpus string, args []string) ([]byte, string, error) {
	gen := l.tb.CommandWithBPFFS(ctx, l.tb.Client, "taskset", append([]string{"-c", cpus, filepath.Join(l.binDir, "jrgen")}, args...)...)
	gen.Cancel = func() error { return gen.Process.Signal(syscall.SIGTERM) }
	gen.WaitDelay = 5 * time.Second
	var stderr tail
	gen.Stderr = &stderr
	out, err := gen.Output()
	return out, stderr.String(), err
}

func (l localSite) resources(s *server) ProcResources { return procResources(s.cmd.Process.Pid) }

func (l localSite) cpuSampler(cpus []int) *cpuSampler {
	return startCPUSampler(cpus, 100*time.Millisecond)
}

// awaitKilled waits until a server sent SIGKILL is gone. A local process
// always goes; the session of a remote one may hang on a node that stopped
// answering, so that wait is bounded (the role's watchdog and the run's
// cleanup kill it on the node).
func (s *server) awaitKilled() {
	if s.remote == nil {
		<-s.exited
		return
	}
	select {
	case <-s.exited:
	case <-time.After(remoteKillWait):
		s.remote.abandon()
	}
}
