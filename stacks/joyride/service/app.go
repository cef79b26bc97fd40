package service

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/joyride-bench/joyride/stacks/joyride/channel"
	"github.com/joyride-bench/joyride/stacks/joyride/proto"
	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// app is one attached application.
type app struct {
	svc    *Service
	id     uint32
	name   string
	cred   *unix.Ucred
	conn   *net.UnixConn
	region *channel.Region
	end    *channel.End

	mu       sync.Mutex // guards socks, nextSock, detached; held by the engine while it serves a socket
	socks    map[uint32]*sock
	nextSock uint32
	detached bool

	notify  bool // engine only: deliver() sent something this round
	corrupt bool // engine only: the region was found corrupt; never touched again

	// What the application holds against its limits (Config.Max*):
	// listeners and flows (fast-path ports) under mu; held, its accepted
	// connections not yet announced, under mu; buffered, the bytes of
	// pendingTx and heldDown over its sockets, kept by the engine
	// (recount) and read by anyone.
	listeners int
	flows     int
	held      int
	buffered  atomic.Int64
	// ctlLimiter paces its control requests (nil: unlimited).
	ctlLimiter *rate.Limiter
	limits     limitLog
}

// acceptLoop accepts applications on the control socket.
func (s *Service) acceptLoop() {
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			select {
			case <-s.stop:
				return
			default:
			}
			s.log.Error("control socket accept", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go s.serveControl(c)
	}
}

// serveControl runs one application's control connection: register first, then
// requests until the connection closes, which detaches the application (also
// when it was killed: the kernel closes its socket).
func (s *Service) serveControl(c *net.UnixConn) {
	cred, err := peerCred(c)
	if err != nil {
		s.log.Warn("control: cannot identify peer", "err", err)
		c.Close()
		return
	}
	buf := make([]byte, 64<<10)
	var a *app
	defer func() {
		if a != nil {
			a.detach("control connection closed")
		} else {
			c.Close()
		}
	}()
	for {
		n, err := c.Read(buf)
		if err != nil || n == 0 {
			return
		}
		var req proto.Request
		if err := json.Unmarshal(buf[:n], &req); err != nil {
			s.reply(c, proto.Errorf(syscall.EINVAL, "bad request: %v", err), nil)
			continue
		}
		if a == nil {
			if req.Op != "register" {
				s.reply(c, proto.Errorf(syscall.EPERM, "register first (got %q)", req.Op), nil)
				continue
			}
			a, err = s.register(c, cred, req)
			if err != nil {
				s.reply(c, proto.Errorf(syscall.EINVAL, "%v", err), nil)
				return
			}
			continue
		}
		if a.ctlLimiter != nil && !a.ctlLimiter.Allow() {
			s.refuse(a, limitControlRate, req.Op)
			s.reply(c, proto.Errorf(syscall.EAGAIN, "more than %g control requests a second (joyrided -max-control-rate)", s.cfg.ControlRate), nil)
			continue
		}
		s.reply(c, s.handle(a, req), nil)
	}
}

func peerCred(c *net.UnixConn) (*unix.Ucred, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	raw.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	return cred, cerr
}

func (s *Service) reply(c *net.UnixConn, r proto.Reply, fds []int) error {
	b, _ := json.Marshal(r)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	_, _, err := c.WriteMsgUnix(b, oob, nil)
	return err
}

