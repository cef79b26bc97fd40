// Package prototest speaks joyrided's control protocol by hand, for tests
// that play an application the Go client would never be: one that keeps its
// ring full, never drains it, or corrupts it. Register does the handshake
// (register, read the reply and the region's descriptors); Conn.Do sends one
// request and reads its reply. Failures end the test.
package prototest

import (
	"encoding/json"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/joyride-bench/joyride/stacks/joyride/proto"
)

// Conn is a registered application's control connection.
type Conn struct {
	*net.UnixConn
}

// Register connects to the service's control socket, registers as name and
// returns the connection and the descriptors the reply carried (the region's
// memfd and its two doorbells, in that order). The test's cleanup closes
// the connection; the descriptors are the caller's (channel.Attach takes
// them over).
func Register(t testing.TB, socket, name string) (*Conn, []int) {
	t.Helper()
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: socket, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	req, _ := json.Marshal(proto.Request{Op: "register", Version: proto.Version, Name: name})
	if _, err := c.Write(req); err != nil {
		t.Fatalf("register: %v", err)
	}
	buf, oob := make([]byte, 4096), make([]byte, 256)
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	var rep proto.Reply
	if err := json.Unmarshal(buf[:n], &rep); err != nil || !rep.OK {
		t.Fatalf("register: %v %+v", err, rep)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		t.Fatalf("register: the reply carried no descriptors: %v", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 3 {
		t.Fatalf("register: descriptors %v, want 3: %v", fds, err)
	}
	return &Conn{c}, fds
}

// Do sends one control request and returns the service's reply, waiting at
// most 10 s for it.
func (c *Conn) Do(t testing.TB, req proto.Request) proto.Reply {
	t.Helper()
	b, _ := json.Marshal(req)
	if _, err := c.Write(b); err != nil {
		t.Fatalf("%s: %v", req.Op, err)
	}
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("%s: %v", req.Op, err)
	}
	var rep proto.Reply
	if err := json.Unmarshal(buf[:n], &rep); err != nil {
		t.Fatalf("%s: bad reply %q: %v", req.Op, buf[:n], err)
	}
	return rep
}
