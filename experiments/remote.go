package experiments

// Running an experiment's roles on the nodes of a testbed file, over SSH
// (testbed/ssh): the sshSite behind the runner's site seam (site.go).
//
// Per run and node: a private work directory (/tmp/jrbench-<run id>-<node>),
// the binaries the node's roles need copied there, and at the end every
// process still recorded there killed and the directory removed. Per role: one
// SSH session running roleScript, which starts the role in the background
// pinned to its cores, records its PID on the node, streams its output back
// and exits with its status; a watchdog in the same script stops the role
// when the session's standard input closes, which is how a dropped connection
// (or a jrbench killed outright) stops the roles it left behind.

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/joyride-bench/joyride/stacks"
	"github.com/joyride-bench/joyride/testbed/spec"
	"github.com/joyride-bench/joyride/testbed/ssh"
)

// RemoteTestbed is meta.json's record of a run on a testbed file's SSH nodes.
type RemoteTestbed struct {
	Remote  bool          `json:"remote"` // always true: the roles ran on other machines
	Testbed *spec.Testbed `json:"testbed"`
	// WorkDirs is each node's work directory (removed at the end of the run).
	WorkDirs map[string]string `json:"work_dirs,omitempty"`
	// GeneratorNIC is the client node's port as jrgen attached it.
	GeneratorNIC string `json:"generator_nic"`
	// NotMeasured is what a local run records and this one leaves empty: it
	// would need this machine's kernel (PM QoS, /proc/stat) or the local
	// testbed's wire.
	NotMeasured []string `json:"not_measured"`
}

// notMeasuredRemotely lists what a run over SSH leaves out, for meta.json and
// report.md.
var notMeasuredRemotely = []string{
	"the calibration's vCPU stall probe (a thread spinning on this machine's cores) and its kernel round trip without PM QoS (the nodes' request is held for the whole run)",
	"server_cores, cpu_us_per_req: sampled from this machine's /proc/stat only",
}

func newRemoteTestbed(tb *spec.Testbed) *RemoteTestbed {
	nic := ""
	if c := tb.Node(spec.RoleClient); c != nil {
		if c.NIC.PCI != "" {
			nic = "pci " + c.NIC.PCI
		} else {
			nic, _, _ = vdevDriver(c.NIC.Vdev)
		}
	}
	return &RemoteTestbed{Remote: true, Testbed: tb, GeneratorNIC: nic, NotMeasured: notMeasuredRemotely}
}

// checkRemote refuses what a run over SSH cannot do, before anything starts,
// and places the roles on the nodes' cores when o has no placement.
func checkRemote(e *Experiment, o *RunOptions) error {
	tb := o.Testbed
	if e.Link != "" {
		return fmt.Errorf("experiment %s has link: %q: the emulated wire runs between the local testbed's namespaces only; on testbed %s the wire is the nodes' real link (remove link: or run on the local testbed)", e.Name, e.Link, tb.Name)
	}
	client, server := tb.Node(spec.RoleClient), tb.Node(spec.RoleServer)
	if client == nil || server == nil {
		return fmt.Errorf("testbed %s needs a node with role client and one with role server", tb.Name)
	}
	for _, n := range []*spec.Node{client, server} {
		if n.SSH == nil {
			return fmt.Errorf("testbed %s: node %s has no ssh: the runner reaches a testbed file's nodes over SSH only (netns nodes: use the built-in local testbed)", tb.Name, n.Name)
		}
		if _, err := nodeEnd(*n, n == server); err != nil {
			return fmt.Errorf("testbed %s: node %s: %w", tb.Name, n.Name, err)
		}
	}
	if server.NIC.PCI != "" {
		for _, s := range e.Stacks {
			if err := stacks.Require(s.Name, stacks.PCIDevice); err != nil {
				return fmt.Errorf("testbed %s: node %s has a PCI NIC: %w", tb.Name, server.Name, err)
			}
		}
	}
	if o.Placement == nil {
		p := DefaultPlacement
		if len(server.Cores) > 0 {
			p.Server = server.Cores[0]
		}
		switch {
		case client.Name == server.Name && len(client.Cores) > 1:
			p.Generator = client.Cores[1]
		case client.Name != server.Name && len(client.Cores) > 0:
			p.Generator = client.Cores[0]
		}
		o.Placement = &p
	}
	if len(o.Placement.GeneratorExtra) > 0 {
		return errors.New("extra generator cores need the local testbed's multi-queue veth; on an SSH testbed the generator runs one engine")
	}
	return nil
}

