//go:build dpdk && cgo

package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	echo "github.com/joyride-bench/joyride/app"
	"github.com/joyride-bench/joyride/nic/dpdk"
	"github.com/joyride-bench/joyride/nic/dpdk/dpdktest"
	"github.com/joyride-bench/joyride/nic/netstack"
	"github.com/joyride-bench/joyride/stacks/joyride"
	"github.com/joyride-bench/joyride/stacks/joyride/channel"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// These tests run the whole Joyride path in one process on a real DPDK wire: a
// memif pair, joyrided's service (engine, netstack, control socket, shared
// regions) on one end, a plain gVisor stack standing in for a remote host on
// the other, and applications attached through the real client library
// (stacks/joyride) over the real control socket and shared memory. Tests on
// the namespace testbed with Linux peers live in experiments/.

var (
	svc      *Service
	sockPath string
	peer     *stack.Stack
	svcAddr  = netip.MustParseAddr("198.18.0.2")
	peerAddr = tcpip.AddrFrom4([4]byte{198, 18, 0, 1})
)

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "service tests need root (DPDK)")
		os.Exit(1)
	}
	dir, _ := os.MkdirTemp("", "jr-service-test")
	sockPath = filepath.Join(dir, "joyride.sock")
	pair, err := dpdktest.OpenPair("jrsvc", dpdk.PortConfig{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	svcPort, peerPort := pair.Server, pair.Client
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err = New(netstack.New(svcPort, netstack.Options{}), Config{Addr: netip.PrefixFrom(svcAddr, 24), Socket: sockPath,
		Region: channel.Config{}, Log: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go svc.Run()

	peerLink := netstack.New(peerPort, netstack.Options{})
	peer, err = netstack.NewStack(peerLink, netip.PrefixFrom(netip.AddrFrom4(peerAddr.As4()), 24), netip.Addr{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var stopPeer atomic.Bool
	peerDone := make(chan struct{})
	go func() {
		defer close(peerDone)
		for !stopPeer.Load() {
			if rx, tx := peerLink.Poll(); rx+tx == 0 {
				time.Sleep(20 * time.Microsecond)
			}
		}
	}()

	code := m.Run()
	svc.Close()
	stopPeer.Store(true)
	<-peerDone
	peer.Close()
	pair.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

func attach(t *testing.T) *joyride.Stack {
	t.Helper()
	st, err := joyride.Open(joyride.Options{Socket: sockPath})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func serve(t *testing.T, f func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestUDPEchoFromARemoteHost(t *testing.T) {
	st := attach(t)
	pc, err := st.ListenPacket("udp", "198.18.0.2:7000")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, func(ctx context.Context) { echo.ServeUDPEcho(ctx, pc) })

	c, err := gonet.DialUDP(peer, nil, &tcpip.FullAddress{Addr: tcpip.AddrFrom4(svcAddr.As4()), Port: 7000}, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 2048)
	for i := 0; i < 200; i++ {
		msg := bytes.Repeat([]byte{byte(i)}, 16+i)
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		n, err := c.Read(buf)
		if err != nil || !bytes.Equal(buf[:n], msg) {
			t.Fatalf("echo %d: %v (%d bytes)", i, err, n)
		}
	}
}

func TestTCPEchoBothWays(t *testing.T) {
	st := attach(t)
	ln, err := st.Listen("tcp", "198.18.0.2:7001")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, func(ctx context.Context) { echo.ServeTCPEcho(ctx, ln) })

	c, err := gonet.DialTCP(peer, tcpip.FullAddress{Addr: tcpip.AddrFrom4(svcAddr.As4()), Port: 7001}, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := make([]byte, 1<<20)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	errc := make(chan error, 1)
	go func() { _, err := c.Write(msg); errc <- err }()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read back: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("1 MiB echoed through joyrided came back altered")
	}
}

func TestHTTPServerOnAJoyrideListener(t *testing.T) {
	st := attach(t)
	ln, err := st.Listen("tcp", "198.18.0.2:8080")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from joyride, %s", r.URL.Path)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			ap := netip.MustParseAddrPort(addr)
			return gonet.DialContextTCP(ctx, peer, tcpip.FullAddress{Addr: tcpip.AddrFrom4(ap.Addr().As4()), Port: ap.Port()}, ipv4.ProtocolNumber)
		}}}
	for i := 0; i < 5; i++ {
		resp, err := client.Get(fmt.Sprintf("http://198.18.0.2:8080/n%d", i))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("hello from joyride, /n%d", i); string(body) != want {
			t.Fatalf("got %q, want %q", body, want)
		}
	}
}

func TestJoyrideClientDialsARemoteServer(t *testing.T) {
	ln, err := gonet.ListenTCP(peer, tcpip.FullAddress{Addr: peerAddr, Port: 7100}, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serve(t, func(ctx context.Context) { echo.ServeTCPEcho(ctx, ln) })
	st := attach(t)
	c, err := st.Dial("tcp", "198.18.0.1:7100")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping over joyride")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := io.ReadAtLeast(c, buf, len("ping over joyride"))
	if err != nil || string(buf[:n]) != "ping over joyride" {
		t.Fatalf("%q, %v", buf[:n], err)
	}
}

// Two applications at once: each its own region and sockets, ports owned, and
// a port freed when its owner goes away.
func TestApplicationsAreIsolated(t *testing.T) {
	a, err := joyride.Open(joyride.Options{Socket: sockPath})
	if err != nil {
		t.Fatal(err)
	}
	b := attach(t)
	if _, err := a.ListenPacket("udp", "198.18.0.2:7200"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ListenPacket("udp", "198.18.0.2:7200"); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("second bind of a bound port: %v, want EADDRINUSE", err)
	}
	if _, err := b.Listen("tcp", "198.18.0.2:7201"); err != nil {
		t.Fatal(err)
	}
	before := svc.Stats().Apps.Load()
	a.Close() // the application goes away: its sockets and ports with it
	deadline := time.Now().Add(5 * time.Second)
	for svc.Stats().Apps.Load() >= before && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	pc, err := b.ListenPacket("udp", "198.18.0.2:7200")
	if err != nil {
		t.Fatalf("port of a closed application still taken: %v", err)
	}
	pc.Close()
}

// On a shared core the engine must not spin while the application it just
// handed a request to is working: it sleeps until the reply rings the doorbell
// (this test's memif NIC cannot wake it, so it also wakes on a backed-off
// timer). A dedicated engine spins for Config.Spin (1 ms) after the same work,
// then sleeps on the same timer.
// The engine thread's CPU time during the application's 30 ms of work tells
// them apart.
func TestSharedEngineSleepsWhileTheAppWorks(t *testing.T) {
	st := attach(t)
	// The service publishes a new application just after its register reply.
	for end := time.Now().Add(time.Second); svc.Policy() != PolicyShared && time.Now().Before(end); {
		time.Sleep(time.Millisecond)
	}
	if got := svc.Policy(); got != PolicyShared {
		t.Fatalf("engine and application share this process's CPUs, but the policy is %s", got)
	}
	pc, err := st.ListenPacket("udp", "198.18.0.2:7300")
	if err != nil {
		t.Fatal(err)
	}
	const work = 30 * time.Millisecond
	serve(t, func(ctx context.Context) {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			for end := time.Now().Add(work); time.Now().Before(end); {
			}
			pc.WriteTo(buf[:n], from)
		}
	})
	t.Cleanup(func() { pc.Close() })
	c, err := gonet.DialUDP(peer, nil, &tcpip.FullAddress{Addr: tcpip.AddrFrom4(svcAddr.As4()), Port: 7300}, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// cpuDuring is the engine's CPU time over each of three requests, least
	// and most: other threads can add to a sleeper's wake-ups and take CPU
	// from a spinner, so the shared engine is judged by its least and the
	// dedicated one by its most.
	cpuDuring := func() (least, most time.Duration) {
		t.Helper()
		least = time.Hour
		for i := 0; i < 3; i++ {
			before := svc.EngineCPU()
			c.SetDeadline(time.Now().Add(3 * time.Second))
			if _, err := c.Write([]byte("work")); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Read(make([]byte, 64)); err != nil {
				t.Fatal(err)
			}
			d := svc.EngineCPU() - before
			least, most = min(least, d), max(most, d)
		}
		return least, most
	}
	shared, _ := cpuDuring()
	svc.shared.Store(false) // the same service, as on a core of its own
	_, dedicated := cpuDuring()
	svc.shared.Store(true)
	t.Logf("engine CPU during %v of application work: shared %v, dedicated %v", work, shared, dedicated)
	if shared > 3*time.Millisecond {
		t.Errorf("a shared engine used %v of CPU while the application worked %v; want under 3 ms (it should sleep)", shared, work)
	}
	// Both sleep on the same backed-off timer once idle; the dedicated one
	// spins its 1 ms first.
	if dedicated-shared < 500*time.Microsecond {
		t.Errorf("a dedicated engine used %v, a shared one %v: the dedicated one should spin about 1 ms more", dedicated, shared)
	}
}
