package joyride

import (
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/joyride-bench/joyride/stacks/joyride/proto"
)

// PacketConn is an unconnected UDP socket at the service; it behaves like a
// *net.UDPConn from net.ListenPacket.
type PacketConn struct {
	k     *sock
	laddr *net.UDPAddr
}

var _ net.PacketConn = (*PacketConn)(nil)

// ListenPacket implements stacks.Stack: network is udp or udp4; an empty host
// in addr (":9000") binds every address (0.0.0.0).
func (s *Stack) ListenPacket(network, addr string) (net.PacketConn, error) {
	if _, err := serviceNetwork("listen", network, addr, "udp", "udp4"); err != nil {
		return nil, err
	}
	ap, err := resolve("udp", addr)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Addr: strAddr(addr), Err: err}
	}
	rep, k, err := s.create(&proto.Request{Op: "listen", Network: "udp", Addr: ap.String()},
		kindDgram, "listen", "bind", network, udpAddr(ap))
	if err != nil {
		return nil, err
	}
	return &PacketConn{k: k, laddr: udpAddr(parseAddr(rep.Local, ap))}, nil
}

func (c *PacketConn) opErr(op string, addr net.Addr, err error) error {
	if err == nil {
		return nil
	}
	if errno, ok := err.(syscall.Errno); ok {
		sc := op
		switch op {
		case "read":
			sc = "recvfrom"
		case "write":
			sc = "sendto"
		}
		err = os.NewSyscallError(sc, errno)
	}
	return &net.OpError{Op: op, Net: "udp", Source: c.laddr, Addr: addr, Err: err}
}

// ReadFrom implements net.PacketConn: one datagram, truncated to len(p) as a
// UDP socket truncates, and its source (a *net.UDPAddr).
func (c *PacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, arg, err := c.k.read(p)
	if err != nil {
		return 0, nil, c.opErr("read", nil, err)
	}
	if ap, ok := proto.UnpackAddr(arg); ok {
		return n, udpAddr(ap), nil
	}
	return n, nil, nil
}

// ReadFromUDPAddrPort is ReadFrom returning a netip.AddrPort (no allocation
// for the address), as on a *net.UDPConn.
func (c *PacketConn) ReadFromUDPAddrPort(p []byte) (int, netip.AddrPort, error) {
	n, arg, err := c.k.read(p)
	if err != nil {
		return 0, netip.AddrPort{}, c.opErr("read", nil, err)
	}
	ap, _ := proto.UnpackAddr(arg)
	return n, ap, nil
}

// WriteTo implements net.PacketConn: p is one datagram to addr (a
// *net.UDPAddr, or any net.Addr whose String is ip:port), IPv4 only.
func (c *PacketConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	dest, err := udpDest(addr)
	if err != nil {
		return 0, c.opErr("write", addr, err)
	}
	n, err := c.k.writeDgram(p, dest)
	return n, c.opErr("write", addr, err)
}

// Close implements net.PacketConn.
func (c *PacketConn) Close() error { return c.opErr("close", nil, c.k.close()) }

// LocalAddr implements net.PacketConn: a *net.UDPAddr.
func (c *PacketConn) LocalAddr() net.Addr { return c.laddr }

// SetDeadline implements net.PacketConn.
func (c *PacketConn) SetDeadline(t time.Time) error {
	if err := c.k.setReadDeadline(t); err != nil {
		return c.opErr("set", nil, err)
	}
	return c.opErr("set", nil, c.k.setWriteDeadline(t))
}

// SetReadDeadline implements net.PacketConn.
func (c *PacketConn) SetReadDeadline(t time.Time) error {
	return c.opErr("set", nil, c.k.setReadDeadline(t))
}

// SetWriteDeadline implements net.PacketConn.
func (c *PacketConn) SetWriteDeadline(t time.Time) error {
	return c.opErr("set", nil, c.k.setWriteDeadline(t))
}
