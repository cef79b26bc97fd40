package afxdp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/joyride-bench/joyride/nic"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// The tests build their own wire: two network namespaces with a veth between
// them, named with a unique suffix and removed on exit (also on failure):
//
//	netns jr-afx-<sfx>-a: "xa" (the Port under test; no IP address)
//	netns jr-afx-<sfx>-b: "xb" 198.18.<n>.2/24, a static neighbour entry for
//	                      198.18.<n>.1 at xa's MAC (nobody answers ARP)

const (
	childNSEnv = "JR_AFXDP_CHILD_NS" // the crash test's child: open a Port in this netns and wait
	portIP     = 1
	kernelIP   = 2
	portUDP    = 9000
	kernelUDP  = 9001
)

func TestMain(m *testing.M) {
	if ns := os.Getenv(childNSEnv); ns != "" {
		crashChild(ns)
		return
	}
	os.Exit(m.Run())
}

// crashChild opens a Port on xa in ns, says "ready" and waits to be killed.
func crashChild(ns string) {
	h, err := netns.GetFromName(ns)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	var p *Port
	err = inNS(h, func() error {
		var err error
		p, err = Open("xa", Options{Mode: "generic"})
		return err
	})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("ready", p.Features().Driver)
	time.Sleep(time.Minute)
	os.Exit(2)
}

// wire is the test's namespace pair.
type wire struct {
	nsA, nsB     string
	a, b         netns.NsHandle
	net          byte // 198.18.<net>.0/24
	macA, macB   net.HardwareAddr
	portIP, kIP  net.IP
	kernelSocket *net.UDPConn // in nsB, bound to kIP:kernelUDP
}

func sh(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// inNS runs fn on a locked OS thread inside ns.
func inNS(ns netns.NsHandle, fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		return fmt.Errorf("restore netns: %w (thread left locked)", err)
	}
	runtime.UnlockOSThread()
	return ferr
}

func newWire(t testing.TB) *wire {
	t.Helper()
	// Failures, not skips: make test runs as root and make deps installs ethtool.
	if os.Geteuid() != 0 {
		t.Fatal("needs root (netns, veth, XDP)")
	}
	if _, err := exec.LookPath("ethtool"); err != nil {
		t.Fatal("needs ethtool (to turn off the kernel side's TX checksum offload): make deps installs it")
	}
	sfx := fmt.Sprintf("%d%04x", os.Getpid()%100000, rand.Intn(0x10000))
	w := &wire{nsA: "jr-afx-" + sfx + "-a", nsB: "jr-afx-" + sfx + "-b", net: byte(64 + rand.Intn(128))}
	w.portIP = net.IPv4(198, 18, w.net, portIP).To4()
	w.kIP = net.IPv4(198, 18, w.net, kernelIP).To4()
	t.Cleanup(func() {
		if w.kernelSocket != nil {
			w.kernelSocket.Close()
		}
		w.a.Close()
		w.b.Close()
		exec.Command("ip", "netns", "del", w.nsA).Run()
		exec.Command("ip", "netns", "del", w.nsB).Run()
	})
	sh(t, "ip", "netns", "add", w.nsA)
	sh(t, "ip", "netns", "add", w.nsB)
	sh(t, "ip", "-n", w.nsA, "link", "add", "xa", "numrxqueues", "1", "numtxqueues", "1",
		"type", "veth", "peer", "name", "xb", "numrxqueues", "1", "numtxqueues", "1", "netns", w.nsB)
	sh(t, "ip", "-n", w.nsA, "link", "set", "xa", "up")
	sh(t, "ip", "-n", w.nsB, "addr", "add", w.kIP.String()+"/24", "dev", "xb")
	sh(t, "ip", "-n", w.nsB, "link", "set", "xb", "up")
	sh(t, "ip", "-n", w.nsB, "link", "set", "lo", "up")
	// The kernel side must put full checksums in its frames: with veth's TX
	// checksum offload on, its UDP frames carry only the pseudo-header sum
	// (CHECKSUM_PARTIAL), which AF_XDP delivers as is.
	sh(t, "ip", "netns", "exec", w.nsB, "ethtool", "-K", "xb", "tx", "off")
	var err error
	if w.a, err = netns.GetFromName(w.nsA); err != nil {
		t.Fatal(err)
	}
	if w.b, err = netns.GetFromName(w.nsB); err != nil {
		t.Fatal(err)
	}
	w.macA = w.linkAttrs(t, w.a, "xa").HardwareAddr
	w.macB = w.linkAttrs(t, w.b, "xb").HardwareAddr
	sh(t, "ip", "-n", w.nsB, "neigh", "add", w.portIP.String(), "lladdr", w.macA.String(), "dev", "xb", "nud", "permanent")
	err = inNS(w.b, func() error {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: w.kIP, Port: kernelUDP})
		if err != nil {
			return err
		}
		w.kernelSocket = c
		raw, _ := c.SyscallConn()
		raw.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, 16<<20)
		})
		return nil
	})
	if err != nil {
		t.Fatalf("kernel socket in %s: %v", w.nsB, err)
	}
	return w
}

