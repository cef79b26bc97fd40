// Package service is joyrided's core: one process owns the NIC, runs gVisor's
// TCP/IP stack over it, and serves many applications, each through a private
// shared-memory region (package channel) and a control socket (package proto).
//
// One engine goroutine, locked to its OS thread, does all the data-plane work in
// a loop, so a packet reaches an application without a goroutine hand-off:
//
//  1. poll the NIC (nic/netstack.Endpoint.Poll): frames go through the stack in
//     this goroutine; sockets that became readable are put on the ready list by
//     their waiter callbacks;
//  2. take up to Config.UpBatch messages from each application's "up" ring, starting
//     with a different application each round, and write them into the
//     sockets (the stack queues frames for transmit): an application that
//     keeps its ring full gets its share of the engine and no more, so the
//     others' messages wait at most a round behind it;
//  3. read every ready socket into its application's "down" ring;
//  4. flush the transmit queue and wake the applications that got messages.
//
// When a round finds no work for Config.Spin the engine sleeps in one ppoll(2)
// on the applications' event fds, the NIC's descriptors when it has them, and
// its own wake fd (TCP callbacks from the stack's goroutines write it), with a
// short timeout so a NIC without descriptors is still polled: an idle
// joyrided costs almost no CPU. Control requests (listen, dial, close) run on
// one goroutine per application connection; they share each application's
// socket table with the engine under the application's mutex.
//
// Everything an application writes into its region is validated by package
// channel before the service acts on it; socket ids are looked up in that
// application's own table, so an application can only name its own sockets.
package service

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/joyride-bench/joyride/nic/netstack"
	"github.com/joyride-bench/joyride/stacks/joyride/channel"
	"github.com/joyride-bench/joyride/stacks/joyride/proto"
	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/waiter"
)

// Link is the stack's view of the NIC plus the poll the engine drives (package
// nic/netstack's Endpoint).
type Link interface {
	stack.LinkEndpoint
	// Poll receives a burst into the stack and flushes pending transmits.
	Poll() (rx, tx int)
	// Flush transmits what the stack queued.
	Flush() int
	// SetSpinning(true) makes transmits queue for the next Poll or Flush
	// instead of leaving one by one (the engine flushes once per round);
	// false flushes and lets transmits from other goroutines leave at once,
	// for while the engine sleeps.
	SetSpinning(on bool)
}

// Config configures a service.
type Config struct {
	// Addr is the service's IPv4 address and prefix on the link.
	Addr netip.Prefix
	// Gateway, when valid, is the default route's next hop.
	Gateway netip.Addr
	// Socket is the control socket's path.
	Socket string
	// Spin is how long the engine keeps polling after the last work before it
	// sleeps (default 1 ms).
	Spin time.Duration
	// IdlePoll bounds a sleep: the NIC is polled at least this often (default 1 ms).
	IdlePoll time.Duration
	// Region shapes each application's shared memory.
	Region channel.Config
	// MaxSockets bounds the sockets one application may hold (listeners,
	// connections, UDP sockets; accepted connections count), so that one
	// application cannot exhaust the service's memory or ports for the others:
	// the next socket is refused with EMFILE, an accepted connection beyond it
	// reset. (What gVisor queues per socket is bounded per socket, so this
	// bounds it per application too; MaxBufferedBytes bounds the service's
	// own.) Default DefaultMaxSockets.
	MaxSockets int
	// MaxListeners bounds an application's TCP listeners (each holds a port
	// of the service's one address and an accept queue); the next listen is
	// refused with EMFILE. Default DefaultMaxListeners.
	MaxListeners int
	// MaxBacklog bounds the connections accepted for an application that
	// its full ring could not announce yet, over all its listeners (and caps
	// each listener's backlog); a connection beyond it is reset. Default
	// DefaultMaxBacklog.
	MaxBacklog int
	// MaxBufferedBytes bounds the bytes the service holds for an
	// application's sockets: stream data the stack has not taken yet, and
	// data read from the stack that the application's ring could not take.
	// A send beyond it fails its socket with ENOBUFS; past it the service
	// reads no more for the application until it drains. Default
	// DefaultMaxBufferedBytes.
	MaxBufferedBytes int64
	// MaxFlows bounds the UDP fast path's port entries an application's
	// sockets hold; a socket beyond it is served through gVisor. Default
	// DefaultMaxFlows.
	MaxFlows int
	// ControlRate bounds an application's control requests per second
	// (token bucket of ControlBurst); a request beyond it is answered with
	// EAGAIN. Default DefaultControlRate; negative: unlimited.
	ControlRate  float64
	ControlBurst int
	// UpBatch is how many messages the engine takes from one application's
	// ring in a round (default DefaultUpBatch; the ring's size takes all).
	UpBatch int
	// NoFastPath keeps every UDP datagram on gVisor's path (for comparison;
	// see nic/netstack's FastPath).
	NoFastPath bool
	// CorePolicy says whether the engine has a core of its own (default
	// PolicyAuto: decided from the engine's and the applications' CPU
	// affinity; see CorePolicy).
	CorePolicy CorePolicy
	// Log receives the service's log (default: slog.Default()).
	Log *slog.Logger
}

