package experiments

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/joyride-bench/joyride/analysis"
	"github.com/joyride-bench/joyride/loadgen"
	"github.com/joyride-bench/joyride/stacks"
	"github.com/joyride-bench/joyride/testbed/local"
	"github.com/joyride-bench/joyride/testbed/pmqos"
)

// The peer check (issue 5, "Validation against a peer") asks whether the
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
	// Within20 is |RatioP50 - 1| <= 0.2, the requirement of issue 5.
	Within20 bool `json:"within_20pct"`
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

// peerTolerance is the agreement issue 5 asks for: p50s within 20%.
const peerTolerance = 0.20

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

// PeerCheck brings up a local testbed, holds PM QoS, and for each repetition
// and protocol runs jrgen against jrapp's kernel echo and sockperf ping-pong
// against sockperf server at o.Rate for o.Duration, alternating which tool
// goes first (plus, unless o.NoFloor, jrgen against the null reflector once per
// repetition). Every run's log and interval log and peer-check.json go to
// <ResultsDir>/peer-check/<run-id>/; the JSON is rewritten after every run, so
// nothing measured is lost. The result holds whatever was measured, also when
// err is not nil. Agreement is reported, not asserted: a timed check on a
// shared VM is not a pass/fail test (DESIGN.md §8).
func PeerCheck(ctx context.Context, o PeerOptions) (*PeerResult, error) {
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
// (repetition, protocol, tool).
func peerRun(ctx context.Context, o *PeerOptions, res *PeerResult) error {
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
	r := &runner{e: &Experiment{Name: PeerCheckName, App: "echo", Workload: peerWorkload(o, "udp")},
		o: RunOptions{BinDir: o.BinDir, Placement: o.Placement, GenDriver: o.GenDriver}, dir: res.Dir, tb: tb,
		site: localSite{tb: tb, binDir: o.BinDir, genDriver: o.GenDriver}}
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
			acct := startCPUAccount()
			run := r.peerJrgen(ctx, o, "null", "udp", rep)
			run.OtherCPU, run.StealCPU = acct.stop()
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
				var run PeerRun
				acct := startCPUAccount()
				if tool == ToolJrgen {
					run = r.peerJrgen(ctx, o, "kernel", proto, rep)
				} else {
					run = r.peerSockperf(ctx, o, proto, rep)
				}
				run.OtherCPU, run.StealCPU = acct.stop()
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
// process and its children over a span: the busy time of /proc/stat less the
// process's own and its waited-for children's (getrusage). Every process a
// run starts has been waited for when it ends, so the difference is
// everyone else's (plus interrupt work, some of it the run's own packets).
type cpuAccount struct {
	start       time.Time
	busy, steal time.Duration
	own         time.Duration
	err         error
}

func startCPUAccount() *cpuAccount {
	a := &cpuAccount{start: time.Now()}
	a.busy, a.steal, a.err = machineCPU()
	a.own = ownCPU()
	return a
}

// stop returns the other work and the stolen time over the span, in cores'
// worth (0, 0 when /proc/stat could not be read).
func (a *cpuAccount) stop() (other, steal float64) {
	busy, st, err := machineCPU()
	wall := time.Since(a.start).Seconds()
	if a.err != nil || err != nil || wall <= 0 {
		return 0, 0
	}
	o := (busy - a.busy - (ownCPU() - a.own)).Seconds() / wall
	return math.Max(o, 0), (st - a.steal).Seconds() / wall
}

// machineCPU reads the busy (user, nice, system, irq, softirq) and stolen
// time of all CPUs from /proc/stat.
func machineCPU() (busy, steal time.Duration, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var v [8]int64
	for i := range v {
		if v[i], err = strconv.ParseInt(f[i+1], 10, 64); err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
	}
	// USER_HZ is 100 on every Linux the project runs on.
	tick := 10 * time.Millisecond
	busy = time.Duration(v[0]+v[1]+v[2]+v[5]+v[6]) * tick
	return busy, time.Duration(v[7]) * tick, nil
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
	if stack == "null" {
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

// peerSockperf runs `sockperf server` in the server namespace and `sockperf
// ping-pong` against it in the client namespace, each pinned where its jrgen
// counterpart is.
func (r *runner) peerSockperf(ctx context.Context, o *PeerOptions, proto string, rep int) PeerRun {
	name := fmt.Sprintf("%s_%s_rep%d", ToolSockperf, proto, rep)
	run := PeerRun{Tool: ToolSockperf, Server: "sockperf server", Protocol: proto, Rep: rep, Start: time.Now().UTC(),
		Hlog: filepath.Join("hist", name+".hlog"), Log: filepath.Join("logs", name+".log")}
	defer func() { run.Seconds = time.Since(run.Start).Seconds() }()
	fail := func(err error) PeerRun { run.Error = err.Error(); return run }

	pl := *r.o.Placement
	srv, err := r.startSockperfServer(ctx, o.Sockperf, proto, pl.Server)
	if err != nil {
		return fail(err)
	}
	defer srv.stop()

	fullLog := filepath.Join(r.dir, "logs", name+".full.csv")
	args := []string{"-c", strconv.Itoa(pl.Generator), o.Sockperf, "ping-pong",
		"-i", r.tb.Server.Addr.Addr().String(), "-p", strconv.Itoa(ServerPort),
		"-m", strconv.Itoa(o.Size), "-t", strconv.Itoa(int(o.Duration / time.Second)),
		"--mps", strconv.FormatFloat(o.Rate, 'f', 0, 64),
		// Round trips, not sockperf's default of half of one.
		"--full-rtt", "--full-log", fullLog}
	if proto == "tcp" {
		args = append(args, "--tcp")
	}
	// sockperf adds its warm-up (0.4 s), a 2 s pause after it and its
	// cool-down to -t.
	sctx, cancel := context.WithTimeout(ctx, o.Duration+30*time.Second)
	defer cancel()
	cmd := r.tb.Command(sctx, r.tb.Client, "taskset", args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	started := time.Now()
	rerr := cmd.Run()
	serverDied := srv.died()
	serverLog := srv.stop()
	logText := "== " + strings.Join(cmd.Args, " ") + "\n" + out.String() +
		"\n== sockperf server\n" + serverLog
	os.WriteFile(filepath.Join(r.dir, run.Log), []byte(logText), 0o644)
	if rerr != nil {
		if sctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
			return fail(fmt.Errorf("sockperf ping-pong did not finish within %v (log: %s)", o.Duration+30*time.Second, run.Log))
		}
		return fail(fmt.Errorf("sockperf ping-pong: %v: %s (log: %s)", rerr, lastLine(stripANSI(out.String())), run.Log))
	}
	if serverDied {
		return fail(fmt.Errorf("sockperf server exited during the run: %s (log: %s)", lastLine(stripANSI(serverLog)), run.Log))
	}
	report, err := parseSockperf(out.Bytes())
	if err != nil {
		return fail(fmt.Errorf("%w (log: %s)", err, run.Log))
	}
	run.Sockperf = report
	samples, err := readSockperfFullLog(fullLog)
	if err != nil {
		return fail(err)
	}
	report.FullLogSamples = len(samples)
	if len(samples) == 0 {
		return fail(fmt.Errorf("sockperf's --full-log %s holds no round trips", fullLog))
	}
	// The same estimator as for jrgen: the samples go into an interval log
	// of the project's histogram shape and are read back from it.
	if err := writeSamplesHlog(filepath.Join(r.dir, run.Hlog), started, samples); err != nil {
		return fail(err)
	}
	h, err := analysis.ReadHlog(filepath.Join(r.dir, run.Hlog))
	if err != nil {
		return fail(err)
	}
	l := analysis.Summarize(h)
	run.P50us, run.P99us, run.Count = l.P50us, l.P99us, l.Count
	run.Valid = true
	var why []string
	if report.RateTooHigh {
		why = append(why, fmt.Sprintf("sockperf could not keep %g messages/s (it never waited between sends)", o.Rate))
	}
	if report.Sent > 0 && float64(report.Dropped) > 0.001*float64(report.Sent) {
		why = append(why, fmt.Sprintf("sockperf lost %d of %d messages", report.Dropped, report.Sent))
	}
	if len(why) > 0 {
		run.Valid, run.Reason = false, strings.Join(why, "; ")
	}
	return run
}

// startSockperfServer starts `sockperf server` in the server namespace, pinned
// to cpu, and waits until its socket is bound there.
func (r *runner) startSockperfServer(ctx context.Context, bin, proto string, cpu int) (*server, error) {
	args := []string{"-c", strconv.Itoa(cpu), bin, "server", "-i", r.tb.Server.Addr.Addr().String(),
		"-p", strconv.Itoa(ServerPort)}
	if proto == "tcp" {
		args = append(args, "--tcp")
	}
	s := &server{exited: make(chan struct{})}
	s.cmd = r.tb.Command(context.Background(), r.tb.Server, "taskset", args...)
	s.cmd.Stdout, s.cmd.Stderr = &s.log, &s.log
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start sockperf server: %w", err)
	}
	go func() {
		s.cmd.Wait()
		close(s.exited)
	}()
	// Ready is when the port is bound (UDP) or listening (TCP) in the
	// server's namespace: sockperf prints no line that means ready in every
	// version.
	deadline := time.Now().Add(10 * time.Second)
	for {
		bound, err := portBound(ctx, r.tb, proto, ServerPort)
		if err != nil {
			s.stop()
			return nil, err
		}
		if bound {
			return s, nil
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("sockperf server exited before it was ready: %s", lastLine(stripANSI(s.log.String())))
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("sockperf server has not bound %s port %d after 10 s: %s", proto, ServerPort, lastLine(stripANSI(s.log.String())))
		}
	}
}

// portBound reports whether a socket of the server namespace is bound to
// port (UDP) or listens on it (TCP), from /proc/net/{udp,tcp} read there.
func portBound(ctx context.Context, tb *local.Testbed, proto string, port int) (bool, error) {
	path := "/proc/net/" + proto
	out, err := tb.Command(ctx, tb.Server, "cat", path).Output()
	if err != nil {
		return false, fmt.Errorf("read %s in %s: %w", path, tb.Server.Netns, err)
	}
	want := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(string(out), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasSuffix(f[1], want) {
			continue
		}
		if proto == "udp" || f[3] == "0A" { // 0A: TCP_LISTEN
			return true, nil
		}
	}
	return false, nil
}

var (
	ansiRE       = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)
	spPercentRE  = regexp.MustCompile(`--->\s*percentile\s+([0-9.]+)\s*=\s*([0-9.]+)`)
	spMaxMinRE   = regexp.MustCompile(`--->\s*<(MAX|MIN)>\s*observation\s*=\s*([0-9.]+)`)
	spTotalRE    = regexp.MustCompile(`Total\s+(\d+)\s+observations`)
	spValidRE    = regexp.MustCompile(`\[Valid Duration\].*SentMessages=(\d+);\s*ReceivedMessages=(\d+)`)
	spDroppedRE  = regexp.MustCompile(`#\s*dropped messages\s*=\s*(\d+);\s*#\s*duplicated messages\s*=\s*(\d+);\s*#\s*out-of-order messages\s*=\s*(\d+)`)
	spAvgRE      = regexp.MustCompile(`avg-(?:rtt|lat)=([0-9.]+)`)
	spErrorRE    = regexp.MustCompile(`(?i)(^|sockperf:\s*)error\b|\bERROR:`)
	spNoReplyMsg = "No messages were received from the server"
)

func stripANSI(s string) string { return ansiRE.ReplaceAllString(s, "") }

// parseSockperf reads the report of `sockperf ping-pong --full-rtt` from its
// output. It fails, saying what is wrong, when sockperf reported an error, got
// no replies, printed latencies (half round trips) instead of round trips, or
// left out its 50th or 99th percentile.
func parseSockperf(out []byte) (*SockperfReport, error) {
	text := stripANSI(string(out))
	var errs []string
	roundTrip, latency := false, false
	for _, line := range strings.Split(text, "\n") {
		l := strings.TrimSpace(line)
		switch {
		case strings.Contains(l, spNoReplyMsg):
			return nil, errors.New("sockperf received no replies from the server (" + l + "); " +
				"its client drops replies that still carry its client flag, so its server must be a sockperf server, not a plain echo")
		case strings.Contains(l, "No valid observations found"), strings.Contains(l, "Test end before test start"),
			strings.Contains(l, "Test ends uncompleted"), spErrorRE.MatchString(l):
			errs = append(errs, l)
		case strings.Contains(l, "Summary: Round trip is"):
			roundTrip = true
		case strings.Contains(l, "Summary: Latency is"):
			latency = true
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("sockperf reported: %s", strings.Join(errs, "; "))
	}
	if latency && !roundTrip {
		return nil, errors.New("sockperf reported one-way latency (half of each round trip), not round trips: run it with --full-rtt")
	}
	r := &SockperfReport{Percentiles: map[string]float64{}}
	for _, m := range spPercentRE.FindAllStringSubmatch(text, -1) {
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			return nil, fmt.Errorf("sockperf percentile %s: %q is not a number", m[1], m[2])
		}
		r.Percentiles[m[1]] = v
	}
	for _, m := range spMaxMinRE.FindAllStringSubmatch(text, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		r.Percentiles[strings.ToLower(m[1])] = v
	}
	p50, ok50 := percentileOf(r.Percentiles, 50)
	p99, ok99 := percentileOf(r.Percentiles, 99)
	if !ok50 || !ok99 {
		return nil, fmt.Errorf("sockperf printed no 50th and 99th percentile (its percentile table: %v)", r.Percentiles)
	}
	r.P50us, r.P99us = p50, p99
	if m := spTotalRE.FindStringSubmatch(text); m != nil {
		r.Observations, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := spValidRE.FindStringSubmatch(text); m != nil {
		r.Sent, _ = strconv.ParseInt(m[1], 10, 64)
		r.Received, _ = strconv.ParseInt(m[2], 10, 64)
	}
	if m := spDroppedRE.FindStringSubmatch(text); m != nil {
		r.Dropped, _ = strconv.ParseInt(m[1], 10, 64)
		r.Duplicated, _ = strconv.ParseInt(m[2], 10, 64)
		r.OutOfOrder, _ = strconv.ParseInt(m[3], 10, 64)
	}
	if m := spAvgRE.FindStringSubmatch(text); m != nil {
		r.AvgUs, _ = strconv.ParseFloat(m[1], 64)
	}
	r.RateTooHigh = strings.Contains(text, "message-per-second rate is too high")
	if r.Observations <= 0 || r.Received <= 0 {
		return nil, fmt.Errorf("sockperf reported %d observations and %d messages received: nothing measured", r.Observations, r.Received)
	}
	if !roundTrip {
		return nil, errors.New("sockperf printed no \"Summary: Round trip is\" line: cannot tell round trips from half round trips")
	}
	return r, nil
}

// percentileOf finds percentile p in sockperf's table, keyed "50.000".
func percentileOf(t map[string]float64, p float64) (float64, bool) {
	for k, v := range t {
		if f, err := strconv.ParseFloat(k, 64); err == nil && math.Abs(f-p) < 1e-9 {
			return v, true
		}
	}
	return 0, false
}

// spSample is one round trip of sockperf's --full-log.
type spSample struct {
	TxS   float64 // send time, seconds on sockperf's clock
	RTTus float64
}

// readSockperfFullLog reads the per-message rows of a sockperf --full-log
// ("packet, txTime(sec), rxTime(sec), rtt(usec)").
func readSockperfFullLog(path string) ([]spSample, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("sockperf --full-log: %w", err)
	}
	defer f.Close()
	return parseSockperfFullLog(f)
}

func parseSockperfFullLog(rd io.Reader) ([]spSample, error) {
	var out []spSample
	sc := bufio.NewScanner(rd)
	inRows := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "packet,") {
			inRows = true
			continue
		}
		if !inRows {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) != 4 {
			if strings.HasPrefix(line, "---") {
				inRows = false // the end of the table
			}
			continue
		}
		tx, err1 := strconv.ParseFloat(strings.TrimSpace(f[1]), 64)
		rtt, err2 := strconv.ParseFloat(strings.TrimSpace(f[3]), 64)
		if err1 != nil || err2 != nil || rtt < 0 {
			return nil, fmt.Errorf("sockperf --full-log: bad row %q", line)
		}
		out = append(out, spSample{TxS: tx, RTTus: rtt})
	}
	return out, sc.Err()
}

