package netstack

// Per-request engine-CPU benchmarks of the user-space stack's packet path:
// one stack over a scriptPort (a nic.Port that hands the stack pre-built
// frames and counts what it transmits, from preallocated buffers), driven by
// the benchmark goroutine the way joyrided's engine drives its link
// (SetSpinning(true); per round Poll, the writes the round's deliveries asked
// for, Flush). The peer is simulated: its frames are built before the timer
// starts (the TCP peer then only rewrites its segment's sequence numbers and
// checksum each round), and its neighbour entry is static, so no ARP is
// needed.
// Everything the benchmarks allocate is the stack's.
//
//	BenchmarkUDPEchoFastPath  64 B UDP echo through FastPath (no gVisor)
//	BenchmarkUDPEchoGVisor    the same echo through a gVisor UDP endpoint
//	BenchmarkTCPEchoGVisor    64 B request in, 64 B reply out, on an
//	                          established gVisor TCP connection
//
// "64 B" is the payload: a UDP request frame is 14+20+8+64 = 106 bytes, a
// TCP one 14+20+20+64 = 118.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/joyride-bench/joyride/nic"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// scriptPort buffer geometry. The Endpoint holds at most one burst of spare
// TX buffers and one burst queued (2 x 32 by default), so spTxSlots covers
// nic.MaxBurst-sized bursts too.
const (
	spBufSize = 2048
	spRxSlots = 64
	spTxSlots = 2 * nic.MaxBurst
)

// spSlot is one port buffer; Batch.Handles point at it.
type spSlot struct {
	rx  bool // a receive buffer (else transmit)
	idx int  // index in scriptPort.tx
	n   int  // receive: frame length
	buf [spBufSize]byte
}

// scriptPort is a nic.Port test double that allocates nothing after
// newScriptPort: the benchmark injects frames, which RxBurst hands to the
// Endpoint from a ring of preallocated receive buffers; Alloc hands out
// preallocated transmit buffers, and TxBurst counts the frames, optionally
// shows each to onTx and keeps a copy of the last one, and takes the
// buffers back.
//
// Like every nic.Port it relies on its caller for serialisation: the
// Endpoint makes every port call under its lock. The receive side (inject,
// RxBurst, and Free of receive buffers) is used only by the goroutine that
// polls; the transmit side may be called from gVisor's goroutines (TCP
// processors) too, so what the benchmark reads of it while they may run is
// atomic (nTx, and onTx's own state); last is read only once the Endpoint's
// lock has been taken after the write (e.g. by Flush or Stats).
type scriptPort struct {
	mac net.HardwareAddr

	rx                  [spRxSlots]spSlot
	rxIn, rxOut, rxFree uint64 // frames injected, handed out by RxBurst, freed

	tx    [spTxSlots]spSlot
	free  [spTxSlots]int32 // indices of the free transmit buffers
	nFree int
	held  atomic.Int64 // transmit buffers handed out by Alloc and not back yet

	nTx   atomic.Uint64
	onTx  func(frame []byte) // if set, sees every transmitted frame (in TxBurst)
	keep  atomic.Bool        // keep a copy of the last transmitted frame in last
	last  [spBufSize]byte
	lastN int
}

var _ nic.Port = (*scriptPort)(nil)

func newScriptPort(mac net.HardwareAddr) *scriptPort {
	p := &scriptPort{mac: mac, nFree: spTxSlots}
	for i := range p.rx {
		p.rx[i].rx = true
	}
	for i := range p.tx {
		p.tx[i].idx = i
		p.free[i] = int32(i)
	}
	return p
}

// inject queues a copy of frame for the next RxBurst, as a NIC would write it
// into a receive buffer; false if the ring is full.
func (p *scriptPort) inject(frame []byte) bool {
	if p.rxIn-p.rxFree >= spRxSlots || len(frame) > spBufSize {
		return false
	}
	s := &p.rx[p.rxIn%spRxSlots]
	s.n = copy(s.buf[:], frame)
	p.rxIn++
	return true
}

