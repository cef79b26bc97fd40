package plots

import (
	"bytes"
	"fmt"
	"image"
	_ "image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/joyride-bench/joyride/analysis"
	_ "github.com/joyride-bench/joyride/stacks/all" // the Displays StackStyle reads
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg/draw"
)

// checkFigure checks that base.png decodes as an image of one panel's size,
// base.svg is a non-empty SVG document and base.pdf a complete PDF.
func checkFigure(t *testing.T, base string) {
	t.Helper()
	checkFigureSize(t, base, 1200, 750)
}

// checkFigureSize is checkFigure for a PNG of w × h pixels.
func checkFigureSize(t *testing.T, base string, w, h int) {
	t.Helper()
	data, err := os.ReadFile(base + ".png")
	if err != nil {
		t.Fatal(err)
	}
	img, format, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s.png: %v", base, err)
	}
	if format != "png" || img.Bounds().Dx() != w || img.Bounds().Dy() != h {
		t.Errorf("%s.png: %s %v, want png %dx%d", base, format, img.Bounds(), w, h)
	}
	svg, err := os.ReadFile(base + ".svg")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(svg, []byte("<svg")) || !bytes.HasSuffix(bytes.TrimSpace(svg), []byte("</svg>")) {
		t.Errorf("%s.svg is not a complete SVG document (%d bytes)", base, len(svg))
	}
	pdf, err := os.ReadFile(base + ".pdf")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(pdf, []byte("%PDF-")) || !bytes.HasSuffix(bytes.TrimSpace(pdf), []byte("%%EOF")) {
		t.Errorf("%s.pdf is not a complete PDF document (%d bytes)", base, len(pdf))
	}
}

func TestLatencyVsLoadWithCI(t *testing.T) {
	var pts []analysis.Point
	for _, s := range []struct {
		stack string
		base  float64
		knee  float64
	}{{"null", 8, 1e6}, {"kernel", 30, 420000}, {"joyride", 15, 900000}} {
		for _, p := range sweep(s.stack, s.base, s.knee) {
			p.P50Lo, p.P50Hi = p.P50us*0.97, p.P50us*1.03
			p.P99Lo, p.P99Hi = p.P99us*0.9, p.P99us*1.2
			if p.OfferedRPS == 400000 && s.stack == "kernel" {
				p.P99Hi = math.Inf(1) // too few samples for an upper bound
			}
			pts = append(pts, p)
		}
	}
	// A stack measured at one rate only, with a CI unbounded below.
	pts = append(pts, analysis.Point{Stack: "afxdp", Protocol: "udp", App: "echo", OfferedRPS: 50000, AchievedRPS: 50000,
		P50us: 12, P50Lo: 0, P50Hi: 14, P99us: 40, P99Lo: 30, P99Hi: 60, Valid: true})
	base := filepath.Join(t.TempDir(), "latency-vs-load-ci")
	if err := LatencyVsLoad(pts, "UDP echo: latency vs offered load, 95% CIs", base, 200); err != nil {
		t.Fatal(err)
	}
	checkFigure(t, base)
	svg, _ := os.ReadFile(base + ".svg")
	if !bytes.Contains(svg, []byte("95% CI")) {
		t.Error("no CI legend entry")
	}
	if keep := os.Getenv("KEEP_PLOTS"); keep != "" {
		copyFile(t, base+".png", filepath.Join(keep, "latency-vs-load-ci.png"))
	}
}

// sweep returns points for a stack whose latency grows towards a knee at kneeRPS.
func sweep(stack string, base float64, kneeRPS float64) []analysis.Point {
	var pts []analysis.Point
	for _, rate := range []float64{10000, 50000, 100000, 200000, 300000, 400000} {
		for rep := range 3 {
			load := rate / kneeRPS
			p50 := base / (1.05 - min(load, 1)) * (1 + 0.03*float64(rep))
			pts = append(pts, analysis.Point{Stack: stack, Protocol: "udp", App: "echo",
				OfferedRPS: rate, AchievedRPS: rate * 0.999, P50us: p50, P99us: 3 * p50 * (1 + 0.1*float64(rep)),
				Rep: rep, Valid: true})
		}
	}
	return pts
}

