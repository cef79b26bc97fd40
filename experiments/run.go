package experiments

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/joyride-bench/joyride/analysis"
	"github.com/joyride-bench/joyride/stacks"
	"github.com/joyride-bench/joyride/testbed/local"
	"github.com/joyride-bench/joyride/testbed/pmqos"
	"github.com/joyride-bench/joyride/testbed/spec"
	"github.com/joyride-bench/joyride/testbed/stall"
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
	// on stacks that serve several queues (stacks.MultiQueue). On a machine with spare
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
		if err := stacks.Require(s.Name, stacks.MultiQueue); err != nil {
			return fmt.Errorf("%d generator cores load the veth's several queues: %w", len(p.generatorCPUs()), err)
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
	// InjectStalls, when set, takes the core it names (a negative CPU: the
	// generator's) away for its Length every Period during the whole run,
	// calibration included: a noisy machine made on purpose (testbed/stall).
	InjectStalls *stall.Spec
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
	stopStalls, err := startStalls(&o, remote)
	if err != nil {
		return dir, err
	}
	err = r.run(ctx, pts)
	r.meta.InjectedStalls = stopStalls()
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
		// The nodes' PM QoS is held for the whole run: calibrate has no
		// request to release for its probe without it.
		if err := r.calibrateRun(ctx, nil); err != nil {
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
	if err := r.calibrateRun(ctx, setQoS); err != nil {
		return err
	}
	return r.runPoints(ctx, pts)
}

// calibrateRun measures the testbed before the first point, unless the run
// skips it, and records it in meta.json. setQoS is calibrate's.
func (r *runner) calibrateRun(ctx context.Context, setQoS func(on bool) error) error {
	if r.o.SkipCalibration {
		return nil
	}
	if r.o.Log != nil {
		fmt.Fprintln(r.o.Log, "calibrating the testbed (wire limit, null and kernel round trips, A/A noise, vCPU stalls)")
	}
	r.meta.Calibration = r.calibrate(ctx, setQoS)
	if err := r.writeMeta(); err != nil {
		return err
	}
	return ctx.Err()
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
	switch {
	case !p.Valid:
		s += " (invalid: " + p.Reason + ")"
	case p.UpperBound:
		s += " (" + p.Reason + ")"
	}
	return s
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
	errs = append(errs, analysis.WriteReport(filepath.Join(r.dir, "report.md"), BuildReport(&r.meta, r.points)))
	return errors.Join(errs...)
}
