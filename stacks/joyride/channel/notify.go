package channel

import (
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Notify wakes the peer if it sleeps (its need-wakeup flag is set): call it
// after a batch of Sends, and after a batch of Recvs if the peer may be waiting
// for buffers. When the peer is awake it costs one atomic load and no system
// call.
func (e *End) Notify() error {
	if atomic.LoadUint32(e.peerWake) == 0 {
		return nil
	}
	// Clear the flag so that further Notifys before the peer wakes make no
	// system call; the peer clears it again when it wakes anyway.
	if atomic.SwapUint32(e.peerWake, 0) == 0 {
		return nil
	}
	e.notifyBuf = [8]byte{1} // 1, little-endian uint64
	for {
		_, err := unix.Write(e.peerFd, e.notifyBuf[:])
		switch err {
		case nil, unix.EAGAIN: // EAGAIN: the counter is saturated, the peer is readable anyway
			return nil
		case unix.EINTR:
			continue
		default:
			return fmt.Errorf("channel: notify %s: write eventfd: %w", e.peer, err)
		}
	}
}

// Wait blocks until there is something to Recv, the peer notifies, or the
// timeout passes (a negative timeout waits forever). It returns nil when there
// may be something to do (wakeups can be spurious: callers loop) and
// ErrTimeout on timeout. It is PrepareSleep, then poll(2) on WaitFd, then
// FinishSleep and Drain. It blocks its thread in a system call: a goroutine
// that shares its P with others sleeps better in a Sleeper.
func (e *End) Wait(timeout time.Duration) error {
	if !e.PrepareSleep() {
		return nil
	}
	err := e.poll(timeout)
	e.FinishSleep()
	e.Drain()
	return err
}

// PrepareSleep is the first half of the need-wakeup protocol: it sets this
// side's need-wakeup flag, then checks the ring once more, since a message
// published before the flag was visible comes with no Notify. It reports
// whether to sleep: false when a message is there (the flag is cleared
// again). After a sleep, call FinishSleep. A caller that sleeps in its own
// way (epoll over many regions, Go's netpoller) must sleep on WaitFd and
// must not lose a write made between PrepareSleep and its sleep.
func (e *End) PrepareSleep() bool {
	if e.Pending() {
		return false
	}
	e.SetNeedWakeup(true)
	if e.Pending() {
		e.SetNeedWakeup(false)
		return false
	}
	return true
}

// FinishSleep clears the need-wakeup flag after a sleep: the peer need not
// write the eventfd while this side is awake and polling its ring.
func (e *End) FinishSleep() { e.SetNeedWakeup(false) }

func (e *End) poll(timeout time.Duration) error {
	var deadline time.Time
	if timeout >= 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		ms := -1
		if timeout >= 0 {
			left := time.Until(deadline)
			if left < 0 {
				left = 0
			}
			ms = int((left + time.Millisecond - 1) / time.Millisecond)
		}
		e.pfd[0] = unix.PollFd{Fd: int32(e.waitFd), Events: unix.POLLIN}
		n, err := unix.Poll(e.pfd[:], ms)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return fmt.Errorf("channel: wait: poll eventfd: %w", err)
		case n > 0:
			if e.pfd[0].Revents&(unix.POLLERR|unix.POLLNVAL) != 0 {
				return fmt.Errorf("channel: wait: eventfd %d: revents %#x", e.waitFd, e.pfd[0].Revents)
			}
			return nil
		case timeout >= 0 && !time.Now().Before(deadline):
			return ErrTimeout
		}
	}
}

// WaitFd is the eventfd this side sleeps on, for callers that wait on many
// regions with epoll or ppoll: PrepareSleep, the wait, then FinishSleep and
// Drain.
func (e *End) WaitFd() int { return e.waitFd }

// SetNeedWakeup sets or clears this side's need-wakeup flag: while it is set,
// the peer's Notify writes WaitFd.
func (e *End) SetNeedWakeup(on bool) {
	v := uint32(0)
	if on {
		v = 1
	}
	atomic.StoreUint32(e.ownWake, v)
}

// Drain resets this side's eventfd (non-blocking).
func (e *End) Drain() {
	for {
		_, err := unix.Read(e.waitFd, e.drainBuf[:])
		if err != unix.EINTR {
			return
		}
	}
}
