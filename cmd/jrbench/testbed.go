package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/joyride-bench/joyride/testbed/local"
)

// newTestbedCmd is `jrbench testbed`: manage local testbeds (two network
// namespaces joined by a veth pair) by hand, e.g. to poke at one with
// `ip netns exec` or to clean up after a crashed run.
func newTestbedCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "testbed",
		Short: "Create, inspect and remove local testbeds (netns + veth)",
		Long: `A local testbed is two network namespaces, jr-client-<id> and
jr-server-<id>, joined by a veth pair (one queue per end, TX checksum
offload off) with 198.18.0.1/24 and 198.18.0.2/24 from the RFC 2544
benchmarking range. Testbeds are recorded in ` + local.StateDir + `.`,
	}
	cmd.AddCommand(newTestbedUpCmd(), newTestbedDownCmd(), newTestbedStatusCmd())
	cmd.AddCommand(newTestbedCheckCmd())
	return cmd
}

func needRoot(*cobra.Command, []string) error {
	if os.Geteuid() != 0 {
		return errors.New("testbed commands need root (network namespaces, netlink, mounts)")
	}
	return nil
}

func newTestbedUpCmd() *cobra.Command {
	var id string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Create a testbed and leave it up",
		Long: `Create a testbed and leave it up; remove it with "jrbench testbed down <id>".
Also mounts bpffs at /sys/fs/bpf when missing (DPDK's af_xdp vdev needs it).`,
		Args:    cobra.NoArgs,
		PreRunE: needRoot,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := local.EnsureBPFFS(); err != nil {
				return err
			}
			tb, err := local.Up(cmd.Context(), local.Options{ID: id, Detached: true})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if quiet {
				// Just the id, for ID=$(jrbench testbed up -q).
				fmt.Fprintln(out, tb.ID)
				return nil
			}
			if err := printTestbeds(out, []*local.Testbed{tb}); err != nil {
				return err
			}
			fmt.Fprintf(out, "\ntestbed %s is up; remove with: jrbench testbed down %s\n", tb.ID, tb.ID)
			return nil
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "testbed id (1-11 chars of [a-z0-9-]; default: 6 random hex chars)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the testbed id")
	return cmd
}

func newTestbedDownCmd() *cobra.Command {
	var all, left bool
	cmd := &cobra.Command{
		Use:   "down [ID...|--all|--left]",
		Short: "Remove testbeds (namespaces, veth, state file) and end their processes",
		Long: `Remove the given testbeds: end the processes still running in them (those
the run recorded, by PID and start time, then whatever else runs in their
namespaces), delete the namespaces and veths (their XDP programs go with
them), DPDK's runtime directories (/var/run/dpdk/<role>-<id>), the run's
socket directory and the state files. Removing a testbed that is already
gone is not an error.

--left removes the testbeds nobody will clean up: abandoned ones (the run
that made them is gone, e.g. killed with SIGKILL), orphaned namespaces
without a state file, and stale state files. --all removes every testbed
except those whose run is still going (another jrbench run, a test): give
their ids to remove them anyway.`,
		PreRunE: needRoot,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case (all || left) && len(args) > 0:
				return errors.New("give testbed ids, --all or --left, not several")
			case all && left:
				return errors.New("give --all or --left, not both")
			case !all && !left && len(args) == 0:
				return errors.New("give testbed ids, --all or --left")
			}
			ids := args
			if all || left {
				tbs, err := local.List()
				if err != nil && len(tbs) == 0 {
					return err
				}
				// A broken state file must not stop the rest.
				if err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), "warning:", err)
				}
				for _, tb := range tbs {
					switch {
					case tb.Status == "up" && tb.Owner != nil:
						if all {
							fmt.Fprintf(cmd.ErrOrStderr(), "testbed %s kept: its run is still going (pid %d: %s); remove it with: jrbench testbed down %s\n",
								tb.ID, tb.Owner.PID, tb.Owner.Command, tb.ID)
						}
					case tb.Status == "up" && left:
						// Made by jrbench testbed up, kept until removed by id.
					default:
						ids = append(ids, tb.ID)
					}
				}
			}
			var errs []error
			for _, id := range ids {
				if err := local.DownID(id); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "testbed %s down\n", id)
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "remove every testbed, orphaned namespaces included, except those whose run is still going")
	cmd.Flags().BoolVar(&left, "left", false, "remove the testbeds left behind: abandoned by a run that is gone, orphaned namespaces, stale state files")
	return cmd
}

// warnLeftTestbeds tells the user about testbeds left on this machine by
// runs that are gone, what still runs in them, and how to remove them. It
// only warns: a left testbed may be what someone wants to look at (the
// processes of a crashed run, its runtime files), and ending processes is
// the user's decision, made with one command.
func warnLeftTestbeds(w io.Writer) {
	tbs, _ := local.List()
	n := 0
	for _, tb := range tbs {
		var what string
		switch tb.Status {
		case "abandoned":
			what = fmt.Sprintf("left by a run that is gone (pid %d: %s)", tb.Owner.PID, tb.Owner.Command)
			if live := tb.Running(); len(live) > 0 {
				what += fmt.Sprintf(", %d of its processes still running", len(live))
			}
		case "orphan":
			what = "namespaces without a state file (a run killed while it set them up)"
		case "stale":
			what = "a state file whose namespaces are gone"
		default:
			continue
		}
		n++
		fmt.Fprintf(w, "warning: testbed %s: %s; remove it with: jrbench testbed down %s\n", tb.ID, what, tb.ID)
	}
	if n > 1 {
		fmt.Fprintf(w, "warning: %d testbeds left behind; remove them all with: jrbench testbed down --left\n", n)
	}
}

func newTestbedStatusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "List testbeds with their namespaces, interfaces, addresses and MACs",
		Long: `List testbeds. STATUS is "up", "abandoned" (up, but the run that made it is
gone: killed with SIGKILL), "orphan" (namespaces without a state file, e.g.
after a crash during setup) or "stale" (state file whose namespaces are
gone); "jrbench testbed down <id>" cleans up any, "jrbench testbed down
--left" all but those in use.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tbs, err := local.List()
			if err != nil && len(tbs) == 0 {
				return err
			}
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				type row struct {
					*local.Testbed
					Status string `json:"status"`
				}
				rows := make([]row, 0, len(tbs))
				for _, tb := range tbs {
					rows = append(rows, row{tb, tb.Status})
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			if len(tbs) == 0 {
				fmt.Fprintln(out, "no testbeds")
				return nil
			}
			return printTestbeds(out, tbs)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printTestbeds writes one row per node.
func printTestbeds(w io.Writer, tbs []*local.Testbed) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tROLE\tNETNS\tIFACE\tADDR\tMAC")
	for _, tb := range tbs {
		for _, n := range []local.Node{tb.Client, tb.Server} {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", tb.ID, tb.Status, n.Role,
				dash(n.Netns), dash(n.Iface), dash(addrString(n)), dash(n.MAC.String()))
		}
	}
	return tw.Flush()
}

func addrString(n local.Node) string {
	if !n.Addr.IsValid() {
		return ""
	}
	return n.Addr.String()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
