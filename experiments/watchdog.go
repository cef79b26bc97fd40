package experiments

// A point's watchdog: the roles of a point (the generator, the server's
// application instances, the stack's daemon) are sampled for progress while
// the load runs, and a role that stops making progress is killed, so that one
// stopped or deadlocked process fails its point, with the reason and what it
// measured, instead of holding up the run.
//
// Progress is what the kernel counts for every thread of the role and of its
// children (memcached under jrapp, say): CPU time and the number of times a
// thread was scheduled (/proc/<pid>/task/<tid>/schedstat). A process that
// answers requests, spins or wakes on a timer moves them; a stopped
// (SIGSTOP), frozen or blocked-forever one does not. An idle server moves
// nothing either, which is why a server only counts as stalled once it made
// progress under the point's load and then none for the grace.
//
// The rules:
//   - a server that made progress after the generator started and then none
//     for stallGrace while the load was still offered (until the load's end
//     as the generator reports it, or the generator's start plus the
//     point's bound, which is earlier) is killed when the generator ends: it
//     would not answer SIGTERM (a stopped process holds it pending), and a
//     server idle only after the load is not stalled;
//   - at the point's bound (warmup + duration) plus stallGrace after the
//     generator started, if the generator still runs, a server stalled as
//     above, and the generator itself if it made no progress for stallGrace,
//     are killed: a stalled server frees a generator waiting on it, a stalled
//     generator fails the point at once instead of at its hard time bound.
//
// Only the local testbed's roles are watched: on an SSH testbed the roles'
// processes are on other machines, where the role's script has its own
// watchdog and the generator its time bound.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// stallGrace is how long a role may go without progress under load before
// the watchdog kills it. Every role of a healthy point moves its counters
// many times a second (a request every few ms at the lowest rates of the
// shipped experiments, the generator spinning); the longest vCPU stalls seen
// on the VMs this runs on are a few ms. 2 s is far beyond both, and short
// enough for a test to see it happen within a point of a few seconds.
const stallGrace = 2 * time.Second

// watchInterval is how often the watchdog samples the roles.
const watchInterval = 250 * time.Millisecond

// progressOf sums the CPU time and scheduling counts of every thread of pid
// and of its descendants; ok is false when pid is gone.
func progressOf(pid int) (progress [2]uint64, ok bool) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	if err != nil || len(tasks) == 0 {
		return progress, false
	}
	for _, task := range tasks {
		if b, err := os.ReadFile(filepath.Join(task, "schedstat")); err == nil {
			// "<ns on cpu> <ns waiting> <timeslices>"
			if f := strings.Fields(string(b)); len(f) == 3 {
				run, _ := strconv.ParseUint(f[0], 10, 64)
				slices, _ := strconv.ParseUint(f[2], 10, 64)
				progress[0] += run
				progress[1] += slices
			}
		}
		b, _ := os.ReadFile(filepath.Join(task, "children"))
		for _, c := range strings.Fields(string(b)) {
			if child, err := strconv.Atoi(c); err == nil {
				if p, ok := progressOf(child); ok {
					progress[0] += p[0]
					progress[1] += p[1]
				}
			}
		}
	}
	return progress, true
}

// descendants lists the children of pid, their children, and so on.
func descendants(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	for _, task := range tasks {
		b, _ := os.ReadFile(filepath.Join(task, "children"))
		for _, c := range strings.Fields(string(b)) {
			if child, err := strconv.Atoi(c); err == nil {
				out = append(out, child)
				out = append(out, descendants(child)...)
			}
		}
	}
	return out
}

// watchedRole is one role under the watchdog.
type watchedRole struct {
	name   string // the process's binary: jrgen, jrapp, joyrided
	server bool
	pid    int
	kill   func() // ends it at once (SIGKILL) and waits until it is gone

	last     [2]uint64
	lastMove time.Time
	// moved is whether its counters moved since the generator started (a
	// server that never worked under the load is idle, not stalled).
	moved bool
	// stalled is how long it had gone without progress when the watchdog
	// killed it (0: not killed).
	stalled time.Duration
}

// watchdog watches one point's roles.
type watchdog struct {
	grace time.Duration
	bound time.Duration // the point's load: warmup + duration
	// now is the clock (tests of the rules set it).
	now func() time.Time

	mu       sync.Mutex
	roles    []*watchedRole
	genStart time.Time // zero until the generator starts
	stop     chan struct{}
	done     chan struct{}
}

func newWatchdog(bound, grace time.Duration) *watchdog {
	return &watchdog{grace: grace, bound: bound, now: time.Now, stop: make(chan struct{}), done: make(chan struct{})}
}

