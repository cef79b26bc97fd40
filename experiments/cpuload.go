package experiments

import (
	"sync"
	"time"

	"github.com/joyride-bench/joyride/internal/procstats"
)

// cpuSampler records, every interval, how busy a set of CPUs has been
// (procstats.ReadCPU: busy time against all of it, stolen time included in
// the whole but not in the busy part: a stack does no work while the
// hypervisor runs something else), so that the server side's CPU can be read afterwards over exactly the
// generator's measured span. It is what turns "Linux needs several cores where
// DPDK needs one" into a number: the server's busy cores at each load.
//
// On the local testbed the server's core is what its stack and application
// run on; part of a kernel stack's receive path runs on the sending core
// instead (veth delivers in the sender's softirq), so the kernel's figure
// here is a lower bound. On a real NIC interrupts land on server cores.
type cpuSampler struct {
	cpus    []int
	mu      sync.Mutex
	samples []cpuSample
	stop    chan struct{}
	done    chan struct{}
}

type cpuSample struct {
	at  time.Time
	cpu procstats.CPUTimes
}

// startCPUSampler samples cpus every interval until stopped.
func startCPUSampler(cpus []int, interval time.Duration) *cpuSampler {
	s := &cpuSampler{cpus: cpus, stop: make(chan struct{}), done: make(chan struct{})}
	s.take()
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				s.take()
				return
			case <-t.C:
				s.take()
			}
		}
	}()
	return s
}

func (s *cpuSampler) take() {
	t, err := procstats.ReadCPU(s.cpus...)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.samples = append(s.samples, cpuSample{time.Now(), t})
	s.mu.Unlock()
}

// Stop ends the sampling (with a last sample).
func (s *cpuSampler) Stop() {
	close(s.stop)
	<-s.done
}

// Busy returns the CPUs' busy time over [from, to] in cores (1.0 = one core
// fully busy), from the samples closest inside the window; false when the
// window holds fewer than two samples.
func (s *cpuSampler) Busy(from, to time.Time) (float64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	first, last := -1, -1
	for i, x := range s.samples {
		if x.at.Before(from) || x.at.After(to) {
			continue
		}
		if first < 0 {
			first = i
		}
		last = i
	}
	if first < 0 || last <= first {
		return 0, false
	}
	d := s.samples[last].cpu.Sub(s.samples[first].cpu)
	if d.Total() <= 0 {
		return 0, false
	}
	// Total counts every state of every sampled CPU: busy/total is the busy
	// share of all of them; times their number gives cores.
	return d.Busy.Seconds() / d.Total().Seconds() * float64(len(s.cpus)), true
}
