package channel

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pair is a region as both processes see it: the service's mapping (from
// Create) and the application's (from Attach on duplicates of the fds, as
// after SCM_RIGHTS): two mappings of the same memfd.
type pair struct {
	svcRegion, appRegion *Region
	svc, app             *End
}

func newPair(tb testing.TB, cfg Config) *pair {
	tb.Helper()
	s, err := Create("joyride-test", cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	m, a, v := s.Fds()
	var fds [3]int
	for i, fd := range []int{m, a, v} {
		if fds[i], err = unix.Dup(fd); err != nil {
			tb.Fatal(err)
		}
	}
	ar, err := Attach(fds[0], fds[1], fds[2])
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ar.Close() })
	if &ar.mem[0] == &s.mem[0] {
		tb.Fatal("the two regions share one mapping")
	}
	return &pair{svcRegion: s, appRegion: ar, svc: s.Service(), app: ar.App()}
}

func payload(n int, seed byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = seed + byte(i*7) + byte(i>>8)
	}
	return p
}

func sendRecv(t *testing.T, from, to *End, op uint16, sock uint32, arg uint64, p []byte, dst []byte) []byte {
	t.Helper()
	if err := from.Send(op, sock, arg, p); err != nil {
		t.Fatalf("send %d bytes: %v", len(p), err)
	}
	if !to.Pending() {
		t.Fatalf("nothing pending after sending %d bytes", len(p))
	}
	d, got, err := to.Recv(dst)
	if err != nil {
		t.Fatalf("recv %d bytes: %v", len(p), err)
	}
	if d.Op != op || d.Sock != sock || d.Arg != arg || int(d.Len) != len(p) || d.Flags&FlagMore != 0 || d.Buf != NoBuf {
		t.Fatalf("desc %+v, want op %d sock %d arg %d len %d", d, op, sock, arg, len(p))
	}
	if !bytes.Equal(got, p) {
		t.Fatalf("payload of %d bytes differs", len(p))
	}
	if to.Pending() {
		t.Fatal("still pending after one message")
	}
	return got
}

