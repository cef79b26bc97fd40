package experiments

// report.md: the run table and the sections built from meta.json.

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/joyride-bench/joyride/analysis"
	"github.com/joyride-bench/joyride/loadgen"
	"github.com/joyride-bench/joyride/testbed/spec"
)

// Title is the figures' title for an experiment.
func Title(e *Experiment) string {
	return e.Name + ": " + e.Workload.ProtocolText() + " " + e.App + ", " + sizeText(e.Workload)
}

// sizeText says what sizes the workload's requests have.
func sizeText(w Workload) string {
	switch {
	case len(w.Sizes) > 0:
		return fmt.Sprintf("%d–%d B", w.Sizes[0], w.Sizes[len(w.Sizes)-1])
	case w.SizeDist != "":
		return "sizes " + w.SizeDist + " B"
	}
	return strconv.Itoa(w.Size) + " B"
}

// ReportTable is report.md's run table, from what meta.json holds (the runner
// and jrbench analyze both render it).
func ReportTable(m *Meta) map[string]string {
	t := map[string]string{
		"run":       m.RunID,
		"state":     m.State,
		"commit":    m.Commit,
		"host":      m.Host["hostname"],
		"kernel":    m.Host["kernel"],
		"cpu":       m.Host["cpu"],
		"pm_qos":    fmt.Sprintf("requested %s, held %t (value %d µs)", m.PMQoS.Requested, m.PMQoS.Held, m.PMQoS.ValueUs),
		"placement": fmt.Sprintf("generator on cpu %s, server on cpu %d", strings.Trim(fmt.Sprint(m.Placement.generatorCPUs()), "[]"), m.Placement.Server),
		"order":     fmt.Sprintf("%s, seed %d", m.Order, m.Seed),
		"generator": "DPDK " + m.GenDriver + " vdev (jrgen)",
	}
	if e := m.Experiment; e != nil {
		arrivals := e.Workload.Schedule + " arrivals"
		if len(e.Workload.Windows) > 0 {
			arrivals = fmt.Sprintf("closed loop (windows %v per connection)", e.Workload.Windows)
		}
		t["workload"] = fmt.Sprintf("%s %s, %s, %s, %v per point after %v warm-up, late after %v",
			e.Workload.ProtocolText(), e.App, sizeText(e.Workload), arrivals, e.Workload.Duration,
			e.Workload.Warmup, e.Workload.LateThreshold)
	}
	if m.InjectedStalls != nil {
		t["stalls injected"] = stallText(m.InjectedStalls)
	}
	if m.Testbed != nil {
		t["testbed"] = fmt.Sprintf("local veth %s (%s) <-> %s (%s)", m.Testbed.Client.Iface, m.Testbed.Client.Addr, m.Testbed.Server.Iface, m.Testbed.Server.Addr)
	}
	if rt := m.RemoteTestbed; rt != nil && rt.Testbed != nil {
		if c, s := rt.Testbed.Node(spec.RoleClient), rt.Testbed.Node(spec.RoleServer); c != nil && s != nil {
			t["testbed"] = fmt.Sprintf("%s over SSH: client %s (%s) <-> server %s (%s)", rt.Testbed.Name, c.Name, c.IP, s.Name, s.IP)
		}
		t["generator"] = "DPDK " + m.GenDriver + " (jrgen)"
		t["pm_qos"] = "not held on the nodes"
	}
	return t
}

