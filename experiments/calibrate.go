package experiments

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/joyride-bench/joyride/internal/tsc"
	"github.com/joyride-bench/joyride/loadgen"
	"github.com/joyride-bench/joyride/stacks"
	"golang.org/x/sys/unix"
)

// Calibration is what the testbed itself can do, measured at the start of a run
// (and by `jrbench calibrate`): the references every result is read against.
type Calibration struct {
	Seconds float64 `json:"seconds"`
	// Rate is the offered load of the latency probes, requests/s.
	Rate float64 `json:"rate"`
	// Wire is the packet-rate limit of the wire, from a DPDK blaster.
	Wire *WireLimit `json:"wire,omitempty"`
	// RoundTrip is the blaster against the null reflector: the most requests/s
	// the wire and a do-nothing server can turn around, with no schedule to keep.
	// The generator's highest sustained rate is compared with it.
	RoundTrip *WireLimit `json:"round_trip,omitempty"`
	// Null is the null stack's round trip: the floor of wire + generator.
	Null *ProbeLatency `json:"null,omitempty"`
	// Kernel and KernelNoQoS are the kernel's round trip with and without the PM
	// QoS request: what the VM's idle policy alone costs.
	Kernel      *ProbeLatency `json:"kernel,omitempty"`
	KernelNoQoS *ProbeLatency `json:"kernel_no_pm_qos,omitempty"`
	// AA is the same point (the kernel at Rate) measured twice: the difference
	// is the noise floor below which two results cannot be told apart.
	AA *AATest `json:"aa,omitempty"`
	// Stalls are the time each CPU was taken from a spinning thread.
	Stalls []CPUStalls `json:"vcpu_stalls,omitempty"`
	// Errors are the probes that failed (the others still count).
	Errors []string `json:"errors,omitempty"`
}

// WireLimit is the blaster's result: frames sent at the generator and counted
// at the peer's interface.
type WireLimit struct {
	SentPPS      float64 `json:"sent_pps"`
	DeliveredPPS float64 `json:"delivered_pps"` // counted at the peer (raw) or back at the blaster (round trip)
	FrameBytes   int     `json:"frame_bytes"`
	Seconds      float64 `json:"seconds"`
}

// ProbeLatency is one latency probe's result.
type ProbeLatency struct {
	Stack  string  `json:"stack"`
	PMQoS  bool    `json:"pm_qos"`
	P50us  float64 `json:"p50_us"`
	P99us  float64 `json:"p99_us"`
	P999us float64 `json:"p999_us"`
	Count  int64   `json:"count"`
	Valid  bool    `json:"valid"`
	Reason string  `json:"reason,omitempty"`
}

// AATest is an A/A comparison: the same point twice.
type AATest struct {
	Stack      string       `json:"stack"`
	First      ProbeLatency `json:"first"`
	Second     ProbeLatency `json:"second"`
	NoiseP50us float64      `json:"noise_p50_us"`
	NoiseP99us float64      `json:"noise_p99_us"`
}

// CPUStalls is one CPU's stall probe.
type CPUStalls struct {
	CPU int `json:"cpu"`
	tsc.Stalls
}

// calibrationWorkload is the probes' load: low enough that nothing queues.
func calibrationWorkload() Workload {
	return Workload{Protocol: "udp", Size: 64, Schedule: "poisson", Rates: []float64{10000},
		Duration: Duration{time.Second}, Warmup: Duration{200 * time.Millisecond},
		LateThreshold: Duration{50 * time.Microsecond}}
}

