package experiments

// report.md's "Server-side resources": whether the server's processes grew
// over the run, at the level where Go programs leak (goroutines and heap) as
// well as the kernel's (memory, descriptors, threads).

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// resourceTrend is one server-side process of one stack over a run: what it
// held when its first point's load started and when its last point's load
// ended, and the largest growth within a single point.
type resourceTrend struct {
	stack, process string
	points         int
	first, last    ProcResources
	// grewGoroutines and grewHeapKiB are the largest growth from a point's
	// start to its end, and grewAt the point where goroutines grew most.
	grewGoroutines int
	grewHeapKiB    int64
	grewAt         string
}

// resourceTrends groups pms' resource samples by stack and process, points in
// run order (meta.json keeps them so). Points without samples (failed before
// the load, or from before the runner sampled) are left out.
func resourceTrends(e *Experiment, pms []PointMeta) []*resourceTrend {
	byKey := map[[2]string]*resourceTrend{}
	var out []*resourceTrend
	for _, pm := range pms {
		procs := make([]string, 0, len(pm.Resources))
		for p := range pm.Resources {
			procs = append(procs, p)
		}
		slices.Sort(procs)
		for _, p := range procs {
			v := pm.Resources[p]
			if v[0].RSSKiB == 0 && v[1].RSSKiB == 0 {
				continue // the process was gone before either sample
			}
			k := [2]string{pm.Stack, p}
			t := byKey[k]
			if t == nil {
				t = &resourceTrend{stack: pm.Stack, process: p, first: v[0]}
				byKey[k] = t
				out = append(out, t)
			}
			t.points++
			t.last = v[1]
			if g := v[1].Goroutines - v[0].Goroutines; g > t.grewGoroutines || t.grewAt == "" {
				t.grewGoroutines = g
				t.grewAt = fmt.Sprintf("%s, rep %d", e.Workload.Describe(Level{Rate: pm.Rate, Window: pm.Window, Size: pm.Size, Instances: pm.Instances}), pm.Rep)
			}
			t.grewHeapKiB = max(t.grewHeapKiB, v[1].HeapKiB-v[0].HeapKiB)
		}
	}
	slices.SortStableFunc(out, func(a, b *resourceTrend) int {
		return cmp.Or(cmp.Compare(a.stack, b.stack), cmp.Compare(a.process, b.process))
	})
	return out
}

// resourcesMarkdown is the section's body; "" when no point sampled its
// server.
func resourcesMarkdown(e *Experiment, pms []PointMeta) string {
	trends := resourceTrends(e, pms)
	if len(trends) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("Each server-side process when its stack's first point's load started → when its last point's load ended " +
		"(meta.json points[].resources has every sample). Goroutines and the Go heap (bytes of allocated objects, " +
		"garbage not yet collected included) are the processes' own count, asked for with SIGUSR1; \"?\" when a process did not answer. A leak shows " +
		"as growth that the next point does not give back; the last column is the largest growth within one point.\n\n" +
		"| stack | process | points | goroutines | Go heap (MiB) | RSS (MiB) | fds | threads | most growth in a point |\n" +
		"|---|---|---:|---:|---:|---:|---:|---:|---|\n")
	mib := func(kib int64) string { return fmt.Sprintf("%.1f", float64(kib)/1024) }
	goCount := func(r ProcResources) string {
		if r.Goroutines == 0 {
			return "?"
		}
		return fmt.Sprint(r.Goroutines)
	}
	heap := func(r ProcResources) string {
		if r.HeapKiB == 0 {
			return "?"
		}
		return mib(r.HeapKiB)
	}
	for _, t := range trends {
		grew := "—"
		if t.first.Goroutines > 0 {
			grew = fmt.Sprintf("%+d goroutines (%s), %+.1f MiB heap", t.grewGoroutines, t.grewAt, float64(t.grewHeapKiB)/1024)
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s → %s | %s → %s | %s → %s | %d → %d | %d → %d | %s |\n",
			t.stack, t.process, t.points, goCount(t.first), goCount(t.last), heap(t.first), heap(t.last),
			mib(t.first.RSSKiB), mib(t.last.RSSKiB), t.first.FDs, t.last.FDs, t.first.Threads, t.last.Threads, grew)
	}
	return b.String()
}
