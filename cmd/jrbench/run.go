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
	"github.com/joyride-bench/joyride/testbed/spec"
	"github.com/joyride-bench/joyride/testbed/stall"
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
	var resume bool
	var testbed, stalls string
	cmd := &cobra.Command{
		Use:   "run EXPERIMENT",
		Short: "Run an experiment (a name under experiments/ or a path) on the local testbed or a testbed file's nodes",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := load(args[0])
			if err != nil {
				return err
			}
			if err := useTestbed(cmd, testbed, &o); err != nil {
				return err
			}
			if o.Testbed == nil {
				warnLeftTestbeds(os.Stderr)
			}
			if err := defaultBinDir(&o); err != nil {
				return err
			}
			if stalls != "" {
				sp, err := stall.Parse(stalls)
				if err != nil {
					return usageError{fmt.Errorf("--inject-stalls: %w", err)}
				}
				sp.CPU = -1 // the generator's core
				o.InjectStalls = &sp
			}
			o.Progress, o.Log = os.Stderr, os.Stderr
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if resume {
				o.Resume = filepath.Join(o.ResultsDir, e.Name, "latest")
				if target, err := os.Readlink(o.Resume); err == nil {
					o.Resume = filepath.Join(o.ResultsDir, e.Name, target)
				}
				fmt.Fprintf(os.Stderr, "resuming %s in %s\n", e.Name, o.Resume)
			}
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
	cmd.Flags().BoolVar(&resume, "resume", false, "continue the experiment's latest run (results/<name>/latest) where it stopped: measured points are kept, the others run")
	cmd.Flags().BoolVar(&o.AllowMix, "allow-mix", false, "with --resume: continue even if the experiment file or the commit changed since")
	cmd.Flags().StringVar(&stalls, "inject-stalls", "", "take the generator's core away for LENGTH every PERIOD during the run, e.g. 2ms/100ms: a noisy machine made on purpose, to see stalled points reported as upper bounds")
	cmd.Flags().BoolVar(&o.SkipCalibration, "no-calibrate", false, "skip the calibration probes at the start (no noise floor in the report)")
	cmd.Flags().StringVar(&testbed, "testbed", "local", "where the roles run: local (two namespaces on this machine) or a testbed file whose nodes are reached over SSH (e.g. testbed/cloudlab.yaml; see docs/CLOUDLAB.md)")
	addPlacementFlags(cmd, &o)
	return cmd
}

// useTestbed sets o.Testbed from the --testbed flag's value: a testbed file's
// roles go to its nodes' cores (the file's cores:) unless the command line
// moves them; the local testbed needs root.
func useTestbed(cmd *cobra.Command, testbed string, o *experiments.RunOptions) error {
	tb, err := spec.Load(testbed)
	if err != nil {
		return usageError{fmt.Errorf("--testbed: %w", err)}
	}
	if !tb.Builtin {
		o.Testbed = tb
		if !cmd.Flags().Changed("generator-cpu") && !cmd.Flags().Changed("server-cpu") && !cmd.Flags().Changed("generator-extra-cpus") {
			o.Placement = nil
		}
	} else if os.Geteuid() != 0 {
		return usageError{fmt.Errorf("%s needs root (network namespaces, DPDK, PM QoS)", cmd.Name())}
	}
	return nil
}

// addPlacementFlags lets the user move the roles to other cores.
func addPlacementFlags(cmd *cobra.Command, o *experiments.RunOptions) {
	p := experiments.DefaultPlacement
	o.Placement = &p
	cmd.Flags().IntVar(&p.Generator, "generator-cpu", p.Generator, "core the load generator is pinned to")
	cmd.Flags().IntSliceVar(&p.GeneratorExtra, "generator-extra-cpus", nil, "more cores for the generator, one engine and veth queue each (UDP echo on the kernel stack only), e.g. 2,3")
	cmd.Flags().IntVar(&p.Server, "server-cpu", p.Server, "core the stack under test and its application are pinned to")
}

func newCalibrateCmd() *cobra.Command {
	var o experiments.RunOptions
	var testbed string
	cmd := &cobra.Command{
		Use:   "calibrate",
		Short: "Measure the testbed: wire limit, null and kernel round trips (with and without PM QoS), A/A noise, vCPU stalls",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := useTestbed(cmd, testbed, &o); err != nil {
				return err
			}
			if err := defaultBinDir(&o); err != nil {
				return err
			}
			o.Log = os.Stderr
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			dir, err := experiments.Run(ctx, experiments.CalibrationExperiment(), o)
			if dir != "" {
				if b, rerr := os.ReadFile(filepath.Join(dir, "report.md")); rerr == nil {
					os.Stdout.Write(b)
				}
				fmt.Fprintf(os.Stderr, "results: %s\n", dir)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&o.ResultsDir, "results", "results", "root directory of results")
	cmd.Flags().StringVar(&o.BinDir, "bin", "", "directory holding jrgen and jrapp (default: next to jrbench)")
	cmd.Flags().StringVar(&o.GenDriver, "generator-driver", "af_xdp", "the generator's DPDK vdev: af_xdp or af_packet")
	cmd.Flags().StringVar(&testbed, "testbed", "local", "the testbed to measure: local, or a testbed file whose nodes are reached over SSH (there the stall probe and the kernel without PM QoS are not measured)")
	addPlacementFlags(cmd, &o)
	return cmd
}

// defaultBinDir points BinDir next to the running jrbench when unset.
func defaultBinDir(o *experiments.RunOptions) error {
	if o.BinDir != "" {
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	o.BinDir = filepath.Dir(self)
	return nil
}