func TestLatencyVsLoad(t *testing.T) {
	var pts []analysis.Point
	pts = append(pts, sweep("null", 8, 1e6)...)
	pts = append(pts, sweep("kernel", 30, 420000)...)
	pts = append(pts, sweep("joyride", 15, 900000)...)
	pts = append(pts, sweep("mtcp", 20, 600000)...)
	// Must be skipped, not plotted and not a panic on the log axis.
	pts = append(pts,
		analysis.Point{Stack: "kernel", Protocol: "udp", App: "echo", OfferedRPS: 500000, P50us: 1e6, P99us: 1e7, Valid: false, Reason: "generator saturated"},
		analysis.Point{Stack: "afxdp", Protocol: "udp", App: "echo", OfferedRPS: 10000, P50us: 0, P99us: -1, Valid: true})
	base := filepath.Join(t.TempDir(), "new", "dir", "latency-vs-load")
	if err := LatencyVsLoad(pts, "UDP echo: latency vs offered load", base, 200); err != nil {
		t.Fatal(err)
	}
	checkFigure(t, base)
	if keep := os.Getenv("KEEP_PLOTS"); keep != "" {
		copyFile(t, base+".png", filepath.Join(keep, "latency-vs-load.png"))
	}
}

func TestLatencyVsLoadNothingToDraw(t *testing.T) {
	dir := t.TempDir()
	for name, pts := range map[string][]analysis.Point{
		"none":    nil,
		"invalid": {{Stack: "kernel", OfferedRPS: 1000, P50us: 10, P99us: 20, Valid: false}},
		"zeros":   {{Stack: "kernel", OfferedRPS: 1000, Valid: true}},
	} {
		base := filepath.Join(dir, name)
		if err := LatencyVsLoad(pts, name, base, 0); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkFigure(t, base)
		if err := LatencyVsLoad(pts, name, base+"-slo", 100); err != nil {
			t.Fatalf("%s with SLO: %v", name, err)
		}
		checkFigure(t, base+"-slo")
	}
}

func TestLatencyCDF(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	mk := func(medianUs float64, tail float64) *hdrhistogram.Histogram {
		h := analysis.NewHistogram()
		for range 200000 {
			v := medianUs * (0.8 + 0.4*rng.Float64())
			if rng.Float64() < 0.02 {
				v *= 1 + tail*rng.ExpFloat64()
			}
			h.RecordValue(int64(v * 1000))
		}
		return h
	}
	uniform := analysis.NewHistogram()
	for v := int64(1); v <= 10000; v++ {
		uniform.RecordValue(v * 1000)
	}
	zeros := analysis.NewHistogram()
	zeros.RecordValues(0, 10)
	series := []CDFSeries{
		{Label: "null 100k", Stack: "null", Hist: mk(8, 2)},
		{Label: "kernel 100k", Stack: "kernel", Hist: mk(30, 5)},
		{Label: "kernel 300k", Stack: "kernel", Hist: mk(60, 20)},
		{Label: "uniform 1..10000 µs", Hist: uniform},
		{Label: "only zeros", Hist: zeros},
		{Label: "empty", Hist: analysis.NewHistogram()},
		{Label: "nil"},
	}
	base := filepath.Join(t.TempDir(), "cdf")
	if err := LatencyCDF(series, "UDP echo: latency distribution", base); err != nil {
		t.Fatal(err)
	}
	checkFigure(t, base)
	if keep := os.Getenv("KEEP_PLOTS"); keep != "" {
		copyFile(t, base+".png", filepath.Join(keep, "cdf.png"))
	}
	if err := LatencyCDF(nil, "nothing", base+"-empty"); err != nil {
		t.Fatal(err)
	}
	checkFigure(t, base+"-empty")

	pts := cdfPoints(uniform)
	if pts[0].Y != 0 || pts[len(pts)-1].Y != 1 || len(pts) > 2000 {
		t.Errorf("uniform CDF: first %v, last %v, %d points", pts[0], pts[len(pts)-1], len(pts))
	}
	for i := 1; i < len(pts); i++ {
		if pts[i].X <= pts[i-1].X || pts[i].Y < pts[i-1].Y {
			t.Fatalf("CDF not increasing at %d: %v then %v", i, pts[i-1], pts[i])
		}
	}
}

