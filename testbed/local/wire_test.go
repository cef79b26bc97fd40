package local

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/joyride-bench/joyride/testbed/pmqos"
	"golang.org/x/sys/unix"
)

func upWire(t *testing.T) *Testbed {
	t.Helper()
	id := testID(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tb, err := Up(ctx, Options{ID: id, Wire: true})
	if err != nil {
		t.Fatalf("Up(Wire): %v", err)
	}
	t.Cleanup(func() { _ = tb.Down() })
	return tb
}

func TestWireLayoutAndDown(t *testing.T) {
	tb := upWire(t)
	w := tb.Wire
	if w == nil || w.Netns != wireNetnsPrefix+tb.ID || w.ClientIface != "jwc-"+tb.ID || w.ServerIface != "jws-"+tb.ID {
		t.Fatalf("wire %+v", w)
	}
	st, err := readState(tb.ID)
	if err != nil || st.Wire == nil || *st.Wire != *w {
		t.Fatalf("state file: %+v, %v", st, err)
	}
	hw := handleIn(t, w.Netns)
	for _, ifc := range []string{w.ClientIface, w.ServerIface} {
		l, err := hw.LinkByName(ifc)
		if err != nil {
			t.Fatalf("%s in %s: %v", ifc, w.Netns, err)
		}
		if l.Attrs().MTU != MTU || l.Attrs().OperState == 0 && l.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("%s: mtu %d flags %v", ifc, l.Attrs().MTU, l.Attrs().Flags)
		}
		if addrs, _ := hw.AddrList(l, 2 /* AF_INET */); len(addrs) != 0 {
			t.Errorf("%s has addresses %v: the wire must be pure L2", ifc, addrs)
		}
	}
	// The client's and server's ends are peers of the wire's, not of each other.
	hc := handleIn(t, tb.Client.Netns)
	if _, err := hc.LinkByName(tb.Client.Iface); err != nil {
		t.Fatal(err)
	}
	// Nothing forwards yet: the server is unreachable.
	if err := InNetns(tb.Client.Netns, func() error {
		c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: tb.Server.Addr.Addr().AsSlice(), Port: 9})
		if err != nil {
			return err
		}
		defer c.Close()
		c.Write([]byte("x"))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	list, err := List()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range list {
		if l.ID == tb.ID {
			found = l.Status == "up" && l.Wire != nil
		}
	}
	if !found {
		t.Errorf("List does not show %s up with its wire", tb.ID)
	}
	if err := tb.Down(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, tb.ID)
	if netnsExists(w.Netns) {
		t.Errorf("%s still exists after Down", w.Netns)
	}
}

func TestWireDownIDWithoutStateFile(t *testing.T) {
	tb := upWire(t)
	// A process in the wire namespace (as jremu would be) and no state file
	// (a runner killed during Up): DownID must find and remove both.
	cmd := tb.Command(context.Background(), tb.Wire.Node(), "sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	time.Sleep(100 * time.Millisecond)
	if err := os.Remove(statePath(tb.ID)); err != nil {
		t.Fatal(err)
	}
	list, _ := List()
	for _, l := range list {
		if l.ID == tb.ID && (l.Status != "orphan" || l.Wire == nil) {
			t.Errorf("orphan listed as %s, wire %+v", l.Status, l.Wire)
		}
	}
	if err := DownID(tb.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("the process in the wire namespace was not stopped")
	}
	assertGone(t, tb.ID)
	if netnsExists(wireNetnsPrefix + tb.ID) {
		t.Errorf("wire netns still exists after DownID")
	}
}

// jremuBin is the emulator binary (go build -tags dpdk -o bin/ ./cmd/...;
// JRBENCH_BIN names the directory).
func jremuBin(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("JRBENCH_BIN")
	if dir == "" {
		dir, _ = filepath.Abs("../../bin")
	}
	p := filepath.Join(dir, "jremu")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("jremu missing in %s: go build -tags dpdk -o bin/ ./cmd/... first", dir)
	}
	return p
}

// emuResult is the part of jremu's JSON the test reads.
type emuResult struct {
	AB struct {
		Received   uint64  `json:"received"`
		Forwarded  uint64  `json:"forwarded"`
		DropLoss   uint64  `json:"drop_loss"`
		LateMeanNs float64 `json:"late_mean_ns"`
		LateMaxNs  float64 `json:"late_max_ns"`
	} `json:"ab"`
	BA struct {
		Received  uint64 `json:"received"`
		Forwarded uint64 `json:"forwarded"`
	} `json:"ba"`
	NsPerFrame float64 `json:"ns_per_frame"`
	LoopNs     float64 `json:"loop_ns"`
}

