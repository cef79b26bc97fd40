// Package joyride is the client side of Joyride: what an application links to use
// the Joyride service (joyrided) as its network stack.
//
// Joyride is a microkernel-style network stack. One process, joyrided, owns the
// NIC and runs TCP/IP for every application on the machine; an application is an
// ordinary, unprivileged process that talks to it over two planes:
//
//   - The control plane is a SOCK_SEQPACKET Unix socket (proto.DefaultSocket).
//     The first request registers the application; its reply hands over, as
//     SCM_RIGHTS, a memfd and two eventfds. Socket setup and teardown (listen,
//     dial, close, shutdown, options) are JSON requests on this socket, one at a
//     time, each answered by one reply. They are rare and cost microseconds.
//   - The data plane is the memfd: a region of shared memory holding two rings of
//     descriptors and a buffer pool (package channel), one ring per direction.
//     Every byte an application sends or receives travels there as a message
//     (proto.OpSend up; OpData, OpAccept, OpEOF, OpError, OpSent down) without a
//     system call, except an eventfd write to wake a side that went to sleep.
//
// Because the service is a separate process, an application sees only its own
// region and its own socket ids: a buggy application can break nothing but
// itself, and an application that dies loses only its sockets.
//
// Inside the application, this package hides all of that behind the standard
// library's types. Stack.Dial returns a net.Conn, Stack.Listen a net.Listener and
// Stack.ListenPacket a net.PacketConn, with the semantics Go programs expect from
// net.TCPConn and net.UDPConn: blocking calls, deadlines that fail with
// os.ErrDeadlineExceeded, io.EOF after an orderly close, net.ErrClosed after
// Close, errors.Is(err, syscall.ECONNREFUSED) and friends. So the same
// application code (cmd/jrapp, or any Go server written against net.Conn) runs
// unchanged on the kernel stack and on Joyride; only the Stack it was handed
// differs.
//
// Under the hood one dispatcher goroutine per Stack drains the down ring and
// routes each message by socket id to that socket's queue, waking the goroutine
// blocked in Read, Accept or Write; writers put messages on the up ring directly.
// Stream sockets are flow controlled: at most proto.SendWindow bytes may be
// handed to the service and not yet acknowledged by OpSent, so a fast writer
// blocks instead of filling the shared buffers.
package joyride

import (
	"errors"
	"fmt"
	"github.com/joyride-bench/joyride/internal/deadline"
	"image/color"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/joyride-bench/joyride/nic"
	"github.com/joyride-bench/joyride/stacks"
	"github.com/joyride-bench/joyride/stacks/joyride/channel"
	"github.com/joyride-bench/joyride/stacks/joyride/proto"
)

// Options configure the Joyride stack: the application's side and, when the
// harness starts the service, joyrided's.
type Options struct {
	// Socket is the path of joyrided's control socket ("@name" for an abstract
	// socket). Empty: <run dir>/joyride.sock when the harness gives a run
	// directory, else proto.DefaultSocket.
	Socket string `yaml:"socket" json:"socket"`
	// Driver is the DPDK vdev joyrided uses on the local testbed: af_xdp or
	// af_packet.
	Driver string `yaml:"driver" json:"driver"`
	// Profile is the NIC profile joyrided opens its port under (nic.Profiles:
	// lcd, the default, or cx5): the rings, and the features its stack sees.
	Profile string `yaml:"profile" json:"profile,omitempty"`
	// Spin is how long joyrided's engine polls after its last work before it
	// sleeps, e.g. "200us" (empty: the service's default).
	Spin string `yaml:"spin" json:"spin"`
	// CorePolicy is joyrided's engine policy (service.CorePolicy): auto (the
	// default: shared when the application may run on the engine's core),
	// shared or dedicated.
	CorePolicy string `yaml:"core_policy" json:"core_policy,omitempty"`
	// FastPath is joyrided's UDP fast path: on (the default) or off (every
	// datagram through gVisor, for comparison).
	FastPath string `yaml:"fast_path" json:"fast_path,omitempty"`
}

