package channel

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Sleeper is an End's wait in Go's netpoller instead of poll(2), for a Go
// program's receiving goroutine. A goroutine blocked in a system call keeps
// its P until the runtime's monitor takes it back (tens of µs to ms); with
// GOMAXPROCS=1, an application pinned to one core, the goroutine that would
// handle the message waits that long. Parked in the netpoller, the sleeper
// holds nothing, and a wake-up costs one read(2).
//
// It sleeps on a non-blocking descriptor of its own for the End's eventfd
// (closing it leaves the region's open) and has its own scratch, so it may
// sleep while another goroutine Notifies through the same End.
type Sleeper struct {
	e        *End
	f        *os.File
	rc       syscall.RawConn
	deadline time.Time // the deadline set on f
	tried    bool      // ready has been called once in this Sleep
	buf      [8]byte
	readyFn  func(fd uintptr) bool // ready, bound once (a method value per Sleep would allocate)
	// beforePark, when set (tests), runs between PrepareSleep and the park.
	beforePark func()
}

// NewSleeper returns a Sleeper for e's receiving half.
func (e *End) NewSleeper() (*Sleeper, error) {
	fd, err := unix.Dup(e.waitFd)
	if err == nil {
		if err = unix.SetNonblock(fd, true); err != nil {
			unix.Close(fd)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("channel: sleeper: eventfd: %w", err)
	}
	// Non-blocking, so os.NewFile registers it with the netpoller.
	s := &Sleeper{e: e, f: os.NewFile(uintptr(fd), "channel-"+e.side+"-wake")}
	if s.rc, err = s.f.SyscallConn(); err != nil {
		s.f.Close()
		return nil, fmt.Errorf("channel: sleeper: %w", err)
	}
	s.readyFn = s.ready
	return s, nil
}

// Sleep blocks until there is something to Recv, the peer notifies, Wake is
// called, or the sleep has lasted from max/2 to max: the deadline is moved
// only when half of it is used up, not before every sleep, which saves a
// timer update per wake-up. It returns nil when there may be something to do
// (wakeups can be spurious: callers loop), ErrTimeout when the deadline
// passed, or the error that ended the wait.
func (s *Sleeper) Sleep(max time.Duration) error {
	e := s.e
	if !e.PrepareSleep() {
		return nil
	}
	defer e.FinishSleep()
	if now := time.Now(); s.deadline.Sub(now) < max/2 {
		s.deadline = now.Add(max)
		s.f.SetReadDeadline(s.deadline)
	}
	if s.beforePark != nil {
		s.beforePark()
	}
	s.tried = false
	err := s.rc.Read(s.readyFn)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return ErrTimeout
	}
	return fmt.Errorf("channel: sleep: %w", err)
}

// ready is the RawConn.Read callback. Its first call makes no system call:
// it reports "ready" if a message is on the ring already, else "not ready",
// and the poller parks the goroutine until the eventfd is written. The
// Pending check is needed, not an optimisation: RawConn.Read first resets
// the poller's readiness, so a write that came after PrepareSleep's own
// check and before that reset would be forgotten (the edge-triggered poller
// reports it once). The peer publishes a message before it writes the
// eventfd, so such a write always has its message on the ring by now. Every
// later call reads the counter back to 0, so that each later write makes a
// new edge.
func (s *Sleeper) ready(fd uintptr) bool {
	if !s.tried {
		s.tried = true
		return s.e.Pending()
	}
	_, err := unix.Read(int(fd), s.buf[:])
	return err != unix.EAGAIN
}

// Wake makes a Sleep in progress return (or the next one, if none is in
// progress), from any goroutine: for a Close that must stop the sleeper.
func (s *Sleeper) Wake() error {
	one := [8]byte{1}
	for {
		_, err := unix.Write(s.e.waitFd, one[:])
		switch err {
		case nil, unix.EAGAIN: // EAGAIN: saturated, readable anyway
			return nil
		case unix.EINTR:
			continue
		}
		return fmt.Errorf("channel: wake %s: write eventfd: %w", s.e.side, err)
	}
}

// Close releases the Sleeper's descriptor; no Sleep may be in progress.
func (s *Sleeper) Close() error { return s.f.Close() }