// calibrate measures the testbed, wherever the site runs the roles. setQoS
// switches the PM QoS request (for the no-QoS probe) and must leave it as the
// run wants it; it is nil when the run holds none it can release (the nodes
// of an SSH testbed hold theirs for the whole run).
func (r *runner) calibrate(ctx context.Context, setQoS func(on bool) error) *Calibration {
	start := time.Now()
	w := calibrationWorkload()
	c := &Calibration{Rate: w.Rates[0]}
	fail := func(what string, err error) { c.Errors = append(c.Errors, what+": "+err.Error()) }

	c.Stalls = r.site.stalls(500*time.Millisecond, r.o.Placement.Server, r.o.Placement.Generator)

	if wl, err := r.blast(ctx, time.Second); err != nil {
		fail("wire limit", err)
	} else {
		c.Wire = wl
	}
	if rt, err := r.blastReflected(ctx, time.Second); err != nil {
		fail("round-trip limit", err)
	} else {
		c.RoundTrip = rt
	}
	probeStack := func(name, label string, rep int) (*ProbeLatency, error) {
		opts, err := stacks.DecodeOptions(name, nil)
		if err != nil {
			return nil, err
		}
		pt, _, _, err := r.measure(ctx, probe{Stack: StackSpec{Name: name, Options: opts}, Rate: c.Rate, Rep: rep,
			Seed: 1, Workload: w, Hlog: filepath.Join("hist", "calibration", label+".hlog"), Log: "calibration_" + label + ".log"})
		if err != nil {
			return nil, err
		}
		return &ProbeLatency{Stack: name, PMQoS: r.meta.PMQoS.Held, P50us: pt.P50us, P99us: pt.P99us, P999us: pt.P999us,
			Count: int64(pt.Received), Valid: pt.Valid, Reason: pt.Reason}, nil
	}
	var err error
	if c.Null, err = probeStack("null", "null", 0); err != nil {
		fail("null round trip", err)
	}
	if c.Kernel, err = probeStack("kernel", "kernel", 0); err != nil {
		fail("kernel round trip", err)
	}
	if second, err := probeStack("kernel", "kernel-aa", 1); err != nil {
		fail("A/A test", err)
	} else if c.Kernel != nil {
		c.AA = &AATest{Stack: "kernel", First: *c.Kernel, Second: *second,
			NoiseP50us: math.Abs(c.Kernel.P50us - second.P50us), NoiseP99us: math.Abs(c.Kernel.P99us - second.P99us)}
	}
	if setQoS != nil {
		if err := setQoS(false); err != nil {
			fail("release PM QoS", err)
		} else {
			if c.KernelNoQoS, err = probeStack("kernel", "kernel-no-pm-qos", 0); err != nil {
				fail("kernel round trip without PM QoS", err)
			} else {
				c.KernelNoQoS.PMQoS = false
			}
			if err := setQoS(true); err != nil {
				fail("hold PM QoS again", err)
			}
		}
	}
	c.Seconds = time.Since(start).Seconds()
	return c
}

// blast measures the wire's packet-rate limit: the generator sends minimum-size
// frames as fast as its port takes them, and the server's interface counts what
// arrives (no stack runs there; the kernel drops the frames unanswered).
func (r *runner) blast(ctx context.Context, d time.Duration) (*WireLimit, error) {
	before, err := r.serverRxPackets(ctx)
	if err != nil {
		return nil, err
	}
	out, _, err := r.generator(ctx, d+30*time.Second, "-blast", "raw", "-duration", d.String())
	if err != nil {
		return nil, err
	}
	after, err := r.serverRxPackets(ctx)
	if err != nil {
		return nil, err
	}
	var b loadgen.BlastResult
	if err := json.Unmarshal(out, &b); err != nil {
		return nil, fmt.Errorf("blaster output: %v", err)
	}
	return &WireLimit{SentPPS: b.SentPPS, DeliveredPPS: float64(after-before) / b.Seconds, FrameBytes: b.FrameBytes, Seconds: b.Seconds}, nil
}

// blastReflected blasts 64-byte UDP requests at the null reflector and counts
// the replies that come back.
func (r *runner) blastReflected(ctx context.Context, d time.Duration) (*WireLimit, error) {
	opts, err := json.Marshal(map[string]any{"driver": "af_xdp", "burst": 32})
	if err != nil {
		return nil, err
	}
	pl := *r.o.Placement
	end := r.site.serverEnd()
	srv, err := r.site.startServer(ctx, "jrapp", pl.Server, "-stack", "null", "-options", string(opts),
		"-iface", end.Iface, "-addr", end.Addr.String(), "-cpu", strconv.Itoa(pl.Server),
		"-file-prefix", "jrapp-"+r.site.id())
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	out, _, err := r.generator(ctx, d+30*time.Second, "-blast", "udp", "-size", "64", "-duration", d.String())
	if err != nil {
		return nil, err
	}
	var b loadgen.BlastResult
	if err := json.Unmarshal(out, &b); err != nil {
		return nil, fmt.Errorf("blaster output: %v", err)
	}
	return &WireLimit{SentPPS: b.SentPPS, DeliveredPPS: b.RecvPPS, FrameBytes: b.FrameBytes, Seconds: b.Seconds}, nil
}

// serverRxPackets reads the server interface's receive counter, in its
// namespace or on its node.
func (r *runner) serverRxPackets(ctx context.Context) (uint64, error) {
	iface := r.site.serverEnd().Iface
	if iface == "" {
		return 0, errors.New("the server's NIC has no kernel interface whose frames could be counted")
	}
	out, err := r.site.readServerFile(ctx, "/sys/class/net/"+iface+"/statistics/rx_packets")
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64)
}