// vdevDriver reads a testbed file's vdev (net_af_xdp0,iface=eth1): the
// roles' -driver and -iface. They build their vdev over the interface
// themselves (as on the local testbed), so only af_xdp and af_packet over an
// iface, with no other argument, can be honoured.
func vdevDriver(vdev string) (driver, iface string, err error) {
	parts := strings.Split(vdev, ",")
	name := strings.TrimRight(strings.TrimPrefix(parts[0], "net_"), "0123456789")
	if name != "af_xdp" && name != "af_packet" {
		return "", "", fmt.Errorf("vdev %q: the roles open af_xdp or af_packet vdevs over an interface (net_af_xdp0,iface=X or net_af_packet0,iface=X), not %s", vdev, parts[0])
	}
	for _, kv := range parts[1:] {
		v, ok := strings.CutPrefix(kv, "iface=")
		if !ok {
			return "", "", fmt.Errorf("vdev %q: argument %q is not passed on (the roles build their vdev from iface= alone)", vdev, kv)
		}
		iface = v
	}
	if iface == "" {
		return "", "", fmt.Errorf("vdev %q has no iface=", vdev)
	}
	return name, iface, nil
}

// nodeEnd is a node's end of the wire, as the roles attach it.
func nodeEnd(n spec.Node, server bool) (dataEnd, error) {
	e := dataEnd{Iface: n.NIC.Iface, Addr: n.IP}
	if n.NIC.PCI != "" {
		dev := n.NIC.Device()
		// jrgen wants -iface even with -pci (it then only names the port).
		e.GenArgs = []string{"-pci", dev, "-iface", cmp.Or(n.NIC.Iface, n.NIC.PCI)}
		// joyrided too takes the PMD arguments (it names its port by the
		// bare address).
		e.DaemonArgs = []string{"-pci", dev}
		return e, nil
	}
	driver, iface, err := vdevDriver(n.NIC.Vdev)
	if err != nil {
		return e, err
	}
	e.Iface = iface
	e.GenArgs = []string{"-driver", driver, "-iface", iface}
	if server {
		e.DaemonArgs = []string{"-driver", driver}
	}
	return e, nil
}

// Bounds of the SSH operations around the roles (the roles' own run is
// bounded by the runner: READY within 30 s, the generator by its bound).
const (
	remoteCopyTimeout = 5 * time.Minute  // copying one binary to a node
	remoteOpTimeout   = 15 * time.Second // a signal, a sample, a listing
	remoteKillWait    = 30 * time.Second // a killed role's session to end
	remoteCleanupWait = 30 * time.Second // killing leftovers and removing the work dir
	// roleSessionLimit bounds a role's session as a last resort: a role
	// is stopped by the runner long before.
	roleSessionLimit = 24 * time.Hour
)

// sshNode is one node of the testbed, with its connection and work dir.
type sshNode struct {
	spec spec.Node
	cfg  ssh.Config
	c    *ssh.Client
	work string // private work directory on the node
	mu   sync.Mutex
	seq  int // numbers the roles' pid files and the generator's directories
}

// pmqosHolder is the command that holds a PM QoS request of 0 µs on a node
// for as long as it runs (the kernel drops the request when the descriptor
// closes), as testbed/pmqos does on this machine: an idle vCPU or core that
// halts adds its wake-up latency to every round trip (DESIGN.md §8).
var pmqosHolder = []string{"/bin/sh", "-c",
	`exec 4>/dev/cpu_dma_latency || exit 1; printf '\000\000\000\000' >&4 || exit 1; echo HELD; exec sleep 2147483647`}

