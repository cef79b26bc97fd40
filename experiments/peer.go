package experiments

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
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

// The peer check asks whether the
// generator's round trips are believable by measuring the same testbed with a
// tool nobody here wrote: sockperf's ping-pong client (Debian package
// sockperf), on the kernel stack, at a low rate, over UDP and TCP.
//
// sockperf's client cannot use jrapp's echo as its server. Every message it
// sends carries a header with a "client" flag, its server clears that flag in
// the reply, and the client discards any message that still carries it (its
// guard against its own multicast loopback): an echo that returns the bytes
// unchanged gets "No messages were received from the server". So each tool
// talks to its own server, both on the kernel stack, in the server namespace,
// pinned to the server's core: jrgen (DPDK, client namespace, generator core)
// to jrapp's kernel echo, exactly as an experiment point does, and sockperf
// ping-pong (kernel sockets, client namespace, generator core) to `sockperf
// server`. PM QoS is held throughout, as for every measurement.
//
// The two round trips are therefore not the same path: sockperf's has a
// kernel stack and a blocking receive at the client end where jrgen's has a
// busy-polled DPDK port. To put a number on that part the check also measures
// jrgen against the null reflector (the floor: a DPDK port at both ends),
// from which the kernel end's share of the round trip follows
// (PeerSummary.KernelEndUs). docs/PERFORMANCE.md ("Cross-check with sockperf")
// has the measured numbers and their reading.

// PeerCheckName is the results directory of the peer check:
// <results>/peer-check/<run-id>/.
const PeerCheckName = "peer-check"

// PeerOptions are the peer check's settings; zero values take the defaults.
type PeerOptions struct {
	// BinDir holds jrgen and jrapp.
	BinDir string
	// ResultsDir is the root of all results (default "results").
	ResultsDir string
	// Rate is the offered load of both tools, messages/s (default 1000).
	// sockperf ping-pong keeps one message in flight, so the rate must leave
	// it time for a round trip between sends; jrgen's open loop is far from
	// saturation at any such rate.
	Rate float64
	// Duration is each run's measured time (default 5 s). sockperf takes whole
	// seconds, so it must be one.
	Duration time.Duration
	// Repetitions of every (protocol, tool) pair (default 3); the order of the
	// two tools alternates from one to the next.
	Repetitions int
	// Protocols to compare, "udp" and/or "tcp" (default both).
	Protocols []string
	// Size is the message size in bytes (default 64; at least the generator's
	// 18-byte header, at most 1472).
	Size int
	// Placement of the roles (default DefaultPlacement): jrgen and the sockperf
	// client on the generator's core, jrapp and sockperf's server on the
	// server's.
	Placement *Placement
	// GenDriver is the generator's DPDK vdev (default af_xdp).
	GenDriver string
	// Sockperf is the sockperf binary (default: "sockperf" from PATH).
	Sockperf string
	// NoFloor leaves out jrgen against the null reflector (the UDP floor that
	// splits the difference between the tools into its parts).
	NoFloor bool
	// Testbed is where the tools run: nil or the built-in local testbed
	// (spec.Local), or a testbed file's SSH nodes (remote.go), where
	// Sockperf must be at the same path as on this machine. With a testbed
	// file and no Placement, the roles are pinned as Run pins them.
	Testbed *spec.Testbed
	// Log receives one line per run (nil: none).
	Log io.Writer
}

// PeerResult is peer-check.json: what ran, every run, and the comparison.
type PeerResult struct {
	RunRecord
	// Rate, DurationS, Size and Repetitions are the options as run.
	Rate        float64  `json:"rate"`
	DurationS   float64  `json:"duration_s"`
	Size        int      `json:"size"`
	Repetitions int      `json:"repetitions"`
	Protocols   []string `json:"protocols"`
	// LoadAvg is /proc/loadavg at the start and at the end: other work on the
	// machine shows in the tails (and in the medians when it is heavy).
	LoadAvg [2]string `json:"loadavg"`
	// Runs are every run in the order they ran.
	Runs []PeerRun `json:"runs"`
	// Summary is one line per protocol, over the repetitions.
	Summary []PeerSummary `json:"summary"`
	// Dir is the run directory (not written to the file).
	Dir string `json:"-"`
}

