package null

import (
	"bytes"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

func udpFrame(t testing.TB) []byte {
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{198, 18, 0, 1}, DstIP: net.IP{198, 18, 0, 2}}
	udp := &layers.UDP{SrcPort: 40000, DstPort: 9000}
	udp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, udp, gopacket.Payload([]byte("joyride bench payload"))); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// The reflected frame goes back to its sender, from us, with both checksums
// still valid (they are sums, indifferent to swapping their terms).
func TestSwapUDPReflectsWithValidChecksums(t *testing.T) {
	f := udpFrame(t)
	orig := append([]byte(nil), f...)
	me := net.HardwareAddr{2, 0, 0, 0, 0, 2}
	if !swapUDP(f, me) {
		t.Fatal("UDP frame not reflected")
	}
	pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	udp := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if !bytes.Equal(eth.DstMAC, orig[6:12]) || !bytes.Equal(eth.SrcMAC, me) {
		t.Errorf("MACs: %v -> %v", eth.SrcMAC, eth.DstMAC)
	}
	if !ip.SrcIP.Equal(net.IP{198, 18, 0, 2}) || !ip.DstIP.Equal(net.IP{198, 18, 0, 1}) || udp.SrcPort != 9000 || udp.DstPort != 40000 {
		t.Errorf("addresses: %v:%d -> %v:%d", ip.SrcIP, udp.SrcPort, ip.DstIP, udp.DstPort)
	}
	// Recompute both checksums from scratch and compare.
	gotIP, gotUDP := ip.Checksum, udp.Checksum
	udp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, ip, udp, gopacket.Payload(udp.Payload))
	check := gopacket.NewPacket(buf.Bytes(), layers.LayerTypeIPv4, gopacket.Default)
	if c := check.Layer(layers.LayerTypeIPv4).(*layers.IPv4).Checksum; c != gotIP {
		t.Errorf("IPv4 checksum %#04x, want %#04x", gotIP, c)
	}
	if c := check.Layer(layers.LayerTypeUDP).(*layers.UDP).Checksum; c != gotUDP {
		t.Errorf("UDP checksum %#04x, want %#04x", gotUDP, c)
	}
}

func TestSwapUDPLeavesOtherFramesAlone(t *testing.T) {
	f := udpFrame(t)
	f[23] = 6 // TCP
	orig := append([]byte(nil), f...)
	if swapUDP(f, net.HardwareAddr{2, 0, 0, 0, 0, 2}) || !bytes.Equal(f, orig) {
		t.Fatal("a TCP frame was reflected or changed")
	}
	if swapUDP(f[:30], net.HardwareAddr{2, 0, 0, 0, 0, 2}) {
		t.Fatal("a truncated frame was reflected")
	}
}

func TestOptionsValidate(t *testing.T) {
	if err := (&Options{Driver: "memif", Burst: 32}).Validate(); err == nil {
		t.Fatal("driver memif accepted")
	}
	if err := (&Options{Driver: "af_xdp", Burst: 0}).Validate(); err == nil {
		t.Fatal("burst 0 accepted")
	}
	if err := (&Options{Driver: "af_packet", Burst: 64}).Validate(); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkSwapUDP(b *testing.B) {
	f := udpFrame(b)
	me := net.HardwareAddr{2, 0, 0, 0, 0, 2}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		swapUDP(f, me)
	}
}

// The reflector's swap never panics on malformed frames, and changes nothing
// in a frame it does not reflect.
func FuzzSwapUDP(f *testing.F) {
	f.Add(udpFrame(f))
	f.Add(udpFrame(f)[:30])
	f.Add([]byte{})
	me := net.HardwareAddr{2, 0, 0, 0, 0, 2}
	f.Fuzz(func(t *testing.T, frame []byte) {
		orig := append([]byte(nil), frame...)
		if !swapUDP(frame, me) && !bytes.Equal(frame, orig) {
			t.Fatal("a frame that was not reflected was changed")
		}
	})
}
