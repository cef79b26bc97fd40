package local

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netnsDir is where named namespaces are bind-mounted, the same place
// `ip netns` uses, so `ip netns list/exec` see ours.
const netnsDir = "/run/netns"

// inThread runs fn on a fresh OS thread that is thrown away afterwards.
//
// A namespace switch (setns) applies to one thread only. Go moves
// goroutines between threads, so fn must run on a locked thread; and since
// a thread whose namespace we changed must never go back to the scheduler
// (other goroutines would silently run in the wrong namespace), the
// goroutine exits while still locked, which makes the runtime terminate
// the thread. That is safer than switching back, which can fail.
func inThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread on purpose: see above.
		errc <- fn()
	}()
	return <-errc
}

// InNetns runs fn on an OS thread that has joined the named namespace.
// Sockets opened by fn stay in that namespace and may be used from any
// goroutine afterwards; anything thread-bound (the namespace itself) does
// not leak out of fn.
func InNetns(name string, fn func() error) error {
	return inThread(func() error {
		ns, err := netns.GetFromName(name)
		if err != nil {
			return fmt.Errorf("open netns %s: %w", name, err)
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			return fmt.Errorf("enter netns %s: %w", name, err)
		}
		return fn()
	})
}

// prepareNetnsDir makes /run/netns a shared mount point, as `ip netns add`
// does. Our namespaces are kept alive by bind mounts in that directory;
// with shared propagation, a mount namespace created later (every
// `ip netns exec` makes one) sees our unmount on delete instead of keeping
// a private copy of the mount that pins the namespace until it exits.
func prepareNetnsDir() error {
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", netnsDir, err)
	}
	err := unix.Mount("", netnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("make %s shared: %w", netnsDir, err)
	}
	// EINVAL: not a mount point yet. Bind it onto itself, then retry.
	if err := unix.Mount(netnsDir, netnsDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind-mount %s onto itself: %w", netnsDir, err)
	}
	if err := unix.Mount("", netnsDir, "none", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make %s shared: %w", netnsDir, err)
	}
	return nil
}

// netnsExists reports whether a named namespace is present.
func netnsExists(name string) bool {
	_, err := os.Lstat(filepath.Join(netnsDir, name))
	return err == nil
}

// createNetns creates and names a new network namespace. It never
// changes the caller's namespace.
func createNetns(name string) error {
	return inThread(func() error {
		// NewNamed unshares this (throw-away) thread into the new
		// namespace and bind-mounts it at /run/netns/<name>; O_EXCL there
		// makes an existing namespace of the same name an error.
		ns, err := netns.NewNamed(name)
		if err != nil {
			// NewNamed can leave an empty placeholder file behind when
			// the bind mount fails; remove it unless it is mounted.
			p := filepath.Join(netnsDir, name)
			if !errors.Is(err, os.ErrExist) && !isMountPoint(p) {
				_ = os.Remove(p)
			}
			return fmt.Errorf("create netns %s: %w", name, err)
		}
		return ns.Close()
	})
}

// deleteNetns removes a named namespace; missing is not an error. The
// kernel frees the namespace (and any veth end in it) once the last
// process and file descriptor inside it are gone.
func deleteNetns(name string) error {
	p := filepath.Join(netnsDir, name)
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil &&
		!errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount netns %s: %w", name, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove netns %s: %w", name, err)
	}
	return nil
}

// isMountPoint reports whether p is a mount point (a bound namespace).
func isMountPoint(p string) bool {
	var st, parent unix.Stat_t
	if unix.Lstat(p, &st) != nil || unix.Lstat(filepath.Dir(p), &parent) != nil {
		return false
	}
	// A nsfs bind mount lives on a different device than /run.
	return st.Dev != parent.Dev
}

// netnsPIDs lists the processes whose network namespace is the named one (as
// `ip netns pids` does: by the namespace file's device and inode).
func netnsPIDs(name string) []int {
	var want unix.Stat_t
	if err := unix.Stat(filepath.Join(netnsDir, name), &want); err != nil {
		return nil
	}
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(filepath.Join("/proc", e.Name(), "ns", "net"), &st) == nil && st.Dev == want.Dev && st.Ino == want.Ino {
			pids = append(pids, pid)
		}
	}
	return pids
}

// stopNetnsProcesses ends the processes left in the named namespace: SIGTERM,
// then SIGKILL to those still there after grace. They can only be a
// testbed's own roles (jrapp, jrgen, joyrided, their children) orphaned by a
// runner that was killed: nothing else enters a jr-* namespace. Each is
// signalled only while it is still the process found in the namespace (same
// PID and start time), so a PID the kernel gave to another process meanwhile
// is left alone.
func stopNetnsProcesses(name string, grace time.Duration) []Process {
	var procs []Process
	for _, pid := range netnsPIDs(name) {
		if p, err := identify(pid); err == nil {
			procs = append(procs, p)
		}
	}
	for _, p := range procs {
		p.signal(unix.SIGTERM)
		p.signal(unix.SIGCONT) // a stopped process holds SIGTERM pending
	}
	deadline := time.Now().Add(grace)
	for len(netnsPIDs(name)) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	for _, pid := range netnsPIDs(name) {
		if p, err := identify(pid); err == nil {
			p.signal(unix.SIGKILL)
		}
	}
	return procs
}