// holdPMQoS starts the PM QoS holder on every node (stopped with the run's
// other roles by close); it fails when a node cannot hold it.
func (st *sshSite) holdPMQoS() error {
	for _, n := range st.nodes {
		held := make(chan struct{}, 1)
		var errOut strings.Builder
		rp, err := n.start(pmqosHolder[0], "", pmqosHolder[1:], func(l string) {
			if l == "HELD" {
				held <- struct{}{}
			}
		}, &errOut)
		if err != nil {
			return fmt.Errorf("node %s: PM QoS: %w", n.spec.Name, err)
		}
		select {
		case <-held:
			st.holders = append(st.holders, rp)
		case <-rp.done:
			return fmt.Errorf("node %s: PM QoS: /dev/cpu_dma_latency: %v %s", n.spec.Name, rp.err, strings.TrimSpace(errOut.String()))
		case <-time.After(remoteOpTimeout):
			rp.abandon()
			return fmt.Errorf("node %s: PM QoS: no answer within %v", n.spec.Name, remoteOpTimeout)
		}
	}
	return nil
}

// sshSite runs the roles on a testbed file's nodes.
type sshSite struct {
	holders        []*remoteProc // the nodes' PM QoS holders
	tb             *spec.Testbed
	runID          string // DPDK file prefixes and the server's run dir
	client, server *sshNode
	nodes          []*sshNode // each node once (one node may play both roles)
	cEnd, sEnd     dataEnd
}

// binariesFor lists what a node's roles run, as found in binDir.
func binariesFor(n spec.Node, binDir string) []string {
	var out []string
	if n.Has(spec.RoleClient) {
		out = append(out, "jrgen")
	}
	if n.Has(spec.RoleServer) {
		out = append(out, "jrapp")
		// Optional: what the registered stacks' server sides need beside
		// jrapp (Joyride's daemon and its preload shim).
		for _, name := range stacks.Names() {
			f, _ := stacks.Lookup(name)
			for _, b := range f.ServerFiles {
				if _, err := os.Stat(filepath.Join(binDir, b)); err == nil && !slices.Contains(out, b) {
					out = append(out, b)
				}
			}
		}
	}
	return out
}

// openSSHSite connects to every node, makes its work dir and copies the
// binaries there. On error, whatever it made is removed again.
func openSSHSite(ctx context.Context, tb *spec.Testbed, binDir, runID string, log io.Writer) (_ *sshSite, err error) {
	st := &sshSite{tb: tb, runID: randomHex(4)}
	defer func() {
		if err != nil {
			st.close()
		}
	}()
	byName := map[string]*sshNode{}
	for _, n := range tb.Nodes {
		if !n.Has(spec.RoleClient) && !n.Has(spec.RoleServer) {
			continue
		}
		s := n.SSH
		nd := &sshNode{spec: n, work: "/tmp/jrbench-" + runID + "-" + n.Name,
			cfg: ssh.Config{Addr: s.Addr(), User: s.User, KeyFile: s.Key, KnownHosts: s.KnownHosts, HostKeyPolicy: s.HostKeyPolicy}}
		if nd.c, err = ssh.Dial(ctx, nd.cfg); err != nil {
			return nil, fmt.Errorf("node %s: %w", n.Name, err)
		}
		st.nodes = append(st.nodes, nd)
		byName[n.Name] = nd
		// mkdir without -p: the directory is new, and private to this run.
		if _, err := nd.c.Run(ctx, "mkdir -m 700 "+ssh.Quote(nd.work)+" "+ssh.Quote(path.Join(nd.work, st.runID))); err != nil {
			nd.work = "" // not ours to remove
			return nil, fmt.Errorf("node %s: work directory: %w", n.Name, err)
		}
		for _, b := range binariesFor(n, binDir) {
			if log != nil {
				fmt.Fprintf(log, "copying %s to %s:%s\n", b, n.Name, nd.work)
			}
			cctx, cancel := context.WithTimeout(ctx, remoteCopyTimeout)
			err := nd.c.CopyFile(cctx, filepath.Join(binDir, b), path.Join(nd.work, b))
			cancel()
			if err != nil {
				return nil, fmt.Errorf("node %s: copy %s: %w", n.Name, b, err)
			}
		}
	}
	st.client = byName[tb.Node(spec.RoleClient).Name]
	st.server = byName[tb.Node(spec.RoleServer).Name]
	if st.cEnd, err = nodeEnd(st.client.spec, false); err != nil {
		return nil, err
	}
	if st.sEnd, err = nodeEnd(st.server.spec, true); err != nil {
		return nil, err
	}
	return st, nil
}

// workDirs names each node's work directory, for meta.json.
func (st *sshSite) workDirs() map[string]string {
	m := map[string]string{}
	for _, n := range st.nodes {
		m[n.spec.Name] = n.work
	}
	return m
}

