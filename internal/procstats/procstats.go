// Package procstats lets a harness ask a running Go server (jrapp, joyrided)
// for what only the process itself knows: its goroutines and Go heap. The
// server calls Report at start; each SIGUSR1 then makes it print one line
//
//	PROCSTATS {"goroutines":12,"heap_kib":3456}
//
// on its standard output, which the runner already reads. /proc gives memory,
// descriptors and threads from outside, but a goroutine leak (a goroutine per
// connection never ended) shows only here, long before it shows in memory.
//
// From outside, the package is also the one reader of /proc/stat (ReadCPU):
// one definition of a busy CPU (user, nice, system, irq, softirq) for every
// number the harness reports, with the time the hypervisor stole counted
// apart, neither busy nor idle.
package procstats

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
)

// Prefix starts every report line.
const Prefix = "PROCSTATS "

// Stats is one report.
type Stats struct {
	Goroutines int   `json:"goroutines"`
	HeapKiB    int64 `json:"heap_kib"`
}

// Take reads the calling process's numbers.
func Take() Stats {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return Stats{Goroutines: runtime.NumGoroutine(), HeapKiB: int64(m.HeapAlloc >> 10)}
}

// Report prints a Stats line on w at every SIGUSR1 for the life of the
// process. mu, when not nil, is held while printing, so that the line does not
// interleave with the caller's own output on w.
func Report(w io.Writer, mu *sync.Mutex) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	go func() {
		for range ch {
			b, _ := json.Marshal(Take())
			if mu != nil {
				mu.Lock()
			}
			fmt.Fprintf(w, "%s%s\n", Prefix, b)
			if mu != nil {
				mu.Unlock()
			}
		}
	}()
}

// Parse reads a report line (with or without its prefix).
func Parse(line string) (Stats, error) {
	var s Stats
	if len(line) >= len(Prefix) && line[:len(Prefix)] == Prefix {
		line = line[len(Prefix):]
	}
	err := json.Unmarshal([]byte(line), &s)
	return s, err
}
