package local

// Who made a testbed and what it started in it, recorded next to its state
// file, so that a later process can tell a testbed in use from one left by a
// runner that was killed, and end exactly the processes that runner started.
//
// A PID alone does not name a process: once it exits the kernel may give the
// number to another. A PID together with the process's start time (field 22
// of /proc/<pid>/stat, clock ticks since boot) does, for as long as the
// machine is up, so every record carries both and nothing is signalled whose
// start time differs.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Process identifies one process: its PID and its start time.
type Process struct {
	PID int `json:"pid"`
	// Start is the process's start time in clock ticks after boot.
	Start uint64 `json:"start"`
}

// Owner is the process that made a testbed and removes it when done (a run,
// a test); nil for a testbed made to outlive its maker (Options.Detached).
type Owner struct {
	Process
	Command string `json:"command"`
}

// StartedProcess is a process started in a testbed through Start.
type StartedProcess struct {
	Process
	// Netns is the namespace it was started in.
	Netns string `json:"netns"`
	// Argv is its command line as started (ip netns exec ...).
	Argv []string `json:"argv"`
	// FilePrefix is the DPDK --file-prefix it was given, if any: its EAL
	// runtime directory is /var/run/dpdk/<FilePrefix>.
	FilePrefix string `json:"file_prefix,omitempty"`
}

// processStart reads a process's start time; an error when there is no such
// process.
func processStart(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces or
	// parentheses itself: the fields after it start after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); start time is field 22.
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// identify returns pid's identity now.
func identify(pid int) (Process, error) {
	st, err := processStart(pid)
	return Process{PID: pid, Start: st}, err
}

// Alive reports whether the process still runs: the same PID with the same
// start time (a reused PID is another process). A zombie counts as gone.
func (p Process) Alive() bool {
	if p.PID <= 0 {
		return false
	}
	st, err := processStart(p.PID)
	if err != nil || st != p.Start {
		return false
	}
	state, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.PID))
	s := string(state)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && strings.HasPrefix(strings.TrimSpace(s[i+1:]), "Z") {
		return false
	}
	return true
}

// signal sends sig to the process if it is still the same one.
func (p Process) signal(sig unix.Signal) {
	if p.Alive() {
		unix.Kill(p.PID, sig)
	}
}

// currentOwner is this process as a testbed's owner.
func currentOwner() *Owner {
	p, err := identify(os.Getpid())
	if err != nil {
		return nil
	}
	cmdline, _ := os.ReadFile("/proc/self/cmdline")
	cmd := strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))
	if len(cmd) > 200 {
		cmd = cmd[:200] + "..."
	}
	return &Owner{Process: p, Command: cmd}
}

// Abandoned reports whether the testbed was made by a process that is gone
// without removing it (a run killed with SIGKILL, a crashed test): nobody
// will clean it but `jrbench testbed down`. A detached testbed (no owner) is
// never abandoned.
func (t *Testbed) Abandoned() bool { return t.Owner != nil && !t.Owner.Alive() }

func procsPath(id string) string { return filepath.Join(StateDir, id+".procs") }

// Start starts cmd, a process for the testbed (one of its namespaces' roles,
// made by Command or CommandWithBPFFS, or a helper of the run outside them),
// and records it in the testbed's process list (StateDir/<id>.procs, one
// JSON object a line), so that DownID can end it by PID if the process that
// started it dies first. A record that cannot
// be written is an error, and the process is killed: a role nobody could
// clean up after must not run.
func (t *Testbed) Start(cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	p, err := identify(cmd.Process.Pid)
	if err != nil {
		// Already gone: nothing to record (Wait will say how it ended).
		return nil
	}
	rec := StartedProcess{Process: p, Argv: cmd.Args, Netns: netnsOfArgs(cmd.Args), FilePrefix: filePrefixOfArgs(cmd.Args)}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := appendLine(procsPath(t.ID), b); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return fmt.Errorf("record process %d of testbed %s: %w", p.PID, t.ID, err)
	}
	return nil
}

// appendLine adds one line to a file with a single O_APPEND write: whole
// lines, even from several goroutines or processes at once.
func appendLine(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	_, werr := f.Write(append(b, '\n'))
	return errors.Join(werr, f.Close())
}

// netnsOfArgs is the namespace of an `ip netns exec NS ...` command line.
func netnsOfArgs(argv []string) string {
	for i := 0; i+3 < len(argv); i++ {
		if argv[i+1] == "netns" && argv[i+2] == "exec" {
			return argv[i+3]
		}
	}
	return ""
}

// filePrefixOfArgs is the value of a -file-prefix / --file-prefix argument.
func filePrefixOfArgs(argv []string) string {
	for i, a := range argv {
		for _, flag := range []string{"-file-prefix", "--file-prefix"} {
			if a == flag && i+1 < len(argv) {
				return argv[i+1]
			}
			if v, ok := strings.CutPrefix(a, flag+"="); ok {
				return v
			}
		}
	}
	return ""
}

// Processes lists what Start recorded for the testbed (an empty list when
// nothing was), whether still running or not.
func (t *Testbed) Processes() ([]StartedProcess, error) {
	f, err := os.Open(procsPath(t.ID))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []StartedProcess
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var p StartedProcess
		if json.Unmarshal(sc.Bytes(), &p) == nil && p.PID > 0 {
			out = append(out, p)
		}
	}
	return out, sc.Err()
}

// Running lists the recorded processes that still run.
func (t *Testbed) Running() []StartedProcess {
	ps, _ := t.Processes()
	var live []StartedProcess
	for _, p := range ps {
		if p.Alive() {
			live = append(live, p)
		}
	}
	return live
}

// stopRecorded ends the recorded processes that still run, each checked to be
// the process recorded: SIGTERM, then SIGKILL to those left after grace.
// It returns those it signalled.
func (t *Testbed) stopRecorded(grace time.Duration) []StartedProcess {
	live := t.Running()
	for _, p := range live {
		// SIGCONT too: a stopped process would hold SIGTERM pending.
		p.signal(unix.SIGTERM)
		p.signal(unix.SIGCONT)
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		left := 0
		for _, p := range live {
			if p.Alive() {
				left++
			}
		}
		if left == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, p := range live {
		p.signal(unix.SIGKILL)
	}
	return live
}
