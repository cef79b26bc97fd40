package afxdp

import (
	"errors"
	"fmt"
	"math/bits"
	"net"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/joyride-bench/joyride/nic"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// FrameSize is the size of one UMEM frame (chunk). Received frames start
// XDP_PACKET_HEADROOM (256) bytes into their chunk; Alloc hands out whole chunks.
const FrameSize = 2048

// bindBusyWait bounds how long Open retries a bind that finds the queue busy.
const bindBusyWait = 2 * time.Second

// Options shape a Port. The zero value is the default.
type Options struct {
	Queue    int    // interface queue to bind, default 0
	Frames   int    // UMEM frames, default 4096; at least 2 x RingSize
	RingSize int    // entries of each of the four rings, default 1024 (power of two)
	Mode     string // XDP attach mode: "auto" (default: native, else generic), "native", "generic"
	ZeroCopy bool   // bind with XDP_ZEROCOPY (the driver must support it); default copy mode
}

func (o *Options) defaults() error {
	if o.Frames == 0 {
		o.Frames = 4096
	}
	if o.RingSize == 0 {
		o.RingSize = 1024
	}
	if o.Mode == "" {
		o.Mode = "auto"
	}
	switch {
	case o.Queue < 0:
		return fmt.Errorf("queue %d is negative", o.Queue)
	case o.RingSize < 2 || bits.OnesCount(uint(o.RingSize)) != 1:
		return fmt.Errorf("ring size %d is not a power of two >= 2", o.RingSize)
	case o.Frames < 2*o.RingSize:
		return fmt.Errorf("%d frames cannot keep a fill ring of %d full and still transmit (need >= %d)", o.Frames, o.RingSize, 2*o.RingSize)
	case o.Frames > 1<<20:
		return fmt.Errorf("%d frames is more than the 1Mi this package supports", o.Frames)
	case o.Mode != "auto" && o.Mode != "native" && o.Mode != "generic":
		return fmt.Errorf("mode %q is not one of auto, native, generic", o.Mode)
	}
	return nil
}

// Where a frame is; only the owner may touch it.
const (
	inFree = iota // on the port's free list
	inFill        // on the fill ring or the RX ring (the kernel's)
	inUser        // handed out by RxBurst or Alloc
	inTx          // on the TX ring or in flight until its completion
)

// frame is a UMEM chunk's record; a nic.Batch handle points at one.
type frame struct {
	idx   uint32 // chunk index: the chunk is umem[idx*FrameSize:][:FrameSize]
	state uint8  // inFree, inFill, inUser, inTx
}

// Port is an AF_XDP socket on one interface queue, as a nic.Port. Like every
// nic.Port, it is used by one goroutine at a time.
type Port struct {
	iface   string
	ifindex int
	queue   int
	fd      int

	umem     []byte  // the registered region, Frames x FrameSize
	umemBase uintptr // &umem[0], to find a Frames slice's UMEM offset
	frames   []frame // one record per chunk; handles point here
	freeList []uint32
	nfree    int // freeList[:nfree] are free chunk indices

	fill, comp, rx, tx ring

	xsks   *ebpf.Map
	prog   *ebpf.Program
	attach *attachment

	mac      net.HardwareAddr
	mtu      int
	zeroCopy bool
	features nic.Features

	// Software counters, updated once per burst; atomic so that Stats may run
	// on another goroutine than the port's.
	rxPackets, rxBytes, txPackets, txBytes atomic.Uint64
	txRingFull                             atomic.Uint64 // frames TxBurst freed because the TX ring was full
	txInvalid                              atomic.Uint64 // frames TxBurst freed for a bad length
	txKicks, txKickErrors, rxKicks         atomic.Uint64

	closed bool
}

// Open binds an AF_XDP socket to queue o.Queue of iface (in the calling
// thread's network namespace) and steers that queue's packets to it.
func Open(iface string, o Options) (*Port, error) {
	if err := o.defaults(); err != nil {
		return nil, fmt.Errorf("afxdp: open %s: %w", iface, err)
	}
	nl, err := netlink.LinkByName(iface)
	if err != nil {
		return nil, fmt.Errorf("afxdp: open %s: no such interface in this network namespace: %w", iface, err)
	}
	attrs := nl.Attrs()
	if nq := attrs.NumRxQueues; nq > 0 && o.Queue >= nq {
		return nil, fmt.Errorf("afxdp: open %s: queue %d out of range (the interface has %d RX queues)", iface, o.Queue, nq)
	}
	if err := cleanup(iface); err != nil {
		return nil, fmt.Errorf("afxdp: open %s: cleanup: %w", iface, err)
	}
	p := &Port{iface: iface, ifindex: attrs.Index, queue: o.Queue, fd: -1, mtu: attrs.MTU}
	p.mac = append(net.HardwareAddr(nil), attrs.HardwareAddr...)
	if err := p.setup(o); err != nil {
		p.Close()
		return nil, fmt.Errorf("afxdp: open %s queue %d: %w", iface, o.Queue, err)
	}
	return p, nil
}

// setup does Open's steps in order; Close undoes whatever of them happened.
func (p *Port) setup(o Options) error {
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("create AF_XDP socket: %w", err)
	}
	p.fd = fd

	// UMEM: page-aligned anonymous memory, registered and pinned by the kernel.
	size := o.Frames * FrameSize
	p.umem, err = unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mmap UMEM of %d bytes: %w", size, err)
	}
	p.umemBase = uintptr(unsafe.Pointer(&p.umem[0]))
	reg := unix.XDPUmemReg{Addr: uint64(p.umemBase), Len: uint64(size), Size: FrameSize}
	if err := setsockopt(fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg)); err != nil {
		hint := ""
		if errors.Is(err, unix.ENOMEM) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOBUFS) {
			hint = " (RLIMIT_MEMLOCK too low? run as root or raise it)"
		}
		return fmt.Errorf("register UMEM (%d frames of %d bytes): %w%s", o.Frames, FrameSize, err, hint)
	}
	p.frames = make([]frame, o.Frames)
	p.freeList = make([]uint32, o.Frames)
	for i := range p.frames {
		p.frames[i] = frame{idx: uint32(i), state: inFree}
		p.freeList[i] = uint32(o.Frames - 1 - i) // low chunks first
	}
	p.nfree = o.Frames

	// Rings: sizes, then the kernel's layout, then the mappings.
	for _, r := range []struct {
		opt  int
		name string
	}{
		{unix.XDP_UMEM_FILL_RING, "fill"}, {unix.XDP_UMEM_COMPLETION_RING, "completion"},
		{unix.XDP_RX_RING, "RX"}, {unix.XDP_TX_RING, "TX"},
	} {
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, r.opt, o.RingSize); err != nil {
			return fmt.Errorf("size %s ring to %d: %w", r.name, o.RingSize, err)
		}
	}
	var off unix.XDPMmapOffsets
	offLen := uint32(unsafe.Sizeof(off))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_MMAP_OFFSETS,
		uintptr(unsafe.Pointer(&off)), uintptr(unsafe.Pointer(&offLen)), 0); e != 0 {
		return fmt.Errorf("get ring offsets (XDP_MMAP_OFFSETS): %w", e)
	}
	n := uint32(o.RingSize)
	descSize, addrSize := unsafe.Sizeof(unix.XDPDesc{}), unsafe.Sizeof(uint64(0))
	if p.fill, err = mapRing(fd, off.Fr, unix.XDP_UMEM_PGOFF_FILL_RING, n, addrSize, false); err != nil {
		return fmt.Errorf("map fill ring: %w", err)
	}
	if p.comp, err = mapRing(fd, off.Cr, unix.XDP_UMEM_PGOFF_COMPLETION_RING, n, addrSize, false); err != nil {
		return fmt.Errorf("map completion ring: %w", err)
	}
	if p.rx, err = mapRing(fd, off.Rx, unix.XDP_PGOFF_RX_RING, n, descSize, true); err != nil {
		return fmt.Errorf("map RX ring: %w", err)
	}
	if p.tx, err = mapRing(fd, off.Tx, unix.XDP_PGOFF_TX_RING, n, descSize, true); err != nil {
		return fmt.Errorf("map TX ring: %w", err)
	}

	// Post receive buffers before binding, so the first packet finds one.
	p.refill()

	var flags uint16 = unix.XDP_USE_NEED_WAKEUP | unix.XDP_COPY
	if o.ZeroCopy {
		flags = unix.XDP_USE_NEED_WAKEUP | unix.XDP_ZEROCOPY
	}
	sa := &unix.SockaddrXDP{Flags: flags, Ifindex: uint32(p.ifindex), QueueID: uint32(p.queue)}
	// EBUSY: another socket holds the queue, or the socket of a process that
	// just died is still being released (asynchronously, after its exit), so
	// retry for a while before giving up.
	err = unix.Bind(fd, sa)
	for wait := time.Millisecond; errors.Is(err, unix.EBUSY) && wait < bindBusyWait; wait *= 2 {
		time.Sleep(wait)
		err = unix.Bind(fd, sa)
	}
	if err != nil {
		what := "copy"
		if o.ZeroCopy {
			what = "zero-copy (does the driver support AF_XDP zero-copy?)"
		}
		if errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("bind socket in %s mode: queue %d already has an AF_XDP socket (another process?): %w", what, p.queue, err)
		}
		return fmt.Errorf("bind socket in %s mode: %w", what, err)
	}
	var xopts uint32
	optLen := uint32(4)
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_OPTIONS,
		uintptr(unsafe.Pointer(&xopts)), uintptr(unsafe.Pointer(&optLen)), 0); e == 0 {
		p.zeroCopy = xopts&unix.XDP_OPTIONS_ZEROCOPY != 0
	}

	// The XDP program and its XSKMAP, attached, then this socket inserted.
	maxQ := 64
	if p.queue >= maxQ {
		maxQ = p.queue + 1
	}
	if p.xsks, p.prog, err = loadProgram(maxQ); err != nil {
		return err
	}
	if p.attach, err = attach(p.prog, p.ifindex, o.Mode); err != nil {
		return fmt.Errorf("attach XDP program (mode %s): %w", o.Mode, err)
	}
	if err := p.xsks.Put(uint32(p.queue), uint32(fd)); err != nil {
		return fmt.Errorf("insert socket into XSKMAP at queue %d: %w", p.queue, err)
	}

	copyMode := "copy"
	if p.zeroCopy {
		copyMode = "zerocopy"
	}
	p.features = nic.Features{
		Driver:      fmt.Sprintf("af_xdp(%s, %s)", copyMode, modeName(p.attach.native)),
		RxQueues:    1,
		TxQueues:    1,
		RxRingSize:  o.RingSize,
		TxRingSize:  o.RingSize,
		MaxRxQueues: 1,
		MaxTxQueues: 1,
	}
	return nil
}

