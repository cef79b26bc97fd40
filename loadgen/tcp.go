package loadgen

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/joyride-bench/joyride/internal/tsc"
	"github.com/joyride-bench/joyride/nic"
	"github.com/joyride-bench/joyride/nic/netstack"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// MaxConns is the most connections one TCP point may open.
const MaxConns = 10000

// MaxTCPSize is the largest TCP request (and reply).
const MaxTCPSize = 64 << 10

// TCPConfig is one point of open-loop TCP echo load.
type TCPConfig struct {
	// Config: Flow's SrcIP, DstIP and DstPort are used (the MACs and SrcPort are
	// not: the client stack resolves the server by ARP and picks ephemeral
	// ports); Size is the request (and reply) length in bytes; the rest as for UDP.
	Config
	// Conns is the number of connections, 1..MaxConns (default 1). Request i
	// goes to connection i mod Conns.
	Conns int
	// Window, when > 0, makes the load closed-loop (Machnet's msg_gen): every
	// connection keeps Window requests outstanding, sending the next one as
	// soon as a reply comes back, for Warmup+Duration; Rate and Schedule are
	// not used, and latency runs from the moment a request is issued. 0 is
	// open loop: requests leave at their scheduled times whatever the replies
	// do.
	Window int
	// Sizes, when not fixed, draws every request's size from a distribution
	// (clamped to the protocol's header and MaxTCPSize) instead of Size; the
	// echo's reply has the request's size.
	Sizes SizeDist
	// Ports, when > 1, spreads the connections over that many server ports
	// (connection i goes to DstPort + i mod Ports): one application instance
	// listens on each, for density experiments. Conns must be at least Ports.
	Ports int
	// Memcached, when set, makes the requests memcached gets and sets (the
	// server is a memcached) instead of the generator's echo requests; every
	// key is stored before the warm-up. Size and Sizes are then not used.
	Memcached *MemcachedConfig
	// Redis, when set, makes the requests the same key-value workload as
	// Memcached's in redis's protocol (RESP2 GET and SET; the server is a
	// redis). Size and Sizes are then not used, and Service may not be set.
	Redis *MemcachedConfig
	// HTTP, when set, makes the requests HTTP/1.1 GETs on keep-alive
	// connections (the server is a web server such as nginx); a reply is
	// answered when it has status 200. Size and Sizes are then not used, and
	// Service may not be set.
	HTTP *HTTPConfig
	// At most one of Memcached, Redis and HTTP is set: none is the echo.
}

// MaxWindow bounds TCPConfig.Window.
const MaxWindow = 1024

// tcpLockThread makes the TCP engine lock itself to its OS thread. It does not
// by default: gVisor processes every received TCP segment on processor
// goroutines of its own (and runs its timers on others), so the engine must let
// them run, and it yields after every link round. Unlocked, a yield is a
// goroutine switch on the same thread (the processor woken by the delivery is
// next on the engine's P); locked, the runtime must hand the P to another thread
// and back, two thread switches per round when the process has one P (jrgen
// pinned to one core). Without yields, a locked engine leaves the processors
// to other Ps, which run them late or, if busy, only when the scheduler
// preempts the engine (10 ms). The benchmarks measure both.
var tcpLockThread = false