// close kills whatever the run left on each node (every PID still recorded
// in its work dir), removes the work dir and the run's DPDK runtime
// directories, and disconnects. A connection that dropped is dialled again
// for this.
func (st *sshSite) close() error {
	var errs []error
	for _, n := range st.nodes {
		if n.work == "" {
			n.c.Close()
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), remoteCleanupWait)
		if n.c.Err() != nil {
			if c, err := ssh.Dial(ctx, n.cfg); err == nil {
				n.c = c
			}
		}
		w := ssh.Quote(n.work)
		cmd := "for f in " + w + "/*.pid; do [ -f \"$f\" ] && kill -KILL \"$(cat \"$f\")\" 2>/dev/null; done; " +
			"rm -rf " + w + " /var/run/dpdk/*-" + st.runID
		if _, err := n.c.Run(ctx, cmd); err != nil {
			errs = append(errs, fmt.Errorf("node %s: remove %s: %w", n.spec.Name, n.work, err))
		}
		cancel()
		n.c.Close()
	}
	return errors.Join(errs...)
}

func (st *sshSite) id() string              { return st.runID }
func (st *sshSite) serverEnd() dataEnd      { return st.sEnd }
func (st *sshSite) clientEnd() dataEnd      { return st.cEnd }
func (st *sshSite) runDir() (string, error) { return path.Join(st.server.work, st.runID), nil }

// cpuSampler: the server's cores are on another machine (notMeasuredRemotely).
func (st *sshSite) cpuSampler([]int) *cpuSampler {
	done := make(chan struct{})
	close(done)
	return &cpuSampler{stop: make(chan struct{}), done: done}
}

func (st *sshSite) readServerFile(ctx context.Context, p string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, remoteOpTimeout)
	defer cancel()
	res, err := st.server.c.Run(ctx, "cat "+ssh.Quote(p))
	if err != nil {
		return nil, fmt.Errorf("read %s on %s: %w", p, st.server.spec.Name, err)
	}
	return res.Stdout, nil
}

// stalls: the probe is a thread spinning on the measured core, which only
// this machine's cores can run (notMeasuredRemotely).
func (st *sshSite) stalls(time.Duration, ...int) []CPUStalls { return nil }

func (st *sshSite) startServer(ctx context.Context, binary string, cpu int, args ...string) (*server, error) {
	s := &server{exited: make(chan struct{}), stats: make(chan string, 1)}
	ready := make(chan struct{})
	rp, err := st.server.start(binary, strconv.Itoa(cpu), args, s.lineHandler(ready), &s.log)
	if err != nil {
		return nil, fmt.Errorf("start %s on %s: %w", binary, st.server.spec.Name, err)
	}
	s.remote = rp
	go func() {
		<-rp.done
		if rp.err != nil && !isExit(rp.err) {
			s.log.Write([]byte("(ssh: " + rp.err.Error() + ")\n"))
		}
		close(s.exited)
	}()
	return s.waitReady(ctx, ready)
}

// isExit reports whether err is the command's own exit status (not a failure
// of the connection).
func isExit(err error) bool {
	var ee *ssh.ExitError
	return errors.As(err, &ee)
}

func (st *sshSite) startTool(ctx context.Context, cpu int, argv ...string) (*server, error) {
	s := &server{exited: make(chan struct{})}
	rp, err := st.server.start(argv[0], strconv.Itoa(cpu), argv[1:], func(l string) { s.log.Write([]byte(l + "\n")) }, &s.log)
	if err != nil {
		return nil, fmt.Errorf("start %s on %s: %w", path.Base(argv[0]), st.server.spec.Name, err)
	}
	s.remote = rp
	go func() {
		<-rp.done
		close(s.exited)
	}()
	return s, nil
}