// Validate checks the options.
func (o *Options) Validate() error {
	switch o.Driver {
	case "", "af_xdp", "af_packet":
	default:
		return fmt.Errorf("driver %q is not allowed (allowed: af_xdp, af_packet)", o.Driver)
	}
	if o.Spin != "" {
		if d, err := time.ParseDuration(o.Spin); err != nil || d < 0 || d > time.Second {
			return fmt.Errorf("spin %q is not a duration in 0s..1s (e.g. 200us)", o.Spin)
		}
	}
	switch o.FastPath {
	case "", "on", "off":
	default:
		return fmt.Errorf("fast_path %q is not allowed (allowed: on, off)", o.FastPath)
	}
	switch o.CorePolicy {
	case "", "auto", "shared", "dedicated":
	default:
		return fmt.Errorf("core_policy %q is not allowed (allowed: auto, shared, dedicated)", o.CorePolicy)
	}
	if _, err := nic.LookupProfile(o.Profile); err != nil {
		return err
	}
	if len(o.Socket) > 107 {
		return fmt.Errorf("socket %q is too long for a Unix socket path (%d bytes, at most 107)", o.Socket, len(o.Socket))
	}
	return nil
}

func init() {
	stacks.Register(stacks.Factory{
		Name:       "joyride",
		Summary:    "Joyride: TCP/IP in the joyrided service, reached over shared memory",
		NewOptions: func() any { return &Options{Driver: "af_xdp"} },
		// Unmodified programs through the preload shim; many applications
		// per joyrided; joyrided takes the PCI device (-pci).
		Capabilities: []stacks.Capability{stacks.Preload, stacks.MultiInstance, stacks.PCIDevice},
		Lacks: map[stacks.Capability]string{
			stacks.MultiQueue: "joyrided opens one receive queue of its port",
		},
		Display:     &stacks.Display{Color: color.RGBA{0xd5, 0x5e, 0x00, 0xff}, Marker: stacks.MarkerBox, Order: 3}, // Okabe–Ito vermilion
		ServerFiles: []string{"joyrided", "libjoyride-preload.so"},
		Open: func(opts any, env stacks.Env) (stacks.Stack, error) {
			o := *opts.(*Options)
			o.Socket = socketPath(o, env)
			return Open(o)
		},
		Daemon: func(opts any, env stacks.Env) *stacks.Daemon {
			o := *opts.(*Options)
			cpu := 0
			if len(env.CPUs) > 0 {
				cpu = env.CPUs[0]
			}
			driver := o.Driver
			if driver == "" {
				driver = "af_xdp"
			}
			args := []string{"-iface", env.Iface, "-driver", driver, "-addr", env.Addr.String(),
				"-socket", socketPath(o, env), "-cpu", strconv.Itoa(cpu),
				"-file-prefix", "joyrided-" + filepath.Base(env.RunDir)}
			if o.Spin != "" {
				args = append(args, "-spin", o.Spin)
			}
			if o.Profile != "" {
				args = append(args, "-profile", o.Profile)
			}
			if o.FastPath == "off" {
				args = append(args, "-fast-path=false")
			}
			if o.CorePolicy != "" {
				args = append(args, "-core-policy", o.CorePolicy)
			}
			return &stacks.Daemon{Binary: "joyrided", Args: args}
		},
	})
}

// socketPath is where the application and the service meet.
func socketPath(o Options, env stacks.Env) string {
	switch {
	case o.Socket != "":
		return o.Socket
	case env.RunDir != "":
		return filepath.Join(env.RunDir, "joyride.sock")
	}
	return proto.DefaultSocket
}

// PreloadLibrary is the file name of the preload shim, looked for next to the
// running executable (make build puts both in bin/) unless JOYRIDE_PRELOAD_LIB
// names it.
const PreloadLibrary = "libjoyride-preload.so"

