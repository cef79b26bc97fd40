package local

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/safchain/ethtool"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Every id a test uses is recorded so TestMain can remove leftovers even if
// a test dies half-way.
var (
	usedMu  sync.Mutex
	usedIDs []string
)

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Println("testbed/local: tests need root (network namespaces); skipping")
		os.Exit(0)
	}
	code := m.Run()
	usedMu.Lock()
	for _, id := range usedIDs {
		if err := DownID(id); err != nil {
			fmt.Fprintf(os.Stderr, "cleanup %s: %v\n", id, err)
			code = 1
		}
		for _, ns := range []string{clientNetnsPrefix + id, serverNetnsPrefix + id, wireNetnsPrefix + id} {
			if netnsExists(ns) {
				fmt.Fprintf(os.Stderr, "leftover netns %s\n", ns)
				code = 1
			}
		}
	}
	usedMu.Unlock()
	os.Exit(code)
}

// testID returns a fresh id ("jt" + 6 hex) and registers it for cleanup.
func testID(t *testing.T) string {
	t.Helper()
	r, err := randomID()
	if err != nil {
		t.Fatal(err)
	}
	id := "jt" + r
	usedMu.Lock()
	usedIDs = append(usedIDs, id)
	usedMu.Unlock()
	t.Cleanup(func() {
		if err := DownID(id); err != nil {
			t.Errorf("cleanup DownID(%s): %v", id, err)
		}
	})
	return id
}