func (st *sshSite) runClient(ctx context.Context, binary, cpus string, args []string, fileFlag string) ([]byte, string, error) {
	n := st.client
	// The interval logs are written into a directory of the node's own and
	// copied back here afterwards (the TTFB log of a connect point too).
	args = slices.Clone(args)
	localHlog, remoteDir := "", ""
	if i := slices.Index(args, fileFlag); fileFlag != "" && i >= 0 && i+1 < len(args) && args[i+1] != "" {
		localHlog = args[i+1]
		remoteDir = path.Join(n.work, "gen-"+strconv.Itoa(n.next()))
		args[i+1] = path.Join(remoteDir, filepath.Base(localHlog))
		if _, err := n.c.Run(ctx, "mkdir "+ssh.Quote(remoteDir)); err != nil {
			return nil, "", err
		}
	}
	var out bytes.Buffer
	var stderr tail
	rp, err := n.start(binary, cpus, args, func(line string) { out.WriteString(line + "\n") }, &stderr)
	if err != nil {
		return nil, "", err
	}
	select {
	case <-rp.done:
	case <-ctx.Done():
		// As the local testbed's generator is cancelled: SIGTERM, and
		// SIGKILL if it has not gone within 5 s.
		rp.signal(syscall.SIGTERM)
		select {
		case <-rp.done:
		case <-time.After(5 * time.Second):
			rp.signal(syscall.SIGKILL)
			select {
			case <-rp.done:
			case <-time.After(remoteKillWait):
				rp.abandon()
			}
		}
	}
	err = rp.err
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if remoteDir != "" {
		// Copied back even after a failure: a partial log says how far
		// the generator got. Bounded on its own: ctx may be over.
		fctx, cancel := context.WithTimeout(context.Background(), remoteCopyTimeout)
		if ferr := n.fetchDir(fctx, remoteDir, filepath.Dir(localHlog)); ferr != nil && err == nil {
			err = fmt.Errorf("copy the interval logs back from %s: %w", n.spec.Name, ferr)
		}
		cancel()
	}
	return out.Bytes(), stderr.String(), err
}

// fetchDir copies every file of the node's dir into the local dir, then
// removes dir on the node.
func (n *sshNode) fetchDir(ctx context.Context, dir, localDir string) error {
	res, err := n.c.Run(ctx, "ls -1 "+ssh.Quote(dir))
	if err != nil {
		return err
	}
	for _, name := range strings.Fields(string(res.Stdout)) {
		if err := n.fetch(ctx, path.Join(dir, name), filepath.Join(localDir, name)); err != nil {
			return err
		}
	}
	_, err = n.c.Run(ctx, "rm -rf "+ssh.Quote(dir))
	return err
}

// fetch copies one file from the node (cat over a session) to local, which
// appears complete or not at all.
func (n *sshNode) fetch(ctx context.Context, remote, local string) error {
	tmp := local + ".part"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	err = n.c.Stream(ctx, "cat "+ssh.Quote(remote), f, nil)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, local)
}

func (st *sshSite) resources(s *server) ProcResources {
	rp := s.remote
	if rp == nil || rp.pid == 0 {
		return ProcResources{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), remoteOpTimeout)
	defer cancel()
	const sep = "--jrbench--"
	p := fmt.Sprintf("/proc/%d", rp.pid)
	res, err := rp.node.c.Run(ctx, fmt.Sprintf("cat %s/status; echo %s; ls %s/fd | wc -l; echo %s; cat %s/smaps_rollup", p, sep, p, sep, p))
	if err != nil && len(res.Stdout) == 0 {
		return ProcResources{}
	}
	parts := strings.Split(string(res.Stdout), sep+"\n")
	if len(parts) != 3 {
		return ProcResources{}
	}
	r := parseProcResources(parts[0], parts[2], 0)
	if r.Threads == 0 { // gone: no fd count either
		return ProcResources{}
	}
	r.FDs, _ = strconv.Atoi(strings.TrimSpace(parts[1]))
	return r
}

// next numbers the node's pid files and generator directories.
func (n *sshNode) next() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.seq++
	return n.seq
}

// remoteProc is a role running on a node.
type remoteProc struct {
	node    *sshNode
	pid     int // on the node; 0 until its script said
	pidFile string
	stdin   *io.PipeWriter // closing it makes the role's watchdog stop it
	done    chan struct{}  // the session ended
	err     error          // how (set before done closes)
}

// pidLine starts the line roleScript prints with the role's PID.
const pidLine = "JRBENCH-PID "

