package joyride

// This file is a TEST DOUBLE of joyrided, not the service: a fake that speaks
// the client's side of package proto (control socket, SCM_RIGHTS, a channel
// region) with no network stack behind it, so the client library can be tested
// without the real service. End-to-end tests against joyrided live elsewhere.
//
// What the fake does:
//   - control: register (hands over a fresh channel.Create region), listen,
//     dial, close, shutdown, setsockopt. Listening on port 80 fails with
//     EADDRINUSE, dialing port 1 with ECONNREFUSED; dialing port 13 puts
//     "daytime" on the down ring before the dial reply (a peer that talks
//     first).
//   - data: TCP sockets dialed to port 7, accepted connections and all UDP
//     sockets echo every OpSend back as OpData (UDP with the destination as the
//     source, so ReadFrom sees whom it wrote to); other TCP sockets discard.
//     Every TCP OpSend is acknowledged with OpSent unless holdAcks is set.
//   - inject: tests put any message (OpAccept, OpEOF, OpError, OpSent, ...) on
//     the down ring.

import (
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/joyride-bench/joyride/stacks/joyride/channel"
	"github.com/joyride-bench/joyride/stacks/joyride/proto"
)

type fakeSock struct {
	id       uint32
	udp      bool
	listener bool
	echo     bool
	remote   netip.AddrPort
}

type fakeService struct {
	t    testing.TB
	path string
	ln   *net.UnixListener

	region *channel.Region
	end    *channel.End // the service end: used by the engine goroutine only
	cmds   chan func()  // run by the engine between messages

	holdAcks atomic.Bool   // do not acknowledge TCP sends
	received atomic.Uint64 // payload bytes taken from the up ring
	bigMsg   atomic.Bool   // an OpSend longer than proto.MaxMessage was seen

	mu       sync.Mutex
	nextSock uint32
	socks    map[uint32]*fakeSock
	requests []proto.Request
	conns    []*net.UnixConn

	stop chan struct{}
	wg   sync.WaitGroup
}

// newFakeService starts the fake on a fresh socket path.
func newFakeService(t testing.TB) *fakeService {
	t.Helper()
	dir, err := os.MkdirTemp("", "jr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "s.sock")
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	region, err := channel.Create("joyride-fake", channel.Config{})
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	f := &fakeService{t: t, path: path, ln: ln, region: region, end: region.Service(),
		cmds: make(chan func()), nextSock: 100, socks: map[uint32]*fakeSock{}, stop: make(chan struct{})}
	f.wg.Add(2)
	go f.acceptLoop()
	go f.engine()
	t.Cleanup(f.close)
	return f
}

// close stops the fake: the control connections hang up.
func (f *fakeService) close() {
	select {
	case <-f.stop:
		return
	default:
	}
	close(f.stop)
	f.ln.Close()
	f.mu.Lock()
	for _, c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
	f.region.Close()
}

// hangUp closes the control connections, as a service that dies does.
func (f *fakeService) hangUp() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
}

func (f *fakeService) acceptLoop() {
	defer f.wg.Done()
	for {
		c, err := f.ln.AcceptUnix()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.conns = append(f.conns, c)
		f.mu.Unlock()
		f.wg.Add(1)
		go f.serveControl(c)
	}
}

func (f *fakeService) serveControl(c *net.UnixConn) {
	defer f.wg.Done()
	defer c.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		var req proto.Request
		if err := json.Unmarshal(buf[:n], &req); err != nil {
			f.t.Errorf("fake service: bad request %q: %v", buf[:n], err)
			return
		}
		f.mu.Lock()
		f.requests = append(f.requests, req)
		f.mu.Unlock()
		var oob []byte
		rep := f.handle(req)
		if req.Op == "register" && rep.OK {
			oob = syscall.UnixRights(f.regionFds()...)
		}
		msg, _ := json.Marshal(rep)
		if _, _, err := c.WriteMsgUnix(msg, oob, nil); err != nil {
			return
		}
	}
}

func (f *fakeService) regionFds() []int {
	m, a, s := f.region.Fds()
	return []int{m, a, s}
}

func (f *fakeService) newSock(s *fakeSock) uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextSock++
	s.id = f.nextSock
	f.socks[s.id] = s
	return s.id
}

func (f *fakeService) sock(id uint32) *fakeSock {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.socks[id]
}

