package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/joyride-bench/joyride/experiments"
	"github.com/joyride-bench/joyride/paperkit"
)

// make paper on existing results (--reuse): figures copied under their ids,
// RESULTS.md holds each claim with the figures measured from the run, the
// baseline, their ratio and a verdict. --no-run leaves an experiment without
// results unmeasured instead of running it.
func TestPaperFromExistingResults(t *testing.T) {
	root := t.TempDir()
	results := filepath.Join(root, "results")
	run := filepath.Join(results, "offline", "20260506-070809-abcd")
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	makeRun(t, run, 1)
	os.Symlink("20260506-070809-abcd", filepath.Join(results, "offline", "latest"))
	// Percentiles, their intervals and the checks, from the logs.
	if _, errOut, code := runJrbench(t, "analyze", run); code != 0 {
		t.Fatalf("analyze: %d %s", code, errOut)
	}
	if _, errOut, code := runJrbench(t, "plot", run); code != 0 {
		t.Fatalf("plot: %d %s", code, errOut)
	}
	manifest := filepath.Join(root, "manifest.yaml")
	os.WriteFile(manifest, []byte(`figures:
  - id: lat
    title: latency
    papers: [Test]
    experiment: offline
    plot: latency-vs-load
    claims:
      - claim: no stack beats the kernel
        published: "8 us against 30 us"
        measure: {stack: "null", rate: 1000, metric: p50}
        versus: {stack: kernel}
        expect: {ratio_at_most: 1.0}
      - claim: the kernel drifts at 5000
        published: "(baseline)"
        measure: {stack: kernel, rate: 5000, metric: p50}
        versus: {stack: "null"}
        expect: {ratio_at_least: 1.0}
      - claim: kernel peak
        published: "(baseline)"
        measure: {stack: kernel, metric: peak}
      - claim: the library OS
        measure: {stack: afxdp, rate: 1000, metric: p50}
        versus: {stack: kernel}
        expect: {ratio_at_most: 1.0}
  - id: other
    title: another experiment
    experiment: never-run
    plot: latency-vs-load
    claims:
      - claim: something else
        measure: {stack: kernel, rate: 1000, metric: p99}
        expect: {at_most: 100}
`), 0o644)
	out := filepath.Join(root, "paper")
	_, errOut, code := runJrbench(t, "paper", "--no-run", "--results", results, "--manifest", manifest, "--out", out)
	if code != 0 {
		t.Fatalf("paper: exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "no results of never-run") || !strings.Contains(errOut, "5 claims: 1 reproduced, 1 not reproduced, 2 not measurable here, 1 measured (no expectation)") {
		t.Errorf("stderr: %s", errOut)
	}
	for _, f := range []string{"figures/lat.pdf", "figures/lat.png"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s missing: %v", f, err)
		}
	}
	b, _ := os.ReadFile(filepath.Join(out, "RESULTS.md"))
	for _, want := range []string{
		"| offline | 20260506-070809-abcd |", "| never-run | no run |",
		"| lat | no stack beats the kernel | 8 us against 30 us | null p50 ", "(1000 req/s) | kernel p50 ", "| **reproduced**: expected ratio ≤ 1 over the whole range",
		"| lat | the kernel drifts at 5000 |", "**not reproduced**: inconclusive: 1 of 1 valid repetitions of kernel failed the stationarity",
		"| lat | kernel peak | (baseline) | kernel peak ≥ 5000 req/s (the highest rate measured validly) |", "**measured (no expectation)**",
		"**not measurable here**: stack afxdp was not in run 20260506-070809-abcd (it ran kernel, null)",
		"| other | something else |", "**not measurable here**: no run of experiment never-run",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("RESULTS.md lacks %q:\n%s", want, b)
		}
	}
	// A manifest with a bad metric is refused before anything runs.
	os.WriteFile(manifest, []byte("figures:\n  - {id: x, experiment: offline, plot: p, claims: [{claim: c, measure: {stack: kernel, metric: p42}}]}\n"), 0o644)
	if _, errOut, code := runJrbench(t, "paper", "--reuse", "--results", results, "--manifest", manifest, "--out", out); code != 2 || !strings.Contains(errOut, "p42") {
		t.Fatalf("bad metric: exit %d: %s", code, errOut)
	}
}

