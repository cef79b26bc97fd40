package channel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Errors of the data path. ErrCorrupt is wrapped with a description of what
// was wrong; test with errors.Is.
var (
	// ErrFull: not enough ring slots or free buffers right now; nothing was sent.
	ErrFull = errors.New("channel: full")
	// ErrEmpty: no complete message to receive.
	ErrEmpty = errors.New("channel: empty")
	// ErrCorrupt: the peer wrote something invalid into the region. The
	// service disconnects an application that causes it.
	ErrCorrupt = errors.New("channel: corrupt region")
	// ErrTooBig: the message can never fit (more than Config.MaxMessage bytes).
	ErrTooBig = errors.New("channel: message too big")
	// ErrTimeout: Wait's timeout passed before anything arrived.
	ErrTimeout = errors.New("channel: wait timed out")
)

// FlagMore in Desc.Flags: the message continues in the next descriptor.
const FlagMore = 1

// Desc is one descriptor of a ring: 24 bytes in memory, little-endian, at
// offsets Op 0, Flags 2, Sock 4, Buf 8, Len 12, Arg 16. Op, Sock and Arg are
// opaque to this package; the protocol above defines them.
type Desc struct {
	Op    uint16 // operation (protocol-defined)
	Flags uint16 // FlagMore; other bits are carried but not interpreted
	Sock  uint32 // socket id (protocol-defined)
	Buf   uint32 // buffer index, or NoBuf
	Len   uint32 // bytes used in Buf
	Arg   uint64 // operation argument (protocol-defined)
}

func getDesc(p *[descSize]byte) Desc {
	le := binary.LittleEndian
	return Desc{
		Op:    le.Uint16(p[0:]),
		Flags: le.Uint16(p[2:]),
		Sock:  le.Uint32(p[4:]),
		Buf:   le.Uint32(p[8:]),
		Len:   le.Uint32(p[12:]),
		Arg:   le.Uint64(p[16:]),
	}
}

func putDesc(p []byte, d Desc) {
	_ = p[descSize-1]
	le := binary.LittleEndian
	le.PutUint16(p[0:], d.Op)
	le.PutUint16(p[2:], d.Flags)
	le.PutUint32(p[4:], d.Sock)
	le.PutUint32(p[8:], d.Buf)
	le.PutUint32(p[12:], d.Len)
	le.PutUint64(p[16:], d.Arg)
}

// ring is one side's view of a shared ring. Exactly one of prod/cons is this
// side's counter: local mirrors it (it is never read back from shared memory),
// cached is the last validated value of the peer's counter.
type ring struct {
	name   string
	prod   *uint32 // shared producer counter
	cons   *uint32 // shared consumer counter
	data   int     // offset of the entries in the mapping
	size   uint32  // entries, a power of two
	mask   uint32  // size - 1
	local  uint32  // our counter
	cached uint32  // the peer's counter as last loaded and validated
}

func newRing(mem []byte, name string, rl ringLayout) ring {
	return ring{
		name:   name,
		prod:   (*uint32)(unsafe.Pointer(&mem[rl.prod])),
		cons:   (*uint32)(unsafe.Pointer(&mem[rl.cons])),
		data:   rl.data,
		size:   uint32(rl.size),
		mask:   uint32(rl.size - 1),
		local:  counterBase,
		cached: counterBase,
	}
}

// loadProd refreshes the cached producer counter of a ring we consume. The
// producer may be at most size entries ahead of us and never behind.
func (r *ring) loadProd() error {
	p := atomic.LoadUint32(r.prod)
	if d := p - r.local; d > r.size {
		if int32(d) < 0 {
			return fmt.Errorf("%w: %s ring: producer counter %d is %d behind consumer %d", ErrCorrupt, r.name, p, -int32(d), r.local)
		}
		return fmt.Errorf("%w: %s ring: producer counter %d is %d ahead of consumer %d (ring of %d)", ErrCorrupt, r.name, p, d, r.local, r.size)
	}
	r.cached = p
	return nil
}

