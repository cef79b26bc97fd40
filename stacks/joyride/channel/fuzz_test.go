package channel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// fuzzCfg is small so that the fuzzer's bytes cover whole rings.
var fuzzCfg = Config{RingSize: 8, Buffers: 16, BufSize: 256}

// upArea and freeArea are the byte ranges the fuzzer controls: the up ring
// (both counters and all descriptors) and the downFree ring.
func fuzzAreas(l layout) (up, free [2]int) {
	up = [2]int{l.up.prod, l.up.data + l.up.size*descSize}
	free = [2]int{l.downFree.prod, l.downFree.data + l.downFree.size*4}
	return
}

func descBytes(ds ...Desc) []byte {
	b := make([]byte, 2*cacheLine+len(ds)*descSize)
	binary.LittleEndian.PutUint32(b, uint32(len(ds)))
	for i, d := range ds {
		putDesc(b[2*cacheLine+i*descSize:], d)
	}
	return b
}

// FuzzServiceRecv writes the fuzzer's bytes over the up ring (counters and
// descriptors) and then over the downFree ring, as a hostile application
// would, and runs the service end: Recv in a loop, then Send until it stops.
// The service must not panic, must return only bytes of the application's
// buffers, and must never account for a buffer twice.
func FuzzServiceRecv(f *testing.F) {
	f.Add(descBytes(Desc{Op: 1, Buf: 0, Len: 64}))
	f.Add(descBytes(Desc{Buf: NoBuf}, Desc{Buf: 3, Len: 256}, Desc{Buf: 4, Len: 1, Flags: FlagMore}, Desc{Buf: 5, Len: 2}))
	f.Add(descBytes(Desc{Buf: 1, Len: 256, Flags: FlagMore}, Desc{Buf: 2, Len: 256, Flags: FlagMore})) // torn
	f.Add(descBytes(Desc{Buf: 16, Len: 1}))
	f.Add(descBytes(Desc{Buf: 1, Len: 257}))
	f.Add(descBytes(Desc{Buf: 0, Len: 1}, Desc{Buf: 0, Len: 1}, Desc{Buf: 0, Len: 1}, Desc{Buf: 0, Len: 1},
		Desc{Buf: 0, Len: 1}, Desc{Buf: 0, Len: 1}, Desc{Buf: 0, Len: 1}, Desc{Buf: 0, Len: 1}))
	all := make([]Desc, 8)
	for i := range all {
		all[i] = Desc{Buf: uint32(i), Len: 10, Flags: FlagMore}
	}
	f.Add(descBytes(all...)) // endless chain
	big := descBytes(Desc{Buf: 0, Len: 1})
	binary.LittleEndian.PutUint32(big, 9) // producer past the ring
	f.Add(big)
	// Over the downFree ring: a forged free, a double free, a wild counter.
	pad := make([]byte, 2*cacheLine+8*descSize)
	fr := make([]byte, 2*cacheLine+16*4)
	binary.LittleEndian.PutUint32(fr, 3)
	binary.LittleEndian.PutUint32(fr[2*cacheLine:], 16)
	binary.LittleEndian.PutUint32(fr[2*cacheLine+4:], 16)
	binary.LittleEndian.PutUint32(fr[2*cacheLine+8:], 40)
	f.Add(append(append([]byte{}, pad...), fr...))
	binary.LittleEndian.PutUint32(fr, 0xFFFFFFF0)
	f.Add(append(append([]byte{}, pad...), fr...))

	r, err := Create("joyride-fuzz", fuzzCfg)
	if err != nil {
		f.Fatal(err)
	}
	defer r.Close()
	fz := &forger{mem: r.mem, lay: r.lay}
	fz.fillBuffers()
	up, free := fuzzAreas(r.lay)
	clean := append([]byte(nil), r.mem[:r.lay.bufs]...) // header and rings, fresh
	reply := bytes.Repeat([]byte{0xEE}, 700)            // keeps the service buffers' pattern

	f.Fuzz(func(t *testing.T, data []byte) {
		copy(r.mem, clean)
		r.makeEnds()
		svc := r.Service()
		// Lend three buffers (16, 17, 18) so that frees can be genuine,
		// doubled or forged.
		for range 3 {
			if err := svc.Send(1, 1, 1, reply[:10]); err != nil {
				t.Fatal(err)
			}
		}
		n := copy(r.mem[up[0]:up[1]], data)
		copy(r.mem[free[0]:free[1]], data[n:])
		dst := make([]byte, 0, 512)
		for range 4 * fuzzCfg.RingSize {
			d, got, err := svc.Recv(dst)
			switch {
			case err == nil:
				if int(d.Len) != len(got) || len(got) > fuzzCfg.RingSize*fuzzCfg.BufSize {
					t.Fatalf("desc len %d, payload %d", d.Len, len(got))
				}
				checkAppData(t, got)
			case err == ErrEmpty, errors.Is(err, ErrCorrupt):
			default:
				t.Fatal(err)
			}
			_ = svc.Pending()
		}
		for range 2 * fuzzCfg.Buffers {
			if err := svc.Send(1, 1, 1, reply[:len(data)%len(reply)]); err != nil {
				if err != ErrFull && !errors.Is(err, ErrCorrupt) {
					t.Fatal(err)
				}
				break
			}
		}
		checkOwnership(t, svc)
	})
}
