package joyride

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/joyride-bench/joyride/stacks"
	"github.com/joyride-bench/joyride/stacks/joyride/proto"
)

func TestRegistered(t *testing.T) {
	opts, err := stacks.DecodeOptionsBytes("joyride", nil)
	if err != nil {
		t.Fatal(err)
	}
	// No socket given: the run directory's, else the system default.
	o := *opts.(*Options)
	if got := socketPath(o, stacks.Env{}); got != proto.DefaultSocket {
		t.Errorf("default socket %q, want %q", got, proto.DefaultSocket)
	}
	if got := socketPath(o, stacks.Env{RunDir: "/run/jrbench/x"}); got != "/run/jrbench/x/joyride.sock" {
		t.Errorf("socket in a run directory: %q", got)
	}
	if _, err := stacks.DecodeOptionsBytes("joyride", []byte("sockt: /x")); err == nil {
		t.Error("unknown option accepted")
	}
	if _, err := stacks.DecodeOptionsBytes("joyride", []byte("driver: dpdk")); err == nil {
		t.Error("unknown driver accepted")
	}
	if _, err := stacks.DecodeOptionsBytes("joyride", []byte("spin: forever")); err == nil {
		t.Error("a spin that is not a duration accepted")
	}
	opts, err = stacks.DecodeOptionsBytes("joyride", []byte(`{"socket": "/tmp/j.sock"}`))
	if err != nil || opts.(*Options).Socket != "/tmp/j.sock" {
		t.Errorf("JSON options: %v, %+v", err, opts)
	}
}

func TestServiceNotRunning(t *testing.T) {
	path := t.TempDir() + "/none.sock"
	_, err := stacks.Open("joyride", &Options{Socket: path}, stacks.Env{})
	if err == nil {
		t.Fatal("Open succeeded without a service")
	}
	msg := err.Error()
	for _, want := range []string{"service not reachable at " + path, "is joyrided running?"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if !errors.Is(err, syscall.ENOENT) {
		t.Errorf("error %v does not wrap ENOENT", err)
	}
}

func TestTCPEcho(t *testing.T) {
	f := newFakeService(t)
	s := f.open(t)
	c, err := s.Dial("tcp", "10.0.0.2:7")
	if err != nil {
		t.Fatal(err)
	}
	if la, ok := c.LocalAddr().(*net.TCPAddr); !ok || la.String() != "10.0.0.1:40000" {
		t.Errorf("LocalAddr %#v", c.LocalAddr())
	}
	if ra, ok := c.RemoteAddr().(*net.TCPAddr); !ok || ra.String() != "10.0.0.2:7" {
		t.Errorf("RemoteAddr %#v", c.RemoteAddr())
	}
	if n, err := c.Write([]byte("hello")); n != 5 || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	buf := make([]byte, 100)
	n, err := io.ReadAtLeast(c, buf, 5)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("Read: %q, %v", buf[:n], err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v, want net.ErrClosed", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close: %v", err)
	}
	if n := len(f.awaitRequests("close", 1)); n != 1 {
		t.Errorf("the service saw %d close requests, want 1", n)
	}
	if reg := f.requestsOf("register"); len(reg) != 1 || reg[0].Name == "" || reg[0].Version != proto.Version {
		t.Errorf("register requests %+v", reg)
	}
	st := s.Stats()
	if st.RxPackets == 0 || st.TxPackets == 0 {
		t.Errorf("Stats %+v", st)
	}
}

// A megabyte each way with Read and Write on different goroutines: messages
// are split at proto.MaxMessage and the send window reopens with OpSent.
func TestTCPEchoLarge(t *testing.T) {
	f := newFakeService(t)
	s := f.open(t)
	c, err := s.Dial("tcp4", "10.0.0.2:7")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := make([]byte, 1<<20)
	for i := range want {
		want[i] = byte(i * 7)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(want)
		errc <- err
	}()
	got := make([]byte, len(want))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("echoed bytes differ")
	}
	if f.bigMsg.Load() {
		t.Errorf("a message was longer than proto.MaxMessage")
	}
}