// CorePolicy is how the engine uses its core when it runs out of work.
//
// On a core of its own (PolicyDedicated) the engine spins for Config.Spin
// after its last work, then sleeps: the lowest latency, and the core is
// nobody else's anyway. On a core it shares with its applications
// (PolicyShared: the local testbed, a small VM), every microsecond it spins is
// taken from the application it has just handed a request to, so as soon as
// a round has posted work to an application, or finds nothing to do, it
// blocks in one ppoll(2) over the NIC's receive descriptors (nic.RxWaiter),
// the applications' doorbells and its own wake fd. The application runs at
// once, rings the doorbell with its reply, and the engine wakes. A NIC that
// cannot be waited for is polled on a short timer instead.
type CorePolicy string

const (
	// PolicyAuto is shared when an attached application may run on one of
	// the engine's CPUs (their affinity masks intersect), dedicated otherwise.
	PolicyAuto CorePolicy = "auto"
	// PolicyShared: the engine hands its core over whenever it can.
	PolicyShared CorePolicy = "shared"
	// PolicyDedicated: the engine spins, then sleeps.
	PolicyDedicated CorePolicy = "dedicated"
)

// ParseCorePolicy checks a policy's name.
func ParseCorePolicy(name string) (CorePolicy, error) {
	switch p := CorePolicy(name); p {
	case PolicyAuto, PolicyShared, PolicyDedicated:
		return p, nil
	}
	return "", fmt.Errorf("core policy %q (allowed: auto, shared, dedicated)", name)
}

// Service is a running Joyride service.
type Service struct {
	cfg   Config
	log   *slog.Logger
	stack *stack.Stack
	link  Link
	fast  *netstack.FastPath // nil: every datagram goes through gVisor
	ln    *net.UnixListener

	mu      sync.Mutex // guards apps, nextApp, closed
	apps    map[uint32]*app
	nextApp uint32
	closed  bool
	appList atomic.Pointer[[]*app] // the engine's snapshot of apps

	readyMu sync.Mutex // guards ready
	ready   []*sock
	// deferred are sockets whose application could not take their data; the
	// engine retries them next round (engine only).
	deferred []*sock

	ctrlMu sync.Mutex // guards ctrlq
	ctrlq  []ctrlWork // control work the engine runs after serving the rings
	// upNext is the application the next round serves first (engine only).
	upNext int

	retireMu sync.Mutex // guards retire
	retire   []*app     // detached apps whose regions the engine closes

	wakeFd   int           // eventfd the engine sleeps on besides the apps'
	nicFds   []int         // the NIC's receive descriptors, if it has any (nic.RxWaiter)
	sleeping atomic.Bool   // the engine is (about to be) asleep
	pollFds  []unix.PollFd // the engine's sleep set, reused (engine only)
	// shared is the policy in force (PolicyShared, or PolicyAuto with an
	// application on one of the engine's CPUs); engineCPUs is the engine
	// thread's affinity, set when the engine starts.
	shared     atomic.Bool
	engineCPUs atomic.Pointer[unix.CPUSet]
	engineTid  atomic.Int32 // the engine's thread, once it runs
	stop       chan struct{}
	done       chan struct{}

	stats Stats
}

// Stats are the service's counters.
type Stats struct {
	Apps       atomic.Int64
	MsgsUp     atomic.Uint64 // messages taken from applications
	MsgsDown   atomic.Uint64 // messages delivered to applications
	Sleeps     atomic.Uint64 // times the engine went to sleep
	HandOvers  atomic.Uint64 // of those, sleeps right after posting work (shared core)
	Rounds     atomic.Uint64 // engine loop rounds (a spinning engine makes many)
	Corrupt    atomic.Uint64 // applications disconnected for corrupting their region
	OverLimit  atomic.Uint64 // sockets refused (or accepted connections reset) at an application's MaxSockets
	DownFull   atomic.Uint64 // deliveries deferred because an application's ring was full
	BadSockets atomic.Uint64 // messages naming a socket the application does not own
	// FastFiltered are datagrams the fast path dropped for a connected socket
	// because they came from another peer (gVisor would drop them too).
	FastFiltered atomic.Uint64
	// over counts the refusals of the limits other than MaxSockets (which
	// OverLimit counts), indexed by limit; see LimitCounts.
	over [numLimits]atomic.Uint64
}

// overLimit is limit l's refusal counter.
func (s *Stats) overLimit(l limit) *atomic.Uint64 {
	if l == limitSockets {
		return &s.OverLimit
	}
	return &s.over[l]
}

// DefaultMaxSockets is Config.MaxSockets unless set: as many as the
// generator's largest experiment opens, with room to spare.
const DefaultMaxSockets = 16384