// roleScript is the shell command that runs argv on a node, in its work dir,
// pinned to cpus: the role in the background, its PID printed and recorded in
// pidFile (removed when it exits), and a watchdog that sends it SIGTERM,
// then SIGKILL 5 s later, when the session's standard input ends: jrbench
// keeps that input open while the role should run, and a dropped connection
// or a killed jrbench closes it. The script exits with the role's status.
func roleScript(work, pidFile, cpus string, argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = ssh.Quote(a)
	}
	pf := ssh.Quote(pidFile)
	pin := "" // cpus "": not pinned
	if cpus != "" {
		pin = "taskset -c " + ssh.Quote(cpus) + " "
	}
	return strings.Join([]string{
		"cd " + ssh.Quote(work) + " || exit 126",
		// libxdp pins its dispatcher in bpffs, which a node whose sshd
		// runs in a fresh mount namespace (ip netns exec) may lack.
		`[ "$(stat -f -c %T /sys/fs/bpf 2>/dev/null)" = bpf_fs ] || mount -t bpf bpf /sys/fs/bpf 2>/dev/null`,
		"exec 3<&0",
		pin + strings.Join(q, " ") + " 3<&- &",
		"p=$!",
		"echo $p > " + pf,
		"echo " + pidLine + "$p",
		"( cat <&3; if [ -f " + pf + " ]; then kill -TERM $p; sleep 5; [ -f " + pf + " ] && kill -KILL $p; fi ) >/dev/null 2>&1 &",
		"exec 3<&-",
		"wait $p; s=$?",
		"rm -f " + pf,
		"exit $s",
	}, "\n")
}

// start runs binary (from the work dir) with args on the node, pinned to
// cpus. Its standard output goes line by line to lines (the PID line
// excepted), its standard error to stderr. It returns once the node said the
// role's PID, or with an error when the session ended first.
func (n *sshNode) start(binary, cpus string, args []string, lines func(string), stderr io.Writer) (*remoteProc, error) {
	name := filepath.Base(binary)
	rp := &remoteProc{node: n, pidFile: fmt.Sprintf("%s-%d.pid", name, n.next()), done: make(chan struct{})}
	pidc := make(chan int, 1)
	saidPID := false
	out := &lineWriter{line: func(l string) {
		if v, ok := strings.CutPrefix(l, pidLine); ok && !saidPID {
			saidPID = true
			pid, _ := strconv.Atoi(v)
			pidc <- pid
			return
		}
		lines(l)
	}}
	inR, inW := io.Pipe()
	rp.stdin = inW
	exe := binary
	if !path.IsAbs(binary) {
		exe = path.Join(n.work, name) // copied there by openSSHSite
	}
	script := roleScript(n.work, rp.pidFile, cpus, append([]string{exe}, args...))
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), roleSessionLimit)
		err := n.c.StreamInput(ctx, script, inR, out, stderr)
		cancel()
		out.flush()
		inW.Close() // the session's stdin copier ends with it
		var ee *ssh.ExitError
		if errors.As(err, &ee) {
			ee.Cmd = name + " on " + n.spec.Name // not the whole script
		} else if err != nil {
			err = fmt.Errorf("%s on %s: %w", name, n.spec.Name, err)
		}
		rp.err = err
		close(rp.done)
	}()
	select {
	case rp.pid = <-pidc:
		return rp, nil
	case <-rp.done:
		if rp.err == nil {
			rp.err = errors.New("the role's script ended before it started the role")
		}
		return nil, rp.err
	case <-time.After(remoteOpTimeout + ssh.DefaultDialTimeout):
		rp.abandon()
		return nil, fmt.Errorf("%s: the node did not start it within %v", name, remoteOpTimeout+ssh.DefaultDialTimeout)
	}
}

// signal sends sig to the role on its node.
func (rp *remoteProc) signal(sig syscall.Signal) error {
	select {
	case <-rp.done:
		return errors.New("process already exited")
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), remoteOpTimeout)
	defer cancel()
	_, err := rp.node.c.Run(ctx, fmt.Sprintf("kill -%d %d", int(sig), rp.pid))
	return err
}

// abandon gives up waiting on the role: its input closes, so its watchdog
// stops it if the node still answers; the run's cleanup kills it otherwise.
func (rp *remoteProc) abandon() { rp.stdin.Close() }

// lineWriter calls line for every complete line written to it (one writer at
// a time: a session copies its output from one goroutine).
type lineWriter struct {
	line func(string)
	buf  []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

// flush hands over a last line without its newline.
func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.line(string(w.buf))
		w.buf = nil
	}
}