// register creates the application's region and hands it over.
func (s *Service) register(c *net.UnixConn, cred *unix.Ucred, req proto.Request) (*app, error) {
	if req.Version != proto.Version {
		return nil, fmt.Errorf("protocol version %d, the service speaks %d", req.Version, proto.Version)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errors.New("service stopping")
	}
	s.nextApp++
	id := s.nextApp
	s.mu.Unlock()
	region, err := channel.Create(fmt.Sprintf("joyride-app-%d", id), s.cfg.Region)
	if err != nil {
		return nil, err
	}
	name := filepath.Base(req.Name)
	a := &app{svc: s, id: id, name: name, cred: cred, conn: c, region: region, end: region.Service(), socks: map[uint32]*sock{},
		ctlLimiter: s.newControlLimiter()}
	memfd, appFd, svcFd := region.Fds()
	cfg := s.cfg.Region
	r := proto.Reply{OK: true, App: id, RingSize: cfg.RingSize, Buffers: cfg.Buffers, BufSize: cfg.BufSize,
		MaxMsg: proto.MaxMessage, SendWin: proto.SendWindow, MaxSockets: s.cfg.MaxSockets, ServiceID: fmt.Sprintf("joyrided pid %d", unix.Getpid())}
	if err := s.reply(c, r, []int{memfd, appFd, svcFd}); err != nil {
		region.Close()
		return nil, err
	}
	s.mu.Lock()
	s.apps[id] = a
	s.publishApps()
	s.mu.Unlock()
	s.stats.Apps.Add(1)
	s.log.Info("application attached", "app", id, "name", name, "pid", cred.Pid, "uid", cred.Uid, "region_bytes", region.Size())
	return a, nil
}

// publishApps refreshes the engine's snapshot; s.mu must be held.
func (s *Service) publishApps() {
	list := make([]*app, 0, len(s.apps))
	for _, a := range s.apps {
		list = append(list, a)
	}
	s.appList.Store(&list)
	s.decidePolicy()
	s.wake()
}

// handle runs one control request of an attached application.
func (s *Service) handle(a *app, req proto.Request) proto.Reply {
	switch req.Op {
	case "listen", "dial":
		// After every message the app put on its ring before this request:
		// a close sent there (OpClose) must take effect first, or listening
		// again on the address just closed would find it in use.
		s.runOnEngine(a, func() {})
		if req.Op == "listen" {
			return s.listen(a, req)
		}
		return s.dial(a, req)
	case "close", "shutdown":
		var flags tcpip.ShutdownFlags
		if req.Op == "shutdown" {
			switch req.How {
			case "read":
				flags = tcpip.ShutdownRead
			case "write":
				flags = tcpip.ShutdownWrite
			case "both":
				flags = tcpip.ShutdownRead | tcpip.ShutdownWrite
			default:
				return proto.Errorf(syscall.EINVAL, "shutdown how %q (allowed: read, write, both)", req.How)
			}
		}
		var r proto.Reply
		// On the engine, after the data the app queued before this request.
		s.runOnEngine(a, func() { r = s.closeOrShutdown(a, req.Sock, req.Op == "close", flags) })
		return r
	case "setsockopt":
		a.mu.Lock()
		defer a.mu.Unlock()
		k := a.socks[req.Sock]
		if k == nil {
			return proto.Errorf(syscall.EBADF, "socket %d is not yours", req.Sock)
		}
		o := k.ep.SocketOptions()
		switch req.Opt {
		case "nodelay":
			o.SetDelayOption(req.Value == 0)
		case "sndbuf":
			o.SetSendBufferSize(min(int64(req.Value), maxSocketBuffer), true)
		case "rcvbuf":
			o.SetReceiveBufferSize(min(int64(req.Value), maxSocketBuffer), true)
		default:
			return proto.Errorf(syscall.ENOPROTOOPT, "option %q (allowed: nodelay, sndbuf, rcvbuf)", req.Opt)
		}
		return proto.Reply{OK: true}
	}
	return proto.Errorf(syscall.EINVAL, "unknown request %q (allowed: listen, dial, close, shutdown, setsockopt)", req.Op)
}

