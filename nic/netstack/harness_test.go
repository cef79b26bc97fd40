package netstack

import (
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/joyride-bench/joyride/nic"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// The scenarios below run two real gVisor stacks (or one stack and a raw port)
// over a pair of nic.Ports. dpdk_test.go runs them over a memif pair; the memPort
// tests run them over ports in Go memory, so the endpoint is tested (and can run
// under -race) on machines without DPDK.

const nicID = 1

var (
	ipA = tcpip.AddrFrom4([4]byte{198, 18, 0, 1})
	ipB = tcpip.AddrFrom4([4]byte{198, 18, 0, 2})
)

// node is a gVisor stack over one port through an Endpoint, polled by its own
// goroutine as an engine would.
type node struct {
	s    *stack.Stack
	ep   *Endpoint
	stop atomic.Bool
	done chan struct{}
}

func newNode(tb testing.TB, p nic.Port, addr tcpip.Address) *node {
	tb.Helper()
	return newNodeOpts(tb, p, addr, pollOpts{})
}

// pollOpts shape a node's poller. spin: it declares SetSpinning while it runs, so
// writes from other goroutines wait for its next Poll. lock: it runs locked to
// its OS thread, as an engine does.
type pollOpts struct{ spin, lock bool }

func newNodeOpts(tb testing.TB, p nic.Port, addr tcpip.Address, o pollOpts) *node {
	tb.Helper()
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{udp.NewProtocol, tcp.NewProtocol, icmp.NewProtocol4},
	})
	ep := New(p, Options{})
	if err := s.CreateNIC(nicID, ep); err != nil {
		tb.Fatalf("CreateNIC: %v", err)
	}
	pa := tcpip.AddressWithPrefix{Address: addr, PrefixLen: 24}
	if err := s.AddProtocolAddress(nicID, tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: pa}, stack.AddressProperties{}); err != nil {
		tb.Fatalf("AddProtocolAddress: %v", err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: pa.Subnet(), NIC: nicID}})
	n := &node{s: s, ep: ep, done: make(chan struct{})}
	go func() {
		defer close(n.done)
		if o.lock {
			runtime.LockOSThread()
		}
		if o.spin {
			ep.SetSpinning(true)
			defer ep.SetSpinning(false)
		}
		for !n.stop.Load() {
			if rx, tx := ep.Poll(); rx+tx == 0 {
				runtime.Gosched() // two vCPUs: let the applications run
			}
		}
	}()
	return n
}

// shutdown closes the stacks while every poller still runs (so the last frames
// can leave), then stops the pollers.
func shutdown(nodes ...*node) {
	for _, n := range nodes {
		n.s.Close()
	}
	for _, n := range nodes {
		n.stop.Store(true)
		<-n.done
		n.s.Wait()
	}
}

func mac(p nic.Port) tcpip.LinkAddress { return tcpip.LinkAddress(p.MAC()) }

// udpEchoServer echoes datagrams on a's port 7 until closed.
func udpEchoServer(tb testing.TB, a *node) *gonet.UDPConn {
	srv, err := gonet.DialUDP(a.s, &tcpip.FullAddress{NIC: nicID, Addr: ipA, Port: 7}, nil, ipv4.ProtocolNumber)
	if err != nil {
		tb.Fatal(err)
	}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := srv.ReadFrom(buf)
			if err != nil {
				return
			}
			if _, err := srv.WriteTo(buf[:n], from); err != nil {
				return
			}
		}
	}()
	return srv
}

