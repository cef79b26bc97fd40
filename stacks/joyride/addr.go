package joyride

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/joyride-bench/joyride/stacks/joyride/proto"
)

// serviceNetwork maps a network name to the service's ("tcp" or "udp"); the
// error is the *net.OpError of an unsupported network.
func serviceNetwork(op, network, addr string, allowed ...string) (string, error) {
	for _, a := range allowed {
		if network == a {
			return network[:3], nil
		}
	}
	return "", &net.OpError{Op: op, Net: network, Addr: strAddr(addr),
		Err: fmt.Errorf("%w (joyride supports %v here; IPv4 only)", net.UnknownNetworkError(network), allowed)}
}

// strAddr is an address known only as text, for error messages.
type strAddr string

func (a strAddr) Network() string { return "" }
func (a strAddr) String() string  { return string(a) }

// resolveTimeout bounds a DNS lookup of a host name in an address.
const resolveTimeout = 10 * time.Second

// resolve turns "host:port" into an IPv4 address and port. An empty host is
// 0.0.0.0; a host name is looked up (IPv4 only); the port may be a service name.
func resolve(network, addr string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return netip.AddrPort{}, err
	}
	pn, err := net.LookupPort(network, port)
	if err != nil {
		return netip.AddrPort{}, err
	}
	var ip netip.Addr
	switch {
	case host == "":
		ip = netip.IPv4Unspecified()
	default:
		if ip, err = netip.ParseAddr(host); err != nil {
			ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
			defer cancel()
			ips, lerr := net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
			if lerr != nil {
				return netip.AddrPort{}, lerr
			}
			if len(ips) == 0 {
				return netip.AddrPort{}, &net.DNSError{Err: "no IPv4 address", Name: host, IsNotFound: true}
			}
			ip = ips[0]
		}
	}
	ip = ip.Unmap()
	if !ip.Is4() {
		return netip.AddrPort{}, errors.New("joyride: " + host + " is not an IPv4 address (Joyride speaks IPv4 only)")
	}
	return netip.AddrPortFrom(ip, uint16(pn)), nil
}

// parseAddr reads an "ip:port" the service sent; fallback when it is absent
// or malformed.
func parseAddr(s string, fallback netip.AddrPort) netip.AddrPort {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return fallback
}

func tcpAddr(ap netip.AddrPort) *net.TCPAddr { return net.TCPAddrFromAddrPort(ap) }
func udpAddr(ap netip.AddrPort) *net.UDPAddr { return net.UDPAddrFromAddrPort(ap) }

// netAddr is ap as the *net.TCPAddr or *net.UDPAddr of network ("tcp", "udp").
func netAddr(network string, ap netip.AddrPort) net.Addr {
	if network == "udp" {
		return udpAddr(ap)
	}
	return tcpAddr(ap)
}

// udpDest is the destination of a WriteTo, packed for the descriptor.
func udpDest(addr net.Addr) (uint64, error) {
	var ap netip.AddrPort
	switch a := addr.(type) {
	case *net.UDPAddr:
		if a == nil {
			return 0, errors.New("joyride: nil destination address")
		}
		ap = a.AddrPort()
	case nil:
		return 0, errors.New("joyride: nil destination address")
	default:
		var err error
		if ap, err = netip.ParseAddrPort(addr.String()); err != nil {
			return 0, fmt.Errorf("joyride: destination %v is not ip:port: %w", addr, err)
		}
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	if !ap.Addr().Is4() {
		return 0, fmt.Errorf("joyride: destination %v is not IPv4", addr)
	}
	if ap.Port() == 0 {
		return 0, fmt.Errorf("joyride: destination %v has port 0", addr)
	}
	return proto.PackAddr(ap), nil
}
