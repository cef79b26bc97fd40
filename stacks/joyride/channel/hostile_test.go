package channel

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// forger writes raw bytes into a region through the application's mapping,
// as a hostile application would; it bypasses the app End entirely.
type forger struct {
	mem []byte
	lay layout
}

func newForger(p *pair) *forger { return &forger{mem: p.appRegion.mem, lay: p.appRegion.lay} }

func (f *forger) counter(off int) *uint32 { return (*uint32)(unsafePointer(&f.mem[off])) }

// up writes descriptor d in slot i of the up ring.
func (f *forger) up(i int, d Desc) {
	i &= f.lay.up.size - 1
	putDesc(f.mem[f.lay.up.data+i*descSize:], d)
}

func (f *forger) setUpProd(v uint32)       { atomic.StoreUint32(f.counter(f.lay.up.prod), v) }
func (f *forger) setDownFreeProd(v uint32) { atomic.StoreUint32(f.counter(f.lay.downFree.prod), v) }
func (f *forger) setUpFreeCons(v uint32)   { atomic.StoreUint32(f.counter(f.lay.upFree.cons), v) }
func (f *forger) setDownCons(v uint32)     { atomic.StoreUint32(f.counter(f.lay.down.cons), v) }
func (f *forger) downFree(i int, idx uint32) {
	i &= f.lay.downFree.size - 1
	binary.LittleEndian.PutUint32(f.mem[f.lay.downFree.data+i*4:], idx)
}

// fillBuffers marks every app buffer i with byte 0x10+i%0x40 and every
// service buffer with 0xEE, so that received data shows where it came from.
func (f *forger) fillBuffers() {
	cfg := f.lay.cfg
	for i := range 2 * cfg.Buffers {
		b := byte(0xEE)
		if i < cfg.Buffers {
			b = 0x10 + byte(i%0x40)
		}
		off := f.lay.bufs + i*cfg.BufSize
		for j := range cfg.BufSize {
			f.mem[off+j] = b
		}
	}
}

// checkAppData fails unless every byte came from an app buffer.
func checkAppData(tb testing.TB, data []byte) {
	for i, b := range data {
		if b < 0x10 || b >= 0x50 {
			tb.Fatalf("byte %d of the payload is %#x: not from an app buffer", i, b)
		}
	}
}

// checkOwnership fails unless each of e's buffers is either free (once) or
// lent out, never both, never twice.
func checkOwnership(tb testing.TB, e *End) {
	tb.Helper()
	seen := make(map[uint32]bool)
	for _, idx := range e.free {
		rel := idx - e.own
		if rel >= e.nbuf {
			tb.Fatalf("%s free list holds buffer %d of another partition", e.side, idx)
		}
		if seen[idx] {
			tb.Fatalf("%s free list holds buffer %d twice", e.side, idx)
		}
		if e.lent[rel>>6]&(1<<(rel&63)) != 0 {
			tb.Fatalf("%s buffer %d is both free and lent", e.side, idx)
		}
		seen[idx] = true
	}
	lent := 0
	for _, w := range e.lent {
		for ; w != 0; w &= w - 1 {
			lent++
		}
	}
	if len(e.free)+lent != int(e.nbuf) {
		tb.Fatalf("%s: %d free + %d lent != %d buffers", e.side, len(e.free), lent, e.nbuf)
	}
}

var hostileCfg = Config{RingSize: 8, Buffers: 16, BufSize: 256}

func wantCorrupt(t *testing.T, err error, substr string) {
	t.Helper()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %v, want ErrCorrupt", err)
	}
	if !strings.Contains(err.Error(), substr) {
		t.Fatalf("error %q does not say %q", err, substr)
	}
	t.Log(err)
}