// RunTCP offers one point of TCP echo load on port through a client-side
// gVisor stack of its own (nic/netstack) with the address cfg.Flow.SrcIP. It
// opens cfg.Conns connections to DstIP:DstPort before the warm-up
// (Result.ConnectSeconds says how long that took; it is not part of any
// latency), then offers the load and parses the echoed byte stream of every
// connection back into replies (they come back in order on a connection).
//
// Open loop (Window 0): each request, of its size starting with the 18-byte
// header, is written to its connection at its scheduled time, whatever the
// replies do (several may be in flight on one connection). Closed loop
// (Window W): every connection keeps W requests outstanding.
//
// A request is sent when the connection took all its bytes: one that had to
// wait for send-buffer space is sent (and possibly late) when written. A
// connection that fails (reset, or closed by the server) loses its in-flight
// requests (lost), the requests due on it afterwards are not sent, and it is
// counted in ConnFailures.
//
// It blocks for the connection setup plus Warmup+Duration+Drain; the port must
// not be used by anything else meanwhile. The stack is closed (connections
// closed, FIN sent) before it returns.
func RunTCP(port nic.Port, cfg TCPConfig) (*Result, error) {
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	switch {
	case cfg.Memcached != nil:
		cfg.Size, cfg.Sizes = cfg.Memcached.ValueSize, SizeDist{}
	case cfg.Redis != nil:
		cfg.Size, cfg.Sizes = cfg.Redis.ValueSize, SizeDist{}
	case cfg.HTTP != nil:
		// A reply's size is its body's, known only when it arrives: the
		// HTTP reader counts ReceivedBytes itself.
		cfg.Size, cfg.Sizes = 0, SizeDist{}
	}
	if cfg.Service.Enabled() && min(cfg.Sizes.Smallest(), cfg.Size) < SyntheticHeaderLen {
		return nil, fmt.Errorf("loadgen: a synthetic request needs at least %d bytes, not %d", SyntheticHeaderLen, min(cfg.Sizes.Smallest(), cfg.Size))
	}
	var offsets []time.Duration
	if cfg.Window == 0 {
		var err error
		if offsets, err = DrawSchedule(cfg.Schedule, cfg.Rate, cfg.Warmup+cfg.Duration, cfg.Seed); err != nil {
			return nil, err
		}
	}
	e, err := newTCPEngine(port, &cfg, offsets)
	if err != nil {
		return nil, err
	}
	if tcpLockThread {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	defer e.close()
	t0 := time.Now()
	if err := e.connect(10*time.Second + time.Duration(cfg.Conns)*time.Millisecond); err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	if p, ok := e.proto.(kvProtocol); ok {
		if err := e.preloadKeys(p, 30*time.Second); err != nil {
			return nil, fmt.Errorf("loadgen: %w", err)
		}
	}
	e.res.ConnectSeconds = time.Since(t0).Seconds()
	e.run()
	if st, err := port.Stats(); err == nil {
		e.res.Port = st
	}
	return e.res, nil
}

func (c *TCPConfig) check() error {
	var errs []error
	if c.Conns == 0 {
		c.Conns = 1
	}
	if c.Ports == 0 {
		c.Ports = 1
	}
	if c.Ports < 1 || c.Ports > c.Conns || int(c.Flow.DstPort)+c.Ports-1 > 65535 {
		errs = append(errs, fmt.Errorf("ports %d outside 1..conns (%d), or past port 65535", c.Ports, c.Conns))
	}
	if c.Window < 0 || c.Window > MaxWindow {
		errs = append(errs, fmt.Errorf("window %d outside 0..%d (0 is open loop)", c.Window, MaxWindow))
	}
	if !c.Sizes.Fixed() {
		if c.Sizes.Smallest() > MaxTCPSize {
			errs = append(errs, fmt.Errorf("sizes %v: every size would exceed %d", c.Sizes, MaxTCPSize))
		}
		// The largest request sizes the buffer requests are written from.
		c.Size = min(c.Sizes.Largest(), MaxTCPSize)
	}
	if c.Conns < 1 || c.Conns > MaxConns {
		errs = append(errs, fmt.Errorf("conns %d outside 1..%d", c.Conns, MaxConns))
	}
	if c.Size > MaxTCPSize {
		errs = append(errs, fmt.Errorf("size %d > %d", c.Size, MaxTCPSize))
	}
	if !c.Flow.SrcIP.Is4() || !c.Flow.DstIP.Is4() {
		errs = append(errs, fmt.Errorf("only IPv4 is supported (got %v -> %v)", c.Flow.SrcIP, c.Flow.DstIP))
	}
	if c.Flow.DstPort == 0 {
		errs = append(errs, errors.New("destination port 0"))
	}
	apps := 0
	for _, set := range []bool{c.Memcached != nil, c.Redis != nil, c.HTTP != nil} {
		if set {
			apps++
		}
	}
	if apps > 1 {
		errs = append(errs, errors.New("memcached, redis and http are different applications: set at most one"))
	}
	if (c.Redis != nil || c.HTTP != nil) && c.Service.Enabled() {
		errs = append(errs, errors.New("service times are carried by the echo's synthetic requests: not with redis or http"))
	}
	if c.Redis != nil {
		errs = append(errs, c.Redis.Check())
	}
	if c.HTTP != nil {
		errs = append(errs, c.HTTP.Check())
	}
	// The shared checks, without the UDP engine's resolved MAC.
	mac := c.Flow.DstMAC
	if c.DstMACMissing() {
		c.Flow.DstMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}
	}
	errs = append(errs, c.Config.check())
	c.Flow.DstMAC = mac
	return errors.Join(errs...)
}