// closeOrShutdown closes socket id of a (close) or shuts it down with flags;
// a TCP socket's data still waiting for the stack goes first. On the engine:
// from a control request or from an OpClose on the application's ring.
func (s *Service) closeOrShutdown(a *app, id uint32, close bool, flags tcpip.ShutdownFlags) proto.Reply {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := a.socks[id]
	if k == nil {
		return proto.Errorf(syscall.EBADF, "socket %d is not yours", id)
	}
	act := func() {
		if close {
			a.closeSock(k)
			s.releaseBuffers(k)
		} else {
			k.ep.Shutdown(flags)
		}
	}
	if len(k.pendingTx) > 0 && !k.udp {
		if close {
			delete(a.socks, k.id) // the id is gone for the app at once
		}
		k.closeWhenSent = func() { a.mu.Lock(); defer a.mu.Unlock(); act() }
	} else {
		act()
	}
	return proto.Reply{OK: true}
}

func parseAddr(network, addr string) (netip.AddrPort, bool, error) {
	udpNet := false
	switch network {
	case "tcp", "tcp4":
	case "udp", "udp4":
		udpNet = true
	default:
		return netip.AddrPort{}, false, fmt.Errorf("network %q (allowed: tcp, udp)", network)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return netip.AddrPort{}, udpNet, err
	}
	ip := netip.IPv4Unspecified()
	if host != "" {
		if ip, err = netip.ParseAddr(host); err != nil || !ip.Is4() {
			return netip.AddrPort{}, udpNet, fmt.Errorf("address %q is not IPv4", host)
		}
	}
	p, err := net.LookupPort(network, port)
	if err != nil {
		return netip.AddrPort{}, udpNet, err
	}
	return netip.AddrPortFrom(ip, uint16(p)), udpNet, nil
}

func full(ap netip.AddrPort) tcpip.FullAddress {
	fa := tcpip.FullAddress{Port: ap.Port()}
	if !ap.Addr().IsUnspecified() {
		fa.Addr = tcpip.AddrFrom4(ap.Addr().As4())
	}
	return fa
}

func addrString(fa tcpip.FullAddress) string {
	if fa.Addr.Len() != 4 {
		return netip.AddrPortFrom(netip.IPv4Unspecified(), fa.Port).String()
	}
	return netip.AddrPortFrom(netip.AddrFrom4(fa.Addr.As4()), fa.Port).String()
}

