package arp

import (
	"net"
	"net/netip"
	"testing"
)

// Two responders talk to each other: one asks, the other answers, the first
// learns the second's MAC.
func TestRequestAnswerLearn(t *testing.T) {
	aMAC, bMAC := net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 2}
	aIP, bIP := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2")
	a, b := New(aMAC, aIP), New(bMAC, bIP)

	req := append([]byte(nil), a.Request(bIP)...)
	if len(req) != 60 {
		t.Fatalf("request is %d bytes, want 60 (padded to the Ethernet minimum)", len(req))
	}
	answer, asker, askerMAC := b.Handle(req)
	if answer == nil || asker != aIP || askerMAC.String() != aMAC.String() {
		t.Fatalf("b did not answer a's request: answer %v, asker %v %v", answer != nil, asker, askerMAC)
	}
	if _, from, mac := a.Handle(append([]byte(nil), answer...)); from != bIP || mac.String() != bMAC.String() {
		t.Fatalf("a learned %v at %v, want %v at %v", mac, from, bMAC, bIP)
	}
	// A request for somebody else's address goes unanswered.
	if answer, _, _ := b.Handle(append([]byte(nil), a.Request(netip.MustParseAddr("198.18.0.9"))...)); answer != nil {
		t.Fatal("b answered for an address that is not its own")
	}
	// Not ARP at all.
	if answer, _, mac := b.Handle(make([]byte, 60)); answer != nil || mac != nil {
		t.Fatal("a zero frame was taken for ARP")
	}
}
