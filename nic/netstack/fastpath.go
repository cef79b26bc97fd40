package netstack

// # The UDP fast path
//
// gVisor's stack costs microseconds of CPU per datagram (measured in joyrided:
// about 4 µs to receive and deliver one, 6 µs to write one, a third of it the
// route lookup), most of it work that is the same for every datagram of a flow.
// FastPath does that work once: a datagram to a UDP port registered with it
// (a bound socket whose owner wants datagrams directly) is recognised by a few
// byte compares, its checksums verified, and its payload handed to the port's
// handler from inside Poll, before gVisor sees it; a reply goes out through a
// header template cached per destination (next hop resolved once from gVisor's
// neighbour table, IPv4 and UDP checksums computed in software: the LCD model
// assumes no offload).
//
// gVisor stays the stack of record. Anything FastPath is unsure of is left to
// it: ARP, ICMP, TCP, IP options, fragments, broadcast and multicast, a bad
// checksum (gVisor counts and drops it), a port nobody registered; a write to a
// destination whose neighbour gVisor has not resolved yet, or one that would
// need fragmenting, returns false and the caller writes through gVisor, which
// resolves the neighbour for the next one.

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// UDPHandler receives a datagram of a registered port: its source and its
// payload, which is valid only during the call (it is the NIC's buffer). It
// runs in the goroutine that called Poll, with the endpoint's lock held: it
// must not call back into the Endpoint.
type UDPHandler func(src netip.AddrPort, payload []byte)

// FastPathStats are a FastPath's counters.
type FastPathStats struct {
	RxDatagrams uint64 // datagrams handed to handlers
	TxDatagrams uint64 // datagrams written from templates
	TxFallbacks uint64 // writes left to gVisor (neighbour unresolved, too big, no route)
	Resolves    uint64 // next hops looked up in gVisor's neighbour table
}

// templateTTL bounds how long a destination's cached next hop is trusted
// before it is looked up in gVisor's neighbour table again: a neighbour that
// changes its MAC is followed within it.
const templateTTL = time.Second

// maxTemplates bounds the destinations cached; past it the cache is emptied
// (a server answering many clients re-resolves at most once per client a
// second).
const maxTemplates = 4096

// FastPath is the UDP fast path of one Endpoint and its stack (see the
// comment at the top of this file). Register and Unregister may be called
// from any goroutine; the receive side runs inside Poll, WriteUDP from any
// goroutine.
type FastPath struct {
	ep     *Endpoint
	stack  *stack.Stack
	local  [4]byte
	subnet netip.Prefix
	gw     netip.Addr // zero: no default route

	ports atomic.Pointer[map[uint16]UDPHandler] // copy on write
	clock atomic.Int64                          // Unix ns at the last Poll round (tick)

	regMu sync.Mutex // serialises Register and Unregister

	mu        sync.Mutex // guards everything below
	templates map[netip.Addr]template
	ipID      uint16
	st        FastPathStats
}

// template is what a frame to one destination host starts with.
type template struct {
	dstMAC   tcpip.LinkAddress
	resolved int64 // clock when dstMAC was looked up
}

// NewFastPath attaches a fast path to ep, which must be st's link with addr
// on it (NewStack's arguments); gw is its default gateway, if any.
func NewFastPath(ep *Endpoint, st *stack.Stack, addr netip.Prefix, gw netip.Addr) *FastPath {
	f := &FastPath{ep: ep, stack: st, local: addr.Addr().As4(), subnet: addr.Masked(), gw: gw,
		templates: map[netip.Addr]template{}}
	empty := map[uint16]UDPHandler{}
	f.ports.Store(&empty)
	f.tick()
	ep.fast.Store(f)
	return f
}

