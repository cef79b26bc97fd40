package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/joyride-bench/joyride/testbed/spec"
	"github.com/joyride-bench/joyride/testbed/ssh"
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
			rows := checkTestbed(cmd.Context(), tb, timeout, maxOffset)
			if err := printChecks(cmd.OutOrStdout(), tb, rows); err != nil {
				return err
			}
			failed := 0
			for _, r := range rows {
				if r.status == statusFail {
					failed++
				}
			}
			if failed > 0 {
				return fmt.Errorf("testbed %s: %d of %d checks failed", tb.Name, failed, len(rows))
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 15*time.Second, "bound on each check (connect, each command)")
	cmd.Flags().DurationVar(&maxOffset, "max-clock-offset", 100*time.Millisecond, "clock offset above which the clock check fails")
	return cmd
}

const (
	statusOK   = "ok"
	statusFail = "FAIL"
	statusSkip = "skip"
)

type checkRow struct {
	node, check, status, detail string
}

// nodeShell runs shell commands on a node.
type nodeShell interface {
	run(ctx context.Context, cmd string) (string, error)
	close()
}

// sshShell runs commands over SSH.
type sshShell struct{ c *ssh.Client }

func (s sshShell) run(ctx context.Context, cmd string) (string, error) {
	out, err := s.c.Run(ctx, cmd)
	return string(out.Stdout), err
}
func (s sshShell) close() { s.c.Close() }

// localShell runs commands on this machine, in a namespace when netns is set.
type localShell struct{ netns string }

func (l localShell) run(ctx context.Context, cmd string) (string, error) {
	argv := []string{"sh", "-c", cmd}
	if l.netns != "" {
		argv = append([]string{"ip", "netns", "exec", l.netns}, argv...)
	}
	c := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var errb strings.Builder
	c.Stderr = &errb
	out, err := c.Output()
	if err != nil && errb.Len() > 0 {
		err = fmt.Errorf("%w: %s", err, strings.TrimSpace(errb.String()))
	}
	return string(out), err
}
func (localShell) close() {}

func checkTestbed(ctx context.Context, tb *spec.Testbed, timeout, maxOffset time.Duration) []checkRow {
	var rows []checkRow
	for _, n := range tb.Nodes {
		rows = append(rows, checkNode(ctx, tb, n, timeout, maxOffset)...)
	}
	return rows
}

var checks = []string{"reach", "dpdk", "nic", "hugepages", "clock"}

