// Package check tells whether a testbed's nodes are ready to run
// experiments, before a run finds out the hard way: each node is reached (over
// SSH, in its namespace, or this machine for the built-in testbed) and asked,
// with plain shell commands, for DPDK, its NIC (a PCI device with a driver
// bound, or the vdev's interface), the hugepages its file asks for, and its
// clock against this machine's (offset, with half the round trip as its
// uncertainty, and chrony's or timedatectl's sync status). Each answer is a
// Row: ok, FAIL with what is wrong, or skip when the node could not be
// reached. `jrbench testbed check` prints them.
package check

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

	"github.com/joyride-bench/joyride/testbed/spec"
	"github.com/joyride-bench/joyride/testbed/ssh"
)

// A check's status: passed, failed, or not run (its node is not reachable).
const (
	StatusOK   = "ok"
	StatusFail = "FAIL"
	StatusSkip = "skip"
)

// Row is one check of one node.
type Row struct {
	Node, Check, Status, Detail string
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

// Run checks every node of tb, in order; each check (connect, each command)
// is bounded by timeout, and a clock further than maxOffset from this
// machine's (beyond the round trip's uncertainty) fails.
func Run(ctx context.Context, tb *spec.Testbed, timeout, maxOffset time.Duration) []Row {
	var rows []Row
	for _, n := range tb.Nodes {
		rows = append(rows, checkNode(ctx, tb, n, timeout, maxOffset)...)
	}
	return rows
}

// Failed counts the rows that failed.
func Failed(rows []Row) int {
	n := 0
	for _, r := range rows {
		if r.Status == StatusFail {
			n++
		}
	}
	return n
}

// Checks are the checks of a node, in the order of its rows.
var Checks = []string{"reach", "dpdk", "nic", "hugepages", "clock"}

func checkNode(ctx context.Context, tb *spec.Testbed, n spec.Node, timeout, maxOffset time.Duration) []Row {
	var rows []Row
	add := func(check, status, format string, args ...any) {
		rows = append(rows, Row{n.Name, check, status, fmt.Sprintf(format, args...)})
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
			add("reach", StatusFail, "%v", err)
			break
		}
		sh = sshShell{c}
		cctx, cancel = bounded()
		out, err := sh.run(cctx, "uname -a")
		cancel()
		if err != nil {
			add("reach", StatusFail, "%s@%s: uname -a: %v", n.SSH.User, n.SSH.Addr(), err)
			sh.close()
			sh = nil
			break
		}
		add("reach", StatusOK, "%s@%s: %s", n.SSH.User, n.SSH.Addr(), firstLine(out))
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
			add("reach", StatusFail, "missing: %s", strings.Join(missing, ", "))
			break
		}
		sh = localShell{}
		add("reach", StatusOK, "this machine; namespace %s is created per run", n.Netns)
	default:
		l := localShell{netns: n.Netns}
		cctx, cancel := bounded()
		_, err := l.run(cctx, "true")
		cancel()
		if err != nil {
			add("reach", StatusFail, "netns %s: %v", n.Netns, err)
			break
		}
		sh = l
		add("reach", StatusOK, "netns %s on this machine", n.Netns)
	}
	if sh == nil {
		for _, c := range Checks[1:] {
			add(c, StatusSkip, "node not reachable")
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
		add("dpdk", StatusFail, "%s", printedOr(firstLine(out), err))
	} else {
		add("dpdk", StatusOK, "%s", firstLine(out))
	}

	// nic
	switch {
	case tb.Builtin:
		add("nic", StatusOK, "%s: veth created per run", n.NIC.Vdev)
	case n.NIC.PCI != "":
		d := "/sys/bus/pci/devices/" + n.NIC.PCI
		out, err := run(fmt.Sprintf(`d=%s; [ -e "$d" ] || { echo "no PCI device $d"; exit 1; }; `+
			`drv=$(basename "$(readlink "$d/driver")" 2>/dev/null); echo "driver=${drv:-none} net=$(ls "$d/net" 2>/dev/null | tr '\n' ' ')"`, d))
		switch {
		case err != nil:
			add("nic", StatusFail, "%s", printedOr(firstLine(out), err))
		case strings.HasPrefix(out, "driver=none"):
			add("nic", StatusFail, "%s has no driver bound (mlx5: mlx5_core; others: vfio-pci)", n.NIC.PCI)
		default:
			add("nic", StatusOK, "%s %s", n.NIC.PCI, strings.TrimSpace(out))
		}
	case n.NIC.Iface != "":
		out, err := run("ip -o link show dev " + ssh.Quote(n.NIC.Iface))
		if err != nil {
			add("nic", StatusFail, "%s: interface %s: %v", n.NIC.Vdev, n.NIC.Iface, err)
		} else {
			state := "?"
			if m := regexp.MustCompile(`state (\S+)`).FindStringSubmatch(out); m != nil {
				state = m[1]
			}
			add("nic", StatusOK, "%s: interface %s (state %s)", n.NIC.Vdev, n.NIC.Iface, state)
		}
	default:
		add("nic", StatusOK, "%s: virtual device without an interface, nothing to check", n.NIC.Vdev)
	}

	// hugepages
	out, err = run(`grep -E '^(HugePages_Total|HugePages_Free|Hugepagesize):' /proc/meminfo`)
	if err != nil {
		add("hugepages", StatusFail, "/proc/meminfo: %v", err)
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
			add("hugepages", StatusOK, "none asked (DPDK runs --no-huge); %s", detail)
		case mi["HugePages_Total"] < n.Hugepages:
			add("hugepages", StatusFail, "%s: reserve more (echo %d > /proc/sys/vm/nr_hugepages)", detail, n.Hugepages)
		default:
			add("hugepages", StatusOK, "%s", detail)
		}
	}

	// clock
	t0 := time.Now()
	out, err = run(`date +%s.%N; (chronyc -n tracking 2>/dev/null | grep -E '^(Leap status|System time)' | tr -s ' ' | tr '\n' ';') || true; ` +
		`(timedatectl show -p NTPSynchronized 2>/dev/null) || true`)
	t1 := time.Now()
	if err != nil {
		add("clock", StatusFail, "date: %v", err)
	} else {
		lines := strings.SplitN(strings.TrimSpace(out), "\n", 2)
		remote, perr := parseEpoch(lines[0])
		if perr != nil {
			add("clock", StatusFail, "date printed %q", lines[0])
		} else {
			rtt := t1.Sub(t0)
			mid := t0.Add(rtt / 2)
			off := remote.Sub(mid)
			sync := "no chrony/timedatectl status"
			if len(lines) > 1 && strings.TrimSpace(lines[1]) != "" {
				sync = strings.Join(strings.Fields(strings.ReplaceAll(lines[1], "\n", "; ")), " ")
			}
			status := StatusOK
			if off.Abs() > maxOffset+rtt/2 {
				status = StatusFail
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

// printedOr prefers what the command printed over the bare error.
func printedOr(printed string, err error) string {
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

// Print writes the rows as a table under a line naming the testbed.
func Print(w io.Writer, tb *spec.Testbed, rows []Row) error {
	src := tb.File
	if src == "" {
		src = "built-in"
	}
	fmt.Fprintf(w, "testbed %s (%s)\n", tb.Name, src)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tCHECK\tSTATUS\tDETAIL")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Node, r.Check, r.Status, r.Detail)
	}
	return tw.Flush()
}