// DefaultUpBatch is Config.UpBatch unless set: enough to amortise a round
// over a burst (the NIC's own burst is 32), small enough that a flooding
// application delays the others by a few tens of microseconds a round, not
// by a whole ring of 1024.
const DefaultUpBatch = 64

// maxSocketBuffer caps the send and receive buffer an application may ask
// a socket for, as Linux's net.core.wmem_max and rmem_max do: every socket's
// buffers are memory the service holds.
const maxSocketBuffer = 4 << 20

// ctrlWork is control work for the engine; app, when set, is the
// application whose messages queued before the request must be served first.
type ctrlWork struct {
	app *app
	f   func()
}

// minSleep is the engine's first sleep after it stops spinning.
const minSleep = 20 * time.Microsecond

// New builds the stack over link and listens on the control socket. Run starts
// serving.
func New(link Link, cfg Config) (*Service, error) {
	if !cfg.Addr.Addr().Is4() {
		return nil, fmt.Errorf("joyride service: address %v is not IPv4", cfg.Addr)
	}
	if cfg.Socket == "" {
		cfg.Socket = proto.DefaultSocket
	}
	if cfg.Spin <= 0 {
		cfg.Spin = time.Millisecond
	}
	if cfg.IdlePoll <= 0 {
		cfg.IdlePoll = time.Millisecond
	}
	if cfg.MaxSockets <= 0 {
		cfg.MaxSockets = DefaultMaxSockets
	}
	if cfg.MaxListeners <= 0 {
		cfg.MaxListeners = DefaultMaxListeners
	}
	if cfg.MaxBacklog <= 0 {
		cfg.MaxBacklog = DefaultMaxBacklog
	}
	if cfg.MaxBufferedBytes <= 0 {
		cfg.MaxBufferedBytes = DefaultMaxBufferedBytes
	}
	if cfg.MaxFlows <= 0 {
		cfg.MaxFlows = DefaultMaxFlows
	}
	if cfg.ControlRate == 0 {
		cfg.ControlRate = DefaultControlRate
	}
	if cfg.UpBatch <= 0 {
		cfg.UpBatch = DefaultUpBatch
	}
	if cfg.ControlBurst <= 0 {
		cfg.ControlBurst = DefaultControlBurst
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.CorePolicy == "" {
		cfg.CorePolicy = PolicyAuto
	}
	if _, err := ParseCorePolicy(string(cfg.CorePolicy)); err != nil {
		return nil, fmt.Errorf("joyride service: %w", err)
	}
	s := &Service{cfg: cfg, log: cfg.Log, link: link, apps: map[uint32]*app{},
		stop: make(chan struct{}), done: make(chan struct{})}
	empty := []*app{}
	s.appList.Store(&empty)

	st, err := netstack.NewStack(link, cfg.Addr, cfg.Gateway)
	if err != nil {
		return nil, fmt.Errorf("joyride service: %w", err)
	}
	s.stack = st
	if ep, ok := link.(*netstack.Endpoint); ok && !cfg.NoFastPath {
		s.fast = netstack.NewFastPath(ep, st, cfg.Addr, cfg.Gateway)
	}

	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("joyride service: eventfd: %w", err)
	}
	s.wakeFd = fd
	if w, ok := link.(interface{ RxWaitFds() []int }); ok {
		s.nicFds = w.RxWaitFds()
	}
	s.shared.Store(cfg.CorePolicy == PolicyShared)

	if err := os.MkdirAll(filepath.Dir(cfg.Socket), 0o755); err != nil {
		return nil, fmt.Errorf("joyride service: %w", err)
	}
	os.Remove(cfg.Socket) // a stale socket of a dead service
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: cfg.Socket, Net: "unixpacket"})
	if err != nil {
		return nil, fmt.Errorf("joyride service: control socket %s: %w", cfg.Socket, err)
	}
	s.ln = ln
	return s, nil
}

// FastPath is the service's UDP fast path, nil when Config.NoFastPath.
func (s *Service) FastPath() *netstack.FastPath { return s.fast }

// Stack is the service's gVisor stack (for tests and diagnostics).
func (s *Service) Stack() *stack.Stack { return s.stack }

// Stats returns the service's counters.
func (s *Service) Stats() *Stats { return &s.stats }

// Run serves until Close: it accepts applications and runs the engine on the
// calling goroutine (which it locks to its OS thread).
func (s *Service) Run() error {
	go s.acceptLoop()
	s.engine()
	return nil
}

// Close stops the engine, disconnects every application and closes the stack.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	apps := make([]*app, 0, len(s.apps))
	for _, a := range s.apps {
		apps = append(apps, a)
	}
	s.mu.Unlock()
	close(s.stop)
	s.wake()
	s.ln.Close()
	<-s.done
	for _, a := range apps {
		a.detach("service stopping")
	}
	s.closeRetired() // the engine has stopped: nothing uses the regions
	os.Remove(s.cfg.Socket)
	s.stack.Close()
	unix.Close(s.wakeFd)
	return nil
}

