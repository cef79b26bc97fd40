package experiments

// The peer check's sockperf side (peer.go): sockperf server and ping-pong
// run pinned where jrapp and jrgen run, and what they print and log read
// back.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/joyride-bench/joyride/analysis"
)

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
	args := []string{"ping-pong",
		"-i", r.site.serverEnd().Addr.Addr().String(), "-p", strconv.Itoa(ServerPort),
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
	started := time.Now()
	stdout, stderr, rerr := r.site.runClient(sctx, o.Sockperf, strconv.Itoa(pl.Generator), args, "--full-log")
	out := bytes.NewBuffer(stdout)
	out.WriteString(stderr)
	serverDied := srv.died()
	serverLog := srv.stop()
	logText := "== " + strings.Join(append([]string{"taskset", "-c", strconv.Itoa(pl.Generator), o.Sockperf}, args...), " ") + "\n" + out.String() +
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

// startSockperfServer starts `sockperf server` on the server side (its
// namespace or its node), pinned to cpu, and waits until its socket is bound
// there.
func (r *runner) startSockperfServer(ctx context.Context, bin, proto string, cpu int) (*server, error) {
	args := []string{bin, "server", "-i", r.site.serverEnd().Addr.Addr().String(),
		"-p", strconv.Itoa(ServerPort)}
	if proto == "tcp" {
		args = append(args, "--tcp")
	}
	s, err := r.site.startTool(ctx, cpu, args...)
	if err != nil {
		return nil, fmt.Errorf("sockperf server: %w", err)
	}
	// Ready is when the port is bound (UDP) or listening (TCP) in the
	// server's namespace: sockperf prints no line that means ready in every
	// version.
	deadline := time.Now().Add(10 * time.Second)
	for {
		bound, err := portBound(ctx, r.site, proto, ServerPort)
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

// portBound reports whether a socket of the server side is bound to port
// (UDP) or listens on it (TCP), from /proc/net/{udp,tcp} read there.
func portBound(ctx context.Context, s site, proto string, port int) (bool, error) {
	out, err := s.readServerFile(ctx, "/proc/net/"+proto)
	if err != nil {
		return false, err
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