func TestUDPPacketConn(t *testing.T) {
	f := newFakeService(t)
	s := f.open(t)
	pc, err := s.ListenPacket("udp", ":5000")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if la, ok := pc.LocalAddr().(*net.UDPAddr); !ok || la.String() != "0.0.0.0:5000" {
		t.Errorf("LocalAddr %#v", pc.LocalAddr())
	}
	if r := f.requestsOf("listen"); len(r) != 1 || r[0].Network != "udp" || r[0].Addr != "0.0.0.0:5000" {
		t.Errorf("listen requests %+v", r)
	}
	dst := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 53}
	if n, err := pc.WriteTo([]byte("query"), dst); n != 5 || err != nil {
		t.Fatalf("WriteTo: %d, %v", n, err)
	}
	buf := make([]byte, 1500)
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := pc.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "query" {
		t.Fatalf("ReadFrom: %q, %v", buf[:n], err)
	}
	if ua, ok := from.(*net.UDPAddr); !ok || ua.String() != "192.0.2.1:53" {
		t.Errorf("ReadFrom address %#v, want 192.0.2.1:53", from)
	}
	// Truncation, as a UDP socket truncates; datagram boundaries are kept.
	pc.WriteTo(bytes.Repeat([]byte("a"), 100), dst)
	pc.WriteTo([]byte("b"), dst)
	small := make([]byte, 10)
	if n, _, err := pc.ReadFrom(small); n != 10 || err != nil {
		t.Errorf("truncated ReadFrom: %d, %v", n, err)
	}
	if n, _, err := pc.ReadFrom(small); n != 1 || err != nil || small[0] != 'b' {
		t.Errorf("next ReadFrom: %q, %v", small[:n], err)
	}
	if _, err := pc.WriteTo([]byte("x"), &net.UDPAddr{IP: net.ParseIP("2001:db8::1"), Port: 1}); err == nil {
		t.Error("WriteTo an IPv6 address succeeded")
	}
}

func TestUDPDial(t *testing.T) {
	f := newFakeService(t)
	s := f.open(t)
	c, err := s.Dial("udp", "192.0.2.9:9000")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.RemoteAddr().(*net.UDPAddr); !ok {
		t.Errorf("RemoteAddr %#v", c.RemoteAddr())
	}
	c.Write([]byte("one"))
	c.Write([]byte("two"))
	buf := make([]byte, 100)
	for _, want := range []string{"one", "two"} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != want {
			t.Errorf("Read: %q, %v; want %q", buf[:n], err, want)
		}
	}
}

func checkTimeout(t *testing.T, what string, err error) {
	t.Helper()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("%s: %v is not a net.Error with Timeout()", what, err)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("%s: %v is not os.ErrDeadlineExceeded", what, err)
	}
}