// closeRetired unmaps the regions of detached applications. Only the engine
// (or Close, after the engine stopped) calls it.
func (s *Service) closeRetired() {
	s.retireMu.Lock()
	r := s.retire
	s.retire = nil
	s.retireMu.Unlock()
	for _, a := range r {
		a.region.Close()
	}
}

// wake interrupts the engine's sleep.
func (s *Service) wake() {
	var one = [8]byte{1}
	unix.Write(s.wakeFd, one[:])
}

// markReady queues a socket for the engine; it is called from waiter callbacks
// on any goroutine (the engine's own, or the stack's TCP processors).
func (s *Service) markReady(k *sock) {
	if k.queued.Swap(true) {
		return
	}
	s.readyMu.Lock()
	s.ready = append(s.ready, k)
	s.readyMu.Unlock()
	if s.sleeping.Load() {
		s.wake()
	}
}

// engine is the data-plane loop (see the package comment).
func (s *Service) engine() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer close(s.done)
	s.engineTid.Store(int32(unix.Gettid()))
	var cpus unix.CPUSet
	if unix.SchedGetaffinity(0, &cpus) == nil {
		s.engineCPUs.Store(&cpus)
		s.decidePolicy()
	}
	// The engine's timed sleeps are tens of microseconds: the default 50 µs
	// of timer slack would more than double them.
	unix.Prctl(unix.PR_SET_TIMERSLACK, 1000, 0, 0, 0)
	// Replies written during a round leave together in the round's Flush.
	s.link.SetSpinning(true)
	defer s.link.SetSpinning(false)
	var (
		scratch  = make([]byte, proto.MaxMessage)
		inbox    = make([]byte, 0, proto.MaxMessage)
		ready    []*sock
		lastWork = time.Now()
		backoff  = minSleep
	)
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		s.closeRetired()
		s.stats.Rounds.Add(1)
		work := 0
		rx, tx := s.link.Poll()
		work += rx + tx

		apps := *s.appList.Load()
		if n := len(apps); n > 0 {
			first := s.upNext % n
			s.upNext = first + 1
			for i := range n {
				work += s.serveUp(apps[(first+i)%n], &inbox, s.cfg.UpBatch)
			}
		}
		// After the rings: a close never overtakes the data sent before it.
		work += s.runControl(&inbox)

		s.readyMu.Lock()
		ready, s.ready = s.ready, ready[:0]
		s.readyMu.Unlock()
		ready = append(ready, s.deferred...)
		s.deferred = s.deferred[:0]
		for i, k := range ready {
			k.queued.Store(false)
			work += s.serveDown(k, scratch)
			ready[i] = nil
		}
		posted := false
		for _, a := range apps {
			if a.notify {
				a.notify = false
				a.end.Notify()
				posted = true
			}
		}
		work += s.link.Flush()

		shared := s.shared.Load()
		if work > 0 {
			lastWork = time.Now()
			backoff = minSleep
			if shared && posted {
				// Hand the core to the application just given work; its
				// doorbell (or the NIC, or a timer) brings the engine back.
				if s.sleep(apps, s.sharedTimeout(backoff)) {
					s.stats.HandOvers.Add(1)
				} else {
					// More work waits (an application keeps its ring
					// full): still let the one just given work run on
					// this core before the next round, or it waits for
					// the scheduler to preempt a busy engine (~4 ms).
					unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
				}
			}
			continue
		}
		if shared {
			s.sleep(apps, s.sharedTimeout(backoff))
			backoff = min(2*backoff, s.cfg.IdlePoll)
			continue
		}
		if time.Since(lastWork) < s.cfg.Spin {
			// Spin, but give the CPU to any other thread that wants it. Not
			// runtime.Gosched: the engine is locked to its thread, so each
			// Gosched hands the P to another thread and back (two context
			// switches a spin round).
			unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
			continue
		}
		s.sleep(apps, backoff)
		// Back off to IdlePoll; after a long idle spell (100 ms) to ten times
		// that, so an idle service costs next to nothing.
		limit := s.cfg.IdlePoll
		if time.Since(lastWork) > 100*time.Millisecond {
			limit = 10 * s.cfg.IdlePoll
		}
		if backoff < limit {
			backoff *= 2
		}
	}
}

// sharedTimeout bounds a shared-core sleep: with a NIC that wakes the engine
// (nic.RxWaiter) only TCP's timers and lost wake-ups need the bound, so it is
// IdlePoll; a NIC that must be polled is looked at again after backoff, which
// grows from minSleep while nothing happens, as a dedicated engine's sleeps do.
func (s *Service) sharedTimeout(backoff time.Duration) time.Duration {
	if len(s.nicFds) > 0 {
		return s.cfg.IdlePoll
	}
	return backoff
}

// EngineCPU is the CPU time the engine's thread has used (from
// /proc/self/task/TID/schedstat), or 0 before the engine starts.
func (s *Service) EngineCPU() time.Duration {
	tid := s.engineTid.Load()
	if tid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/schedstat", tid))
	if err != nil {
		return 0
	}
	var ns int64
	fmt.Sscan(string(b), &ns)
	return time.Duration(ns)
}

