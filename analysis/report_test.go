package analysis

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	// The floor and the baseline the report asks for are the registered
	// stacks' (null, kernel).
	_ "github.com/joyride-bench/joyride/stacks/all"
)

func TestWriteReport(t *testing.T) {
	var pts []Point
	add := func(stack string, rate, ach, p50, p99 float64, rep int, valid bool, reason string) {
		pts = append(pts, Point{Stack: stack, Protocol: "udp", App: "echo", OfferedRPS: rate, AchievedRPS: ach,
			Sent: uint64(rate) * 10, Received: uint64(ach) * 10, P50us: p50, P99us: p99, P999us: p99 * 2,
			Rep: rep, Valid: valid, Reason: reason})
	}
	add("null", 10000, 10000, 10, 20, 0, true, "")
	add("null", 10000, 10000, 12, 22, 1, true, "")
	add("null", 50000, 50000, 11, 25, 0, true, "")
	add("kernel", 10000, 10000, 30, 60, 0, true, "")
	add("kernel", 10000, 9990, 32, 70, 1, true, "")
	add("kernel", 50000, 47000, 300, 900, 0, true, "")
	add("kernel", 50000, 20000, 3000, 9000, 1, false, "generator saturated | tx ring full")

	path := filepath.Join(t.TempDir(), "report.md")
	r := Report{
		Title:       "udp echo sweep",
		Description: "Kernel against the null floor.",
		Meta:        map[string]string{"seed": "42", "commit": "abc123", "kernel": "6.8.0", "pm_qos": "cpu_dma_latency=0"},
		Points:      pts,
		SLOp99us:    100,
		Notes:       []string{"kernel@50000 rep 0: p99 drifts across intervals"},
	}
	if err := WriteReport(path, r); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	md := string(data)
	for _, want := range []string{
		"# udp echo sweep\n",
		"Kernel against the null floor.",
		"**How to read this.**",
		"| commit | abc123 |\n| kernel | 6.8.0 |\n| pm_qos | cpu_dma_latency=0 |\n| seed | 42 |\n",
		"### kernel (udp/echo)\n",
		"| offered (req/s) | achieved (req/s) | p50 (µs) | p99 (µs) | p99.9 (µs) | lost | late | valid |",
		"| 10000 | 9995 (100.0%) | 31.00 [30.00–32.00] | 65.00 [60.00–70.00] | 130.00 [120.00–140.00] | 0 | 0 | 2/2 |\n",
		"| 50000 | 47000 (94.0%) | 300.00 | 900.00 | 1800.00 | 0 | 0 | **1/2** |\n",
		"### null (udp/echo)\n",
		"| 10000 | 10000 (100.0%) | 11.00 [10.00–12.00] | 21.00 [20.00–22.00] |",
		"- Highest rate with achieved ≥ 99% of offered: 10000 req/s\n",
		"- Highest rate meeting p99 ≤ 100.00 µs (and achieved ≥ 99%): 10000 req/s\n",
		"## Latency above the null stack\n",
		"| kernel (udp/echo) | 10000 | 31.00 | 11.00 | +20.00 | +44.00 |\n",
		"| kernel (udp/echo) | 50000 | 300.00 | 11.00 | +289.00 | +875.00 |\n",
		"## Invalid points\n",
		`| kernel | udp | echo | 50000 | 1 | generator saturated \| tx ring full |`,
		"## Notes\n\n- kernel@50000 rep 0: p99 drifts across intervals\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	// The null stack keeps up at 50000 too.
	if !strings.Contains(md, "### null (udp/echo)") || strings.Count(md, "Highest rate with achieved ≥ 99% of offered: 50000 req/s") != 1 {
		t.Errorf("null capacity line missing:\n%s", md)
	}
	if t.Failed() || os.Getenv("SHOW_REPORT") != "" {
		t.Logf("report.md:\n%s", md)
	}
}

func TestWriteReportWithoutNull(t *testing.T) {
	path := filepath.Join(t.TempDir(), "report.md")
	pts := []Point{{Stack: "kernel", Protocol: "tcp", OfferedRPS: 1000, AchievedRPS: 500, P50us: 10, P99us: 20, Valid: true}}
	if err := WriteReport(path, Report{Title: "t", Points: pts}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	md := string(data)
	if strings.Contains(md, "null stack\n") || strings.Contains(md, "Invalid points") || strings.Contains(md, "SLO") {
		t.Errorf("unexpected sections:\n%s", md)
	}
	if !strings.Contains(md, "achieved ≥ 99% of offered: none") {
		t.Errorf("capacity line:\n%s", md)
	}
}

func TestReportRatiosToTheKernel(t *testing.T) {
	mk := func(stack string, rate, achieved, p50, p99 float64) Point {
		return Point{Stack: stack, Protocol: "udp", App: "echo", OfferedRPS: rate, AchievedRPS: achieved,
			P50us: p50, P99us: p99, Valid: true, Sent: 100, Received: 100}
	}
	pts := []Point{
		mk("kernel", 1000, 1000, 10, 50), mk("kernel", 2000, 2000, 12, 80), mk("kernel", 4000, 3000, 100, 900),
		mk("joyride", 1000, 1000, 30, 100), mk("joyride", 2000, 1500, 90, 2000),
	}
	text := renderReport(Report{Title: "t", Points: pts, SLOp99us: 200})
	for _, want := range []string{"## Ratios to the kernel", "| joyride (udp/echo) | 1000 req/s | 0.50× | 0.50× | 1000 | 3.00× | 2.00× |"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
}