func (f *fakeService) handle(req proto.Request) proto.Reply {
	switch req.Op {
	case "register":
		if req.Version != proto.Version {
			return proto.Errorf(syscall.EPROTO, "version %d, want %d", req.Version, proto.Version)
		}
		return proto.Reply{OK: true, App: 1, MaxMsg: proto.MaxMessage, SendWin: proto.SendWindow}
	case "listen":
		ap, err := netip.ParseAddrPort(req.Addr)
		if err != nil {
			return proto.Errorf(syscall.EINVAL, "bad address %q", req.Addr)
		}
		if ap.Port() == 80 {
			return proto.Errorf(syscall.EADDRINUSE, "port 80 is in use")
		}
		if ap.Port() == 0 {
			ap = netip.AddrPortFrom(ap.Addr(), 40001)
		}
		id := f.newSock(&fakeSock{udp: req.Network == "udp", listener: req.Network == "tcp", echo: req.Network == "udp"})
		return proto.Reply{OK: true, Sock: id, Local: ap.String()}
	case "dial":
		ap, err := netip.ParseAddrPort(req.Addr)
		if err != nil {
			return proto.Errorf(syscall.EINVAL, "bad address %q", req.Addr)
		}
		if ap.Port() == 1 {
			return proto.Errorf(syscall.ECONNREFUSED, "refused")
		}
		udp := req.Network == "udp"
		id := f.newSock(&fakeSock{udp: udp, echo: udp || ap.Port() == 7, remote: ap})
		if ap.Port() == 13 {
			f.inject(proto.OpData, id, 0, []byte("daytime"))
		}
		return proto.Reply{OK: true, Sock: id, Local: "10.0.0.1:40000", Remote: ap.String()}
	case "close":
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.socks[req.Sock] == nil {
			return proto.Errorf(syscall.EBADF, "no socket %d", req.Sock)
		}
		delete(f.socks, req.Sock)
		return proto.Reply{OK: true}
	case "shutdown", "setsockopt":
		if f.sock(req.Sock) == nil {
			return proto.Errorf(syscall.EBADF, "no socket %d", req.Sock)
		}
		return proto.Reply{OK: true}
	}
	return proto.Errorf(syscall.EINVAL, "unknown op %q", req.Op)
}

// engine is the fake's data plane: it serves the up ring and runs injected
// work, alone on the service End.
func (f *fakeService) engine() {
	defer f.wg.Done()
	buf := make([]byte, 0, proto.MaxMessage)
	for {
		select {
		case <-f.stop:
			return
		case fn := <-f.cmds:
			fn()
			continue
		default:
		}
		d, p, err := f.end.Recv(buf)
		switch {
		case err == nil:
			buf = p[:0]
			f.up(d, p)
		case errors.Is(err, channel.ErrEmpty):
			f.end.Wait(time.Millisecond)
		default:
			f.t.Errorf("fake service: %v", err)
			return
		}
	}
}

// up handles one message from the application (engine goroutine).
func (f *fakeService) up(d channel.Desc, p []byte) {
	if d.Op == proto.OpClose {
		// Recorded as a close request: tests count closes, whichever way
		// they travelled.
		f.mu.Lock()
		delete(f.socks, d.Sock)
		f.requests = append(f.requests, proto.Request{Op: "close", Sock: d.Sock})
		f.mu.Unlock()
		return
	}
	if d.Op != proto.OpSend {
		f.t.Errorf("fake service: unexpected op %d from the app", d.Op)
		return
	}
	if len(p) > proto.MaxMessage {
		f.bigMsg.Store(true)
	}
	f.received.Add(uint64(len(p)))
	s := f.sock(d.Sock)
	if s == nil {
		return
	}
	// The acknowledgement first: when the application reads the echo, its
	// window is whole again.
	if !s.udp && !f.holdAcks.Load() {
		f.down(proto.OpSent, s.id, uint64(len(p)), nil)
	}
	if s.echo {
		arg := uint64(0)
		if s.udp {
			arg = d.Arg
			if arg == 0 {
				arg = proto.PackAddr(s.remote)
			}
		}
		f.down(proto.OpData, s.id, arg, p)
	}
}

// down puts one message on the down ring, waiting for room (engine goroutine).
func (f *fakeService) down(op uint16, sock uint32, arg uint64, p []byte) {
	for {
		err := f.end.Send(op, sock, arg, p)
		if err == nil {
			f.end.Notify()
			return
		}
		if !errors.Is(err, channel.ErrFull) {
			f.t.Errorf("fake service: send: %v", err)
			return
		}
		select {
		case <-f.stop:
			return
		case <-time.After(50 * time.Microsecond):
		}
	}
}

// inject puts a message on the down ring and returns when it is there.
func (f *fakeService) inject(op uint16, sock uint32, arg uint64, p []byte) {
	done := make(chan struct{})
	select {
	case f.cmds <- func() { f.down(op, sock, arg, p); close(done) }:
		<-done
	case <-f.stop:
	}
}

// requestsOf returns the control requests with op seen so far.
func (f *fakeService) requestsOf(op string) []proto.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []proto.Request
	for _, r := range f.requests {
		if r.Op == op {
			out = append(out, r)
		}
	}
	return out
}

// awaitRequests waits up to a second for n requests of op (a close on the
// ring is taken by the fake's engine after Close has returned) and returns
// those seen.
func (f *fakeService) awaitRequests(op string, n int) []proto.Request {
	deadline := time.Now().Add(time.Second)
	for {
		r := f.requestsOf(op)
		if len(r) >= n || time.Now().After(deadline) {
			return r
		}
		time.Sleep(time.Millisecond)
	}
}

// lastSock is the id of the socket made last.
func (f *fakeService) lastSock() uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nextSock
}

// open starts a client Stack on the fake.
func (f *fakeService) open(t testing.TB) *Stack {
	t.Helper()
	s, err := Open(Options{Socket: f.path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
