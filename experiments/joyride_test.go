//go:build dpdk && cgo

package experiments

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	echoapp "github.com/joyride-bench/joyride/app"
	"github.com/joyride-bench/joyride/stacks"
	"github.com/joyride-bench/joyride/testbed/local"
)

// Joyride on the namespace testbed with Linux peers: joyrided owns the server's
// veth through DPDK's af_xdp vdev, jrapp attaches to it, and the client
// namespace's plain Linux stack talks to it (and curl, for HTTP).

type joyrideBed struct {
	tb     *local.Testbed
	bin    string
	runDir string
	daemon *server
}

// upBed brings up a testbed for server-side processes (no daemon).
func upBed(t *testing.T) *joyrideBed {
	t.Helper()
	bin := binDir(t)
	tb, err := local.Up(context.Background(), local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tb.Down() })
	if err := local.EnsureBPFFS(); err != nil {
		t.Fatal(err)
	}
	return &joyrideBed{tb: tb, bin: bin, runDir: t.TempDir()}
}

func upJoyride(t *testing.T) *joyrideBed {
	t.Helper()
	b := upBed(t)
	tb, bin := b.tb, b.bin
	var err error
	f, _ := stacks.Lookup("joyride")
	opts, _ := stacks.DecodeOptions("joyride", nil)
	d := f.Daemon(opts, b.env())
	b.daemon, err = startProcess(context.Background(), tb, bin, d.Binary, 0, append(d.Args, "-file-prefix", "jrd-"+tb.ID)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { t.Logf("joyrided log:\n%s", lastLines(b.daemon.stop(), 5)) })
	return b
}

func (b *joyrideBed) env() stacks.Env {
	return stacks.Env{Iface: b.tb.Server.Iface, Addr: b.tb.Server.Addr, CPUs: []int{0}, RunDir: b.runDir}
}

// app starts jrapp on joyride serving application over protocol on port.
func (b *joyrideBed) app(t *testing.T, application, protocol string, port int) *server {
	return b.appOn(t, "joyride", application, protocol, port)
}

// appOn starts jrapp on stack serving application over protocol on port.
func (b *joyrideBed) appOn(t *testing.T, stack, application, protocol string, port int) *server {
	t.Helper()
	s, err := startProcess(context.Background(), b.tb, b.bin, "jrapp", 0, "-stack", stack,
		"-options", "{}", "-iface", b.tb.Server.Iface, "-addr", b.tb.Server.Addr.String(),
		"-port", strconv.Itoa(port), "-protocol", protocol, "-app", application, "-run-dir", b.runDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.stop() })
	return s
}

