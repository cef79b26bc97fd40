package loadgen

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// HeaderLen is the part of every request payload the generator owns: a magic
// number and the request's index (the reply echoes it back).
//
//	0      2                10               18
//	| magic | request index | scheduled offset (ns) | ...padding to size
const HeaderLen = 18

// Magic marks the generator's requests ("JR").
const Magic = 0x4a52

// Frame offsets for an untagged Ethernet + IPv4 (no options) + UDP frame, which is
// what the template is and what every reply of an echo server looks like.
const (
	ethLen     = 14
	ipv4Len    = 20
	udpLen     = 8
	payloadOff = ethLen + ipv4Len + udpLen
	udpOff     = ethLen + ipv4Len
)

// Flow names the two ends of the generator's UDP flow.
type Flow struct {
	SrcMAC, DstMAC   net.HardwareAddr
	SrcIP, DstIP     netip.Addr
	SrcPort, DstPort uint16
}

// UDPTemplate is a request frame serialized once with gopacket; each request is a
// copy of it with the index patched in and the UDP checksum adjusted
// incrementally (the ports have no checksum offload in the LCD model, and a
// zero "no checksum" would be accepted by Linux but is not what real clients send).
type UDPTemplate struct {
	frame   []byte
	baseSum uint32 // one's-complement sum of the UDP pseudo-header + datagram with the header fields zero
	flow    Flow
	service bool // requests carry a service time (synthetic)
	// Replies are accepted to UDP ports rxPort..rxPort+rxPorts-1: the flow's
	// source port alone, or every engine's of a multi-queue run.
	rxPort, rxPorts uint16
}

// NewUDPTemplate builds the template for payloads of size bytes (>= HeaderLen).
func NewUDPTemplate(f Flow, size int) (*UDPTemplate, error) {
	return newUDPTemplate(f, size, false)
}

// NewSyntheticTemplate is NewUDPTemplate for requests that carry a service time
// (size >= SyntheticHeaderLen).
func NewSyntheticTemplate(f Flow, size int) (*UDPTemplate, error) {
	return newUDPTemplate(f, size, true)
}

func newUDPTemplate(f Flow, size int, service bool) (*UDPTemplate, error) {
	if size < HeaderLen {
		return nil, fmt.Errorf("loadgen: payload of %d bytes is shorter than the %d-byte request header", size, HeaderLen)
	}
	if service && size < SyntheticHeaderLen {
		return nil, fmt.Errorf("loadgen: a synthetic request needs at least %d bytes (header and service time), not %d", SyntheticHeaderLen, size)
	}
	if !f.SrcIP.Is4() || !f.DstIP.Is4() {
		return nil, fmt.Errorf("loadgen: only IPv4 flows are supported (got %v -> %v)", f.SrcIP, f.DstIP)
	}
	if payloadOff+size > 1514 {
		return nil, fmt.Errorf("loadgen: payload of %d bytes does not fit a 1500-byte MTU (at most %d)", size, 1514-payloadOff)
	}
	eth := &layers.Ethernet{SrcMAC: f.SrcMAC, DstMAC: f.DstMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolUDP,
		SrcIP: f.SrcIP.AsSlice(), DstIP: f.DstIP.AsSlice()}
	udp := &layers.UDP{SrcPort: layers.UDPPort(f.SrcPort), DstPort: layers.UDPPort(f.DstPort)}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		return nil, err
	}
	payload := make([]byte, size)
	binary.BigEndian.PutUint16(payload, Magic)
	pad := HeaderLen
	if service {
		pad = SyntheticHeaderLen // the service time starts zero: Write adds it
	}
	for i := pad; i < size; i++ {
		payload[i] = byte(i)
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, ip, udp, gopacket.Payload(payload)); err != nil {
		return nil, fmt.Errorf("loadgen: build request template: %w", err)
	}
	t := &UDPTemplate{frame: append([]byte(nil), buf.Bytes()...), flow: f, service: service, rxPort: f.SrcPort, rxPorts: 1}
	// The serialized checksum covers the payload with zero index fields; undo the
	// final complement to get the running sum each request adds its fields to.
	sum := binary.BigEndian.Uint16(t.frame[udpOff+6:])
	t.baseSum = uint32(^sum)
	return t, nil
}

// Len is the length of each request frame.
func (t *UDPTemplate) Len() int { return len(t.frame) }

// Write fills dst (at least Len bytes) with request index id (and, for a
// synthetic template, its service time) and returns the frame.
func (t *UDPTemplate) Write(dst []byte, id, schedNanos, serviceNanos uint64) []byte {
	f := dst[:len(t.frame)]
	copy(f, t.frame)
	p := f[payloadOff:]
	binary.BigEndian.PutUint64(p[2:], id)
	binary.BigEndian.PutUint64(p[10:], schedNanos)
	sum := t.baseSum + sum16x4(id) + sum16x4(schedNanos)
	if t.service {
		binary.BigEndian.PutUint64(p[ServiceOffset:], serviceNanos)
		sum += sum16x4(serviceNanos)
	}
	for sum > 0xffff {
		sum = (sum & 0xffff) + sum>>16
	}
	cs := ^uint16(sum)
	if cs == 0 {
		cs = 0xffff // 0 means "no checksum" in UDP over IPv4
	}
	binary.BigEndian.PutUint16(f[udpOff+6:], cs)
	return f
}

// sum16x4 adds the four 16-bit words of v (big-endian), as the checksum sees them.
func sum16x4(v uint64) uint32 {
	return uint32(v>>48) + uint32(v>>32&0xffff) + uint32(v>>16&0xffff) + uint32(v&0xffff)
}

// Reply is what ParseReply found in a frame.
type Reply struct {
	ID uint64
}

// ParseReply recognises an echo of one of this flow's requests by fixed offsets
// (the common case, checked field by field) and returns its index. ok is false
// for anything else, which the caller hands to the slow path.
func (t *UDPTemplate) ParseReply(f []byte) (id uint64, ok bool) {
	if len(f) < payloadOff+HeaderLen {
		return 0, false
	}
	if f[12] != 0x08 || f[13] != 0x00 || f[ethLen] != 0x45 || f[ethLen+9] != 17 {
		return 0, false // not IPv4 without options, or not UDP
	}
	// The reply comes from the server's port to ours (one of ours).
	if binary.BigEndian.Uint16(f[udpOff:]) != t.flow.DstPort || binary.BigEndian.Uint16(f[udpOff+2:])-t.rxPort >= t.rxPorts {
		return 0, false
	}
	p := f[payloadOff:]
	if binary.BigEndian.Uint16(p) != Magic {
		return 0, false
	}
	return binary.BigEndian.Uint64(p[2:]), true
}