func up(t *testing.T) *Testbed {
	t.Helper()
	id := testID(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tb, err := Up(ctx, Options{ID: id})
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	t.Cleanup(func() { _ = tb.Down() })
	return tb
}

// ipNetnsList returns the output of `ip netns list`, the same view a user
// gets.
func ipNetnsList(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	return string(out)
}

func assertGone(t *testing.T, id string) {
	t.Helper()
	list := ipNetnsList(t)
	for _, ns := range []string{clientNetnsPrefix + id, serverNetnsPrefix + id} {
		if strings.Contains(list, ns) {
			t.Errorf("netns %s still listed by ip netns list:\n%s", ns, list)
		}
		if _, err := os.Lstat(filepath.Join(netnsDir, ns)); err == nil {
			t.Errorf("%s/%s still exists", netnsDir, ns)
		}
	}
	if _, err := os.Stat(statePath(id)); err == nil {
		t.Errorf("state file %s still exists", statePath(id))
	}
	// The veth must not have ended up in the root namespace either.
	for _, ifc := range []string{clientIfacePrefix + id, serverIfacePrefix + id} {
		if _, err := netlink.LinkByName(ifc); err == nil {
			t.Errorf("interface %s exists in the root namespace", ifc)
		}
	}
}

func handleIn(t *testing.T, nsName string) *netlink.Handle {
	t.Helper()
	ns, err := netns.GetFromName(nsName)
	if err != nil {
		t.Fatalf("open netns %s: %v", nsName, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", nsName, err)
	}
	t.Cleanup(h.Close)
	return h
}

func TestUpLayout(t *testing.T) {
	tb := up(t)

	list := ipNetnsList(t)
	for _, n := range []Node{tb.Client, tb.Server} {
		if !strings.Contains(list, n.Netns) {
			t.Errorf("ip netns list lacks %s:\n%s", n.Netns, list)
		}
		if len(n.Iface) > 15 {
			t.Errorf("iface name %q longer than 15", n.Iface)
		}
	}
	if tb.Client.Addr != netip.MustParsePrefix("198.18.0.1/24") ||
		tb.Server.Addr != netip.MustParsePrefix("198.18.0.2/24") {
		t.Errorf("addresses %s / %s", tb.Client.Addr, tb.Server.Addr)
	}

	var peerIndex [2]int
	for i, n := range []Node{tb.Client, tb.Server} {
		h := handleIn(t, n.Netns)
		link, err := h.LinkByName(n.Iface)
		if err != nil {
			t.Fatalf("%s: %s not found: %v", n.Netns, n.Iface, err)
		}
		a := link.Attrs()
		if link.Type() != "veth" {
			t.Errorf("%s: type %s", n.Iface, link.Type())
		}
		if a.NumTxQueues != 1 || a.NumRxQueues != 1 {
			t.Errorf("%s: %d TX / %d RX queues, want 1/1", n.Iface, a.NumTxQueues, a.NumRxQueues)
		}
		if a.MTU != 1500 {
			t.Errorf("%s: MTU %d", n.Iface, a.MTU)
		}
		if a.Flags&net.FlagUp == 0 {
			t.Errorf("%s: not up", n.Iface)
		}
		if !bytes.Equal(a.HardwareAddr, n.MAC) || len(n.MAC) != 6 {
			t.Errorf("%s: MAC %s, testbed says %s", n.Iface, a.HardwareAddr, n.MAC)
		}
		peerIndex[i] = a.ParentIndex
		addrs, err := h.AddrList(link, netlink.FAMILY_ALL)
		if err != nil {
			t.Fatal(err)
		}
		// Exactly the one RFC 2544 address: IPv6 is off, so no link-local
		// address either.
		if len(addrs) != 1 || addrs[0].IPNet.String() != n.Addr.String() {
			t.Errorf("%s: addresses %v, want only %s", n.Iface, addrs, n.Addr)
		}
		lo, err := h.LinkByName("lo")
		if err != nil || lo.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("%s: lo not up (%v)", n.Netns, err)
		}

		// TX checksum offload must be off, read back through a socket in
		// the namespace.
		iface := n.Iface
		if err := InNetns(n.Netns, func() error {
			e, err := ethtool.NewEthtool()
			if err != nil {
				return err
			}
			defer e.Close()
			feats, err := e.Features(iface)
			if err != nil {
				return err
			}
			for name, on := range feats {
				if strings.HasPrefix(name, "tx-checksum-") && on {
					return fmt.Errorf("%s: %s still on", iface, name)
				}
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	}
	if peerIndex[0] == 0 || peerIndex[1] == 0 {
		t.Errorf("veth peer indexes %v", peerIndex)
	}

	// State file round-trips, with the MAC readable for humans and
	// scripts.
	raw, err := os.ReadFile(statePath(tb.ID))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"mac": "`+tb.Client.MAC.String()+`"`) {
		t.Errorf("state file lacks client MAC as text:\n%s", raw)
	}
	got, err := readState(tb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Client.Netns != tb.Client.Netns || got.Server.MAC.String() != tb.Server.MAC.String() ||
		got.Server.Addr != tb.Server.Addr {
		t.Errorf("state file %+v, want %+v", got, tb)
	}
}

// TestUpWithQueues makes a veth pair with 2 RX and 2 TX queues per end (the
// multi-queue generator's wire), records the count in the state file, and
// refuses counts outside 1..MaxQueues. The default path stays at 1/1
// (TestUpLayout) and writes no queue count.
func TestUpWithQueues(t *testing.T) {
	id := testID(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tb, err := Up(ctx, Options{ID: id, Queues: 2})
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	t.Cleanup(func() { _ = tb.Down() })
	if tb.Queues != 2 {
		t.Errorf("testbed says %d queues, want 2", tb.Queues)
	}
	for _, n := range []Node{tb.Client, tb.Server} {
		link, err := handleIn(t, n.Netns).LinkByName(n.Iface)
		if err != nil {
			t.Fatalf("%s: %s not found: %v", n.Netns, n.Iface, err)
		}
		if a := link.Attrs(); a.NumTxQueues != 2 || a.NumRxQueues != 2 {
			t.Errorf("%s: %d TX / %d RX queues, want 2/2", n.Iface, a.NumTxQueues, a.NumRxQueues)
		}
	}
	got, err := readState(tb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Queues != 2 {
		t.Errorf("state file records %d queues, want 2", got.Queues)
	}

	def := up(t)
	raw, err := os.ReadFile(statePath(def.ID))
	if err != nil {
		t.Fatal(err)
	}
	if def.Queues != 0 || strings.Contains(string(raw), "queues") {
		t.Errorf("default testbed records queues (%d):\n%s", def.Queues, raw)
	}

	for _, q := range []int{-1, MaxQueues + 1} {
		bad := testID(t)
		if _, err := Up(ctx, Options{ID: bad, Queues: q}); err == nil || !strings.Contains(err.Error(), "allowed: 1..16") {
			t.Errorf("Up with %d queues: %v, want a refusal naming 1..16", q, err)
		}
		assertGone(t, bad)
	}
}

// TestUDPCrossesVeth sends a real datagram from a socket in the client
// namespace to 198.18.0.2 and receives it on a socket in the server
// namespace. A packet socket on the server's veth captures the same frame
// and checks its UDP checksum: with TX checksum offload left on, it would
// hold only the pseudo-header seed (what AF_XDP would see).
func TestUDPCrossesVeth(t *testing.T) {
	tb := up(t)
	hc := handleIn(t, tb.Client.Netns)
	hs := handleIn(t, tb.Server.Netns)
	srvLink, err := hs.LinkByName(tb.Server.Iface)
	if err != nil {
		t.Fatal(err)
	}

	var srv *net.UDPConn
	pfd := -1
	if err := InNetns(tb.Server.Netns, func() error {
		var err error
		srv, err = net.ListenUDP("udp4", &net.UDPAddr{IP: tb.Server.Addr.Addr().AsSlice(), Port: 0})
		if err != nil {
			return err
		}
		// SOCK_DGRAM packet socket: IP packets as they arrived on the veth.
		proto := htons(unix.ETH_P_IP)
		pfd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(proto))
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		return unix.Bind(pfd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: srvLink.Attrs().Index})
	}); err != nil {
		t.Fatalf("server sockets: %v", err)
	}
	defer srv.Close()
	defer unix.Close(pfd)
	tv := unix.NsecToTimeval(int64(5 * time.Second))
	if err := unix.SetsockoptTimeval(pfd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	srvAddr := srv.LocalAddr().(*net.UDPAddr)

	var cli *net.UDPConn
	if err := InNetns(tb.Client.Netns, func() error {
		var err error
		cli, err = net.DialUDP("udp4", nil, srvAddr)
		return err
	}); err != nil {
		t.Fatalf("client socket: %v", err)
	}
	defer cli.Close()

	cliLink, err := hc.LinkByName(tb.Client.Iface)
	if err != nil {
		t.Fatal(err)
	}
	txBefore := cliLink.Attrs().Statistics.TxPackets

	payload := []byte("joyride over veth " + tb.ID)
	if _, err := cli.Write(payload); err != nil {
		t.Fatalf("send: %v", err)
	}
	_ = srv.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	n, from, err := srv.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("receive in %s: %v", tb.Server.Netns, err)
	}
	if !bytes.Equal(buf[:n], payload) {
		t.Errorf("received %q, want %q", buf[:n], payload)
	}
	if !from.IP.Equal(tb.Client.Addr.Addr().AsSlice()) {
		t.Errorf("datagram from %s, want %s", from.IP, tb.Client.Addr.Addr())
	}

	cliLink, err = hc.LinkByName(tb.Client.Iface)
	if err != nil {
		t.Fatal(err)
	}
	if tx := cliLink.Attrs().Statistics.TxPackets; tx <= txBefore {
		t.Errorf("%s TX packets %d -> %d: datagram did not cross the veth", tb.Client.Iface, txBefore, tx)
	}

	// Find our datagram among what the packet socket saw (ARP is not
	// ETH_P_IP, so it is mostly just ours).
	deadline := time.Now().Add(5 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatal("packet socket never saw the datagram")
		}
		pkt := make([]byte, 2048)
		m, _, err := unix.Recvfrom(pfd, pkt, 0)
		if err != nil {
			t.Fatalf("packet socket: %v", err)
		}
		pkt = pkt[:m]
		if !isOurUDP(pkt, srvAddr.Port, payload) {
			continue
		}
		if err := checkUDPChecksum(pkt); err != nil {
			t.Errorf("frame on %s: %v (TX checksum offload not off?)", tb.Server.Iface, err)
		}
		break
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func isOurUDP(pkt []byte, port int, payload []byte) bool {
	if len(pkt) < 20 || pkt[0]>>4 != 4 || pkt[9] != unix.IPPROTO_UDP {
		return false
	}
	ihl := int(pkt[0]&0x0f) * 4
	if len(pkt) < ihl+8 {
		return false
	}
	udp := pkt[ihl:]
	return int(binary.BigEndian.Uint16(udp[2:4])) == port && bytes.Equal(udp[8:], payload)
}

// checkUDPChecksum verifies the UDP checksum of an IPv4 packet: the one's
// complement sum over pseudo-header and datagram must be 0xffff.
func checkUDPChecksum(pkt []byte) error {
	ihl := int(pkt[0]&0x0f) * 4
	udp := pkt[ihl:]
	ulen := int(binary.BigEndian.Uint16(udp[4:6]))
	if ulen > len(udp) || ulen < 8 {
		return fmt.Errorf("bad UDP length %d", ulen)
	}
	udp = udp[:ulen]
	if binary.BigEndian.Uint16(udp[6:8]) == 0 {
		return errors.New("UDP checksum is 0 (not computed)")
	}
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(pkt[12:20]) // source and destination address
	sum += uint32(unix.IPPROTO_UDP) + uint32(ulen)
	add(udp)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	if sum != 0xffff {
		return fmt.Errorf("UDP checksum %#04x is wrong (sum %#04x)", binary.BigEndian.Uint16(udp[6:8]), sum)
	}
	return nil
}

func TestDownIdempotentAndList(t *testing.T) {
	tb := up(t)

	all, err := List()
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var found *Testbed
	for _, x := range all {
		if x.ID == tb.ID {
			found = x
		}
	}
	if found == nil {
		t.Fatalf("List does not show %s: %v", tb.ID, all)
	}
	if found.Status != "up" || found.Server.Netns != tb.Server.Netns ||
		found.Client.MAC.String() != tb.Client.MAC.String() {
		t.Errorf("List entry %+v, want %+v up", found, tb)
	}

	if err := tb.Down(); err != nil {
		t.Fatalf("Down: %v", err)
	}
	assertGone(t, tb.ID)
	if err := tb.Down(); err != nil {
		t.Fatalf("second Down: %v", err)
	}
	if err := DownID(tb.ID); err != nil {
		t.Fatalf("DownID after Down: %v", err)
	}

	all, err = List()
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range all {
		if x.ID == tb.ID {
			t.Errorf("List still shows %s after Down", tb.ID)
		}
	}
}

// TestDownIDFromStateFile tears down from a fresh Testbed value, the way
// `jrbench testbed down <id>` in another process does.
func TestDownIDFromStateFile(t *testing.T) {
	tb := up(t)
	if _, err := os.Stat(statePath(tb.ID)); err != nil {
		t.Fatalf("state file: %v", err)
	}
	if err := DownID(tb.ID); err != nil {
		t.Fatalf("DownID: %v", err)
	}
	assertGone(t, tb.ID)
	if err := DownID(tb.ID); err != nil {
		t.Fatalf("second DownID: %v", err)
	}
}

// TestOrphan covers namespaces without a state file (a process killed
// during Up): List reports them and DownID removes them by name.
func TestOrphan(t *testing.T) {
	tb := up(t)
	if err := os.Remove(statePath(tb.ID)); err != nil {
		t.Fatal(err)
	}
	all, err := List()
	if err != nil {
		t.Fatal(err)
	}
	var found *Testbed
	for _, x := range all {
		if x.ID == tb.ID {
			found = x
		}
	}
	if found == nil || found.Status != "orphan" {
		t.Fatalf("List: orphan %s not reported: %+v", tb.ID, found)
	}
	if found.Client.Iface != tb.Client.Iface || found.Server.Addr != tb.Server.Addr ||
		found.Server.MAC.String() != tb.Server.MAC.String() {
		t.Errorf("orphan probed as %+v, want %+v", found, tb)
	}
	if err := DownID(tb.ID); err != nil {
		t.Fatalf("DownID: %v", err)
	}
	assertGone(t, tb.ID)
}

func TestUpRejectsExistingAndBadIDs(t *testing.T) {
	tb := up(t)
	if _, err := Up(context.Background(), Options{ID: tb.ID}); err == nil {
		t.Fatal("second Up with the same id succeeded")
	}
	// The failed attempt must not have damaged the first testbed.
	h := handleIn(t, tb.Server.Netns)
	if _, err := h.LinkByName(tb.Server.Iface); err != nil {
		t.Errorf("existing testbed damaged: %v", err)
	}
	if _, err := os.Stat(statePath(tb.ID)); err != nil {
		t.Errorf("existing state file removed: %v", err)
	}

	for _, id := range []string{"toolongid123", "UPPER", "a/b", "-x", "a b"} {
		if _, err := Up(context.Background(), Options{ID: id}); err == nil {
			t.Errorf("Up accepted id %q", id)
			_ = DownID(id)
		}
	}
}

// TestUpUndoesOnError fails Up after each step and checks nothing is left.
func TestUpUndoesOnError(t *testing.T) {
	for _, step := range []string{"netns", "veth", "setup"} {
		t.Run(step, func(t *testing.T) {
			id := testID(t)
			testHookUp = func(s string) error {
				if s == step {
					return errors.New("injected failure")
				}
				return nil
			}
			defer func() { testHookUp = nil }()
			tb, err := Up(context.Background(), Options{ID: id})
			if err == nil {
				_ = tb.Down()
				t.Fatal("Up succeeded despite injected failure")
			}
			if !strings.Contains(err.Error(), "injected failure") {
				t.Errorf("error %v", err)
			}
			assertGone(t, id)
		})
	}
}

func TestRandomID(t *testing.T) {
	ctx := context.Background()
	tb, err := Up(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	usedMu.Lock()
	usedIDs = append(usedIDs, tb.ID)
	usedMu.Unlock()
	defer tb.Down()
	if len(tb.ID) != 6 || ValidID(tb.ID) != nil {
		t.Errorf("random id %q", tb.ID)
	}
	if tb.Client.Iface != "jrc-"+tb.ID || tb.Server.Netns != "jr-server-"+tb.ID {
		t.Errorf("names %+v", tb)
	}
}

func TestCommandRunsInNamespace(t *testing.T) {
	tb := up(t)
	out, err := tb.Command(context.Background(), tb.Server, "ip", "-o", "-4", "addr", "show", "dev", tb.Server.Iface).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !strings.Contains(string(out), "198.18.0.2/24") {
		t.Errorf("ip addr in %s: %s", tb.Server.Netns, out)
	}
}

func TestCommandWithBPFFS(t *testing.T) {
	tb := up(t)
	out, err := tb.CommandWithBPFFS(context.Background(), tb.Client, "stat", "-f", "-c", "%T", BPFFSPath).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if strings.TrimSpace(string(out)) != "bpf_fs" {
		t.Errorf("%s inside %s is %q, want bpf_fs", BPFFSPath, tb.Client.Netns, out)
	}
	// Arguments with spaces survive the shim.
	out, err = tb.CommandWithBPFFS(context.Background(), tb.Client, "echo", "a b", "c").CombinedOutput()
	if err != nil || string(out) != "a b c\n" {
		t.Errorf("echo through shim: %q, %v", out, err)
	}
}

func TestEnsureBPFFS(t *testing.T) {
	// Run in a private mount namespace on a throw-away thread so the test
	// does not change the host's mounts.
	err := inThread(func() error {
		if err := unix.Unshare(unix.CLONE_FS | unix.CLONE_NEWNS); err != nil {
			return fmt.Errorf("unshare mount ns: %w", err)
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return fmt.Errorf("make / private: %w", err)
		}
		// Start from "not mounted" to exercise the mount path.
		_ = unix.Unmount(BPFFSPath, unix.MNT_DETACH)
		if err := EnsureBPFFS(); err != nil {
			return err
		}
		var st unix.Statfs_t
		if err := unix.Statfs(BPFFSPath, &st); err != nil || uint32(st.Type) != bpfFSMagic {
			return fmt.Errorf("bpffs not mounted at %s (%v)", BPFFSPath, err)
		}
		// Second call is a no-op.
		return EnsureBPFFS()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCleanupOnSignal starts a child process (this test binary) that brings
// a testbed up and registers CleanupOnSignal, signals it, and checks the
// exit code and that the testbed is gone.
func TestCleanupOnSignal(t *testing.T) {
	if os.Getenv("JR_SIGNAL_HELPER") != "" {
		return // the helper runs in TestSignalHelper
	}
	for _, tc := range []struct {
		sig  unix.Signal
		code int
	}{{unix.SIGTERM, 143}, {unix.SIGINT, 130}} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			id := testID(t)
			cmd := exec.Command(os.Args[0], "-test.run=^TestSignalHelper$", "-test.count=1")
			cmd.Env = append(os.Environ(), "JR_SIGNAL_HELPER="+id)
			cmd.Stderr = os.Stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			line := make([]byte, 64)
			n, err := stdout.Read(line)
			if err != nil || !strings.HasPrefix(string(line[:n]), "ready") {
				t.Fatalf("helper did not come up: %q %v", line[:n], err)
			}
			if !netnsExists(serverNetnsPrefix + id) {
				t.Fatal("helper's testbed not up")
			}
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			err = cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != tc.code {
				t.Errorf("helper exit: %v, want code %d", err, tc.code)
			}
			assertGone(t, id)
		})
	}
}

func TestSignalHelper(t *testing.T) {
	id := os.Getenv("JR_SIGNAL_HELPER")
	if id == "" {
		t.Skip("only runs as TestCleanupOnSignal's child")
	}
	tb, err := Up(context.Background(), Options{ID: id})
	if err != nil {
		t.Fatal(err)
	}
	tb.CleanupOnSignal()
	// Registering and stopping another testbed must leave this one in
	// force.
	other := &Testbed{ID: "unused"}
	other.CleanupOnSignal()()
	fmt.Println("ready")
	time.Sleep(30 * time.Second)
	_ = tb.Down()
	t.Fatal("no signal within 30s")
}

// Down removes the runtime files that killed processes of the testbed left:
// DPDK's EAL directories named <role>-<id> and the run's socket directory.
func TestDownRemovesRuntimeFilesOfKilledProcesses(t *testing.T) {
	tb, err := Up(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Down()
	var made []string
	for _, d := range []string{"/var/run/dpdk/jrgen-" + tb.ID, "/var/run/dpdk/joyrided-" + tb.ID, "/run/jrbench/" + tb.ID} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(d+"/config", []byte("x"), 0o600)
		made = append(made, d)
	}
	other := "/var/run/dpdk/jrgen-" + tb.ID + "x" // another testbed's: must stay
	os.MkdirAll(other, 0o700)
	defer os.RemoveAll(other)
	if err := tb.Down(); err != nil {
		t.Fatal(err)
	}
	for _, d := range made {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("%s left behind", d)
		}
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("another testbed's %s was removed", other)
	}
}
