package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/joyride-bench/joyride/testbed/check"
	"github.com/joyride-bench/joyride/testbed/spec"
)

// newTestbedCheckCmd is `jrbench testbed check FILE`: is every node of a
// testbed file ready to run experiments?
func newTestbedCheckCmd() *cobra.Command {
	var timeout time.Duration
	var maxOffset time.Duration
	cmd := &cobra.Command{
		Use:   "check FILE|local",
		Short: "Check that a testbed's nodes are reachable and ready (DPDK, NIC, hugepages, clock)",
		Long: `Check each node of a testbed file:

  reach      ssh nodes: connect and run "uname -a"; netns nodes: the namespace
             exists; the built-in local testbed: namespace tooling present
  dpdk       libdpdk known to pkg-config, or dpdk-testpmd on the PATH
  nic        PCI: /sys/bus/pci/devices/<addr> exists and has a driver bound;
             vdev with iface=: the interface exists
  hugepages  HugePages_Total in /proc/meminfo is at least the number asked
  clock      the node's clock against this machine's (offset, with the round
             trip as its uncertainty) and chrony/NTP sync status when present

Prints one row per (node, check). Exit status: 0 when every check passes,
1 when one fails, 2 when the file is not a valid testbed file.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tb, err := spec.Load(args[0])
			if err != nil {
				return usageError{err}
			}
			rows := check.Run(cmd.Context(), tb, timeout, maxOffset)
			if err := check.Print(cmd.OutOrStdout(), tb, rows); err != nil {
				return err
			}
			if failed := check.Failed(rows); failed > 0 {
				return fmt.Errorf("testbed %s: %d of %d checks failed", tb.Name, failed, len(rows))
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 15*time.Second, "bound on each check (connect, each command)")
	cmd.Flags().DurationVar(&maxOffset, "max-clock-offset", 100*time.Millisecond, "clock offset above which the clock check fails")
	return cmd
}