// tcpConn is one connection: its gVisor endpoint, where its writer is in the
// load, and its reply parser (the io.Writer its endpoint reads into).
//
// Connection idx carries requests idx, idx+Conns, idx+2·Conns, ... in that
// order, and replies come back in the same order, so the reply a connection
// waits for is always its oldest request not yet answered (expect).
type tcpConn struct {
	e     *tcpEngine
	idx   int
	ep    tcpip.Endpoint
	wq    waiter.Queue
	entry waiter.Entry
	ready atomic.Bool // on the engine's ready list

	next    int // next request to write on this connection
	off     int // bytes of request next already written
	issued  int // closed loop: first request not yet issued (next <= issued)
	preKey  int // memcached: next key this connection stores before the run
	expect  int // oldest request written and not yet answered (== next when none)
	blocked bool
	failed  bool

	reader io.Writer // the protocol's reply parser
}

// tcpProtocol is what the engine speaks on its connections: how request id is
// written and how a connection's reply stream is cut into replies.
type tcpProtocol interface {
	// request returns the bytes of request id (valid until the next call).
	request(id int) []byte
	// newReader returns c's reply parser: it consumes c's received byte
	// stream and calls c.e.replied(c, ok) for every complete reply, in order
	// (ok false for a reply that does not answer c.expect).
	newReader(c *tcpConn) io.Writer
}

type tcpEngine struct {
	cfg     *TCPConfig
	proto   tcpProtocol
	link    *netstack.Endpoint
	s       *stack.Stack
	conns   []*tcpConn
	offsets []time.Duration // open loop: the schedule
	service []uint64        // per request, when the requests are synthetic
	sizes   []int32         // per request, when sizes are drawn
	sched   []uint64        // when request i was due (open) or issued (closed), TSC
	// interval[i] is the histogram of request i (0 = warm-up, k = interval k-1).
	interval []uint16
	seen     []uint64
	res      *Result

	readyMu   sync.Mutex
	readyList []int32 // connections notified readable (or failed); guarded by readyMu
	readyWork []int32 // the engine's copy being processed

	blockedList []int32
	reader      bytes.Reader // over the request being written
	sendTimes   []uint64     // open loop: when the first measured requests were written, for the arrival check

	nIntervals int
	// preloaded counts the sets answered while storing memcached's keys,
	// preloadFailed those refused.
	preloaded, preloadFailed int
	next                     int // open loop: first request not yet due
	now                      uint64
	nsPerTick                float64
	lateTicks                uint64
	spells                   lateSpells
	maxLag                   uint64
	sentAll                  uint64
	recvAll                  uint64
	lastSend                 uint64
	// Closed loop: the measured span starts at measureFrom and no request is
	// issued from issueEnd on.
	measureFrom, issueEnd, intervalTicks uint64
}

