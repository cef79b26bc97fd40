package joyride

import (
	"github.com/joyride-bench/joyride/internal/deadline"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/joyride-bench/joyride/stacks/joyride/proto"
)

type sockKind uint8

const (
	kindStream   sockKind = iota // TCP connection
	kindDgram                    // UDP socket, connected or not
	kindListener                 // TCP listener
)

// maxDgramQueue bounds the memory of datagrams queued on a UDP socket that
// the application does not read (the capacity of their buffers, as a kernel
// counts an skb's true size against the receive buffer): beyond it datagrams
// are dropped. Stream data is never dropped.
const maxDgramQueue = 4 << 20

// msg is one received message: stream bytes or a datagram and its source.
// buf is a recvBufs buffer, handed back once read has copied it out.
type msg struct {
	buf  *[]byte
	data []byte // (*buf)[:len]
	arg  uint64
}

// accepted is a connection a listener accepted and Accept has not returned yet.
type accepted struct {
	k      *sock
	remote string
}

// sock is the application-side state of one service socket, shared by the
// dispatcher (which fills it) and the Conn, PacketConn or Listener (which
// drains it). Everything below mu is guarded by it.
type sock struct {
	st   *Stack
	id   uint32
	kind sockKind

	rdl, wdl deadline.Deadline
	// wmu is held exclusively by a stream Write (so the messages of two
	// Writes do not interleave) and shared by a datagram write; Close and
	// CloseWrite take it after marking the socket, so every message of a
	// write is on the up ring before the control request that ends it.
	wmu sync.RWMutex

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on a state change while waiters > 0
	waiters int
	q       []msg // received messages, oldest first from q[qhead]
	qhead   int   // first unread message of q; q is reset when all are read
	off     int   // stream: bytes of q[qhead] already read
	qbytes  int   // stream: bytes of the queued messages; datagrams: their buffers' capacity
	accepts []accepted
	eof     bool  // the peer finished sending (OpEOF)
	err     error // the socket failed (OpError, or the data plane died)
	closed  bool  // Close was called, or the Stack closed
	wshut   bool  // CloseWrite was called
	window  int   // stream: bytes that may still be sent before an OpSent
}

func newSock(st *Stack, id uint32, kind sockKind) *sock {
	k := &sock{st: st, id: id, kind: kind, changed: make(chan struct{}), window: st.sendWin}
	k.rdl.Init()
	k.wdl.Init()
	return k
}

// signalLocked wakes every goroutine waiting on k.
func (k *sock) signalLocked() {
	if k.waiters > 0 {
		close(k.changed)
		k.changed = make(chan struct{})
		k.waiters = 0
	}
}

// waitLocked releases k.mu until k changes or dl passes, then takes it again.
func (k *sock) waitLocked(dl *deadline.Deadline) {
	k.waiters++
	ch := k.changed
	k.mu.Unlock()
	select {
	case <-ch:
	case <-dl.Wait():
	}
	k.mu.Lock()
}

// deliver queues a received message (dispatcher); k takes buf over.
func (k *sock) deliver(buf *[]byte, n int, arg uint64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	size := n
	if k.kind == kindDgram {
		size = cap(*buf)
	}
	if k.closed || (k.kind == kindDgram && k.qbytes+size > maxDgramQueue) {
		k.st.ctr.Dropped.Add(1)
		k.st.bufs.put(buf)
		return
	}
	k.q = append(k.q, msg{buf: buf, data: (*buf)[:n], arg: arg})
	k.qbytes += size
	k.signalLocked()
}

// accept queues an accepted connection (dispatcher); false if the listener is
// closed.
func (k *sock) accept(c *sock, remote string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed || k.err != nil {
		return false
	}
	k.accepts = append(k.accepts, accepted{k: c, remote: remote})
	k.signalLocked()
	return true
}

// setEOF records the peer's orderly close (dispatcher).
func (k *sock) setEOF() {
	k.mu.Lock()
	k.eof = true
	k.signalLocked()
	k.mu.Unlock()
}

// setErr records a failure; the first one sticks.
func (k *sock) setErr(err error) {
	k.mu.Lock()
	if k.err == nil {
		k.err = err
	}
	k.signalLocked()
	k.mu.Unlock()
}

// ack returns n bytes of send window (dispatcher, on OpSent).
func (k *sock) ack(n uint64) {
	k.mu.Lock()
	if n > uint64(k.st.sendWin) {
		n = uint64(k.st.sendWin)
	}
	k.window += int(n)
	if k.window > k.st.sendWin {
		k.window = k.st.sendWin
	}
	k.signalLocked()
	k.mu.Unlock()
}

// shut marks k closed and wakes its waiters; it returns false if k was closed
// already, and the connections a listener had accepted but not returned.
func (k *sock) shut(pending *[]accepted) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return false
	}
	k.closed = true
	for _, m := range k.q[k.qhead:] {
		k.st.bufs.put(m.buf)
	}
	k.q, k.qhead, k.qbytes, k.off = nil, 0, 0, 0
	if pending != nil {
		*pending = k.accepts
	}
	k.accepts = nil
	k.signalLocked()
	k.rdl.Stop()
	k.wdl.Stop()
	return true
}

// sendable says why nothing more can be sent on k, if so.
func (k *sock) sendable() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.sendableLocked()
}

// close closes k here and at the service; the second call fails with
// net.ErrClosed, as closing a net.TCPConn twice does.
func (k *sock) close() error {
	var pending []accepted
	if !k.shut(&pending) {
		return net.ErrClosed
	}
	k.wmu.Lock() // let a write in progress finish putting its messages on the ring
	k.wmu.Unlock()
	k.st.remove(k.id)
	for _, a := range pending {
		a.k.shut(nil)
		k.st.remove(a.k.id)
		k.st.closeRemote(a.k.id)
	}
	if k.st.usable() != nil {
		return nil // the service forgets the socket with the application
	}
	return k.st.closeRemote(k.id)
}