func (p *scriptPort) RxBurst(b *nic.Batch) int {
	n := min(int(p.rxIn-p.rxOut), b.Cap())
	for i := 0; i < n; i++ {
		s := &p.rx[p.rxOut%spRxSlots]
		b.Frames[i], b.Handles[i] = s.buf[:s.n], unsafe.Pointer(s)
		p.rxOut++
	}
	b.N = n
	return n
}

func (p *scriptPort) Alloc(b *nic.Batch, n int) int {
	n = min(n, b.Cap(), p.nFree)
	for i := 0; i < n; i++ {
		p.nFree--
		s := &p.tx[p.free[p.nFree]]
		b.Frames[i], b.Handles[i] = s.buf[:], unsafe.Pointer(s)
	}
	p.held.Add(int64(n))
	b.N = n
	return n
}

func (p *scriptPort) TxBurst(b *nic.Batch) int {
	n := b.N
	keep := p.keep.Load()
	for i := 0; i < n; i++ {
		f := b.Frames[i]
		if p.onTx != nil {
			p.onTx(f)
		}
		if keep {
			p.lastN = copy(p.last[:], f)
		}
	}
	p.release(b)
	p.nTx.Add(uint64(n))
	return n
}

func (p *scriptPort) Free(b *nic.Batch) { p.release(b) }

func (p *scriptPort) release(b *nic.Batch) {
	for i := 0; i < b.N; i++ {
		s := (*spSlot)(b.Handles[i])
		b.Handles[i] = nil
		if s.rx {
			p.rxFree++
			continue
		}
		p.free[p.nFree] = int32(s.idx)
		p.nFree++
		p.held.Add(-1)
	}
	b.N = 0
}

func (p *scriptPort) MAC() net.HardwareAddr { return p.mac }
func (p *scriptPort) MTU() int              { return 1500 }
func (p *scriptPort) Features() nic.Features {
	return nic.Features{Driver: "script", RxQueues: 1, TxQueues: 1}
}
func (p *scriptPort) Stats() (nic.Stats, error) {
	return nic.Stats{RxPackets: p.rxOut, TxPackets: p.nTx.Load()}, nil
}
func (p *scriptPort) Close() error { return nil }

// The benchmarks' addresses: the stack is bnLocal, the simulated peer bnPeer.
var (
	bnLocal   = netip.MustParsePrefix("198.18.0.2/24")
	bnPeer    = netip.MustParseAddr("198.18.0.1")
	bnSelfMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	bnPeerMAC = tcpip.LinkAddress("\x02\x00\x00\x00\x00\x01")
)

const (
	bnPort     = 9000  // the stack's port
	bnPeerPort = 40000 // the peer's
	bnPayload  = 64
	bnWarmup   = 2000 // rounds before the timer starts
)

func addr4(a netip.Addr) tcpip.Address { return tcpip.AddrFrom4(a.As4()) }

// benchEnv is a stack (NewStack, as joyrided builds it) over a scriptPort,
// with the peer's neighbour entry static and the Endpoint spinning, as under
// joyrided's engine.
type benchEnv struct {
	p  *scriptPort
	ep *Endpoint
	st *stack.Stack
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	p := newScriptPort(bnSelfMAC)
	ep := New(p, Options{})
	st, err := NewStack(ep, bnLocal, netip.Addr{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		st.Close()
		st.Wait()
	})
	if err := st.AddStaticNeighbor(NICID, ipv4.ProtocolNumber, addr4(bnPeer), bnPeerMAC); err != nil {
		b.Fatal(err)
	}
	ep.SetSpinning(true)
	return &benchEnv{p: p, ep: ep, st: st}
}

// benchPayload is the request's payload: a pattern, so an echo that moved or
// lost bytes is seen.
func benchPayload() []byte {
	m := make([]byte, bnPayload)
	for i := range m {
		m[i] = byte(i*7 + 1)
	}
	return m
}

// udpRequest is the peer's datagram to the stack's bnPort (correct IPv4 and
// UDP checksums).
func udpRequest(payload []byte) []byte {
	return udpFrame(bnPeerMAC, tcpip.LinkAddress(bnSelfMAC), addr4(bnPeer), addr4(bnLocal.Addr()),
		bnPeerPort, bnPort, payload, false)
}