// BuildReport is report.md's content for a run: its table, notes and
// sections from what meta.json holds, and pts, the run's points (as
// summary.csv holds them). The runner writes it at the end of a run, and
// `jrbench analyze` from a results directory with recomputed points. The
// title is empty when m records no experiment.
func BuildReport(m *Meta, pts []analysis.Point) analysis.Report {
	var e Experiment
	if m.Experiment != nil {
		e = *m.Experiment
	}
	var notes []string
	if m.Error != "" {
		notes = append(notes, "The run ended early: "+m.Error)
	}
	if rt := m.RemoteTestbed; rt != nil && len(rt.NotMeasured) > 0 {
		notes = append(notes, "The roles ran on remote nodes over SSH; not measured there: "+strings.Join(rt.NotMeasured, "; ")+".")
	}
	// The arrival check: did the requests really leave as a Poisson process?
	checked, rejected, worst := 0, 0, ""
	worstA2 := 0.0
	for _, pm := range m.Points {
		g := pm.Generator
		if g == nil || g.ArrivalN == 0 {
			continue
		}
		checked++
		if g.ArrivalA2 > loadgen.ADCrit1 {
			rejected++
		}
		if g.ArrivalA2 > worstA2 {
			worstA2, worst = g.ArrivalA2, fmt.Sprintf("%s at %.0f req/s, rep %d", pm.Stack, pm.Rate, pm.Rep)
		}
	}
	if checked > 0 {
		notes = append(notes, fmt.Sprintf("Arrival check (Anderson–Darling of the first %d gaps between sends against "+
			"the exponential of the offered rate, per point; meta.json points[].generator.arrival_a2): %d of %d points "+
			"reject it at 1%% (A² > %.3f); the largest A² is %.1f (%s). A rejection means the sends bunched (the "+
			"generator batched after a stall) more than a Poisson process would: compare with the late counts and the "+
			"calibration's vCPU stalls.", loadgen.ArrivalSamples, rejected, checked, loadgen.ADCrit1, worstA2, worst))
	}
	// What the generator itself cost: with thousands of connections its
	// client stack's memory is part of the result.
	var peakRSS int64
	var peakAt string
	for _, pm := range m.Points {
		if g := pm.Generator; g != nil && g.MaxRSSKiB > peakRSS {
			peakRSS, peakAt = g.MaxRSSKiB, fmt.Sprintf("%s at %s, rep %d", pm.Stack, e.Workload.Describe(Level{Rate: pm.Rate, Window: pm.Window, Size: pm.Size, Instances: pm.Instances}), pm.Rep)
		}
	}
	if peakRSS > 0 {
		notes = append(notes, fmt.Sprintf("The generator's peak resident memory was %.0f MiB (%s; meta.json points[].generator.max_rss_kib), with %d connections.",
			float64(peakRSS)/1024, peakAt, max(e.Workload.Connections, 1)))
	}
	rep := analysis.Report{Description: e.Description, Meta: ReportTable(m),
		Points: pts, SLOp99us: float64(e.SLO.P99.Duration) / 1e3}
	if m.Experiment != nil {
		rep.Title = "Experiment " + e.Name
	}
	if md := firstByteMarkdown(m.Points); md != "" {
		rep.Sections = append(rep.Sections, analysis.Section{Title: "Time to first byte", Markdown: md})
	}
	if md := resourcesMarkdown(&e, m.Points); md != "" {
		rep.Sections = append(rep.Sections, analysis.Section{Title: "Server-side resources", Markdown: md})
	}
	if c := m.Calibration; c != nil {
		rep.Sections = append(rep.Sections, analysis.Section{Title: "Calibration", Markdown: c.markdown(generatorPeak(pts))})
		if c.AA != nil {
			rep.NoiseP50us, rep.NoiseP99us = c.AA.NoiseP50us, c.AA.NoiseP99us
		}
	} else {
		notes = append(notes, "No calibration was run: no noise floor, no wire limit.")
	}
	rep.Notes = notes
	return rep
}

// firstByteMarkdown tabulates, for connect points, the time from each
// connection's scheduled start to the first byte of the echo of its first
// request (the setup time is the latency of the Results tables), per stack and
// rate: means over the repetitions that measured it. "" when no point did.
func firstByteMarkdown(pms []PointMeta) string {
	type key struct {
		stack string
		rate  float64
	}
	type acc struct {
		n        int
		p50, p99 float64
		count    int64
		lost     uint64
	}
	groups := map[key]*acc{}
	var keys []key
	for _, pm := range pms {
		g := pm.Generator
		if g == nil || g.Protocol != "tcp-connect" {
			continue
		}
		k := key{pm.Stack, pm.Rate}
		a := groups[k]
		if a == nil {
			a = &acc{}
			groups[k] = a
			keys = append(keys, k)
		}
		a.lost += g.FirstByteLost
		if g.FirstByteCount > 0 {
			a.n++
			a.p50 += g.FirstByteP50Us
			a.p99 += g.FirstByteP99Us
			a.count += g.FirstByteCount
		}
	}
	if len(keys) == 0 {
		return ""
	}
	slices.SortFunc(keys, func(a, b key) int { return cmp.Or(cmp.Compare(a.stack, b.stack), cmp.Compare(a.rate, b.rate)) })
	var b strings.Builder
	b.WriteString("Each established connection writes one request and waits for the first byte of its echo: the time from " +
		"the connection's scheduled start to that byte is what an application connecting per request waits for (the server's " +
		"accept and first read included). Means over the repetitions; the logs are hist/*.ttfb.hlog.\n\n" +
		"| stack | connections/s | first byte p50 (µs) | first byte p99 (µs) | answered | not answered |\n|---|---:|---:|---:|---:|---:|\n")
	for _, k := range keys {
		a := groups[k]
		p50, p99 := "—", "—"
		if a.n > 0 {
			p50, p99 = fmt.Sprintf("%.2f", a.p50/float64(a.n)), fmt.Sprintf("%.2f", a.p99/float64(a.n))
		}
		fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %d | %d |\n", k.stack, k.rate, p50, p99, a.count, a.lost)
	}
	return b.String()
}

// generatorPeak is the highest achieved rate of any valid point that achieved
// at least 99% of its offered rate: what the generator demonstrably sustains.
func generatorPeak(pts []analysis.Point) float64 {
	peak := 0.0
	for _, p := range pts {
		if p.Valid && p.AchievedRPS >= 0.99*p.OfferedRPS && p.AchievedRPS > peak {
			peak = p.AchievedRPS
		}
	}
	return peak
}