// The tools of a PeerRun.
const (
	ToolJrgen     = "jrgen"      // the generator against jrapp's kernel echo
	ToolSockperf  = "sockperf"   // sockperf ping-pong against sockperf server
	ToolJrgenNull = "jrgen-null" // the generator against the null reflector (the floor)
)

// PeerRun is one tool's run at the check's rate.
type PeerRun struct {
	Tool     string    `json:"tool"`
	Server   string    `json:"server"`
	Protocol string    `json:"protocol"`
	Rep      int       `json:"rep"`
	Start    time.Time `json:"start"`
	Seconds  float64   `json:"seconds"`
	// P50us and P99us are read back from the run's interval log (Hlog) with
	// analysis.Summarize: the same estimator for both tools. For sockperf the
	// log is built from its per-message --full-log.
	P50us float64 `json:"p50_us"`
	P99us float64 `json:"p99_us"`
	// Count is the number of round trips measured.
	Count int64  `json:"count"`
	Hlog  string `json:"hlog,omitempty"` // relative to the run directory
	Log   string `json:"log,omitempty"`  // relative to the run directory
	// Valid is false when the run cannot be trusted (the generator missed its
	// schedule, sockperf could not keep the rate); Reason says why.
	Valid  bool   `json:"valid"`
	Reason string `json:"reason,omitempty"`
	// OtherCPU is the CPU time, in cores' worth over the run, that the
	// machine spent on anything but the check's own processes (other
	// processes, and interrupt work, which includes a little of the run's
	// own packets); StealCPU is the time the hypervisor took from the VM.
	// The check cannot stop others from using the machine; it says when they
	// did (a run with OtherCPU above 0.05 is marked disturbed in the log).
	OtherCPU float64 `json:"other_cpu"`
	StealCPU float64 `json:"steal_cpu"`
	// Error is why the run failed (no numbers then).
	Error     string          `json:"error,omitempty"`
	Generator *loadgen.Result `json:"generator,omitempty"`
	Sockperf  *SockperfReport `json:"sockperf,omitempty"`
}

// ok reports whether the run produced numbers that count.
func (p *PeerRun) ok() bool { return p.Error == "" && p.Valid && p.Count > 0 }

// SockperfReport is what sockperf ping-pong printed about one run.
type SockperfReport struct {
	// P50us and P99us are sockperf's own percentile table (round trips, with
	// --full-rtt): the peer's word, next to PeerRun's recomputation.
	P50us float64 `json:"p50_us"`
	P99us float64 `json:"p99_us"`
	// Percentiles are every line of its table, keyed as it prints them
	// ("50.000", "99.000", "max", "min").
	Percentiles map[string]float64 `json:"percentiles"`
	AvgUs       float64            `json:"avg_us"`
	// Observations is its "Total N observations".
	Observations int64 `json:"observations"`
	// Sent and Received are its "[Valid Duration]" counts (warm-up and
	// cool-down excluded).
	Sent       int64 `json:"sent"`
	Received   int64 `json:"received"`
	Dropped    int64 `json:"dropped"`
	Duplicated int64 `json:"duplicated"`
	OutOfOrder int64 `json:"out_of_order"`
	// RateTooHigh is its "Info: The requested message-per-second rate is too
	// high": it never waited between sends, so it did not offer the rate.
	RateTooHigh bool `json:"rate_too_high,omitempty"`
	// FullLogSamples is the number of round trips in its --full-log.
	FullLogSamples int `json:"full_log_samples"`
}

