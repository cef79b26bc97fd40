package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/joyride-bench/joyride/experiments"
	_ "github.com/joyride-bench/joyride/stacks/all"
	"github.com/spf13/cobra"
)

// experimentPath turns "rpc-latency" into experiments/rpc-latency.yaml; paths pass
// through.
func experimentPath(arg string) string {
	if strings.ContainsRune(arg, '/') || strings.HasSuffix(arg, ".yaml") || strings.HasSuffix(arg, ".yml") {
		return arg
	}
	return filepath.Join("experiments", arg+".yaml")
}

// load parses an experiment file; a bad file is a usage error (exit 2).
func load(arg string) (*experiments.Experiment, error) {
	e, err := experiments.Load(experimentPath(arg))
	if err != nil {
		return nil, usageError{err}
	}
	return e, nil
}

func newValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate EXPERIMENT...",
		Short: "Check experiment files without running anything",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var errs []error
			for _, a := range args {
				e, err := load(a)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Printf("%s: ok (%d points)\n", experimentPath(a), len(e.Points()))
			}
			if len(errs) > 0 {
				return usageError{errors.Join(errs...)}
			}
			return nil
		},
	}
}

func newRunCmd() *cobra.Command {
	var o experiments.RunOptions
	cmd := &cobra.Command{
		Use:   "run EXPERIMENT",
		Short: "Run an experiment (a name under experiments/ or a path) on the local testbed",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := load(args[0])
			if err != nil {
				return err
			}
			if os.Geteuid() != 0 {
				return usageError{errors.New("run needs root (network namespaces, DPDK, PM QoS)")}
			}
			if o.BinDir == "" {
				self, err := os.Executable()
				if err != nil {
					return err
				}
				o.BinDir = filepath.Dir(self)
			}
			o.Progress, o.Log = os.Stderr, os.Stderr
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			fmt.Fprintf(os.Stderr, "running %s: %d points\n", e.Name, len(e.Points()))
			dir, err := experiments.Run(ctx, e, o)
			if dir != "" {
				fmt.Fprintf(os.Stderr, "results: %s (report: %s)\n", dir, filepath.Join(dir, "report.md"))
			}
			return err
		},
	}
	cmd.Flags().StringVar(&o.ResultsDir, "results", "results", "root directory of results")
	cmd.Flags().StringVar(&o.BinDir, "bin", "", "directory holding jrgen and jrapp (default: next to jrbench)")
	cmd.Flags().StringVar(&o.Order, "order", "", "override the point order: interleaved or sequential")
	cmd.Flags().StringVar(&o.GenDriver, "generator-driver", "af_xdp", "the generator's DPDK vdev: af_xdp or af_packet")
	return cmd
}