// Register hands datagrams to port to h from now on (one handler a port; a
// second Register replaces the first).
func (f *FastPath) Register(port uint16, h UDPHandler) {
	f.regMu.Lock()
	defer f.regMu.Unlock()
	old := *f.ports.Load()
	m := make(map[uint16]UDPHandler, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[port] = h
	f.ports.Store(&m)
}

// Unregister gives port back to gVisor.
func (f *FastPath) Unregister(port uint16) {
	f.regMu.Lock()
	defer f.regMu.Unlock()
	old := *f.ports.Load()
	if _, ok := old[port]; !ok {
		return
	}
	m := make(map[uint16]UDPHandler, len(old))
	for k, v := range old {
		if k != port {
			m[k] = v
		}
	}
	f.ports.Store(&m)
}

// Ports is the number of ports registered.
func (f *FastPath) Ports() int { return len(*f.ports.Load()) }

// Stats returns the fast path's counters.
func (f *FastPath) Stats() FastPathStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

// Frame offsets: Ethernet, then IPv4 without options, then UDP.
const (
	ethLen  = header.EthernetMinimumSize
	ipOff   = ethLen
	udpOff  = ethLen + header.IPv4MinimumSize
	dataOff = udpOff + header.UDPMinimumSize
)

// receive hands frame to a registered port's handler if it is a datagram the
// fast path is sure of, and says whether it did. Poll calls it, under e.mu,
// for unicast frames to the endpoint's MAC.
func (f *FastPath) receive(frame []byte) bool {
	if len(frame) < dataOff || frame[12] != 0x08 || frame[13] != 0x00 {
		return false
	}
	ip := header.IPv4(frame[ipOff:])
	// Version 4 with no options, UDP, not a fragment (MF clear, offset 0; DF
	// may be set), to our address.
	if ip[0] != 0x45 || ip[9] != uint8(header.UDPProtocolNumber) || ip[6]&0x3f != 0 || ip[7] != 0 ||
		[4]byte(ip[16:20]) != f.local {
		return false
	}
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if total < header.IPv4MinimumSize+header.UDPMinimumSize || ipOff+total > len(frame) {
		return false
	}
	handlers := *f.ports.Load()
	udp := header.UDP(frame[udpOff : ipOff+total])
	h, ok := handlers[udp.DestinationPort()]
	if !ok {
		return false
	}
	if int(udp.Length()) != len(udp) {
		return false
	}
	if checksum.Checksum(ip[:header.IPv4MinimumSize], 0) != 0xffff {
		return false // gVisor counts the bad checksum and drops it
	}
	src := [4]byte(ip[12:16])
	if src == [4]byte{} || src[0] >= 224 || src == [4]byte{255, 255, 255, 255} {
		return false
	}
	if udp.Checksum() != 0 {
		// The sum over pseudo-header, header and payload is 0xffff when the
		// datagram is intact.
		sum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, tcpip.AddrFrom4(src),
			tcpip.AddrFrom4(f.local), uint16(len(udp)))
		if checksum.Checksum(udp, sum) != 0xffff {
			return false
		}
	}
	f.mu.Lock()
	f.st.RxDatagrams++
	f.mu.Unlock()
	h(netip.AddrPortFrom(netip.AddrFrom4(src), udp.SourcePort()), udp[header.UDPMinimumSize:])
	return true
}

