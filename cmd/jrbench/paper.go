package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/joyride-bench/joyride/experiments"
	"github.com/joyride-bench/joyride/paperkit"
	"github.com/spf13/cobra"
)

func newPaperCmd() *cobra.Command {
	var o experiments.RunOptions
	var manifestPath, out string
	var reuse, noRun bool
	cmd := &cobra.Command{
		Use:   "paper",
		Short: "Run the experiments of paper/manifest.yaml and write paper/figures and paper/RESULTS.md",
		Long: "Runs every experiment paper/manifest.yaml names, copies each figure to <out>/figures/<id>.pdf and .png, " +
			"and writes <out>/RESULTS.md: every claim with the published figure, the measured one, its baseline, their " +
			"ratio and a verdict (reproduced, not reproduced, contradicted, not measurable here).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := paperkit.Load(manifestPath)
			if err != nil {
				return usageError{err}
			}
			runs := map[string]string{} // experiment -> run directory
			var toRun []string
			for _, e := range m.Experiments() {
				latest := filepath.Join(o.ResultsDir, e, "latest")
				if reuse || noRun {
					if st, err := os.Stat(filepath.Join(latest, "summary.csv")); err == nil && st.Size() > 0 {
						fmt.Fprintf(os.Stderr, "paper: reusing %s\n", latest)
						runs[e] = latest
						continue
					}
				}
				if noRun {
					fmt.Fprintf(os.Stderr, "paper: no results of %s under %s: its claims are not measurable\n", e, o.ResultsDir)
					continue
				}
				toRun = append(toRun, e)
			}
			if len(toRun) > 0 {
				if err := defaultBinDir(&o); err != nil {
					return err
				}
				o.Progress, o.Log = os.Stderr, os.Stderr
				ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
				defer stop()
				for _, name := range toRun {
					e, err := load(name)
					if err != nil {
						return err
					}
					fmt.Fprintf(os.Stderr, "paper: running %s (%d points)\n", e.Name, len(e.Points()))
					dir, err := experiments.Run(ctx, e, o)
					if err != nil {
						return fmt.Errorf("experiment %s: %w", name, err)
					}
					runs[name] = dir
				}
			}
			rep, err := paperkit.Write(m, runs, out)
			if rep != nil {
				fmt.Fprintf(os.Stderr, "paper: wrote %s and %s (%s)\n", filepath.Join(out, "RESULTS.md"), filepath.Join(out, "figures"), rep.Summary())
			}
			return err
		},
	}
	cmd.Flags().StringVar(&manifestPath, "manifest", "paper/manifest.yaml", "the figures and claims to reproduce")
	cmd.Flags().StringVar(&out, "out", "paper", "where figures/ and RESULTS.md go")
	cmd.Flags().BoolVar(&reuse, "reuse", false, "use an experiment's latest results when there are some instead of running it again")
	cmd.Flags().BoolVar(&noRun, "no-run", false, "run no experiment: use each one's latest results, and report the claims of one without results as not measurable")
	cmd.Flags().StringVar(&o.ResultsDir, "results", "results", "root directory of results")
	cmd.Flags().StringVar(&o.BinDir, "bin", "", "directory holding jrgen, jrapp and joyrided (default: next to jrbench)")
	addPlacementFlags(cmd, &o)
	return cmd
}
