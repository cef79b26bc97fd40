package experiments

import (
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"
)

// The watchdog's rules, on a clock the test sets: a server silent for the
// grace while the load was on is stalled; one silent only after the load
// ended, or that never worked under it, is not; the generator is judged at
// the point's bound plus the grace, not when it has ended.
func TestWatchdogRules(t *testing.T) {
	t0 := time.Now()
	now := t0
	w := newWatchdog(4*time.Second, 2*time.Second)
	w.now = func() time.Time { return now }
	var killed []string
	role := func(name string, server, moved bool, lastMove time.Duration) {
		w.roles = append(w.roles, &watchedRole{name: name, server: server, moved: moved, lastMove: t0.Add(lastMove),
			kill: func() { killed = append(killed, name) }})
	}
	w.genStart = t0
	role("stopped", true, true, 1*time.Second)            // silent from 1 s on
	role("idle-after", true, true, 3500*time.Millisecond) // silent from 3.5 s: the load ends at 4.5 s
	role("never-worked", true, false, 0)
	role("jrgen", false, false, 1*time.Second) // a generator silent from 1 s
	loadEnd := t0.Add(4500 * time.Millisecond)
	now = t0.Add(9 * time.Second) // long after the load

	if got := w.killStalled(loadEnd, true); len(got) != 1 || got[0].name != "stopped" {
		t.Fatalf("at the end of the load killed %v", killed)
	}
	if s := w.roles[0].stalled; s != 3500*time.Millisecond {
		t.Errorf("stalled for %v, want the silence up to the load's end (3.5 s)", s)
	}
	w.killStalled(loadEnd, false)
	if !slices.Equal(killed, []string{"stopped", "jrgen"}) {
		t.Errorf("killed %v, want stopped then jrgen", killed)
	}
	// Killed once only.
	w.killStalled(loadEnd, false)
	if len(killed) != 2 {
		t.Errorf("killed again: %v", killed)
	}
}

// Progress is counted over a process and its children: a shell waiting for
// a busy child moves because the child does; a stopped one does not.
func TestProgressCountsChildren(t *testing.T) {
	cmd := exec.Command("sh", "-c", "while :; do :; done & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // the spinner is ended with its shell
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	}()
	time.Sleep(100 * time.Millisecond)
	a, ok := progressOf(cmd.Process.Pid)
	time.Sleep(300 * time.Millisecond)
	b, _ := progressOf(cmd.Process.Pid)
	if !ok || b[0]-a[0] < uint64(50*time.Millisecond) {
		t.Errorf("a shell whose child spins: %v then %v", a, b)
	}
	if _, ok := progressOf(1 << 30); ok {
		t.Error("progress of a process that does not exist")
	}
}