// WriteUDP sends payload from the stack's address and port sport to dst,
// building the frame from dst's cached template straight into a port
// buffer. It returns false, having sent nothing, when it cannot be sure of
// the frame: dst's next hop is not resolved in gVisor's neighbour table (yet),
// the datagram would need fragmenting, dst is not unicast, or there is no
// route; the caller then writes through gVisor.
func (f *FastPath) WriteUDP(sport uint16, dst netip.AddrPort, payload []byte) bool {
	a := dst.Addr()
	if !a.Is4() || dst.Port() == 0 || a.IsMulticast() || a.IsUnspecified() || a.IsLoopback() ||
		a == netip.AddrFrom4(f.local) || a.As4() == [4]byte{255, 255, 255, 255} ||
		dataOff+len(payload) > ethLen+int(f.ep.MTU()) {
		f.fallback()
		return false
	}
	if f.subnet.Bits() < 31 {
		if bcast := broadcastOf(f.subnet); a == bcast {
			f.fallback()
			return false
		}
	}
	mac, id, ok := f.nextHop(a)
	if !ok {
		f.fallback()
		return false
	}
	self := f.ep.LinkAddress()
	dst4, src4 := a.As4(), f.local
	return f.ep.writeFrame(dataOff+len(payload), func(b []byte) {
		copy(b[0:6], mac)
		copy(b[6:12], self)
		b[12], b[13] = 0x08, 0x00
		ip := header.IPv4(b[ipOff:udpOff])
		ip.Encode(&header.IPv4Fields{
			TotalLength: uint16(header.IPv4MinimumSize + header.UDPMinimumSize + len(payload)),
			ID:          id,
			Flags:       header.IPv4FlagDontFragment,
			TTL:         64,
			Protocol:    uint8(header.UDPProtocolNumber),
			SrcAddr:     tcpip.AddrFrom4(src4),
			DstAddr:     tcpip.AddrFrom4(dst4),
		})
		ip.SetChecksum(^ip.CalculateChecksum())
		udp := header.UDP(b[udpOff:])
		udp.Encode(&header.UDPFields{SrcPort: sport, DstPort: dst.Port(),
			Length: uint16(header.UDPMinimumSize + len(payload))})
		copy(b[dataOff:], payload)
		sum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, tcpip.AddrFrom4(src4), tcpip.AddrFrom4(dst4),
			uint16(header.UDPMinimumSize+len(payload)))
		c := ^checksum.Checksum(b[udpOff:dataOff+len(payload)], sum)
		if c == 0 {
			c = 0xffff // 0 means "no checksum" in UDP over IPv4
		}
		udp.SetChecksum(c)
	})
}

func (f *FastPath) fallback() {
	f.mu.Lock()
	f.st.TxFallbacks++
	f.mu.Unlock()
}

// nextHop is the link address frames to a go to (a's own if it is on the
// subnet, else the gateway's), from the template cache, or from gVisor's
// neighbour table when the cached one is older than templateTTL; and the
// IPv4 identification of the next datagram.
func (f *FastPath) nextHop(a netip.Addr) (tcpip.LinkAddress, uint16, bool) {
	hop := a
	if !f.subnet.Contains(a) {
		if !f.gw.IsValid() {
			return "", 0, false
		}
		hop = f.gw
	}
	now := f.clock.Load()
	f.mu.Lock()
	if t, ok := f.templates[hop]; ok && now-t.resolved < int64(templateTTL) {
		f.ipID++
		f.st.TxDatagrams++
		id := f.ipID
		f.mu.Unlock()
		return t.dstMAC, id, true
	}
	f.mu.Unlock()
	mac, ok := f.lookupNeighbour(hop)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.Resolves++
	if !ok {
		delete(f.templates, hop)
		return "", 0, false
	}
	if len(f.templates) >= maxTemplates {
		clear(f.templates)
	}
	f.templates[hop] = template{dstMAC: mac, resolved: now}
	f.ipID++
	f.st.TxDatagrams++
	return mac, f.ipID, true
}

// tick advances the clock templates age by; Poll calls it once a round, so
// the per-datagram path reads no clock.
func (f *FastPath) tick() { f.clock.Store(time.Now().UnixNano()) }

// lookupNeighbour finds hop's link address in gVisor's neighbour table, if
// gVisor has resolved it (reachable, or stale but usable, as gVisor itself
// would send to it).
func (f *FastPath) lookupNeighbour(hop netip.Addr) (tcpip.LinkAddress, bool) {
	entries, err := f.stack.Neighbors(NICID, ipv4.ProtocolNumber)
	if err != nil {
		return "", false
	}
	want := tcpip.AddrFrom4(hop.As4())
	for _, e := range entries {
		if e.Addr != want || len(e.LinkAddr) != 6 {
			continue
		}
		switch e.State {
		case stack.Reachable, stack.Stale, stack.Delay, stack.Probe, stack.Static:
			return e.LinkAddr, true
		}
	}
	return "", false
}

// broadcastOf is the subnet's broadcast address.
func broadcastOf(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	v := binary.BigEndian.Uint32(a[:]) | (1<<(32-p.Bits()) - 1)
	binary.BigEndian.PutUint32(a[:], v)
	return netip.AddrFrom4(a)
}