// loadCons refreshes the cached consumer counter of a ring we produce. The
// consumer may be at most size entries behind us and never ahead.
func (r *ring) loadCons() error {
	c := atomic.LoadUint32(r.cons)
	if d := r.local - c; d > r.size {
		if int32(d) < 0 {
			return fmt.Errorf("%w: %s ring: consumer counter %d is %d ahead of producer %d", ErrCorrupt, r.name, c, -int32(d), r.local)
		}
		return fmt.Errorf("%w: %s ring: consumer counter %d is %d behind producer %d (ring of %d)", ErrCorrupt, r.name, c, d, r.local, r.size)
	}
	r.cached = c
	return nil
}

// End is one side's access to a region: the app's or the service's. It holds
// that side's private state (its counters, its free buffers, which of its
// buffers are lent out). One goroutine at a time for each half: the sending
// one (Send, FreeBuffers, Notify) and the receiving one (Recv, Pending, the
// waits: Wait, PrepareSleep/FinishSleep, Drain, a Sleeper) may each have
// their own.
type End struct {
	mem  []byte
	side string // "app" or "service"
	peer string // the other side's name

	tx      ring // descriptors we send
	rx      ring // descriptors we receive
	freeIn  ring // our buffers coming back
	freeOut ring // peer buffers we give back

	bufs    int    // offset of buffer 0
	bufSize uint32 // bytes per buffer
	maxMsg  int    // largest payload of one message
	own     uint32 // first index of our partition
	peerLo  uint32 // first index of the peer's partition
	nbuf    uint32 // buffers per partition

	free []uint32 // stack of our free buffer indices
	lent []uint64 // bitmap over our partition: lent to the peer

	// A chain seen incomplete (torn) at producer counter stallProd: until the
	// producer moves, there is nothing to receive and Pending says so.
	stalled   bool
	stallProd uint32

	ownWake  *uint32 // our need-wakeup flag
	peerWake *uint32 // the peer's
	waitFd   int     // our eventfd
	peerFd   int     // the peer's eventfd
	// eventfd I/O scratch, one per half: Notify (the sending half) may run
	// while Wait or Drain (the receiving half) runs on another goroutine.
	notifyBuf [8]byte
	drainBuf  [8]byte
	pfd       [1]unix.PollFd
}

func newEnd(r *Region, side string, tx, rx, freeIn, freeOut ringLayout, own, peerLo uint32, ownWake, peerWake int, waitFd, peerFd int) *End {
	peer := "service"
	txName, rxName := "up", "down"
	if side == "service" {
		peer = "app"
		txName, rxName = "down", "up"
	}
	cfg := r.lay.cfg
	e := &End{
		mem:      r.mem,
		side:     side,
		peer:     peer,
		tx:       newRing(r.mem, txName, tx),
		rx:       newRing(r.mem, rxName, rx),
		freeIn:   newRing(r.mem, txName+"Free", freeIn),
		freeOut:  newRing(r.mem, rxName+"Free", freeOut),
		bufs:     r.lay.bufs,
		bufSize:  uint32(cfg.BufSize),
		maxMsg:   cfg.MaxMessage(),
		own:      own,
		peerLo:   peerLo,
		nbuf:     uint32(cfg.Buffers),
		free:     make([]uint32, cfg.Buffers),
		lent:     make([]uint64, (cfg.Buffers+63)/64),
		ownWake:  (*uint32)(unsafe.Pointer(&r.mem[ownWake])),
		peerWake: (*uint32)(unsafe.Pointer(&r.mem[peerWake])),
		waitFd:   waitFd,
		peerFd:   peerFd,
	}
	// LIFO: the lowest indices are used first and stay warm in cache.
	for i := range e.free {
		e.free[i] = own + uint32(cfg.Buffers-1-i)
	}
	return e
}

// buf returns buffer idx's full byte range; idx must be valid.
func (e *End) buf(idx uint32) []byte {
	off := e.bufs + int(idx)*int(e.bufSize)
	return e.mem[off : off+int(e.bufSize) : off+int(e.bufSize)]
}