func newTCPEngine(port nic.Port, cfg *TCPConfig, offsets []time.Duration) (*tcpEngine, error) {
	if err := CheckInterval(cfg.Interval); err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	iv, nIntervals := cfg.Intervals()
	hz := tsc.Hz()
	e := &tcpEngine{cfg: cfg, offsets: offsets, nsPerTick: 1e9 / hz, nIntervals: nIntervals,
		lateTicks: tsc.FromDuration(cfg.LateThreshold), intervalTicks: tsc.FromDuration(iv)}
	e.spells.threshold = e.lateTicks
	e.res = &Result{Schedule: cfg.Schedule, OfferedRPS: cfg.Rate, DurationS: cfg.Duration.Seconds(),
		WarmupS: cfg.Warmup.Seconds(), Size: cfg.Size, TSCHz: hz, Protocol: "tcp", Conns: cfg.Conns}
	if !cfg.Sizes.Fixed() {
		e.res.SizeDist = cfg.Sizes.String()
	}
	if cfg.Window > 0 {
		e.res.Schedule, e.res.OfferedRPS, e.res.Window = "closed", 0, cfg.Window
	}
	e.res.Intervals = newIntervals(nIntervals)
	if cfg.Window == 0 {
		n := len(offsets)
		e.grow(n)
		warmN := 0
		for i, off := range offsets {
			if e.interval[i] = intervalOf(off, cfg.Warmup, iv, nIntervals); e.interval[i] == 0 {
				warmN++
			}
		}
		e.res.Scheduled = uint64(n - warmN)
	} else {
		// A first guess of how many requests the closed loop issues; grow
		// extends the per-request arrays when it issues more.
		e.grow(cfg.Conns * cfg.Window * 64)
	}
	switch {
	case cfg.Memcached != nil:
		p, err := newMemcachedProtocol(*cfg.Memcached, cfg.Seed)
		if err != nil {
			return nil, fmt.Errorf("loadgen: %w", err)
		}
		e.proto = p
		e.res.Size, e.res.App = cfg.Memcached.ValueSize, "memcached"
	case cfg.Redis != nil:
		p, err := newRedisProtocol(*cfg.Redis, cfg.Seed)
		if err != nil {
			return nil, fmt.Errorf("loadgen: %w", err)
		}
		e.proto = p
		e.res.Size, e.res.App = cfg.Redis.ValueSize, "redis"
	case cfg.HTTP != nil:
		p, err := newHTTPProtocol(*cfg.HTTP, cfg.Flow.DstIP)
		if err != nil {
			return nil, fmt.Errorf("loadgen: %w", err)
		}
		e.proto = p
		e.res.App = "http"
	default:
		e.proto = newEchoProtocol(e)
	}

	// The client stack: the generator's address on a prefix that holds the
	// server, so the server is on-link and resolved by the stack's ARP.
	bits := 32
	for bits > 0 && !netip.PrefixFrom(cfg.Flow.SrcIP, bits).Masked().Contains(cfg.Flow.DstIP) {
		bits--
	}
	e.link = netstack.New(port, netstack.Options{Burst: cfg.Burst})
	s, err := netstack.NewStack(e.link, netip.PrefixFrom(cfg.Flow.SrcIP, bits), netip.Addr{})
	if err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	e.s = s
	e.readyList = make([]int32, 0, cfg.Conns)
	e.readyWork = make([]int32, 0, cfg.Conns)
	e.blockedList = make([]int32, 0, cfg.Conns)
	return e, nil
}

