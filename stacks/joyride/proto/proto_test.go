package proto

import (
	"net/netip"
	"testing"
)

func TestPackAddrRoundTrips(t *testing.T) {
	for _, s := range []string{"198.18.0.2:9000", "127.0.0.1:1", "255.255.255.255:65535", "0.0.0.1:0"} {
		ap := netip.MustParseAddrPort(s)
		got, ok := UnpackAddr(PackAddr(ap))
		if !ok || got != ap {
			t.Errorf("%s -> %#x -> %v %v", s, PackAddr(ap), got, ok)
		}
	}
	if _, ok := UnpackAddr(1 << 50); ok {
		t.Error("bits above 47 accepted")
	}
	if PackAddr(netip.MustParseAddrPort("[::1]:80")) != 0 {
		t.Error("IPv6 packed")
	}
}
