// Package proto is the protocol between a Joyride application and joyrided: the
// control messages on the Unix socket and the operation codes of the data
// plane's descriptors. It is documented byte for byte in docs/JOYRIDE.md, so a
// C client (the preload shim) can speak it too.
//
// Two planes:
//
//   - Control: a SOCK_SEQPACKET Unix socket. Each message is one JSON object; the
//     service answers every request with one Reply, in order. The first request
//     is "register": its reply carries, as SCM_RIGHTS, the memfd of the app's
//     shared region and the two eventfds (see package channel). Socket setup
//     (listen, dial, close, shutdown, options) goes through this plane: it costs
//     microseconds, not a polling tick.
//   - Data: the region's rings. Every message there is a channel descriptor
//     chain whose Op is one of the Op* codes below, Sock the socket id the
//     service assigned, and Arg an operation-specific word.
//
// A socket id is the service's name for one of the app's sockets; ids are never
// reused within one registration, and an id the app does not own is refused.
package proto

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"syscall"
)

// Version is the protocol version; register fails on a mismatch.
const Version = 1

// DefaultSocket is where joyrided listens unless told otherwise.
const DefaultSocket = "/run/joyride/joyride.sock"

// Data-plane operations, app -> service ("up").
const (
	// OpSend: send the payload on Sock. For UDP, Arg is the destination
	// (PackAddr) or 0 for the connected peer.
	OpSend uint16 = 1
	// OpClose: close Sock once the messages queued before this one are
	// taken (no payload, no reply). A close travels on the ring, not as a
	// control request, so that closing does not cost a round trip through
	// the service's engine: with connection churn, synchronous closes
	// serialised per application fell behind (1,400 connections at 400/s
	// left 500 handlers waiting). A socket the app does not own is counted
	// and ignored, as for OpSend.
	OpClose uint16 = 2
)

// Data-plane operations, service -> app ("down").
const (
	// OpData: payload received on Sock. For UDP, Arg is the source (PackAddr).
	OpData uint16 = 16
	// OpAccept: listener Sock accepted a connection whose id is Arg; the
	// payload is the remote address ("ip:port").
	OpAccept uint16 = 17
	// OpEOF: the peer closed its sending side of Sock (orderly: read returns
	// io.EOF after the data already delivered).
	OpEOF uint16 = 18
	// OpError: Sock failed with errno Arg (e.g. ECONNRESET); the socket is dead.
	OpError uint16 = 19
	// OpSent: Arg bytes sent on Sock were taken by the stack; the app may have
	// that many more bytes in flight (TCP flow control between app and service).
	OpSent uint16 = 20
)

// SendWindow is how many bytes of a stream socket an app may have handed to the
// service and not yet seen acknowledged by OpSent.
const SendWindow = 256 << 10

// MaxMessage is the largest payload of one data-plane message.
const MaxMessage = 64 << 10

// Request is a control-plane request.
type Request struct {
	Op string `json:"op"` // register, listen, dial, close, shutdown, setsockopt

	// register
	Version int    `json:"version,omitempty"`
	Name    string `json:"name,omitempty"` // the app's name, for logs

	// listen, dial
	Network string `json:"network,omitempty"` // tcp or udp
	Addr    string `json:"addr,omitempty"`    // ip:port
	Backlog int    `json:"backlog,omitempty"`
	// ReusePort (listen, tcp): SO_REUSEPORT semantics. Several listeners
	// may bind the same address if every one of them sets it; the stack
	// spreads new connections over them. The preload shim sets it for a
	// listener shared across fork (nginx's workers).
	ReusePort bool `json:"reuseport,omitempty"`
	// TimeoutMs bounds a dial (0: the service's default, 30 s).
	TimeoutMs int `json:"timeout_ms,omitempty"`

	// close, shutdown, setsockopt
	Sock  uint32 `json:"sock,omitempty"`
	How   string `json:"how,omitempty"`   // shutdown: read, write, both
	Opt   string `json:"opt,omitempty"`   // setsockopt: nodelay, sndbuf, rcvbuf
	Value int    `json:"value,omitempty"` // setsockopt value
}

// Reply answers one Request.
type Reply struct {
	OK bool `json:"ok"`
	// Errno is the Linux errno of a failure (EADDRINUSE, ECONNREFUSED, ...),
	// so clients can return the error an application expects.
	Errno int    `json:"errno,omitempty"`
	Error string `json:"error,omitempty"`

	// register
	App      uint32 `json:"app,omitempty"`
	RingSize int    `json:"ring_size,omitempty"`
	Buffers  int    `json:"buffers,omitempty"`
	BufSize  int    `json:"buf_size,omitempty"`
	MaxMsg   int    `json:"max_message,omitempty"`
	SendWin  int    `json:"send_window,omitempty"`
	// MaxSockets is how many sockets the application may hold (listeners,
	// connections, UDP sockets, accepted connections); the next is refused
	// with EMFILE. A client may refuse it itself, at socket(2).
	MaxSockets int    `json:"max_sockets,omitempty"`
	ServiceID  string `json:"service,omitempty"`

	// listen, dial
	Sock   uint32 `json:"sock,omitempty"`
	Local  string `json:"local,omitempty"`
	Remote string `json:"remote,omitempty"`
}

// Errorf builds a failed reply carrying errno.
func Errorf(errno syscall.Errno, format string, a ...any) Reply {
	return Reply{OK: false, Errno: int(errno), Error: fmt.Sprintf(format, a...)}
}

// PackAddr packs an IPv4 address and port into a descriptor's Arg:
// bits 47..16 the address (big-endian order of its bytes), 15..0 the port.
func PackAddr(ap netip.AddrPort) uint64 {
	if !ap.Addr().Is4() {
		return 0
	}
	a := ap.Addr().As4()
	return uint64(binary.BigEndian.Uint32(a[:]))<<16 | uint64(ap.Port())
}

// UnpackAddr is the inverse of PackAddr; ok is false for 0 or bits above 47.
func UnpackAddr(v uint64) (netip.AddrPort, bool) {
	if v == 0 || v>>48 != 0 {
		return netip.AddrPort{}, false
	}
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], uint32(v>>16))
	return netip.AddrPortFrom(netip.AddrFrom4(a), uint16(v)), true
}