func TestHostileDescriptors(t *testing.T) {
	B := uint32(hostileCfg.Buffers)
	for _, c := range []struct {
		name  string
		descs []Desc
		want  string
	}{
		{"buf out of range", []Desc{{Buf: 5000, Len: 1}}, "buffer 5000 is out of range"},
		{"buf just past the region", []Desc{{Buf: 2 * B, Len: 1}}, "out of range"},
		{"buf in service partition", []Desc{{Buf: B + 3, Len: 1}}, "in the service partition"},
		{"len past buffer", []Desc{{Buf: 2, Len: 257}}, "length 257 exceeds the buffer size 256"},
		{"len huge", []Desc{{Buf: 2, Len: 0xFFFFFFFF}}, "exceeds the buffer size"},
		{"nobuf with length", []Desc{{Buf: NoBuf, Len: 10}}, "no buffer but length 10"},
		{"nobuf in chain", []Desc{{Buf: 1, Len: 5, Flags: FlagMore}, {Buf: NoBuf}}, "no buffer"},
		{"bad second of chain", []Desc{{Buf: 1, Len: 5, Flags: FlagMore}, {Buf: B, Len: 5}}, "service partition"},
		{"endless chain", []Desc{
			{Buf: 0, Len: 1, Flags: FlagMore}, {Buf: 1, Len: 1, Flags: FlagMore}, {Buf: 2, Len: 1, Flags: FlagMore}, {Buf: 3, Len: 1, Flags: FlagMore},
			{Buf: 4, Len: 1, Flags: FlagMore}, {Buf: 5, Len: 1, Flags: FlagMore}, {Buf: 6, Len: 1, Flags: FlagMore}, {Buf: 7, Len: 1, Flags: FlagMore},
		}, "chain longer than the ring"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := newPair(t, hostileCfg)
			f := newForger(p)
			f.fillBuffers()
			for i, d := range c.descs {
				f.up(i, d)
			}
			f.setUpProd(uint32(len(c.descs)))
			if !p.svc.Pending() {
				t.Fatal("not pending")
			}
			d, data, err := p.svc.Recv(make([]byte, 0, 64))
			wantCorrupt(t, err, c.want)
			if len(data) != 0 || d != (Desc{}) {
				t.Fatalf("data %d bytes, desc %+v with the error", len(data), d)
			}
			// The bad descriptors were consumed; the ring is usable again.
			f.up(len(c.descs), Desc{Op: 5, Buf: 9, Len: 3})
			f.setUpProd(uint32(len(c.descs) + 1))
			d, data, err = p.svc.Recv(nil)
			if err != nil || d.Op != 5 || len(data) != 3 {
				t.Fatalf("after the corruption: %+v %v %v", d, data, err)
			}
			checkAppData(t, data)
			checkOwnership(t, p.svc)
		})
	}
}

func TestHostileCounters(t *testing.T) {
	t.Run("up producer too far ahead", func(t *testing.T) {
		p := newPair(t, hostileCfg)
		f := newForger(p)
		f.setUpProd(5000)
		_, _, err := p.svc.Recv(nil)
		wantCorrupt(t, err, "up ring: producer counter 5000 is 5000 ahead of consumer 0 (ring of 8)")
	})
	t.Run("up producer behind (wrapped)", func(t *testing.T) {
		p := newPair(t, hostileCfg)
		f := newForger(p)
		f.setUpProd(0xFFFFFFFF)
		_, _, err := p.svc.Recv(nil)
		wantCorrupt(t, err, "is 1 behind consumer")
	})
	t.Run("up producer exactly one ring ahead is fine", func(t *testing.T) {
		p := newPair(t, hostileCfg)
		f := newForger(p)
		f.fillBuffers()
		for i := range 8 {
			f.up(i, Desc{Sock: uint32(i), Buf: uint32(i), Len: 10})
		}
		f.setUpProd(8)
		for i := range 8 {
			d, data, err := p.svc.Recv(nil)
			if err != nil || d.Sock != uint32(i) {
				t.Fatal(d, err)
			}
			checkAppData(t, data)
		}
	})
	t.Run("down consumer ahead of producer", func(t *testing.T) {
		p := newPair(t, hostileCfg)
		f := newForger(p)
		for i := range 8 { // fill the down ring so that Send must reload the consumer
			if err := p.svc.Send(1, 1, 1, nil); err != nil {
				t.Fatal(err)
			}
			_ = i
		}
		f.setDownCons(100)
		wantCorrupt(t, p.svc.Send(1, 1, 1, nil), "down ring: consumer counter 100 is 92 ahead of producer 8")
	})
	t.Run("upFree consumer ahead", func(t *testing.T) {
		p := newPair(t, hostileCfg)
		f := newForger(p)
		f.fillBuffers()
		// Send 16 messages through the up ring so that the upFree ring fills,
		// then claim to have consumed more than was ever produced.
		n := uint32(0)
		for i := range 16 {
			f.up(int(n), Desc{Buf: uint32(i), Len: 1})
			n++
			f.setUpProd(n)
			if _, _, err := p.svc.Recv(nil); err != nil {
				t.Fatal(err)
			}
		}
		f.setUpFreeCons(1000)
		f.up(int(n), Desc{Buf: 0, Len: 1})
		f.setUpProd(n + 1)
		_, _, err := p.svc.Recv(nil)
		wantCorrupt(t, err, "upFree ring: consumer counter 1000")
	})
	t.Run("upFree overflow: same buffer sent again and again", func(t *testing.T) {
		p := newPair(t, hostileCfg)
		f := newForger(p)
		f.fillBuffers()
		var err error
		for i := uint32(0); i < 100 && err == nil; i++ {
			f.up(int(i), Desc{Buf: 0, Len: 1})
			f.setUpProd(i + 1)
			_, _, err = p.svc.Recv(nil)
		}
		wantCorrupt(t, err, "upFree ring overflows: the app has more buffers out")
	})
}

