package service

// The control-message decoder and handler under fuzzing. No DPDK here (the
// fuzzer runs several worker processes, which could not share DPDK ports): the
// service runs over a port that drops every frame, which is all the control
// plane needs, since no fuzzed request may wait on the wire (dials are left
// to the tests on a real wire).

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/joyride-bench/joyride/nic"
	"github.com/joyride-bench/joyride/nic/netstack"
	"github.com/joyride-bench/joyride/stacks/joyride/proto"
	"golang.org/x/sys/unix"
)

// dropPort is a nic.Port whose wire is cut: nothing arrives, what is sent is
// counted and dropped.
type dropPort struct{ sent int }

func (p *dropPort) RxBurst(b *nic.Batch) int { b.N = 0; return 0 }
func (p *dropPort) Alloc(b *nic.Batch, n int) int {
	n = min(n, b.Cap())
	for i := range n {
		b.Frames[i] = make([]byte, 2048)
		b.Handles[i] = unsafe.Pointer(nil)
	}
	b.N = n
	return n
}
func (p *dropPort) TxBurst(b *nic.Batch) int { n := b.N; p.sent += n; b.N = 0; return n }
func (p *dropPort) Free(b *nic.Batch)        { b.N = 0 }
func (p *dropPort) MAC() net.HardwareAddr    { return net.HardwareAddr{2, 0, 0, 0, 0, 1} }
func (p *dropPort) MTU() int                 { return 1500 }
func (p *dropPort) Features() nic.Features   { return nic.Features{Driver: "drop"} }
func (p *dropPort) Stats() (nic.Stats, error) {
	return nic.Stats{TxPackets: uint64(p.sent)}, nil
}
func (p *dropPort) Close() error { return nil }

// fuzzService is one service per fuzzing process, with one registered control
// connection the inputs are sent on.
var fuzzService struct {
	once sync.Once
	svc  *Service
	conn *net.UnixConn
	err  error
}

func fuzzControl() (*Service, *net.UnixConn, error) {
	f := &fuzzService
	f.once.Do(func() {
		dir, err := os.MkdirTemp("", "jr-control-fuzz")
		if err != nil {
			f.err = err
			return
		}
		sock := filepath.Join(dir, "joyride.sock")
		f.svc, f.err = New(netstack.New(&dropPort{}, netstack.Options{}), Config{Addr: netip.MustParsePrefix("198.18.0.2/24"),
			Socket: sock, MaxSockets: 64, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if f.err != nil {
			return
		}
		go f.svc.Run()
		if f.conn, f.err = net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: sock, Net: "unixpacket"}); f.err != nil {
			return
		}
		req, _ := json.Marshal(proto.Request{Op: "register", Version: proto.Version, Name: "fuzz"})
		f.conn.Write(req)
		buf, oob := make([]byte, 4096), make([]byte, 256)
		n, oobn, _, _, err := f.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			f.err = err
			return
		}
		// Close the region's descriptors: the fuzzer only speaks control.
		if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil && len(msgs) > 0 {
			fds, _ := unix.ParseUnixRights(&msgs[0])
			for _, fd := range fds {
				unix.Close(fd)
			}
		}
		var rep proto.Reply
		if err := json.Unmarshal(buf[:n], &rep); err != nil || !rep.OK {
			f.err = err
		}
	})
	return f.svc, f.conn, f.err
}

// FuzzControlRequest: whatever an attached application sends on its control
// socket, the service answers it with one well-formed reply and keeps serving
// (the next request is answered as it should be).
func FuzzControlRequest(f *testing.F) {
	for _, r := range []proto.Request{
		{Op: "listen", Network: "udp", Addr: "198.18.0.2:7000"},
		{Op: "listen", Network: "tcp", Addr: ":80", Backlog: -5},
		{Op: "listen", Network: "tcp6", Addr: "[::1]:1"},
		{Op: "close", Sock: 1},
		{Op: "shutdown", Sock: 2, How: "sideways"},
		{Op: "setsockopt", Sock: 1, Opt: "sndbuf", Value: -1 << 30},
		{Op: "register", Version: 99},
	} {
		b, _ := json.Marshal(r)
		f.Add(b)
	}
	f.Add([]byte(`{"op":"listen","network":"udp","addr":"198.18.0.2:99999"}`))
	f.Add([]byte(`{"op":`))
	f.Add([]byte(`[1,2,3]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var req proto.Request
		if len(data) == 0 || len(data) > 60<<10 {
			t.Skip("an empty message is the end of a SOCK_SEQPACKET stream; larger ones exceed the service's buffer")
		}
		if json.Unmarshal(data, &req) == nil && req.Op == "dial" {
			t.Skip("a dial waits on the wire, which this harness has cut")
		}
		_, c, err := fuzzControl()
		if err != nil {
			t.Fatal(err)
		}
		ask := func(msg []byte) proto.Reply {
			if _, err := c.Write(msg); err != nil {
				t.Fatalf("write: %v", err)
			}
			buf := make([]byte, 64<<10)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := c.Read(buf)
			if err != nil {
				t.Fatalf("no reply to %q: %v", msg, err)
			}
			var rep proto.Reply
			if err := json.Unmarshal(buf[:n], &rep); err != nil {
				t.Fatalf("reply to %q is not a Reply: %q", msg, buf[:n])
			}
			return rep
		}
		if rep := ask(data); !rep.OK && rep.Errno == 0 {
			t.Fatalf("a refusal without an errno: %+v", rep)
		}
		probe, _ := json.Marshal(proto.Request{Op: "setsockopt", Sock: 1 << 31, Opt: "nodelay"})
		if rep := ask(probe); rep.OK || syscall.Errno(rep.Errno) != syscall.EBADF {
			t.Fatalf("after %q the service answers a foreign socket with %+v", data, rep)
		}
	})
}
