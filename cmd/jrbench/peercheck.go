package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/joyride-bench/joyride/experiments"
)

// newPeerCheckCmd is `jrbench peer-check`: the generator's round trips next to
// sockperf ping-pong's on the same testbed, a validation against a peer. It
// measures and prints; whether the tools agree is not in its exit status,
// since agreement on a shared VM is a measurement to read
// (docs/PERFORMANCE.md), not a test to pass. It exits 1 when a protocol got
// no comparison at all (a tool failed in every repetition).
func newPeerCheckCmd() *cobra.Command {
	var o experiments.PeerOptions
	var ro experiments.RunOptions // for the shared placement and bin-dir helpers
	var noTCP, noUDP bool
	var testbed string
	cmd := &cobra.Command{
		Use:   "peer-check",
		Short: "Compare the generator's UDP and TCP round trips with sockperf ping-pong's on the kernel stack, at a low rate",
		Long: `peer-check brings up a local testbed, holds PM QoS, and for each
repetition and protocol runs jrgen (DPDK, client namespace, generator core)
against jrapp's kernel echo and sockperf ping-pong (kernel sockets, client
namespace, generator core) against sockperf server (server namespace, server
core), alternating which goes first, at the same rate and message size; and,
once per repetition, jrgen against the null reflector (the floor).

sockperf's client ignores replies that still carry its own client flag, so it
cannot use jrapp's echo (which returns every byte unchanged) and talks to its
own server instead; both servers are on the kernel stack.

It prints, per protocol, the median over repetitions of each tool's p50 and
p99, their ratio (jrgen / sockperf) and whether they agree within 10%, and
writes every run and the summary to <results>/peer-check/<run-id>/peer-check.json.
Needs root and the Debian package sockperf.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if os.Geteuid() != 0 {
				return usageError{errors.New("peer-check needs root (network namespaces, DPDK, PM QoS)")}
			}
			// PeerOptions takes zero for "the default"; on the command line a
			// zero is a mistake.
			if !(o.Rate > 0) || o.Repetitions < 1 || o.Size < 1 || o.Duration <= 0 {
				return usageError{fmt.Errorf("peer-check: --rate %g, --reps %d, --size %d, --duration %v: each must be positive", o.Rate, o.Repetitions, o.Size, o.Duration)}
			}
			if noTCP && noUDP {
				return usageError{errors.New("peer-check: --no-udp and --no-tcp leave nothing to compare")}
			}
			o.Protocols = nil
			if !noUDP {
				o.Protocols = append(o.Protocols, "udp")
			}
			if !noTCP {
				o.Protocols = append(o.Protocols, "tcp")
			}
			if err := useTestbed(cmd, testbed, &ro); err != nil {
				return err
			}
			if err := defaultBinDir(&ro); err != nil {
				return err
			}
			o.BinDir, o.Placement, o.ResultsDir, o.GenDriver, o.Testbed = ro.BinDir, ro.Placement, ro.ResultsDir, ro.GenDriver, ro.Testbed
			o.Log = os.Stderr
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			res, err := experiments.PeerCheck(ctx, o)
			if res == nil {
				if err != nil && ctx.Err() == nil {
					return usageError{err} // options refused before anything started
				}
				return err
			}
			printPeerSummary(cmd.OutOrStdout(), res)
			fmt.Fprintf(os.Stderr, "results: %s\n", filepath.Join(res.Dir, experiments.PeerCheckName+".json"))
			if err != nil {
				return err
			}
			// Disagreement is a result; no comparison at all is a failure.
			var none []string
			for _, s := range res.Summary {
				if s.Reps == 0 {
					none = append(none, s.Protocol)
				}
			}
			if len(none) > 0 {
				return fmt.Errorf("no repetition in which both tools measured %v (the runs' errors are above and in the logs)", none)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.Float64Var(&o.Rate, "rate", 1000, "messages/s offered by both tools (sockperf ping-pong keeps one in flight)")
	f.DurationVar(&o.Duration, "duration", 5e9, "measured time of each run, whole seconds (sockperf's -t)")
	f.IntVar(&o.Repetitions, "reps", 3, "repetitions of every (protocol, tool); the tools' order alternates")
	f.IntVar(&o.Size, "size", 64, "message size in bytes")
	f.BoolVar(&noUDP, "no-udp", false, "compare TCP only")
	f.BoolVar(&noTCP, "no-tcp", false, "compare UDP only")
	f.BoolVar(&o.NoFloor, "no-floor", false, "leave out jrgen against the null reflector (the floor that splits the difference into its parts)")
	f.StringVar(&o.Sockperf, "sockperf", "sockperf", "the sockperf binary (at the same path on a testbed's nodes)")
	f.StringVar(&testbed, "testbed", "local", "where the tools run: local, or a testbed file's nodes over SSH (docs/CLOUDLAB.md)")
	f.StringVar(&ro.ResultsDir, "results", "results", "root directory of results")
	f.StringVar(&ro.BinDir, "bin", "", "directory holding jrgen and jrapp (default: next to jrbench)")
	f.StringVar(&ro.GenDriver, "generator-driver", "af_xdp", "the generator's DPDK vdev: af_xdp or af_packet")
	addPlacementFlags(cmd, &ro)
	return cmd
}

// printPeerSummary writes the comparison table: one line per protocol.
func printPeerSummary(w io.Writer, res *experiments.PeerResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "protocol\treps\tjrgen p50 / p99 (µs)\tsockperf p50 / p99 (µs)\tratio p50 / p99\twithin 10%% (p50 / p99)\tnull p50 (µs)\tdisturbed runs\n")
	for _, s := range res.Summary {
		if s.Reps == 0 {
			fmt.Fprintf(tw, "%s\t0\t-\t-\t-\t-\t-\t-\n", s.Protocol)
			continue
		}
		yes := map[bool]string{true: "yes", false: "no"}
		within := yes[s.AgreeP50] + " / " + yes[s.AgreeP99]
		null := "-"
		if s.NullP50us > 0 {
			null = fmt.Sprintf("%.1f", s.NullP50us)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f / %.1f\t%.1f / %.1f\t%.2f / %.2f\t%s\t%s\t%d of %d\n", s.Protocol, s.Reps,
			s.JrgenP50us, s.JrgenP99us, s.SockperfP50us, s.SockperfP99us, s.RatioP50, s.RatioP99, within, null,
			s.Disturbed, 2*s.Reps)
	}
	tw.Flush()
	for _, s := range res.Summary {
		if s.Reps > 0 && s.KernelEndUs != 0 {
			fmt.Fprintf(w, "%s: one kernel end adds %.1f µs to a round trip (jrgen kernel − null); with a kernel end at both sides, as sockperf has, jrgen's numbers predict %.1f µs (sockperf measured %.1f)\n",
				s.Protocol, s.KernelEndUs, s.PredictedSockperfP50us, s.SockperfP50us)
		}
	}
	for _, s := range res.Summary {
		if s.Disturbed > 0 {
			fmt.Fprintln(w, "disturbed runs: other work used the machine while they ran (other_cpu in the JSON); run again when it is quiet")
			break
		}
	}
	if res.State != "complete" {
		fmt.Fprintf(w, "run %s: %s\n", res.State, res.Error)
	}
}