// startJremu runs jremu in the wire namespace on cpu 0 and waits for READY;
// the returned func stops it (SIGTERM) and returns its counters.
func startJremu(t *testing.T, tb *Testbed, args ...string) func() emuResult {
	t.Helper()
	bin := jremuBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	full := append([]string{"-c", "0", bin, "-iface-a", tb.Wire.ClientIface, "-iface-b", tb.Wire.ServerIface,
		"-cpu", "0", "-file-prefix", "jremu-" + tb.ID}, args...)
	if d := os.Getenv("JREMU_DRIVER"); d != "" {
		full = append(full, "-driver", d)
	}
	cmd := tb.CommandWithBPFFS(ctx, tb.Wire.Node(), "taskset", full...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	select {
	case l := <-lines:
		if l != "READY" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("jremu said %q, stderr: %s", l, stderr.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("jremu not READY in 30 s: %s", stderr.String())
	}
	stopped := false
	stop := func() emuResult {
		stopped = true
		defer cancel()
		cmd.Process.Signal(syscall.SIGTERM)
		var res emuResult
		for l := range lines {
			if err := json.Unmarshal([]byte(l), &res); err != nil {
				t.Errorf("jremu output %q: %v", l, err)
			}
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("jremu: %v: %s", err, stderr.String())
		}
		return res
	}
	t.Cleanup(func() {
		if !stopped {
			stop()
		}
	})
	return stop
}

// pingPong holds a UDP socket in the server namespace and one in the client
// namespace connected to it.
type pingPong struct {
	srv, cli *net.UDPConn
	sfd, cfd int
}

func newPingPong(t *testing.T, tb *Testbed) *pingPong {
	t.Helper()
	p := &pingPong{}
	if err := InNetns(tb.Server.Netns, func() (err error) {
		p.srv, err = net.ListenUDP("udp4", &net.UDPAddr{IP: tb.Server.Addr.Addr().AsSlice(), Port: 0})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := InNetns(tb.Client.Netns, func() (err error) {
		p.cli, err = net.DialUDP("udp4", nil, p.srv.LocalAddr().(*net.UDPAddr))
		return err
	}); err != nil {
		p.srv.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cli.Close(); p.srv.Close() })
	for _, c := range []struct {
		conn *net.UDPConn
		fd   *int
	}{{p.srv, &p.sfd}, {p.cli, &p.cfd}} {
		rc, err := c.conn.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		rc.Control(func(fd uintptr) { *c.fd = int(fd) }) // non-blocking already (Go's netpoller)
	}
	return p
}

// spinRecv polls fd without sleeping until a datagram arrives or the
// deadline passes: neither side of the round trip ever waits for a wakeup,
// so what is measured is the path (kernel stacks, veths, emulator), not the
// VM's idle and scheduling latency.
func spinRecv(fd int, buf []byte, deadline time.Time) (int, unix.Sockaddr, bool) {
	for i := 0; ; i++ {
		n, from, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
		if err == nil {
			return n, from, true
		}
		if i%1024 == 0 && time.Now().After(deadline) {
			return 0, nil, false
		}
	}
}

// rtts sends n datagrams one at a time from the client, echoes each from the
// server socket in the same (spinning, pinned) goroutine, and returns each
// round trip; the first is dropped (it may have waited for ARP).
func (p *pingPong) rtts(t *testing.T, n int) []time.Duration {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var set unix.CPUSet
	set.Set(1) // jremu spins on cpu 0
	unix.SchedSetaffinity(0, &set)
	var out []time.Duration
	buf := make([]byte, 2048)
	for i := 0; i < n; i++ {
		msg := binary.LittleEndian.AppendUint64(make([]byte, 0, 64), uint64(i))[:64]
		t0 := time.Now()
		if err := unix.Send(p.cfd, msg, 0); err != nil {
			t.Fatal(err)
		}
		m, from, ok := spinRecv(p.sfd, buf, t0.Add(time.Second))
		if !ok {
			t.Fatalf("request %d never reached the server", i)
		}
		if err := unix.Sendto(p.sfd, buf[:m], 0, from); err != nil {
			t.Fatal(err)
		}
		m, _, ok = spinRecv(p.cfd, buf, t0.Add(time.Second))
		if !ok || m != 64 || binary.LittleEndian.Uint64(buf) != uint64(i) {
			t.Fatalf("echo %d: no reply", i)
		}
		if i > 0 {
			out = append(out, time.Since(t0))
		}
	}
	return out
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func TestWireEmulatesDelayAndLoss(t *testing.T) {
	// Idle vCPUs that halt add tens of µs to a wakeup after a 2 ms wait:
	// hold them awake, as jrbench run does, so the delay is measured and
	// not the VM's idle policy.
	if q, err := pmqos.Hold(0); err == nil {
		defer q.Release()
	} else {
		t.Logf("PM QoS not held: %v", err)
	}
	tb := upWire(t)
	pp := newPingPong(t, tb)
	cli := pp.cli

	// Base: the forwarder with a perfect link.
	stop := startJremu(t, tb)
	base := median(pp.rtts(t, 300))
	r0 := stop()
	t.Logf("base RTT through jremu (perfect link): median %v; emulator %.0f ns/frame, loop %.0f ns, late mean %.0f ns",
		base, r0.NsPerFrame, r0.LoopNs, r0.AB.LateMeanNs)
	if r0.AB.Forwarded < 300 || r0.BA.Forwarded < 300 {
		t.Errorf("counters do not show the echo: %+v", r0)
	}

	stop = startJremu(t, tb, "-link", "delay=1ms")
	d := pp.rtts(t, 300)
	withDelay := median(d)
	r1 := stop()
	added := withDelay - base
	t.Logf("delay=1ms each way: median RTT %v (min %v), added %v (want 2ms); emulator late mean %.0f ns max %.0f ns",
		withDelay, slices.Min(d), added, r1.AB.LateMeanNs, r1.AB.LateMaxNs)
	if added < 2*time.Millisecond-100*time.Microsecond || added > 2*time.Millisecond+150*time.Microsecond {
		t.Errorf("delay=1ms both ways added %v to the median round trip, want 2ms ± 0.1ms", added)
	}
	if slices.Min(d) < 2*time.Millisecond {
		t.Errorf("a round trip of %v beat the 2ms of delay", slices.Min(d))
	}

	// Loss one way (client → server): about 20% of datagrams get no answer.
	go func() { // an echo (blocking: rates, not times, matter there)
		buf := make([]byte, 2048)
		for {
			n, a, err := pp.srv.ReadFromUDP(buf)
			if err != nil {
				return
			}
			pp.srv.WriteToUDP(buf[:n], a)
		}
	}()
	stop = startJremu(t, tb, "-ab", "loss=0.2", "-seed", "5")
	// Prime ARP (its frames cross the lossy direction too).
	for i := 0; ; i++ {
		cli.Write([]byte("prime"))
		cli.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		buf := make([]byte, 64)
		if _, err := cli.Read(buf); err == nil {
			break
		}
		if i > 50 {
			t.Fatal("no echo through a 20% lossy wire after 50 tries")
		}
	}
	const n = 2000
	got := map[uint64]bool{}
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		buf := make([]byte, 64)
		for {
			cli.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			m, err := cli.Read(buf)
			if err != nil {
				return
			}
			if m == 64 {
				got[binary.LittleEndian.Uint64(buf)] = true
			}
		}
	}()
	for i := 0; i < n; i++ {
		msg := binary.LittleEndian.AppendUint64(make([]byte, 0, 64), uint64(i))
		cli.Write(msg[:64])
		time.Sleep(50 * time.Microsecond)
	}
	<-recvDone
	r2 := stop()
	lost := float64(n-len(got)) / n
	t.Logf("loss=0.2 client→server: %d of %d answered, lost %.3f; emulator dropped %d of %d",
		len(got), n, lost, r2.AB.DropLoss, r2.AB.Received)
	if lost < 0.2-0.045 || lost > 0.2+0.045 { // ±5σ of a binomial over 2000
		t.Errorf("lost %.3f of datagrams, want 0.20 ± 0.045", lost)
	}
	if drop := float64(r2.AB.DropLoss) / float64(r2.AB.Received); drop < 0.155 || drop > 0.245 {
		t.Errorf("emulator dropped %.3f of what it received", drop)
	}
}
