// Package sshtest starts stand-in SSH nodes for tests: a real OpenSSH sshd
// (Debian's openssh-server) running in a network namespace of its own, with
// a host key and a user key generated for the test.
//
//	root namespace                      netns jr-sshd-<n>
//	  jrsh-<n> 198.18.<n>.1/24 <== veth ==> jrsn-<n> 198.18.<n>.2/24
//	                                         sshd -D -p 2222 (own config)
//
// The sshd has its own configuration (its host key, an authorized_keys file
// in the test's temp dir, no PAM, its PID file in the temp dir) and never
// touches the system's sshd or port 22. Everything is removed in t.Cleanup:
// the sshd (by PID, with the per-connection children it forked), the
// namespace and the veth.
package sshtest

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Sshd is the sshd binary used.
const Sshd = "/usr/sbin/sshd"

// Port is the port the stand-in sshd listens on.
const Port = 2222

// Node is a running stand-in node.
type Node struct {
	// Netns is the node's network namespace.
	Netns string
	// Iface is the veth end inside the namespace (the node's "NIC").
	Iface string
	// HostIface is the veth end in the root namespace.
	HostIface string
	// IP is the node's address (198.18.<n>.2); HostIP is the root end's.
	IP, HostIP string
	// Addr is IP:Port.
	Addr string
	// User is the login name (the user running the test, root).
	User string
	// Key is the user's private key file.
	Key string
	// KnownHosts is a known_hosts file holding the node's host key.
	KnownHosts string
	// Dir is the temp dir holding keys, config and logs.
	Dir string

	cmd *exec.Cmd
}

// Require fails t unless stand-in nodes can run here: root, sshd,
// ssh-keygen, ip. It fails rather than skips: make test runs as root and
// make deps installs them, so a missing one is a broken setup, not a test
// that may pass unrun.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("stand-in ssh nodes need root (network namespaces)")
	}
	for _, bin := range []string{Sshd, "ssh-keygen", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s missing (make deps installs openssh-server and iproute2)", bin)
		}
	}
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Start starts a stand-in node and registers its removal with t.Cleanup.
func Start(t testing.TB) *Node {
	t.Helper()
	Require(t)
	// A subnet nobody on this machine uses yet.
	addrs := run(t, "ip", "-4", "-o", "addr", "show")
	var n int
	for range 50 {
		n = 100 + rand.IntN(150)
		if !strings.Contains(addrs, fmt.Sprintf("198.18.%d.", n)) {
			break
		}
	}
	dir := t.TempDir()
	nd := &Node{
		Netns:      fmt.Sprintf("jr-sshd-%d", n),
		Iface:      fmt.Sprintf("jrsn-%d", n),
		HostIface:  fmt.Sprintf("jrsh-%d", n),
		IP:         fmt.Sprintf("198.18.%d.2", n),
		HostIP:     fmt.Sprintf("198.18.%d.1", n),
		User:       "root",
		Key:        filepath.Join(dir, "user_key"),
		KnownHosts: filepath.Join(dir, "known_hosts"),
		Dir:        dir,
	}
	nd.Addr = net.JoinHostPort(nd.IP, strconv.Itoa(Port))

	hostKey := filepath.Join(dir, "host_key")
	run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "jrbench-standin-host", "-f", hostKey)
	run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "jrbench-standin-user", "-f", nd.Key)
	pub := func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(b))
		return f[0] + " " + f[1]
	}
	write := func(path, data string) {
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "authorized_keys"), pub(nd.Key+".pub")+"\n")
	write(nd.KnownHosts, fmt.Sprintf("[%s]:%d %s\n", nd.IP, Port, pub(hostKey+".pub")))
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "sshd_config")
	write(cfg, strings.Join([]string{
		"Port " + strconv.Itoa(Port),
		"ListenAddress " + nd.IP,
		"HostKey " + hostKey,
		"AuthorizedKeysFile " + filepath.Join(dir, "authorized_keys"),
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"UsePAM no",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PubkeyAuthentication yes",
		"PermitRootLogin prohibit-password",
		"StrictModes no", // the temp dir lives under world-writable /tmp
		"LogLevel VERBOSE",
		// A home of its own, as on a fresh machine: bash sources ~/.bashrc
		// in every SSH session, and the test machine's (a language version
		// manager's hooks, say) must not run, nor slow or block, there.
		"SetEnv HOME=" + home,
		"",
	}, "\n"))

	// Namespace and veth; removed even if a later step fails.
	run(t, "ip", "netns", "add", nd.Netns)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", nd.HostIface).Run()
		exec.Command("ip", "netns", "del", nd.Netns).Run()
	})
	run(t, "ip", "link", "add", nd.HostIface, "type", "veth", "peer", "name", nd.Iface, "netns", nd.Netns)
	run(t, "ip", "addr", "add", nd.HostIP+"/24", "dev", nd.HostIface)
	run(t, "ip", "link", "set", nd.HostIface, "up")
	run(t, "ip", "-n", nd.Netns, "addr", "add", nd.IP+"/24", "dev", nd.Iface)
	run(t, "ip", "-n", nd.Netns, "link", "set", nd.Iface, "up")
	run(t, "ip", "-n", nd.Netns, "link", "set", "lo", "up")

	// sshd's privilege separation directory; Debian creates it only when
	// the service starts.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "sshd.log"))
	if err != nil {
		t.Fatal(err)
	}
	nd.cmd = exec.Command("ip", "netns", "exec", nd.Netns, Sshd, "-D", "-e", "-f", cfg, "-p", strconv.Itoa(Port))
	nd.cmd.Stdout, nd.cmd.Stderr = log, log
	if err := nd.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// ip netns exec execs sshd: the PID is sshd's.
	t.Cleanup(func() {
		nd.Stop()
		log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("sshd log:\n%s", b)
		}
	})

	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", nd.Addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) || nd.cmd.ProcessState != nil {
			b, _ := os.ReadFile(log.Name())
			t.Fatalf("sshd on %s did not come up: %v\n%s", nd.Addr, err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nd
}