// writeSamplesHlog writes round trips as an interval log: one interval per
// second of send time, anchored at start (sockperf's clock has its own epoch).
func writeSamplesHlog(path string, start time.Time, samples []spSample) error {
	t0 := samples[0].TxS
	var ivs []*hdrhistogram.Histogram
	for _, s := range samples {
		k := max(int(s.TxS-t0), 0)
		for len(ivs) <= k {
			h := analysis.NewHistogram()
			ms := start.Add(time.Duration(len(ivs)) * time.Second).UnixMilli()
			h.SetStartTimeMs(ms)
			h.SetEndTimeMs(ms + 1000)
			ivs = append(ivs, h)
		}
		ns := int64(math.Round(s.RTTus * 1000))
		if err := ivs[k].RecordValue(max(ns, analysis.HistLowestNs)); err != nil {
			return fmt.Errorf("sockperf round trip %.3f µs: %w", s.RTTus, err)
		}
	}
	return analysis.WriteFileAtomic(path, func(w io.Writer) error { return analysis.WriteHlog(w, start, ivs) })
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(b))
}

// sockperfVersion is the first line of `sockperf --version`.
func sockperfVersion(bin string) string {
	out, _ := exec.Command(bin, "--version").CombinedOutput()
	for _, l := range strings.Split(stripANSI(string(out)), "\n") {
		if l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "sockperf:")); l != "" {
			return strings.Trim(l, "= ")
		}
	}
	return "unknown"
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
			s.Within20 = math.Abs(s.RatioP50-1) <= peerTolerance
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
