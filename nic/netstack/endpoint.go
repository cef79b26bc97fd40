// Package netstack puts gVisor's TCP/IP stack (gvisor.dev/gvisor/pkg/tcpip) on top
// of any nic.Port: it is the link layer that Joyride's service, the AF_XDP
// library-OS stack and the load generator's TCP client share.
//
// # A LinkEndpoint is the stack's view of a NIC
//
// gVisor's stack knows nothing about devices. Below IP it sees a
// stack.LinkEndpoint: something with an MTU, a link address and capabilities, that
// accepts outgoing packets (WritePackets) and, once attached, hands incoming ones
// to a stack.NetworkDispatcher (DeliverNetworkPacket). Endpoint is that view of a
// nic.Port: it adds and strips Ethernet headers, lets the stack's own ARP resolve
// neighbours (CapabilityResolutionRequired), and copies each packet once between
// the stack's buffers and the port's (mbufs for DPDK).
//
// # Why the owner polls
//
// gVisor's own link endpoints (fdbased, xdp) start a goroutine that blocks in
// poll(2) and delivers what it reads. Measured here, that design costs a wakeup
// per packet and several goroutine hand-offs between the link, the stack and the
// application, and it is most of why a naive Go user-space stack is three times
// slower than the kernel (see ANCHORS.md). Endpoint starts no goroutine. Its
// owner, an engine loop on a goroutine that is usually locked to its OS thread,
// calls Poll: one RxBurst, every frame delivered synchronously in the caller's
// goroutine, then one TxBurst of whatever the stack queued meanwhile (ARP
// replies, ICMP, UDP replies sent from within delivery, TCP ACKs). Whatever the
// stack delivers inline (UDP datagrams to a socket's queue, for instance) reaches
// the application from the goroutine that ran the stack, with no hand-off.
//
// # Batching
//
// The port is called once per burst, never per frame. RX: up to Options.Burst
// frames a call, copied out and freed at once so the ring refills early. TX:
// WritePackets only copies packets into port buffers (taken from a pre-allocated
// burst) and queues them; the queue goes out in one TxBurst when it fills, at the
// end of a Poll round, or at the end of WritePackets when no Poll round is in
// progress (see WritePackets). Writes made while the poller delivers a burst, by
// the poller itself or by any other goroutine, therefore share its TxBurst. An
// owner that spins can also declare it (SetSpinning): writes from other
// goroutines (gVisor's TCP processors send most TCP segments) then wait for its
// next Poll instead of costing a TxBurst each.
//
// # Software checksums under the LCD model
//
// The project's least-common-denominator model says code must work when the port
// offloads nothing, as the af_xdp, af_packet and memif vdevs and many cloud vNICs
// do. Endpoint then advertises neither CapabilityRXChecksumOffload nor
// CapabilityTXChecksumOffload, so gVisor computes every IPv4/TCP/UDP/ICMP checksum
// it sends and verifies every one it receives. It advertises an offload only when
// the port's Features say the port performs it and the owner opts in
// (Options.ChecksumOffload): a capability advertised but not performed yields
// frames with wrong checksums on the wire, or corrupt frames accepted.
package netstack