// decidePolicy sets the policy in force from Config.CorePolicy and, for
// PolicyAuto, the CPU affinity of the engine and of every attached
// application (read from its process); it runs when the engine starts and
// whenever an application attaches or detaches.
func (s *Service) decidePolicy() {
	switch s.cfg.CorePolicy {
	case PolicyShared:
		s.shared.Store(true)
		return
	case PolicyDedicated:
		s.shared.Store(false)
		return
	}
	engine := s.engineCPUs.Load()
	if engine == nil {
		return // the engine has not started: it decides when it does
	}
	shared := false
	apps := *s.appList.Load()
	for _, a := range apps {
		var cpus unix.CPUSet
		if a.cred == nil || unix.SchedGetaffinity(int(a.cred.Pid), &cpus) != nil {
			shared = true // unknown: assume the worst for the application
			break
		}
		if intersects(engine, &cpus) {
			shared = true
			break
		}
	}
	if s.shared.Swap(shared) != shared {
		s.log.Info("engine core policy", "policy", s.Policy(), "apps", len(apps))
	}
}

// Policy is the core policy in force: "shared" or "dedicated".
func (s *Service) Policy() CorePolicy {
	if s.shared.Load() {
		return PolicyShared
	}
	return PolicyDedicated
}

func intersects(a, b *unix.CPUSet) bool {
	for i := range a {
		if a[i]&b[i] != 0 {
			return true
		}
	}
	return false
}