// Stop kills the sshd this node started (and the per-connection sshd
// processes it forked) and waits for it. It is idempotent.
func (nd *Node) Stop() {
	if nd.cmd == nil || nd.cmd.Process == nil || nd.cmd.ProcessState != nil {
		return
	}
	pid := nd.cmd.Process.Pid
	for _, c := range children(pid) {
		syscall.Kill(c, syscall.SIGKILL)
	}
	for _, c := range nd.commands() {
		syscall.Kill(c, syscall.SIGKILL)
	}
	nd.cmd.Process.Signal(syscall.SIGTERM)
	nd.cmd.Process.Signal(syscall.SIGCONT) // in case it was frozen
	done := make(chan struct{})
	go func() { nd.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		nd.cmd.Process.Kill()
		<-done
	}
}

// commands lists the processes started over SSH on this node, including
// those orphaned when their session process died: their environment holds
// SSH_CONNECTION naming this node's address and port.
func (nd *Node) commands() []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		for _, kv := range strings.Split(string(env), "\x00") {
			if v, ok := strings.CutPrefix(kv, "SSH_CONNECTION="); ok {
				if f := strings.Fields(v); len(f) == 4 && f[0] == nd.HostIP && f[2] == nd.IP && f[3] == strconv.Itoa(Port) {
					out = append(out, p)
				}
			}
		}
	}
	return out
}

// children lists the descendants of pid (children first-level and below).
func children(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	parent := map[int]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := os.Open(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		line, _ := bufio.NewReader(f).ReadString('\n')
		f.Close()
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		if i := strings.LastIndexByte(line, ')'); i > 0 {
			if f := strings.Fields(line[i+1:]); len(f) > 1 {
				pp, _ := strconv.Atoi(f[1])
				parent[p] = pp
			}
		}
	}
	var out []int
	var walk func(int)
	walk = func(p int) {
		for c, pp := range parent {
			if pp == p {
				out = append(out, c)
				walk(c)
			}
		}
	}
	walk(pid)
	return out
}

