package emu

import (
	"net"
	"sync/atomic"

	"github.com/joyride-bench/joyride/nic"
)

// memRing is a single-producer single-consumer ring of frames (copied in).
type memRing struct {
	slots [][]byte
	lens  []int
	head  atomic.Uint64 // next to read
	tail  atomic.Uint64 // next to write
}

func newMemRing(n int) *memRing {
	r := &memRing{slots: make([][]byte, n), lens: make([]int, n)}
	for i := range r.slots {
		r.slots[i] = make([]byte, MaxFrame)
	}
	return r
}

// memPort is one end of an in-memory wire: what it transmits lands in its
// peer's receive ring. Used by one goroutine at a time, as nic.Port requires.
type memPort struct {
	in, out *memRing
	rxbufs  [][]byte
	txbufs  [][]byte
	mac     net.HardwareAddr
	rx, tx  uint64
}

// memPair returns two connected ports with rings of n frames.
func memPair(n int) (*memPort, *memPort) {
	ab, ba := newMemRing(n), newMemRing(n)
	mk := func(in, out *memRing, last byte) *memPort {
		p := &memPort{in: in, out: out, mac: net.HardwareAddr{2, 0, 0, 0, 0, last}}
		for range nic.MaxBurst {
			p.rxbufs = append(p.rxbufs, make([]byte, MaxFrame))
			p.txbufs = append(p.txbufs, make([]byte, MaxFrame))
		}
		return p
	}
	return mk(ba, ab, 1), mk(ab, ba, 2)
}

func (p *memPort) RxBurst(b *nic.Batch) int {
	h, t := p.in.head.Load(), p.in.tail.Load()
	n := min(int(t-h), b.Cap())
	sz := uint64(len(p.in.slots))
	for i := 0; i < n; i++ {
		s := (h + uint64(i)) % sz
		l := p.in.lens[s]
		copy(p.rxbufs[i], p.in.slots[s][:l])
		b.Frames[i] = p.rxbufs[i][:l]
	}
	p.in.head.Store(h + uint64(n))
	b.N = n
	p.rx += uint64(n)
	return n
}

func (p *memPort) Alloc(b *nic.Batch, n int) int {
	n = min(n, b.Cap())
	for i := 0; i < n; i++ {
		b.Frames[i] = p.txbufs[i][:MaxFrame]
	}
	b.N = n
	return n
}

func (p *memPort) TxBurst(b *nic.Batch) int {
	h, t := p.out.head.Load(), p.out.tail.Load()
	sz := uint64(len(p.out.slots))
	n := min(b.N, int(sz-(t-h)))
	for i := 0; i < n; i++ {
		s := (t + uint64(i)) % sz
		p.out.lens[s] = copy(p.out.slots[s], b.Frames[i])
	}
	p.out.tail.Store(t + uint64(n))
	b.N = 0
	p.tx += uint64(n)
	return n
}

func (p *memPort) Free(b *nic.Batch)         { b.N = 0 }
func (p *memPort) MAC() net.HardwareAddr     { return p.mac }
func (p *memPort) MTU() int                  { return 1500 }
func (p *memPort) Features() nic.Features    { return nic.Features{Driver: "mem"} }
func (p *memPort) Stats() (nic.Stats, error) { return nic.Stats{RxPackets: p.rx, TxPackets: p.tx}, nil }
func (p *memPort) Close() error              { return nil }
