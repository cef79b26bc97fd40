package joyride

import (
	"sync"
	"time"
)

// deadline is one read or write deadline: a channel that is closed when the
// deadline passes, replaced by an open one when the deadline is moved again.
// Blocked calls select on wait() alongside their wake-up, so moving a deadline
// while a call is blocked takes effect at once (as with the standard library's
// connections).
type deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	gen    uint64        // bumped by every set, so a stale timer does nothing
	cancel chan struct{} // closed when the deadline has passed
}

func (d *deadline) init() { d.cancel = make(chan struct{}) }

// set moves the deadline to t; the zero time means none.
func (d *deadline) set(t time.Time) {
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

// wait returns a channel that is closed when the deadline passes.
func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

// passed says whether the deadline has passed.
func (d *deadline) passed() bool { return isClosed(d.wait()) }

// stop releases the timer.
func (d *deadline) stop() {
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