// PreloadEnv is the environment of an unmodified program whose sockets
// should go to this stack's service: the shim preloaded, this service's
// control socket, and no silent fallback to the kernel (a measurement of
// "Joyride" that ran on the kernel would be a lie).
func (s *Stack) PreloadEnv() ([]string, error) {
	lib := os.Getenv("JOYRIDE_PRELOAD_LIB")
	if lib == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		lib = filepath.Join(filepath.Dir(exe), PreloadLibrary)
	}
	if _, err := os.Stat(lib); err != nil {
		return nil, fmt.Errorf("joyride: the preload shim is missing (make build makes it): %w", err)
	}
	return []string{"LD_PRELOAD=" + lib, "JOYRIDE_SOCKET=" + s.opts.Socket, "JOYRIDE_FALLBACK=fail"}, nil
}

// ErrServiceGone is the error of sockets and requests after joyrided closed the
// application's control connection (it stopped, crashed or disconnected the
// application). Open a new Stack to reconnect.
var ErrServiceGone = errors.New("joyride: the service closed the connection (did joyrided stop?)")

// ErrRegionCorrupt is the error of every socket after the shared region was
// found corrupt.
var ErrRegionCorrupt = errors.New("joyride: the shared region is corrupt")

// Stack is an application's connection to joyrided. It implements stacks.Stack.
// All its methods are safe for concurrent use.
type Stack struct {
	opts   Options
	ctl    *control
	region *channel.Region
	end    *channel.End

	maxMsg  int // largest payload of one message
	sendWin int // stream send window

	// sendMu serializes producers on the up ring (End.Send is single-producer)
	// and guards regionClosed.
	sendMu       sync.Mutex
	regionClosed bool

	mu       sync.Mutex // guards socks, closed, creating, orphans; taken before a sock's mu
	socks    map[uint32]*sock
	closed   bool
	creating int                   // listen/dial requests in flight
	orphans  []orphan              // messages for unknown ids while creating > 0
	dead     atomic.Pointer[error] // why the data plane stopped, if it did

	stopping atomic.Bool
	dispDone chan struct{}
	sleeper  *channel.Sleeper // the dispatcher's sleep on the app's eventfd
	bufs     *recvBufs

	ctr Counters
}

// Counters are the client's own counts of data-plane traffic.
type Counters struct {
	MsgsIn   atomic.Uint64 // messages taken from the down ring
	MsgsOut  atomic.Uint64 // messages put on the up ring
	BytesIn  atomic.Uint64 // payload bytes received
	BytesOut atomic.Uint64 // payload bytes sent
	// Dropped counts messages thrown away: for sockets the application no
	// longer has (closed), of unknown operations, and datagrams beyond a
	// socket's receive queue limit.
	Dropped atomic.Uint64
	// SendFull counts sends that found the up ring or buffer pool full and
	// had to wait for the service.
	SendFull atomic.Uint64
}

// idleWait bounds the dispatcher's sleep. Wakeups come from the service's
// Notify, a hang-up of the control socket and Close; the bound is a safety net
// that costs an idle application ten wakeups a second.
const idleWait = 100 * time.Millisecond

// Open connects to joyrided at o.Socket, registers, maps the shared region and
// starts the dispatcher.
func Open(o Options) (*Stack, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("joyride stack: %w", err)
	}
	ctl, err := dialControl(o.Socket)
	if err != nil {
		return nil, err
	}
	rep, fds, err := ctl.roundTrip(&proto.Request{Op: "register", Version: proto.Version, Name: filepath.Base(os.Args[0])})
	if err == nil && !rep.OK {
		err = replyError(rep)
		if rep.Errno != 0 && rep.Error != "" {
			err = fmt.Errorf("%s: %w", rep.Error, err)
		}
	}
	if err == nil && len(fds) < 3 {
		err = fmt.Errorf("the register reply carried %d file descriptors, want 3 (memfd, app eventfd, service eventfd)", len(fds))
	}
	if err != nil {
		closeFds(fds)
		ctl.close()
		return nil, fmt.Errorf("joyride: register with the service at %s: %w", o.Socket, err)
	}
	closeFds(fds[3:])
	region, err := channel.Attach(fds[0], fds[1], fds[2])
	if err != nil {
		closeFds(fds[:3])
		ctl.close()
		return nil, fmt.Errorf("joyride: attach the shared region from %s: %w", o.Socket, err)
	}
	s := &Stack{
		opts:     o,
		ctl:      ctl,
		region:   region,
		end:      region.App(),
		maxMsg:   proto.MaxMessage,
		sendWin:  proto.SendWindow,
		socks:    map[uint32]*sock{},
		dispDone: make(chan struct{}),
	}
	if rep.MaxMsg > 0 && rep.MaxMsg < s.maxMsg {
		s.maxMsg = rep.MaxMsg
	}
	s.bufs = newRecvBufs(max(s.maxMsg, smallRecvBuf+1))
	if rep.SendWin > 0 {
		s.sendWin = rep.SendWin
	}
	// The dispatcher sleeps in Go's netpoller, not in poll(2).
	if s.sleeper, err = s.end.NewSleeper(); err != nil {
		ctl.close()
		region.Close()
		return nil, fmt.Errorf("joyride: %w", err)
	}
	go s.dispatch()
	return s, nil
}