func (k *sock) setReadDeadline(t time.Time) error {
	if k.isClosed() {
		return net.ErrClosed
	}
	k.rdl.Set(t)
	return nil
}

func (k *sock) setWriteDeadline(t time.Time) error {
	if k.isClosed() {
		return net.ErrClosed
	}
	k.wdl.Set(t)
	return nil
}

func (k *sock) isClosed() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.closed
}

// read takes received data: for a stream as many bytes as are queued, up to
// len(b); for a datagram socket one datagram, truncated to len(b), and its
// source (the message's Arg). It returns io.EOF only for a stream, after the
// data queued before OpEOF.
func (k *sock) read(b []byte) (n int, from uint64, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for {
		switch {
		case k.closed:
			return 0, 0, net.ErrClosed
		case k.rdl.Passed():
			return 0, 0, os.ErrDeadlineExceeded
		}
		if k.qhead < len(k.q) {
			if k.kind == kindDgram {
				m := &k.q[k.qhead]
				n, from = copy(b, m.data), m.arg
				k.pop()
				return n, from, nil
			}
			if len(b) == 0 {
				return 0, 0, nil
			}
			for n < len(b) && k.qhead < len(k.q) {
				m := &k.q[k.qhead]
				c := copy(b[n:], m.data[k.off:])
				n += c
				k.off += c
				if k.off == len(m.data) {
					k.pop()
				}
			}
			if n > 0 {
				return n, 0, nil
			}
			continue // only empty messages were queued
		}
		switch {
		case k.err != nil:
			return 0, 0, k.err
		case k.eof && k.kind == kindStream:
			return 0, 0, io.EOF
		case len(b) == 0 && k.kind == kindStream:
			return 0, 0, nil
		}
		k.waitLocked(&k.rdl)
	}
}

// pop drops the first unread message and gives its buffer back. The queue's
// slice is reused from its start once it is empty, so a socket read as fast
// as it receives never grows it.
func (k *sock) pop() {
	m := &k.q[k.qhead]
	if k.kind == kindDgram {
		k.qbytes -= cap(*m.buf)
	} else {
		k.qbytes -= len(m.data)
	}
	k.st.bufs.put(m.buf)
	*m = msg{}
	k.qhead++
	k.off = 0
	if k.qhead == len(k.q) {
		k.q, k.qhead = k.q[:0], 0
	}
}

// writeStream sends b as messages of at most maxMsg bytes, each within the
// send window, blocking while the window is closed. It returns how many bytes
// the service was handed.
func (k *sock) writeStream(b []byte) (int, error) {
	k.wmu.Lock()
	defer k.wmu.Unlock()
	n := 0
	for {
		k.mu.Lock()
		for {
			if err := k.sendableLocked(); err != nil {
				k.mu.Unlock()
				return n, err
			}
			if k.wdl.Passed() {
				k.mu.Unlock()
				return n, os.ErrDeadlineExceeded
			}
			if n == len(b) {
				k.mu.Unlock()
				return n, nil
			}
			if k.window > 0 {
				break
			}
			k.waitLocked(&k.wdl)
		}
		m := min(len(b)-n, k.window, k.st.maxMsg)
		k.window -= m
		k.mu.Unlock()
		if err := k.st.send(k, &k.wdl, proto.OpSend, 0, b[n:n+m]); err != nil {
			k.ack(uint64(m)) // not sent: the window is ours again
			return n, err
		}
		n += m
	}
}

// writeDgram sends b as one datagram to dest (0: the connected peer).
func (k *sock) writeDgram(b []byte, dest uint64) (int, error) {
	k.wmu.RLock()
	defer k.wmu.RUnlock()
	if err := k.sendable(); err != nil {
		return 0, err
	}
	if k.wdl.Passed() {
		return 0, os.ErrDeadlineExceeded
	}
	if len(b) > k.st.maxMsg {
		return 0, syscall.EMSGSIZE
	}
	if err := k.st.send(k, &k.wdl, proto.OpSend, dest, b); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (k *sock) sendableLocked() error {
	switch {
	case k.closed:
		return net.ErrClosed
	case k.err != nil:
		return k.err
	case k.wshut:
		return syscall.EPIPE
	}
	return nil
}

// shutWrite ends the sending side: CloseWrite.
func (k *sock) shutWrite() error {
	k.mu.Lock()
	if err := k.sendableLocked(); err != nil {
		k.mu.Unlock()
		if err == syscall.EPIPE {
			return nil // twice is fine, as with shutdown(2)
		}
		return err
	}
	k.wshut = true
	k.signalLocked()
	k.mu.Unlock()
	k.wmu.Lock() // let a Write in progress finish putting its messages on the ring
	k.wmu.Unlock()
	_, err := k.st.request(&proto.Request{Op: "shutdown", Sock: k.id, How: "write"}, "", "shutdown", "", nil)
	return unwrapOp(err)
}

// setOpt sets a socket option at the service.
func (k *sock) setOpt(opt string, value int) error {
	if k.isClosed() {
		return net.ErrClosed
	}
	_, err := k.st.request(&proto.Request{Op: "setsockopt", Sock: k.id, Opt: opt, Value: value}, "", "setsockopt", "", nil)
	return unwrapOp(err)
}

// unwrapOp takes the inner error out of Stack.request's *net.OpError, for
// callers that build their own.
func unwrapOp(err error) error {
	if oe, ok := err.(*net.OpError); ok {
		return oe.Err
	}
	return err
}