func TestStackStyle(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range []string{"kernel", "null", "afxdp", "joyride"} {
		c, g := StackStyle(s)
		if c == nil || g.Shape == nil || g.Radius <= 0 || g.Color != c {
			t.Errorf("%s: %v %+v", s, c, g)
		}
		key := fmt.Sprint(c.RGBA())
		if seen[key] {
			t.Errorf("%s shares its colour with another fixed stack", s)
		}
		seen[key] = true
	}
	c1, g1 := StackStyle("mtcp")
	c2, g2 := StackStyle("mtcp")
	if c1 != c2 || g1 != g2 {
		t.Error("StackStyle is not stable for an unknown stack")
	}
}

// The registered stacks' Displays are the styles the figures have always
// had, so that figures made before and after look alike.
func TestRegisteredStylesAreTheFiguresOwn(t *testing.T) {
	for _, want := range []struct {
		stack string
		rgb   [3]uint8
		shape draw.GlyphDrawer
	}{
		{"kernel", [3]uint8{0x00, 0x72, 0xb2}, markGlyph{shape: shapeCircle}},
		{"null", [3]uint8{0x77, 0x77, 0x77}, draw.CrossGlyph{}},
		{"afxdp", [3]uint8{0x00, 0x9e, 0x73}, markGlyph{shape: shapeUp}},
		{"joyride", [3]uint8{0xd5, 0x5e, 0x00}, markGlyph{shape: shapeBox}},
	} {
		c, g := StackStyle(want.stack)
		r, gr, b, _ := c.RGBA()
		if got := [3]uint8{uint8(r >> 8), uint8(gr >> 8), uint8(b >> 8)}; got != want.rgb || g.Shape != want.shape {
			t.Errorf("%s: colour %x shape %#v, want %x %#v", want.stack, got, g.Shape, want.rgb, want.shape)
		}
	}
	names := []string{"mtcp", "joyride", "afxdp", "kernel", "null", "demikernel"}
	sortStacks(names)
	if want := []string{"null", "kernel", "afxdp", "joyride", "demikernel", "mtcp"}; !slices.Equal(names, want) {
		t.Errorf("legend order %v, want %v", names, want)
	}
}

