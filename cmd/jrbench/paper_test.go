package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