import (
	"sync"
	"sync/atomic"

	"github.com/joyride-bench/joyride/nic"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// Options shape an Endpoint. The zero value is usable.
type Options struct {
	// MTU is the largest IP packet (Ethernet payload) the stack may send; default
	// port.MTU(), or 1500 if the port reports none.
	MTU int
	// Burst is the number of frames per RxBurst and per TxBurst; default 32, at
	// most nic.MaxBurst.
	Burst int
	// ChecksumOffload lets the endpoint advertise the checksum offloads the port's
	// Features report (RX: RxIPv4Checksum && RxL4Checksum; TX: TxIPv4Checksum &&
	// TxL4Checksum). Leave it false unless the port really verifies (and drops
	// bad) frames on receive and fills checksums on send for every frame without
	// a per-frame request. The dpdk backend today reports device capabilities,
	// does not enable them, and nic.Batch carries no per-frame offload flags, so
	// with it this must stay false: otherwise the stack would send TCP/UDP with
	// checksums nobody computes.
	ChecksumOffload bool
}

// Stats are an Endpoint's counters since New.
type Stats struct {
	RxFrames uint64 // frames handed to the stack
	RxBytes  uint64
	RxBursts uint64 // RxBurst calls that returned frames
	TxFrames uint64 // frames the port accepted for transmission
	TxBytes  uint64
	TxBursts uint64 // TxBurst calls

	RxFast       uint64 // frames the UDP fast path took instead of the stack (not in RxFrames)
	TxFast       uint64 // frames the UDP fast path queued (FastPath.WriteUDP)
	RxBad        uint64 // runts: shorter than an Ethernet header
	RxOtherHost  uint64 // unicast to another MAC (the port is promiscuous)
	RxDetached   uint64 // arrived while no stack was attached, or after Close
	TxNoBuffer   uint64 // dropped: the port's pool had no buffer (Alloc)
	TxRingFull   uint64 // dropped: the TX ring did not take them (TxBurst)
	TxTooBig     uint64 // dropped: larger than a port buffer
	TxClosed     uint64 // dropped: written after Close, or pending at Close
	TxDeferred   uint64 // WritePackets calls left for the poller to flush (round in progress, or spinning)
	TxSelfFlush  uint64 // WritePackets calls that flushed themselves (no round in progress)
	TxFullFlush  uint64 // flushes because the pending burst was full
	PollRounds   uint64 // Poll calls
	PollDelivers uint64 // Poll calls that delivered at least one frame
}

// minFrame is the shortest Ethernet frame without FCS; shorter frames are padded
// with zeros (some NICs do not pad, and the padding is harmless to IP).
const minFrame = 60

// Endpoint is a stack.LinkEndpoint over a nic.Port. It does not start goroutines
// of its own: the owner calls Poll from its polling loop (one goroutine, usually
// locked to its OS thread), which receives a burst, hands every frame to the stack
// (DeliverNetworkPacket, synchronously, in the caller's goroutine) and flushes the
// frames the stack queued for transmit. That is what lets an engine run the stack
// and deliver to applications without a goroutine hand-off per packet.
//
// Every call into the port is made under one mutex (a nic.Port queue is used by
// one goroutine at a time), so Poll, Flush, WritePackets, Stats and Close may be
// called from any goroutine. Poll rounds themselves are serialised.
type Endpoint struct {
	port  nic.Port
	burst int
	caps  stack.LinkEndpointCapabilities

	mtu      atomic.Uint32
	linkAddr atomic.Pointer[tcpip.LinkAddress]

	pollMu sync.Mutex // serialises Poll rounds; held outside mu
	views  []*buffer.View

	fast atomic.Pointer[FastPath] // the UDP fast path, if one is attached (NewFastPath)

	mu         sync.Mutex // guards the port and everything below
	dispatcher stack.NetworkDispatcher
	rx         *nic.Batch // poller's receive burst
	tx         *nic.Batch // frames copied and waiting for TxBurst
	spare      *nic.Batch // allocated, unused TX buffers: taken from spare.N-1 down
	delivering bool       // a Poll round is delivering and will flush when done
	spinning   bool       // the owner polls in a tight loop and will flush (SetSpinning)
	closed     bool
	onClose    func()
	st         Stats
}

var _ stack.LinkEndpoint = (*Endpoint)(nil)

// New returns an Endpoint over port. Attach it to a stack with
// stack.CreateNIC(id, ep), then call Poll from the owner's loop. The Endpoint
// never closes the port: close the stack (which closes the Endpoint), stop
// polling, then close the port.
func New(port nic.Port, o Options) *Endpoint {
	if o.Burst <= 0 {
		o.Burst = 32
	}
	if o.Burst > nic.MaxBurst {
		o.Burst = nic.MaxBurst
	}
	if o.MTU <= 0 {
		o.MTU = port.MTU()
	}
	if o.MTU <= 0 {
		o.MTU = 1500
	}
	e := &Endpoint{
		port:  port,
		burst: o.Burst,
		caps:  stack.CapabilityResolutionRequired,
		views: make([]*buffer.View, o.Burst),
		rx:    nic.NewBatch(o.Burst),
		tx:    nic.NewBatch(o.Burst),
		spare: nic.NewBatch(o.Burst),
	}
	if o.ChecksumOffload {
		f := port.Features()
		if f.RxIPv4Checksum && f.RxL4Checksum {
			e.caps |= stack.CapabilityRXChecksumOffload
		}
		if f.TxIPv4Checksum && f.TxL4Checksum {
			e.caps |= stack.CapabilityTXChecksumOffload
		}
	}
	e.mtu.Store(uint32(o.MTU))
	addr := tcpip.LinkAddress(port.MAC())
	e.linkAddr.Store(&addr)
	return e
}

// Poll runs one round: receive a burst, deliver every frame to the stack in the
// caller's goroutine, then transmit what the stack queued. It returns the number
// of frames received and transmitted; (0, 0) means there was nothing to do, and a
// loop may then yield or sleep. Poll never blocks on the network.
func (e *Endpoint) Poll() (rx, tx int) {
	e.pollMu.Lock()
	defer e.pollMu.Unlock()

	e.mu.Lock()
	e.st.PollRounds++
	if e.closed {
		e.mu.Unlock()
		return 0, 0
	}
	n := e.port.RxBurst(e.rx)
	if n == 0 {
		// Nothing to deliver: send what writers left while the owner spins.
		tx = e.flushLocked()
		e.mu.Unlock()
		return 0, tx
	}
	d := e.dispatcher
	self := *e.linkAddr.Load()
	fast := e.fast.Load()
	if fast != nil {
		fast.tick()
	}
	k := 0
	var bytes uint64
	for i := 0; i < n; i++ {
		f := e.rx.Frames[i]
		switch {
		case len(f) < header.EthernetMinimumSize:
			e.st.RxBad++
			continue
		case d == nil:
			e.st.RxDetached++
			continue
		case f[0]&1 == 0 && tcpip.LinkAddress(f[:6]) != self:
			e.st.RxOtherHost++
			continue
		case f[0]&1 == 0 && fast != nil && fast.receive(f):
			// Handed to its socket's owner, copied out of the port's buffer.
			e.st.RxFast++
			bytes += uint64(len(f))
			continue
		}
		// The one copy: out of the port's buffer into a pooled gVisor chunk.
		e.views[k] = buffer.NewViewWithData(f)
		bytes += uint64(len(f))
		k++
	}
	e.port.Free(e.rx)
	e.st.RxBursts++
	e.st.RxFrames += uint64(k)
	e.st.RxBytes += bytes
	if k == 0 {
		tx = e.flushLocked()
		e.mu.Unlock()
		return n, tx
	}
	e.st.PollDelivers++
	e.delivering = true
	e.mu.Unlock()

	for i := 0; i < k; i++ {
		v := e.views[i]
		e.views[i] = nil
		deliver(d, v, self)
	}

	e.mu.Lock()
	e.delivering = false
	tx = e.flushLocked()
	e.mu.Unlock()
	return n, tx
}

// deliver wraps one frame in a PacketBuffer (taking ownership of v) and hands it
// to the stack.
func deliver(d stack.NetworkDispatcher, v *buffer.View, self tcpip.LinkAddress) {
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithView(v)})
	hdr, _ := pkt.LinkHeader().Consume(header.EthernetMinimumSize) // length checked by Poll
	eth := header.Ethernet(hdr)
	switch dst := eth.DestinationAddress(); {
	case dst == header.EthernetBroadcastAddress:
		pkt.PktType = tcpip.PacketBroadcast
	case header.IsMulticastEthernetAddress(dst):
		pkt.PktType = tcpip.PacketMulticast
	default:
		pkt.PktType = tcpip.PacketHost
	}
	d.DeliverNetworkPacket(eth.Type(), pkt)
	pkt.DecRef()
}