func copyFile(t *testing.T, from, to string) {
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCapacityAtSLO(t *testing.T) {
	mk := func(stack string, rate, achieved, p99 float64) analysis.Point {
		return analysis.Point{Stack: stack, Protocol: "udp", App: "echo", OfferedRPS: rate, AchievedRPS: achieved,
			P50us: 10, P99us: p99, Valid: true}
	}
	pts := []analysis.Point{
		mk("kernel", 1000, 1000, 50), mk("kernel", 2000, 2000, 150), mk("kernel", 4000, 4000, 900),
		mk("joyride", 1000, 1000, 300), mk("joyride", 2000, 1500, 100), // not kept up with
	}
	caps := CapacityAtSLO(pts, 200)
	if len(caps) != 2 || caps[0] != (Capacity{Stack: "joyride"}) || caps[1] != (Capacity{Stack: "kernel", RPS: 2000, Min: 2000, Max: 2000}) {
		t.Fatalf("%+v", caps)
	}
	// A second repetition whose p99 at 2000 misses the SLO: the mean misses
	// it too (1000 kept), each repetition alone spans 1000..2000.
	rep1 := []analysis.Point{mk("kernel", 1000, 1000, 60), mk("kernel", 2000, 2000, 300)}
	for i := range rep1 {
		rep1[i].Rep = 1
	}
	caps = CapacityAtSLO(append(pts[:3:3], rep1...), 200)
	if len(caps) != 1 || caps[0] != (Capacity{Stack: "kernel", RPS: 1000, Min: 1000, Max: 2000}) {
		t.Fatalf("with two repetitions: %+v", caps)
	}
	out := filepath.Join(t.TempDir(), "capacity")
	if err := CapacityBars(pts, 200, "capacity", out); err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{".png", ".svg", ".pdf"} {
		if st, err := os.Stat(out + ext); err != nil || st.Size() == 0 {
			t.Errorf("%s%s: %v", out, ext, err)
		}
	}
	if keep := os.Getenv("KEEP_PLOTS"); keep != "" {
		copyFile(t, out+".png", filepath.Join(keep, "capacity.png"))
	}
}

// The sweep figures draw from points carrying sizes, windows, instances and
// server CPU, and refuse nothing they are given.
func TestSweepFiguresDraw(t *testing.T) {
	var pts []analysis.Point
	for _, stack := range []string{"kernel", "joyride"} {
		for i, size := range []int{64, 4096, 65536} {
			for _, w := range []int{1, 8} {
				pts = append(pts, analysis.Point{Stack: stack, Protocol: "tcp", App: "echo", Size: size, Window: w, Valid: true,
					AchievedRPS: float64(10000 * w / (i + 1)), Gbps: float64(size*w) / 1e5, P50us: float64(20 * (i + 1)), P99us: float64(90 * (i + 1))})
			}
		}
		for n := 1; n <= 16; n *= 4 {
			pts = append(pts, analysis.Point{Stack: stack, Protocol: "udp", App: "echo", OfferedRPS: 10000, AchievedRPS: 10000, Instances: n, Valid: true,
				P50us: 20 + float64(n), P99us: 80 + float64(n), ServerMemMiB: 20 * float64(n), ServerCores: 0.1 * float64(n), CPUUsPerReq: 10 * float64(n)})
		}
	}
	dir := t.TempDir()
	if err := MsgSize(pts, "sizes", filepath.Join(dir, "msg-size")); err != nil {
		t.Fatal(err)
	}
	if err := Density(pts, 10000, "density", filepath.Join(dir, "density")); err != nil {
		t.Fatal(err)
	}
	if err := CoresVsLoad(pts, "cores", filepath.Join(dir, "cores")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"msg-size-throughput", "msg-size-latency", "density-latency", "density-memory", "cores"} {
		for _, ext := range []string{".png", ".svg", ".pdf"} {
			if st, err := os.Stat(filepath.Join(dir, f+ext)); err != nil || st.Size() < 1000 {
				t.Errorf("%s%s: %v", f, ext, err)
			}
		}
	}
	if keep := os.Getenv("KEEP_PLOTS"); keep != "" {
		for _, f := range []string{"msg-size-throughput", "msg-size-latency", "density-latency", "density-memory", "cores"} {
			copyFile(t, filepath.Join(dir, f+".png"), filepath.Join(keep, f+".png"))
		}
	}
	svg, _ := os.ReadFile(filepath.Join(dir, "density-memory.svg"))
	if !strings.Contains(string(svg), "joyride") || !strings.Contains(string(svg), "kernel") {
		t.Error("density-memory has no legend for the stacks")
	}
}

// onLine reports whether a measured line of stack in pn passes through load x
// (krequests/s).
func onLine(pn *latPanel, stack string, x float64) bool {
	for _, l := range pn.lines {
		if l.stack != stack {
			continue
		}
		for _, xy := range l.xys {
			if xy.X == x {
				return true
			}
		}
	}
	return false
}

func hasMark(marks []latMark, stack string, x float64) bool {
	for _, m := range marks {
		if m.stack == stack && m.x == x {
			return true
		}
	}
	return false
}

// Two protocols make two panels on one scale, with a legend of one entry per
// stack and one per key; points that are invalid, not sustained or failed
// their checks are marked and kept off the lines; the null stack is a band.
func TestLatencyVsLoadPanels(t *testing.T) {
	var pts []analysis.Point
	for _, proto := range []string{"udp", "tcp"} {
		for _, s := range []struct {
			stack      string
			base, knee float64
		}{{"null", 8, 1e6}, {"kernel", 30, 420000}, {"joyride", 15, 900000}} {
			for _, p := range sweep(s.stack, s.base, s.knee) {
				p.Protocol = proto
				if proto == "tcp" {
					p.P50us, p.P99us = p.P50us*1.5, p.P99us*1.5
				}
				p.P50Lo, p.P50Hi = p.P50us*0.97, p.P50us*1.03
				p.P99Lo, p.P99Hi = p.P99us*0.9, p.P99us*1.2
				switch {
				case s.stack == "kernel" && proto == "udp" && p.OfferedRPS == 200000:
					p.Valid, p.Reason = false, "generator sent 2% of requests late" // every repetition: breaks the line
				case s.stack == "kernel" && proto == "udp" && p.OfferedRPS == 400000:
					p.AchievedRPS = 0.9 * p.OfferedRPS // valid, but not sustained
				case s.stack == "joyride" && proto == "tcp" && p.OfferedRPS == 400000:
					p.P50us, p.P99us = 1e6, 1e7 // far off the scale
					p.Valid = false
				case s.stack == "joyride" && proto == "tcp" && p.OfferedRPS == 100000 && p.Rep == 1:
					p.Valid = false // one repetition of three
				case s.stack == "joyride" && proto == "udp" && p.OfferedRPS == 50000:
					p.Checks = &analysis.Checks{Lag1: analysis.RankCorr{Ran: true, P: 0.001}}
				case s.stack == "kernel" && proto == "tcp" && p.OfferedRPS == 10000:
					p.UpperBound = true // the VM stalled the generator: valid, at most
				}
				pts = append(pts, p)
			}
		}
	}
	f, panels, err := latencyFigure(pts, "udp and tcp echo", 200)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.panels) != 2 || len(panels) != 2 || f.cols != 2 {
		t.Fatalf("%d panels (%d model), %d columns; want 2 side by side", len(f.panels), len(panels), f.cols)
	}
	if !slices.Equal(f.panelTitles, []string{"udp echo", "tcp echo"}) {
		t.Errorf("panel titles %q", f.panelTitles)
	}
	if a, b := f.panels[0].Y, f.panels[1].Y; a.Min != b.Min || a.Max != b.Max {
		t.Errorf("panels do not share the latency scale: %v..%v and %v..%v", a.Min, a.Max, b.Min, b.Max)
	}
	wantLegend := []string{"kernel", "joyride", "null (floor): p50 to p99", "p50 solid, p99 dashed", "shaded: 95% CI", "SLO p99 ≤ 200 µs"}
	if !slices.Equal(f.legend.names, wantLegend) {
		t.Errorf("legend %q, want %q", f.legend.names, wantLegend)
	}
	udp, tcp := panels[0], panels[1]
	for _, c := range []struct {
		pn    *latPanel
		stack string
		x     float64
		why   string
	}{{udp, "kernel", 200, "invalid"}, {udp, "kernel", 400, "not sustained"}, {tcp, "joyride", 400, "invalid"}} {
		if onLine(c.pn, c.stack, c.x) {
			t.Errorf("%s %s at %gk (%s) is on the line", c.pn.name, c.stack, c.x, c.why)
		}
		if !hasMark(c.pn.open, c.stack, c.x) {
			t.Errorf("%s %s at %gk (%s) has no open marker", c.pn.name, c.stack, c.x, c.why)
		}
	}
	// The invalid rate breaks kernel's udp line: 10k..100k, then 300k.
	var kernelP50 []plotter.XYs
	for _, l := range udp.lines {
		if l.stack == "kernel" && l.quantile == "p50" {
			kernelP50 = append(kernelP50, l.xys)
		}
	}
	if len(kernelP50) != 2 || len(kernelP50[0]) != 3 || len(kernelP50[1]) != 1 || kernelP50[1][0].X != 300 {
		t.Errorf("kernel udp p50 lines %v, want 10k..100k and 300k", kernelP50)
	}
	// One invalid repetition of three: the other two on the line, it beside.
	if !onLine(tcp, "joyride", 100) || !hasMark(tcp.open, "joyride", 100) {
		t.Error("joyride tcp 100k: want the valid repetitions on the line and the invalid one beside it")
	}
	for _, m := range tcp.open {
		if m.stack == "joyride" && m.x == 400 && (!m.clamped || m.y != f.panels[1].Y.Max) {
			t.Errorf("joyride tcp 400k at 10 s is not drawn on the top edge: %+v (top %v)", m, f.panels[1].Y.Max)
		}
	}
	if !hasMark(udp.flags, "joyride", 50) || len(udp.flags) != 1 || len(tcp.flags) != 0 {
		t.Errorf("flags udp %+v tcp %+v, want joyride udp 50k only", udp.flags, tcp.flags)
	}
	// An upper bound stays on the line, marked.
	if !onLine(tcp, "kernel", 10) || !hasMark(tcp.bounds, "kernel", 10) || len(tcp.bounds) != 2 || len(udp.bounds) != 0 {
		t.Errorf("bounds udp %+v tcp %+v, want kernel tcp 10k (p50 and p99) on the line", udp.bounds, tcp.bounds)
	}
	for _, pn := range panels {
		for _, l := range pn.lines {
			if l.stack == "null" {
				t.Errorf("%s: null drawn as a line %v, want a band", pn.name, l.xys)
			}
		}
	}
	caption := strings.Join(f.caption, "\n")
	for _, want := range []string{"Open markers: not sustained (achieved < 99% of offered) or invalid", "udp echo: kernel 200k, 400k",
		"tcp echo: joyride 100k (1 of 3 reps), 400k", "× beside a marker: validity checks failed", "joyride 50k",
		"▼ beside a marker: upper bound", "tcp echo: kernel 10k"} {
		if !strings.Contains(caption, want) {
			t.Errorf("caption lacks %q:\n%s", want, caption)
		}
	}

	base := filepath.Join(t.TempDir(), "latency-vs-load-panels")
	if err := LatencyVsLoad(pts, "udp and tcp echo", base, 200); err != nil {
		t.Fatal(err)
	}
	// Two panels side by side, a little taller for the caption's four lines.
	w, h := f.size()
	if w != 2*panelWidth+legendColumn || h <= figHeight {
		t.Errorf("figure %v × %v", w, h)
	}
	checkFigureSize(t, base, int(math.Round(w.Dots(pngDPI))), int(math.Round(h.Dots(pngDPI))))
	svg, _ := os.ReadFile(base + ".svg")
	for _, want := range []string{"udp echo", "tcp echo", "95% CI", "Open markers"} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	if bytes.Contains(svg, []byte("kernel udp")) || bytes.Contains(svg, []byte("p50<")) {
		t.Error("SVG still names series one by one")
	}
	if keep := os.Getenv("KEEP_PLOTS"); keep != "" {
		copyFile(t, base+".png", filepath.Join(keep, "latency-vs-load-panels.png"))
	}
}

