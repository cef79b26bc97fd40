package paperkit

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/joyride-bench/joyride/analysis"
)

const renderManifest = `figures:
  - id: lat
    title: latency
    papers: [Machnet]
    experiment: rpc-latency
    plot: latency-vs-load
    claims:
      - claim: bypass beats the kernel
        published: "9 µs | bare metal"
        measure: {protocol: udp, stack: joyride, rate: 10000, metric: p50}
        versus: {stack: kernel}
        expect: {ratio_at_most: 1.0}
      - claim: peak
        published: "1.6–7.0×"
        measure: {protocol: udp, stack: joyride, metric: peak}
        versus: {stack: kernel}
        expect: {ratio_at_least: 1.5}
      - claim: cores at 100G
        not_measurable: needs a 100G NIC
      - claim: afxdp too
        measure: {protocol: udp, stack: afxdp, rate: 10000, metric: p50}
        versus: {stack: kernel}
        expect: {ratio_at_most: 1.0}
  - id: cdf
    title: the distribution
    experiment: rpc-latency
    plot: cdf-10000
  - id: setup
    title: setup
    experiment: conn-setup
    plot: latency-vs-load
    claims:
      - claim: setup under 1 ms
        measure: {stack: joyride, rate: 1000, metric: p50}
        expect: {at_most: 1000}
`

func renderRun() map[string]*Run {
	return map[string]*Run{"rpc-latency": {ID: "20261207-112627-a73f", Machine: "AMD EPYC, 2 cores, Linux 6.18", Testbed: "local (veth pair between two namespaces)",
		Commit: "ebe8d5e419341c6f61e50bea9b0e3f7ece7b5629-dirty", Start: "2026-12-07 11:26", State: "complete",
		Points: []analysis.Point{
			lat("joyride", 10000, 10, 9, 11), lat("kernel", 10000, 20, 19, 21),
			achieved("joyride", 100000, 100000), achieved("joyride", 200000, 120000),
			achieved("kernel", 100000, 100000), achieved("kernel", 200000, 199000), achieved("kernel", 300000, 100),
		}}}
}

// The rendered RESULTS.md: the runs, a tally, one row per claim with both
// figures, the ratio and its range, the verdict and the run, and the figures.
func TestRender(t *testing.T) {
	m, err := Parse("m.yaml", []byte(renderManifest))
	if err != nil {
		t.Fatal(err)
	}
	md := NewReport(m, renderRun()).Markdown()
	for _, want := range []string{
		"| experiment | run | machine | testbed | commit | started (UTC) |\n|---|---|---|---|---|---|\n" +
			"| rpc-latency | 20261207-112627-a73f | AMD EPYC, 2 cores, Linux 6.18 | local (veth pair between two namespaces) | ebe8d5e41934-dirty | 2026-12-07 11:26 |\n" +
			"| conn-setup | no run | | | | |\n",
		"5 claims: 1 reproduced, 1 contradicted, 3 not measurable here.\n",
		"| figure | claim | published | measured | baseline measured | ratio | verdict | run |\n|---|---|---|---|---|---|---|---|\n",
		"| lat | bypass beats the kernel | 9 µs \\| bare metal | joyride p50 10.0 µs [9.0–11.0] (udp, 10000 req/s) | kernel p50 20.0 µs [19.0–21.0] | " +
			"0.50× [0.43–0.58] | **reproduced**: expected ratio ≤ 1 over the whole range 0.43–0.58 | 20261207-112627-a73f |\n",
		"| lat | peak | 1.6–7.0× | joyride peak 100000 req/s [100000–200000) (udp) | kernel peak 200000 req/s [200000–300000) | 0.50× [0.33–1.00] | " +
			"**contradicted**: expected ratio ≥ 1.5; it fails over the whole range 0.33–1.00 | 20261207-112627-a73f |\n",
		"| lat | cores at 100G |  |  |  |  | **not measurable here**: needs a 100G NIC | 20261207-112627-a73f |\n",
		"| lat | afxdp too |  | — | kernel p50 20.0 µs [19.0–21.0] |  | **not measurable here**: stack afxdp was not in run " +
			"20261207-112627-a73f (it ran joyride, kernel) (expected ratio ≤ 1) | 20261207-112627-a73f |\n",
		"| setup | setup under 1 ms |  | — |  |  | **not measurable here**: no run of experiment conn-setup (expected ≤ 1000 µs) | no run |\n",
		"| figure | title | papers | experiment | plot |\n|---|---|---|---|---|\n| lat | latency | Machnet | rpc-latency | latency-vs-load |\n" +
			"| cdf | the distribution |  | rpc-latency | cdf-10000 |\n| setup | setup |  | conn-setup | latency-vs-load (no run) |\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("RESULTS.md lacks\n%s\n---\n%s", want, md)
		}
	}
	// No project history in the reader's text.
	if regexp.MustCompile(`(?i)\bissue\b|#\d`).MatchString(md) {
		t.Errorf("RESULTS.md mentions issues:\n%s", md)
	}
}

// Write copies each figure of a run, writes RESULTS.md, and reports the
// figures a run did not draw.
func TestWrite(t *testing.T) {
	root := t.TempDir()
	run := filepath.Join(root, "results", "rpc-latency", "20261207-112627-a73f")
	if err := os.MkdirAll(filepath.Join(run, "plots"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Symlink("20261207-112627-a73f", filepath.Join(root, "results", "rpc-latency", "latest"))
	if err := analysis.WriteSummaryCSV(filepath.Join(run, "summary.csv"), renderRun()["rpc-latency"].Points); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(run, "meta.json"), []byte(`{"run_id": "20261207-112627-a73f", "state": "complete",
  "start": "2026-12-07T11:26:27.1Z", "commit": "abc", "host": {"cpu": "AMD EPYC", "cores": "2", "kernel": "6.18"},
  "experiment": {"testbed": "local"}}`), 0o644)
	for _, f := range []string{"latency-vs-load.pdf", "latency-vs-load.png", "latency-vs-load.svg", "cdf-10000.png"} {
		os.WriteFile(filepath.Join(run, "plots", f), []byte("figure"), 0o644)
	}
	m, err := Parse("m.yaml", []byte(renderManifest))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "paper")
	rep, err := Write(m, map[string]string{"rpc-latency": filepath.Join(root, "results", "rpc-latency", "latest")}, out)
	if err == nil || !strings.Contains(err.Error(), "1 figures missing: cdf (") {
		t.Fatalf("want cdf.pdf missing, got %v", err)
	}
	for _, f := range []string{"lat.pdf", "lat.png", "lat.svg", "cdf.png"} {
		if b, err := os.ReadFile(filepath.Join(out, "figures", f)); err != nil || string(b) != "figure" {
			t.Errorf("figures/%s: %q %v", f, b, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(out, "RESULTS.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| rpc-latency | 20261207-112627-a73f | AMD EPYC, 2 cores, Linux 6.18 | local (veth pair between two namespaces) | abc | 2026-12-07 11:26 |",
		"**reproduced**", "Missing figures: cdf (",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("RESULTS.md lacks %q:\n%s", want, b)
		}
	}
	if rep == nil || rep.Runs["rpc-latency"].ID != "20261207-112627-a73f" || rep.Summary() != "5 claims: 1 reproduced, 1 contradicted, 3 not measurable here" {
		t.Errorf("report %+v", rep)
	}
}