// The repository's own manifest loads; every figure names an experiment file
// that exists and a plot that experiment draws; and every claim's measure and
// baseline name a stack, protocol and load level the experiment runs.
func TestRepositoryManifest(t *testing.T) {
	m, err := paperkit.Load("../../paper/manifest.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range m.Figures {
		e, err := experiments.Load(filepath.Join("../../experiments", f.Experiment+".yaml"))
		if err != nil {
			t.Errorf("figure %s: %v", f.ID, err)
			continue
		}
		kind := strings.TrimSuffix(strings.TrimSuffix(f.Plot, "-throughput"), "-latency")
		kind = strings.TrimSuffix(strings.TrimSuffix(kind, "-memory"), "-latency")
		if strings.HasPrefix(kind, "cdf-") {
			kind = "cdf"
		}
		if kind == "density-latency" || kind == "density" {
			kind = "density"
		}
		if !slices.ContainsFunc(e.Plots, func(p experiments.PlotSpec) bool { return p.Kind == kind }) {
			t.Errorf("figure %s: experiment %s draws no %s plot (it draws %+v)", f.ID, f.Experiment, kind, e.Plots)
		}
		for _, c := range f.Claims {
			for _, s := range []*paperkit.Selector{c.Measure, c.Versus} {
				if s == nil {
					continue
				}
				if err := runsSelector(e, *s); err != nil {
					t.Errorf("figure %s, claim %q: %v", f.ID, c.Claim, err)
				}
			}
		}
	}
}

// runsSelector checks that experiment e runs the point s picks.
func runsSelector(e *experiments.Experiment, s paperkit.Selector) error {
	if !slices.ContainsFunc(e.Stacks, func(st experiments.StackSpec) bool { return st.Name == s.Stack }) {
		return fmt.Errorf("experiment %s runs no stack %s", e.Name, s.Stack)
	}
	w := e.Workload
	protocols := w.Protocols
	if len(protocols) == 0 {
		protocols = []string{w.Protocol}
	}
	if s.Protocol != "" && !slices.Contains(protocols, s.Protocol) {
		return fmt.Errorf("experiment %s runs protocols %v, not %s", e.Name, protocols, s.Protocol)
	}
	if s.Protocol == "" && len(protocols) > 1 {
		return fmt.Errorf("experiment %s runs protocols %v: name one", e.Name, protocols)
	}
	if s.Rate > 0 && !slices.Contains(w.Rates, s.Rate) {
		return fmt.Errorf("experiment %s runs rates %v, not %v", e.Name, w.Rates, s.Rate)
	}
	if s.Window > 0 && !slices.Contains(w.Windows, s.Window) {
		return fmt.Errorf("experiment %s runs windows %v, not %d", e.Name, w.Windows, s.Window)
	}
	if s.Size > 0 && !slices.Contains(w.Sizes, s.Size) && w.Size != s.Size {
		return fmt.Errorf("experiment %s runs sizes %v (or %d), not %d", e.Name, w.Sizes, w.Size, s.Size)
	}
	if s.Size == 0 && len(w.Sizes) > 1 {
		return fmt.Errorf("experiment %s sweeps sizes %v: name one", e.Name, w.Sizes)
	}
	if s.Instances > 0 && !slices.Contains(w.Instances, s.Instances) {
		return fmt.Errorf("experiment %s runs instances %v, not %d", e.Name, w.Instances, s.Instances)
	}
	if s.Instances == 0 && len(w.Instances) > 1 {
		return fmt.Errorf("experiment %s sweeps instances %v: name one", e.Name, w.Instances)
	}
	return nil
}