func TestDeadlines(t *testing.T) {
	f := newFakeService(t)
	s := f.open(t)
	c, err := s.Dial("tcp", "10.0.0.2:7")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 10)

	// A deadline in the past fails at once.
	c.SetReadDeadline(time.Now().Add(-time.Second))
	_, err = c.Read(buf)
	checkTimeout(t, "past deadline", err)

	// A deadline that passes while Read blocks.
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	_, err = c.Read(buf)
	checkTimeout(t, "blocking read", err)
	if d := time.Since(start); d < 40*time.Millisecond || d > 5*time.Second {
		t.Errorf("read timed out after %v, want about 50ms", d)
	}

	// Extending the deadline of a blocked Read keeps it waiting.
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	go func() {
		time.Sleep(10 * time.Millisecond)
		c.SetReadDeadline(time.Now().Add(time.Hour))
		time.Sleep(100 * time.Millisecond)
		c.Write([]byte("late"))
	}()
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "late" {
		t.Errorf("Read after extending the deadline: %q, %v", buf[:n], err)
	}

	// No deadline at all works again.
	c.SetDeadline(time.Time{})
	c.Write([]byte("ok"))
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "ok" {
		t.Errorf("Read without deadline: %q, %v", buf[:n], err)
	}

	// A write deadline ends a Write blocked on the send window.
	f.holdAcks.Store(true)
	c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	n, err = c.Write(make([]byte, 1<<20))
	checkTimeout(t, "blocked write", err)
	if n != proto.SendWindow {
		t.Errorf("Write handed over %d bytes before the deadline, want the window, %d", n, proto.SendWindow)
	}

	// Deadlines on a PacketConn and a Listener.
	pc, err := s.ListenPacket("udp4", "0.0.0.0:6000")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	pc.SetDeadline(time.Now().Add(20 * time.Millisecond))
	_, _, err = pc.ReadFrom(buf)
	checkTimeout(t, "ReadFrom", err)
	ln, err := s.Listen("tcp", ":8080")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ln.(*Listener).SetDeadline(time.Now().Add(20 * time.Millisecond))
	_, err = ln.Accept()
	checkTimeout(t, "Accept", err)
}

func TestCloseUnblocks(t *testing.T) {
	f := newFakeService(t)
	s := f.open(t)
	c, err := s.Dial("tcp", "10.0.0.2:9") // discard: nothing to read
	if err != nil {
		t.Fatal(err)
	}
	f.holdAcks.Store(true)
	readErr := make(chan error, 1)
	writeErr := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 10))
		readErr <- err
	}()
	go func() {
		_, err := c.Write(make([]byte, 1<<20)) // blocks on the window
		writeErr <- err
	}()
	time.Sleep(50 * time.Millisecond)
	c.Close()
	for what, ch := range map[string]chan error{"Read": readErr, "Write": writeErr} {
		select {
		case err := <-ch:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("%s: %v, want net.ErrClosed", what, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Close did not unblock %s", what)
		}
	}

	ln, err := s.Listen("tcp", ":8080")
	if err != nil {
		t.Fatal(err)
	}
	acceptErr := make(chan error, 1)
	go func() {
		_, err := ln.Accept()
		acceptErr <- err
	}()
	time.Sleep(20 * time.Millisecond)
	ln.Close()
	select {
	case err := <-acceptErr:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock Accept")
	}
}

func TestEOFAfterData(t *testing.T) {
	f := newFakeService(t)
	s := f.open(t)
	c, err := s.Dial("tcp", "10.0.0.2:9")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	id := c.(*Conn).k.id
	f.inject(proto.OpData, id, 0, []byte("abc"))
	f.inject(proto.OpData, id, 0, []byte("def"))
	f.inject(proto.OpEOF, id, 0, nil)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "abcdef" {
		t.Errorf("ReadAll: %q, %v", got, err)
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("Read after EOF: %d, %v", n, err)
	}
	// The peer closed its side only: writing goes on.
	if _, err := c.Write([]byte("more")); err != nil {
		t.Errorf("Write after the peer's EOF: %v", err)
	}
}