func closeFds(fds []int) {
	for _, fd := range fds {
		syscall.Close(fd)
	}
}

// Name implements stacks.Stack.
func (s *Stack) Name() string { return "joyride" }

// Stats implements stacks.Stack: messages in and out of the region, and drops.
func (s *Stack) Stats() stacks.Stats {
	return stacks.Stats{
		RxPackets: s.ctr.MsgsIn.Load(),
		TxPackets: s.ctr.MsgsOut.Load(),
		Dropped:   s.ctr.Dropped.Load(),
	}
}

// Counters returns the client's detailed counters (live values).
func (s *Stack) Counters() *Counters { return &s.ctr }

// Close implements stacks.Stack: every socket fails with net.ErrClosed, the
// dispatcher stops, and the control connection and the region are released
// (the service then frees the application's sockets). Close is idempotent.
func (s *Stack) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	socks := s.takeSocksLocked()
	s.mu.Unlock()
	for _, k := range socks {
		k.shut(nil)
	}
	s.stopping.Store(true)
	// Wake the dispatcher if it sleeps: the region (and so its eventfd) is
	// open until it has stopped.
	s.sleeper.Wake()
	<-s.dispDone
	s.sleeper.Close()
	err := s.ctl.close()
	s.sendMu.Lock()
	s.regionClosed = true
	err = errors.Join(err, s.region.Close())
	s.sendMu.Unlock()
	return err
}

func (s *Stack) takeSocksLocked() []*sock {
	socks := make([]*sock, 0, len(s.socks))
	for id, k := range s.socks {
		socks = append(socks, k)
		delete(s.socks, id)
	}
	return socks
}

// fail stops the data plane for good: every socket gets err.
func (s *Stack) fail(err error) {
	s.dead.CompareAndSwap(nil, &err)
	s.mu.Lock()
	socks := make([]*sock, 0, len(s.socks))
	for _, k := range s.socks {
		socks = append(socks, k)
	}
	s.mu.Unlock()
	for _, k := range socks {
		k.setErr(err)
	}
}

// usable says why new sockets cannot be made, if they cannot.
func (s *Stack) usable() error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return net.ErrClosed
	}
	if e := s.dead.Load(); e != nil {
		return *e
	}
	return nil
}