// Flush transmits what WritePackets queued and returns how many frames the port
// took. Poll calls it at the end of every round; an owner needs it only when
// writes may be pending outside a round (they normally flush themselves).
func (e *Endpoint) Flush() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.flushLocked()
}

func (e *Endpoint) flushLocked() int {
	n := e.tx.N
	if n == 0 || e.closed {
		return 0
	}
	var bytes uint64
	for i := 0; i < n; i++ {
		bytes += uint64(len(e.tx.Frames[i]))
	}
	sent := e.port.TxBurst(e.tx) // frees what the ring did not take
	e.st.TxBursts++
	e.st.TxFrames += uint64(sent)
	if sent == n {
		e.st.TxBytes += bytes
	} else {
		e.st.TxRingFull += uint64(n - sent)
	}
	return sent
}

// WritePackets implements stack.LinkWriter. It may be called from any goroutine
// (the stack writes from application goroutines, TCP processors and timers, and
// from the poller during delivery). Each packet, its Ethernet header already added
// by AddHeader, is copied once into a port buffer and queued. The queue is
// transmitted when it holds a full burst, and otherwise:
//   - if a Poll round is delivering, by that round when it ends (the poller, or any
//     goroutine writing meanwhile, then shares one TxBurst);
//   - if the owner declared with SetSpinning(true) that it polls in a tight
//     loop, by its next Poll;
//   - otherwise by this call before it returns: a write from outside the poller
//     (a timer, an application's send) leaves at once, even when the poller is
//     idle or asleep.
//
// It returns the number of packets queued; the first packet that cannot be queued
// (no port buffer, too big, endpoint closed) stops it with an error. Frames the TX
// ring later refuses are dropped and counted in Stats.TxRingFull.
func (e *Endpoint) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		e.st.TxClosed += uint64(pkts.Len())
		return 0, &tcpip.ErrClosedForSend{}
	}
	n := 0
	var err tcpip.Error
	for _, pkt := range pkts.AsSlice() {
		if err = e.enqueueLocked(pkt); err != nil {
			break
		}
		n++
	}
	if e.delivering || e.spinning {
		e.st.TxDeferred++
	} else if e.tx.N > 0 {
		e.st.TxSelfFlush++
		e.flushLocked()
	}
	return n, err
}