func TestOpError(t *testing.T) {
	f := newFakeService(t)
	s := f.open(t)
	c, err := s.Dial("tcp", "10.0.0.2:9")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f.inject(proto.OpError, c.(*Conn).k.id, uint64(syscall.ECONNRESET), nil)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(make([]byte, 10))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("Read: %v, want ECONNRESET", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" {
		t.Errorf("Read error %#v is not a read *net.OpError", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("Write: %v, want ECONNRESET", err)
	}
}

func TestAccept(t *testing.T) {
	f := newFakeService(t)
	s := f.open(t)
	ln, err := s.Listen("tcp", ":8080")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if a, ok := ln.Addr().(*net.TCPAddr); !ok || a.String() != "0.0.0.0:8080" {
		t.Errorf("Addr %#v", ln.Addr())
	}
	if r := f.requestsOf("listen"); len(r) != 1 || r[0].Backlog != listenBacklog || r[0].Network != "tcp" {
		t.Errorf("listen requests %+v", r)
	}
	lid := ln.(*Listener).k.id
	cid := f.newSock(&fakeSock{echo: true})
	f.inject(proto.OpAccept, lid, uint64(cid), []byte("192.0.2.7:5555"))
	// Data for the new connection before Accept returns it is kept.
	f.inject(proto.OpData, cid, 0, []byte("first"))
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ra, ok := c.RemoteAddr().(*net.TCPAddr); !ok || ra.String() != "192.0.2.7:5555" {
		t.Errorf("RemoteAddr %#v", c.RemoteAddr())
	}
	buf := make([]byte, 100)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "first" {
		t.Errorf("Read: %q, %v", buf[:n], err)
	}
	c.Write([]byte("echo"))
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "echo" {
		t.Errorf("Read: %q, %v", buf[:n], err)
	}

	// A connection accepted and never returned is closed with the listener.
	cid2 := f.newSock(&fakeSock{})
	f.inject(proto.OpAccept, lid, uint64(cid2), []byte("192.0.2.8:1"))
	time.Sleep(20 * time.Millisecond)
	ln.Close()
	closed := map[uint32]bool{}
	for _, r := range f.awaitRequests("close", 2) {
		closed[r.Sock] = true
	}
	if !closed[lid] || !closed[cid2] {
		t.Errorf("closes %v, want the listener %d and the pending connection %d", closed, lid, cid2)
	}
}

func TestErrnoMapping(t *testing.T) {
	f := newFakeService(t)
	s := f.open(t)
	_, err := s.Listen("tcp", ":80")
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("Listen :80: %v, want EADDRINUSE", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "listen" || oe.Net != "tcp" {
		t.Errorf("Listen error %#v is not a listen *net.OpError", err)
	} else if got := err.Error(); got != "listen tcp 0.0.0.0:80: bind: address already in use" {
		t.Errorf("message %q", got)
	}
	_, err = s.Dial("tcp", "10.0.0.2:1")
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("Dial port 1: %v, want ECONNREFUSED", err)
	}
	if err == nil || err.Error() != "dial tcp 10.0.0.2:1: connect: connection refused" {
		t.Errorf("message %v", err)
	}
}

func TestFlowControl(t *testing.T) {
	f := newFakeService(t)
	s := f.open(t)
	c, err := s.Dial("tcp", "10.0.0.2:9")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f.holdAcks.Store(true)
	const total = 1 << 20
	done := make(chan error, 1)
	go func() {
		n, err := c.Write(make([]byte, total))
		if err == nil && n != total {
			err = io.ErrShortWrite
		}
		done <- err
	}()
	waitFor(t, func() bool { return f.received.Load() == proto.SendWindow })
	time.Sleep(50 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Write returned (%v) with the window closed", err)
	default:
	}
	if got := f.received.Load(); got != proto.SendWindow {
		t.Fatalf("the service got %d bytes with the window closed, want %d", got, proto.SendWindow)
	}
	// Acknowledge in small steps; the writer follows.
	id := c.(*Conn).k.id
	for acked := 0; acked < total; acked += 32 << 10 {
		f.inject(proto.OpSent, id, 32<<10, nil)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Write still blocked; the service got %d bytes", f.received.Load())
	}
	if got := f.received.Load(); got != total {
		t.Errorf("the service got %d bytes, want %d", got, total)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestUnsupportedNetwork(t *testing.T) {
	f := newFakeService(t)
	s := f.open(t)
	check := func(what string, err error) {
		t.Helper()
		var oe *net.OpError
		if !errors.As(err, &oe) {
			t.Errorf("%s: %#v is not a *net.OpError", what, err)
		} else if !strings.Contains(err.Error(), "joyride supports") {
			t.Errorf("%s: unclear message %q", what, err)
		}
	}
	_, err := s.Dial("tcp6", "[::1]:80")
	check("Dial tcp6", err)
	_, err = s.Dial("unix", "/x")
	check("Dial unix", err)
	_, err = s.Listen("udp", ":1")
	check("Listen udp", err)
	_, err = s.ListenPacket("tcp", ":1")
	check("ListenPacket tcp", err)
	if _, err := s.Dial("tcp", "[2001:db8::1]:80"); err == nil {
		t.Error("Dial to an IPv6 address succeeded")
	}
}

// The fake's port 13 talks before the dial reply: nothing may be lost.
func TestDataBeforeDialReply(t *testing.T) {
	f := newFakeService(t)
	s := f.open(t)
	c, err := s.Dial("tcp", "10.0.0.2:13")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 100)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "daytime" {
		t.Errorf("Read: %q, %v", buf[:n], err)
	}
}

func TestUnknownSocketDropped(t *testing.T) {
	f := newFakeService(t)
	s := f.open(t)
	f.inject(proto.OpData, 9999, 0, []byte("stray"))
	waitFor(t, func() bool { return s.Stats().Dropped == 1 })
}

func TestServiceGone(t *testing.T) {
	f := newFakeService(t)
	s := f.open(t)
	c, err := s.Dial("tcp", "10.0.0.2:9")
	if err != nil {
		t.Fatal(err)
	}
	id := c.(*Conn).k.id
	f.inject(proto.OpData, id, 0, []byte("last words"))
	errc := make(chan error, 1)
	go func() {
		var got []byte
		buf := make([]byte, 100)
		for {
			n, err := c.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				if string(got) != "last words" {
					t.Errorf("read %q before the error", got)
				}
				errc <- err
				return
			}
		}
	}()
	time.Sleep(20 * time.Millisecond)
	f.hangUp()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrServiceGone) {
			t.Errorf("Read: %v, want ErrServiceGone", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked after the service hung up")
	}
	if _, err := s.Dial("tcp", "10.0.0.2:7"); !errors.Is(err, ErrServiceGone) {
		t.Errorf("Dial after the service hung up: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close after the service hung up: %v", err)
	}
}

func TestStackClose(t *testing.T) {
	f := newFakeService(t)
	s := f.open(t)
	c, err := s.Dial("tcp", "10.0.0.2:9")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 10))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read: %v, want net.ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Dial("tcp", "10.0.0.2:7"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Dial after Close: %v", err)
	}
}