// Several applications over one protocol: one panel per application; the
// legend is the same whatever the number of panels.
func TestLatencyVsLoadPerApp(t *testing.T) {
	var pts []analysis.Point
	for _, app := range []string{"echo", "memcached", "synthetic"} {
		for _, stack := range []string{"kernel", "afxdp", "joyride"} {
			for _, p := range sweep(stack, 20, 500000) {
				p.App = app
				pts = append(pts, p)
			}
		}
	}
	f, panels, err := latencyFigure(pts, "three apps", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(panels) != 3 || f.cols != 3 || !slices.Equal(f.panelTitles, []string{"udp echo", "udp memcached", "udp synthetic"}) {
		t.Errorf("%d panels in %d columns: %q", len(panels), f.cols, f.panelTitles)
	}
	// Without intervals: bars over the repetitions, and their key.
	if want := []string{"kernel", "afxdp", "joyride", "p50 solid, p99 dashed", "bars: min to max of repetitions"}; !slices.Equal(f.legend.names, want) {
		t.Errorf("legend %q, want %q", f.legend.names, want)
	}
	if len(f.caption) != 0 {
		t.Errorf("caption %q with every point valid", f.caption)
	}
	base := filepath.Join(t.TempDir(), "latency-vs-load-apps")
	if err := LatencyVsLoad(pts, "three apps", base, 0); err != nil {
		t.Fatal(err)
	}
	checkFigureSize(t, base, 2370, 750)
	if keep := os.Getenv("KEEP_PLOTS"); keep != "" {
		copyFile(t, base+".png", filepath.Join(keep, "latency-vs-load-apps.png"))
	}
}

func TestSustained(t *testing.T) {
	for _, c := range []struct {
		p    analysis.Point
		want bool
	}{
		{analysis.Point{Valid: true, OfferedRPS: 1000, AchievedRPS: 990}, true},
		{analysis.Point{Valid: true, OfferedRPS: 1000, AchievedRPS: 989}, false},
		{analysis.Point{Valid: false, OfferedRPS: 1000, AchievedRPS: 1000}, false},
		{analysis.Point{Valid: true, Window: 4, AchievedRPS: 5000}, true}, // a closed loop offers no rate
	} {
		if got := sustained(c.p); got != c.want {
			t.Errorf("sustained(%+v) = %v", c.p, got)
		}
	}
}

// Every stack's marker has an open twin of the same colour.
func TestOpenGlyph(t *testing.T) {
	for _, s := range []string{"kernel", "afxdp", "joyride", "null", "mtcp", "caladan", "demikernel"} {
		c, g := StackStyle(s)
		o := openGlyph(g)
		m, ok := o.Shape.(markGlyph)
		if !ok || !m.open || o.Color != c {
			t.Errorf("%s: open glyph %+v", s, o)
		}
		if fm, ok := g.Shape.(markGlyph); ok && (fm.open || fm.shape != m.shape) {
			t.Errorf("%s: marker %+v, open twin %+v", s, fm, m)
		}
	}
}