func udpClient(tb testing.TB, b *node) *gonet.UDPConn {
	c, err := gonet.DialUDP(b.s, nil, &tcpip.FullAddress{NIC: nicID, Addr: ipA, Port: 7}, ipv4.ProtocolNumber)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// testUDPEcho: 1000 datagrams of varied sizes (up to 1400 B) echoed intact, one
// in flight; the first one needs ARP (no static neighbours).
func testUDPEcho(t *testing.T, pa, pb nic.Port) {
	a, b := newNode(t, pa, ipA), newNode(t, pb, ipB)
	defer shutdown(a, b)
	srv := udpEchoServer(t, a)
	defer srv.Close()
	c := udpClient(t, b)
	defer c.Close()
	rng := rand.New(rand.NewSource(1))
	msg, got := make([]byte, 1400), make([]byte, 2048)
	for i := 0; i < 1000; i++ {
		m := msg[:1+rng.Intn(len(msg))]
		rng.Read(m)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(m); err != nil {
			t.Fatalf("datagram %d: write: %v", i, err)
		}
		n, err := c.Read(got)
		if err != nil {
			t.Fatalf("datagram %d: read: %v (endpoint stats a=%+v b=%+v)", i, err, a.ep.Stats(), b.ep.Stats())
		}
		if !bytes.Equal(got[:n], m) {
			t.Fatalf("datagram %d came back altered: %d B sent, %d B received", i, len(m), n)
		}
	}
	for _, n := range []*node{a, b} {
		st := n.ep.Stats()
		if st.RxFrames < 1000 || st.TxFrames < 1000 {
			t.Errorf("endpoint counted rx %d tx %d frames for 1000 echoes", st.RxFrames, st.TxFrames)
		}
		if st.RxBad+st.TxNoBuffer+st.TxRingFull+st.TxTooBig != 0 {
			t.Errorf("drops or bad frames: %+v", st)
		}
		if errs := n.s.Stats().UDP.ChecksumErrors.Value(); errs != 0 {
			t.Errorf("%d UDP checksum errors", errs)
		}
	}
	t.Logf("a: %+v", a.ep.Stats())
}

// testARP: fresh stacks know no neighbours; the first datagram gets through and
// leaves both stacks with each other's MAC, learnt by ARP on the wire.
func testARP(t *testing.T, pa, pb nic.Port) {
	a, b := newNode(t, pa, ipA), newNode(t, pb, ipB)
	defer shutdown(a, b)
	if ns, _ := b.s.Neighbors(nicID, ipv4.ProtocolNumber); len(ns) != 0 {
		t.Fatalf("fresh stack has neighbours: %v", ns)
	}
	srv := udpEchoServer(t, a)
	defer srv.Close()
	c := udpClient(t, b)
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("first")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "first" {
		t.Fatalf("first datagram: %q, %v", buf[:n], err)
	}
	find := func(s *stack.Stack, addr tcpip.Address) tcpip.LinkAddress {
		ns, err := s.Neighbors(nicID, ipv4.ProtocolNumber)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ns {
			if e.Addr == addr {
				return e.LinkAddr
			}
		}
		return ""
	}
	if got := find(b.s, ipA); got != mac(pa) {
		t.Errorf("b resolved %v to %q, want %q", ipA, got, mac(pa))
	}
	if got := find(a.s, ipB); got != mac(pb) {
		t.Errorf("a resolved %v to %q, want %q", ipB, got, mac(pb))
	}
	if sent, replies := b.s.Stats().ARP.OutgoingRequestsSent.Value(), b.s.Stats().ARP.RepliesReceived.Value(); sent == 0 || replies == 0 {
		t.Errorf("b sent %d ARP requests and received %d replies", sent, replies)
	}
	if r := a.s.Stats().ARP.OutgoingRepliesSent.Value(); r == 0 {
		t.Errorf("a sent no ARP reply")
	}
}

// testTCP: 4 MiB each way on one connection at once, compared byte for byte, and
// both sides see a clean io.EOF after the peer's CloseWrite.
func testTCP(t *testing.T, pa, pb nic.Port, o pollOpts) {
	a, b := newNodeOpts(t, pa, ipA, o), newNodeOpts(t, pb, ipB, o)
	defer shutdown(a, b)
	const size = 4 << 20
	up, down := make([]byte, size), make([]byte, size)
	rand.New(rand.NewSource(2)).Read(up)
	rand.New(rand.NewSource(3)).Read(down)
	deadline := time.Now().Add(60 * time.Second)

	ln, err := gonet.ListenTCP(a.s, tcpip.FullAddress{NIC: nicID, Addr: ipA, Port: 80}, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		got []byte
		err error
	}
	srvDone := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvDone <- result{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(deadline)
		wErr := make(chan error, 1)
		go func() {
			_, err := c.Write(down)
			if err == nil {
				err = c.(*gonet.TCPConn).CloseWrite()
			}
			wErr <- err
		}()
		got, err := readToEOF(c)
		if werr := <-wErr; err == nil {
			err = werr
		}
		srvDone <- result{got, err}
	}()

	start := time.Now()
	c, err := gonet.DialTCP(b.s, tcpip.FullAddress{NIC: nicID, Addr: ipA, Port: 80}, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(deadline)
	wErr := make(chan error, 1)
	go func() {
		_, err := c.Write(up)
		if err == nil {
			err = c.CloseWrite()
		}
		wErr <- err
	}()
	gotDown, err := readToEOF(c)
	if err != nil {
		t.Fatalf("client read: %v", err)
	}
	if err := <-wErr; err != nil {
		t.Fatalf("client write: %v", err)
	}
	r := <-srvDone
	if r.err != nil {
		t.Fatalf("server: %v", r.err)
	}
	elapsed := time.Since(start)
	if !bytes.Equal(gotDown, down) {
		t.Fatalf("server->client: %d of %d bytes, contents differ", len(gotDown), size)
	}
	if !bytes.Equal(r.got, up) {
		t.Fatalf("client->server: %d of %d bytes, contents differ", len(r.got), size)
	}
	if errs := a.s.Stats().TCP.ChecksumErrors.Value() + b.s.Stats().TCP.ChecksumErrors.Value(); errs != 0 {
		t.Errorf("%d TCP checksum errors", errs)
	}
	sa, sb := a.ep.Stats(), b.ep.Stats()
	t.Logf("2 x 4 MiB in %v (%.0f Mbit/s each way); a: %+v; b: %+v", elapsed.Round(time.Millisecond),
		float64(size*8)/elapsed.Seconds()/1e6, sa, sb)
}

// readToEOF reads until the peer's FIN and insists on a clean io.EOF.
func readToEOF(c net.Conn) ([]byte, error) {
	var out bytes.Buffer
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		out.Write(buf[:n])
		if err == io.EOF {
			return out.Bytes(), nil
		}
		if err != nil {
			return out.Bytes(), fmt.Errorf("after %d bytes: %w", out.Len(), err)
		}
	}
}

// testStats: the endpoint's frame counters agree with the port's own, frame for
// frame, on a quiet pair after 100 one-way datagrams and their ARP exchange.
func testStats(t *testing.T, pa, pb nic.Port) {
	// Frames earlier tests left in the rings would be counted by the new
	// endpoints: drain them first.
	drainQuiet(pa, pb)
	pa0, err := pa.Stats()
	if err != nil {
		t.Fatal(err)
	}
	pb0, _ := pb.Stats()
	a, b := newNode(t, pa, ipA), newNode(t, pb, ipB)
	srv, err := gonet.DialUDP(a.s, &tcpip.FullAddress{NIC: nicID, Addr: ipA, Port: 9}, nil, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	c := udpClient(t, b)
	c.Close()
	c, _ = gonet.DialUDP(b.s, nil, &tcpip.FullAddress{NIC: nicID, Addr: ipA, Port: 9}, ipv4.ProtocolNumber)
	const n = 100
	buf := make([]byte, 64)
	for i := 0; i < n; i++ {
		if _, err := c.Write(buf[:32]); err != nil {
			t.Fatal(err)
		}
		srv.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := srv.ReadFrom(buf); err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
	}
	c.Close()
	srv.Close()
	// Quiet: wait until the counters stop moving.
	sa, sb := a.ep.Stats(), b.ep.Stats()
	for i := 0; i < 100; i++ {
		time.Sleep(20 * time.Millisecond)
		na, nb := a.ep.Stats(), b.ep.Stats()
		if na.RxFrames == sa.RxFrames && na.TxFrames == sa.TxFrames && nb.RxFrames == sb.RxFrames && nb.TxFrames == sb.TxFrames {
			break
		}
		sa, sb = na, nb
	}
	pa1, _ := pa.Stats()
	pb1, _ := pb.Stats()
	shutdown(a, b)
	t.Logf("a: %+v", sa)
	t.Logf("b: %+v", sb)
	// b sent n datagrams + 1 ARP request (+ its ARP reply to a's probe, if any).
	if sb.TxFrames < n+1 || sa.RxFrames < n+1 {
		t.Errorf("b counted %d frames sent, a %d received; want >= %d", sb.TxFrames, sa.RxFrames, n+1)
	}
	if sa.RxFrames != sb.TxFrames || sb.RxFrames != sa.TxFrames {
		t.Errorf("frames lost between the endpoints: a rx %d tx %d, b rx %d tx %d", sa.RxFrames, sa.TxFrames, sb.RxFrames, sb.TxFrames)
	}
	if sb.TxBursts == 0 || sa.RxBursts == 0 || sa.PollRounds == 0 {
		t.Errorf("bursts not counted: %+v", sa)
	}
	if got := pb1.TxPackets - pb0.TxPackets; got != sb.TxFrames {
		t.Errorf("port b sent %d frames, endpoint counted %d", got, sb.TxFrames)
	}
	if got := pa1.RxPackets - pa0.RxPackets; got != sa.RxFrames+sa.RxBad+sa.RxOtherHost+sa.RxDetached {
		t.Errorf("port a received %d frames, endpoint counted %d", got, sa.RxFrames)
	}
}

// drainQuiet receives and frees on both ports until neither has had a frame for
// 50 ms.
func drainQuiet(ports ...nic.Port) {
	rx := nic.NewBatch(32)
	for quiet := time.Now(); time.Since(quiet) < 50*time.Millisecond; {
		for _, p := range ports {
			if p.RxBurst(rx) > 0 {
				p.Free(rx)
				quiet = time.Now()
			}
		}
		runtime.Gosched()
	}
}

// testChecksums runs one stack against a raw port driven by the test. With no
// offload advertised, the stack must drop a datagram with a corrupt UDP checksum,
// accept the same datagram with a correct one, and send datagrams whose IPv4 and
// UDP checksums are right on the wire. raw must be the memif client side: it is
// polled by the test.
func testChecksums(t *testing.T, pa, raw nic.Port) {
	a := newNode(t, pa, ipA)
	defer shutdown(a)
	if c := a.ep.Capabilities(); c&(stack.CapabilityRXChecksumOffload|stack.CapabilityTXChecksumOffload) != 0 {
		t.Fatalf("offloads advertised for a port without them (%v): %v", pa.Features(), c)
	}
	srv, err := gonet.DialUDP(a.s, &tcpip.FullAddress{NIC: nicID, Addr: ipA, Port: 9}, nil, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := a.s.AddStaticNeighbor(nicID, ipv4.ProtocolNumber, ipB, mac(raw)); err != nil {
		t.Fatal(err)
	}
	rx := nic.NewBatch(32)
	drain := func() {
		for raw.RxBurst(rx) > 0 {
			raw.Free(rx)
		}
	}
	drain()
	send := func(f []byte) {
		tx := nic.NewBatch(1)
		if raw.Alloc(tx, 1) != 1 {
			t.Fatal("raw port: no buffer")
		}
		tx.Frames[0] = tx.Frames[0][:copy(tx.Frames[0], f)]
		if raw.TxBurst(tx) != 1 {
			t.Fatal("raw port: TX ring full")
		}
	}
	send(udpFrame(mac(raw), mac(pa), ipB, ipA, 5555, 9, []byte("corrupt"), true))
	send(udpFrame(mac(raw), mac(pa), ipB, ipA, 5555, 9, []byte("correct"), false))
	buf := make([]byte, 64)
	srv.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := srv.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "correct" {
		t.Fatalf("received %q from %v, %v; want only the correct datagram", buf[:n], from, err)
	}
	if e := a.s.Stats().UDP.ChecksumErrors.Value(); e != 1 {
		t.Fatalf("stack counted %d UDP checksum errors, want 1", e)
	}

	// The other way: the stack computes the checksums itself.
	deadline := time.Now().Add(5 * time.Second)
	var sent time.Time
	for time.Now().Before(deadline) {
		if time.Since(sent) > time.Second {
			if _, err := srv.WriteTo([]byte("reply"), &net.UDPAddr{IP: net.IP(ipB.AsSlice()), Port: 5555}); err != nil {
				t.Fatal(err)
			}
			sent = time.Now()
		}
		k := raw.RxBurst(rx)
		for i := 0; i < k; i++ {
			f := header.Ethernet(rx.Frames[i])
			if f.Type() != header.IPv4ProtocolNumber {
				continue
			}
			ip := header.IPv4(rx.Frames[i][header.EthernetMinimumSize:])
			if !ip.IsValid(len(ip)) || ip.Protocol() != uint8(header.UDPProtocolNumber) || ip.DestinationAddress() != ipB {
				continue
			}
			u := header.UDP(ip.Payload())
			if u.DestinationPort() != 5555 {
				continue
			}
			if f.DestinationAddress() != mac(raw) || f.SourceAddress() != mac(pa) {
				t.Errorf("Ethernet %v -> %v", f.SourceAddress(), f.DestinationAddress())
			}
			if !ip.IsChecksumValid() {
				t.Error("IPv4 header checksum wrong")
			}
			if u.Checksum() == 0 || !u.IsChecksumValid(ip.SourceAddress(), ip.DestinationAddress(), checksum.Checksum(u.Payload(), 0)) {
				t.Errorf("UDP checksum %#04x wrong", u.Checksum())
			}
			if string(u.Payload()) != "reply" {
				t.Errorf("payload %q", u.Payload())
			}
			raw.Free(rx)
			return
		}
		raw.Free(rx)
		runtime.Gosched()
	}
	t.Fatal("the stack's datagram never reached the raw port")
}

// udpFrame builds an Ethernet/IPv4/UDP frame with correct checksums, or with the
// UDP checksum corrupted.
func udpFrame(src, dst tcpip.LinkAddress, sip, dip tcpip.Address, sport, dport uint16, payload []byte, corrupt bool) []byte {
	const hl = header.EthernetMinimumSize + header.IPv4MinimumSize + header.UDPMinimumSize
	f := make([]byte, hl+len(payload))
	header.Ethernet(f).Encode(&header.EthernetFields{SrcAddr: src, DstAddr: dst, Type: header.IPv4ProtocolNumber})
	ip := header.IPv4(f[header.EthernetMinimumSize:])
	ulen := uint16(header.UDPMinimumSize + len(payload))
	ip.Encode(&header.IPv4Fields{TotalLength: header.IPv4MinimumSize + ulen, TTL: 64,
		Protocol: uint8(header.UDPProtocolNumber), SrcAddr: sip, DstAddr: dip})
	ip.SetChecksum(^ip.CalculateChecksum())
	u := header.UDP(ip[header.IPv4MinimumSize:])
	u.Encode(&header.UDPFields{SrcPort: sport, DstPort: dport, Length: ulen})
	copy(u.Payload(), payload)
	xsum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, sip, dip, ulen)
	xsum = checksum.Checksum(payload, xsum)
	u.SetChecksum(^u.CalculateChecksum(xsum))
	if corrupt {
		u.SetChecksum(u.Checksum() ^ 0x5a5a)
	}
	return f
}

// benchUDPRoundTrip: one 64 B datagram in flight, echoed by the other stack.
func benchUDPRoundTrip(b *testing.B, pa, pb nic.Port, o pollOpts) {
	na, nb := newNodeOpts(b, pa, ipA, o), newNodeOpts(b, pb, ipB, o)
	defer shutdown(na, nb)
	srv := udpEchoServer(b, na)
	defer srv.Close()
	c := udpClient(b, nb)
	defer c.Close()
	msg, got := make([]byte, 64), make([]byte, 2048)
	c.SetDeadline(time.Now().Add(time.Minute))
	for i := 0; i < 100; i++ { // warm up: ARP, pools
		c.Write(msg)
		if _, err := c.Read(got); err != nil {
			b.Fatal(err)
		}
	}
	a0, b0 := na.ep.Stats(), nb.ep.Stats()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Read(got); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	a1, b1 := na.ep.Stats(), nb.ep.Stats()
	b.ReportMetric(float64(a1.TxFrames-a0.TxFrames+b1.TxFrames-b0.TxFrames)/float64(b.N), "frames/op")
	b.ReportMetric(float64(a1.TxFrames-a0.TxFrames+b1.TxFrames-b0.TxFrames)/float64(a1.TxBursts-a0.TxBursts+b1.TxBursts-b0.TxBursts), "frames/burst")
}

// memPort is a nic.Port in Go memory: TxBurst moves frames to the peer's receive
// queue (1024 deep, drops beyond, like a full ring). It checks the one-goroutine
// rule: concurrent calls panic.
type memPort struct {
	mac  net.HardwareAddr
	peer *memPort
	busy atomic.Int32
	held atomic.Int64 // buffers handed out (Alloc, RxBurst) and not yet returned

	mu               sync.Mutex
	q                [][]byte
	rxPkts, txPkts   uint64
	rxMissed, txErrs uint64
}

func memPair() (*memPort, *memPort) {
	a := &memPort{mac: net.HardwareAddr{0x02, 0, 0, 0, 0, 0xa}}
	b := &memPort{mac: net.HardwareAddr{0x02, 0, 0, 0, 0, 0xb}, peer: a}
	a.peer = b
	return a, b
}

func (p *memPort) enter() {
	if p.busy.Add(1) != 1 {
		panic("memPort: called by two goroutines at once")
	}
}
func (p *memPort) exit() { p.busy.Add(-1) }

func (p *memPort) RxBurst(b *nic.Batch) int {
	p.enter()
	defer p.exit()
	p.mu.Lock()
	n := min(len(p.q), b.Cap())
	for i := 0; i < n; i++ {
		b.Frames[i], b.Handles[i] = p.q[i], nil
		p.q[i] = nil
	}
	p.q = p.q[n:]
	p.rxPkts += uint64(n)
	p.mu.Unlock()
	p.held.Add(int64(n))
	b.N = n
	return n
}

func (p *memPort) Alloc(b *nic.Batch, n int) int {
	p.enter()
	defer p.exit()
	n = min(n, b.Cap())
	for i := 0; i < n; i++ {
		b.Frames[i] = make([]byte, 2048)
	}
	p.held.Add(int64(n))
	b.N = n
	return n
}

func (p *memPort) TxBurst(b *nic.Batch) int {
	p.enter()
	defer p.exit()
	q := p.peer
	q.mu.Lock()
	sent := 0
	for i := 0; i < b.N; i++ {
		if len(q.q) >= 1024 {
			q.rxMissed++
			continue
		}
		q.q = append(q.q, b.Frames[i])
		sent++
	}
	q.mu.Unlock()
	p.mu.Lock()
	p.txPkts += uint64(sent)
	p.txErrs += uint64(b.N - sent)
	p.mu.Unlock()
	p.held.Add(-int64(b.N))
	b.N = 0
	return sent
}

func (p *memPort) Free(b *nic.Batch) {
	p.enter()
	defer p.exit()
	p.held.Add(-int64(b.N))
	b.N = 0
}

func (p *memPort) MAC() net.HardwareAddr { return p.mac }
func (p *memPort) MTU() int              { return 1500 }
func (p *memPort) Features() nic.Features {
	return nic.Features{Driver: "mem", RxQueues: 1, TxQueues: 1}
}
func (p *memPort) Close() error { return nil }
func (p *memPort) Stats() (nic.Stats, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return nic.Stats{RxPackets: p.rxPkts, TxPackets: p.txPkts, RxMissed: p.rxMissed, TxErrors: p.txErrs}, nil
}

var _ nic.Port = (*memPort)(nil)

func TestMemUDPEcho(t *testing.T)     { a, b := memPair(); testUDPEcho(t, a, b) }
func TestMemARP(t *testing.T)         { a, b := memPair(); testARP(t, a, b) }
func TestMemTCP(t *testing.T)         { a, b := memPair(); testTCP(t, a, b, pollOpts{}) }
func TestMemTCPSpinning(t *testing.T) { a, b := memPair(); testTCP(t, a, b, pollOpts{spin: true}) }
func TestMemStats(t *testing.T)       { a, b := memPair(); testStats(t, a, b) }
func TestMemChecksums(t *testing.T)   { a, b := memPair(); testChecksums(t, a, b) }

// BenchmarkMemUDPRoundTrip is BenchmarkUDPRoundTrip over Go-memory ports: the
// stack and endpoint cost without DPDK.
func BenchmarkMemUDPRoundTrip(b *testing.B) {
	pa, pb := memPair()
	benchUDPRoundTrip(b, pa, pb, pollOpts{})
}

// TestMemNoBufferLeak: after 1000 echoes and shutdown every buffer the
// endpoints took from the ports (RX bursts, TX buffers) is back.
func TestMemNoBufferLeak(t *testing.T) {
	a, b := memPair()
	testUDPEcho(t, a, b)
	if a.held.Load() != 0 || b.held.Load() != 0 {
		t.Fatalf("buffers not returned to the ports: %d, %d", a.held.Load(), b.held.Load())
	}
}

// TestMemCloseReleasesBuffers: frames still queued when the stack closes the
// endpoint, and its spare TX buffers, go back to the port.
func TestMemCloseReleasesBuffers(t *testing.T) {
	pa, pb := memPair()
	a := newNode(t, pa, ipA)
	a.stop.Store(true) // no poller from here on
	<-a.done
	a.ep.SetSpinning(true) // writes now only queue
	if err := a.s.AddStaticNeighbor(nicID, ipv4.ProtocolNumber, ipB, mac(pb)); err != nil {
		t.Fatal(err)
	}
	c, err := gonet.DialUDP(a.s, nil, &tcpip.FullAddress{NIC: nicID, Addr: ipB, Port: 9}, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if _, err := c.Write([]byte("pending")); err != nil {
			t.Fatal(err)
		}
	}
	if st := a.ep.Stats(); st.TxFrames != 0 || st.TxDeferred != 5 || pa.held.Load() == 0 {
		t.Fatalf("before Close: %+v, %d buffers held", st, pa.held.Load())
	}
	c.Close()
	a.s.Close()
	a.s.Wait()
	if st := a.ep.Stats(); st.TxClosed != 5 || pa.held.Load() != 0 {
		t.Fatalf("after Close: %+v, %d buffers held", st, pa.held.Load())
	}
	if rx, tx := a.ep.Poll(); rx+tx != 0 {
		t.Fatalf("Poll after Close moved frames: %d %d", rx, tx)
	}
}
