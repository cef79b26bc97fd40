package analysis

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func samplePoints() []Point {
	return []Point{
		{Stack: "kernel", Protocol: "udp", App: "echo", OfferedRPS: 10000, AchievedRPS: 9999.5,
			Sent: 100000, Received: 99995, Lost: 5, Late: 2,
			P50us: 25.31, P90us: 30.2, P99us: 41.75, P999us: 80, MaxUs: 1200.5, MinUs: 12.03, MeanUs: 26.6,
			Rep: 0, Valid: true, Hlog: "hist/kernel-udp-10000-r0.hlog", Size: 64, Gbps: 0.0051, ServerCores: 0.25, CPUUsPerReq: 25, Instances: 4, ServerMemMiB: 120.5,
			P50Lo: 24.9, P50Hi: 25.8, P99Lo: 39, P99Hi: math.Inf(1),
			Checks: &Checks{Intervals: 30, ADF: ADF{Ran: true, Stat: -4.21, P: 0.0006, Crit5: -2.967},
				Lag1: RankCorr{Ran: true, Rho: 0.12, P: 0.52}, Verdict: "ok"}},
		{Stack: "null", Protocol: "udp", App: "echo", OfferedRPS: 2e6, AchievedRPS: 1.2e6,
			Sent: 20000000, Received: 12000000, Lost: 8000000,
			Rep: 1, Valid: false, Reason: `generator saturated: "late" 31%, tx ring full`, Size: 1024, Window: 8, UpperBound: true,
			Hlog: "hist/null-udp-2000000-r1.hlog"},
	}
}

func TestSummaryCSVRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "summary.csv")
	pts := samplePoints()
	if err := WriteSummaryCSV(path, pts); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	header, _, _ := strings.Cut(string(data), "\n")
	if want := "stack,protocol,app,offered_rps,achieved_rps,sent,received,lost,late,p50_us,p90_us,p99_us,p999_us,max_us,min_us,mean_us,rep,valid,reason,hlog," +
		"p50_lo_us,p50_hi_us,p99_lo_us,p99_hi_us,intervals,adf_stat,adf_p,adf_crit5,lag1_rho,lag1_p,indep_lag,checks,size,window,gbps,server_cores,cpu_us_per_req,instances,server_mem_mib,interval_ms,arrival_a2,arrival_n,upper_bound"; header != want {
		t.Errorf("header\n got %s\nwant %s", header, want)
	}
	if !strings.Contains(string(data), "kernel,udp,echo,10000.00,9999.50,100000,99995,5,2,25.31,30.20,41.75,80.00,1200.50,12.03,26.60,0,true,,hist/kernel-udp-10000-r0.hlog,24.90,25.80,39.00,+Inf,30,-4.21,0.0006,-2.967,0.12,0.52,0,ok,64,0,0.0051,0.250,25.00,4,120.50,,,,false\n") {
		t.Errorf("unexpected row format:\n%s", data)
	}
	got, err := ReadSummaryCSV(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, pts) {
		t.Errorf("round trip\n got %+v\nwant %+v", got, pts)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp*")); len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

func TestReadSummaryCSVColumnOrderAndErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Shuffled columns, optional ones missing, an unknown one.
	p := write("shuffled.csv", "valid,rep,stack,extra,protocol,app,offered_rps,achieved_rps,sent,received,lost,late,max_us,p999_us,p99_us,p90_us,p50_us\n"+
		"true,2,joyride,x,tcp,memcached,5000,4999,50000,49990,10,0,900,300,120,60,40\n")
	got, err := ReadSummaryCSV(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []Point{{Stack: "joyride", Protocol: "tcp", App: "memcached", OfferedRPS: 5000, AchievedRPS: 4999,
		Sent: 50000, Received: 49990, Lost: 10, P50us: 40, P90us: 60, P99us: 120, P999us: 300, MaxUs: 900, Rep: 2, Valid: true}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}

	header := strings.Join(summaryHeader, ",") + "\n"
	// The 18 columns up to valid, the optional rest empty.
	row := "kernel,udp,echo,1000,1000,1,1,0,0,1,1,1,1,1,1,1,0,true" + strings.Repeat(",", len(summaryHeader)-18) + "\n"
	for _, c := range []struct{ name, content, want string }{
		{"empty.csv", "", "empty.csv: empty"},
		{"missing.csv", "stack,protocol\n", `missing.csv:1: missing column "app"`},
		{"dup.csv", "stack,stack\n", `dup.csv:1: column "stack" appears twice`},
		{"badnum.csv", header + row + strings.Replace(row, ",1000,1000,", ",1000,fast,", 1), `badnum.csv:3: column achieved_rps: "fast" is not a number`},
		{"badbool.csv", header + strings.Replace(row, ",true,", ",yes,", 1), `badbool.csv:2: column valid`},
		{"short.csv", header + "kernel,udp\n", "short.csv: record on line 2"},
	} {
		_, err := ReadSummaryCSV(write(c.name, c.content))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to contain %q", c.name, err, c.want)
		}
	}
}

func TestAggregateByStackRate(t *testing.T) {
	mk := func(stack string, rate, ach, p50, p99 float64, rep int, valid bool) Point {
		return Point{Stack: stack, Protocol: "udp", App: "echo", OfferedRPS: rate, AchievedRPS: ach,
			P50us: p50, P99us: p99, P999us: 2 * p99, Sent: 100, Lost: 1, Late: 2, Rep: rep, Valid: valid}
	}
	pts := []Point{
		mk("kernel", 2000, 1990, 50, 100, 0, true),
		mk("kernel", 1000, 1000, 10, 40, 0, true),
		mk("kernel", 1000, 990, 20, 50, 1, true),
		mk("kernel", 1000, 1010, 30, 60, 2, true),
		mk("kernel", 1000, 10, 1000, 9000, 3, false), // excluded from the means
		mk("afxdp", 1000, 1000, 5, 9, 0, true),
	}
	got := AggregateByStackRate(pts)
	if len(got) != 3 {
		t.Fatalf("got %d aggregates, want 3: %+v", len(got), got)
	}
	if got[0].Stack != "afxdp" || got[1].OfferedRPS != 1000 || got[2].OfferedRPS != 2000 {
		t.Errorf("order: %+v", got)
	}
	k := got[1]
	want := Aggregate{Stack: "kernel", Protocol: "udp", App: "echo", OfferedRPS: 1000, N: 4, NValid: 3,
		AchievedRPS: 1000, AchievedMin: 990, AchievedMax: 1010,
		P50us: 20, P50Min: 10, P50Max: 30, P99us: 50, P99Min: 40, P99Max: 60, P999us: 100, P999Min: 80, P999Max: 120,
		Sent: 400, Lost: 4, Late: 8, AllValid: false}
	if k != want {
		t.Errorf("kernel@1000\n got %+v\nwant %+v", k, want)
	}
	if !got[0].AllValid || got[0].N != 1 || got[0].P50Min != 5 || got[0].P50Max != 5 {
		t.Errorf("afxdp: %+v", got[0])
	}
	allBad := AggregateByStackRate([]Point{mk("x", 1, 1, 1, 1, 0, false)})
	if allBad[0].NValid != 0 || allBad[0].P50us != 0 || allBad[0].AllValid {
		t.Errorf("all invalid: %+v", allBad[0])
	}
}
