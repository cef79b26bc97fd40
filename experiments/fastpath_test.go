//go:build dpdk && cgo

package experiments

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/joyride-bench/joyride/testbed/local"
)

// joyrided's UDP fast path against the client namespace's Linux stack: the
// kernel verifies every checksum it receives (a datagram with a wrong one is
// dropped, and the echo below would time out); datagrams that need IP
// fragments, ICMP echo and ARP stay gVisor's and must still be answered; and
// the flow leaves the table when its socket closes.
func TestFastPathAgainstLinuxPeers(t *testing.T) {
	b := upJoyride(t)
	app := b.app(t, "echo", "udp", 9000)
	c := b.dial(t, "udp4", 9000)

	t.Run("small datagrams", func(t *testing.T) { udpEchoes(t, c, 200) })
	t.Run("fragmented datagrams", func(t *testing.T) { bigUDPEchoes(t, c, 5) })
	t.Run("icmp echo", func(t *testing.T) { pingFromClient(t, b, 5) })
	t.Run("arp after the peer forgot", func(t *testing.T) {
		// The client must resolve the service again: gVisor answers ARP.
		if out, err := b.tb.Command(context.Background(), b.tb.Client, "ip", "neigh", "flush", "all").CombinedOutput(); err != nil {
			t.Fatalf("ip neigh flush: %v: %s", err, out)
		}
		udpEchoes(t, c, 10)
	})

	// The application leaves: its port must leave the fast path's table.
	app.stop()
	log := b.daemon.stop()
	m := regexp.MustCompile(`msg="fast path counters" rx=(\d+) tx=(\d+) tx_fallbacks=(\d+) resolves=\d+ ports_left=(\d+)`).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("joyrided logged no fast path counters:\n%s", lastLines(log, 10))
	}
	rx, _ := strconv.Atoi(m[1])
	tx, _ := strconv.Atoi(m[2])
	fallbacks, _ := strconv.Atoi(m[3])
	t.Logf("fast path: rx %d, tx %d, tx fallbacks %d, ports left %s", rx, tx, fallbacks, m[4])
	// 210 small datagrams each way went through it; the 4000 B ones did not.
	if rx < 210 || tx < 210 {
		t.Errorf("fast path carried rx %d, tx %d datagrams; want at least 210 each", rx, tx)
	}
	if fallbacks < 5 {
		t.Errorf("%d writes fell back to gVisor; want the 5 that need fragments at least", fallbacks)
	}
	if m[4] != "0" {
		t.Errorf("%s ports left on the fast path after the application closed its socket", m[4])
	}
}

// bigUDPEchoes sends n datagrams of 4000 B on c and checks each comes back.
// 4000 B does not fit a 1500 B MTU: Linux sends three fragments, gVisor
// reassembles them, and the reply is too big for the fast path's template,
// so gVisor fragments it too.
func bigUDPEchoes(t *testing.T, c net.Conn, n int) {
	t.Helper()
	buf := make([]byte, 8192)
	for i := 0; i < n; i++ {
		msg := bytes.Repeat([]byte{byte(0xa0 + i)}, 4000)
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		k, err := c.Read(buf)
		if err != nil || !bytes.Equal(buf[:k], msg) {
			t.Fatalf("4000 B datagram %d: %v, %d bytes back", i, err, k)
		}
	}
}

// pingFromClient sends n ICMP echo requests from the client namespace through
// a raw socket and checks each is answered with its own payload.
func pingFromClient(t *testing.T, b *joyrideBed, n int) {
	t.Helper()
	err := local.InNetns(b.tb.Client.Netns, func() error {
		conn, err := net.ListenPacket("ip4:icmp", b.tb.Client.Addr.Addr().String())
		if err != nil {
			return err
		}
		defer conn.Close()
		dst := &net.IPAddr{IP: b.tb.Server.Addr.Addr().AsSlice()}
		buf := make([]byte, 1500)
		for seq := 1; seq <= n; seq++ {
			req := make([]byte, 8+32)
			req[0] = 8 // echo request
			binary.BigEndian.PutUint16(req[4:], 0x4a52)
			binary.BigEndian.PutUint16(req[6:], uint16(seq))
			copy(req[8:], bytes.Repeat([]byte{byte(seq)}, 32))
			binary.BigEndian.PutUint16(req[2:], inetChecksum(req))
			if _, err := conn.WriteTo(req, dst); err != nil {
				return err
			}
			conn.SetReadDeadline(time.Now().Add(3 * time.Second))
			for {
				k, _, err := conn.ReadFrom(buf)
				if err != nil {
					t.Errorf("echo request %d: no reply: %v", seq, err)
					break
				}
				// A raw ip4:icmp socket reads the ICMP message alone.
				if k >= 8 && buf[0] == 0 && binary.BigEndian.Uint16(buf[6:]) == uint16(seq) {
					if !bytes.Equal(buf[8:k], req[8:]) {
						t.Errorf("echo reply %d carries other bytes", seq)
					}
					break
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// inetChecksum is the Internet checksum of b (RFC 1071).
func inetChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