// dial opens a connection from the client namespace's Linux stack.
func (b *joyrideBed) dial(t *testing.T, network string, port int) net.Conn {
	t.Helper()
	var c net.Conn
	err := local.InNetns(b.tb.Client.Netns, func() (err error) {
		c, err = net.DialTimeout(network, net.JoinHostPort(b.tb.Server.Addr.Addr().String(), strconv.Itoa(port)), 5*time.Second)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// udpEchoes sends n datagrams of growing size on c and checks each comes back
// intact.
func udpEchoes(t *testing.T, c net.Conn, n int) {
	t.Helper()
	buf := make([]byte, 2048)
	for i := 0; i < n; i++ {
		msg := bytes.Repeat([]byte{byte(i)}, 64+i)
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		k, err := c.Read(buf)
		if err != nil || !bytes.Equal(buf[:k], msg) {
			t.Fatalf("datagram %d: %v, %d bytes", i, err, k)
		}
	}
}

// tcpEchoes writes size bytes on c while reading them back, closes its
// sending side, and checks the echo is complete and intact.
func tcpEchoes(t *testing.T, c net.Conn, size int) {
	t.Helper()
	msg := make([]byte, size)
	for i := range msg {
		msg[i] = byte(i * 13)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(msg)
		c.(interface{ CloseWrite() error }).CloseWrite() // net.TCPConn or joyride's Conn
		errc <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("%d bytes echoed came back as %d different bytes", size, len(got))
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func TestJoyrideServesLinuxClients(t *testing.T) {
	b := upJoyride(t)
	b.app(t, "echo", "udp", 9000)
	b.app(t, "echo", "tcp", 9001)
	b.app(t, "http", "tcp", 8080)

	t.Run("udp", func(t *testing.T) { udpEchoes(t, b.dial(t, "udp4", 9000), 100) })
	t.Run("tcp", func(t *testing.T) { tcpEchoes(t, b.dial(t, "tcp4", 9001), 4<<20) })
	t.Run("http-with-curl", func(t *testing.T) {
		out, err := b.tb.Command(context.Background(), b.tb.Client, "curl", "-sS", "--max-time", "10",
			"http://"+b.tb.Server.Addr.Addr().String()+":8080/joyride").CombinedOutput()
		if err != nil || string(out) != "hello from joyride /joyride\n" {
			t.Fatalf("curl: %v: %q", err, out)
		}
	})
}

// An application killed with SIGKILL loses its sockets and nothing else: its
// port can be bound again at once and the service keeps serving.
func TestKilledApplicationReleasesItsPort(t *testing.T) {
	b := upJoyride(t)
	victim := b.app(t, "echo", "tcp", 9100)
	c := b.dial(t, "tcp4", 9100)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("x"))
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	victim.cmd.Process.Signal(syscall.SIGKILL)
	<-victim.exited
	// The same port, by a new application, right away.
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, err := startProcess(context.Background(), b.tb, b.bin, "jrapp", 0, "-stack", "joyride", "-options", "{}",
			"-iface", b.tb.Server.Iface, "-addr", b.tb.Server.Addr.String(), "-port", "9100", "-protocol", "tcp",
			"-run-dir", b.runDir)
		if err == nil {
			t.Cleanup(func() { s.stop() })
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("port 9100 still taken 5 s after its owner was killed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c2 := b.dial(t, "tcp4", 9100)
	c2.SetDeadline(time.Now().Add(5 * time.Second))
	c2.Write([]byte("again"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c2, buf); err != nil || string(buf) != "again" {
		t.Fatalf("the new owner does not answer: %q %v", buf, err)
	}
	// The old connection died with its application (reset, or EOF).
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("y"))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("the killed application's connection still answers")
	}
}

// joyrided killed with SIGKILL while serving: the application sees a clean
// error and exits instead of hanging; a restarted joyrided serves a new one.
func TestJoyridedKilledThenRestarted(t *testing.T) {
	b := upJoyride(t)
	app := b.app(t, "echo", "udp", 9200)
	c := b.dial(t, "udp4", 9200)
	c.SetDeadline(time.Now().Add(3 * time.Second))
	c.Write([]byte("before"))
	if _, err := c.Read(make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	b.daemon.cmd.Process.Signal(syscall.SIGKILL)
	<-b.daemon.exited
	select {
	case <-app.exited:
	case <-time.After(5 * time.Second):
		t.Fatal("jrapp still running 5 s after joyrided was killed: its sockets hang")
	}
	if log := app.stop(); !strings.Contains(log, "service closed the connection") {
		t.Errorf("jrapp did not say why it stopped:\n%s", log)
	}
	// Restart the service (the old control socket is replaced) and attach anew.
	f, _ := stacks.Lookup("joyride")
	opts, _ := stacks.DecodeOptions("joyride", nil)
	d := f.Daemon(opts, b.env())
	var err error
	b.daemon, err = startProcess(context.Background(), b.tb, b.bin, d.Binary, 0, append(d.Args, "-file-prefix", "jrd2-"+b.tb.ID)...)
	if err != nil {
		t.Fatal(err)
	}
	b.app(t, "echo", "udp", 9200)
	c2 := b.dial(t, "udp4", 9200)
	c2.SetDeadline(time.Now().Add(3 * time.Second))
	c2.Write([]byte("after"))
	buf := make([]byte, 64)
	if n, err := c2.Read(buf); err != nil || string(buf[:n]) != "after" {
		t.Fatalf("restarted service: %q %v", buf[:n], err)
	}
}

// A Joyride client talks to a Linux server: the test process attaches to
// joyrided through its control socket (a filesystem path: any namespace will
// do) and dials a kernel TCP echo server listening in the client namespace.
func TestJoyrideClientTalksToALinuxServer(t *testing.T) {
	b := upJoyride(t)
	var ln net.Listener
	if err := local.InNetns(b.tb.Client.Netns, func() (err error) {
		ln, err = net.Listen("tcp4", b.tb.Client.Addr.Addr().String()+":7500")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go echoapp.ServeTCPEcho(ctx, ln)

	opts, _ := stacks.DecodeOptions("joyride", nil)
	st, err := stacks.Open("joyride", opts, b.env())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := st.Dial("tcp", b.tb.Client.Addr.Addr().String()+":7500")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tcpEchoes(t, c, 256<<10)
}

// A NIC profile shapes the port joyrided opens: cx5's deep rings, and only
// the features the device has (an af_xdp vdev offloads nothing, so cx5 adds
// nothing); a bad profile name is refused before anything runs.
func TestNICProfileShapesJoyridedsPort(t *testing.T) {
	_, dir := runInlineDir(t, `name: profile-inline
stacks:
  - name: joyride
    options: {profile: cx5}
workload: {rates: [1000], duration: 500ms, warmup: 100ms}
`)
	logs, _ := filepath.Glob(filepath.Join(dir, "logs", "*joyrided*.log"))
	if len(logs) == 0 {
		t.Fatal("no joyrided log")
	}
	b, _ := os.ReadFile(logs[0])
	for _, want := range []string{"profile=cx5", "rxring=4096", "csum(rx ip/l4=false/false tx ip/l4=false/false)", "rss=false"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("joyrided's log lacks %q:\n%s", want, b)
		}
	}
	if _, err := Parse("x.yaml", []byte("name: x\nstacks: [{name: joyride, options: {profile: e810}}]\nworkload: {rates: [1]}\n")); err == nil || !strings.Contains(err.Error(), "allowed: cx5, lcd") {
		t.Fatalf("an unknown profile: %v", err)
	}
}