func TestHostileTornChain(t *testing.T) {
	p := newPair(t, hostileCfg)
	f := newForger(p)
	f.fillBuffers()
	f.up(0, Desc{Op: 4, Buf: 1, Len: 256, Flags: FlagMore})
	f.up(1, Desc{Op: 4, Buf: 2, Len: 256, Flags: FlagMore})
	f.setUpProd(2)
	if !p.svc.Pending() {
		t.Fatal("not pending")
	}
	for range 3 {
		if _, _, err := p.svc.Recv(nil); err != ErrEmpty {
			t.Fatalf("torn chain: %v, want ErrEmpty", err)
		}
		// Nothing new since: Pending is false, so a waiting engine sleeps
		// instead of spinning on the torn chain.
		if p.svc.Pending() {
			t.Fatal("pending with only a torn chain")
		}
		if err := p.svc.Wait(time.Millisecond); err != ErrTimeout {
			t.Fatalf("wait on a torn chain: %v", err)
		}
	}
	f.up(2, Desc{Op: 4, Buf: 3, Len: 5})
	f.setUpProd(3)
	if !p.svc.Pending() {
		t.Fatal("not pending after completing the chain")
	}
	d, data, err := p.svc.Recv(nil)
	if err != nil || d.Op != 4 || d.Len != 517 || len(data) != 517 {
		t.Fatalf("%+v %d %v", d, len(data), err)
	}
	checkAppData(t, data)
}