// Send sends one message: it copies payload into as many of this side's
// buffers as needed, chains their descriptors with FlagMore (an empty payload
// is one descriptor with Buf = NoBuf) and publishes them all at once. It is all
// or nothing: ErrFull when ring slots or buffers are short right now (nothing
// was sent), ErrTooBig when the message could never fit, ErrCorrupt when the
// peer returned a buffer it was not lent (nothing was sent). Call Notify
// afterwards (once per batch) to wake the peer if it sleeps.
func (e *End) Send(op uint16, sock uint32, arg uint64, payload []byte) error {
	bs := int(e.bufSize)
	n, nb := 1, 0 // descriptors, buffers
	if len(payload) > 0 {
		if len(payload) > e.maxMsg {
			return ErrTooBig
		}
		nb = (len(payload) + bs - 1) / bs
		n = nb
	}
	if len(e.free) < nb {
		if err := e.reclaim(); err != nil {
			return err
		}
		if len(e.free) < nb {
			return ErrFull
		}
	}
	tx := &e.tx
	if tx.size-(tx.local-tx.cached) < uint32(n) {
		if err := tx.loadCons(); err != nil {
			return err
		}
		if tx.size-(tx.local-tx.cached) < uint32(n) {
			return ErrFull
		}
	}
	d := Desc{Op: op, Sock: sock, Arg: arg, Buf: NoBuf}
	for i := range n {
		d.Flags = 0
		if i < n-1 {
			d.Flags = FlagMore
		}
		if nb > 0 {
			top := len(e.free) - 1
			d.Buf = e.free[top]
			e.free = e.free[:top]
			rel := d.Buf - e.own
			e.lent[rel>>6] |= 1 << (rel & 63)
			chunk := payload[i*bs : min((i+1)*bs, len(payload))]
			copy(e.buf(d.Buf), chunk)
			d.Len = uint32(len(chunk))
		}
		slot := tx.data + int((tx.local+uint32(i))&tx.mask)*descSize
		putDesc(e.mem[slot:slot+descSize], d)
	}
	tx.local += uint32(n)
	atomic.StoreUint32(tx.prod, tx.local)
	return nil
}

// reclaim takes back the buffers the peer returned through our free ring. An
// index that is not ours or not lent out (a forged or doubled free) is
// consumed and ignored, and reported as ErrCorrupt after the others are taken.
func (e *End) reclaim() error {
	fi := &e.freeIn
	if err := fi.loadProd(); err != nil {
		return err
	}
	if fi.local == fi.cached {
		return nil
	}
	var bad error
	for fi.local != fi.cached {
		slot := fi.data + int(fi.local&fi.mask)*4
		idx := binary.LittleEndian.Uint32(e.mem[slot : slot+4])
		fi.local++
		rel := idx - e.own
		if rel >= e.nbuf {
			if bad == nil {
				bad = fmt.Errorf("%w: %s ring: buffer %d is not in the %s partition [%d,%d)", ErrCorrupt, fi.name, idx, e.side, e.own, e.own+e.nbuf)
			}
			continue
		}
		w, b := rel>>6, uint64(1)<<(rel&63)
		if e.lent[w]&b == 0 {
			if bad == nil {
				bad = fmt.Errorf("%w: %s ring: buffer %d returned but not lent out (double or forged free)", ErrCorrupt, fi.name, idx)
			}
			continue
		}
		e.lent[w] &^= b
		e.free = append(e.free, idx) // never grows: one push per cleared bit
	}
	atomic.StoreUint32(fi.cons, fi.local)
	return bad
}

// FreeBuffers takes back the buffers the peer has returned and reports how
// many of this side's buffers are free (Config.Buffers when none is lent out).
func (e *End) FreeBuffers() (int, error) {
	err := e.reclaim()
	return len(e.free), err
}

// Pending reports whether there is something to Recv (possibly a corrupt
// entry, which Recv then reports).
func (e *End) Pending() bool {
	rx := &e.rx
	if !e.stalled && rx.cached != rx.local {
		return true
	}
	p := atomic.LoadUint32(rx.prod)
	if e.stalled {
		return p != e.stallProd
	}
	return p != rx.local
}

// corrupt consumes k descriptors and publishes nf returned peer buffers
// after a corrupt descriptor.
func (e *End) corrupt(k, nf uint32, err error) (Desc, []byte, error) {
	e.freeOut.local += nf
	atomic.StoreUint32(e.freeOut.prod, e.freeOut.local)
	e.rx.local += k
	atomic.StoreUint32(e.rx.cons, e.rx.local)
	return Desc{}, nil, err
}