// checkReply verifies that frame is the stack's reply to the peer: Ethernet
// addresses, an IPv4 header without options and with a right checksum, the
// transport protocol and ports, a right transport checksum and, when want is
// not nil, the payload.
func checkReply(frame []byte, proto tcpip.TransportProtocolNumber, want []byte) error {
	if len(frame) < header.EthernetMinimumSize+header.IPv4MinimumSize {
		return fmt.Errorf("%d-byte frame", len(frame))
	}
	eth := header.Ethernet(frame)
	if eth.Type() != header.IPv4ProtocolNumber || eth.SourceAddress() != tcpip.LinkAddress(bnSelfMAC) ||
		eth.DestinationAddress() != bnPeerMAC {
		return fmt.Errorf("Ethernet %v -> %v type %#x", eth.SourceAddress(), eth.DestinationAddress(), eth.Type())
	}
	ip := header.IPv4(frame[header.EthernetMinimumSize:])
	if !ip.IsValid(len(ip)) || ip.HeaderLength() != header.IPv4MinimumSize {
		return errors.New("bad IPv4 header")
	}
	if !ip.IsChecksumValid() {
		return errors.New("IPv4 header checksum wrong")
	}
	if ip.SourceAddress() != addr4(bnLocal.Addr()) || ip.DestinationAddress() != addr4(bnPeer) ||
		ip.Protocol() != uint8(proto) {
		return fmt.Errorf("IPv4 %v -> %v protocol %d", ip.SourceAddress(), ip.DestinationAddress(), ip.Protocol())
	}
	seg := ip.Payload()
	sum := header.PseudoHeaderChecksum(proto, ip.SourceAddress(), ip.DestinationAddress(), uint16(len(seg)))
	var sport, dport uint16
	var payload []byte
	switch proto {
	case header.UDPProtocolNumber:
		u := header.UDP(seg)
		if len(seg) < header.UDPMinimumSize || int(u.Length()) != len(seg) {
			return errors.New("bad UDP length")
		}
		if u.Checksum() == 0 {
			return errors.New("no UDP checksum")
		}
		sport, dport, payload = u.SourcePort(), u.DestinationPort(), u.Payload()
	case header.TCPProtocolNumber:
		t := header.TCP(seg)
		if len(seg) < header.TCPMinimumSize || int(t.DataOffset()) > len(seg) {
			return errors.New("bad TCP header")
		}
		sport, dport, payload = t.SourcePort(), t.DestinationPort(), t.Payload()
	}
	if checksum.Checksum(seg, sum) != 0xffff {
		return fmt.Errorf("%s checksum wrong", protoName(proto))
	}
	if sport != bnPort || dport != bnPeerPort {
		return fmt.Errorf("%s ports %d -> %d", protoName(proto), sport, dport)
	}
	if want != nil && !bytes.Equal(payload, want) {
		return fmt.Errorf("payload %x, want %x", payload, want)
	}
	return nil
}

func protoName(p tcpip.TransportProtocolNumber) string {
	if p == header.TCPProtocolNumber {
		return "TCP"
	}
	return "UDP"
}

// lastFrame is the frame the port kept; only after the Endpoint's lock has
// been taken since it was sent.
func (e *benchEnv) lastFrame() []byte {
	e.ep.Stats() // takes e.ep.mu: the TxBurst that wrote last happened before
	return e.p.last[:e.p.lastN]
}

// checkedRound runs round once with the port keeping (p.keep) the frames it
// transmits, then check.
func (e *benchEnv) checkedRound(b *testing.B, round, check func() error) {
	b.Helper()
	e.p.keep.Store(true)
	e.p.lastN = 0
	err := round()
	e.p.keep.Store(false)
	if err != nil {
		b.Fatalf("checked round: %v", err)
	}
	if err := check(); err != nil {
		b.Fatalf("checked round: %v", err)
	}
}

// warmUp runs round bnWarmup times (pools, neighbour and template caches,
// gVisor's per-endpoint state), the frames kept, then check.
func (e *benchEnv) warmUp(b *testing.B, round, check func() error) {
	b.Helper()
	e.p.keep.Store(true)
	for i := 0; i < bnWarmup; i++ {
		if err := round(); err != nil {
			b.Fatalf("warm-up round %d: %v", i, err)
		}
	}
	e.p.keep.Store(false)
	if err := check(); err != nil {
		b.Fatalf("after warm-up: %v", err)
	}
}

