package experiments

// One measurement: a point or a calibration probe, from starting the
// server side to the point's numbers.

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/joyride-bench/joyride/analysis"
	"github.com/joyride-bench/joyride/loadgen"
	"github.com/joyride-bench/joyride/stacks"
)

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
	var daemonBinary string
	f, err := stacks.Lookup(p.Stack.Name)
	if err != nil {
		return pt, nil, "", err
	}
	if f.Daemon != nil {
		d := f.Daemon(p.Stack.Options, env)
		daemonBinary = d.Binary
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
			"-stack", f.ServerStack(), "-options", string(opts), "-iface", srv.Iface,
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
		procs[appName(i)] = a
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
	// The point's watchdog: every role is killed if it stops making
	// progress under the load (watchdog.go).
	wd := newWatchdog(w.Warmup.Duration+w.Duration.Duration, stallGrace)
	for i, a := range apps {
		wd.watchServer(appName(i), a)
	}
	if dmn != nil {
		wd.watchServer(daemonBinary, dmn)
	}
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
	out, genLog, gerr := r.generator(withClientWatch(ctx, wd.watchGenerator), bound, append(genArgs,
		"-rate", strconv.FormatFloat(p.Rate, 'f', -1, 64),
		"-duration", w.Duration.String(), "-warmup", w.Warmup.String(), "-size", strconv.Itoa(size),
		"-sizes", w.SizeDist, "-window", strconv.Itoa(p.Window),
		"-schedule", w.Schedule, "-seed", strconv.FormatUint(uint64(p.Seed), 10),
		"-late", w.LateThreshold.String(), "-interval", w.Interval.String(), "-hlog", filepath.Join(r.dir, p.Hlog),
		"-protocol", proto, "-conns", strconv.Itoa(conns), "-service", w.Service,
		"-mode", cmp.Or(w.Mode, "rpc"))...)
	// The generator's result, when it gave one, says when the load ended:
	// the watchdog judges the servers' silence up to then.
	var res *loadgen.Result
	var resErr error
	loadEnd := time.Time{}
	if gerr == nil {
		var g loadgen.Result
		if resErr = json.Unmarshal(out, &g); resErr == nil {
			res = &g
			loadEnd = g.Start.Add(w.Warmup.Duration + w.Duration.Duration)
		}
	}
	stalled := wd.generatorEnded(loadEnd)
	cpuLoad.Stop()
	sample(1)
	for _, v := range r.lastResources {
		pt.ServerMemMiB += float64(v[1].PSSKiB) / 1024
	}
	// A server-side process that died during the point makes it a failure,
	// not a latency result (whatever the generator saw).
	died := -1
	for i, a := range apps {
		if a.died() && !a.stalled && died < 0 {
			died = i
		}
	}
	daemonDied := dmn != nil && dmn.died() && !dmn.stalled
	var logs []string
	for _, a := range apps {
		logs = append(logs, a.stop())
	}
	serverLog := strings.Join(logs, "\n== next instance\n")
	logPath := filepath.Join(r.dir, "logs", p.Log)
	os.WriteFile(logPath, []byte("== generator stderr\n"+genLog+"\n== server\n"+serverLog), 0o644)
	// Why the point failed, if it did, the first cause first: a role the
	// watchdog killed, the generator, a server that hung or died.
	var failure error
	switch {
	case len(stalled) > 0:
		failure = fmt.Errorf("%w (log: %s)", stallReason(stalled), logPath)
	case gerr != nil:
		failure = fmt.Errorf("%w (log: %s)", gerr, logPath)
	}
	// A server that did not stop on SIGTERM was hung (stopped, deadlocked,
	// spinning): whatever the generator saw, it did not measure a stack.
	for _, a := range apps {
		if a.hung && failure == nil {
			failure = fmt.Errorf("jrapp hung: it did not exit within %v of SIGTERM and was killed (log: %s)", stopGrace, logPath)
		}
	}
	if dmn != nil && !daemonDied {
		if dmn.stop(); dmn.hung && failure == nil {
			failure = fmt.Errorf("the stack's daemon hung: it did not exit within %v of SIGTERM and was killed", stopGrace)
		}
	}
	switch {
	case failure != nil:
	case daemonDied:
		failure = fmt.Errorf("the stack's daemon exited during the point: %s", lastLine(dmn.stop()))
	case died >= 0:
		failure = fmt.Errorf("jrapp exited during the point: %s", lastLine(logs[died]))
	}
	// What the generator measured is kept, failed point or not: its
	// counters, and the latencies of its log (a failed point's are what it
	// had when its server stopped).
	if resErr != nil {
		return pt, nil, serverLog, cmp.Or(failure, fmt.Errorf("generator output: %v", resErr))
	}
	if res != nil {
		fillFromGenerator(&pt, p, res, cpuLoad)
	}
	if failure != nil {
		// Only a generator that gave its result wrote its log: a file
		// there otherwise is an earlier attempt's (a resumed run).
		if h, err := analysis.ReadHlog(filepath.Join(r.dir, p.Hlog)); res != nil && err == nil && h.TotalCount() > 0 {
			analysis.FillLatency(&pt, analysis.Summarize(h))
		}
		return pt, res, serverLog, failure
	}
	// Percentiles come from the interval log on disk, as any later analysis will.
	h, err := analysis.ReadHlog(filepath.Join(r.dir, p.Hlog))
	if err != nil {
		return pt, res, serverLog, err
	}
	analysis.FillLatency(&pt, analysis.Summarize(h))
	// Stationarity and independence of the per-interval medians, and the
	// generator's arrival check (reported, and flagged in summary.csv and
	// report.md when they fail; too few intervals says so).
	if c, err := analysis.CheckPoint(filepath.Join(r.dir, p.Hlog)); err == nil {
		c.SetArrival(res.ArrivalA2, res.ArrivalN)
		pt.Checks = &c
	}
	pt.Valid, pt.UpperBound, pt.Reason = judge(res)
	return pt, res, serverLog, nil
}