// grow makes the per-request arrays hold at least n requests. The open loop
// sizes them once from its schedule; the closed loop, which cannot know how
// many requests it will issue, doubles them as it goes (the draws are
// prefix-stable, so request i's size and service time do not depend on when
// the arrays grew).
func (e *tcpEngine) grow(n int) {
	if n <= len(e.sched) {
		return
	}
	if e.cfg.Window > 0 {
		n = max(n, 2*len(e.sched))
	}
	e.sched = append(e.sched, make([]uint64, n-len(e.sched))...)
	e.interval = append(e.interval, make([]uint16, n-len(e.interval))...)
	e.seen = append(e.seen, make([]uint64, (n+63)/64-len(e.seen))...)
	if e.cfg.Service.Enabled() {
		e.service = e.cfg.Service.Draw(n, e.cfg.Seed)
	}
	if !e.cfg.Sizes.Fixed() {
		floor := HeaderLen
		if e.cfg.Service.Enabled() {
			floor = SyntheticHeaderLen
		}
		e.sizes = e.cfg.Sizes.Draw(n, e.cfg.Seed, floor, MaxTCPSize)
	}
}

// size is request id's length in bytes (and its echo's).
func (e *tcpEngine) size(id int) int {
	if e.sizes != nil {
		return int(e.sizes[id])
	}
	return e.cfg.Size
}

// notify is the waiter callback of connection i, run by gVisor's goroutines:
// it puts the connection on the ready list once.
func (e *tcpEngine) notify(c *tcpConn) {
	if c.ready.Swap(true) {
		return
	}
	e.readyMu.Lock()
	e.readyList = append(e.readyList, int32(c.idx))
	e.readyMu.Unlock()
}

// poll runs one round of the link, then lets gVisor's goroutines run (see
// tcpLockThread).
func (e *tcpEngine) poll() {
	e.link.Poll()
	runtime.Gosched()
}

// connect opens every connection, at most window handshakes at a time (the
// first alone, so that one ARP resolution serves all), and waits until all are
// established.
func (e *tcpEngine) connect(timeout time.Duration) error {
	const window = 256
	deadline := time.Now().Add(timeout)
	addr := tcpip.FullAddress{NIC: netstack.NICID, Addr: tcpip.AddrFrom4(e.cfg.Flow.DstIP.As4()), Port: e.cfg.Flow.DstPort}
	e.conns = make([]*tcpConn, e.cfg.Conns)
	opened, established := 0, 0
	pending := make([]int, 0, window)
	for established < len(e.conns) {
		limit := window
		if established == 0 {
			limit = 1
		}
		for opened < len(e.conns) && len(pending) < limit {
			c := &tcpConn{e: e, idx: opened, next: opened, issued: opened, expect: opened}
			c.reader = e.proto.newReader(c)
			ep, err := e.s.NewEndpoint(tcp.ProtocolNumber, ipv4.ProtocolNumber, &c.wq)
			if err != nil {
				return fmt.Errorf("connection %d: new endpoint: %s", opened, err)
			}
			c.ep = ep
			ep.SocketOptions().SetDelayOption(false) // no Nagle: every request leaves when written
			c.entry = waiter.NewFunctionEntry(waiter.ReadableEvents|waiter.EventErr|waiter.EventHUp,
				func(waiter.EventMask) { e.notify(c) })
			c.wq.EventRegister(&c.entry)
			e.conns[opened] = c
			addr.Port = e.cfg.Flow.DstPort + uint16(opened%e.cfg.Ports)
			if err := ep.Connect(addr); err != nil {
				if _, ok := err.(*tcpip.ErrConnectStarted); !ok {
					return fmt.Errorf("connection %d to %v:%d: %s", opened, e.cfg.Flow.DstIP, addr.Port, err)
				}
			}
			pending = append(pending, opened)
			opened++
		}
		e.poll()
		k := 0
		for _, i := range pending {
			c := e.conns[i]
			switch st := tcp.EndpointState(c.ep.State()); {
			case st == tcp.StateEstablished:
				established++
			case st == tcp.StateError || st == tcp.StateClose:
				err := c.ep.LastError()
				return fmt.Errorf("connection %d to %v:%d failed: %v", i, e.cfg.Flow.DstIP, e.cfg.Flow.DstPort, err)
			default:
				pending[k] = i
				k++
			}
		}
		pending = pending[:k]
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d connections to %v:%d established in %v", established, len(e.conns),
				e.cfg.Flow.DstIP, e.cfg.Flow.DstPort, timeout)
		}
	}
	if ns, err := e.s.Neighbors(netstack.NICID, ipv4.ProtocolNumber); err == nil {
		dst := tcpip.AddrFrom4(e.cfg.Flow.DstIP.As4())
		for _, nb := range ns {
			if nb.Addr == dst {
				e.res.ServerMAC = net.HardwareAddr(nb.LinkAddr).String()
			}
		}
	}
	// Connections already on the ready list stay there: one reset meanwhile
	// must be seen.
	return nil
}