func (w *wire) linkAttrs(t testing.TB, ns netns.NsHandle, name string) *netlink.LinkAttrs {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	return l.Attrs()
}

// xdpAttached reports whether an XDP program is on xa, and its id.
func (w *wire) xdpAttached(t testing.TB) (bool, uint32) {
	x := w.linkAttrs(t, w.a, "xa").Xdp
	if x == nil || !x.Attached {
		return false, 0
	}
	return true, x.ProgId
}

func (w *wire) open(t testing.TB, o Options) *Port {
	t.Helper()
	var p *Port
	err := inNS(w.a, func() error {
		var err error
		p, err = Open("xa", o)
		return err
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// frame builds an Ethernet/IPv4/UDP frame from the port to the kernel side.
func (w *wire) frame(t testing.TB, payload []byte) []byte {
	eth := &layers.Ethernet{SrcMAC: w.macA, DstMAC: w.macB, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: w.portIP, DstIP: w.kIP}
	udp := &layers.UDP{SrcPort: portUDP, DstPort: kernelUDP}
	udp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// udpPayload checks that f is an intact IPv4/UDP frame from the kernel side to
// the port (addresses, ports, checksums) and returns its payload.
func (w *wire) udpPayload(f []byte) ([]byte, error) {
	pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	udp, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if eth == nil || ip == nil || udp == nil {
		return nil, errNoise // e.g. the kernel side's IPv6 MLD reports
	}
	if !bytes.Equal(eth.DstMAC, w.macA) || !ip.SrcIP.Equal(w.kIP) || !ip.DstIP.Equal(w.portIP) || udp.DstPort != portUDP {
		return nil, fmt.Errorf("wrong addresses: %s > %s, %s > %s, port %d", eth.SrcMAC, eth.DstMAC, ip.SrcIP, ip.DstIP, udp.DstPort)
	}
	if sum := checksum(f[14:14+int(ip.IHL)*4], 0); sum != 0xffff {
		return nil, fmt.Errorf("bad IPv4 header checksum")
	}
	l4 := f[14+int(ip.IHL)*4 : 14+int(ip.Length)]
	if udp.Checksum != 0 {
		if sum := checksum(l4, pseudo(ip.SrcIP, ip.DstIP, len(l4))); sum != 0xffff {
			return nil, fmt.Errorf("bad UDP checksum %#04x", udp.Checksum)
		}
	}
	return udp.Payload, nil
}

// errNoise marks a frame that is not IPv4/UDP, which the tests skip.
var errNoise = errors.New("not IPv4/UDP")

func pseudo(src, dst net.IP, l4len int) uint32 {
	s := uint32(binary.BigEndian.Uint16(src[0:])) + uint32(binary.BigEndian.Uint16(src[2:])) +
		uint32(binary.BigEndian.Uint16(dst[0:])) + uint32(binary.BigEndian.Uint16(dst[2:]))
	return s + 17 + uint32(l4len)
}

// checksum is the one's complement sum of b (not inverted) on top of init.
func checksum(b []byte, init uint32) uint16 {
	s := init
	for len(b) >= 2 {
		s += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

func modes(t *testing.T, fn func(t *testing.T, mode string)) {
	for _, mode := range []string{"native", "generic"} {
		t.Run(mode, func(t *testing.T) { fn(t, mode) })
	}
}

const count = 1000

// TestRx: 1000 datagrams from a kernel socket arrive intact through RxBurst.
func TestRx(t *testing.T) {
	modes(t, func(t *testing.T, mode string) {
		w := newWire(t)
		p := w.open(t, Options{Mode: mode})
		t.Logf("features: %s", p.Features())
		dst := &net.UDPAddr{IP: w.portIP, Port: portUDP}
		var got atomic.Int64
		sendErr := make(chan error, 1)
		go func() {
			for i := 0; i < count; i++ {
				for int64(i)-got.Load() > 256 { // stay within the rings
					time.Sleep(50 * time.Microsecond)
				}
				if _, err := w.kernelSocket.WriteToUDP([]byte(fmt.Sprintf("rx %04d", i)), dst); err != nil {
					sendErr <- err
					return
				}
			}
			sendErr <- nil
		}()
		seen := make([]bool, count)
		b := nic.NewBatch(32)
		deadline := time.Now().Add(10 * time.Second)
		for got.Load() < count && time.Now().Before(deadline) {
			n := p.RxBurst(b)
			for i := 0; i < n; i++ {
				pl, err := w.udpPayload(b.Frames[i])
				if err == errNoise {
					continue
				}
				if err != nil {
					t.Fatalf("frame %d: %v", got.Load(), err)
				}
				var k int
				if _, err := fmt.Sscanf(string(pl), "rx %04d", &k); err != nil || k < 0 || k >= count || seen[k] {
					t.Fatalf("payload %q: unexpected or duplicate", pl)
				}
				seen[k] = true
				got.Add(1)
			}
			p.Free(b)
			if n == 0 {
				runtime.Gosched()
			}
		}
		if err := <-sendErr; err != nil {
			t.Fatalf("send: %v", err)
		}
		st, err := p.Stats()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("stats: %+v", st)
		if got.Load() != count {
			t.Fatalf("received %d of %d", got.Load(), count)
		}
		if st.RxPackets < count { // plus the kernel side's IPv6 noise, if any
			t.Fatalf("RxPackets = %d", st.RxPackets)
		}
	})
}

// readAll reads datagrams from the kernel socket until n arrived or a quiet
// second passed, checking each with check.
func readAll(t *testing.T, c *net.UDPConn, n int, check func([]byte) error) int {
	buf := make([]byte, 2048)
	got := 0
	for got < n {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		k, _, err := c.ReadFromUDP(buf)
		if err != nil {
			break
		}
		if err := check(buf[:k]); err != nil {
			t.Errorf("datagram %d: %v", got, err)
			break
		}
		got++
	}
	return got
}

// TestTx: 1000 UDP frames built in Alloc'd buffers reach a kernel socket.
func TestTx(t *testing.T) {
	modes(t, func(t *testing.T, mode string) {
		w := newWire(t)
		p := w.open(t, Options{Mode: mode})
		done := make(chan int, 1)
		seen := make([]bool, count)
		go func() {
			done <- readAll(t, w.kernelSocket, count, func(d []byte) error {
				var k int
				if _, err := fmt.Sscanf(string(d), "tx %04d", &k); err != nil || k < 0 || k >= count || seen[k] {
					return fmt.Errorf("payload %q: unexpected or duplicate", d)
				}
				seen[k] = true
				return nil
			})
		}()
		b := nic.NewBatch(32)
		sent := 0
		deadline := time.Now().Add(10 * time.Second)
		for sent < count && time.Now().Before(deadline) {
			want := min(32, count-sent)
			n := p.Alloc(b, want)
			for i := 0; i < n; i++ {
				f := w.frame(t, []byte(fmt.Sprintf("tx %04d", sent+i)))
				b.Frames[i] = b.Frames[i][:copy(b.Frames[i], f)]
			}
			k := p.TxBurst(b)
			if k < n {
				// The rest were freed; resend those numbers.
				time.Sleep(100 * time.Microsecond)
			}
			sent += k
		}
		got := <-done
		st, _ := p.Stats()
		t.Logf("stats: %+v", st)
		if sent != count || got != count {
			t.Fatalf("sent %d, kernel received %d of %d", sent, got, count)
		}
	})
}

// TestReflect: frames from RxBurst go back out with TxBurst in place.
func TestReflect(t *testing.T) {
	modes(t, func(t *testing.T, mode string) {
		w := newWire(t)
		p := w.open(t, Options{Mode: mode})
		stop := make(chan struct{})
		reflected := make(chan int, 1)
		go func() {
			b := nic.NewBatch(32)
			total := 0
			for {
				select {
				case <-stop:
					reflected <- total
					return
				default:
				}
				n := p.RxBurst(b)
				for i := 0; i < n; i++ {
					swap(b.Frames[i])
				}
				total += p.TxBurst(b)
				if n == 0 {
					runtime.Gosched()
				}
			}
		}()
		dst := &net.UDPAddr{IP: w.portIP, Port: portUDP}
		buf := make([]byte, 2048)
		echoes := 0
		for i := 0; i < count; i++ {
			msg := fmt.Sprintf("echo %04d", i)
			if _, err := w.kernelSocket.WriteToUDP([]byte(msg), dst); err != nil {
				t.Fatal(err)
			}
			w.kernelSocket.SetReadDeadline(time.Now().Add(2 * time.Second))
			k, from, err := w.kernelSocket.ReadFromUDP(buf)
			if err != nil {
				t.Errorf("echo %d: %v", i, err)
				break
			}
			if string(buf[:k]) != msg || !from.IP.Equal(w.portIP) || from.Port != portUDP {
				t.Errorf("echo %d: %q from %s", i, buf[:k], from)
				break
			}
			echoes++
		}
		close(stop)
		n := <-reflected
		st, _ := p.Stats()
		t.Logf("echoes %d, reflected %d, stats: %+v", echoes, n, st)
		if echoes != count {
			t.Fatalf("got %d of %d echoes", echoes, count)
		}
	})
}

// swap turns an Ethernet/IPv4/UDP frame around in place: MACs, IPs and ports
// swapped, which leaves both checksums valid.
func swap(f []byte) {
	if len(f) < 42 || f[12] != 0x08 || f[13] != 0x00 {
		return // not IPv4: sent back as is
	}
	var mac [6]byte
	copy(mac[:], f[0:6])
	copy(f[0:6], f[6:12])
	copy(f[6:12], mac[:])
	ihl := int(f[14]&0x0f) * 4
	var ip [4]byte
	copy(ip[:], f[26:30])
	copy(f[26:30], f[30:34])
	copy(f[30:34], ip[:])
	u := 14 + ihl
	var port [2]byte
	copy(port[:], f[u:u+2])
	copy(f[u:u+2], f[u+2:u+4])
	copy(f[u+2:u+4], port[:])
}

// TestCloseDetaches: Close leaves no XDP program on the interface.
func TestCloseDetaches(t *testing.T) {
	w := newWire(t)
	p := w.open(t, Options{})
	if ok, id := w.xdpAttached(t); !ok {
		t.Fatal("no XDP program attached after Open")
	} else {
		t.Logf("attached program %d, %s", id, p.Features().Driver)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if ok, id := w.xdpAttached(t); ok {
		t.Fatalf("XDP program %d still attached after Close", id)
	}
	if out := sh(t, "ip", "-n", w.nsA, "link", "show", "xa"); strings.Contains(out, "xdp") {
		t.Fatalf("ip link show still shows xdp:\n%s", out)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestCrashCleanup: a Port whose process is killed with SIGKILL leaves nothing
// (BPF link) or a program Cleanup removes (legacy netlink attachment), and a
// second Open works either way.
func TestCrashCleanup(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("legacy=%t", legacy), func(t *testing.T) {
			w := newWire(t)
			exe, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(exe)
			cmd.Env = append(os.Environ(), childNSEnv+"="+w.nsA)
			if legacy {
				cmd.Env = append(cmd.Env, "JR_AFXDP_LEGACY_ATTACH=1")
			}
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			line, _ := bufio.NewReader(out).ReadString('\n')
			if !strings.HasPrefix(line, "ready") {
				t.Fatalf("child: %q", line)
			}
			t.Logf("child: %s", strings.TrimSpace(line))
			if ok, _ := w.xdpAttached(t); !ok {
				t.Fatal("child's program not attached")
			}
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			// The kernel releases a dead process's link asynchronously.
			var attached bool
			var id uint32
			for i := 0; i < 100; i++ {
				if attached, id = w.xdpAttached(t); !attached {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			t.Logf("after SIGKILL: attached=%t (program %d)", attached, id)
			if attached != legacy {
				t.Fatalf("after SIGKILL attached=%t, want %t", attached, legacy)
			}
			if err := inNS(w.a, func() error { return Cleanup("xa") }); err != nil {
				t.Fatalf("Cleanup: %v", err)
			}
			if ok, id := w.xdpAttached(t); ok {
				t.Fatalf("program %d still attached after Cleanup", id)
			}
			p := w.open(t, Options{Mode: "generic"})
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCleanupLeavesLivePort: Cleanup does not pull the program from under an
// open Port, and a second Open on the same interface fails clearly.
func TestCleanupLeavesLivePort(t *testing.T) {
	w := newWire(t)
	w.open(t, Options{})
	err := inNS(w.a, func() error { return Cleanup("xa") })
	if err == nil || !strings.Contains(err.Error(), "live process") {
		t.Fatalf("Cleanup with a live Port: %v", err)
	}
	if ok, _ := w.xdpAttached(t); !ok {
		t.Fatal("Cleanup detached a live Port's program")
	}
	err = inNS(w.a, func() error { _, err := Open("xa", Options{}); return err })
	if err == nil {
		t.Fatal("second Open on the same interface succeeded")
	}
	t.Logf("second Open: %v", err)
}

// TestBadInterface: a missing interface is a clear error, and bad options are.
func TestBadInterface(t *testing.T) {
	_, err := Open("jr-nosuch0", Options{})
	if err == nil || !strings.Contains(err.Error(), "jr-nosuch0") || !strings.Contains(err.Error(), "no such interface") {
		t.Fatalf("Open of a missing interface: %v", err)
	}
	t.Log(err)
	for _, o := range []Options{{RingSize: 1000}, {Frames: 100}, {Mode: "fast"}, {Queue: -1}} {
		if _, err := Open("lo", o); err == nil {
			t.Fatalf("Open(lo, %+v) succeeded", o)
		} else {
			t.Log(err)
		}
	}
}

// TestBadQueue: a queue the interface lacks is refused before anything is set up.
func TestBadQueue(t *testing.T) {
	w := newWire(t)
	err := inNS(w.a, func() error { _, err := Open("xa", Options{Queue: 3}); return err })
	if err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Fatalf("Open queue 3 of a 1-queue veth: %v", err)
	}
}

// benchMode is the benchmarks' attach mode: $JR_AFXDP_BENCH_MODE, default auto
// (native on veth).
func benchMode() string {
	if m := os.Getenv("JR_AFXDP_BENCH_MODE"); m != "" {
		return m
	}
	return "auto"
}

// BenchmarkTxBurst: Alloc, write a 64-byte frame, TxBurst, in bursts of 32, to a
// MAC nobody has (the kernel side drops it at once). Reports ns/frame.
func BenchmarkTxBurst(b *testing.B) {
	w := newWire(b)
	p := w.open(b, Options{Mode: benchMode()})
	f := w.frame(b, make([]byte, 18))
	copy(f[0:6], []byte{0x02, 0, 0, 0, 0, 0x99})
	batch := nic.NewBatch(32)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	sent := 0
	for i := 0; i < b.N; i++ {
		n := p.Alloc(batch, 32)
		for j := 0; j < n; j++ {
			batch.Frames[j] = batch.Frames[j][:copy(batch.Frames[j], f)]
		}
		sent += p.TxBurst(batch)
	}
	el := time.Since(start)
	b.ReportMetric(float64(el.Nanoseconds())/float64(max(sent, 1)), "ns/frame")
	b.ReportMetric(float64(sent)/float64(b.N), "frames/op")
}

// BenchmarkRxTx: ping-pong between two Ports, one on each end of the veth: A
// sends a burst of 32, B reflects what it receives in place, A receives the
// echoes. Reports ns per frame (one way = half a round).
func BenchmarkRxTx(b *testing.B) {
	w := newWire(b)
	pa := w.open(b, Options{Mode: benchMode()})
	var pb *Port
	if err := inNS(w.b, func() error {
		var err error
		pb, err = Open("xb", Options{Mode: benchMode()})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pb.Close() })
	f := w.frame(b, make([]byte, 18))
	ba, bb := nic.NewBatch(32), nic.NewBatch(32)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	frames := 0
	for i := 0; i < b.N; i++ {
		n := pa.Alloc(ba, 32)
		for j := 0; j < n; j++ {
			ba.Frames[j] = ba.Frames[j][:copy(ba.Frames[j], f)]
		}
		sent := pa.TxBurst(ba)
		progress := time.Now()
		for got := 0; got < sent; {
			if k := pb.RxBurst(bb); k > 0 {
				for j := 0; j < k; j++ {
					swap(bb.Frames[j])
				}
				pb.TxBurst(bb)
			}
			k := pa.RxBurst(ba)
			pa.Free(ba)
			got += k
			frames += k
			if k > 0 {
				progress = time.Now()
			} else if time.Since(progress) > time.Second {
				b.Fatalf("lost frames: %d of %d echoed", got, sent)
			}
		}
	}
	el := time.Since(start)
	b.ReportMetric(float64(el.Nanoseconds())/float64(max(frames, 1)), "ns/frame")
}