// listen binds a UDP socket, or binds and listens on a TCP one.
func (s *Service) listen(a *app, req proto.Request) proto.Reply {
	ap, isUDP, err := parseAddr(req.Network, req.Addr)
	if err != nil {
		return proto.Errorf(syscall.EINVAL, "listen: %v", err)
	}
	// The kernel's rule: ports below 1024 need privilege.
	if ap.Port() != 0 && ap.Port() < 1024 && a.cred.Uid != 0 {
		return proto.Errorf(syscall.EACCES, "listen on port %d needs root", ap.Port())
	}
	if !isUDP {
		a.mu.Lock()
		n := a.listeners
		a.mu.Unlock()
		if n >= s.cfg.MaxListeners {
			s.refuse(a, limitListeners, req.Addr)
			return proto.Errorf(syscall.EMFILE, "application holds %d listeners, its limit (joyrided -max-listeners)", n)
		}
	}
	ep, wq, r, ok := s.newEndpoint(a, isUDP)
	if !ok {
		return r
	}
	if !isUDP {
		ep.SocketOptions().SetReuseAddress(true)
		if req.ReusePort {
			ep.SocketOptions().SetReusePort(true)
		}
	}
	if terr := ep.Bind(full(ap)); terr != nil {
		ep.Close()
		return proto.Errorf(errnoOf(terr), "bind %v: %s", ap, terr)
	}
	if !isUDP {
		backlog := req.Backlog
		if backlog <= 0 {
			backlog = 128
		}
		backlog = min(backlog, s.cfg.MaxBacklog) // as somaxconn caps a kernel's
		if terr := ep.Listen(backlog); terr != nil {
			ep.Close()
			return proto.Errorf(errnoOf(terr), "listen %v: %s", ap, terr)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.detached {
		ep.Close()
		return proto.Errorf(syscall.ENOTCONN, "application detached")
	}
	k := a.newSock(s, ep, wq, isUDP, !isUDP)
	local, _ := ep.GetLocalAddress()
	if isUDP {
		s.fastRegister(k, local, tcpip.FullAddress{})
	}
	s.markReady(k)
	return proto.Reply{OK: true, Sock: k.id, Local: addrString(local)}
}

// dial connects a socket; for TCP it waits (bounded) for the handshake.
func (s *Service) dial(a *app, req proto.Request) proto.Reply {
	ap, isUDP, err := parseAddr(req.Network, req.Addr)
	if err != nil {
		return proto.Errorf(syscall.EINVAL, "dial: %v", err)
	}
	ep, wq, r, ok := s.newEndpoint(a, isUDP)
	if !ok {
		return r
	}
	entry, ch := waiter.NewChannelEntry(waiter.WritableEvents)
	wq.EventRegister(&entry)
	terr := ep.Connect(full(ap))
	if _, started := terr.(*tcpip.ErrConnectStarted); started {
		timeout := 30 * time.Second
		if req.TimeoutMs > 0 {
			timeout = time.Duration(req.TimeoutMs) * time.Millisecond
		}
		select {
		case <-ch:
			terr = ep.LastError()
		case <-time.After(timeout):
			terr = &tcpip.ErrTimeout{}
		}
	}
	wq.EventUnregister(&entry)
	if terr != nil {
		ep.Close()
		return proto.Errorf(errnoOf(terr), "connect %v: %s", ap, terr)
	}
	if !isUDP {
		ep.SocketOptions().SetDelayOption(false) // TCP_NODELAY, as Go's net does
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.detached {
		ep.Close()
		return proto.Errorf(syscall.ENOTCONN, "application detached")
	}
	k := a.newSock(s, ep, wq, isUDP, false)
	local, _ := ep.GetLocalAddress()
	remote, _ := ep.GetRemoteAddress()
	if isUDP {
		s.fastRegister(k, local, remote)
	}
	s.markReady(k)
	return proto.Reply{OK: true, Sock: k.id, Local: addrString(local), Remote: addrString(remote)}
}

// newEndpoint makes the stack endpoint of a new socket of a, as the kernel's
// socket(2) would: refused at a's socket limit.
func (s *Service) newEndpoint(a *app, isUDP bool) (tcpip.Endpoint, *waiter.Queue, proto.Reply, bool) {
	if r, over := s.overLimit(a); over {
		return nil, nil, r, false
	}
	proto4 := tcp.ProtocolNumber
	if isUDP {
		proto4 = udp.ProtocolNumber
	}
	wq := new(waiter.Queue)
	ep, terr := s.stack.NewEndpoint(proto4, ipv4.ProtocolNumber, wq)
	if terr != nil {
		return nil, nil, proto.Errorf(errnoOf(terr), "socket: %s", terr), false
	}
	return ep, wq, proto.Reply{}, true
}

// overLimit refuses a new socket when a holds its MaxSockets already. (The
// check is repeated nowhere else: a dial racing another request may exceed the
// limit by the app's concurrent requests, which the control socket serializes
// per app.)
func (s *Service) overLimit(a *app) (proto.Reply, bool) {
	a.mu.Lock()
	n := len(a.socks)
	a.mu.Unlock()
	if n < s.cfg.MaxSockets {
		return proto.Reply{}, false
	}
	s.refuse(a, limitSockets, "socket")
	return proto.Errorf(syscall.EMFILE, "application holds %d sockets, its limit (joyrided -max-sockets)", n), true
}

// fastRegister puts a UDP socket's port on the fast path (when the service
// has one): datagrams to it are delivered to the application from the NIC's
// buffer without gVisor, and its writes leave through a cached template. A
// connected socket (remote set) takes only its peer's datagrams, as gVisor
// would; a socket bound to an address that is not the service's stays on
// gVisor. a.mu must be held.
func (s *Service) fastRegister(k *sock, local, remote tcpip.FullAddress) {
	if s.fast == nil || local.Port == 0 {
		return
	}
	if local.Addr.Len() == 4 && !local.Addr.Unspecified() && local.Addr.As4() != s.cfg.Addr.Addr().As4() {
		return
	}
	a := k.app
	if a.flows >= s.cfg.MaxFlows {
		// Served by gVisor instead: slower, but it needs no entry of its own.
		s.refuse(a, limitFlows, addrString(local))
		return
	}
	a.flows++
	if remote.Addr.Len() == 4 && remote.Port != 0 {
		k.peer = netip.AddrPortFrom(netip.AddrFrom4(remote.Addr.As4()), remote.Port)
	}
	k.fastPort = local.Port
	s.fast.Register(local.Port, func(src netip.AddrPort, payload []byte) {
		// On the engine, inside its NIC poll.
		if k.peer.IsValid() && src != k.peer {
			s.stats.FastFiltered.Add(1)
			return
		}
		if !a.deliver(s, proto.OpData, k.id, proto.PackAddr(src), payload) {
			s.stats.DownFull.Add(1) // UDP drops, as a full socket buffer would
			k.dropped.Add(1)
		}
	})
}

// newSock registers an endpoint as the app's socket; a.mu must be held.
func (a *app) newSock(s *Service, ep tcpip.Endpoint, wq *waiter.Queue, isUDP, listener bool) *sock {
	a.nextSock++
	k := &sock{id: a.nextSock, app: a, ep: ep, wq: wq, udp: isUDP, listener: listener}
	if !isUDP && !listener {
		ep.SocketOptions().SetDelayOption(false)
	}
	k.entry = waiter.NewFunctionEntry(waiter.ReadableEvents|waiter.WritableEvents|waiter.EventHUp|waiter.EventErr,
		func(waiter.EventMask) { s.markReady(k) })
	wq.EventRegister(&k.entry)
	a.socks[k.id] = k
	if listener {
		a.listeners++
	}
	return k
}

// closeSock closes a socket; a.mu must be held.
func (a *app) closeSock(k *sock) {
	if k.closed {
		return
	}
	k.closed = true
	if k.fastPort != 0 {
		a.svc.fast.Unregister(k.fastPort)
		a.flows--
	}
	if k.listener {
		a.listeners--
	}

	k.wq.EventUnregister(&k.entry)
	k.ep.Close()
	delete(a.socks, k.id)
	for _, h := range k.heldAccepts { // never announced: the app cannot close them
		a.closeSock(h.c)
	}
	a.held -= len(k.heldAccepts)
	k.heldAccepts = nil
}

// deliver sends one message down to the app; false when its ring or buffers
// are full, or the app is cut off: a corrupt down ring (a counter or a freed
// buffer the app forged) cuts it off rather than count as "full", which would
// have the socket retry forever. Called by the engine (with or without a.mu;
// Send is the engine's).
func (a *app) deliver(s *Service, op uint16, sock uint32, arg uint64, payload []byte) bool {
	if a.corrupt {
		return false
	}
	if err := a.end.Send(op, sock, arg, payload); err != nil {
		if errors.Is(err, channel.ErrCorrupt) {
			s.cutOff(a, err)
		}
		return false
	}
	a.notify = true
	s.stats.MsgsDown.Add(1)
	return true
}

// detach frees everything the application had: its sockets (ports become free
// again), its region and its control connection.
func (a *app) detach(why string) {
	a.mu.Lock()
	if a.detached {
		a.mu.Unlock()
		return
	}
	a.detached = true
	for _, k := range a.socks {
		a.closeSock(k)
	}
	a.mu.Unlock()
	a.conn.Close()
	s := a.svc
	s.mu.Lock()
	delete(s.apps, a.id)
	s.publishApps()
	s.mu.Unlock()
	s.stats.Apps.Add(-1)
	s.log.Info("application detached", "app", a.id, "name", a.name, "why", why)
	// The engine may still be using the region in the round that loaded the old
	// app list: it closes the region at the start of its next round.
	s.retireMu.Lock()
	s.retire = append(s.retire, a)
	s.retireMu.Unlock()
	s.wake()
}
