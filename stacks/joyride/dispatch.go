package joyride

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/joyride-bench/joyride/stacks/joyride/channel"
	"github.com/joyride-bench/joyride/stacks/joyride/proto"
	"golang.org/x/sys/unix"
)

// dispatch is the Stack's one consumer of the down ring: it routes every
// message to its socket by id and sleeps in Go's netpoller (channel.Sleeper)
// when the ring is empty, while writers Notify through the same End under
// sendMu. It also watches the control socket, so a service that dies fails
// the sockets instead of leaving readers blocked forever.
func (s *Stack) dispatch() {
	defer close(s.dispDone)
	ctlFd := -1
	if rc, err := s.ctl.conn.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { ctlFd = int(fd) })
	}
	// scratch receives every payload; see route for why it is a pool buffer.
	scratch := s.bufs.large.Get().(*[]byte)
	var (
		gone bool // the service hung up: drain what it left, then fail
		got  int  // messages since the last Notify
	)
	for !s.stopping.Load() {
		d, p, err := s.end.Recv((*scratch)[:0])
		switch {
		case err == nil:
			if cap(p) > cap(*scratch) { // cannot happen (Recv bounds a message by maxMsg); kept safe
				*scratch = p[:cap(p)]
			}
			got++
			scratch = s.route(d, scratch, len(p))
			continue
		case errors.Is(err, channel.ErrEmpty):
		default: // ErrCorrupt: nothing in the region can be trusted any more
			s.fail(fmt.Errorf("%w: %v", ErrRegionCorrupt, err))
			return
		}
		if got > 0 {
			// The service may be waiting for the buffers Recv gave back.
			s.sendMu.Lock()
			if !s.regionClosed {
				s.end.Notify()
			}
			s.sendMu.Unlock()
			got = 0
		}
		if gone {
			s.fail(ErrServiceGone)
			return
		}
		if err := s.sleeper.Sleep(idleWait); err != nil {
			// Nothing for idleWait/2 or more (or the wait failed): only now
			// look at the control socket. A service that dies stops the down
			// ring, so a hang-up is seen within idleWait, without a poll(2) on
			// every wake-up.
			gone = hungUp(ctlFd)
		}
	}
}

// hungUp says whether the control socket has hung up (the service is gone).
func hungUp(ctlFd int) bool {
	if ctlFd < 0 {
		return false
	}
	pfd := [1]unix.PollFd{{Fd: int32(ctlFd), Events: unix.POLLRDHUP}}
	unix.Poll(pfd[:], 0)
	return pfd[0].Revents&(unix.POLLHUP|unix.POLLRDHUP|unix.POLLERR|unix.POLLNVAL) != 0
}

// maxOrphans bounds the messages set aside for ids not known yet.
const maxOrphans = 4096

// orphan is a message for a socket id not registered yet: its payload, n
// bytes of buf (nil for none).
type orphan struct {
	d   channel.Desc
	buf *[]byte
	n   int
}

// route hands one message, n bytes of payload in scratch, to its socket, and
// returns the scratch buffer to receive the next one into. A payload of more
// than smallRecvBuf bytes is not copied again: scratch itself (a large pool
// buffer) goes to the socket and a fresh one becomes the scratch. A small
// one is copied into a small buffer, so that queued small datagrams do not
// each hold maxMsg bytes.
func (s *Stack) route(d channel.Desc, scratch *[]byte, n int) *[]byte {
	s.ctr.MsgsIn.Add(1)
	s.ctr.BytesIn.Add(uint64(n))
	var buf *[]byte
	switch {
	case n > smallRecvBuf:
		buf, scratch = scratch, s.bufs.large.Get().(*[]byte)
	case n > 0:
		buf = s.bufs.get(n)
		copy(*buf, (*scratch)[:n])
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.socks[d.Sock]
	switch {
	case k != nil:
		s.applyLocked(k, d, buf, n)
	case s.creating > 0 && len(s.orphans) < maxOrphans:
		// Perhaps the socket a listen or dial in flight is making.
		s.orphans = append(s.orphans, orphan{d: d, buf: buf, n: n})
	default:
		// A socket the application closed (messages in flight when it did),
		// or one it never had.
		s.bufs.put(buf)
		s.dropLocked(d)
	}
	return scratch
}

// dropLocked throws a message away; an accepted connection nobody will see is
// closed at the service.
func (s *Stack) dropLocked(d channel.Desc) {
	s.ctr.Dropped.Add(1)
	if d.Op == proto.OpAccept {
		go s.closeRemote(uint32(d.Arg))
	}
}

// applyLocked acts on one message for socket k (s.mu held), its payload n
// bytes of buf (a recvBufs buffer or nil), which it takes over.
func (s *Stack) applyLocked(k *sock, d channel.Desc, buf *[]byte, n int) {
	if d.Op == proto.OpData && k.kind != kindListener {
		if n == 0 && k.kind == kindStream {
			return // an empty stream message carries nothing to read
		}
		if buf == nil {
			buf = s.bufs.get(0) // an empty datagram is still a datagram
		}
		k.deliver(buf, n, d.Arg)
		return
	}
	var p []byte
	if buf != nil {
		p = (*buf)[:n]
		defer s.bufs.put(buf)
	}
	switch d.Op {
	case proto.OpData: // for a listener
		s.ctr.Dropped.Add(1)
	case proto.OpAccept:
		id := uint32(d.Arg)
		if k.kind != kindListener || s.closed || s.socks[id] != nil {
			s.dropLocked(d)
			return
		}
		// Register the new connection now: its data may follow at once,
		// before the application calls Accept.
		c := newSock(s, id, kindStream)
		s.socks[id] = c
		if !k.accept(c, string(p)) {
			delete(s.socks, id)
			s.dropLocked(d)
		}
	case proto.OpEOF:
		k.setEOF()
	case proto.OpError:
		errno := syscall.Errno(d.Arg)
		if errno == 0 {
			errno = syscall.EIO
		}
		k.setErr(errno)
	case proto.OpSent:
		if k.kind == kindStream {
			k.ack(d.Arg)
		}
	default:
		s.ctr.Dropped.Add(1)
	}
}
