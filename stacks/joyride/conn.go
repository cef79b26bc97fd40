package joyride

import (
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/joyride-bench/joyride/stacks/joyride/proto"
)

// Conn is a connection through Joyride: a TCP connection (from Dial or
// Accept) or a connected UDP socket (from Dial). It behaves like a
// *net.TCPConn or *net.UDPConn: Read and Write may run concurrently from
// different goroutines, deadlines fail with os.ErrDeadlineExceeded, Read
// returns io.EOF after the peer's orderly close, and Close unblocks everything
// with net.ErrClosed.
type Conn struct {
	k       *sock
	network string // "tcp" or "udp"
	laddr   net.Addr
	raddr   net.Addr
}

var _ net.Conn = (*Conn)(nil)

// Dial implements stacks.Stack: network is tcp, tcp4, udp or udp4; an empty
// host in addr is 0.0.0.0. A refused connection fails with an error for
// which errors.Is(err, syscall.ECONNREFUSED) holds.
func (s *Stack) Dial(network, addr string) (net.Conn, error) {
	svcNet, err := serviceNetwork("dial", network, addr, "tcp", "tcp4", "udp", "udp4")
	if err != nil {
		return nil, err
	}
	ap, err := resolve(svcNet, addr)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Addr: strAddr(addr), Err: err}
	}
	kind := kindStream
	if svcNet == "udp" {
		kind = kindDgram
	}
	raddr := netAddr(svcNet, ap)
	rep, k, err := s.create(&proto.Request{Op: "dial", Network: svcNet, Addr: ap.String()},
		kind, "dial", "connect", network, raddr)
	if err != nil {
		return nil, err
	}
	return &Conn{
		k:       k,
		network: svcNet,
		laddr:   netAddr(svcNet, parseAddr(rep.Local, netip.AddrPortFrom(netip.IPv4Unspecified(), 0))),
		raddr:   netAddr(svcNet, parseAddr(rep.Remote, ap)),
	}, nil
}

// opErr wraps err as the standard library does for a connection: errnos in an
// *os.SyscallError, everything but io.EOF in a *net.OpError.
func (c *Conn) opErr(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	if errno, ok := err.(syscall.Errno); ok {
		err = os.NewSyscallError(op, errno)
	}
	return &net.OpError{Op: op, Net: c.network, Source: c.laddr, Addr: c.raddr, Err: err}
}

// Read implements net.Conn. On a UDP connection it returns one datagram,
// truncated to len(b).
func (c *Conn) Read(b []byte) (int, error) {
	n, _, err := c.k.read(b)
	return n, c.opErr("read", err)
}

// Write implements net.Conn. On TCP it blocks while the socket's send window
// (proto.SendWindow bytes not yet taken by the service) is used up; on UDP b
// is one datagram.
func (c *Conn) Write(b []byte) (int, error) {
	var (
		n   int
		err error
	)
	if c.k.kind == kindStream {
		n, err = c.k.writeStream(b)
	} else {
		n, err = c.k.writeDgram(b, 0)
	}
	return n, c.opErr("write", err)
}

// Close implements net.Conn: it closes the socket at the service and fails
// blocked and later calls with net.ErrClosed. Closing twice returns an error
// wrapping net.ErrClosed, as with a *net.TCPConn.
func (c *Conn) Close() error {
	return c.opErr("close", c.k.close())
}

// CloseWrite shuts down the sending side of a TCP connection (the peer reads
// io.EOF); reading goes on.
func (c *Conn) CloseWrite() error {
	if c.network != "tcp" {
		return c.opErr("close", syscall.EOPNOTSUPP)
	}
	return c.opErr("close", c.k.shutWrite())
}

// SetNoDelay sets TCP_NODELAY at the service (setsockopt nodelay).
func (c *Conn) SetNoDelay(noDelay bool) error {
	v := 0
	if noDelay {
		v = 1
	}
	return c.opErr("set", c.k.setOpt("nodelay", v))
}

// SetReadBuffer sets the service-side receive buffer (setsockopt rcvbuf).
func (c *Conn) SetReadBuffer(bytes int) error {
	return c.opErr("set", c.k.setOpt("rcvbuf", bytes))
}

// SetWriteBuffer sets the service-side send buffer (setsockopt sndbuf).
func (c *Conn) SetWriteBuffer(bytes int) error {
	return c.opErr("set", c.k.setOpt("sndbuf", bytes))
}

// LocalAddr implements net.Conn: a *net.TCPAddr or *net.UDPAddr.
func (c *Conn) LocalAddr() net.Addr { return c.laddr }

// RemoteAddr implements net.Conn: a *net.TCPAddr or *net.UDPAddr.
func (c *Conn) RemoteAddr() net.Addr { return c.raddr }

// SetDeadline implements net.Conn.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.k.setReadDeadline(t); err != nil {
		return c.opErr("set", err)
	}
	return c.opErr("set", c.k.setWriteDeadline(t))
}

// SetReadDeadline implements net.Conn.
func (c *Conn) SetReadDeadline(t time.Time) error {
	return c.opErr("set", c.k.setReadDeadline(t))
}

// SetWriteDeadline implements net.Conn.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	return c.opErr("set", c.k.setWriteDeadline(t))
}