// fillFromGenerator puts the generator's counters into the point: rates,
// counts, throughput, and the server's busy cores over the measured span.
func fillFromGenerator(pt *analysis.Point, p probe, res *loadgen.Result, cpuLoad *cpuSampler) {
	w := p.Workload
	pt.AchievedRPS, pt.Sent, pt.Received, pt.Lost, pt.Late = res.AchievedRPS, res.Sent, res.Received, res.Lost, res.Late
	bytes := res.ReceivedBytes // counted per reply by the TCP engine
	if bytes == 0 {
		bytes = res.Received * uint64(pt.Size)
	}
	pt.Gbps = float64(bytes) * 8 / w.Duration.Seconds() / 1e9
	from := res.Start.Add(time.Millisecond + w.Warmup.Duration)
	if cores, ok := cpuLoad.Busy(from, from.Add(w.Duration.Duration)); ok {
		pt.ServerCores = cores
		if res.AchievedRPS > 0 {
			pt.CPUUsPerReq = cores / res.AchievedRPS * 1e6
		}
	}
}

// appName names application instance i (from 0) in meta.json's resources
// and the watchdog's reasons: jrapp, jrapp2, ...
func appName(i int) string {
	if i == 0 {
		return "jrapp"
	}
	return fmt.Sprintf("jrapp%d", i+1)
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
	out, stderr, err := r.site.runClient(gctx, "jrgen", strings.Join(cpus, ","), append(base, args...), "-hlog")
	if err != nil {
		if gctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
			return out, stderr, fmt.Errorf("generator exceeded its time bound of %v", bound)
		}
		return out, stderr, fmt.Errorf("generator: %v: %s", err, lastLine(stderr))
	}
	return out, stderr, nil
}

// Late spells that mark a point as an upper bound rather than invalid
// (loadgen's late spells): each at most maxStallSpell of scheduled time, and
// together at most maxStallShare of the measured span. The AMD EPYC guest
// takes a vCPU away for up to ~1 ms (a few ms in bursts); a generator that
// cannot keep up makes one spell as long as the point.
const (
	maxStallSpell = 20 * time.Millisecond
	maxStallShare = 0.1
)

// judge decides whether a point measured the stack or the generator. A point
// where the generator could not keep its own schedule for its own reasons
// (it fell behind and stayed behind, or could not send) is not the stack's
// result: invalid. A generator more than 1% late only in short spells,
// on time between them, was stalled by the VM: its latencies, counted from
// the schedule, include those stalls, so the point is valid as an upper
// bound, and reason says so.
func judge(res *loadgen.Result) (valid, upper bool, reason string) {
	var why []string
	if res.Scheduled > 0 && float64(res.NotSent) > 0.001*float64(res.Scheduled) {
		why = append(why, fmt.Sprintf("generator could not send %d of %d requests", res.NotSent, res.Scheduled))
	}
	if res.Received == 0 {
		why = append(why, "no reply received")
	}
	late := res.Sent > 0 && float64(res.Late) > 0.01*float64(res.Sent)
	stalled := late && res.LateSpells > 0 &&
		res.LongestLateSpellUs <= float64(maxStallSpell.Microseconds()) &&
		res.LateSpellsUs <= maxStallShare*res.DurationS*1e6
	pct := 100 * float64(res.Late) / math.Max(1, float64(res.Sent))
	if late && !stalled {
		why = append(why, fmt.Sprintf("generator sent %.1f%% of requests late (it fell behind: longest late spell %.1f ms)",
			pct, res.LongestLateSpellUs/1e3))
	}
	if len(why) > 0 {
		return false, false, strings.Join(why, "; ")
	}
	if stalled {
		return true, true, fmt.Sprintf("upper bound: generator sent %.1f%% of requests late in %d short spells (longest %.2f ms, the VM stalling it)",
			pct, res.LateSpells, res.LongestLateSpellUs/1e3)
	}
	return true, false, ""
}
