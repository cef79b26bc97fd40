//go:build dpdk && cgo

package experiments

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The AF_XDP library OS on the namespace testbed: jrapp with gVisor's stack
// inside, on an AF_XDP socket on the server's veth, answering the client
// namespace's Linux stack; its XDP program must be gone when jrapp is, also
// when it was killed.

func (b *joyrideBed) xdpAttached(t *testing.T) bool {
	t.Helper()
	out, err := b.tb.Command(context.Background(), b.tb.Server, "ip", "-d", "link", "show", b.tb.Server.Iface).CombinedOutput()
	if err != nil {
		t.Fatalf("ip link show: %v: %s", err, out)
	}
	return strings.Contains(string(out), "xdp") || strings.Contains(string(out), "prog/xdp")
}

func TestAFXDPStackServesLinuxClients(t *testing.T) {
	b := upBed(t)
	udp := b.appOn(t, "afxdp", "echo", "udp", 9000)
	// The UDP socket is on the fast path below gVisor: the client's kernel
	// verifies the checksums of its replies (a wrong one is dropped and the
	// echo times out); fragmented datagrams and ICMP stay gVisor's.
	uc := b.dial(t, "udp4", 9000)
	t.Run("udp", func(t *testing.T) { udpEchoes(t, uc, 100) })
	t.Run("fragmented udp", func(t *testing.T) { bigUDPEchoes(t, uc, 5) })
	t.Run("icmp echo", func(t *testing.T) { pingFromClient(t, b, 3) })
	if !b.xdpAttached(t) {
		t.Error("no XDP program on the server's veth while the afxdp stack runs")
	}
	out := udp.stop()
	m := regexp.MustCompile(`STATS .*"fast_rx":(\d+),"fast_tx":(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Errorf("jrapp on afxdp reported no fast path counters:\n%s", lastLines(out, 5))
	} else if rx, _ := strconv.Atoi(m[1]); rx < 100 {
		t.Errorf("the fast path carried %s datagrams in and %s out; want the 100 small ones at least", m[1], m[2])
	} else if tx, _ := strconv.Atoi(m[2]); tx < 100 {
		t.Errorf("the fast path carried %s datagrams out; want the 100 small replies at least", m[2])
	}
	if b.xdpAttached(t) {
		t.Error("XDP program left on the veth after jrapp stopped")
	}

	// One AF_XDP socket per queue: a TCP echo needs its own jrapp, started after.
	tcp := b.appOn(t, "afxdp", "echo", "tcp", 9001)
	t.Run("tcp", func(t *testing.T) { tcpEchoes(t, b.dial(t, "tcp4", 9001), 1<<20) })
	// Killed: the kernel removes the XDP link with the process.
	tcp.cmd.Process.Signal(syscall.SIGKILL)
	<-tcp.exited
	deadline := time.Now().Add(3 * time.Second)
	for b.xdpAttached(t) {
		if time.Now().After(deadline) {
			t.Fatal("XDP program still attached 3 s after jrapp was killed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
