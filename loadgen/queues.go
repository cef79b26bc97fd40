package loadgen

import (
	"github.com/joyride-bench/joyride/nic"
	"github.com/joyride-bench/joyride/nic/arp"
)

// Queues is where a UDP point runs: the queues of the generator's ports, and
// the cpus of their engines. With one queue and no cpus the point is Run's
// (one engine, on the calling goroutine); otherwise RunMulti's, engine i on
// Queues[i], pinned to CPUs[i].
type Queues struct {
	Queues []nic.Port
	CPUs   []int // one per queue, or none
}

// ARPPort is the port to resolve the server's MAC on before the engines
// start: the one queue, or every queue polled in turn (FanIn), since the
// server may answer ARP on any of them.
func (q Queues) ARPPort() nic.Port {
	if len(q.Queues) == 1 {
		return q.Queues[0]
	}
	return FanIn(q.Queues)
}

// Run offers the point on the queues (Run, or RunMulti when there are cpus
// or several queues).
func (q Queues) Run(resp *arp.Responder, cfg Config) (*Result, error) {
	if len(q.Queues) == 1 && len(q.CPUs) == 0 {
		return Run(q.Queues[0], resp, cfg)
	}
	return RunMulti(q.Queues, q.CPUs, resp, cfg)
}

// FanIn is a nic.Port that receives from every queue in turn and does the
// rest (transmit, MAC, features, ...) on the first: a way for one goroutine to
// hear a reply whichever queue it lands on, such as ARP resolution before the
// engines of RunMulti start. It must not be used while they run (each queue
// has one poller).
func FanIn(queues []nic.Port) nic.Port {
	return &fanIn{Port: queues[0], queues: queues}
}

type fanIn struct {
	nic.Port   // the first queue
	queues     []nic.Port
	next, last int // the queue to poll next; the one that filled the batch
}

func (f *fanIn) RxBurst(b *nic.Batch) int {
	for range f.queues {
		q := f.next
		f.next = (f.next + 1) % len(f.queues)
		if n := f.queues[q].RxBurst(b); n > 0 {
			f.last = q
			return n
		}
	}
	return 0
}

// Free gives a received batch back to the queue it came from.
func (f *fanIn) Free(b *nic.Batch) { f.queues[f.last].Free(b) }