func checkNode(ctx context.Context, tb *spec.Testbed, n spec.Node, timeout, maxOffset time.Duration) []checkRow {
	var rows []checkRow
	add := func(check, status, format string, args ...any) {
		rows = append(rows, checkRow{n.Name, check, status, fmt.Sprintf(format, args...)})
	}
	bounded := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, timeout) }

	// reach
	var sh nodeShell
	switch {
	case n.SSH != nil:
		cctx, cancel := bounded()
		c, err := ssh.Dial(cctx, ssh.Config{
			Addr: n.SSH.Addr(), User: n.SSH.User, KeyFile: n.SSH.Key,
			KnownHosts: n.SSH.KnownHosts, HostKeyPolicy: n.SSH.HostKeyPolicy,
			DialTimeout: timeout, Timeout: timeout,
		})
		cancel()
		if err != nil {
			add("reach", statusFail, "%v", err)
			break
		}
		sh = sshShell{c}
		cctx, cancel = bounded()
		out, err := sh.run(cctx, "uname -a")
		cancel()
		if err != nil {
			add("reach", statusFail, "%s@%s: uname -a: %v", n.SSH.User, n.SSH.Addr(), err)
			sh.close()
			sh = nil
			break
		}
		add("reach", statusOK, "%s@%s: %s", n.SSH.User, n.SSH.Addr(), firstLine(out))
	case tb.Builtin:
		var missing []string
		if _, err := exec.LookPath("ip"); err != nil {
			missing = append(missing, "ip (iproute2)")
		}
		if _, err := os.Stat("/proc/self/ns/net"); err != nil {
			missing = append(missing, "network namespaces (/proc/self/ns/net)")
		}
		if os.Geteuid() != 0 {
			missing = append(missing, "root (to create namespaces)")
		}
		if len(missing) > 0 {
			add("reach", statusFail, "missing: %s", strings.Join(missing, ", "))
			break
		}
		sh = localShell{}
		add("reach", statusOK, "this machine; namespace %s is created per run", n.Netns)
	default:
		l := localShell{netns: n.Netns}
		cctx, cancel := bounded()
		_, err := l.run(cctx, "true")
		cancel()
		if err != nil {
			add("reach", statusFail, "netns %s: %v", n.Netns, err)
			break
		}
		sh = l
		add("reach", statusOK, "netns %s on this machine", n.Netns)
	}
	if sh == nil {
		for _, c := range checks[1:] {
			add(c, statusSkip, "node not reachable")
		}
		return rows
	}
	defer sh.close()
	run := func(cmd string) (string, error) {
		cctx, cancel := bounded()
		defer cancel()
		return sh.run(cctx, cmd)
	}

	// dpdk
	out, err := run(`if pkg-config --exists libdpdk 2>/dev/null; then echo "libdpdk $(pkg-config --modversion libdpdk)"; ` +
		`elif command -v dpdk-testpmd >/dev/null 2>&1; then echo "$(command -v dpdk-testpmd) (libdpdk unknown to pkg-config)"; ` +
		`else echo "neither pkg-config libdpdk nor dpdk-testpmd found"; exit 1; fi`)
	if err != nil {
		add("dpdk", statusFail, "%s", cmp(firstLine(out), err))
	} else {
		add("dpdk", statusOK, "%s", firstLine(out))
	}

	// nic
	switch {
	case tb.Builtin:
		add("nic", statusOK, "%s: veth created per run", n.NIC.Vdev)
	case n.NIC.PCI != "":
		d := "/sys/bus/pci/devices/" + n.NIC.PCI
		out, err := run(fmt.Sprintf(`d=%s; [ -e "$d" ] || { echo "no PCI device $d"; exit 1; }; `+
			`drv=$(basename "$(readlink "$d/driver")" 2>/dev/null); echo "driver=${drv:-none} net=$(ls "$d/net" 2>/dev/null | tr '\n' ' ')"`, d))
		switch {
		case err != nil:
			add("nic", statusFail, "%s", cmp(firstLine(out), err))
		case strings.HasPrefix(out, "driver=none"):
			add("nic", statusFail, "%s has no driver bound (mlx5: mlx5_core; others: vfio-pci)", n.NIC.PCI)
		default:
			add("nic", statusOK, "%s %s", n.NIC.PCI, strings.TrimSpace(out))
		}
	case n.NIC.Iface != "":
		out, err := run("ip -o link show dev " + ssh.Quote(n.NIC.Iface))
		if err != nil {
			add("nic", statusFail, "%s: interface %s: %v", n.NIC.Vdev, n.NIC.Iface, err)
		} else {
			state := "?"
			if m := regexp.MustCompile(`state (\S+)`).FindStringSubmatch(out); m != nil {
				state = m[1]
			}
			add("nic", statusOK, "%s: interface %s (state %s)", n.NIC.Vdev, n.NIC.Iface, state)
		}
	default:
		add("nic", statusOK, "%s: virtual device without an interface, nothing to check", n.NIC.Vdev)
	}

	// hugepages
	out, err = run(`grep -E '^(HugePages_Total|HugePages_Free|Hugepagesize):' /proc/meminfo`)
	if err != nil {
		add("hugepages", statusFail, "/proc/meminfo: %v", err)
	} else {
		mi := map[string]int{}
		for _, l := range strings.Split(out, "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok {
				f := strings.Fields(v)
				if len(f) > 0 {
					mi[k], _ = strconv.Atoi(f[0])
				}
			}
		}
		detail := fmt.Sprintf("asked %d, total %d, free %d, size %d kB", n.Hugepages, mi["HugePages_Total"], mi["HugePages_Free"], mi["Hugepagesize"])
		switch {
		case n.Hugepages == 0:
			add("hugepages", statusOK, "none asked (DPDK runs --no-huge); %s", detail)
		case mi["HugePages_Total"] < n.Hugepages:
			add("hugepages", statusFail, "%s: reserve more (echo %d > /proc/sys/vm/nr_hugepages)", detail, n.Hugepages)
		default:
			add("hugepages", statusOK, "%s", detail)
		}
	}

	// clock
	t0 := time.Now()
	out, err = run(`date +%s.%N; (chronyc -n tracking 2>/dev/null | grep -E '^(Leap status|System time)' | tr -s ' ' | tr '\n' ';') || true; ` +
		`(timedatectl show -p NTPSynchronized 2>/dev/null) || true`)
	t1 := time.Now()
	if err != nil {
		add("clock", statusFail, "date: %v", err)
	} else {
		lines := strings.SplitN(strings.TrimSpace(out), "\n", 2)
		remote, perr := parseEpoch(lines[0])
		if perr != nil {
			add("clock", statusFail, "date printed %q", lines[0])
		} else {
			rtt := t1.Sub(t0)
			mid := t0.Add(rtt / 2)
			off := remote.Sub(mid)
			sync := "no chrony/timedatectl status"
			if len(lines) > 1 && strings.TrimSpace(lines[1]) != "" {
				sync = strings.Join(strings.Fields(strings.ReplaceAll(lines[1], "\n", "; ")), " ")
			}
			status := statusOK
			if off.Abs() > maxOffset+rtt/2 {
				status = statusFail
			}
			add("clock", status, "offset %+.3f ms ±%.3f ms (max %v); %s",
				float64(off)/1e6, float64(rtt)/2e6, maxOffset, sync)
		}
	}
	return rows
}

func parseEpoch(s string) (time.Time, error) {
	sec, frac, _ := strings.Cut(strings.TrimSpace(s), ".")
	si, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	var ns int64
	if frac != "" {
		frac = (frac + "000000000")[:9]
		if ns, err = strconv.ParseInt(frac, 10, 64); err != nil {
			return time.Time{}, err
		}
	}
	return time.Unix(si, ns), nil
}

// cmp prefers what the command printed over the bare error.
func cmp(printed string, err error) string {
	var ee *ssh.ExitError
	var xe *exec.ExitError
	if printed != "" && (errors.As(err, &ee) || errors.As(err, &xe)) {
		return printed
	}
	if printed != "" {
		return printed + ": " + err.Error()
	}
	return err.Error()
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

func printChecks(w io.Writer, tb *spec.Testbed, rows []checkRow) error {
	src := tb.File
	if src == "" {
		src = "built-in"
	}
	fmt.Fprintf(w, "testbed %s (%s)\n", tb.Name, src)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tCHECK\tSTATUS\tDETAIL")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.node, r.check, r.status, r.detail)
	}
	return tw.Flush()
}