// enqueueLocked copies pkt into a port buffer at the end of the pending burst,
// flushing first if the burst is full.
func (e *Endpoint) enqueueLocked(pkt *stack.PacketBuffer) tcpip.Error {
	if e.tx.N == e.tx.Cap() {
		e.st.TxFullFlush++
		e.flushLocked()
	}
	if e.spare.N == 0 && e.port.Alloc(e.spare, e.burst) == 0 {
		e.st.TxNoBuffer++
		return &tcpip.ErrNoBufferSpace{}
	}
	size := pkt.Size()
	k := e.spare.N - 1
	buf := e.spare.Frames[k]
	if size > len(buf) {
		e.st.TxTooBig++
		return &tcpip.ErrMessageTooLong{}
	}
	e.spare.N = k
	views, off := pkt.AsViewList()
	w := 0
	for v := views.Front(); v != nil; v = v.Next() {
		s := v.AsSlice()
		if off >= len(s) {
			off -= len(s)
			continue
		}
		w += copy(buf[w:], s[off:])
		off = 0
	}
	e.queueLocked(buf, w, k)
	return nil
}

// queueLocked pads the w bytes written into buf (spare buffer k) to the
// Ethernet minimum and appends them to the pending burst.
func (e *Endpoint) queueLocked(buf []byte, w, k int) {
	if w < minFrame && len(buf) >= minFrame {
		clear(buf[w:minFrame])
		w = minFrame
	}
	i := e.tx.N
	e.tx.Frames[i] = buf[:w]
	e.tx.Handles[i] = e.spare.Handles[k]
	e.tx.N = i + 1
}

// writeFrame queues one frame of size bytes that fill writes straight into a
// port buffer (the fast path's transmit: no gVisor packet, no copy but the
// payload's), with WritePackets' flushing rules. False: no buffer, too big,
// or closed (counted as WritePackets counts them).
func (e *Endpoint) writeFrame(size int, fill func(b []byte)) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		e.st.TxClosed++
		return false
	}
	if e.tx.N == e.tx.Cap() {
		e.st.TxFullFlush++
		e.flushLocked()
	}
	if e.spare.N == 0 && e.port.Alloc(e.spare, e.burst) == 0 {
		e.st.TxNoBuffer++
		return false
	}
	k := e.spare.N - 1
	buf := e.spare.Frames[k]
	if size > len(buf) {
		e.st.TxTooBig++
		return false
	}
	e.spare.N = k
	fill(buf[:size])
	e.queueLocked(buf, size, k)
	e.st.TxFast++
	if e.delivering || e.spinning {
		e.st.TxDeferred++
	} else {
		e.st.TxSelfFlush++
		e.flushLocked()
	}
	return true
}

