package joyride

import (
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/joyride-bench/joyride/stacks/joyride/proto"
)

// Listener is a TCP listener at the service; it behaves like a
// *net.TCPListener.
type Listener struct {
	k    *sock
	addr *net.TCPAddr
}

var _ net.Listener = (*Listener)(nil)

// listenBacklog is the backlog of every listener.
const listenBacklog = 128

// Listen implements stacks.Stack: network is tcp or tcp4; an empty host in
// addr (":9000") listens on every address (0.0.0.0). A port in use fails with
// an error for which errors.Is(err, syscall.EADDRINUSE) holds.
func (s *Stack) Listen(network, addr string) (net.Listener, error) {
	if _, err := serviceNetwork("listen", network, addr, "tcp", "tcp4"); err != nil {
		return nil, err
	}
	ap, err := resolve("tcp", addr)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Addr: strAddr(addr), Err: err}
	}
	rep, k, err := s.create(&proto.Request{Op: "listen", Network: "tcp", Addr: ap.String(), Backlog: listenBacklog},
		kindListener, "listen", "bind", network, tcpAddr(ap))
	if err != nil {
		return nil, err
	}
	return &Listener{k: k, addr: tcpAddr(parseAddr(rep.Local, ap))}, nil
}

func (l *Listener) opErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errno, ok := err.(syscall.Errno); ok {
		err = os.NewSyscallError(op, errno)
	}
	return &net.OpError{Op: op, Net: "tcp", Addr: l.addr, Err: err}
}

// Accept implements net.Listener: it waits for the next connection the
// service accepted.
func (l *Listener) Accept() (net.Conn, error) {
	k := l.k
	k.mu.Lock()
	defer k.mu.Unlock()
	for {
		switch {
		case k.closed:
			return nil, l.opErr("accept", net.ErrClosed)
		case k.rdl.Passed():
			return nil, l.opErr("accept", os.ErrDeadlineExceeded)
		case len(k.accepts) > 0:
			a := k.accepts[0]
			k.accepts[0] = accepted{}
			k.accepts = k.accepts[1:]
			// The service tells only the remote address; the local one is
			// the listener's (0.0.0.0 for a wildcard listener).
			return &Conn{
				k:       a.k,
				network: "tcp",
				laddr:   l.addr,
				raddr:   tcpAddr(parseAddr(a.remote, netip.AddrPortFrom(netip.IPv4Unspecified(), 0))),
			}, nil
		case k.err != nil:
			return nil, l.opErr("accept", k.err)
		}
		k.waitLocked(&k.rdl)
	}
}

// Close implements net.Listener: it stops listening at the service, closes the
// connections accepted but not yet returned by Accept, and unblocks Accept
// with net.ErrClosed.
func (l *Listener) Close() error { return l.opErr("close", l.k.close()) }

// Addr implements net.Listener: a *net.TCPAddr.
func (l *Listener) Addr() net.Addr { return l.addr }

// SetDeadline bounds Accept, as on a *net.TCPListener.
func (l *Listener) SetDeadline(t time.Time) error { return l.opErr("set", l.k.setReadDeadline(t)) }