func (e *tcpEngine) run() {
	cfg, res := e.cfg, e.res
	e.link.SetSpinning(true)
	defer e.link.SetSpinning(false)
	n := len(e.offsets)
	closed := cfg.Window > 0
	drainTicks := tsc.FromDuration(cfg.Drain)
	res.Start = time.Now()
	start := tsc.Read() + tsc.FromDuration(time.Millisecond)
	for i, off := range e.offsets {
		e.sched[i] = start + uint64(float64(off.Nanoseconds())/e.nsPerTick)
	}
	e.measureFrom = start + tsc.FromDuration(cfg.Warmup)
	e.issueEnd = e.measureFrom + tsc.FromDuration(cfg.Duration)
	hardStop := start + tsc.FromDuration(cfg.Warmup+cfg.Duration+cfg.Drain+5*time.Second)
	e.lastSend = start
	if closed {
		for tsc.Read() < start {
		}
		e.now = tsc.Read()
		for _, c := range e.conns {
			e.write(c) // every connection's first window
		}
	}
	for {
		now := tsc.Read()
		e.now = now
		// Open loop: write everything that is due to its connection.
		for e.next < n && e.sched[e.next] <= now {
			id := e.next
			e.next++
			c := e.conns[id%len(e.conns)]
			switch {
			case c.failed:
				e.notSent(id)
			case !c.blocked:
				e.write(c)
			}
		}
		// Connections that were out of send-buffer space try again.
		if len(e.blockedList) > 0 {
			k := 0
			for _, i := range e.blockedList {
				c := e.conns[i]
				if c.failed {
					continue
				}
				c.blocked = false
				e.write(c)
				if c.blocked {
					e.blockedList[k] = i
					k++
				}
			}
			e.blockedList = e.blockedList[:k]
		}
		// One link round: our writes leave, received segments go to gVisor.
		e.poll()
		// Read what gVisor made readable; in a closed loop every reply makes
		// room for the next request on its connection.
		e.readyMu.Lock()
		e.readyWork, e.readyList = e.readyList, e.readyWork[:0]
		e.readyMu.Unlock()
		if len(e.readyWork) > 0 {
			e.now = tsc.Read()
			for _, i := range e.readyWork {
				c := e.conns[i]
				e.read(c)
				if closed && !c.failed && !c.blocked {
					e.write(c)
				}
			}
		}
		issuing := e.next < n || closed && now < e.issueEnd
		if !issuing && (len(e.blockedList) == 0 && e.recvAll == e.sentAll || now > e.lastSend+drainTicks) {
			break
		}
		if now > hardStop {
			break
		}
	}
	// Requests due but never written.
	for _, c := range e.conns {
		if !c.failed {
			e.dropBacklog(c)
		}
	}
	e.spells.finish(res, e.nsPerTick)
	finish(res, &cfg.Config, float64(e.maxLag)*e.nsPerTick/1e3)
	// Writes are in time order across connections: the first are the
	// earliest.
	if cfg.Window == 0 {
		checkArrivals(res, &cfg.Config, e.sendTimes, e.nsPerTick)
	}
}

