package analysis

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCompare(t *testing.T) {
	pt := func(stack string, rate, p50, lo50, hi50, p99, lo99, hi99 float64, rep int) Point {
		return Point{Stack: stack, Protocol: "udp", App: "echo", OfferedRPS: rate, AchievedRPS: rate,
			P50us: p50, P50Lo: lo50, P50Hi: hi50, P99us: p99, P99Lo: lo99, P99Hi: hi99, Rep: rep, Valid: true}
	}
	a := []Point{
		pt("kernel", 1000, 20, 19, 21, 50, 45, 60, 0),
		pt("kernel", 1000, 22, 21, 23, 52, 47, 58, 1), // A: p50 mean 21 in [19, 23], p99 mean 51 in [45, 60]
		pt("kernel", 2000, 25, 24, 26, 70, 60, 80, 0),
		{Stack: "joyride", Protocol: "udp", App: "echo", OfferedRPS: 1000, P50us: 9, P99us: 15, Valid: true}, // no CI
	}
	b := []Point{
		pt("kernel", 1000, 30, 29, 31, 55, 50, 62, 0), // p50 +9 outside both; p99 +4 inside
		pt("joyride", 1000, 10, 9.5, 10.5, 16, 15, 17, 0),
		pt("afxdp", 1000, 12, 11, 13, 20, 18, 22, 0),
	}
	diffs := Compare(a, b)
	if len(diffs) != 4 {
		t.Fatalf("%d diffs: %+v", len(diffs), diffs)
	}
	byKey := map[string]Diff{}
	for _, d := range diffs {
		byKey[d.Stack+"@"+fmtRate(d.OfferedRPS)] = d
	}
	k := byKey["kernel@1000"]
	if k.A.P50Lo != 19 || k.A.P50Hi != 23 || k.DP50 != 9 || !k.P50Outside || k.DP99 != 4 || k.P99Outside {
		t.Errorf("kernel@1000: %+v", k)
	}
	if d := byKey["kernel@2000"]; !d.InA || d.InB || d.Comparable() {
		t.Errorf("kernel@2000 only in A: %+v", d)
	}
	if d := byKey["joyride@1000"]; !d.Comparable() || d.HasCI() || d.DP50 != 1 || d.P50Outside {
		t.Errorf("joyride without CI in A: %+v", d)
	}
	if d := byKey["afxdp@1000"]; d.InA || !d.InB {
		t.Errorf("afxdp only in B: %+v", d)
	}

	path := filepath.Join(t.TempDir(), "compare.md")
	if err := WriteCompare(path, "results/x/run-a", "results/x/run-b", diffs); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	md := string(data)
	for _, want := range []string{
		"- A: results/x/run-a\n- B: results/x/run-b\n",
		"| kernel | udp/echo | 1000 | 21.00 [19.00–23.00] | 30.00 [29.00–31.00] | **+9.00 (outside CIs)** | 51.00 [45.00–60.00] | 55.00 [50.00–62.00] | +4.00 (within CIs) |\n",
		"| kernel | udp/echo | 2000 | 25.00 [24.00–26.00] | not measured | — |",
		"| afxdp | udp/echo | 1000 | not measured |",
		"| joyride | udp/echo | 1000 | 9.00 | 10.00 [9.50–10.50] | +1.00 (no CI) |",
		"1 of 2 points measured by both runs differ outside the CIs in p50 or p99.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("comparison lacks %q\n%s", want, md)
		}
	}
}
