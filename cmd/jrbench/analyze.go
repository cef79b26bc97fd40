package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/joyride-bench/joyride/analysis"
	"github.com/joyride-bench/joyride/experiments"
	"github.com/spf13/cobra"
)

// The offline commands: analyze, plot and compare work on a results directory
// alone (summary.csv, hist/*.hlog and, when present, meta.json and report.md),
// so a run copied from another machine can be analysed anywhere. They never
// touch the testbed and need no privileges.

// newAnalysisCmds returns the analyze, plot and compare commands.
func newAnalysisCmds() []*cobra.Command {
	return []*cobra.Command{newAnalyzeCmd(), newPlotCmd(), newCompareCmd()}
}

// exactArgs is cobra.ExactArgs with a wrong count as a usage error (exit 2).
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageError{fmt.Errorf("%s: %w (usage: jrbench %s)", cmd.Name(), err, cmd.Use)}
		}
		return nil
	}
}

func newAnalyzeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "analyze RUN_DIR",
		Short: "Recompute latencies, confidence intervals and validity checks of a results directory from its hist/*.hlog; rewrite summary.csv and report.md",
		Long: "analyze re-reads RUN_DIR/summary.csv and every point's interval log, recomputes the percentiles, " +
			"their 95% confidence intervals and the validity checks (stationarity, independence) from the logs, " +
			"keeps the arrival check summary.csv has (it needs the send times, which the logs do not keep), " +
			"and rewrites summary.csv and report.md (each atomically). Counts, rates and validity come from " +
			"summary.csv unchanged. A failed point whose log is missing keeps its row as it was.",
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			pts, err := readRun(dir)
			if err != nil {
				return err
			}
			failed, few, kept := 0, 0, 0
			for i := range pts {
				p := &pts[i]
				path, err := hlogPath(dir, *p)
				if err != nil {
					return err
				}
				if path == "" {
					kept++
					continue
				}
				h, err := analysis.ReadHlog(path)
				if err == nil && h.TotalCount() == 0 && !p.Valid {
					err = fs.ErrNotExist // nothing recorded: keep the row as it is
				}
				if err != nil {
					if !p.Valid {
						fmt.Fprintf(os.Stderr, "jrbench: %s (invalid point, row kept as it was)\n", err)
						kept++
						continue
					}
					return usageError{err}
				}
				analysis.FillLatency(p, analysis.Summarize(h))
				c, err := analysis.CheckPoint(path)
				if err != nil {
					return usageError{err}
				}
				// The arrival check needs the send times, which the log
				// does not keep: it stays as summary.csv has it.
				if old := p.Checks; old != nil && old.Arrival.Ran {
					c.SetArrival(old.Arrival.A2, old.Arrival.N)
				}
				p.Checks = &c
				if c.Failed() {
					failed++
				}
				if !c.ADF.Ran && !c.Lag1.Ran {
					few++
				}
			}
			rep, err := runReport(dir, pts)
			if err != nil {
				return err
			}
			if err := analysis.WriteSummaryCSV(filepath.Join(dir, "summary.csv"), pts); err != nil {
				return err
			}
			if err := analysis.WriteReport(filepath.Join(dir, "report.md"), rep); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "%s: %d points recomputed from hist/ (%d kept as they were); checks: %d failed, %d too few intervals\n",
				dir, len(pts)-kept, kept, failed, few)
			return nil
		},
	}
}

func newPlotCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "plot RUN_DIR",
		Short: "Redraw RUN_DIR/plots from summary.csv and hist/: the experiment's figures (PNG, SVG, PDF)",
		Long: "plot draws the figures the experiment in meta.json asked for, as the runner does: latency-vs-load " +
			"(with confidence bands when summary.csv has them; run analyze first for a run that has none), " +
			"cdf-<level> (valid repetitions pooled per stack), capacity, msg-size. For a run without its experiment, " +
			"latency-vs-load, the CDF at the lowest valid rate and, with an SLO, capacity.",
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			pts, err := readRun(dir)
			if err != nil {
				return err
			}
			m, err := readMeta(dir)
			if err != nil {
				return err
			}
			out := filepath.Join(dir, "plots")
			// The figures the experiment asked for (for a run without its
			// experiment in meta.json, latency vs load and, with an SLO, the
			// capacity bars), and the CDF at the lowest rate measured validly.
			var e experiments.Experiment
			if m.Experiment != nil {
				e = *m.Experiment
			}
			if e.Plots == nil {
				e.Plots = []experiments.PlotSpec{{Kind: "latency-vs-load"}}
				if e.SLO.P99.Duration > 0 {
					e.Plots = append(e.Plots, experiments.PlotSpec{Kind: "capacity"})
				}
			}
			if len(e.Workload.Sizes) == 0 && len(e.Workload.Windows) == 0 {
				lowest := 0.0
				for _, p := range pts {
					if p.Valid && (lowest == 0 || p.OfferedRPS < lowest) {
						lowest = p.OfferedRPS
					}
				}
				if lowest > 0 && !slices.Contains(e.Plots, experiments.PlotSpec{Kind: "cdf", Rate: lowest}) {
					e.Plots = append(e.Plots, experiments.PlotSpec{Kind: "cdf", Rate: lowest})
				}
			}
			drawn, err := experiments.DrawPlots(&e, m.title(dir), pts, out, func(p analysis.Point) (string, error) { return hlogPath(dir, p) })
			if err != nil {
				return usageError{err}
			}
			fmt.Fprintf(os.Stderr, "%s: %s (.png, .svg, .pdf)\n", out, strings.Join(drawn, ", "))
			return nil
		},
	}
}

func newCompareCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "compare RUN_A RUN_B",
		Short: "Print a Markdown table of the differences between two runs and whether each is outside their confidence intervals",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := readRun(args[0])
			if err != nil {
				return err
			}
			b, err := readRun(args[1])
			if err != nil {
				return err
			}
			_, err = fmt.Print(analysis.CompareMarkdown(args[0], args[1], analysis.Compare(a, b)))
			return err
		},
	}
}

// readRun reads RUN_DIR/summary.csv. A missing directory or file, or a
// malformed summary, is a usage error naming it.
func readRun(dir string) ([]analysis.Point, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, usageError{fmt.Errorf("results directory: %w", err)}
	}
	if !st.IsDir() {
		return nil, usageError{fmt.Errorf("%s: not a directory (want a results directory holding summary.csv)", dir)}
	}
	pts, err := analysis.ReadSummaryCSV(filepath.Join(dir, "summary.csv"))
	if err != nil {
		return nil, usageError{err}
	}
	return pts, nil
}

// hlogPath is the interval log of p inside dir; "" when p has none (a point
// that failed before measuring). A path leaving the directory is an error:
// the directory must be self-contained to be copied.
func hlogPath(dir string, p analysis.Point) (string, error) {
	if p.Hlog == "" {
		if p.Valid {
			return "", usageError{fmt.Errorf("%s: valid point %s %s %.0f rep %d has no hlog",
				filepath.Join(dir, "summary.csv"), p.Stack, p.Protocol, p.OfferedRPS, p.Rep)}
		}
		return "", nil
	}
	rel := filepath.FromSlash(p.Hlog)
	if filepath.IsAbs(rel) || !filepath.IsLocal(rel) {
		return "", usageError{fmt.Errorf("%s: hlog %q is not a path inside the results directory", filepath.Join(dir, "summary.csv"), p.Hlog)}
	}
	return filepath.Join(dir, rel), nil
}

// runMeta is the part of meta.json (experiments.Meta) the offline commands
// use. It is decoded leniently, field by field, so that results directories
// written by older or newer versions still read.
type runMeta struct {
	found bool
	// Meta is meta.json decoded with the runner's own type (unknown fields of
	// newer versions are ignored).
	experiments.Meta
}

// readMeta reads dir/meta.json; a missing file gives an empty runMeta
// (found false), a malformed one a usage error naming it.
func readMeta(dir string) (runMeta, error) {
	var m runMeta
	path := filepath.Join(dir, "meta.json")
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return m, usageError{err}
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, usageError{fmt.Errorf("%s: %w", path, err)}
	}
	m.found = true
	return m, nil
}

// title is the figures' title, as the runner writes it.
func (m runMeta) title(dir string) string {
	if m.Experiment == nil || m.Experiment.Name == "" {
		return filepath.Base(filepath.Clean(dir))
	}
	return experiments.Title(m.Experiment)
}

// generatedSections are the sections WriteReport writes itself; any other
// "## " section of an existing report.md that experiments.BuildReport does not
// build from meta.json either (one added by hand, for instance) is carried
// over by analyze.
var generatedSections = []string{"Run", "Results", "Latency above the null stack", "Ratios to the kernel", "Validity checks", "Invalid points", "Notes"}

// runReport builds report.md's content for pts from dir's meta.json, as the
// runner does (experiments.BuildReport), and the sections of its current
// report.md that neither builds.
func runReport(dir string, pts []analysis.Point) (analysis.Report, error) {
	m, err := readMeta(dir)
	if err != nil {
		return analysis.Report{}, err
	}
	var rep analysis.Report
	if m.found {
		rep = experiments.BuildReport(&m.Meta, pts)
	} else {
		rep = analysis.Report{Points: pts,
			Notes: []string{"No meta.json in the results directory: the run's metadata is unknown."}}
	}
	if rep.Title == "" {
		rep.Title = "Results " + filepath.Base(filepath.Clean(dir))
	}
	old, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return rep, usageError{err}
	}
	built := slices.Clone(generatedSections)
	for _, s := range rep.Sections {
		built = append(built, s.Title)
	}
	rep.Sections = append(rep.Sections, extraSections(string(old), built)...)
	rep.Notes = append(rep.Notes, fmt.Sprintf("Latencies, confidence intervals and validity checks recomputed from hist/ by `jrbench analyze` on %s.",
		time.Now().UTC().Format("2006-01-02 15:04 UTC")))
	return rep, nil
}

// extraSections returns the "## " sections of a report.md whose titles are not
// in built (the sections a new report has anyway), in order.
func extraSections(md string, built []string) []analysis.Section {
	var out []analysis.Section
	parts := strings.Split("\n"+md, "\n## ")
	for _, p := range parts[1:] {
		title, body, _ := strings.Cut(p, "\n")
		title = strings.TrimSpace(title)
		if slices.Contains(built, title) {
			continue
		}
		out = append(out, analysis.Section{Title: title, Markdown: strings.TrimSpace(body) + "\n"})
	}
	return out
}