// Freeze stops (SIGSTOP) the sshd and its per-connection processes: the TCP
// connection stays up but the node answers nothing, as when a machine hangs
// or its network silently drops packets. Stop and Thaw undo it.
func (nd *Node) Freeze() { nd.signalAll(syscall.SIGSTOP) }

// Thaw resumes a frozen node.
func (nd *Node) Thaw() { nd.signalAll(syscall.SIGCONT) }

// KillSessions kills the per-connection sshd processes: clients see their
// connection closed.
func (nd *Node) KillSessions() {
	if nd.cmd == nil || nd.cmd.Process == nil {
		return
	}
	for _, c := range children(nd.cmd.Process.Pid) {
		syscall.Kill(c, syscall.SIGKILL)
	}
}

func (nd *Node) signalAll(sig syscall.Signal) {
	if nd.cmd == nil || nd.cmd.Process == nil || nd.cmd.ProcessState != nil {
		return
	}
	pid := nd.cmd.Process.Pid
	for _, c := range children(pid) {
		syscall.Kill(c, sig)
	}
	syscall.Kill(pid, sig)
}

// Wire is a veth pair between two stand-in nodes: their data plane, apart
// from the veth each node was started with (its control network, where sshd
// listens).
//
//	netns of A  jrwa-<n> 198.19.<n>.1/24 <== veth ==> jrwb-<n> 198.19.<n>.2/24  netns of B
type Wire struct {
	// IfaceA and IfaceB are the ends in A's and B's namespaces.
	IfaceA, IfaceB string
	// AddrA and AddrB are their addresses with the prefix length.
	AddrA, AddrB string
}

// Link joins a and b with a Wire and registers its removal with t.Cleanup.
// As on the local testbed (package testbed/local), both ends have TX checksum
// offload off, so that AF_XDP and AF_PACKET sockets see complete checksums,
// and IPv6 off, so that no router solicitation or DAD frame crosses the
// measured wire. Its subnet (in 198.19.0.0/16, beside the control networks'
// 198.18.<n>.0/24) is not in use on this machine.
func Link(t testing.TB, a, b *Node) *Wire {
	t.Helper()
	addrs := run(t, "ip", "-4", "-o", "addr", "show")
	for _, ns := range []string{a.Netns, b.Netns} {
		addrs += run(t, "ip", "-n", ns, "-4", "-o", "addr", "show")
	}
	var n int
	for range 50 {
		n = 1 + rand.IntN(250)
		if !strings.Contains(addrs, fmt.Sprintf("198.19.%d.", n)) {
			break
		}
	}
	w := &Wire{
		IfaceA: fmt.Sprintf("jrwa-%d", n), IfaceB: fmt.Sprintf("jrwb-%d", n),
		AddrA: fmt.Sprintf("198.19.%d.1/24", n), AddrB: fmt.Sprintf("198.19.%d.2/24", n),
	}
	run(t, "ip", "-n", a.Netns, "link", "add", w.IfaceA, "type", "veth", "peer", "name", w.IfaceB, "netns", b.Netns)
	t.Cleanup(func() { exec.Command("ip", "-n", a.Netns, "link", "del", w.IfaceA).Run() })
	for _, end := range []struct{ ns, iface, addr string }{{a.Netns, w.IfaceA, w.AddrA}, {b.Netns, w.IfaceB, w.AddrB}} {
		run(t, "ip", "netns", "exec", end.ns, "sysctl", "-q", "-w", "net.ipv6.conf."+end.iface+".disable_ipv6=1")
		run(t, "ip", "netns", "exec", end.ns, "ethtool", "-K", end.iface, "tx", "off")
		run(t, "ip", "-n", end.ns, "addr", "add", end.addr, "dev", end.iface)
		run(t, "ip", "-n", end.ns, "link", "set", end.iface, "up")
	}
	return w
}

// Processes lists the processes started over SSH on this node that still
// run (orphans of ended sessions included), by PID.
func (nd *Node) Processes() []int { return nd.commands() }
