package experiments

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// cpuSampler records, every interval, how busy a set of CPUs has been
// (/proc/stat: user, nice, system, irq, softirq and steal ticks against the
// total), so that the server side's CPU can be read afterwards over exactly the
// generator's measured span. It is what turns "Linux needs several cores where
// DPDK needs one" into a number: the server's busy cores at each load.
//
// On the local testbed the server's core is what its stack and application
// run on; part of a kernel stack's receive path runs on the sending core
// instead (veth delivers in the sender's softirq), so the kernel's figure
// here is a lower bound. On a real NIC interrupts land on server cores.
type cpuSampler struct {
	cpus    map[string]bool // "cpu0", ...
	mu      sync.Mutex
	samples []cpuSample
	stop    chan struct{}
	done    chan struct{}
}

type cpuSample struct {
	at          time.Time
	busy, total uint64
}

// startCPUSampler samples cpus every interval until stopped.
func startCPUSampler(cpus []int, interval time.Duration) *cpuSampler {
	s := &cpuSampler{cpus: map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	for _, c := range cpus {
		s.cpus["cpu"+strconv.Itoa(c)] = true
	}
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
	busy, total, ok := readCPUTicks(s.cpus)
	if !ok {
		return
	}
	s.mu.Lock()
	s.samples = append(s.samples, cpuSample{time.Now(), busy, total})
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
	a, b := s.samples[first], s.samples[last]
	if b.total <= a.total {
		return 0, false
	}
	// total counts every state of every sampled CPU: busy/total is the busy
	// share of all of them; times their number gives cores.
	return float64(b.busy-a.busy) / float64(b.total-a.total) * float64(len(s.cpus)), true
}

// readCPUTicks sums the busy and total ticks of the named CPUs.
func readCPUTicks(cpus map[string]bool) (busy, total uint64, ok bool) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	found := 0
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 9 || !cpus[fields[0]] {
			continue
		}
		found++
		// user nice system idle iowait irq softirq steal
		var v [8]uint64
		for i := range v {
			v[i], _ = strconv.ParseUint(fields[1+i], 10, 64)
		}
		b := v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
		busy += b
		total += b + v[3] + v[4]
	}
	return busy, total, found == len(cpus)
}