// PeerSummary compares the tools for one protocol: medians over the valid
// repetitions (a median, so one repetition hit by a long vCPU stall does not
// move the result).
type PeerSummary struct {
	Protocol string `json:"protocol"`
	// Reps is the number of repetitions in which both tools gave a number.
	Reps int `json:"reps"`
	// Disturbed is how many of those repetitions' runs had other work on the
	// machine (PeerRun.OtherCPU above 0.05 cores).
	Disturbed     int     `json:"disturbed_runs"`
	JrgenP50us    float64 `json:"jrgen_p50_us"`
	JrgenP99us    float64 `json:"jrgen_p99_us"`
	SockperfP50us float64 `json:"sockperf_p50_us"` // sockperf's own table
	SockperfP99us float64 `json:"sockperf_p99_us"`
	// RatioP50 and RatioP99 are jrgen / sockperf.
	RatioP50 float64 `json:"ratio_p50"`
	RatioP99 float64 `json:"ratio_p99"`
	// AgreeP50 and AgreeP99 are |ratio - 1| <= peerTolerance: the two tools
	// agree at that percentile.
	AgreeP50 bool `json:"agree_p50"`
	AgreeP99 bool `json:"agree_p99"`
	// JrgenP50Range and SockperfP50Range are the lowest and highest p50 of
	// the repetitions.
	JrgenP50Range    [2]float64 `json:"jrgen_p50_range_us"`
	SockperfP50Range [2]float64 `json:"sockperf_p50_range_us"`
	// NullP50us is the floor (jrgen against the null reflector, UDP only):
	// wire + a DPDK port at each end.
	NullP50us float64 `json:"null_p50_us,omitempty"`
	// KernelEndUs = JrgenP50us - NullP50us is what one kernel end (stack,
	// socket, the echo process's wake-up) adds to a round trip in place of a
	// DPDK port. sockperf's round trip has two kernel ends, jrgen's one, so
	// JrgenP50us + KernelEndUs is the round trip the generator's numbers
	// predict for sockperf (PredictedSockperfP50us), if its client end costs
	// what jrapp's end does.
	KernelEndUs            float64 `json:"kernel_end_us,omitempty"`
	PredictedSockperfP50us float64 `json:"predicted_sockperf_p50_us,omitempty"`
}

// peerTolerance is the agreement asked of a generator whose floor is a few
// µs against a trusted peer: within 10%, at p50 and at p99. Where the tools
// do not agree, the floor (NullP50us, KernelEndUs) says how much of the
// difference is the path rather than the measurement.
const peerTolerance = 0.10

func (o *PeerOptions) defaults() error {
	if o.ResultsDir == "" {
		o.ResultsDir = "results"
	}
	if o.Rate == 0 {
		o.Rate = 1000
	}
	if o.Duration == 0 {
		o.Duration = 5 * time.Second
	}
	if o.Repetitions == 0 {
		o.Repetitions = 3
	}
	if len(o.Protocols) == 0 {
		o.Protocols = []string{"udp", "tcp"}
	}
	if o.Size == 0 {
		o.Size = 64
	}
	if o.Placement == nil {
		p := DefaultPlacement
		o.Placement = &p
	}
	if o.GenDriver == "" {
		o.GenDriver = "af_xdp"
	}
	if o.Sockperf == "" {
		o.Sockperf = "sockperf"
	}
	var errs []error
	// One message in flight: at 20k/s sockperf has 50 µs per message, a
	// few kernel-to-kernel round trips here; faster, it would measure its
	// own waiting.
	if !(o.Rate > 0 && o.Rate <= 20000) {
		errs = append(errs, fmt.Errorf("rate %g: want (0, 20000] messages/s (sockperf ping-pong has one message in flight)", o.Rate))
	}
	if o.Duration < time.Second || o.Duration > 600*time.Second || o.Duration%time.Second != 0 {
		errs = append(errs, fmt.Errorf("duration %v: want whole seconds from 1s to 600s (sockperf's -t)", o.Duration))
	}
	if o.Repetitions < 1 || o.Repetitions > 100 {
		errs = append(errs, fmt.Errorf("repetitions %d: want 1..100", o.Repetitions))
	}
	for _, p := range o.Protocols {
		if p != "udp" && p != "tcp" {
			errs = append(errs, fmt.Errorf("protocol %q: allowed udp, tcp", p))
		}
	}
	if o.Size < loadgen.HeaderLen || o.Size > 1472 {
		errs = append(errs, fmt.Errorf("size %d: want %d..1472 bytes (the generator's header, one frame)", o.Size, loadgen.HeaderLen))
	}
	return errors.Join(errs...)
}