func setsockopt(fd, opt int, val unsafe.Pointer, size uintptr) error {
	if _, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(val), size, 0); e != 0 {
		return e
	}
	return nil
}

// Interface is the name of the interface the port is bound to.
func (p *Port) Interface() string { return p.iface }

// Queue is the interface queue the port is bound to.
func (p *Port) Queue() int { return p.queue }

// FD is the AF_XDP socket, for poll(2) by callers that want to sleep until
// frames arrive (POLLIN) instead of spinning on RxBurst.
func (p *Port) FD() int { return p.fd }

// RxWaitFds implements nic.RxWaiter: the socket polls readable while frames
// wait in its RX ring.
func (p *Port) RxWaitFds() []int { return []int{p.fd} }

// handle returns the frame record a batch handle points at, checking that it is
// one of this port's and that the caller owns it.
func (p *Port) handle(h unsafe.Pointer) *frame {
	f := (*frame)(h)
	if f == nil || int(f.idx) >= len(p.frames) || &p.frames[f.idx] != f {
		panic("afxdp: batch handle does not belong to this port")
	}
	if f.state != inUser {
		panic(fmt.Sprintf("afxdp: frame %d is not the caller's (freed or sent twice?)", f.idx))
	}
	return f
}

func (p *Port) push(f *frame) {
	f.state = inFree
	p.freeList[p.nfree] = f.idx
	p.nfree++
}

