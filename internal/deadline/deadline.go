// Package deadline is a read or write deadline for a connection implemented
// above the kernel (a user-space stack's net.Conn): a channel closed when the
// deadline passes, so a blocked call selects on it next to its wake-up, and
// moving the deadline while a call is blocked takes effect at once, as with
// the standard library's connections.
package deadline

import (
	"sync"
	"time"
)

// Deadline is one read or write deadline: a channel that is closed when the
// deadline passes, replaced by an open one when the deadline is moved again.
// Blocked calls select on Wait() alongside their wake-up. Init it before use.
type Deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	gen    uint64        // bumped by every set, so a stale timer does nothing
	cancel chan struct{} // closed when the deadline has passed
}

func (d *Deadline) Init() { d.cancel = make(chan struct{}) }

// Set moves the deadline to t; the zero time means none.
func (d *Deadline) Set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	d.gen++
	if isClosed(d.cancel) {
		d.cancel = make(chan struct{})
	}
	if t.IsZero() {
		return
	}
	dur := time.Until(t)
	if dur <= 0 {
		close(d.cancel)
		return
	}
	gen, ch := d.gen, d.cancel
	d.timer = time.AfterFunc(dur, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.gen == gen {
			close(ch)
		}
	})
}

// Wait returns a channel that is closed when the deadline passes.
func (d *Deadline) Wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

// Passed says whether the deadline has passed.
func (d *Deadline) Passed() bool { return isClosed(d.Wait()) }

// Stop releases the timer.
func (d *Deadline) Stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	d.gen++
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