func TestCloseWrite(t *testing.T) {
	f := newFakeService(t)
	s := f.open(t)
	c, err := s.Dial("tcp", "10.0.0.2:7")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("bye"))
	if err := c.(*Conn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if r := f.requestsOf("shutdown"); len(r) != 1 || r[0].How != "write" || r[0].Sock != c.(*Conn).k.id {
		t.Errorf("shutdown requests %+v", r)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, syscall.EPIPE) {
		t.Errorf("Write after CloseWrite: %v, want EPIPE", err)
	}
	buf := make([]byte, 10)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "bye" {
		t.Errorf("Read after CloseWrite: %q, %v", buf[:n], err)
	}
}

// Many connections at once share the rings, the buffers and the dispatcher.
func TestConcurrentConns(t *testing.T) {
	f := newFakeService(t)
	s := f.open(t)
	const conns, size = 16, 300 << 10
	errc := make(chan error, conns)
	for i := 0; i < conns; i++ {
		go func(i int) {
			c, err := s.Dial("tcp", "10.0.0.2:7")
			if err != nil {
				errc <- err
				return
			}
			defer c.Close()
			want := bytes.Repeat([]byte{byte(i)}, size)
			go c.Write(want)
			got := make([]byte, size)
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			if _, err := io.ReadFull(c, got); err != nil {
				errc <- err
				return
			}
			if !bytes.Equal(got, want) {
				errc <- errors.New("echo differs")
				return
			}
			errc <- nil
		}(i)
	}
	for i := 0; i < conns; i++ {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
	if d := s.Stats().Dropped; d != 0 {
		t.Errorf("%d messages dropped", d)
	}
}