// create runs a control request that makes a socket (listen, dial) and
// registers the socket under the id the reply names. Messages for that id can
// reach the down ring before the reply reaches us (a peer that talks first);
// while such a request is in flight the dispatcher keeps messages for unknown
// ids aside, and they are replayed here, in order.
func (s *Stack) create(req *proto.Request, kind sockKind, op, syscallName, network string, addr net.Addr) (proto.Reply, *sock, error) {
	s.mu.Lock()
	s.creating++
	s.mu.Unlock()
	rep, err := s.request(req, op, syscallName, network, addr)
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.doneCreatingLocked()
	if err != nil {
		return rep, nil, err
	}
	if s.closed || s.dead.Load() != nil {
		go s.closeRemote(rep.Sock)
		err := net.ErrClosed
		if e := s.dead.Load(); e != nil {
			err = *e
		}
		return rep, nil, &net.OpError{Op: op, Net: network, Addr: addr, Err: err}
	}
	k := newSock(s, rep.Sock, kind)
	s.socks[rep.Sock] = k
	keep := s.orphans[:0]
	for _, o := range s.orphans {
		if t := s.socks[o.d.Sock]; t != nil {
			s.applyLocked(t, o.d, o.buf, o.n)
		} else {
			keep = append(keep, o)
		}
	}
	clear(s.orphans[len(keep):])
	s.orphans = keep
	return rep, k, nil
}

// doneCreatingLocked ends one create; when none is left, messages still set
// aside are for sockets nobody will claim.
func (s *Stack) doneCreatingLocked() {
	s.creating--
	if s.creating > 0 {
		return
	}
	for _, o := range s.orphans {
		s.bufs.put(o.buf)
		s.dropLocked(o.d)
	}
	clear(s.orphans)
	s.orphans = s.orphans[:0]
}

func (s *Stack) remove(id uint32) {
	s.mu.Lock()
	delete(s.socks, id)
	s.mu.Unlock()
}

// closeRemote asks the service to close socket id: with an OpClose on the
// ring, behind the data already queued, without waiting; only when the ring
// is full (or gone) with a control request, which waits for the engine.
// A socket the service no longer knows (EBADF) or a stack that is closing is
// not an error: the socket is gone either way.
func (s *Stack) closeRemote(id uint32) error {
	if s.usable() != nil {
		return nil
	}
	s.sendMu.Lock()
	var err error = net.ErrClosed
	if !s.regionClosed {
		if err = s.end.Send(proto.OpClose, id, 0, nil); err == nil {
			s.end.Notify()
		}
	}
	s.sendMu.Unlock()
	if err == nil {
		s.ctr.MsgsOut.Add(1)
		return nil
	}
	rep, fds, err := s.ctl.roundTrip(&proto.Request{Op: "close", Sock: id})
	closeFds(fds)
	if err != nil {
		if err == ErrServiceGone || err == net.ErrClosed {
			return nil
		}
		return err
	}
	if !rep.OK && rep.Errno != 0 && syscall.Errno(rep.Errno) != syscall.EBADF {
		return os.NewSyscallError("close", syscall.Errno(rep.Errno))
	}
	return nil
}

// send puts one message on the up ring and wakes the service. When the ring or
// the buffers are full it retries, with a growing pause, until the service
// frees room, k is closed or fails, or the deadline dl passes.
func (s *Stack) send(k *sock, dl *deadline.Deadline, op uint16, arg uint64, p []byte) error {
	var (
		timer   *time.Timer
		backoff = 10 * time.Microsecond
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		s.sendMu.Lock()
		if s.regionClosed {
			s.sendMu.Unlock()
			return net.ErrClosed
		}
		err := s.end.Send(op, k.id, arg, p)
		if err == nil {
			err = s.end.Notify()
			s.sendMu.Unlock()
			s.ctr.MsgsOut.Add(1)
			s.ctr.BytesOut.Add(uint64(len(p)))
			return nil // a failed Notify is the service's loss; the message is queued
		}
		s.sendMu.Unlock()
		switch {
		case errors.Is(err, channel.ErrTooBig):
			return syscall.EMSGSIZE
		case !errors.Is(err, channel.ErrFull):
			return err
		}
		s.ctr.SendFull.Add(1)
		if err := k.sendable(); err != nil {
			return err
		}
		if e := s.dead.Load(); e != nil {
			return *e
		}
		s.end.Notify() // make sure the service is draining
		if timer == nil {
			timer = time.NewTimer(backoff)
		} else {
			timer.Reset(backoff)
		}
		select {
		case <-timer.C:
		case <-dl.Wait():
			return os.ErrDeadlineExceeded
		}
		if backoff < time.Millisecond {
			backoff *= 2
		}
	}
}