// SetSpinning tells the endpoint whether its owner is polling in a tight loop.
// While on, writes from goroutines other than the poller (TCP processors and
// timers, applications' sends) only queue, and the owner's next Poll sends them
// together with its own: fewer TxBursts, at the cost of up to one poll iteration
// of delay. An owner that is about to sleep, or may be descheduled for long (no
// core of its own), must turn it off first; turning it off flushes. Off by default.
func (e *Endpoint) SetSpinning(on bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.spinning = on
	if !on {
		e.flushLocked()
	}
}

// Stats returns the endpoint's counters.
func (e *Endpoint) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.st
}

// RxWaitFds are descriptors that poll readable while the port has frames
// waiting (nic.RxWaiter), or nil: an owner about to sleep waits on them so an
// arrival wakes it.
func (e *Endpoint) RxWaitFds() []int { return nic.RxWaitFds(e.port) }

// Port returns the port the endpoint drives. Calling it directly while the
// endpoint is in use breaks the one-goroutine-per-port rule.
func (e *Endpoint) Port() nic.Port { return e.port }

// MTU implements stack.LinkEndpoint: the largest IP packet.
func (e *Endpoint) MTU() uint32 { return e.mtu.Load() }

// SetMTU implements stack.LinkEndpoint.
func (e *Endpoint) SetMTU(mtu uint32) { e.mtu.Store(mtu) }

// MaxHeaderLength implements stack.LinkEndpoint: an Ethernet header.
func (*Endpoint) MaxHeaderLength() uint16 { return header.EthernetMinimumSize }

// LinkAddress implements stack.LinkEndpoint: the port's MAC unless changed.
func (e *Endpoint) LinkAddress() tcpip.LinkAddress { return *e.linkAddr.Load() }

// SetLinkAddress implements stack.LinkEndpoint. It changes the source address of
// frames and the address frames must be sent to; it does not reprogram the port.
func (e *Endpoint) SetLinkAddress(addr tcpip.LinkAddress) { e.linkAddr.Store(&addr) }

// Capabilities implements stack.LinkEndpoint: link resolution (ARP) always,
// checksum offloads only as Options.ChecksumOffload allows.
func (e *Endpoint) Capabilities() stack.LinkEndpointCapabilities { return e.caps }

// Attach implements stack.LinkEndpoint. A nil dispatcher detaches: Poll then
// drops what it receives.
func (e *Endpoint) Attach(d stack.NetworkDispatcher) {
	e.mu.Lock()
	e.dispatcher = d
	e.mu.Unlock()
}

// IsAttached implements stack.LinkEndpoint.
func (e *Endpoint) IsAttached() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.dispatcher != nil
}

// Wait implements stack.LinkEndpoint. The endpoint runs no goroutine of its own,
// so there is nothing to wait for.
func (*Endpoint) Wait() {}

// ARPHardwareType implements stack.LinkEndpoint.
func (*Endpoint) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareEther }

// AddHeader implements stack.LinkEndpoint: it pushes the Ethernet header.
func (*Endpoint) AddHeader(pkt *stack.PacketBuffer) {
	eth := header.Ethernet(pkt.LinkHeader().Push(header.EthernetMinimumSize))
	eth.Encode(&header.EthernetFields{
		SrcAddr: pkt.EgressRoute.LocalLinkAddress,
		DstAddr: pkt.EgressRoute.RemoteLinkAddress,
		Type:    pkt.NetworkProtocolNumber,
	})
}

// ParseHeader implements stack.LinkEndpoint: it consumes the Ethernet header.
func (*Endpoint) ParseHeader(pkt *stack.PacketBuffer) bool {
	_, ok := pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	return ok
}

// SetOnCloseAction implements stack.LinkEndpoint.
func (e *Endpoint) SetOnCloseAction(f func()) {
	e.mu.Lock()
	e.onClose = f
	e.mu.Unlock()
}

// Close implements stack.LinkEndpoint (the stack calls it when the NIC is removed,
// e.g. by stack.Close). It runs the on-close action, releases the frames still
// pending and the spare TX buffers to the port, and makes later Polls and writes
// no-ops. It does not close the port, and is idempotent.
func (e *Endpoint) Close() {
	e.mu.Lock()
	f := e.onClose
	e.onClose = nil
	e.mu.Unlock()
	if f != nil {
		f()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	e.closed = true
	e.st.TxClosed += uint64(e.tx.N)
	e.port.Free(e.tx)
	e.port.Free(e.spare)
}
