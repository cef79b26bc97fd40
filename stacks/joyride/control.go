package joyride

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"

	"github.com/joyride-bench/joyride/stacks/joyride/proto"
	"golang.org/x/sys/unix"
)

// control is the application's end of the control socket: one request at a
// time, each answered by one reply.
type control struct {
	path string
	mu   sync.Mutex // one request in flight; guards buf, oob
	conn *net.UnixConn
	buf  []byte
	oob  []byte

	closeOnce sync.Once
	closeErr  error
}

// dialControl connects to the service's control socket.
func dialControl(path string) (*control, error) {
	conn, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		var se *os.SyscallError
		if errors.As(err, &se) {
			err = se // "connect: no such file or directory" reads better without the OpError prefix
		}
		return nil, fmt.Errorf("joyride: service not reachable at %s: %w (is joyrided running?)", path, err)
	}
	return &control{
		path: path,
		conn: conn,
		buf:  make([]byte, 64<<10),
		oob:  make([]byte, unix.CmsgSpace(8*4)),
	}, nil
}

// roundTrip sends req and returns the service's reply and the file descriptors
// that came with it (the caller owns them). err reports a broken control
// connection only; a refused request is a reply with OK false.
func (c *control) roundTrip(req *proto.Request) (proto.Reply, []int, error) {
	msg, err := json.Marshal(req)
	if err != nil {
		return proto.Reply{}, nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.conn.Write(msg); err != nil {
		return proto.Reply{}, nil, c.brokenErr(err)
	}
	n, oobn, flags, _, err := c.conn.ReadMsgUnix(c.buf, c.oob)
	var fds []int
	if oobn > 0 {
		fds = parseRights(c.oob[:oobn])
	}
	if err != nil {
		closeFds(fds)
		return proto.Reply{}, nil, c.brokenErr(err)
	}
	if flags&unix.MSG_TRUNC != 0 {
		closeFds(fds)
		return proto.Reply{}, nil, fmt.Errorf("joyride: control reply longer than %d bytes", len(c.buf))
	}
	if flags&unix.MSG_CTRUNC != 0 {
		closeFds(fds)
		return proto.Reply{}, nil, errors.New("joyride: control reply carried more file descriptors than expected")
	}
	var rep proto.Reply
	if err := json.Unmarshal(c.buf[:n], &rep); err != nil {
		closeFds(fds)
		return proto.Reply{}, nil, fmt.Errorf("joyride: bad control reply %q: %w", c.buf[:n], err)
	}
	return rep, fds, nil
}

func (c *control) brokenErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
		return ErrServiceGone
	}
	if errors.Is(err, net.ErrClosed) {
		return net.ErrClosed
	}
	return fmt.Errorf("joyride: control socket %s: %w", c.path, err)
}

// parseRights takes the file descriptors out of SCM_RIGHTS control messages,
// in order.
func parseRights(oob []byte) []int {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for i := range msgs {
		f, err := syscall.ParseUnixRights(&msgs[i])
		if err == nil {
			fds = append(fds, f...)
		}
	}
	return fds
}

func (c *control) close() error {
	c.closeOnce.Do(func() { c.closeErr = c.conn.Close() })
	return c.closeErr
}

// replyError is the error of a refused request: the errno itself when the
// service gave one (wrapped by the caller in a *net.OpError, as the standard
// library does), else the service's message.
func replyError(rep proto.Reply) error {
	if rep.Errno != 0 {
		return syscall.Errno(rep.Errno)
	}
	if rep.Error != "" {
		return errors.New("joyride: " + rep.Error)
	}
	return errors.New("joyride: the service refused the request without a reason")
}

// request runs one control request for a socket operation and turns a refusal
// into the *net.OpError the standard library would return: Op the operation
// ("dial", "listen", ...), the errno wrapped in an *os.SyscallError naming the
// system call (so errors.Is(err, syscall.EADDRINUSE) holds).
func (s *Stack) request(req *proto.Request, op, syscallName, network string, addr net.Addr) (proto.Reply, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: op, Net: network, Addr: addr, Err: err}
	}
	if err := s.usable(); err != nil {
		return proto.Reply{}, opErr(err)
	}
	rep, fds, err := s.ctl.roundTrip(req)
	closeFds(fds)
	if err != nil {
		if errors.Is(err, ErrServiceGone) {
			s.fail(ErrServiceGone)
		}
		return rep, opErr(err)
	}
	if !rep.OK {
		err := replyError(rep)
		if errno, ok := err.(syscall.Errno); ok {
			err = os.NewSyscallError(syscallName, errno)
		}
		return rep, opErr(err)
	}
	return rep, nil
}
