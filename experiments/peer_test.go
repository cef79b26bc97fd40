//go:build dpdk && cgo

package experiments

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/joyride-bench/joyride/analysis"
)

// The peer check's machinery, for real and briefly: sockperf exchanges
// messages with its server across the testbed, jrgen with jrapp's kernel
// echo, both numbers come out and are parsed, and the results file says so.
// Whether the two agree within 10% is not asserted: that is a measurement on
// a shared VM (docs/PERFORMANCE.md, "Cross-check with sockperf"), not
// something a timed test may fail on.
func TestPeerCheckMeasuresBothTools(t *testing.T) {
	bin := binDir(t)
	if _, err := exec.LookPath("sockperf"); err != nil {
		t.Fatalf("sockperf is not installed (apt-get install sockperf; make deps installs it): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := PeerCheck(ctx, PeerOptions{BinDir: bin, ResultsDir: t.TempDir(), Rate: 1000,
		Duration: time.Second, Repetitions: 1, NoFloor: true})
	if err != nil {
		t.Fatalf("PeerCheck: %v", err)
	}
	if res.State != "complete" {
		t.Fatalf("state %q: %s", res.State, res.Error)
	}
	if len(res.Runs) != 4 {
		t.Fatalf("%d runs, want 4 (udp and tcp, jrgen and sockperf)", len(res.Runs))
	}
	for _, run := range res.Runs {
		name := run.Protocol + " " + run.Tool
		if run.Error != "" {
			t.Errorf("%s failed: %s", name, run.Error)
			continue
		}
		if run.Count <= 0 || !(run.P50us > 0) || !(run.P99us >= run.P50us) {
			t.Errorf("%s: %d round trips, p50 %.2f µs, p99 %.2f µs: want samples and 0 < p50 <= p99", name, run.Count, run.P50us, run.P99us)
		}
		if _, err := analysis.ReadHlog(filepath.Join(res.Dir, run.Hlog)); err != nil {
			t.Errorf("%s: interval log: %v", name, err)
		}
		switch run.Tool {
		case ToolJrgen:
			if g := run.Generator; g == nil || g.Received == 0 || g.Received != uint64(run.Count) {
				t.Errorf("%s: generator result %+v does not match %d round trips", name, g, run.Count)
			}
		case ToolSockperf:
			sp := run.Sockperf
			if sp == nil {
				t.Errorf("%s: no sockperf report", name)
				continue
			}
			// Its own counts, and its table against our reading of its
			// per-message log: a parser that read the wrong column or
			// half round trips would not agree.
			if sp.Received <= 0 || sp.Observations <= 0 || int64(sp.FullLogSamples) != sp.Observations || run.Count != sp.Observations {
				t.Errorf("%s: sockperf received %d, observed %d, full log %d rows, hlog %d: want equal and > 0",
					name, sp.Received, sp.Observations, sp.FullLogSamples, run.Count)
			}
			if sp.Duplicated != 0 || sp.OutOfOrder != 0 {
				t.Errorf("%s: sockperf saw %d duplicated and %d out-of-order messages", name, sp.Duplicated, sp.OutOfOrder)
			}
			if rel := math.Abs(run.P50us-sp.P50us) / sp.P50us; rel > 0.02 {
				t.Errorf("%s: p50 from the full log %.2f µs, sockperf's table %.2f µs: the two readings disagree", name, run.P50us, sp.P50us)
			}
		}
	}
	if len(res.Summary) != 2 {
		t.Fatalf("summary %+v: want udp and tcp", res.Summary)
	}
	for _, s := range res.Summary {
		// A run the generator could not keep on schedule (a busy machine)
		// is left out of the summary: that is the summary working, so the
		// ratio is checked only when the repetition counted.
		if s.Reps > 1 || (s.Reps == 1 && (!(s.RatioP50 > 0) || math.IsInf(s.RatioP50, 0))) {
			t.Errorf("%s summary %+v: want at most one repetition, with a ratio", s.Protocol, s)
		}
	}
	b, err := os.ReadFile(filepath.Join(res.Dir, PeerCheckName+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var back PeerResult
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("peer-check.json: %v", err)
	}
	if back.State != "complete" || len(back.Runs) != 4 || len(back.Summary) != 2 || back.Tools["sockperf"] == "" {
		t.Errorf("peer-check.json holds state %q, %d runs, %d summaries, sockperf %q", back.State, len(back.Runs), len(back.Summary), back.Tools["sockperf"])
	}
	if back.Testbed != nil {
		assertTestbedGone(t, Meta{RunRecord: RunRecord{Testbed: back.Testbed}})
	}
}

// sockperf 3.7's ping-pong report, colours and all.
const sockperfOutput = "sockperf: \x1b[2;35m== version #3.7-no.git == \x1b[0m\n" +
	"sockperf[CLIENT] send on:sockperf: using recvfrom() to block on socket(s)\n\n" +
	"[ 0] IP = 198.18.0.2      PORT =  9000 # UDP\n" +
	"sockperf: Warmup stage (sending a few dummy messages)...\n" +
	"sockperf: Starting test...\n" +
	"sockperf: Test end (interrupted by timer)\n" +
	"sockperf: Test ended\n" +
	"sockperf: [Total Run] RunTime=2.002 sec; Warm up time=400 msec; SentMessages=2001; ReceivedMessages=2000\n" +
	"sockperf: ========= Printing statistics for Server No: 0\n" +
	"sockperf: [Valid Duration] RunTime=1.550 sec; SentMessages=1550; ReceivedMessages=1550\n" +
	"sockperf: \x1b[2;35m====> avg-rtt=21.430 (std-dev=3.279)\x1b[0m\n" +
	"sockperf: # dropped messages = 0; # duplicated messages = 0; # out-of-order messages = 0\n" +
	"sockperf: Summary: Round trip is 21.430 usec\n" +
	"sockperf: \x1b[2;35mTotal 1550 observations\x1b[0m; each percentile contains 15.50 observations\n" +
	"sockperf: ---> <MAX> observation =  190.591\n" +
	"sockperf: ---> percentile 99.999 =  190.591\n" +
	"sockperf: ---> percentile 99.990 =  190.591\n" +
	"sockperf: ---> percentile 99.900 =   95.461\n" +
	"sockperf: ---> percentile 99.000 =   35.000\n" +
	"sockperf: ---> percentile 90.000 =   24.000\n" +
	"sockperf: ---> percentile 75.000 =   22.000\n" +
	"sockperf: ---> percentile 50.000 =   21.000\n" +
	"sockperf: ---> percentile 25.000 =   20.000\n" +
	"sockperf: ---> <MIN> observation =   18.000\n"

func TestParseSockperf(t *testing.T) {
	r, err := parseSockperf([]byte(sockperfOutput))
	if err != nil {
		t.Fatal(err)
	}
	if r.P50us != 21 || r.P99us != 35 || r.Percentiles["max"] != 190.591 || r.Percentiles["min"] != 18 {
		t.Errorf("percentiles %v, p50 %v, p99 %v", r.Percentiles, r.P50us, r.P99us)
	}
	if r.Observations != 1550 || r.Sent != 1550 || r.Received != 1550 || r.Dropped != 0 || r.AvgUs != 21.43 || r.RateTooHigh {
		t.Errorf("counts %+v", r)
	}

	tooFast := sockperfOutput + "sockperf: Info: The requested message-per-second rate is too high. Try tuning --mps or --burst arguments\n"
	if r, err := parseSockperf([]byte(tooFast)); err != nil || !r.RateTooHigh {
		t.Errorf("rate too high not seen: %+v, %v", r, err)
	}

	bad := map[string]struct{ out, want string }{
		"no replies (a plain echo)": {"sockperf: Test ended\nsockperf: No messages were received from the server. Is the server down?\n", "no replies"},
		"half round trips":          {strings.ReplaceAll(sockperfOutput, "Round trip is", "Latency is"), "--full-rtt"},
		"no p50":                    {strings.ReplaceAll(sockperfOutput, "percentile 50.000", "percentile 51.000"), "50th"},
		"an error":                  {sockperfOutput + "sockperf: ERROR: Can`t connect socket (errno=111 Connection refused)\n", "Can`t connect"},
		"nothing measured":          {strings.ReplaceAll(sockperfOutput, "Total 1550 observations", "Total 0 observations"), "nothing measured"},
	}
	for name, c := range bad {
		if _, err := parseSockperf([]byte(c.out)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want one saying %q", name, err, c.want)
		}
	}
}

func TestParseSockperfFullLog(t *testing.T) {
	log := "------------------------------\n" +
		"test was performed using the following parameters: --mps=1000 --burst=1 --reply-every=1 --msg-size=64 --time=1 --full-rtt\n" +
		"------------------------------\n" +
		"sockperf: ---> percentile 50.000 =   90.504\n" +
		"------------------------------\n" +
		"packet, txTime(sec), rxTime(sec), rtt(usec)\n" +
		"0, 2.401835312, 2.401910835, 75.523\n" +
		"1, 2.402835312, 2.402932238, 96.926\n" +
		"2, 3.403835315, 3.403946516, 111.201\n" +
		"------------------------------\n"
	s, err := parseSockperfFullLog(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 3 || s[0].RTTus != 75.523 || s[2].TxS != 3.403835315 {
		t.Fatalf("samples %+v", s)
	}
	path := filepath.Join(t.TempDir(), "s.hlog")
	if err := writeSamplesHlog(path, time.Now(), s); err != nil {
		t.Fatal(err)
	}
	iv, err := analysis.ReadHlogIntervals(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(iv) != 2 || iv[0].TotalCount() != 2 || iv[1].TotalCount() != 1 {
		t.Errorf("intervals: %d, want 2 (two samples, then one a second later)", len(iv))
	}
	if _, err := parseSockperfFullLog(strings.NewReader("packet, txTime(sec), rxTime(sec), rtt(usec)\n0, 1.0, 1.1, abc\n")); err == nil {
		t.Error("a bad row was accepted")
	}
}
