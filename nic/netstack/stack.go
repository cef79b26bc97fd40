package netstack

import (
	"fmt"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// NICID is the id of the one NIC of a stack built by NewStack.
const NICID tcpip.NICID = 1

// NewStack builds the gVisor stack every user-space stack of this project runs
// (Joyride's service, the AF_XDP library OS, the generator's TCP client): IPv4
// with ARP, TCP, UDP and ICMP echo, one NIC over link with addr on it, a route
// for addr's subnet and, when gw is valid, a default route through it.
func NewStack(link stack.LinkEndpoint, addr netip.Prefix, gw netip.Addr) (*stack.Stack, error) {
	if !addr.Addr().Is4() {
		return nil, fmt.Errorf("netstack: address %v is not IPv4", addr)
	}
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4},
		// Traffic to the stack's own address stays inside it, as a kernel's
		// does: applications of one Joyride service reach each other, and jrapp
		// can see through Joyride when the program it started listens.
		HandleLocal: true,
	})
	sack := tcpip.TCPSACKEnabled(true)
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack)
	if err := s.CreateNIC(NICID, link); err != nil {
		s.Close()
		return nil, fmt.Errorf("netstack: create NIC: %s", err)
	}
	pa := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: tcpip.AddressWithPrefix{
		Address: tcpip.AddrFrom4(addr.Addr().As4()), PrefixLen: addr.Bits()}}
	if err := s.AddProtocolAddress(NICID, pa, stack.AddressProperties{}); err != nil {
		s.Close()
		return nil, fmt.Errorf("netstack: add address %v: %s", addr, err)
	}
	routes := []tcpip.Route{{Destination: pa.AddressWithPrefix.Subnet(), NIC: NICID}}
	if gw.Is4() {
		any4, _ := tcpip.NewSubnet(tcpip.AddrFrom4([4]byte{}), tcpip.MaskFrom("\x00\x00\x00\x00"))
		routes = append(routes, tcpip.Route{Destination: any4, Gateway: tcpip.AddrFrom4(gw.As4()), NIC: NICID})
	}
	s.SetRouteTable(routes)
	return s, nil
}