func checkAllFree(t *testing.T, p *pair) {
	t.Helper()
	B := p.svcRegion.Config().Buffers
	for _, e := range []*End{p.app, p.svc} {
		n, err := e.FreeBuffers()
		if err != nil || n != B {
			t.Fatalf("%s: %d of %d buffers free (%v)", e.side, n, B, err)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	p := newPair(t, Config{})
	bs := p.svcRegion.Config().BufSize
	sizes := []int{0, 1, 64, bs - 1, bs, bs + 1, 3 * bs, 64 << 10}
	var dst []byte
	for i := range 2000 {
		for _, n := range sizes {
			pl := payload(n, byte(i))
			dst = sendRecv(t, p.app, p.svc, 1, uint32(i), uint64(n)<<32|uint64(i), pl, dst)
			dst = sendRecv(t, p.svc, p.app, 2, uint32(i), ^uint64(i), pl, dst)
		}
	}
	checkAllFree(t, p)
}

// TestRoundTripBatches fills the rings with many messages before receiving,
// with counters starting just below 2^32 so that they wrap.
func TestRoundTripBatches(t *testing.T) {
	old := counterBase
	counterBase = 0xFFFFFF00
	defer func() { counterBase = old }()
	p := newPair(t, Config{RingSize: 64, Buffers: 100, BufSize: 256})
	rng := rand.New(rand.NewPCG(1, 2))
	var sent [][]byte
	var dst []byte
	for round := range 300 {
		for _, pair := range [][2]*End{{p.app, p.svc}, {p.svc, p.app}} {
			from, to := pair[0], pair[1]
			sent = sent[:0]
			for {
				pl := payload(rng.IntN(1200), byte(round))
				err := from.Send(7, 1, 2, pl)
				if errors.Is(err, ErrFull) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				sent = append(sent, pl)
			}
			if len(sent) == 0 {
				t.Fatal("nothing could be sent")
			}
			for i, want := range sent {
				d, got, err := to.Recv(dst)
				if err != nil || !bytes.Equal(got, want) || int(d.Len) != len(want) {
					t.Fatalf("round %d message %d: %v (len %d, want %d)", round, i, err, len(got), len(want))
				}
				dst = got
			}
			if _, _, err := to.Recv(dst); err != ErrEmpty {
				t.Fatalf("after the batch: %v, want ErrEmpty", err)
			}
		}
	}
	if p.svc.tx.local >= 0xFFFFFF00 || p.app.tx.local >= 0xFFFFFF00 {
		t.Fatalf("counters did not wrap: %#x %#x", p.svc.tx.local, p.app.tx.local)
	}
	checkAllFree(t, p)
}

func TestAttachSeesServiceWrites(t *testing.T) {
	p := newPair(t, Config{RingSize: 16, Buffers: 16, BufSize: 256})
	if p.appRegion.Size() != p.svcRegion.Size() || p.appRegion.Config() != p.svcRegion.Config() {
		t.Fatalf("attach: %d bytes %+v, create: %d bytes %+v", p.appRegion.Size(), p.appRegion.Config(), p.svcRegion.Size(), p.svcRegion.Config())
	}
	msg := []byte("hello from joyrided")
	if err := p.svc.Send(3, 9, 42, msg); err != nil {
		t.Fatal(err)
	}
	d, got, err := p.app.Recv(nil)
	if err != nil || string(got) != string(msg) || d.Op != 3 || d.Sock != 9 || d.Arg != 42 {
		t.Fatalf("app got %+v %q %v", d, got, err)
	}
}

func TestAttachErrors(t *testing.T) {
	s, err := Create("joyride-test", Config{RingSize: 8, Buffers: 8, BufSize: 256})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m, a, v := s.Fds()
	// The seals keep the application from shrinking the region under the service.
	if err := unix.Ftruncate(m, 4096); err == nil {
		t.Fatal("the memfd could be shrunk")
	}
	attach := func() error {
		r, err := Attach(m, a, v)
		if err == nil {
			t.Fatal("attach succeeded")
		}
		_ = r
		return err
	}
	hdr := func(off int, b ...byte) func() {
		old := append([]byte(nil), s.mem[off:off+len(b)]...)
		copy(s.mem[off:], b)
		return func() { copy(s.mem[off:], old) }
	}
	for _, c := range []struct {
		name string
		off  int
		b    []byte
		want string
	}{
		{"magic", hdrMagic, []byte{'X'}, "bad magic"},
		{"version", hdrVersion, []byte{2}, "version 2"},
		{"ring", hdrRingSize, []byte{7}, "power of two"},
		{"bufsize", hdrBufSize, []byte{0x10, 1}, "multiple of 64"},
		{"buffers", hdrBuffers, []byte{9}, "size mismatch"},
		{"size", hdrSize + 4, []byte{1}, "size mismatch"},
	} {
		undo := hdr(c.off, c.b...)
		err := attach()
		undo()
		if !bytes.Contains([]byte(err.Error()), []byte(c.want)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	p, q, _ := pipe(t)
	if _, err := Attach(p, q, q); err == nil {
		t.Fatal("attach of a pipe succeeded")
	}
	r, err := Attach(m, a, v)
	if err != nil {
		t.Fatal(err)
	}
	// r shares the fds with s here; unmap it without closing them.
	unix.Munmap(r.mem)
}

func pipe(t *testing.T) (int, int, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(p[0]); unix.Close(p[1]) })
	return p[0], p[1], nil
}

func TestConfig(t *testing.T) {
	for _, c := range []Config{
		{RingSize: 1000}, {RingSize: 1 << 17}, {Buffers: -1}, {Buffers: 65537},
		{BufSize: 100}, {BufSize: 128}, {BufSize: 65536 + 64}, {BufSize: 2050},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v is valid", c)
		}
		if _, err := Create("x", c); err == nil {
			t.Errorf("Create(%+v) succeeded", c)
		}
	}
	if err := (Config{RingSize: 65536, Buffers: 65536, BufSize: 65536}).Validate(); err != nil {
		t.Error(err)
	}
	if got := (Config{RingSize: 65536, Buffers: 65536, BufSize: 65536}).MaxMessage(); got != 1<<32-1 {
		t.Errorf("MaxMessage %d", got)
	}
	r, err := Create("x", Config{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Size() != (Config{}).Size() || r.Config() != (Config{RingSize: 1024, Buffers: 1024, BufSize: 2048}) {
		t.Fatalf("size %d config %+v", r.Size(), r.Config())
	}
	t.Logf("default region: %d bytes (%.2f MiB)", r.Size(), float64(r.Size())/(1<<20))
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal("second close:", err)
	}
}

func TestFull(t *testing.T) {
	t.Run("ring", func(t *testing.T) {
		p := newPair(t, Config{RingSize: 4, Buffers: 16, BufSize: 256})
		for i := range 4 {
			if err := p.app.Send(1, uint32(i), 0, []byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.app.Send(1, 9, 0, nil); err != ErrFull {
			t.Fatalf("5th send: %v, want ErrFull", err)
		}
		// Make room for 2 descriptors; a 3-buffer message must not go partially.
		for range 2 {
			if _, _, err := p.svc.Recv(nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.app.Send(1, 9, 0, payload(600, 1)); err != ErrFull {
			t.Fatalf("3-descriptor send into 2 slots: %v, want ErrFull", err)
		}
		if err := p.app.Send(1, 10, 0, payload(512, 1)); err != nil {
			t.Fatal(err)
		}
		for _, want := range []uint32{2, 3, 10} {
			d, _, err := p.svc.Recv(nil)
			if err != nil || d.Sock != want {
				t.Fatalf("got %+v %v, want sock %d", d, err, want)
			}
		}
		if p.svc.Pending() {
			t.Fatal("pending after the last message")
		}
		checkAllFree(t, p)
	})
	t.Run("buffers", func(t *testing.T) {
		p := newPair(t, Config{RingSize: 16, Buffers: 4, BufSize: 256})
		for i := range 3 {
			if err := p.svc.Send(1, uint32(i), 0, []byte{1}); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.svc.Send(1, 9, 0, payload(300, 0)); err != ErrFull {
			t.Fatalf("2-buffer send with 1 free: %v, want ErrFull", err)
		}
		if err := p.svc.Send(1, 9, 0, nil); err != nil { // needs no buffer
			t.Fatal(err)
		}
		if err := p.svc.Send(1, 10, 0, []byte{2}); err != nil {
			t.Fatal(err)
		}
		if err := p.svc.Send(1, 11, 0, []byte{3}); err != ErrFull {
			t.Fatalf("send with no buffer free: %v, want ErrFull", err)
		}
		for _, want := range []uint32{0, 1, 2, 9, 10} {
			d, _, err := p.app.Recv(nil)
			if err != nil || d.Sock != want {
				t.Fatalf("got %+v %v, want sock %d", d, err, want)
			}
		}
		if _, _, err := p.app.Recv(nil); err != ErrEmpty {
			t.Fatalf("%v, want ErrEmpty", err)
		}
		// The buffers came back: a 4-buffer message fits again.
		if err := p.svc.Send(1, 12, 0, payload(1024, 0)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("toobig", func(t *testing.T) {
		p := newPair(t, Config{RingSize: 16, Buffers: 4, BufSize: 256})
		if err := p.app.Send(1, 1, 0, make([]byte, 4*256+1)); err != ErrTooBig {
			t.Fatalf("%v, want ErrTooBig", err)
		}
		if err := p.app.Send(1, 1, 0, make([]byte, 4*256)); err != nil {
			t.Fatal(err)
		}
	})
}

func TestWait(t *testing.T) {
	p := newPair(t, Config{RingSize: 16, Buffers: 16, BufSize: 256})
	for _, dir := range [][2]*End{{p.app, p.svc}, {p.svc, p.app}} {
		from, to := dir[0], dir[1]
		t.Run(to.side+" waits", func(t *testing.T) {
			start := time.Now()
			if err := to.Wait(30 * time.Millisecond); err != ErrTimeout {
				t.Fatalf("wait on an empty ring: %v, want ErrTimeout", err)
			}
			if el := time.Since(start); el < 30*time.Millisecond || el > 2*time.Second {
				t.Fatalf("timeout after %v", el)
			}
			if atomic32(to.ownWake) != 0 {
				t.Fatal("need-wakeup left set after Wait")
			}
			done := make(chan error, 1)
			go func() {
				time.Sleep(50 * time.Millisecond)
				if err := from.Send(1, 2, 3, []byte("wake up")); err != nil {
					done <- err
					return
				}
				done <- from.Notify()
			}()
			start = time.Now()
			for !to.Pending() {
				if err := to.Wait(-1); err != nil {
					t.Fatal(err)
				}
			}
			if el := time.Since(start); el < 40*time.Millisecond {
				t.Fatalf("woke after %v, before the send", el)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if _, got, err := to.Recv(nil); err != nil || string(got) != "wake up" {
				t.Fatalf("%q %v", got, err)
			}
			// Pending already: Wait returns at once.
			from.Send(1, 2, 3, nil)
			if err := to.Wait(time.Hour); err != nil {
				t.Fatal(err)
			}
			to.Recv(nil)
		})
	}
	t.Run("no syscall when awake", func(t *testing.T) {
		// The service is not sleeping: Notify must not touch its eventfd.
		if err := p.app.Send(1, 1, 1, nil); err != nil {
			t.Fatal(err)
		}
		if err := p.app.Notify(); err != nil {
			t.Fatal(err)
		}
		var b [8]byte
		if _, err := unix.Read(p.svc.WaitFd(), b[:]); err != unix.EAGAIN {
			t.Fatalf("eventfd read: %v, want EAGAIN (no wakeup written)", err)
		}
		p.svc.SetNeedWakeup(true)
		p.app.Notify()
		p.app.Notify() // the first cleared the flag: one write only
		if n, err := unix.Read(p.svc.WaitFd(), b[:]); err != nil || n != 8 || b[0] != 1 {
			t.Fatalf("eventfd read: %d %v %v, want 1", n, err, b)
		}
		p.svc.Drain()
		p.svc.Recv(nil)
	})
}

func TestCloseIdempotent(t *testing.T) {
	p := newPair(t, Config{RingSize: 8, Buffers: 8, BufSize: 256})
	for range 2 {
		if err := p.appRegion.Close(); err != nil {
			t.Fatal(err)
		}
		if err := p.svcRegion.Close(); err != nil {
			t.Fatal(err)
		}
	}
	m, _, _ := p.svcRegion.Fds()
	if m != -1 {
		t.Fatal("fd not cleared")
	}
}

func ExampleEnd_Send() {
	svc, err := Create("example", Config{RingSize: 64, Buffers: 64, BufSize: 2048})
	if err != nil {
		panic(err)
	}
	defer svc.Close()
	// The service hands svc.Fds() to the application, which calls Attach;
	// here both ends live in one process.
	app := svc.App()
	app.Send(1, 7, 0, []byte("ping"))
	app.Notify()
	d, msg, err := svc.Service().Recv(nil)
	fmt.Println(d.Op, d.Sock, string(msg), err)
	// Output: 1 7 ping <nil>
}

func atomic32(p *uint32) uint32 { return atomic.LoadUint32(p) }
