//go:build dpdk && cgo

package service

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	echo "github.com/joyride-bench/joyride/app"
	"github.com/joyride-bench/joyride/stacks/joyride/channel"
	"github.com/joyride-bench/joyride/stacks/joyride/proto"
	"github.com/joyride-bench/joyride/stacks/joyride/proto/prototest"
	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
)

// rawApp is a hostile application: it speaks the control protocol itself and
// maps its region directly, so it can write anything into it.
type rawApp struct {
	*prototest.Conn
	fds []int
	mem []byte
}

func attachRaw(t *testing.T) *rawApp {
	t.Helper()
	c, fds := prototest.Register(t, sockPath, "hostile")
	a := &rawApp{Conn: c, fds: fds}
	t.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
	var st unix.Stat_t
	if err := unix.Fstat(fds[0], &st); err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(fds[0], 0, int(st.Size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	a.mem = mem
	t.Cleanup(func() { unix.Munmap(mem) })
	return a
}

// udpEchoWorks checks that a well-behaved application still serves.
func udpEchoWorks(t *testing.T, port uint16) {
	t.Helper()
	c, err := gonet.DialUDP(peer, nil, &tcpip.FullAddress{Addr: tcpip.AddrFrom4(svcAddr.As4()), Port: port}, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	c.Write([]byte("still here"))
	buf := make([]byte, 64)
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "still here" {
		t.Fatalf("the honest application stopped answering: %q %v", buf[:n], err)
	}
}

// A hostile application that corrupts its ring is disconnected; the service and
// the other applications carry on.
func TestCorruptRegionDisconnectsOnlyItsApplication(t *testing.T) {
	honest := attach(t)
	pc, err := honest.ListenPacket("udp", "198.18.0.2:7300")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, func(ctx context.Context) { echo.ServeUDPEcho(ctx, pc) })

	bad := attachRaw(t)
	before := svc.Stats().Corrupt.Load()
	// The up ring's producer counter sits right after the 256-byte header:
	// claim 1,000,000 descriptors on a ring of 1024 and wake the service.
	binary.LittleEndian.PutUint32(bad.mem[256:], 1_000_000)
	one := [8]byte{1}
	unix.Write(bad.fds[2], one[:])
	deadline := time.Now().Add(5 * time.Second)
	for svc.Stats().Corrupt.Load() == before {
		if time.Now().After(deadline) {
			t.Fatal("the service did not notice the corrupt ring")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The hostile app's control connection is closed by the service.
	bad.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := bad.Conn.Read(make([]byte, 64)); err == nil {
		t.Error("the corrupt application's control connection is still open")
	}
	udpEchoWorks(t, 7300)
}

// downFreeProd returns the offset of the downFree ring's producer counter in
// a region (docs/JOYRIDE.md: header, then the up ring, upFree, the down ring
// and downFree; each ring a producer and a consumer counter on their own
// cache lines, then its entries). The application produces on downFree: it
// gives the service's buffers back there.
func downFreeProd(mem []byte) int {
	r := int(binary.LittleEndian.Uint32(mem[12:]))
	b := int(binary.LittleEndian.Uint32(mem[16:]))
	f := 1
	for f < b {
		f <<= 1
	}
	align := func(n int) int { return (n + 63) &^ 63 }
	off := align(256 + 128 + r*24) // past the up ring
	off = align(off + 128 + f*4)   // past upFree
	return align(off + 128 + r*24) // past the down ring
}

// A corrupt down side is found by the service's send, not its receive: the
// application claims to have given back a million buffers on downFree, then
// datagrams arrive for its socket (which it never reads) until the service
// has lent out all its buffers and looks at downFree. The service must cut it off (not treat
// the ring as full and retry forever), and the others carry on.
func TestCorruptDownRingDisconnectsTheApplication(t *testing.T) {
	honest := attach(t)
	pc, err := honest.ListenPacket("udp", "198.18.0.2:7310")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, func(ctx context.Context) { echo.ServeUDPEcho(ctx, pc) })

	bad := attachRaw(t)
	if rep := bad.Do(t, proto.Request{Op: "listen", Network: "udp", Addr: "198.18.0.2:7311"}); !rep.OK {
		t.Fatalf("listen: %+v", rep)
	}
	before := svc.Stats().Corrupt.Load()
	binary.LittleEndian.PutUint32(bad.mem[downFreeProd(bad.mem):], 1_000_000)
	c, err := gonet.DialUDP(peer, nil, &tcpip.FullAddress{Addr: tcpip.AddrFrom4(svcAddr.As4()), Port: 7311}, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for svc.Stats().Corrupt.Load() == before {
		if time.Now().After(deadline) {
			t.Fatal("the service did not notice the corrupt down ring")
		}
		for range 64 {
			c.Write([]byte("for the hostile app"))
		}
		time.Sleep(2 * time.Millisecond)
	}
	bad.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := bad.Conn.Read(make([]byte, 64)); err == nil {
		t.Error("the corrupt application's control connection is still open")
	}
	udpEchoWorks(t, 7310)
}

// An application can only name its own sockets: data for a socket id it does
// not own goes nowhere, and control requests on it fail with EBADF.
func TestForeignSocketIDsAreRefused(t *testing.T) {
	honest := attach(t)
	pc, err := honest.ListenPacket("udp", "198.18.0.2:7301")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, func(ctx context.Context) { echo.ServeUDPEcho(ctx, pc) })

	bad := attachRaw(t)
	for _, id := range []uint32{1, 2, 3, 1000, ^uint32(0)} {
		if rep := bad.Do(t, proto.Request{Op: "close", Sock: id}); rep.OK || syscall.Errno(rep.Errno) != syscall.EBADF {
			t.Errorf("close of socket %d it does not own: %+v", id, rep)
		}
	}
	// Send a flood of datagrams on ids it does not own through its own ring.
	r, err := channel.Attach(dup(t, bad.fds[0]), dup(t, bad.fds[1]), dup(t, bad.fds[2]))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	before := svc.Stats().BadSockets.Load()
	end := r.App()
	to := proto.PackAddr(netipAddrPort("198.18.0.1:7400"))
	for i := 0; i < 500; i++ {
		if err := end.Send(proto.OpSend, uint32(1+i%3), to, []byte("hijack")); errors.Is(err, channel.ErrFull) {
			time.Sleep(time.Millisecond)
		}
		end.Notify()
	}
	deadline := time.Now().Add(5 * time.Second)
	for svc.Stats().BadSockets.Load()-before < 100 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := svc.Stats().BadSockets.Load() - before; got < 100 {
		t.Fatalf("only %d messages on foreign socket ids were counted", got)
	}
	udpEchoWorks(t, 7301)
}

func dup(t *testing.T, fd int) int {
	t.Helper()
	n, err := unix.Dup(fd)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func netipAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// An application at its socket limit is refused more (EMFILE), connections
// accepted beyond it are reset, a closed socket frees a place, and another
// application is not affected.
func TestSocketLimitPerApplication(t *testing.T) {
	old := svc.cfg.MaxSockets
	svc.cfg.MaxSockets = 8
	defer func() { svc.cfg.MaxSockets = old }()
	before := svc.Stats().OverLimit.Load()

	bad := attachRaw(t)
	if rep := bad.Do(t, proto.Request{Op: "listen", Network: "tcp", Addr: "198.18.0.2:7510"}); !rep.OK {
		t.Fatalf("listen tcp: %+v", rep)
	}
	var last uint32
	for i := range 7 {
		rep := bad.Do(t, proto.Request{Op: "listen", Network: "udp", Addr: fmt.Sprintf("198.18.0.2:%d", 7511+i)})
		if !rep.OK {
			t.Fatalf("socket %d of 8: %+v", i+2, rep)
		}
		last = rep.Sock
	}
	if rep := bad.Do(t, proto.Request{Op: "listen", Network: "udp", Addr: "198.18.0.2:7520"}); rep.OK || syscall.Errno(rep.Errno) != syscall.EMFILE {
		t.Fatalf("a ninth socket: %+v, want EMFILE", rep)
	}
	if rep := bad.Do(t, proto.Request{Op: "dial", Network: "udp", Addr: "198.18.0.1:7400"}); rep.OK || syscall.Errno(rep.Errno) != syscall.EMFILE {
		t.Fatalf("a ninth socket by dial: %+v, want EMFILE", rep)
	}
	// A connection to its listener would be its ninth socket: reset.
	c, err := gonet.DialTCP(peer, tcpip.FullAddress{Addr: tcpip.AddrFrom4(svcAddr.As4()), Port: 7510}, ipv4.ProtocolNumber)
	if err == nil {
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	if err == nil || os.IsTimeout(err) {
		t.Fatalf("a connection beyond the limit was not reset: %v", err)
	}
	if got := svc.Stats().OverLimit.Load() - before; got < 3 {
		t.Fatalf("%d refusals counted, want at least 3", got)
	}
	// Closing a socket frees its place.
	if rep := bad.Do(t, proto.Request{Op: "close", Sock: last}); !rep.OK {
		t.Fatalf("close: %+v", rep)
	}
	if rep := bad.Do(t, proto.Request{Op: "listen", Network: "udp", Addr: "198.18.0.2:7520"}); !rep.OK {
		t.Fatalf("after a close: %+v", rep)
	}
	// Another application has its own count.
	honest := attach(t)
	pc, err := honest.ListenPacket("udp", "198.18.0.2:7302")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, func(ctx context.Context) { echo.ServeUDPEcho(ctx, pc) })
	udpEchoWorks(t, 7302)
}

// An application slow to drain its ring loses no connections: what the ring
// cannot announce the service holds, as a kernel's accept queue would, and
// announces once the application drains. (It used to reset them.)
func TestAcceptsHeldWhileTheRingIsFull(t *testing.T) {
	a := attachRaw(t)
	rep := a.Do(t, proto.Request{Op: "listen", Network: "tcp", Addr: "198.18.0.2:7400", Backlog: 4096})
	if !rep.OK {
		t.Fatalf("listen: %+v", rep)
	}
	// More connections than the down ring has descriptors (1024), dialled
	// while the application reads nothing.
	const n = 1100
	heldBefore := svc.Stats().DownFull.Load()
	var conns []*gonet.TCPConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := gonet.DialContextTCP(ctx, peer, tcpip.FullAddress{Addr: tcpip.AddrFrom4(svcAddr.As4()), Port: 7400}, ipv4.ProtocolNumber)
		cancel()
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	if svc.Stats().DownFull.Load() == heldBefore {
		t.Fatal("the ring never filled: the test does not test holding")
	}
	region, err := channel.Attach(a.fds[0], a.fds[1], a.fds[2])
	if err != nil {
		t.Fatal(err)
	}
	end := region.App()
	accepted := map[uint64]bool{}
	buf := make([]byte, 64<<10)
	for deadline := time.Now().Add(10 * time.Second); len(accepted) < n && time.Now().Before(deadline); {
		d, _, err := end.Recv(buf)
		if errors.Is(err, channel.ErrEmpty) {
			end.Wait(time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if d.Op == proto.OpAccept && d.Sock == rep.Sock {
			accepted[d.Arg] = true
		}
	}
	if len(accepted) != n {
		t.Fatalf("%d of %d connections announced", len(accepted), n)
	}
	// And none was reset: each can still carry data to the service.
	for i, c := range conns {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatalf("connection %d after the app drained: %v", i, err)
		}
	}
}
