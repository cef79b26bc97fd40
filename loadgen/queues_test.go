package loadgen

import (
	"testing"

	"github.com/joyride-bench/joyride/nic"
)

// FanIn hears a frame on whichever queue it arrives, takes turns so a busy
// queue does not hide another's frames, and gives each batch back to the
// queue it came from; it transmits on the first.
func TestFanIn(t *testing.T) {
	q0, q1 := newLoopPort(), newLoopPort()
	free0, free1 := len(q0.free), len(q1.free)
	send := func(p *loopPort, n int) {
		b := nic.NewBatch(n)
		p.Alloc(b, n)
		for i := range b.Frames[:n] {
			b.Frames[i] = b.Frames[i][:udpOff+8]
		}
		p.TxBurst(b)
	}
	send(q1, 3) // a loopPort receives what it sent
	send(q0, 2)
	f := FanIn([]nic.Port{q0, q1})
	b := nic.NewBatch(32)
	var got []int
	for range 4 {
		n := f.RxBurst(b)
		got = append(got, n)
		f.Free(b)
	}
	if got[0] != 2 || got[1] != 3 || got[2] != 0 || got[3] != 0 {
		t.Fatalf("bursts %v, want 2 from the first queue, then 3 from the second, then nothing", got)
	}
	if len(q0.free) != free0 || len(q1.free) != free1 {
		t.Fatalf("free buffers %d/%d and %d/%d: a batch went back to the wrong queue", len(q0.free), free0, len(q1.free), free1)
	}
	if f.MAC().String() != q0.MAC().String() || f.(*fanIn).Port != nic.Port(q0) {
		t.Fatal("the fan-in does not transmit on its first queue")
	}
	if (Queues{Queues: []nic.Port{q0}}).ARPPort() != nic.Port(q0) {
		t.Fatal("one queue is resolved on directly")
	}
}
