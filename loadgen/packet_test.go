package loadgen

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

var testFlow = Flow{
	SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2},
	SrcIP: netip.MustParseAddr("198.18.0.1"), DstIP: netip.MustParseAddr("198.18.0.2"),
	SrcPort: 40000, DstPort: 9000,
}

// Every request the template writes must be a valid frame whose UDP checksum,
// patched incrementally, equals the one gopacket computes from scratch.
func TestTemplateWritesValidRequests(t *testing.T) {
	tmpl, err := NewUDPTemplate(testFlow, 64)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	for _, id := range []uint64{0, 1, 0xffff, 1 << 40, ^uint64(0) >> 1} {
		f := tmpl.Write(buf, id, id*3+17, 0)
		pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		udp, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
		ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if udp == nil || ip == nil || len(udp.Payload) != 64 {
			t.Fatalf("id %d: not an IPv4/UDP frame with 64 B payload: %v", id, pkt)
		}
		got := udp.Checksum
		udp.SetNetworkLayerForChecksum(ip)
		sb := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{ComputeChecksums: true}, udp, gopacket.Payload(udp.Payload)); err != nil {
			t.Fatal(err)
		}
		want := layers.UDP{}
		want.DecodeFromBytes(sb.Bytes(), gopacket.NilDecodeFeedback)
		if got != want.Checksum {
			t.Fatalf("id %d: UDP checksum %#04x, want %#04x", id, got, want.Checksum)
		}
	}
}

// A synthetic request carries its service time, and its incrementally patched
// checksum is still right.
func TestSyntheticTemplateCarriesTheServiceTime(t *testing.T) {
	tmpl, err := NewSyntheticTemplate(testFlow, 64)
	if err != nil {
		t.Fatal(err)
	}
	f := tmpl.Write(make([]byte, 2048), 7, 100, 12345)
	pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	udp := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
	ip := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if got := binary.BigEndian.Uint64(udp.Payload[ServiceOffset:]); got != 12345 {
		t.Fatalf("service time %d, want 12345", got)
	}
	got := udp.Checksum
	udp.SetNetworkLayerForChecksum(ip)
	sb := gopacket.NewSerializeBuffer()
	gopacket.SerializeLayers(sb, gopacket.SerializeOptions{ComputeChecksums: true}, udp, gopacket.Payload(udp.Payload))
	var want layers.UDP
	want.DecodeFromBytes(sb.Bytes(), gopacket.NilDecodeFeedback)
	if got != want.Checksum {
		t.Fatalf("UDP checksum %#04x, want %#04x", got, want.Checksum)
	}
	if _, err := NewSyntheticTemplate(testFlow, SyntheticHeaderLen-1); err == nil {
		t.Fatal("a synthetic request without room for its service time accepted")
	}
}

func TestParseReplyAcceptsEchoesOnly(t *testing.T) {
	tmpl, _ := NewUDPTemplate(testFlow, 64)
	req := append([]byte(nil), tmpl.Write(make([]byte, 2048), 42, 0, 0)...)
	if _, ok := tmpl.ParseReply(req); ok {
		t.Fatal("the request itself was taken for a reply")
	}
	// An echo server swaps ports (and addresses, which the matcher ignores).
	reply := append([]byte(nil), req...)
	reply[34], reply[35], reply[36], reply[37] = req[36], req[37], req[34], req[35]
	if id, ok := tmpl.ParseReply(reply); !ok || id != 42 {
		t.Fatalf("echo not recognised: id %d ok %v", id, ok)
	}
	bad := append([]byte(nil), reply...)
	bad[payloadOff] ^= 0xff // magic broken
	if _, ok := tmpl.ParseReply(bad); ok {
		t.Fatal("frame without the magic accepted")
	}
	if _, ok := tmpl.ParseReply(reply[:50]); ok {
		t.Fatal("truncated frame accepted")
	}
}

func TestTemplateRefusesBadSizes(t *testing.T) {
	if _, err := NewUDPTemplate(testFlow, HeaderLen-1); err == nil {
		t.Fatal("payload shorter than the header accepted")
	}
	if _, err := NewUDPTemplate(testFlow, 1473); err == nil {
		t.Fatal("payload beyond one frame accepted")
	}
}

func BenchmarkTemplateWrite(b *testing.B) {
	tmpl, _ := NewUDPTemplate(testFlow, 64)
	buf := make([]byte, 2048)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		tmpl.Write(buf, uint64(i), uint64(i), 0)
	}
}

func BenchmarkParseReply(b *testing.B) {
	tmpl, _ := NewUDPTemplate(testFlow, 64)
	f := tmpl.Write(make([]byte, 2048), 42, 0, 0)
	f[34], f[35], f[36], f[37] = f[36], f[37], f[34], f[35]
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		tmpl.ParseReply(f)
	}
}

// The generator's reply parser never panics and never reads past the frame,
// whatever arrives (truncated headers, bad lengths, garbage).
func FuzzParseReply(f *testing.F) {
	tmpl, _ := NewUDPTemplate(testFlow, 64)
	req := tmpl.Write(make([]byte, 2048), 42, 7, 0)
	reply := append([]byte(nil), req...)
	reply[34], reply[35], reply[36], reply[37] = req[36], req[37], req[34], req[35]
	f.Add(reply)
	f.Add(reply[:20])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, frame []byte) {
		id, ok := tmpl.ParseReply(frame)
		if ok && len(frame) < payloadOff+HeaderLen {
			t.Fatalf("accepted a %d-byte frame (id %d)", len(frame), id)
		}
	})
}
