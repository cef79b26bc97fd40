package netstack

import (
	"net/netip"
	"testing"
)

// Malformed frames delivered to a stack through the endpoint (truncated
// headers, bad lengths and checksums, garbage) never crash it: the endpoint
// and gVisor drop what they cannot parse, and the stack keeps working.
func FuzzEndpointDeliver(f *testing.F) {
	a, b := memPair()
	ep := New(a, Options{})
	s, err := NewStack(ep, netip.MustParsePrefix("198.18.0.2/24"), netip.Addr{})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	// Seeds: an ARP request for the stack and a UDP datagram to it.
	arpReq := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 0xb, 0x08, 0x06,
		0, 1, 0x08, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 0xb, 198, 18, 0, 1, 0, 0, 0, 0, 0, 0, 198, 18, 0, 2}
	f.Add(arpReq)
	udp := []byte{2, 0, 0, 0, 0, 0xa, 2, 0, 0, 0, 0, 0xb, 0x08, 0x00,
		0x45, 0, 0, 33, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2,
		0x9c, 0x40, 0x23, 0x28, 0, 13, 0, 0, 'h', 'e', 'l', 'l', 'o'}
	f.Add(udp)
	f.Add(udp[:20])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, frame []byte) {
		// The frame arrives on a's receive queue, as from the wire.
		a.mu.Lock()
		a.q = append(a.q, append([]byte(nil), frame...))
		a.mu.Unlock()
		ep.Poll()
		// Drain what the stack answered (ARP replies, ICMP errors).
		b.mu.Lock()
		b.q = b.q[:0]
		b.mu.Unlock()
	})
}
