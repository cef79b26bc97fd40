package joyride

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/joyride-bench/joyride/stacks/joyride/channel"
	"github.com/joyride-bench/joyride/stacks/joyride/proto"
	"golang.org/x/sys/unix"
)

// dispatch is the Stack's one consumer of the down ring: it routes every
// message to its socket by id and sleeps on the application's eventfd when the
// ring is empty. It also watches the control socket, so a service that dies
// fails the sockets instead of leaving readers blocked forever.
//
// It does not use End.Wait: that shares an eventfd scratch buffer with
// End.Notify, which writers call concurrently (under sendMu). The wait below
// is the same need-wakeup protocol on End's exported pieces.
func (s *Stack) dispatch() {
	defer close(s.dispDone)
	ctlFd := -1
	if rc, err := s.ctl.conn.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { ctlFd = int(fd) })
	}
	var (
		buf  = make([]byte, 0, s.maxMsg)
		gone bool // the service hung up: drain what it left, then fail
		got  int  // messages since the last Notify
	)
	for !s.stopping.Load() {
		d, p, err := s.end.Recv(buf)
		switch {
		case err == nil:
			if cap(p) > cap(buf) {
				buf = p[:0]
			}
			got++
			s.route(d, p)
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
		gone = s.sleep(ctlFd)
	}
}

// sleep blocks until the service notifies, the control socket hangs up, or
// idleWait passes; it returns true if the service hung up.
//
// The wait is a Read on the eventfd through Go's netpoller (s.wake), not a
// raw poll(2): a goroutine blocked in a system call keeps its P until the
// runtime's monitor takes it back (tens of µs to ms), and with GOMAXPROCS=1 —
// an application pinned to one core — every other goroutine, the one about to
// read the message included, would wait that long.
func (s *Stack) sleep(ctlFd int) (hungUp bool) {
	e := s.end
	e.SetNeedWakeup(true)
	if !e.Pending() {
		s.wake.SetReadDeadline(time.Now().Add(idleWait))
		var b [8]byte
		s.wake.Read(b[:])
	}
	e.SetNeedWakeup(false)
	if ctlFd < 0 {
		return false
	}
	pfd := [1]unix.PollFd{{Fd: int32(ctlFd), Events: unix.POLLRDHUP}}
	unix.Poll(pfd[:], 0)
	return pfd[0].Revents&(unix.POLLHUP|unix.POLLRDHUP|unix.POLLERR|unix.POLLNVAL) != 0
}

// maxOrphans bounds the messages set aside for ids not known yet.
const maxOrphans = 4096

// orphan is a message for a socket id not registered yet.
type orphan struct {
	d channel.Desc
	p []byte
}

// route hands one message to its socket.
func (s *Stack) route(d channel.Desc, p []byte) {
	s.ctr.MsgsIn.Add(1)
	s.ctr.BytesIn.Add(uint64(len(p)))
	var data []byte
	if len(p) > 0 {
		data = append([]byte(nil), p...) // p is the dispatcher's scratch
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.socks[d.Sock]
	switch {
	case k != nil:
		s.applyLocked(k, d, data)
	case s.creating > 0 && len(s.orphans) < maxOrphans:
		// Perhaps the socket a listen or dial in flight is making.
		s.orphans = append(s.orphans, orphan{d: d, p: data})
	default:
		// A socket the application closed (messages in flight when it did),
		// or one it never had.
		s.dropLocked(d)
	}
}

// dropLocked throws a message away; an accepted connection nobody will see is
// closed at the service.
func (s *Stack) dropLocked(d channel.Desc) {
	s.ctr.Dropped.Add(1)
	if d.Op == proto.OpAccept {
		go s.closeRemote(uint32(d.Arg))
	}
}

// applyLocked acts on one message for socket k (s.mu held).
func (s *Stack) applyLocked(k *sock, d channel.Desc, p []byte) {
	switch d.Op {
	case proto.OpData:
		if k.kind == kindListener {
			s.ctr.Dropped.Add(1)
			return
		}
		k.deliver(p, d.Arg)
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