// due reports whether c has a request to write now: in the open loop one whose
// time has come, in the closed loop one the window allows (issued here: its
// latency starts now).
func (e *tcpEngine) due(c *tcpConn) bool {
	if e.cfg.Window == 0 {
		return c.next < e.next
	}
	if c.next < c.issued {
		return true // issued, waiting for send-buffer space
	}
	nc := len(e.conns)
	if (c.next-c.expect)/nc >= e.cfg.Window || e.now >= e.issueEnd {
		return false
	}
	id := c.issued
	e.grow(id + 1)
	e.sched[id] = e.now
	if e.now >= e.measureFrom {
		e.interval[id] = uint16(min(int((e.now-e.measureFrom)/e.intervalTicks), e.nIntervals-1) + 1)
		e.res.Scheduled++
	}
	c.issued += nc
	return true
}

// write writes c's due requests until they are all written or the connection
// runs out of send-buffer space (it is then blocked) or fails.
func (e *tcpEngine) write(c *tcpConn) {
	nc := len(e.conns)
	for e.due(c) {
		id := c.next
		req := e.proto.request(id)
		e.reader.Reset(req[c.off:])
		w, err := c.ep.Write(&e.reader, tcpip.WriteOptions{})
		c.off += int(w)
		if err != nil {
			if _, ok := err.(*tcpip.ErrWouldBlock); !ok {
				e.fail(c)
				return
			}
		}
		if c.off < len(req) {
			if !c.blocked {
				c.blocked = true
				e.blockedList = append(e.blockedList, int32(c.idx))
			}
			return
		}
		c.off = 0
		c.next += nc
		now := tsc.Read()
		e.lastSend = now
		e.sentAll++
		lag := now - e.sched[id]
		if e.cfg.Window > 0 {
			lag = 0 // a closed loop has no schedule to lag behind
		}
		if lag > e.maxLag {
			e.maxLag = lag
		}
		if e.interval[id] != 0 {
			e.res.Sent++
			if lag > e.lateTicks {
				e.res.Late++
			}
			e.spells.observe(e.sched[id], lag)
			if len(e.sendTimes) <= ArrivalSamples && e.cfg.Window == 0 {
				e.sendTimes = append(e.sendTimes, now)
			}
		} else {
			e.res.WarmupSent++
		}
	}
}

// read drains c's receive queue through its parser.
func (e *tcpEngine) read(c *tcpConn) {
	c.ready.Store(false) // a notification from now on queues c again
	for !c.failed {
		_, err := c.ep.Read(c.reader, tcpip.ReadOptions{})
		if err == nil {
			continue
		}
		if _, ok := err.(*tcpip.ErrWouldBlock); !ok {
			e.fail(c) // reset, or closed by the server
		}
		return
	}
}

// replied records the reply to c's oldest outstanding request; ok false means
// the reply was not a valid answer to it (counted unmatched, and the request
// lost).
func (e *tcpEngine) replied(c *tcpConn, ok bool) {
	id := c.expect
	if id >= c.next || c.failed {
		e.res.Unmatched++ // bytes nobody asked for
		return
	}
	c.expect += len(e.conns)
	e.seen[id/64] |= 1 << (id % 64)
	e.recvAll++
	if !ok {
		e.res.Unmatched++
		return
	}
	if k := e.interval[id]; k != 0 {
		e.res.Received++
		e.res.ReceivedBytes += uint64(e.size(id))
		e.res.Intervals[k-1].RecordValue(int64(float64(e.now-e.sched[id]) * e.nsPerTick))
	} else {
		e.res.WarmupReceived++
	}
}

// fail marks c failed: what it had in flight is lost, what was due on it and
// not written is not sent, and nothing more is written to it.
func (e *tcpEngine) fail(c *tcpConn) {
	if c.failed {
		return
	}
	c.failed = true
	e.res.ConnFailures++
	// Its in-flight requests will never be answered: stop waiting for them.
	// They stay counted as sent, hence lost.
	for id := c.expect; id < c.next; id += len(e.conns) {
		e.seen[id/64] |= 1 << (id % 64)
		e.sentAll--
	}
	c.expect = c.next
	e.dropBacklog(c)
}