func TestHostileFrees(t *testing.T) {
	B := uint32(hostileCfg.Buffers)
	setup := func(t *testing.T) (*pair, *forger, []uint32) {
		p := newPair(t, hostileCfg)
		f := newForger(p)
		// The service lends 3 buffers; the (raw) app reads the descriptors.
		var lent []uint32
		for range 3 {
			if err := p.svc.Send(1, 1, 1, []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 3 {
			var raw [descSize]byte
			copy(raw[:], f.mem[f.lay.down.data+i*descSize:])
			lent = append(lent, getDesc(&raw).Buf)
		}
		f.setDownCons(3)
		return p, f, lent
	}
	exhaust := func(t *testing.T, p *pair) {
		// Whatever was forged, the service can never hand out more than its
		// B buffers, and never one twice.
		t.Helper()
		checkOwnership(t, p.svc)
		seen := map[uint32]bool{}
		for _, idx := range p.svc.free {
			seen[idx] = true
		}
		for idx := B; idx < 2*B; idx++ {
			rel := idx - B
			if p.svc.lent[rel>>6]&(1<<(rel&63)) != 0 {
				seen[idx] = true
			}
		}
		if len(seen) != int(B) {
			t.Fatalf("service accounts for %d buffers, has %d", len(seen), B)
		}
	}
	t.Run("forged app index", func(t *testing.T) {
		p, f, _ := setup(t)
		f.downFree(0, 3)
		f.setDownFreeProd(1)
		_, err := p.svc.FreeBuffers()
		wantCorrupt(t, err, "buffer 3 is not in the service partition [16,32)")
		exhaust(t, p)
	})
	t.Run("forged out of range", func(t *testing.T) {
		p, f, _ := setup(t)
		f.downFree(0, 0xFFFFFFFF)
		f.setDownFreeProd(1)
		_, err := p.svc.FreeBuffers()
		wantCorrupt(t, err, "not in the service partition")
		exhaust(t, p)
	})
	t.Run("forged not lent", func(t *testing.T) {
		p, f, lent := setup(t)
		notLent := B
		for notLent == lent[0] || notLent == lent[1] || notLent == lent[2] {
			notLent++
		}
		f.downFree(0, notLent)
		f.downFree(1, lent[0]) // a genuine one in the same batch is taken
		f.setDownFreeProd(2)
		n, err := p.svc.FreeBuffers()
		wantCorrupt(t, err, "not lent out")
		if n != int(B)-2 {
			t.Fatalf("%d free, want %d", n, B-2)
		}
		exhaust(t, p)
	})
	t.Run("double free", func(t *testing.T) {
		p, f, lent := setup(t)
		f.downFree(0, lent[1])
		f.downFree(1, lent[1])
		f.downFree(2, lent[1])
		f.setDownFreeProd(3)
		n, err := p.svc.FreeBuffers()
		wantCorrupt(t, err, "double or forged free")
		if n != int(B)-2 {
			t.Fatalf("%d free, want %d", n, B-2)
		}
		exhaust(t, p)
		// The doubled buffer is lent again only once: send until full.
		uses := map[uint32]int{}
		for {
			err := p.svc.Send(1, 1, 1, []byte("y"))
			if err == ErrFull {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			// Consume the descriptor as the app would (raw), without freeing.
			cons := atomic.LoadUint32(f.counter(f.lay.down.cons))
			var raw [descSize]byte
			copy(raw[:], f.mem[f.lay.down.data+int(cons&7)*descSize:])
			uses[getDesc(&raw).Buf]++
			f.setDownCons(cons + 1)
		}
		for idx, u := range uses {
			if u > 1 {
				t.Fatalf("buffer %d lent %d times", idx, u)
			}
		}
		exhaust(t, p)
	})
	t.Run("free producer too far ahead", func(t *testing.T) {
		p, f, _ := setup(t)
		f.setDownFreeProd(1 << 20)
		_, err := p.svc.FreeBuffers()
		wantCorrupt(t, err, "downFree ring: producer counter 1048576")
		// Send reclaims when it is short of buffers: it reports the same.
		for {
			if err = p.svc.Send(1, 1, 1, payload(256, 0)); err != nil {
				break
			}
		}
		if !errors.Is(err, ErrCorrupt) && err != ErrFull {
			t.Fatal(err)
		}
		exhaust(t, p)
	})
}

// TestHostileConcurrent lets a hostile application scribble over its whole
// side of the region (up ring, counters, downFree, buffers, flags) while the
// service receives and sends. The service must not panic, must return only
// app data, and must keep its buffer accounting exact.
func TestHostileConcurrent(t *testing.T) {
	p := newPair(t, hostileCfg)
	f := newForger(p)
	f.fillBuffers()
	lay := f.lay
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(3, 4))
		for {
			select {
			case <-stop:
				return
			default:
			}
			switch c := rng.IntN(62); {
			case c < 10:
				f.setUpProd(atomic.LoadUint32(f.counter(lay.up.prod)) + uint32(rng.IntN(3)))
			case c >= 60:
				// Repair the counters from what the service published, so
				// that valid traffic gets through between the attacks.
				f.setUpProd(atomic.LoadUint32(f.counter(lay.up.cons)) + uint32(rng.IntN(4)))
				f.setUpFreeCons(atomic.LoadUint32(f.counter(lay.upFree.prod)))
				f.setDownCons(atomic.LoadUint32(f.counter(lay.down.prod)))
			case c < 11:
				f.setUpProd(rng.Uint32())
			case c < 40:
				d := Desc{Buf: uint32(rng.IntN(18)), Len: uint32(rng.IntN(270)), Flags: uint16(rng.IntN(2))}
				if rng.IntN(8) == 0 {
					d.Buf = NoBuf
				}
				f.up(rng.IntN(8), d)
			case c < 50:
				f.downFree(rng.IntN(16), uint32(rng.IntN(40)))
				f.setDownFreeProd(atomic.LoadUint32(f.counter(lay.downFree.prod)) + uint32(rng.IntN(2)))
			case c < 52:
				f.setDownCons(atomic.LoadUint32(f.counter(lay.down.cons)) + uint32(rng.IntN(3)))
			case c < 53:
				f.setUpFreeCons(atomic.LoadUint32(f.counter(lay.upFree.cons)) + uint32(rng.IntN(3)))
			}
		}
	}()
	var stats [4]int
	dst := make([]byte, 0, 4096)
	deadline := time.Now().Add(500 * time.Millisecond)
	for i := 0; time.Now().Before(deadline); i++ {
		d, data, err := p.svc.Recv(dst)
		switch {
		case err == nil:
			stats[0]++
			if int(d.Len) != len(data) || len(data) > p.svc.maxMsg {
				t.Fatalf("desc len %d, data %d", d.Len, len(data))
			}
			checkAppData(t, data)
			dst = data
		case err == ErrEmpty:
			stats[1]++
		case errors.Is(err, ErrCorrupt):
			stats[2]++
		default:
			t.Fatal(err)
		}
		err = p.svc.Send(1, 1, 1, payload(i%600, 0))
		if err != nil && err != ErrFull && !errors.Is(err, ErrCorrupt) {
			t.Fatal(err)
		}
		if err == nil {
			stats[3]++
		}
		checkOwnership(t, p.svc)
	}
	close(stop)
	wg.Wait()
	t.Logf("received %d, empty %d, corrupt %d, sent %d", stats[0], stats[1], stats[2], stats[3])
}

func unsafePointer(p *byte) unsafe.Pointer { return unsafe.Pointer(p) }