// measureStalls runs the stall probe on each cpu in turn, each on a thread
// pinned there.
func measureStalls(d time.Duration, cpus ...int) []CPUStalls {
	var out []CPUStalls
	seen := map[int]bool{}
	for _, cpu := range cpus {
		if seen[cpu] {
			continue
		}
		seen[cpu] = true
		ch := make(chan CPUStalls)
		go func() {
			// The thread is pinned and then discarded (not unlocked), so its
			// affinity never leaks to other goroutines.
			runtime.LockOSThread()
			var set unix.CPUSet
			set.Set(cpu)
			if err := unix.SchedSetaffinity(0, &set); err != nil {
				ch <- CPUStalls{CPU: cpu}
				return
			}
			ch <- CPUStalls{CPU: cpu, Stalls: tsc.MeasureStalls(d)}
		}()
		out = append(out, <-ch)
	}
	return out
}

// markdown renders the calibration for report.md.
func (c *Calibration) markdown(generatorPeak float64) string {
	var b strings.Builder
	pf := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	pf("Measured at the start of this run (%.1f s); latency probes at %.0f requests/s, 64 B UDP echo.\n\n", c.Seconds, c.Rate)
	pf("| what | result |\n|---|---|\n")
	if c.Wire != nil {
		pf("| wire limit, one way (DPDK blaster, %d B frames, counted at the peer) | %.3f Mpps sent, %.3f Mpps delivered |\n", c.Wire.FrameBytes, c.Wire.SentPPS/1e6, c.Wire.DeliveredPPS/1e6)
	}
	if c.RoundTrip != nil {
		pf("| round-trip limit (blaster against the null reflector, %d B frames) | %.3f Mpps sent, %.3f Mreplies/s back |\n", c.RoundTrip.FrameBytes, c.RoundTrip.SentPPS/1e6, c.RoundTrip.DeliveredPPS/1e6)
		if generatorPeak > 0 && c.RoundTrip.DeliveredPPS > 0 {
			pf("| generator's highest sustained rate (a valid point, achieved ≥ 99%%) | %.0f requests/s = %.2f of the round-trip limit |\n", generatorPeak, generatorPeak/c.RoundTrip.DeliveredPPS)
		}
	}
	lat := func(label string, p *ProbeLatency) {
		if p == nil {
			return
		}
		v := ""
		if !p.Valid {
			v = " (invalid: " + p.Reason + ")"
		}
		pf("| %s | p50 %.2f µs, p99 %.2f µs, p99.9 %.2f µs%s |\n", label, p.P50us, p.P99us, p.P999us, v)
	}
	lat("null round trip (the floor)", c.Null)
	lat("kernel round trip, PM QoS held", c.Kernel)
	lat("kernel round trip, PM QoS released", c.KernelNoQoS)
	if c.AA != nil {
		pf("| noise floor (A/A: kernel twice) | p50 ±%.2f µs, p99 ±%.2f µs |\n", c.AA.NoiseP50us, c.AA.NoiseP99us)
	}
	for _, s := range c.Stalls {
		pf("| vCPU %d stalls (spinning thread, %.1f s) | longest %.0f µs; %d gaps > 50 µs, %d > 1 ms |\n", s.CPU, s.Seconds, s.MaxGapUs, s.Over50us, s.Over1ms)
	}
	for _, e := range c.Errors {
		pf("| failed probe | %s |\n", e)
	}
	if c.AA != nil {
		pf("\n%s\n", Resolution(c.AA.NoiseP50us, c.AA.NoiseP99us))
	}
	return b.String()
}

// Resolution is the one line that says what this machine can tell apart: the
// A/A noise floor (the same kernel point measured twice) in words.
func Resolution(p50, p99 float64) string {
	return fmt.Sprintf("**What this machine resolves:** differences below %.1f µs at p50 or %.1f µs at p99 are noise here "+
		"(the kernel measured twice in a row differed that much); a smaller difference between stacks, and a ratio it "+
		"decides, is not a finding.", p50, p99)
}

// CalibrationExperiment is the experiment `jrbench calibrate` runs: no points,
// only the calibration, with PM QoS held (the kernel probe without it is part of
// the calibration).
func CalibrationExperiment() *Experiment {
	return &Experiment{Name: "calibrate", Description: "The testbed's own limits and noise, without any experiment.",
		Testbed: "local", App: "echo", Workload: calibrationWorkload(), Repetitions: 1, Seed: 1,
		Order: "interleaved", Machine: Machine{PMQoS: "on"}}
}