// dropBacklog counts c's due but unwritten requests as not sent.
func (e *tcpEngine) dropBacklog(c *tcpConn) {
	last := e.next
	if e.cfg.Window > 0 {
		last = c.issued
	}
	for id := c.next; id < last; id += len(e.conns) {
		e.notSent(id)
	}
	if e.cfg.Window > 0 {
		c.next = c.issued
	} else {
		c.next = e.next + (c.idx-e.next%len(e.conns)+len(e.conns))%len(e.conns)
	}
	c.off = 0
}

func (e *tcpEngine) notSent(id int) {
	if e.interval[id] != 0 {
		e.res.NotSent++
	}
}

// echoProtocol is the generator's own request format (the 18-byte header:
// magic, request id, scheduled offset; the synthetic service time after it;
// filler to the request's size), echoed back whole by the server.
type echoProtocol struct {
	e   *tcpEngine
	buf []byte
}

func newEchoProtocol(e *tcpEngine) *echoProtocol {
	p := &echoProtocol{e: e, buf: make([]byte, e.cfg.Size)}
	binary.BigEndian.PutUint16(p.buf, Magic)
	for i := HeaderLen; i < len(p.buf); i++ {
		p.buf[i] = byte(i)
	}
	return p
}

func (p *echoProtocol) request(id int) []byte {
	e := p.e
	binary.BigEndian.PutUint64(p.buf[2:], uint64(id))
	var off uint64
	if e.offsets != nil {
		off = uint64(e.offsets[id])
	}
	binary.BigEndian.PutUint64(p.buf[10:], off)
	if e.service != nil {
		binary.BigEndian.PutUint64(p.buf[ServiceOffset:], e.service[id])
	}
	return p.buf[:e.size(id)]
}

func (p *echoProtocol) newReader(c *tcpConn) io.Writer { return &echoReader{c: c} }

// echoReader cuts a connection's echoed stream into replies: each is as long
// as the request it answers (c.expect), and its header must name that request.
type echoReader struct {
	c    *tcpConn
	pos  int // bytes of the current reply received
	size int // its length
	hdr  [HeaderLen]byte
}

func (r *echoReader) Write(p []byte) (int, error) {
	total := len(p)
	c := r.c
	for len(p) > 0 {
		if r.pos == 0 {
			r.size = c.e.size(min(c.expect, len(c.e.sched)-1))
		}
		if r.pos < HeaderLen {
			k := copy(r.hdr[r.pos:], p)
			r.pos += k
			p = p[k:]
			if r.pos < HeaderLen {
				break
			}
		}
		rest := r.size - r.pos
		if rest > len(p) {
			r.pos += len(p)
			break
		}
		p = p[rest:]
		r.pos = 0
		id := binary.BigEndian.Uint64(r.hdr[2:])
		c.e.replied(c, binary.BigEndian.Uint16(r.hdr[:]) == Magic && id == uint64(c.expect))
	}
	return total, nil
}

// close closes every connection (FIN), gives the handshakes a moment on the
// wire, and closes the stack.
func (e *tcpEngine) close() {
	for _, c := range e.conns {
		if c != nil {
			c.wq.EventUnregister(&c.entry)
			c.ep.Close()
		}
	}
	deadline := time.Now().Add(100 * time.Millisecond)
	for time.Now().Before(deadline) {
		e.poll()
		if e.s.Stats().TCP.CurrentEstablished.Value() == 0 && e.s.Stats().TCP.CurrentConnected.Value() == 0 {
			break
		}
	}
	e.link.SetSpinning(false)
	e.s.Close()
	e.s.Wait()
}