// watchServer puts a local server-side process under the watchdog (a remote
// one has no local PID: not watched).
func (w *watchdog) watchServer(name string, s *server) {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	w.add(&watchedRole{name: name, server: true, pid: s.cmd.Process.Pid, kill: s.killStalled})
}

// watchGenerator is called with the generator's PID once it started (the
// local site's runClient, through the context): the load and the sampling
// begin.
func (w *watchdog) watchGenerator(pid int) {
	w.mu.Lock()
	w.genStart = w.now()
	for _, r := range w.roles {
		r.moved, r.lastMove = false, w.genStart
	}
	w.mu.Unlock()
	w.add(&watchedRole{name: "jrgen", pid: pid, kill: func() { killPID(pid) }})
	go w.loop()
}

func (w *watchdog) add(r *watchedRole) {
	w.mu.Lock()
	defer w.mu.Unlock()
	r.last, _ = progressOf(r.pid)
	r.lastMove = w.now()
	w.roles = append(w.roles, r)
}

func (w *watchdog) loop() {
	defer close(w.done)
	t := time.NewTicker(watchInterval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			w.sample()
			w.mu.Lock()
			// The load has surely been on until the generator's start plus
			// the bound (it starts sending after its own start-up).
			loadEnd := w.genStart.Add(w.bound)
			late := w.now().After(loadEnd.Add(w.grace))
			w.mu.Unlock()
			if late {
				w.killStalled(loadEnd, false)
			}
		}
	}
}

// sample reads every role's counters.
func (w *watchdog) sample() {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	for _, r := range w.roles {
		p, ok := progressOf(r.pid)
		if ok && p != r.last {
			r.last, r.lastMove = p, now
			if !w.genStart.IsZero() {
				r.moved = true
			}
		}
	}
}

// killStalled kills the roles that stalled as of now: the servers silent
// for the grace before loadEnd, and (unless serversOnly: the generator has
// exited) the generator silent for the grace. It returns what it killed
// this time.
func (w *watchdog) killStalled(loadEnd time.Time, serversOnly bool) []*watchedRole {
	w.mu.Lock()
	now := w.now()
	var victims []*watchedRole
	for _, r := range w.roles {
		if r.stalled > 0 {
			continue
		}
		until := now
		switch {
		case r.server && !r.moved:
			continue // idle, never worked under the load
		case r.server && loadEnd.Before(now):
			until = loadEnd // silence after the load is not a stall
		case !r.server && serversOnly:
			continue
		}
		idle := until.Sub(r.lastMove)
		if idle < w.grace {
			continue
		}
		r.stalled = idle
		victims = append(victims, r)
	}
	w.mu.Unlock()
	for _, r := range victims {
		r.kill()
	}
	return victims
}

// generatorEnded stops the sampling once the generator has exited, kills
// the servers that stalled under the load, and returns every role the
// watchdog killed during the point. loadEnd is when the generator says its
// load ended (zero when it did not say: its start plus the point's bound is
// used).
func (w *watchdog) generatorEnded(loadEnd time.Time) []*watchedRole {
	w.mu.Lock()
	started := !w.genStart.IsZero()
	if started && (loadEnd.IsZero() || loadEnd.Before(w.genStart)) {
		loadEnd = w.genStart.Add(w.bound)
	}
	w.mu.Unlock()
	if started {
		close(w.stop)
		<-w.done
		w.sample()
		w.killStalled(loadEnd, true)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var killed []*watchedRole
	for _, r := range w.roles {
		if r.stalled > 0 {
			killed = append(killed, r)
		}
	}
	return killed
}

// stallReason is a point's failure when the watchdog killed roles in it.
func stallReason(killed []*watchedRole) error {
	var why []string
	for _, r := range killed {
		who := "server"
		if !r.server {
			who = "generator"
		}
		s := fmt.Sprintf("%s stopped making progress for %.1fs: %s (pid %d) killed by the point's watchdog", who, r.stalled.Seconds(), r.name, r.pid)
		if !r.server {
			s += " (no histogram: jrgen writes its log when it ends)"
		}
		why = append(why, s)
	}
	return fmt.Errorf("%s", strings.Join(why, "; "))
}

// killPID ends a process the runner started (the generator) at once.
func killPID(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		p.Kill()
	}
}

type clientWatchKey struct{}

// withClientWatch makes the local site's runClient report the PID of the
// client-side process it starts (the generator) to watch.
func withClientWatch(ctx context.Context, watch func(pid int)) context.Context {
	return context.WithValue(ctx, clientWatchKey{}, watch)
}

// clientWatch is the function withClientWatch put in ctx, or nil.
func clientWatch(ctx context.Context) func(pid int) {
	f, _ := ctx.Value(clientWatchKey{}).(func(pid int))
	return f
}
