// Package arp answers and asks the Address Resolution Protocol's questions for one
// IPv4 address on a nic.Port. Anything that owns a port without a kernel behind it
// (the load generator, the null reflector) must answer "who has <my IP>?" itself,
// or no peer can reach it, and must ask before it can address a peer.
package arp

import (
	"fmt"
	"time"

	"github.com/joyride-bench/joyride/nic"
	"net"
	"net/netip"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

var broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// Responder answers and asks the address-resolution questions of one IPv4 address on a
// port. It decodes with a gopacket DecodingLayerParser prepared once; it is the
// slow path, for frames that are not replies.
type Responder struct {
	mac    net.HardwareAddr
	ip     netip.Addr
	eth    layers.Ethernet
	arp    layers.ARP
	parser *gopacket.DecodingLayerParser
	types  []gopacket.LayerType
	buf    gopacket.SerializeBuffer
}

// New prepares ARP handling for the host mac/ip.
func New(mac net.HardwareAddr, ip netip.Addr) *Responder {
	a := &Responder{mac: mac, ip: ip, buf: gopacket.NewSerializeBuffer()}
	a.parser = gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &a.eth, &a.arp)
	a.parser.IgnoreUnsupported = true
	a.types = make([]gopacket.LayerType, 0, 4)
	return a
}

// Request returns a who-has request for target, valid until the next call.
func (a *Responder) Request(target netip.Addr) []byte {
	return a.build(layers.ARPRequest, broadcast, net.HardwareAddr{0, 0, 0, 0, 0, 0}, target)
}

// padding brings an ARP frame (42 bytes) to Ethernet's 60-byte minimum.
var padding = make([]byte, 18)

func (a *Responder) build(op uint16, ethDst, arpDst net.HardwareAddr, target netip.Addr) []byte {
	eth := layers.Ethernet{SrcMAC: a.mac, DstMAC: ethDst, EthernetType: layers.EthernetTypeARP}
	arp := layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: op,
		SourceHwAddress: a.mac, SourceProtAddress: a.ip.AsSlice(),
		DstHwAddress: arpDst, DstProtAddress: target.AsSlice()}
	a.buf.Clear()
	if err := gopacket.SerializeLayers(a.buf, gopacket.SerializeOptions{}, &eth, &arp, gopacket.Payload(padding)); err != nil {
		return nil
	}
	return a.buf.Bytes()
}

// Handle looks at a frame that was not a reply. If it is an ARP request for our
// address it returns the answer to send (valid until the next call) and the
// asker; if it is an ARP reply it returns the sender's address and MAC. Anything
// else: nils.
func (a *Responder) Handle(f []byte) (answer []byte, from netip.Addr, fromMAC net.HardwareAddr) {
	if len(f) < 42 || f[12] != 0x08 || f[13] != 0x06 {
		return nil, netip.Addr{}, nil
	}
	if err := a.parser.DecodeLayers(f, &a.types); err != nil && len(a.types) < 2 {
		return nil, netip.Addr{}, nil
	}
	sender, _ := netip.AddrFromSlice(a.arp.SourceProtAddress)
	target, _ := netip.AddrFromSlice(a.arp.DstProtAddress)
	switch a.arp.Operation {
	case layers.ARPRequest:
		if target != a.ip {
			return nil, netip.Addr{}, nil
		}
		asker := append(net.HardwareAddr(nil), a.arp.SourceHwAddress...)
		return a.build(layers.ARPReply, asker, asker, sender), sender, asker
	case layers.ARPReply:
		return nil, sender, append(net.HardwareAddr(nil), a.arp.SourceHwAddress...)
	}
	return nil, netip.Addr{}, nil
}

// Resolve asks for target's MAC address by ARP on port, answering ARP requests
// for our own address meanwhile, until timeout.
func Resolve(port nic.Port, a *Responder, target netip.Addr, timeout time.Duration) (net.HardwareAddr, error) {
	b := nic.NewBatch(32)
	deadline := time.Now().Add(timeout)
	var nextAsk time.Time
	for time.Now().Before(deadline) {
		if time.Now().After(nextAsk) {
			SendOne(port, b, a.Request(target))
			nextAsk = time.Now().Add(100 * time.Millisecond)
		}
		n := port.RxBurst(b)
		var found net.HardwareAddr
		for i := 0; i < n; i++ {
			answer, from, mac := a.Handle(b.Frames[i])
			if answer != nil {
				defer SendOne(port, nic.NewBatch(1), answer)
			} else if mac != nil && from == target {
				found = mac
			}
		}
		port.Free(b)
		if found != nil {
			return found, nil
		}
		if n == 0 {
			time.Sleep(50 * time.Microsecond)
		}
	}
	return nil, fmt.Errorf("arp: no ARP reply from %v within %v (is the server up on the wire?)", target, timeout)
}

// SendOne transmits a copy of frame (off the hot path).
func SendOne(port nic.Port, b *nic.Batch, frame []byte) bool {
	if port.Alloc(b, 1) != 1 {
		return false
	}
	b.N = 1
	b.Frames[0] = b.Frames[0][:copy(b.Frames[0], frame)]
	return port.TxBurst(b) == 1
}
