package loadgen

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/joyride-bench/joyride/analysis"
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
}

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

// RunTCP offers one point of open-loop TCP echo load on port through a
// client-side gVisor stack of its own (nic/netstack) with the address
// cfg.Flow.SrcIP. It opens cfg.Conns connections to DstIP:DstPort before the
// warm-up (Result.ConnectSeconds says how long that took; it is not part of any
// latency), then writes each request, Size bytes starting with the 18-byte
// header, to its connection at its scheduled time, whatever the replies do
// (several may be in flight on one connection), and parses the echoed byte
// stream of every connection back into replies. A request is sent when the
// connection took all its bytes: one that had to wait for send-buffer space is
// sent (and possibly late) when written. A connection that fails (reset, or
// closed by the server) loses its in-flight requests (lost), the requests due
// on it afterwards are not sent, and it is counted in ConnFailures.
//
// It blocks for the connection setup plus Warmup+Duration+Drain; the port must
// not be used by anything else meanwhile. The stack is closed (connections
// closed, FIN sent) before it returns.
func RunTCP(port nic.Port, cfg TCPConfig) (*Result, error) {
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	offsets, err := DrawSchedule(cfg.Schedule, cfg.Rate, cfg.Warmup+cfg.Duration, cfg.Seed)
	if err != nil {
		return nil, err
	}
	e, err := newTCPEngine(port, &cfg, offsets)
	if err == nil && cfg.Service.Enabled() {
		if cfg.Size < SyntheticHeaderLen {
			err = fmt.Errorf("loadgen: a synthetic request needs at least %d bytes, not %d", SyntheticHeaderLen, cfg.Size)
		}
		e.service = cfg.Service.Draw(len(offsets), cfg.Seed)
	}
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
// schedule, and its reply parser (it is the io.Writer its endpoint reads into).
type tcpConn struct {
	e     *tcpEngine
	idx   int
	ep    tcpip.Endpoint
	wq    waiter.Queue
	entry waiter.Entry
	ready atomic.Bool // on the engine's ready list

	next    int // next request index to write on this connection (idx, idx+Conns, ...)
	off     int // bytes of request next already written
	blocked bool
	failed  bool

	pos int // bytes of the current reply received
	hdr [HeaderLen]byte
}

type tcpEngine struct {
	cfg     *TCPConfig
	link    *netstack.Endpoint
	s       *stack.Stack
	conns   []*tcpConn
	offsets []time.Duration
	service []uint64 // per request, when the requests are synthetic
	sched   []uint64
	// interval[i] is the histogram of request i (0 = warm-up, k = interval k-1).
	interval []uint8
	seen     []uint64
	res      *Result

	readyMu   sync.Mutex
	readyList []int32 // connections notified readable (or failed); guarded by readyMu
	readyWork []int32 // the engine's copy being processed

	blockedList []int32

	req    []byte       // the request being written
	reader bytes.Reader // over req

	next      int // first request not yet due
	now       uint64
	nsPerTick float64
	lateTicks uint64
	maxLag    uint64
	sentAll   uint64
	recvAll   uint64
	lastSend  uint64
}

func newTCPEngine(port nic.Port, cfg *TCPConfig, offsets []time.Duration) (*tcpEngine, error) {
	nIntervals := int((cfg.Duration + Interval - 1) / Interval)
	if nIntervals > 254 {
		return nil, fmt.Errorf("loadgen: %d intervals exceed the 254 a point may have", nIntervals)
	}
	hz := tsc.Hz()
	e := &tcpEngine{cfg: cfg, offsets: offsets, nsPerTick: 1e9 / hz,
		lateTicks: tsc.FromDuration(cfg.LateThreshold), req: make([]byte, cfg.Size)}
	e.res = &Result{Schedule: cfg.Schedule, OfferedRPS: cfg.Rate, DurationS: cfg.Duration.Seconds(),
		WarmupS: cfg.Warmup.Seconds(), Size: cfg.Size, TSCHz: hz, Protocol: "tcp", Conns: cfg.Conns}
	e.res.Intervals = make([]*hdrhistogram.Histogram, nIntervals)
	for i := range e.res.Intervals {
		e.res.Intervals[i] = analysis.NewHistogram()
	}
	n := len(offsets)
	e.interval = make([]uint8, n)
	warmN := 0
	for i, off := range offsets {
		if off < cfg.Warmup {
			warmN++
			continue
		}
		k := int((off - cfg.Warmup) / Interval)
		if k >= nIntervals {
			k = nIntervals - 1
		}
		e.interval[i] = uint8(k + 1)
	}
	e.res.Scheduled = uint64(n - warmN)
	e.seen = make([]uint64, (n+63)/64)
	e.sched = make([]uint64, n)
	binary.BigEndian.PutUint16(e.req, Magic)
	for i := HeaderLen; i < len(e.req); i++ {
		e.req[i] = byte(i)
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
			c := &tcpConn{e: e, idx: opened, next: opened}
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
			if err := ep.Connect(addr); err != nil {
				if _, ok := err.(*tcpip.ErrConnectStarted); !ok {
					return fmt.Errorf("connection %d to %v:%d: %s", opened, e.cfg.Flow.DstIP, e.cfg.Flow.DstPort, err)
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
	nc := len(e.conns)
	drainTicks := tsc.FromDuration(cfg.Drain)
	res.Start = time.Now()
	start := tsc.Read() + tsc.FromDuration(time.Millisecond)
	for i, off := range e.offsets {
		e.sched[i] = start + uint64(float64(off.Nanoseconds())/e.nsPerTick)
	}
	hardStop := start + tsc.FromDuration(cfg.Warmup+cfg.Duration+cfg.Drain+5*time.Second)
	e.lastSend = start
	for {
		now := tsc.Read()
		e.now = now
		// Write everything that is due to its connection.
		for e.next < n && e.sched[e.next] <= now {
			id := e.next
			e.next++
			c := e.conns[id%nc]
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
		// Read what gVisor made readable.
		e.readyMu.Lock()
		e.readyWork, e.readyList = e.readyList, e.readyWork[:0]
		e.readyMu.Unlock()
		if len(e.readyWork) > 0 {
			e.now = tsc.Read()
			for _, i := range e.readyWork {
				e.read(e.conns[i])
			}
		}
		if e.next == n && (len(e.blockedList) == 0 && e.recvAll == e.sentAll || now > e.lastSend+drainTicks) {
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
	finish(res, &cfg.Config, float64(e.maxLag)*e.nsPerTick/1e3)
}

// write writes c's due requests until they are all written or the connection
// runs out of send-buffer space (it is then blocked) or fails.
func (e *tcpEngine) write(c *tcpConn) {
	nc := len(e.conns)
	size := len(e.req)
	for c.next < e.next {
		id := c.next
		binary.BigEndian.PutUint64(e.req[2:], uint64(id))
		binary.BigEndian.PutUint64(e.req[10:], uint64(e.offsets[id]))
		if e.service != nil {
			binary.BigEndian.PutUint64(e.req[ServiceOffset:], e.service[id])
		}
		e.reader.Reset(e.req[c.off:])
		w, err := c.ep.Write(&e.reader, tcpip.WriteOptions{})
		c.off += int(w)
		if err != nil {
			if _, ok := err.(*tcpip.ErrWouldBlock); !ok {
				e.fail(c)
				return
			}
		}
		if c.off < size {
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
		if lag > e.maxLag {
			e.maxLag = lag
		}
		if e.interval[id] != 0 {
			e.res.Sent++
			if lag > e.lateTicks {
				e.res.Late++
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
		_, err := c.ep.Read(c, tcpip.ReadOptions{})
		if err == nil {
			continue
		}
		if _, ok := err.(*tcpip.ErrWouldBlock); !ok {
			e.fail(c) // reset, or closed by the server
		}
		return
	}
}

// Write implements io.Writer for the connection's endpoint to read into: it
// cuts the byte stream into replies of Size bytes.
func (c *tcpConn) Write(p []byte) (int, error) {
	total := len(p)
	size := len(c.e.req)
	for len(p) > 0 {
		if c.pos < HeaderLen {
			k := copy(c.hdr[c.pos:], p)
			c.pos += k
			p = p[k:]
			if c.pos < HeaderLen {
				break
			}
		}
		rest := size - c.pos
		if rest > len(p) {
			c.pos += len(p)
			break
		}
		p = p[rest:]
		c.pos = 0
		c.e.reply(c)
	}
	return total, nil
}

// reply records the reply whose header c holds.
func (e *tcpEngine) reply(c *tcpConn) {
	id := binary.BigEndian.Uint64(c.hdr[2:])
	if binary.BigEndian.Uint16(c.hdr[:]) != Magic || id >= uint64(len(e.offsets)) || id%uint64(len(e.conns)) != uint64(c.idx) {
		e.res.Unmatched++
		return
	}
	w, bit := id/64, uint64(1)<<(id%64)
	if e.seen[w]&bit != 0 {
		e.res.Duplicates++
		return
	}
	e.seen[w] |= bit
	e.recvAll++
	if k := e.interval[id]; k != 0 {
		e.res.Received++
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
	// Its in-flight requests (replies come in order on a connection: the sent
	// ones after the last answered) will never be answered: stop waiting for
	// them. They stay counted as sent, hence lost.
	for id := c.next - len(e.conns); id >= 0; id -= len(e.conns) {
		if e.seen[id/64]&(1<<(id%64)) != 0 {
			break
		}
		e.seen[id/64] |= 1 << (id % 64)
		e.sentAll--
	}
	e.dropBacklog(c)
}

// dropBacklog counts c's due but unwritten requests as not sent.
func (e *tcpEngine) dropBacklog(c *tcpConn) {
	for id := c.next; id < e.next; id += len(e.conns) {
		e.notSent(id)
	}
	c.next = e.next + (c.idx-e.next%len(e.conns)+len(e.conns))%len(e.conns)
	c.off = 0
}

func (e *tcpEngine) notSent(id int) {
	if e.interval[id] != 0 {
		e.res.NotSent++
	}
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
