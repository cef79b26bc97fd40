package local

import (
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// One process-wide handler serves every registered testbed, so that two
// testbeds in one process do not race each other to os.Exit before both
// are down.
var sigState struct {
	mu   sync.Mutex
	set  map[*Testbed]struct{}
	ch   chan os.Signal
	done chan struct{}
}

// CleanupOnSignal removes the testbed when the process gets SIGINT or
// SIGTERM, then exits with 130 or 143 (128+signal, the shell convention),
// so Ctrl-C never leaves namespaces behind. stop unregisters the testbed;
// once none is registered the default signal behaviour is restored.
func (t *Testbed) CleanupOnSignal() (stop func()) {
	sigState.mu.Lock()
	defer sigState.mu.Unlock()
	if sigState.set == nil {
		sigState.set = map[*Testbed]struct{}{}
	}
	sigState.set[t] = struct{}{}
	if sigState.ch == nil {
		ch := make(chan os.Signal, 1)
		done := make(chan struct{})
		sigState.ch, sigState.done = ch, done
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
		go sigLoop(ch, done)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			sigState.mu.Lock()
			defer sigState.mu.Unlock()
			delete(sigState.set, t)
			if len(sigState.set) == 0 && sigState.ch != nil {
				signal.Stop(sigState.ch)
				close(sigState.done)
				sigState.ch, sigState.done = nil, nil
			}
		})
	}
}

func sigLoop(ch chan os.Signal, done chan struct{}) {
	select {
	case <-done:
		return
	case sig := <-ch:
		// Keep the lock: no stop() or new registration may interfere
		// while we tear down and exit.
		sigState.mu.Lock()
		for t := range sigState.set {
			if err := t.Down(); err != nil {
				fmt.Fprintf(os.Stderr, "jrbench: cleanup of testbed %s on %v: %v\n", t.ID, sig, err)
			}
		}
		code := 130
		if sig == syscall.SIGTERM {
			code = 143
		}
		os.Exit(code)
	}
}