// Recv receives one whole message. It appends the payload to dst[:0] (growing
// it if needed) and returns the first descriptor, with Len the total length,
// FlagMore cleared and Buf = NoBuf (the buffers are already back with their
// owner), and the payload. ErrEmpty: no complete message (a chain not yet
// completely published is left in place). ErrCorrupt: an invalid descriptor or
// counter; the descriptors up to the bad one are consumed.
func (e *End) Recv(dst []byte) (Desc, []byte, error) {
	dst = dst[:0]
	rx := &e.rx
	if e.stalled {
		if err := rx.loadProd(); err != nil {
			return e.corrupt(0, 0, err)
		}
		if rx.cached == e.stallProd {
			return Desc{}, dst, ErrEmpty
		}
		e.stalled = false
	}
	avail := rx.cached - rx.local
	if avail == 0 {
		if err := rx.loadProd(); err != nil {
			return e.corrupt(0, 0, err)
		}
		if avail = rx.cached - rx.local; avail == 0 {
			return Desc{}, dst, ErrEmpty
		}
	}
	fo := &e.freeOut
	var first Desc
	var raw [descSize]byte
	total := 0
	nf := uint32(0) // peer buffers written (not yet published) to freeOut
	for k := uint32(0); ; k++ {
		if k == avail {
			if err := rx.loadProd(); err != nil {
				return e.corrupt(0, 0, err)
			}
			if avail = rx.cached - rx.local; k == avail {
				// Torn chain: its end is not published. Leave it.
				e.stalled, e.stallProd = true, rx.cached
				return Desc{}, dst[:0], ErrEmpty
			}
		}
		slot := rx.data + int((rx.local+k)&rx.mask)*descSize
		copy(raw[:], e.mem[slot:slot+descSize]) // the one read of this descriptor
		d := getDesc(&raw)
		if k == 0 {
			first = d
		}
		more := d.Flags&FlagMore != 0
		if d.Buf == NoBuf {
			if d.Len != 0 || k != 0 || more {
				return e.corrupt(k+1, nf, fmt.Errorf("%w: %s ring: descriptor %d of a chain has no buffer but length %d (more=%v)", ErrCorrupt, rx.name, k, d.Len, more))
			}
		} else {
			if d.Buf-e.peerLo >= e.nbuf {
				where := "out of range"
				if d.Buf-e.own < e.nbuf {
					where = "in the " + e.side + " partition"
				}
				return e.corrupt(k+1, nf, fmt.Errorf("%w: %s ring: buffer %d is %s, not in the %s partition [%d,%d)", ErrCorrupt, rx.name, d.Buf, where, e.peer, e.peerLo, e.peerLo+e.nbuf))
			}
			if d.Len > e.bufSize {
				return e.corrupt(k+1, nf, fmt.Errorf("%w: %s ring: length %d exceeds the buffer size %d", ErrCorrupt, rx.name, d.Len, e.bufSize))
			}
			if total+int(d.Len) > e.maxMsg {
				return e.corrupt(k+1, nf, fmt.Errorf("%w: %s ring: message longer than %d bytes", ErrCorrupt, rx.name, e.maxMsg))
			}
			if fo.size-(fo.local+nf-fo.cached) == 0 {
				if err := fo.loadCons(); err != nil {
					return e.corrupt(k+1, nf, err)
				}
				if fo.size-(fo.local+nf-fo.cached) == 0 {
					// An honest peer never has more buffers lent than the ring holds.
					return e.corrupt(k+1, nf, fmt.Errorf("%w: %s ring overflows: the %s has more buffers out than it owns (one sent twice)", ErrCorrupt, fo.name, e.peer))
				}
			}
			dst = append(dst, e.buf(d.Buf)[:d.Len]...)
			fslot := fo.data + int((fo.local+nf)&fo.mask)*4
			binary.LittleEndian.PutUint32(e.mem[fslot:fslot+4], d.Buf)
			nf++
			total += int(d.Len)
		}
		if !more {
			fo.local += nf
			if nf > 0 {
				atomic.StoreUint32(fo.prod, fo.local)
			}
			rx.local += k + 1
			atomic.StoreUint32(rx.cons, rx.local)
			first.Flags &^= FlagMore
			first.Buf = NoBuf
			first.Len = uint32(total)
			return first, dst, nil
		}
		if k+1 == rx.size {
			return e.corrupt(k+1, nf, fmt.Errorf("%w: %s ring: chain longer than the ring (%d)", ErrCorrupt, rx.name, rx.size))
		}
	}
}