// refill posts free chunks to the fill ring, as many as fit.
func (p *Port) refill() {
	k := p.fill.free(uint32(p.nfree))
	if k > uint32(p.nfree) {
		k = uint32(p.nfree)
	}
	if k == 0 {
		return
	}
	for i := uint32(0); i < k; i++ {
		p.nfree--
		idx := p.freeList[p.nfree]
		p.frames[idx].state = inFill
		p.fill.addrs[p.fill.cachedProd&p.fill.mask] = uint64(idx) * FrameSize
		p.fill.cachedProd++
	}
	p.fill.publish()
}

// reclaim moves transmitted chunks from the completion ring to the free list.
func (p *Port) reclaim() {
	n := p.comp.avail(p.comp.size)
	if n == 0 {
		return
	}
	for i := uint32(0); i < n; i++ {
		addr := p.comp.addrs[p.comp.cachedCons&p.comp.mask]
		p.comp.cachedCons++
		f := &p.frames[addr/FrameSize]
		f.state = inFree
		p.freeList[p.nfree] = f.idx
		p.nfree++
	}
	p.comp.release()
}

// RxBurst implements nic.Port: it takes up to b.Cap() received frames, then
// tops the fill ring up from the free list.
func (p *Port) RxBurst(b *nic.Batch) int {
	n := p.rx.avail(uint32(b.Cap()))
	if n > uint32(b.Cap()) {
		n = uint32(b.Cap())
	}
	var bytes uint64
	for i := uint32(0); i < n; i++ {
		d := p.rx.descs[p.rx.cachedCons&p.rx.mask]
		p.rx.cachedCons++
		f := &p.frames[d.Addr/FrameSize]
		f.state = inUser
		end := uint64(f.idx+1) * FrameSize
		b.Frames[i] = p.umem[d.Addr : d.Addr+uint64(d.Len) : end]
		b.Handles[i] = unsafe.Pointer(f)
		bytes += uint64(d.Len)
	}
	if n > 0 {
		p.rx.release()
		p.rxPackets.Add(uint64(n))
		p.rxBytes.Add(bytes)
	}
	p.refill()
	if p.fill.needWakeup() {
		p.rxKicks.Add(1)
		unix.Syscall6(unix.SYS_RECVFROM, uintptr(p.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	}
	b.N = int(n)
	return int(n)
}

// Alloc implements nic.Port: whole free chunks (FrameSize bytes), after
// reclaiming completed transmissions.
func (p *Port) Alloc(b *nic.Batch, n int) int {
	p.reclaim()
	if n > b.Cap() {
		n = b.Cap()
	}
	if n > p.nfree {
		n = p.nfree
	}
	for i := 0; i < n; i++ {
		p.nfree--
		f := &p.frames[p.freeList[p.nfree]]
		f.state = inUser
		base := uint64(f.idx) * FrameSize
		b.Frames[i] = p.umem[base : base+FrameSize : base+FrameSize]
		b.Handles[i] = unsafe.Pointer(f)
	}
	b.N = n
	return n
}

// txAddr is the UMEM address to transmit data from for frame f: data's own
// offset when it lies inside f's chunk, else f's chunk after copying data there.
// ok is false for an empty or oversized frame.
func (p *Port) txAddr(f *frame, data []byte) (addr uint64, ok bool) {
	l := uint64(len(data))
	if l == 0 || l > FrameSize {
		return 0, false
	}
	base := uint64(f.idx) * FrameSize
	off := uint64(uintptr(unsafe.Pointer(unsafe.SliceData(data))) - p.umemBase)
	if off >= base && off+l <= base+FrameSize {
		return off, true
	}
	copy(p.umem[base:base+FrameSize], data)
	return base, true
}

// txKickExtra is how many sendto calls one TxBurst may make beyond one per 32
// pending descriptors (copy mode sends at most 32 frames per call).
const txKickExtra = 4

// TxBurst implements nic.Port: it reclaims completions, puts b.Frames[:b.N] on
// the TX ring with their slice lengths, kicks the kernel if the ring asks, and
// frees what did not fit (or had a length of 0 or more than FrameSize).
func (p *Port) TxBurst(b *nic.Batch) int {
	n := b.N
	b.N = 0
	if n == 0 {
		return 0
	}
	p.reclaim()
	space := p.tx.free(uint32(n))
	sent, invalid, full := 0, 0, 0
	var bytes uint64
	for i := 0; i < n; i++ {
		f := p.handle(b.Handles[i])
		addr, ok := p.txAddr(f, b.Frames[i])
		switch {
		case !ok:
			invalid++
			p.push(f)
		case uint32(sent) >= space:
			full++
			p.push(f)
		default:
			d := &p.tx.descs[p.tx.cachedProd&p.tx.mask]
			d.Addr, d.Len, d.Options = addr, uint32(len(b.Frames[i])), 0
			p.tx.cachedProd++
			f.state = inTx
			sent++
			bytes += uint64(len(b.Frames[i]))
		}
	}
	if invalid+full > 0 {
		p.txInvalid.Add(uint64(invalid))
		p.txRingFull.Add(uint64(full))
	}
	if sent == 0 {
		return 0
	}
	p.tx.publish()
	p.txPackets.Add(uint64(sent))
	p.txBytes.Add(bytes)
	p.kickTx()
	return sent
}

// kickTx wakes the kernel's transmit path if the TX ring asks; in copy mode it
// repeats while descriptors remain (32 per call), a bounded number of times.
func (p *Port) kickTx() {
	tries := int(p.tx.pending())/32 + txKickExtra
	for ; tries > 0 && p.tx.needWakeup(); tries-- {
		p.txKicks.Add(1)
		_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(p.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0, unix.EAGAIN, unix.EBUSY, unix.ENOBUFS:
		default:
			p.txKickErrors.Add(1)
			return
		}
		if p.tx.pending() == 0 {
			return
		}
	}
}

// Free implements nic.Port.
func (p *Port) Free(b *nic.Batch) {
	for i := 0; i < b.N; i++ {
		p.push(p.handle(b.Handles[i]))
	}
	b.N = 0
}

// MAC implements nic.Port.
func (p *Port) MAC() net.HardwareAddr { return p.mac }

// MTU implements nic.Port.
func (p *Port) MTU() int { return p.mtu }

// Features implements nic.Port: no offloads, one queue pair, the ring sizes;
// Driver says af_xdp(copy|zerocopy, native|generic).
func (p *Port) Features() nic.Features { return p.features }

// Stats implements nic.Port: packets and bytes counted by the port, and in
// Extended the kernel's XDP_STATISTICS and the port's own event counters.
// RxMissed is the kernel's rx_dropped + rx_ring_full + rx_fill_ring_empty_descs.
func (p *Port) Stats() (nic.Stats, error) {
	st := nic.Stats{
		RxPackets: p.rxPackets.Load(), RxBytes: p.rxBytes.Load(),
		TxPackets: p.txPackets.Load(), TxBytes: p.txBytes.Load(),
		TxErrors: p.txInvalid.Load(),
	}
	var ks unix.XDPStatistics
	kl := uint32(unsafe.Sizeof(ks))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(p.fd), unix.SOL_XDP, unix.XDP_STATISTICS,
		uintptr(unsafe.Pointer(&ks)), uintptr(unsafe.Pointer(&kl)), 0); e != 0 {
		return st, fmt.Errorf("afxdp: stats of %s: XDP_STATISTICS: %w", p.iface, e)
	}
	st.RxMissed = ks.Rx_dropped + ks.Rx_ring_full + ks.Rx_fill_ring_empty_descs
	st.RxErrors = ks.Rx_invalid_descs
	st.TxErrors += ks.Tx_invalid_descs
	st.Extended = map[string]uint64{
		"rx_dropped":               ks.Rx_dropped,
		"rx_invalid_descs":         ks.Rx_invalid_descs,
		"tx_invalid_descs":         ks.Tx_invalid_descs,
		"rx_ring_full":             ks.Rx_ring_full,
		"rx_fill_ring_empty_descs": ks.Rx_fill_ring_empty_descs,
		"tx_ring_empty_descs":      ks.Tx_ring_empty_descs,
		"tx_ring_full_freed":       p.txRingFull.Load(),
		"tx_invalid_len_freed":     p.txInvalid.Load(),
		"tx_kicks":                 p.txKicks.Load(),
		"tx_kick_errors":           p.txKickErrors.Load(),
		"rx_kicks":                 p.rxKicks.Load(),
	}
	return st, nil
}

// Close detaches the XDP program, closes the socket and unmaps the rings and the
// UMEM. Frames still held by the caller become invalid (their memory is gone):
// free or drop them first. Close is idempotent.
func (p *Port) Close() error {
	if p.closed {
		return nil
	}
	p.closed = true
	var errs []error
	if p.attach != nil {
		if err := p.attach.detach(); err != nil {
			errs = append(errs, fmt.Errorf("detach XDP program: %w", err))
		}
	}
	if p.prog != nil {
		p.prog.Close()
	}
	if p.xsks != nil {
		p.xsks.Close()
	}
	if p.fd >= 0 {
		if err := unix.Close(p.fd); err != nil {
			errs = append(errs, fmt.Errorf("close socket: %w", err))
		}
		p.fd = -1
	}
	for _, r := range []*ring{&p.fill, &p.comp, &p.rx, &p.tx} {
		r.unmap()
	}
	if p.umem != nil {
		unix.Munmap(p.umem)
		p.umem = nil
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("afxdp: close %s: %w", p.iface, err)
	}
	return nil
}

var _ nic.Port = (*Port)(nil)