// sleep blocks until an application kicks, a socket becomes ready, or the
// NIC is due for a poll (or, with nic.RxWaiter, has frames). It returns
// whether it slept (false: work turned up while it got ready). The NIC of a DPDK vdev cannot wake anyone (net_af_xdp
// has no RX interrupts in DPDK 22.11), so the sleep is bounded, and the bound
// backs off from 20 µs to IdlePoll, and after 100 ms of idleness to ten times
// IdlePoll: a request that arrives soon after the last one waits little, an
// idle service wakes about a hundred times a second.
func (s *Service) sleep(apps []*app, backoff time.Duration) (slept bool) {
	fds := s.pollFds[:0]
	fds = append(fds, unix.PollFd{Fd: int32(s.wakeFd), Events: unix.POLLIN})
	for _, fd := range s.nicFds {
		fds = append(fds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
	}
	for _, a := range apps {
		fds = append(fds, unix.PollFd{Fd: int32(a.end.WaitFd()), Events: unix.POLLIN})
	}
	s.pollFds = fds
	s.sleeping.Store(true)
	for _, a := range apps {
		a.end.SetNeedWakeup(true)
	}
	// Re-check after announcing the sleep: work that arrived in between. A
	// NIC in the poll set needs no look: frames waiting make ppoll return.
	busy := false
	if len(s.nicFds) == 0 {
		rx, tx := s.link.Poll()
		busy = rx+tx > 0
	}
	for _, a := range apps {
		if a.end.Pending() {
			busy = true
		}
	}
	s.readyMu.Lock()
	busy = busy || len(s.ready) > 0
	s.readyMu.Unlock()
	s.ctrlMu.Lock()
	busy = busy || len(s.ctrlq) > 0
	s.ctrlMu.Unlock()
	if !busy {
		slept = true
		s.stats.Sleeps.Add(1)
		// Asleep, the engine flushes nothing: let TCP's timers and processors
		// transmit on their own.
		s.link.SetSpinning(false)
		ts := unix.NsecToTimespec(backoff.Nanoseconds())
		unix.Ppoll(fds, &ts, nil)
		s.link.SetSpinning(true)
	}
	s.sleeping.Store(false)
	for i, a := range apps {
		a.end.SetNeedWakeup(false)
		// Only a doorbell that rang has a count to clear: one read(2) per
		// wake-up, not one per application.
		if slept && fds[1+len(s.nicFds)+i].Revents != 0 {
			a.end.Drain()
		}
	}
	if slept && fds[0].Revents != 0 {
		var buf [8]byte
		unix.Read(s.wakeFd, buf[:])
	}
	return slept
}

// cutOff stops touching a's region at once and detaches a off the engine:
// the application wrote something invalid into it (err), so nothing in it can
// be trusted any more. Engine only.
func (s *Service) cutOff(a *app, err error) {
	if a.corrupt {
		return
	}
	a.corrupt = true
	s.stats.Corrupt.Add(1)
	s.log.Warn("application corrupted its region: disconnecting it", "app", a.id, "name", a.name, "err", err)
	go a.detach("corrupt region: " + err.Error())
}

// serveUp takes up to max of an application's messages and acts on them.
func (s *Service) serveUp(a *app, inbox *[]byte, max int) int {
	n := 0
	if a.corrupt {
		return 0
	}
	for n < max && a.end.Pending() {
		d, payload, err := a.end.Recv((*inbox)[:0])
		if errors.Is(err, channel.ErrEmpty) {
			break
		}
		if err != nil {
			s.cutOff(a, err)
			return n
		}
		*inbox = payload[:0]
		n++
		s.stats.MsgsUp.Add(1)
		switch d.Op {
		case proto.OpSend:
			a.mu.Lock()
			k := a.socks[d.Sock]
			a.mu.Unlock()
			if k == nil {
				s.stats.BadSockets.Add(1)
				continue
			}
			s.send(k, payload, d.Arg)
		case proto.OpClose:
			if r := s.closeOrShutdown(a, d.Sock, true, 0); !r.OK {
				s.stats.BadSockets.Add(1)
			}
		default:
			s.stats.BadSockets.Add(1)
		}
	}
	return n
}

// send writes one application message into its socket.
func (s *Service) send(k *sock, payload []byte, arg uint64) {
	if k.udp && k.fastPort != 0 {
		dst, ok := proto.UnpackAddr(arg)
		if !ok {
			dst, ok = k.peer, k.peer.IsValid()
		}
		if ok && s.fast.WriteUDP(k.fastPort, dst, payload) {
			return
		}
	}
	if k.udp {
		var to *tcpip.FullAddress
		if ap, ok := proto.UnpackAddr(arg); ok {
			to = &tcpip.FullAddress{Addr: tcpip.AddrFrom4(ap.Addr().As4()), Port: ap.Port()}
		}
		k.reader.Reset(payload)
		if _, err := k.ep.Write(&k.reader, tcpip.WriteOptions{To: to}); err != nil {
			k.dropped.Add(1)
		}
		return
	}
	// TCP: keep order; what the stack does not take now waits for EventOut.
	if k.sendErr != 0 {
		return // the stream broke: nothing after the gap may leave
	}
	if a := k.app; a.buffered.Load()+int64(len(payload)) > s.cfg.MaxBufferedBytes {
		// What the stack has not taken would pass the application's
		// budget. The message is lost, so the stream cannot go on: fail the
		// socket (ENOBUFS, out of socket memory) and reset its peer rather
		// than let it see a clean end to truncated data.
		s.refuse(a, limitBuffers, "send")
		k.sendErr = syscall.ENOBUFS
		k.pendingTx = nil
		s.recount(k)
		k.ep.Abort()
		s.markReady(k)
		return
	}
	if len(k.pendingTx) > 0 {
		k.pendingTx = append(k.pendingTx, payload...)
		s.recount(k)
		return
	}
	s.writeStream(k, payload)
}

// recount brings k's application's buffered count up to date with what k
// holds now (the capacity of its pending and held bytes: memory, not data).
// Engine only.
func (s *Service) recount(k *sock) {
	n := int64(cap(k.pendingTx) + cap(k.heldDown))
	if d := n - k.accounted; d != 0 {
		k.app.buffered.Add(d)
		k.accounted = n
	}
}

// releaseBuffers gives back what a closed socket held. Engine only.
func (s *Service) releaseBuffers(k *sock) {
	k.pendingTx, k.heldDown = nil, nil
	s.recount(k)
}

// writeStream writes p to a TCP endpoint, keeps what it does not take, and
// acknowledges what it took so the application's send window reopens.
func (s *Service) writeStream(k *sock, p []byte) {
	k.reader.Reset(p)
	n, err := k.ep.Write(&k.reader, tcpip.WriteOptions{})
	if n > 0 {
		// The app's send window reopens by what the stack took; an ack that
		// cannot go down now is kept and retried, never lost.
		k.unacked += uint64(n)
		s.flushAck(k)
	}
	rest := p[n:]
	defer s.recount(k)
	switch err.(type) {
	case nil, *tcpip.ErrWouldBlock:
		if len(rest) > 0 {
			k.pendingTx = append(k.pendingTx[:0], rest...)
		} else {
			// Nothing held: give the memory back, so that sockets that
			// once waited for the stack do not keep it against the budget.
			k.pendingTx = nil
			if k.closeWhenSent != nil {
				// Run it as control work: writeStream may hold a.mu here.
				f := k.closeWhenSent
				k.closeWhenSent = nil
				s.ctrlMu.Lock()
				s.ctrlq = append(s.ctrlq, ctrlWork{f: f})
				s.ctrlMu.Unlock()
			}
		}
	default:
		k.pendingTx = nil
		k.app.deliver(s, proto.OpError, k.id, uint64(errnoOf(err)), nil)
	}
}

// flushAck tells the app how many stream bytes the stack took since the last
// ack; when its ring is full the socket is retried next round.
func (s *Service) flushAck(k *sock) {
	if k.unacked == 0 {
		return
	}
	if k.app.deliver(s, proto.OpSent, k.id, k.unacked, nil) {
		k.unacked = 0
		return
	}
	s.deferred = append(s.deferred, k)
}

// runOnEngine runs f on the engine goroutine, after the engine has taken every
// message a put on its ring before the call, and waits for it. Control
// requests that must not overtake data (close, shutdown) go through here.
func (s *Service) runOnEngine(a *app, f func()) {
	done := make(chan struct{})
	s.ctrlMu.Lock()
	s.ctrlq = append(s.ctrlq, ctrlWork{app: a, f: func() { f(); close(done) }})
	s.ctrlMu.Unlock()
	s.wake()
	select {
	case <-done:
	case <-s.done: // the engine stopped: nothing else touches the sockets
		s.ctrlMu.Lock()
		q := s.ctrlq
		s.ctrlq = nil
		s.ctrlMu.Unlock()
		for _, g := range q {
			g.f()
		}
		<-done
	}
}

// runControl runs the control work queued for the engine. Work for an
// application first serves its ring as far as it was filled when the
// request came (a ring holds at most RingSize messages), since a round
// takes only UpBatch of them.
func (s *Service) runControl(inbox *[]byte) int {
	s.ctrlMu.Lock()
	q := s.ctrlq
	s.ctrlq = nil
	s.ctrlMu.Unlock()
	n := len(q)
	ring := s.cfg.Region.RingSize
	if ring == 0 {
		ring = channel.DefaultRingSize
	}
	for _, w := range q {
		if w.app != nil {
			n += s.serveUp(w.app, inbox, ring)
		}
		w.f()
	}
	return n
}

// serveDown moves what a ready socket has into its application.
func (s *Service) serveDown(k *sock, scratch []byte) int {
	a := k.app
	a.mu.Lock()
	defer a.mu.Unlock()
	if k.closed {
		return 0
	}
	n := 0
	if k.listener {
		return s.serveAccepts(k)
	}
	if k.sendErr != 0 {
		if !k.errSent {
			k.errSent = a.deliver(s, proto.OpError, k.id, uint64(k.sendErr), nil)
		}
		if !k.errSent {
			s.deferred = append(s.deferred, k)
		}
		return n
	}
	if len(k.pendingTx) > 0 {
		p := k.pendingTx
		k.pendingTx = nil
		s.writeStream(k, p)
		n++
	}
	if k.unacked > 0 {
		s.flushAck(k)
	}
	if len(k.heldDown) > 0 {
		if !a.deliver(s, proto.OpData, k.id, 0, k.heldDown) {
			s.deferred = append(s.deferred, k)
			return n
		}
		k.heldDown = nil // the memory goes back: see recount
		s.recount(k)
		n++
	}
	for {
		if !k.udp && a.buffered.Load()+int64(len(scratch)) > s.cfg.MaxBufferedBytes {
			// A read now might have to be held: leave the bytes in the
			// stack, whose receive window then closes, until the
			// application drains.
			s.refuse(a, limitBuffers, "receive")
			s.deferred = append(s.deferred, k)
			return n
		}
		w := fixedWriter{buf: scratch}
		res, err := k.ep.Read(&w, tcpip.ReadOptions{NeedRemoteAddr: k.udp})
		if err != nil {
			switch err.(type) {
			case *tcpip.ErrWouldBlock:
			case *tcpip.ErrClosedForReceive:
				if !k.eofSent {
					k.eofSent = a.deliver(s, proto.OpEOF, k.id, 0, nil)
				}
				if !k.eofSent { // ring full: tell it later, never not at all
					s.deferred = append(s.deferred, k)
				}
			default:
				if !k.errSent {
					k.errSent = a.deliver(s, proto.OpError, k.id, uint64(errnoOf(err)), nil)
				}
				if !k.errSent {
					s.deferred = append(s.deferred, k)
				}
			}
			return n
		}
		var arg uint64
		if k.udp {
			arg = proto.PackAddr(netip.AddrPortFrom(netip.AddrFrom4(res.RemoteAddr.Addr.As4()), res.RemoteAddr.Port))
		}
		if !a.deliver(s, proto.OpData, k.id, arg, w.buf[:w.n]) {
			// The app's ring or buffers are full: for TCP the bytes are lost
			// from the endpoint already, so keep them and retry. UDP drops.
			if !k.udp {
				k.heldDown = append(k.heldDown[:0], w.buf[:w.n]...)
				s.recount(k)
			}
			s.stats.DownFull.Add(1)
			s.deferred = append(s.deferred, k)
			return n
		}
		n++
	}
}

// serveAccepts announces a listener's connections to its application:
// those held from earlier rounds first, in order, then what the stack has
// accepted since. What the application's ring cannot take is held, as a
// kernel's accept queue would, up to the application's MaxBacklog; beyond
// it, and beyond its MaxSockets, a connection is reset. a.mu is held.
func (s *Service) serveAccepts(k *sock) int {
	a := k.app
	n := 0
	for len(k.heldAccepts) > 0 {
		h := k.heldAccepts[0]
		if !a.deliver(s, proto.OpAccept, k.id, uint64(h.c.id), []byte(h.remote)) {
			s.stats.DownFull.Add(1)
			break
		}
		k.heldAccepts[0] = heldAccept{}
		k.heldAccepts = k.heldAccepts[1:]
		a.held--
		s.markReady(h.c) // data may already be waiting
		n++
	}
	if len(k.heldAccepts) == 0 {
		k.heldAccepts = nil // the backing array of a burst goes back
	}
	for {
		var peer tcpip.FullAddress
		ep, wq, err := k.ep.Accept(&peer)
		if err != nil {
			break
		}
		if len(a.socks) >= s.cfg.MaxSockets {
			// Over the application's limit: reset the connection, as a
			// kernel whose process is out of descriptors would leave it
			// unaccepted.
			ep.Abort()
			s.refuse(a, limitSockets, "accept")
			continue
		}
		holding := len(k.heldAccepts) > 0 // later ones queue behind it
		if holding && a.held >= s.cfg.MaxBacklog {
			ep.Abort()
			s.refuse(a, limitBacklog, addrString(peer))
			continue
		}
		c := a.newSock(s, ep, wq, false, false)
		remote := netip.AddrPortFrom(netip.AddrFrom4(peer.Addr.As4()), peer.Port).String()
		if !holding && a.deliver(s, proto.OpAccept, k.id, uint64(c.id), []byte(remote)) {
			s.markReady(c) // data may already be waiting
			n++
			continue
		}
		if a.held >= s.cfg.MaxBacklog {
			ep.Abort()
			a.closeSock(c)
			s.refuse(a, limitBacklog, remote)
			continue
		}
		// The app's ring is full: hold the connection and offer it again
		// once the app has drained its ring. (Refusing it reset
		// connections a slow app was about to accept: 10,000 clients on a
		// busy CI VM.)
		k.heldAccepts = append(k.heldAccepts, heldAccept{c: c, remote: remote})
		a.held++
		s.stats.DownFull.Add(1)
	}
	if len(k.heldAccepts) > 0 {
		s.deferred = append(s.deferred, k)
	}
	return n
}

// fixedWriter collects one Read into a preallocated buffer.
type fixedWriter struct {
	buf []byte
	n   int
}

func (w *fixedWriter) Write(p []byte) (int, error) {
	k := copy(w.buf[w.n:], p)
	w.n += k
	if k < len(p) {
		return k, io.ErrShortWrite
	}
	return k, nil
}

// errnoOf maps a netstack error to the errno Linux would give.
func errnoOf(err tcpip.Error) syscall.Errno {
	switch err.(type) {
	case *tcpip.ErrPortInUse:
		return syscall.EADDRINUSE
	case *tcpip.ErrConnectionRefused:
		return syscall.ECONNREFUSED
	case *tcpip.ErrConnectionReset:
		return syscall.ECONNRESET
	case *tcpip.ErrConnectionAborted:
		return syscall.ECONNABORTED
	case *tcpip.ErrTimeout:
		return syscall.ETIMEDOUT
	case *tcpip.ErrNetworkUnreachable:
		return syscall.ENETUNREACH
	case *tcpip.ErrHostUnreachable:
		return syscall.EHOSTUNREACH
	case *tcpip.ErrBadLocalAddress:
		return syscall.EADDRNOTAVAIL
	case *tcpip.ErrClosedForSend:
		return syscall.EPIPE
	case *tcpip.ErrNotConnected:
		return syscall.ENOTCONN
	case *tcpip.ErrMessageTooLong:
		return syscall.EMSGSIZE
	case *tcpip.ErrAddressFamilyNotSupported:
		return syscall.EAFNOSUPPORT
	case *tcpip.ErrWouldBlock:
		return syscall.EAGAIN
	}
	return syscall.EINVAL
}

// sock is one application socket: a netstack endpoint and its bookkeeping.
type sock struct {
	id       uint32
	app      *app
	ep       tcpip.Endpoint
	wq       *waiter.Queue
	entry    waiter.Entry
	udp      bool
	listener bool
	closed   bool
	eofSent  bool
	errSent  bool
	queued   atomic.Bool
	dropped  atomic.Uint64
	reader   bytes.Reader
	// fastPort is the UDP port this socket holds on the fast path (0: none);
	// peer, for a connected UDP socket, the only source it takes.
	fastPort uint16
	peer     netip.AddrPort
	// pendingTx are stream bytes the stack has not taken yet (engine only).
	pendingTx []byte
	// heldDown are stream bytes read but not yet delivered (engine only).
	heldDown []byte
	// unacked are stream bytes the stack took that the app has not been told
	// of yet (engine only).
	unacked uint64
	// closeWhenSent, when set, closes or shuts the socket once pendingTx is
	// empty (engine only).
	closeWhenSent func()
	// heldAccepts (listener) are connections accepted from the stack that
	// the app's ring had no room to announce yet (engine only, under a.mu).
	heldAccepts []heldAccept
	// accounted is what this socket counts in its app's buffered bytes
	// (engine only; see recount).
	accounted int64
	// sendErr, once set, failed the stream on the service's side (past the
	// app's buffer budget): it is reported once with OpError (engine only).
	sendErr syscall.Errno
}

// heldAccept is an accepted connection waiting to be announced with OpAccept.
type heldAccept struct {
	c      *sock
	remote string
}
