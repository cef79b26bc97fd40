package afxdp

import (
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/joyride-bench/joyride/internal/deadline"
	"github.com/joyride-bench/joyride/nic/netstack"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
)

// fastUDP is a UDP socket on the fast path below gVisor (netstack.FastPath),
// the same one joyrided uses: the poller hands it the datagrams of its port
// straight from the NIC buffer (copied into a recycled buffer and queued), and
// WriteTo builds the reply from a cached header template. gVisor still owns
// the port through gc, a gonet socket bound to it: what the fast path leaves
// to gVisor (fragments, a datagram with a bad checksum is dropped there) is
// read from gc by a goroutine into the same queue, and a write the fast path
// cannot make (the neighbour not resolved yet, too big for one frame) goes
// out through gc.
type fastUDP struct {
	gc   *gonet.UDPConn
	fp   *netstack.FastPath
	port uint16

	in      chan *datagram // received datagrams, oldest first
	bufs    sync.Pool      // *datagram
	dropped atomic.Uint64  // datagrams beyond the queue
	rdl     deadline.Deadline
	done    chan struct{}
	once    sync.Once
}

// datagram is one received datagram. Fast-path datagrams fit one frame;
// those read from gVisor may be larger (reassembled fragments), and then data
// is a buffer of their own.
type datagram struct {
	small [2048]byte
	data  []byte
	from  netip.AddrPort
}

// fastQueue is how many datagrams a socket keeps that the application has not
// read (the receive buffer, in datagrams); later ones are dropped.
const fastQueue = 1024

func newFastUDP(gc *gonet.UDPConn, fp *netstack.FastPath, port uint16) *fastUDP {
	c := &fastUDP{gc: gc, fp: fp, port: port, in: make(chan *datagram, fastQueue), done: make(chan struct{})}
	c.bufs.New = func() any { return new(datagram) }
	c.rdl.Init()
	fp.Register(port, c.fromFastPath)
	go c.fromGVisor()
	return c
}

// fromFastPath is the FastPath handler: in the poller's goroutine, inside
// its Poll, payload valid only during the call.
func (c *fastUDP) fromFastPath(src netip.AddrPort, payload []byte) {
	d := c.bufs.Get().(*datagram)
	d.data = d.small[:copy(d.small[:], payload)]
	d.from = src
	c.queue(d)
}

func (c *fastUDP) queue(d *datagram) {
	select {
	case c.in <- d:
	default:
		c.dropped.Add(1)
		c.recycle(d)
	}
}

func (c *fastUDP) recycle(d *datagram) {
	d.data = nil
	c.bufs.Put(d)
}

// fromGVisor moves what gVisor delivers on the port into the queue, until
// the socket closes.
func (c *fastUDP) fromGVisor() {
	buf := make([]byte, 64<<10)
	for {
		n, from, err := c.gc.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		d := c.bufs.Get().(*datagram)
		if n <= len(d.small) {
			d.data = d.small[:copy(d.small[:], buf[:n])]
		} else {
			d.data = append([]byte(nil), buf[:n]...)
		}
		if ua, ok := from.(*net.UDPAddr); ok {
			d.from = ua.AddrPort()
		}
		c.queue(d)
	}
}

// ReadFrom implements net.PacketConn: one datagram, truncated to len(b).
func (c *fastUDP) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case d := <-c.in:
		n, from := copy(b, d.data), d.from
		c.recycle(d)
		return n, net.UDPAddrFromAddrPort(from), nil
	case <-c.rdl.Wait():
		return 0, nil, c.opErr("read", os.ErrDeadlineExceeded)
	case <-c.done:
		return 0, nil, c.opErr("read", net.ErrClosed)
	}
}

// WriteTo implements net.PacketConn.
func (c *fastUDP) WriteTo(b []byte, addr net.Addr) (int, error) {
	select {
	case <-c.done:
		return 0, c.opErr("write", net.ErrClosed)
	default:
	}
	if ua, ok := addr.(*net.UDPAddr); ok {
		if dst := ua.AddrPort(); dst.Addr().Is4In6() || dst.Addr().Is4() {
			dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
			if c.fp.WriteUDP(c.port, dst, b) {
				return len(b), nil
			}
		}
	}
	return c.gc.WriteTo(b, addr)
}

func (c *fastUDP) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: "udp", Source: c.gc.LocalAddr(), Err: err}
}

// Close implements net.PacketConn: the port leaves the fast path, then
// gVisor's socket closes (which ends fromGVisor).
func (c *fastUDP) Close() error {
	err := net.ErrClosed
	c.once.Do(func() {
		c.fp.Unregister(c.port)
		close(c.done)
		c.rdl.Stop()
		err = c.gc.Close()
	})
	return err
}

func (c *fastUDP) LocalAddr() net.Addr { return c.gc.LocalAddr() }

func (c *fastUDP) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.gc.SetWriteDeadline(t)
}

func (c *fastUDP) SetReadDeadline(t time.Time) error {
	c.rdl.Set(t)
	return nil
}

func (c *fastUDP) SetWriteDeadline(t time.Time) error { return c.gc.SetWriteDeadline(t) }
