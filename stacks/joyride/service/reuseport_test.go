//go:build dpdk && cgo

package service

import (
	"syscall"
	"testing"

	"github.com/joyride-bench/joyride/stacks/joyride/proto"
)

// TestListenReusePort: listeners that all ask for reuseport share an address
// (nginx's workers under the preload shim); one that does not is refused, and
// the address is free again once they are closed.
func TestListenReusePort(t *testing.T) {
	a, b, c := attachRaw(t), attachRaw(t), attachRaw(t)
	const addr = "198.18.0.2:9411"
	ra := a.Do(t, proto.Request{Op: "listen", Network: "tcp", Addr: addr, ReusePort: true})
	rb := b.Do(t, proto.Request{Op: "listen", Network: "tcp", Addr: addr, ReusePort: true})
	if !ra.OK || !rb.OK {
		t.Fatalf("two reuseport listeners on %s: %+v, %+v", addr, ra, rb)
	}
	if rc := c.Do(t, proto.Request{Op: "listen", Network: "tcp", Addr: addr}); rc.OK || rc.Errno != int(syscall.EADDRINUSE) {
		t.Fatalf("a listener without reuseport on a shared address: %+v, want EADDRINUSE", rc)
	}
	a.Do(t, proto.Request{Op: "close", Sock: ra.Sock})
	b.Do(t, proto.Request{Op: "close", Sock: rb.Sock})
	if rc := c.Do(t, proto.Request{Op: "listen", Network: "tcp", Addr: addr}); !rc.OK {
		t.Fatalf("listen after both closed: %+v", rc)
	}
}

// Close then listen again on the same address, as a restarting server does:
// the close travels on the ring (OpClose) and the listen on the control
// socket, and the listen must see the close (no EADDRINUSE), as with the
// kernel's sockets.
func TestListenAfterCloseSeesTheClose(t *testing.T) {
	st := attach(t)
	for i := range 200 {
		ln, err := st.Listen("tcp", "198.18.0.2:7500")
		if err != nil {
			t.Fatalf("listen %d after closing the previous listener: %v", i, err)
		}
		if err := ln.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
