package joyride

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/joyride-bench/joyride/stacks/joyride/proto"
)

// A UDP socket nobody reads keeps at most maxDgramQueue bytes of buffers
// (small datagrams count their buffer's whole capacity), drops the rest, and
// then returns what it kept, in order and intact: recycled buffers are not
// handed out while a queued datagram still uses them.
func TestDatagramQueueBoundedByBufferMemory(t *testing.T) {
	f := newFakeService(t)
	s := f.open(t)
	c, err := s.Dial("udp", "192.0.2.9:9000")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	id := f.lastSock()
	const sent, keep = 3000, maxDgramQueue / smallRecvBuf
	from := proto.PackAddr(netip.MustParseAddrPort("192.0.2.9:9000"))
	for i := range sent {
		var p [64]byte
		binary.BigEndian.PutUint32(p[:], uint32(i))
		f.inject(proto.OpData, id, from, p[:])
	}
	waitFor(t, func() bool { return s.Stats().RxPackets == sent })
	if d := s.Stats().Dropped; d != sent-keep {
		t.Fatalf("dropped %d datagrams, want %d (%d kept in %d bytes)", d, sent-keep, keep, maxDgramQueue)
	}
	buf := make([]byte, 100)
	for i := range keep {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil || n != 64 || binary.BigEndian.Uint32(buf) != uint32(i) {
			t.Fatalf("datagram %d: %d bytes, seq %d, %v", i, n, binary.BigEndian.Uint32(buf), err)
		}
	}
	// Room again: the next datagram is queued.
	f.inject(proto.OpData, id, from, []byte("again"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "again" {
		t.Fatalf("after the queue emptied: %q, %v", buf[:n], err)
	}
}

// Stream messages larger than a small buffer go to the socket in the
// dispatcher's own buffer (no copy) and come back whole, across many reads.
func TestLargeStreamMessagesIntact(t *testing.T) {
	f := newFakeService(t)
	s := f.open(t)
	c, err := s.Dial("tcp", "192.0.2.9:7")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := make([]byte, 3*proto.MaxMessage+123)
	for i := range want {
		want[i] = byte(i*13 + i/251)
	}
	go c.Write(want)
	got := make([]byte, 0, len(want))
	buf := make([]byte, 1000)
	for len(got) < len(want) {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
		got = append(got, buf[:n]...)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("byte %d: %d, want %d", i, got[i], want[i])
		}
	}
}

// BenchmarkClientUDPEcho: one datagram out and its echo back through the
// client, against the in-process fake service (allocs/op counts both sides;
// the client's share in steady state is the deadline's and the wake-up
// channel's, not the payload's).
func BenchmarkClientUDPEcho(b *testing.B) {
	f := newFakeService(b)
	s := f.open(b)
	c, err := s.Dial("udp", "192.0.2.9:9000")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req, buf := make([]byte, 64), make([]byte, 100)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			b.Fatal(err)
		}
	}
}