// PeerCheck brings up a local testbed (or, with o.Testbed a testbed file,
// reaches its nodes over SSH), holds PM QoS, and for each repetition
// and protocol runs jrgen against jrapp's kernel echo and sockperf ping-pong
// against sockperf server at o.Rate for o.Duration, alternating which tool
// goes first (plus, unless o.NoFloor, jrgen against the null reflector once per
// repetition). Every run's log and interval log and peer-check.json go to
// <ResultsDir>/peer-check/<run-id>/; the JSON is rewritten after every run, so
// nothing measured is lost. The result holds whatever was measured, also when
// err is not nil. Agreement is reported, not asserted: a timed check on a
// shared VM is not a pass/fail test (DESIGN.md §8).
func PeerCheck(ctx context.Context, o PeerOptions) (*PeerResult, error) {
	if o.Testbed != nil && !o.Testbed.Builtin {
		ro := RunOptions{Testbed: o.Testbed, Placement: o.Placement}
		if err := checkRemote(peerExperiment(&o), &ro); err != nil {
			return nil, err
		}
		o.Placement = ro.Placement
	}
	if err := o.defaults(); err != nil {
		return nil, err
	}
	for _, b := range []string{"jrgen", "jrapp"} {
		if _, err := os.Stat(filepath.Join(o.BinDir, b)); err != nil {
			return nil, fmt.Errorf("binary %s not found in %s (run make build): %w", b, o.BinDir, err)
		}
	}
	sp, err := exec.LookPath(o.Sockperf)
	if err != nil {
		return nil, fmt.Errorf("sockperf not found (%v): install the Debian package sockperf (make deps does)", err)
	}
	o.Sockperf = sp
	if o.Log != nil {
		fmt.Fprintf(o.Log, "peer check: %g messages/s of %d B, %v per run, %d repetitions, %v\n", o.Rate, o.Size, o.Duration, o.Repetitions, o.Protocols)
	}

	rec := newRunRecord(*o.Placement, o.GenDriver)
	res := &PeerResult{RunRecord: rec, Rate: o.Rate, DurationS: o.Duration.Seconds(), Size: o.Size, Repetitions: o.Repetitions,
		Protocols: o.Protocols, Dir: filepath.Join(o.ResultsDir, PeerCheckName, rec.RunID)}
	res.Tools["sockperf"] = sockperfVersion(sp)
	res.LoadAvg[0] = loadAvg()
	for _, d := range []string{"hist", "logs"} {
		if err := os.MkdirAll(filepath.Join(res.Dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	updateLatest(o.ResultsDir, PeerCheckName, rec.RunID)

	err = peerRun(ctx, &o, res)
	res.End = time.Now().UTC()
	res.LoadAvg[1] = loadAvg()
	switch {
	case err == nil:
		res.State = "complete"
	case ctx.Err() != nil:
		res.State, res.Error = "interrupted", err.Error()
	default:
		res.State, res.Error = "failed", err.Error()
	}
	if werr := res.write(); werr != nil {
		err = errors.Join(err, werr)
	}
	return res, err
}

// peerRun holds the machine still, brings the testbed up and runs every
// (repetition, protocol, tool) there, or on o.Testbed's nodes.
func peerRun(ctx context.Context, o *PeerOptions, res *PeerResult) error {
	if o.Testbed != nil && !o.Testbed.Builtin {
		return peerRunRemote(ctx, o, res)
	}
	res.PMQoS.Requested = "on"
	q, err := pmqos.Hold(0)
	if err != nil {
		res.PMQoS.Error = err.Error()
		return fmt.Errorf("hold PM QoS: %w", err)
	}
	defer q.Release()
	res.PMQoS.Held, res.PMQoS.ValueUs = true, q.Value
	if err := local.EnsureBPFFS(); err != nil {
		return err
	}
	tb, err := local.Up(ctx, local.Options{})
	if err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	defer tb.Down()
	defer os.RemoveAll(filepath.Join("/run/jrbench", tb.ID))
	res.Testbed = tb

	// The experiment runner does jrgen's runs exactly as it does an
	// experiment's points (jrapp started per run, percentiles from the .hlog).
	r := &runner{e: peerExperiment(o), o: RunOptions{BinDir: o.BinDir, Placement: o.Placement, GenDriver: o.GenDriver}, dir: res.Dir, tb: tb,
		site: localSite{tb: tb, binDir: o.BinDir, genDriver: o.GenDriver}}
	return r.peerRuns(ctx, o, res)
}

// peerExperiment is the experiment the check's runner measures: jrgen's
// runs are its points' kind, on the kernel (and the null reflector).
func peerExperiment(o *PeerOptions) *Experiment {
	e := &Experiment{Name: PeerCheckName, App: "echo", Workload: peerWorkload(o, "udp"), Stacks: []StackSpec{{Name: "kernel"}}}
	if !o.NoFloor {
		e.Stacks = append(e.Stacks, StackSpec{Name: "null"})
	}
	return e
}

// peerRunRemote is peerRun on a testbed file's nodes: the same runs through
// the SSH site, with PM QoS held on the nodes.
func peerRunRemote(ctx context.Context, o *PeerOptions, res *PeerResult) error {
	st, err := openSSHSite(ctx, o.Testbed, o.BinDir, res.RunID, o.Log)
	if err != nil {
		return fmt.Errorf("testbed %s: %w", o.Testbed.Name, err)
	}
	defer func() {
		if err := st.close(); err != nil && o.Log != nil {
			fmt.Fprintf(o.Log, "testbed %s: cleaning the nodes: %v\n", o.Testbed.Name, err)
		}
	}()
	res.RemoteTestbed = newRemoteTestbed(o.Testbed)
	res.RemoteTestbed.WorkDirs = st.workDirs()
	res.GenDriver = res.RemoteTestbed.GeneratorNIC
	res.PMQoS.Requested = "on"
	if err := st.holdPMQoS(); err != nil {
		res.PMQoS.Error = err.Error()
		return fmt.Errorf("hold PM QoS on the nodes: %w", err)
	}
	res.PMQoS.Held = true
	r := &runner{e: peerExperiment(o), o: RunOptions{BinDir: o.BinDir, Placement: o.Placement, GenDriver: o.GenDriver}, dir: res.Dir, site: st}
	return r.peerRuns(ctx, o, res)
}

// peerRuns runs every (repetition, protocol, tool) on the runner's site,
// writing peer-check.json after each.
func (r *runner) peerRuns(ctx context.Context, o *PeerOptions, res *PeerResult) error {
	if err := res.write(); err != nil {
		return err
	}
	logf := func(format string, a ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", a...)
		}
	}
	for rep := 0; rep < o.Repetitions; rep++ {
		if !o.NoFloor && slices.Contains(o.Protocols, "udp") {
			if err := ctx.Err(); err != nil {
				return err
			}
			run := r.accounted(func() PeerRun { return r.peerJrgen(ctx, o, "null", "udp", rep) })
			res.Runs = append(res.Runs, run)
			logf("rep %d/%d udp %-10s %s", rep+1, o.Repetitions, run.Tool, describePeerRun(run))
			if err := res.write(); err != nil {
				return err
			}
		}
		for i, proto := range o.Protocols {
			tools := []string{ToolJrgen, ToolSockperf}
			if (rep+i)%2 == 1 {
				// Interleaved: neither tool always runs first (a machine
				// that drifts biases neither).
				tools[0], tools[1] = tools[1], tools[0]
			}
			for _, tool := range tools {
				if err := ctx.Err(); err != nil {
					return err
				}
				run := r.accounted(func() PeerRun {
					if tool == ToolJrgen {
						return r.peerJrgen(ctx, o, "kernel", proto, rep)
					}
					return r.peerSockperf(ctx, o, proto, rep)
				})
				res.Runs = append(res.Runs, run)
				logf("rep %d/%d %s %-10s %s", rep+1, o.Repetitions, proto, run.Tool, describePeerRun(run))
				if err := res.write(); err != nil {
					return err
				}
			}
		}
	}
	return ctx.Err()
}

// accounted is run with the machine's other work and stolen time over it
// (cpuAccount); on an SSH testbed, whose CPUs are not this machine's, none.
func (r *runner) accounted(run func() PeerRun) PeerRun {
	if r.tb == nil {
		return run()
	}
	acct := startCPUAccount()
	p := run()
	p.OtherCPU, p.StealCPU = acct.stop()
	return p
}

func describePeerRun(p PeerRun) string {
	if p.Error != "" {
		return "FAILED: " + p.Error
	}
	s := fmt.Sprintf("p50 %.1f µs, p99 %.1f µs (%d round trips)", p.P50us, p.P99us, p.Count)
	if p.Sockperf != nil {
		s += fmt.Sprintf("; sockperf's own table: p50 %.1f µs, p99 %.1f µs", p.Sockperf.P50us, p.Sockperf.P99us)
	}
	if !p.Valid {
		s += " (invalid: " + p.Reason + ")"
	}
	if p.OtherCPU > disturbedCPU {
		s += fmt.Sprintf(" [disturbed: other work used %.2f cores]", p.OtherCPU)
	}
	return s
}

// disturbedCPU is the other work (cores' worth) above which a run is called
// disturbed: more than the run's own interrupt work at a low rate.
const disturbedCPU = 0.05

// cpuAccount measures the CPU time the machine spends on work other than this
// process and its children over a span: the busy time of /proc/stat
// (procstats.ReadCPU) less the process's own and its waited-for children's
// (getrusage). Every process a run starts has been waited for when it ends, so
// the difference is everyone else's (plus interrupt work, some of it the run's
// own packets).
type cpuAccount struct {
	start time.Time
	cpu   procstats.CPUTimes
	own   time.Duration
	err   error
}

func startCPUAccount() *cpuAccount {
	a := &cpuAccount{start: time.Now()}
	a.cpu, a.err = procstats.ReadCPU()
	a.own = ownCPU()
	return a
}

// stop returns the other work and the stolen time over the span, in cores'
// worth (0, 0 when /proc/stat could not be read).
func (a *cpuAccount) stop() (other, steal float64) {
	now, err := procstats.ReadCPU()
	wall := time.Since(a.start).Seconds()
	if a.err != nil || err != nil || wall <= 0 {
		return 0, 0
	}
	d := now.Sub(a.cpu)
	o := (d.Busy - (ownCPU() - a.own)).Seconds() / wall
	return math.Max(o, 0), d.Steal.Seconds() / wall
}

// ownCPU is the CPU time of this process and of its waited-for children.
func ownCPU() time.Duration {
	var self, children syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(self.Utime) + tv(self.Stime) + tv(children.Utime) + tv(children.Stime)
}

// peerWorkload is jrgen's workload in the check: a constant schedule, since
// sockperf sends at fixed intervals too.
func peerWorkload(o *PeerOptions, proto string) Workload {
	return Workload{Protocol: proto, Size: o.Size, Schedule: "constant", Rates: []float64{o.Rate},
		Duration: Duration{o.Duration}, Warmup: Duration{500 * time.Millisecond},
		LateThreshold: Duration{50 * time.Microsecond}, Mode: "rpc", Connections: 1}
}

// peerJrgen runs jrgen against jrapp on stack (kernel, or null for the floor).
func (r *runner) peerJrgen(ctx context.Context, o *PeerOptions, stack, proto string, rep int) PeerRun {
	tool, server := ToolJrgen, "jrapp -stack kernel"
	if stacks.Has(stack, stacks.Floor) {
		tool, server = ToolJrgenNull, "jrapp -stack null (DPDK reflector)"
	}
	name := fmt.Sprintf("%s_%s_rep%d", tool, proto, rep)
	run := PeerRun{Tool: tool, Server: server, Protocol: proto, Rep: rep, Start: time.Now().UTC(),
		Hlog: filepath.Join("hist", name+".hlog"), Log: filepath.Join("logs", name+".log")}
	defer func() { run.Seconds = time.Since(run.Start).Seconds() }()
	opts, err := stacks.DecodeOptions(stack, nil)
	if err != nil {
		run.Error = err.Error()
		return run
	}
	pt, gen, _, err := r.measure(ctx, probe{Stack: StackSpec{Name: stack, Options: opts}, Rate: o.Rate, Rep: rep,
		Seed: int64(rep + 1), Workload: peerWorkload(o, proto), Hlog: run.Hlog, Log: filepath.Base(run.Log)})
	run.Generator = gen
	if err != nil {
		run.Error = err.Error()
		return run
	}
	run.P50us, run.P99us, run.Count = pt.P50us, pt.P99us, int64(pt.Received)
	run.Valid, run.Reason = pt.Valid, pt.Reason
	return run
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(b))
}

// summarizePeer compares the tools per protocol over the repetitions in which
// both gave a valid number.
func summarizePeer(res *PeerResult) []PeerSummary {
	var out []PeerSummary
	for _, proto := range res.Protocols {
		byRep := map[int]map[string]*PeerRun{}
		for i := range res.Runs {
			p := &res.Runs[i]
			if p.Protocol != proto || !p.ok() {
				continue
			}
			if byRep[p.Rep] == nil {
				byRep[p.Rep] = map[string]*PeerRun{}
			}
			byRep[p.Rep][p.Tool] = p
		}
		s := PeerSummary{Protocol: proto}
		var jp50, jp99, sp50, sp99, np50 []float64
		for _, m := range byRep {
			if n := m[ToolJrgenNull]; n != nil {
				np50 = append(np50, n.P50us)
			}
			j, sp := m[ToolJrgen], m[ToolSockperf]
			if j == nil || sp == nil {
				continue
			}
			s.Reps++
			for _, p := range []*PeerRun{j, sp} {
				if p.OtherCPU > disturbedCPU {
					s.Disturbed++
				}
			}
			jp50, jp99 = append(jp50, j.P50us), append(jp99, j.P99us)
			sp50, sp99 = append(sp50, sp.Sockperf.P50us), append(sp99, sp.Sockperf.P99us)
		}
		if s.Reps > 0 {
			s.JrgenP50us, s.JrgenP99us = median(jp50), median(jp99)
			s.SockperfP50us, s.SockperfP99us = median(sp50), median(sp99)
			s.RatioP50, s.RatioP99 = s.JrgenP50us/s.SockperfP50us, s.JrgenP99us/s.SockperfP99us
			s.AgreeP50 = math.Abs(s.RatioP50-1) <= peerTolerance
			s.AgreeP99 = math.Abs(s.RatioP99-1) <= peerTolerance
			s.JrgenP50Range = [2]float64{slices.Min(jp50), slices.Max(jp50)}
			s.SockperfP50Range = [2]float64{slices.Min(sp50), slices.Max(sp50)}
		}
		if len(np50) > 0 {
			s.NullP50us = median(np50)
			if s.Reps > 0 {
				s.KernelEndUs = s.JrgenP50us - s.NullP50us
				s.PredictedSockperfP50us = s.JrgenP50us + s.KernelEndUs
			}
		}
		out = append(out, s)
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// write rewrites peer-check.json atomically, with the summary of the runs so
// far.
func (res *PeerResult) write() error {
	res.Summary = summarizePeer(res)
	return analysis.WriteFileAtomic(filepath.Join(res.Dir, PeerCheckName+".json"), func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	})
}