// runTimed runs round b.N times under the timer (each round checks that its
// reply left), then once more untimed with check.
func (e *benchEnv) runTimed(b *testing.B, round, check func() error) {
	b.Helper()
	tx0 := e.p.nTx.Load()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := round(); err != nil {
			b.Fatalf("round %d: %v", i, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(e.p.nTx.Load()-tx0)/float64(b.N), "frames/op")
	e.checkedRound(b, round, check)
}

var (
	errInject  = errors.New("scriptPort: receive ring full")
	errNoReply = errors.New("no reply frame transmitted for the request")
	errExtra   = errors.New("more than one frame transmitted for the request")
)

// echoQueue is where a fast-path handler leaves the datagrams to answer: a
// handler runs inside Poll under the Endpoint's lock and must not call
// WriteUDP (it would deadlock on that lock); the loop writes the replies
// after Poll returns, as joyrided's engine does. Preallocated: queueing
// copies the payload (valid only during the handler) and allocates nothing.
type echoQueue struct {
	n    int
	lost int
	src  [32]netip.AddrPort
	size [32]int
	data [32][spBufSize]byte
}

func (q *echoQueue) handle(src netip.AddrPort, payload []byte) {
	if q.n == len(q.src) || len(payload) > spBufSize {
		q.lost++
		return
	}
	q.src[q.n] = src
	q.size[q.n] = copy(q.data[q.n][:], payload)
	q.n++
}

// BenchmarkUDPEchoFastPath: per op the peer's 64 B datagram arrives, Poll
// hands it to the fast path (classify, IPv4 and UDP checksums, handler
// queues it), the loop writes the echo with FastPath.WriteUDP (template,
// both checksums in software) and Flush transmits it. allocs/op must be 0.
func BenchmarkUDPEchoFastPath(b *testing.B) {
	e := newBenchEnv(b)
	fp := NewFastPath(e.ep, e.st, bnLocal, netip.Addr{})
	q := new(echoQueue)
	fp.Register(bnPort, q.handle)
	payload := benchPayload()
	req := udpRequest(payload)
	var errHandled = errors.New("the handler was not given exactly one datagram")
	var errFallback = errors.New("WriteUDP fell back to gVisor")
	round := func() error {
		tx := e.p.nTx.Load()
		if !e.p.inject(req) {
			return errInject
		}
		e.ep.Poll()
		if q.n != 1 {
			return errHandled
		}
		for i := 0; i < q.n; i++ {
			if !fp.WriteUDP(bnPort, q.src[i], q.data[i][:q.size[i]]) {
				return errFallback
			}
		}
		q.n = 0
		e.ep.Flush()
		switch n := e.p.nTx.Load() - tx; {
		case n == 0:
			return errNoReply
		case n > 1:
			return errExtra
		}
		return nil
	}
	check := func() error { return checkReply(e.lastFrame(), header.UDPProtocolNumber, payload) }
	e.warmUp(b, round, check)
	st0, fs0 := e.ep.Stats(), fp.Stats()
	e.runTimed(b, round, check)
	st, fs := e.ep.Stats(), fp.Stats()
	n := uint64(b.N) + 1 // the checked round too
	switch {
	case st.RxFast-st0.RxFast != n || st.RxFrames != st0.RxFrames:
		b.Fatalf("fast path took %d of %d requests, gVisor %d", st.RxFast-st0.RxFast, n, st.RxFrames-st0.RxFrames)
	case st.TxFast-st0.TxFast != n || fs.TxDatagrams-fs0.TxDatagrams != n:
		b.Fatalf("fast path wrote %d replies (%d datagrams) for %d requests", st.TxFast-st0.TxFast, fs.TxDatagrams-fs0.TxDatagrams, n)
	case fs.TxFallbacks != 0 || q.lost != 0:
		b.Fatalf("%d fallbacks, %d datagrams lost by the handler", fs.TxFallbacks, q.lost)
	}
	// Next-hop look-ups in gVisor's neighbour table during the timed run (a
	// template is trusted for templateTTL): each allocates gVisor's entry
	// slice (Stack.Neighbors), the one allocation the fast path makes.
	b.ReportMetric(float64(fs.Resolves-fs0.Resolves), "resolves")
}

// fixedBuf is an io.Writer into a fixed buffer (tcpip.Endpoint.Read's
// destination), reused so the loop allocates nothing of its own.
type fixedBuf struct {
	b []byte
	n int
}

func (w *fixedBuf) Write(p []byte) (int, error) {
	k := copy(w.b[w.n:], p)
	w.n += k
	if k < len(p) {
		return k, io.ErrShortWrite
	}
	return k, nil
}

// BenchmarkUDPEchoGVisor: the echo of BenchmarkUDPEchoFastPath through gVisor,
// as joyrided serves a UDP socket that is not on the fast path (a FastPath is
// attached; the port is not registered): the datagram is delivered into a
// gVisor UDP endpoint during Poll, Read with its source, and the reply
// written with Write to that source.
func BenchmarkUDPEchoGVisor(b *testing.B) {
	e := newBenchEnv(b)
	fp := NewFastPath(e.ep, e.st, bnLocal, netip.Addr{})
	var wq waiter.Queue
	uep, terr := e.st.NewEndpoint(udp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
	if terr != nil {
		b.Fatal(terr)
	}
	defer uep.Close()
	if terr := uep.Bind(tcpip.FullAddress{Port: bnPort}); terr != nil {
		b.Fatal(terr)
	}
	payload := benchPayload()
	req := udpRequest(payload)
	w := &fixedBuf{b: make([]byte, spBufSize)}
	r := new(bytes.Reader)
	to := new(tcpip.FullAddress)
	var errRead, errWrite tcpip.Error
	errGVisor := errors.New("gVisor endpoint error")
	round := func() error {
		tx := e.p.nTx.Load()
		if !e.p.inject(req) {
			return errInject
		}
		e.ep.Poll()
		w.n = 0
		res, terr := uep.Read(w, tcpip.ReadOptions{NeedRemoteAddr: true})
		if terr != nil {
			errRead = terr
			return errGVisor
		}
		r.Reset(w.b[:w.n])
		*to = res.RemoteAddr
		if _, terr := uep.Write(r, tcpip.WriteOptions{To: to}); terr != nil {
			errWrite = terr
			return errGVisor
		}
		e.ep.Flush()
		switch n := e.p.nTx.Load() - tx; {
		case n == 0:
			return errNoReply
		case n > 1:
			return errExtra
		}
		return nil
	}
	defer func() {
		if errRead != nil || errWrite != nil {
			b.Logf("read: %v; write: %v", errRead, errWrite)
		}
	}()
	check := func() error { return checkReply(e.lastFrame(), header.UDPProtocolNumber, payload) }
	e.warmUp(b, round, check)
	st0 := e.ep.Stats()
	e.runTimed(b, round, check)
	st := e.ep.Stats()
	if n := uint64(b.N) + 1; st.RxFrames-st0.RxFrames != n || st.RxFast != st0.RxFast {
		b.Fatalf("gVisor received %d of %d requests, the fast path %d", st.RxFrames-st0.RxFrames, n, st.RxFast-st0.RxFast)
	}
	if fs := fp.Stats(); fs.RxDatagrams+fs.TxDatagrams != 0 {
		b.Fatalf("the fast path handled datagrams of an unregistered port: %+v", fs)
	}
	if errs := e.st.Stats().UDP.ChecksumErrors.Value(); errs != 0 {
		b.Fatalf("%d UDP checksum errors", errs)
	}
}

// tcpPeer simulates the connection's other end: it builds the segments the
// stack receives (correct sequence and acknowledgement numbers, checksums)
// and follows, from every frame the stack transmits (scriptPort.onTx, which
// may run on a gVisor TCP processor goroutine), how far the stack's sequence
// space has got. No window scaling, timestamps or SACK (its SYN offers only
// an MSS), so its segments carry no options.
type tcpPeer struct {
	iss    uint32 // the peer's initial sequence number
	sndNxt uint32 // the peer's next sequence number (benchmark goroutine only)
	seg    []byte // the data segment frame, rewritten every round
	pseudo uint16 // pseudo-header sum for seg's TCP part

	synAck    atomic.Bool
	rcvNxt    atomic.Uint32 // the stack's next sequence number, as sent
	dataSegs  atomic.Uint64 // segments with new data
	dataBytes atomic.Uint64
	pureAcks  atomic.Uint64
	retrans   atomic.Uint64 // segments with data already seen
	rsts      atomic.Uint64
	others    atomic.Uint64 // frames that are not this connection's

	// While the port keeps frames (warm-up, checked rounds: p.keep), sent
	// checks every frame and keeps the last one with new data.
	p     *scriptPort
	mu    sync.Mutex
	bad   error // the first frame that failed the check
	last  [spBufSize]byte
	lastN int
}

// frame builds the peer's segment from bnPeerPort to bnPort with correct
// IPv4 and TCP checksums.
func (t *tcpPeer) frame(flags header.TCPFlags, seq, ack uint32, opts, payload []byte) []byte {
	const hl = header.EthernetMinimumSize + header.IPv4MinimumSize + header.TCPMinimumSize
	f := make([]byte, hl+len(opts)+len(payload))
	header.Ethernet(f).Encode(&header.EthernetFields{SrcAddr: bnPeerMAC, DstAddr: tcpip.LinkAddress(bnSelfMAC),
		Type: header.IPv4ProtocolNumber})
	ip := header.IPv4(f[header.EthernetMinimumSize:])
	tlen := uint16(header.TCPMinimumSize + len(opts) + len(payload))
	ip.Encode(&header.IPv4Fields{TotalLength: header.IPv4MinimumSize + tlen, TTL: 64, Flags: header.IPv4FlagDontFragment,
		Protocol: uint8(header.TCPProtocolNumber), SrcAddr: addr4(bnPeer), DstAddr: addr4(bnLocal.Addr())})
	ip.SetChecksum(^ip.CalculateChecksum())
	seg := header.TCP(ip[header.IPv4MinimumSize:])
	seg.Encode(&header.TCPFields{SrcPort: bnPeerPort, DstPort: bnPort, SeqNum: seq, AckNum: ack,
		DataOffset: uint8(header.TCPMinimumSize + len(opts)), Flags: flags, WindowSize: 0xffff})
	copy(seg[header.TCPMinimumSize:], opts)
	copy(seg[header.TCPMinimumSize+len(opts):], payload)
	sum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, addr4(bnPeer), addr4(bnLocal.Addr()), tlen)
	seg.SetChecksum(^checksum.Checksum(seg, sum))
	return f
}

// request rewrites the data segment for the next round: the peer's next
// sequence number, an acknowledgement of everything the stack has sent, and
// the TCP checksum.
func (t *tcpPeer) request() []byte {
	seg := header.TCP(t.seg[header.EthernetMinimumSize+header.IPv4MinimumSize:])
	seg.SetSequenceNumber(t.sndNxt)
	seg.SetAckNumber(t.rcvNxt.Load())
	seg.SetChecksum(0)
	seg.SetChecksum(^checksum.Checksum(seg, t.pseudo))
	return t.seg
}

// sent is scriptPort.onTx: it follows the stack's side of the connection.
func (t *tcpPeer) sent(f []byte) {
	checking := t.p.keep.Load()
	if checking {
		if err := checkReply(f, header.TCPProtocolNumber, nil); err != nil {
			t.mu.Lock()
			if t.bad == nil {
				t.bad = err
			}
			t.mu.Unlock()
		}
	}
	if len(f) < header.EthernetMinimumSize+header.IPv4MinimumSize+header.TCPMinimumSize ||
		header.Ethernet(f).Type() != header.IPv4ProtocolNumber {
		t.others.Add(1)
		return
	}
	ip := header.IPv4(f[header.EthernetMinimumSize:])
	if ip.Protocol() != uint8(header.TCPProtocolNumber) || int(ip.TotalLength()) > len(ip) ||
		int(ip.TotalLength()) < int(ip.HeaderLength())+header.TCPMinimumSize {
		t.others.Add(1)
		return
	}
	seg := header.TCP(ip[ip.HeaderLength():ip.TotalLength()])
	if seg.SourcePort() != bnPort || seg.DestinationPort() != bnPeerPort || int(seg.DataOffset()) > len(seg) {
		t.others.Add(1)
		return
	}
	flags := seg.Flags()
	seq, n := seg.SequenceNumber(), uint32(len(seg)-int(seg.DataOffset()))
	if flags.Contains(header.TCPFlagRst) {
		t.rsts.Add(1)
		return
	}
	if flags.Contains(header.TCPFlagSyn | header.TCPFlagAck) {
		t.rcvNxt.Store(seq + 1)
		t.synAck.Store(true)
		return
	}
	end := seq + n
	if flags.Contains(header.TCPFlagFin) {
		end++
	}
	switch nxt := t.rcvNxt.Load(); {
	case n == 0:
		t.pureAcks.Add(1)
	case int32(end-nxt) <= 0:
		t.retrans.Add(1)
	default:
		t.dataSegs.Add(1)
		t.dataBytes.Add(uint64(int32(end - nxt)))
		if checking {
			t.mu.Lock()
			t.lastN = copy(t.last[:], f)
			t.mu.Unlock()
		}
	}
	if nxt := t.rcvNxt.Load(); int32(end-nxt) > 0 {
		t.rcvNxt.Store(end)
	}
}

// check: no frame failed the check, and the last reply segment carries want.
func (t *tcpPeer) check(want []byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.bad != nil {
		return fmt.Errorf("a transmitted frame: %w", t.bad)
	}
	if t.lastN == 0 {
		return errors.New("no reply segment kept")
	}
	if err := checkReply(t.last[:t.lastN], header.TCPProtocolNumber, want); err != nil {
		return fmt.Errorf("reply segment: %w", err)
	}
	t.lastN = 0
	return nil
}

// spinner waits for something gVisor does on another goroutine, as the
// engine does: Flush (the Endpoint is spinning, so others' writes wait for
// it) and yield. It reads the clock only once it has spun a while.
type spinner struct {
	n        int
	deadline time.Time
}

var errTimeout = errors.New("timed out waiting for the stack")

func (s *spinner) spin(ep *Endpoint) error {
	ep.Flush()
	runtime.Gosched()
	s.n++
	if s.n%1024 == 0 {
		if s.deadline.IsZero() {
			s.deadline = time.Now().Add(5 * time.Second)
		} else if time.Now().After(s.deadline) {
			return errTimeout
		}
	}
	return nil
}

// BenchmarkTCPEchoGVisor: per op the simulated peer's 64 B request segment
// (acknowledging the previous reply) arrives, Poll delivers it to gVisor's
// TCP, which processes it on its processor goroutine; the loop reads the 64
// bytes from the connection's endpoint once readable, writes them back
// (gVisor sends the segment from Write) and Flushes. An op ends when the
// reply has been transmitted. ns/op is wall time and includes the hand-off
// to gVisor's TCP processor goroutine (and its pure ACKs, see acks/op); the
// peer's own cost in it is rewriting two fields and the TCP checksum of its
// segment and parsing the stack's frames' headers.
func BenchmarkTCPEchoGVisor(b *testing.B) {
	e := newBenchEnv(b)
	NewFastPath(e.ep, e.st, bnLocal, netip.Addr{}) // as in joyrided; TCP never takes it
	peer := &tcpPeer{iss: 0x10000000, p: e.p}
	e.p.onTx = peer.sent
	e.p.keep.Store(true) // check the handshake's frames too

	var lwq waiter.Queue
	lep, terr := e.st.NewEndpoint(tcp.ProtocolNumber, ipv4.ProtocolNumber, &lwq)
	if terr != nil {
		b.Fatal(terr)
	}
	defer lep.Close()
	if terr := lep.Bind(tcpip.FullAddress{Port: bnPort}); terr != nil {
		b.Fatal(terr)
	}
	if terr := lep.Listen(8); terr != nil {
		b.Fatal(terr)
	}

	// The handshake: SYN (MSS 1460 only), the stack's SYN-ACK, ACK.
	mss := []byte{2, 4, 0x05, 0xb4}
	if !e.p.inject(peer.frame(header.TCPFlagSyn, peer.iss, 0, mss, nil)) {
		b.Fatal(errInject)
	}
	e.ep.Poll()
	var sp spinner
	for !peer.synAck.Load() {
		if err := sp.spin(e.ep); err != nil {
			b.Fatalf("no SYN-ACK: %v (endpoint %+v)", err, e.ep.Stats())
		}
	}
	peer.sndNxt = peer.iss + 1
	if !e.p.inject(peer.frame(header.TCPFlagAck, peer.sndNxt, peer.rcvNxt.Load(), nil, nil)) {
		b.Fatal(errInject)
	}
	e.ep.Poll()
	var conn tcpip.Endpoint
	for sp = (spinner{}); ; {
		c, _, terr := lep.Accept(nil)
		if terr == nil {
			conn = c
			break
		}
		if _, ok := terr.(*tcpip.ErrWouldBlock); !ok {
			b.Fatalf("Accept: %v", terr)
		}
		if err := sp.spin(e.ep); err != nil {
			b.Fatalf("no connection accepted: %v", err)
		}
	}
	defer conn.Close()
	conn.SocketOptions().SetDelayOption(false) // TCP_NODELAY, as joyrided sets it

	payload := benchPayload()
	peer.seg = peer.frame(header.TCPFlagAck|header.TCPFlagPsh, 0, 0, nil, payload)
	peer.pseudo = header.PseudoHeaderChecksum(header.TCPProtocolNumber, addr4(bnPeer), addr4(bnLocal.Addr()),
		uint16(header.TCPMinimumSize+len(payload)))
	w := &fixedBuf{b: make([]byte, spBufSize)}
	r := new(bytes.Reader)
	var lastErr tcpip.Error
	errGVisor := errors.New("gVisor endpoint error")
	errShort := errors.New("reply not written whole")
	errData := errors.New("the stack sent more or less than one 64 B reply segment")
	round := func() error {
		segs := peer.dataSegs.Load()
		if !e.p.inject(peer.request()) {
			return errInject
		}
		peer.sndNxt += bnPayload
		e.ep.Poll()
		w.n = 0
		sp := spinner{}
		for w.n < bnPayload {
			_, terr := conn.Read(w, tcpip.ReadOptions{})
			if terr == nil {
				continue
			}
			if _, ok := terr.(*tcpip.ErrWouldBlock); !ok {
				lastErr = terr
				return errGVisor
			}
			if err := sp.spin(e.ep); err != nil {
				return err
			}
		}
		if w.n != bnPayload {
			return errData
		}
		r.Reset(w.b[:w.n])
		n, terr := conn.Write(r, tcpip.WriteOptions{})
		if terr != nil {
			lastErr = terr
			return errGVisor
		}
		if n != bnPayload {
			return errShort
		}
		e.ep.Flush()
		for peer.dataSegs.Load() == segs {
			if err := sp.spin(e.ep); err != nil {
				return errNoReply
			}
		}
		if peer.dataSegs.Load() != segs+1 {
			return errData
		}
		return nil
	}
	defer func() {
		if lastErr != nil {
			b.Logf("last gVisor error: %v", lastErr)
		}
	}()
	check := func() error { return peer.check(payload) }
	b0 := peer.dataBytes.Load()
	e.warmUp(b, round, check)
	acks0, bytes0 := peer.pureAcks.Load(), peer.dataBytes.Load()
	if got := bytes0 - b0; got != bnWarmup*bnPayload {
		b.Fatalf("warm-up: %d bytes of replies, want %d", got, bnWarmup*bnPayload)
	}
	e.runTimed(b, round, check)
	n := uint64(b.N) + 1 // the checked round too
	b.ReportMetric(float64(peer.pureAcks.Load()-acks0)/float64(n), "acks/op")
	switch {
	case peer.dataBytes.Load()-bytes0 != n*bnPayload:
		b.Fatalf("%d bytes of replies for %d requests", peer.dataBytes.Load()-bytes0, n)
	case peer.retrans.Load() != 0 || peer.rsts.Load() != 0 || peer.others.Load() != 0:
		b.Fatalf("%d retransmissions, %d resets, %d other frames", peer.retrans.Load(), peer.rsts.Load(), peer.others.Load())
	}
	if errs := e.st.Stats().TCP.ChecksumErrors.Value(); errs != 0 {
		b.Fatalf("%d TCP checksum errors", errs)
	}
}
