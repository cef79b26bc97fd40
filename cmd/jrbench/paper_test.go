package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/joyride-bench/joyride/experiments"
)

// make paper on existing results (--reuse): figures copied under their ids,
// RESULTS.md holds each claim with the number measured from the run.
func TestPaperFromExistingResults(t *testing.T) {
	root := t.TempDir()
	results := filepath.Join(root, "results")
	run := filepath.Join(results, "offline", "20260506-070809-abcd")
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	makeRun(t, run, 1)
	os.Symlink("20260506-070809-abcd", filepath.Join(results, "offline", "latest"))
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
      - claim: kernel p50
        published: "30 us"
        measure: {stack: kernel, rate: 1000, metric: p50}
      - claim: kernel peak
        published: "(baseline)"
        measure: {stack: kernel, metric: peak}
`), 0o644)
	out := filepath.Join(root, "paper")
	if _, errOut, code := runJrbench(t, "paper", "--reuse", "--results", results, "--manifest", manifest, "--out", out); code != 0 {
		t.Fatalf("paper: exit %d: %s", code, errOut)
	}
	for _, f := range []string{"figures/lat.pdf", "figures/lat.png"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s missing: %v", f, err)
		}
	}
	b, _ := os.ReadFile(filepath.Join(out, "RESULTS.md"))
	for _, want := range []string{"| lat | kernel p50 | 30 us | p50 ", "at 1000 req/s", "| lat | kernel peak |", "req/s (highest offered rate", "20260506-070809-abcd"} {
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

// The repository's own manifest loads, and every figure names an experiment
// file that exists and a plot that experiment draws.
func TestRepositoryManifest(t *testing.T) {
	m, err := loadManifest("../../paper/manifest.yaml")
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
	}
}
