//go:build dpdk && cgo

package experiments

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/joyride-bench/joyride/stacks"
	"github.com/joyride-bench/joyride/stacks/joyride/channel"
	"github.com/joyride-bench/joyride/stacks/joyride/proto"
	"github.com/joyride-bench/joyride/stacks/joyride/proto/prototest"
	"github.com/joyride-bench/joyride/testbed/local"
)

// Hostile tenants of a real joyrided on the namespace testbed: beside an
// honest jrapp (UDP and TCP echo, answering a Linux client), an application
// floods its ring, hoards sockets, hoards connections, or never reads. Each
// test measures the honest application's round trips alone and beside the
// hostile one, reads joyrided's memory and descriptors from /proc before and
// after, and checks the hostile application got the errors of its limits
// (docs/SECURITY.md) and joyrided counted them (its "limit counters" line,
// which the runner records in meta.json).
//
// The latency bound is a pathology detector, not a measurement: beside a
// hostile tenant the honest p99 must stay within hostileP99Factor of its p99
// alone or hostileP99Floor, whichever is larger: the honest application,
// joyrided and the hostile application's work share one core here, and a
// round trip that waits behind the scheduler's slices of busy threads (a
// few ms each) is the machine's, not a pathology. Before the engine
// took a bounded batch per application, one flooding application's ring of
// 1024 messages stood in front of every honest message; the flood test
// measures both.
const (
	hostileP99Factor = 20
	hostileP99Floor  = 10 * time.Millisecond
	// honestRounds is the round trips measured per protocol and phase.
	honestRounds = 1500
)

// hostileBed is a joyride testbed with an honest UDP and TCP echo attached.
type hostileBed struct {
	*joyrideBed
	udpPort, tcpPort int
}

// upHostileBed starts joyrided with extra flags and the honest jrapps.
func upHostileBed(t *testing.T, extra ...string) *hostileBed {
	t.Helper()
	b := upBed(t)
	f, _ := stacks.Lookup("joyride")
	opts, _ := stacks.DecodeOptions("joyride", nil)
	d := f.Daemon(opts, b.env())
	args := append(append(d.Args, "-file-prefix", "jrd-"+b.tb.ID), extra...)
	var err error
	b.daemon, err = startProcess(context.Background(), b.tb, b.bin, d.Binary, 0, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.daemon.stop() })
	h := &hostileBed{joyrideBed: b, udpPort: 9300, tcpPort: 9301}
	b.app(t, "echo", "udp", h.udpPort)
	b.app(t, "echo", "tcp", h.tcpPort)
	return h
}

// honestLatency is what the honest application's client measured.
type honestLatency struct {
	udpP50, udpP99, tcpP50, tcpP99 time.Duration
	udpLost                        int // datagrams sent again
}

func (l honestLatency) String() string {
	return fmt.Sprintf("UDP p50 %v p99 %v (%d resent), TCP p50 %v p99 %v", l.udpP50, l.udpP99, l.udpLost, l.tcpP50, l.tcpP99)
}

// measureHonest runs honestRounds UDP and TCP round trips of 64 bytes from
// the client namespace's Linux stack; any lost or wrong echo fails the test.
func (h *hostileBed) measureHonest(t *testing.T) honestLatency {
	t.Helper()
	var l honestLatency
	for _, network := range []string{"udp4", "tcp4"} {
		port := h.udpPort
		if network == "tcp4" {
			port = h.tcpPort
		}
		var rtts []time.Duration
		err := local.InNetns(h.tb.Client.Netns, func() error {
			c, err := net.DialTimeout(network, net.JoinHostPort(h.tb.Server.Addr.Addr().String(), strconv.Itoa(port)), 5*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			msg, buf := make([]byte, 64), make([]byte, 64)
			for i := range honestRounds {
				msg[0], msg[1] = byte(i), byte(i>>8)
				start := time.Now()
				if network == "tcp4" {
					c.SetDeadline(start.Add(3 * time.Second))
					if _, err := c.Write(msg); err != nil {
						return fmt.Errorf("round trip %d: %w", i, err)
					}
					if _, err := io.ReadFull(c, buf); err != nil || buf[0] != msg[0] || buf[1] != msg[1] {
						return fmt.Errorf("round trip %d: %v (echo %x, sent %x)", i, err, buf[:2], msg[:2])
					}
					rtts = append(rtts, time.Since(start))
					continue
				}
				// UDP may lose a datagram on a wire the hostile
				// application keeps busy (the NIC's ring of 256
				// overflows as a real one would): resend, up to 5 times,
				// and count the wait from the first send.
				answered := false
				for try := 0; try < 5 && !answered; try++ {
					if try > 0 {
						l.udpLost++
					}
					if _, err := c.Write(msg); err != nil {
						return fmt.Errorf("round trip %d: %w", i, err)
					}
					for c.SetReadDeadline(time.Now().Add(300 * time.Millisecond)); ; {
						n, err := c.Read(buf)
						if err != nil {
							break // timeout: send again
						}
						if n == len(msg) && buf[0] == msg[0] && buf[1] == msg[1] {
							answered = true
							break
						}
						// A late echo of an earlier try: skip it.
					}
				}
				if !answered {
					return fmt.Errorf("round trip %d: no echo to 5 sends", i)
				}
				rtts = append(rtts, time.Since(start))
			}
			return nil
		})
		if err != nil {
			t.Fatalf("the honest application's %s echo stopped answering: %v", network, err)
		}
		slices.Sort(rtts)
		p50, p99 := rtts[len(rtts)/2], rtts[len(rtts)*99/100]
		if network == "udp4" {
			l.udpP50, l.udpP99 = p50, p99
		} else {
			l.tcpP50, l.tcpP99 = p50, p99
		}
	}
	return l
}

// checkBeside fails the test when the honest p99 beside the hostile
// application is past the bound (see hostileP99Factor).
func checkBeside(t *testing.T, alone, beside honestLatency) {
	t.Helper()
	t.Logf("honest alone:  %v", alone)
	t.Logf("honest beside: %v", beside)
	for _, c := range []struct {
		name          string
		alone, beside time.Duration
	}{{"UDP", alone.udpP99, beside.udpP99}, {"TCP", alone.tcpP99, beside.tcpP99}} {
		bound := max(hostileP99Factor*c.alone, hostileP99Floor)
		if c.beside > bound {
			t.Errorf("honest %s p99 %v beside the hostile application, %v alone: past the bound %v", c.name, c.beside, c.alone, bound)
		}
	}
	// A lost datagram now and then is the wire's; one in fifty is not.
	if beside.udpLost > honestRounds/50 {
		t.Errorf("%d of %d honest datagrams resent beside the hostile application", beside.udpLost, honestRounds)
	}
}

// daemonResources reads joyrided's resident memory and descriptors.
func (h *hostileBed) daemonResources(t *testing.T, when string) ProcResources {
	t.Helper()
	r := procResources(h.daemon.cmd.Process.Pid)
	if r.RSSKiB == 0 {
		t.Fatalf("joyrided (pid %d) is gone", h.daemon.cmd.Process.Pid)
	}
	t.Logf("joyrided at %s: RSS %d KiB, %d fds, %d threads", when, r.RSSKiB, r.FDs, r.Threads)
	return r
}

// checkBounded fails the test unless joyrided's memory stayed below twice
// what it held before the hostile application (a leak or an unbounded
// buffer grows past that within seconds; the hostile applications' own
// regions are a few MiB) and its descriptors grew by at most one
// application's (control socket, region, two eventfds) and a little slack.
func checkBounded(t *testing.T, start, end ProcResources) {
	t.Helper()
	if end.RSSKiB > 2*start.RSSKiB {
		t.Errorf("joyrided's RSS grew from %d to %d KiB beside the hostile application", start.RSSKiB, end.RSSKiB)
	}
	if end.FDs > start.FDs+8 {
		t.Errorf("joyrided's descriptors grew from %d to %d beside the hostile application", start.FDs, end.FDs)
	}
}

// limitCounts stops joyrided and reads its refusals from its exit log.
func (h *hostileBed) limitCounts(t *testing.T) map[string]uint64 {
	t.Helper()
	log := h.daemon.stop()
	f := engineFacts(log)
	if f == nil || f.Limits == nil {
		t.Fatalf("joyrided logged no limit counters:\n%s", lastLines(log, 20))
	}
	t.Logf("joyrided limit counters: %v", f.Limits)
	return f.Limits
}

// rawTenant is a hostile application: it speaks the control protocol
// itself and drives its region's rings directly, so it can keep its ring
// full, never drain the down ring, or ignore its send window.
type rawTenant struct {
	*prototest.Conn
	region *channel.Region
	end    *channel.End
}

func attachRawTenant(t *testing.T, socket string) *rawTenant {
	t.Helper()
	c, fds := prototest.Register(t, socket, "hostile")
	// Attach takes the descriptors over: the region closes them.
	region, err := channel.Attach(fds[0], fds[1], fds[2])
	if err != nil {
		t.Fatal(err)
	}
	r := &rawTenant{Conn: c, region: region, end: region.App()}
	t.Cleanup(func() { region.Close() })
	return r
}

// An application that keeps its ring full of datagrams for 3 s: the
// engine takes UpBatch of them a round and serves the honest application
// in between. Run with the default batch and with -up-batch 1024 (each ring
// drained whole, as before), to measure what the batch buys; only the
// default is held to the bound.
func TestHostileFloodingApplication(t *testing.T) {
	for _, batch := range []int{0, 1024} {
		name := "batch=default"
		var extra []string
		if batch > 0 {
			name = fmt.Sprintf("batch=%d", batch)
			extra = []string{"-up-batch", strconv.Itoa(batch)}
		}
		t.Run(name, func(t *testing.T) {
			h := upHostileBed(t, extra...)
			start := h.daemonResources(t, "start")
			alone := h.measureHonest(t)

			flood := attachRawTenant(t, filepath.Join(h.runDir, "joyride.sock"))
			rep := flood.Do(t, proto.Request{Op: "listen", Network: "udp", Addr: h.tb.Server.Addr.Addr().String() + ":9400"})
			if !rep.OK {
				t.Fatalf("listen: %+v", rep)
			}
			// To the discard port of the client namespace: nobody listens,
			// its kernel drops them (and rate-limits its ICMP answers).
			dst := proto.PackAddr(netip.AddrPortFrom(h.tb.Client.Addr.Addr(), 9))
			stop := make(chan struct{})
			var sent, full int
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				payload := make([]byte, 64)
				pace := time.NewTicker(time.Millisecond)
				defer pace.Stop()
				for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
					select {
					case <-stop:
						return
					default:
					}
					// Fill the ring every millisecond: it is full
					// whenever the engine looks, and what the engine
					// takes is the flood's rate.
					for {
						if err := flood.end.Send(proto.OpSend, rep.Sock, dst, payload); err != nil {
							full++
							break
						}
						sent++
					}
					flood.end.Notify()
					<-pace.C
				}
			}()
			floodStart := time.Now()
			beside := h.measureHonest(t)
			close(stop)
			wg.Wait()
			t.Logf("flooding application: %d datagrams in %v (%.0f/s), ring found full %d times",
				sent, time.Since(floodStart).Round(time.Millisecond), float64(sent)/time.Since(floodStart).Seconds(), full)
			end := h.daemonResources(t, "end")
			if batch == 0 {
				checkBeside(t, alone, beside)
			} else {
				t.Logf("honest alone:  %v", alone)
				t.Logf("honest beside: %v (not bounded: the old behaviour, for comparison)", beside)
			}
			checkBounded(t, start, end)
			if full == 0 {
				t.Error("the flooding application never found its ring full: it did not flood")
			}
		})
	}
}

// An application that opens sockets until it is refused: 20 TCP listeners
// (then EMFILE, at -max-listeners), then UDP sockets up to 1500 in all
// (then EMFILE, at -max-sockets), through the Go client library, at a pace
// the service cuts to 1000 control requests a second (EAGAIN, retried); the
// UDP sockets beyond 200 are served by gVisor (-max-flows).
func TestHostileSocketHoarder(t *testing.T) {
	const maxSockets, maxListeners, maxFlows = 1500, 20, 200
	h := upHostileBed(t, "-max-sockets", strconv.Itoa(maxSockets), "-max-listeners", strconv.Itoa(maxListeners),
		"-max-flows", strconv.Itoa(maxFlows), "-max-control-rate", "1000", "-control-burst", "100")
	start := h.daemonResources(t, "start")
	alone := h.measureHonest(t)

	opts, _ := stacks.DecodeOptions("joyride", nil)
	st, err := stacks.Open("joyride", opts, h.env())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	addr := h.tb.Server.Addr.Addr().String()
	type result struct {
		listeners, sockets, eagain int
		listenErr, socketErr       error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		var held []io.Closer
		defer func() {
			done <- r
			for _, c := range held {
				c.Close()
			}
		}()
		// retry runs open until it is not paced (EAGAIN), up to 10 s.
		retry := func(open func() (io.Closer, error)) (io.Closer, error) {
			for deadline := time.Now().Add(10 * time.Second); ; {
				c, err := open()
				if !errors.Is(err, syscall.EAGAIN) || time.Now().After(deadline) {
					return c, err
				}
				r.eagain++
				time.Sleep(5 * time.Millisecond)
			}
		}
		for i := 0; ; i++ {
			c, err := retry(func() (io.Closer, error) { return st.Listen("tcp", fmt.Sprintf("%s:%d", addr, 21000+i)) })
			if err != nil {
				r.listenErr = err
				break
			}
			held = append(held, c)
			r.listeners++
		}
		for i := 0; ; i++ {
			c, err := retry(func() (io.Closer, error) { return st.ListenPacket("udp", fmt.Sprintf("%s:%d", addr, 22000+i)) })
			if err != nil {
				r.socketErr = err
				break
			}
			held = append(held, c)
			r.sockets++
		}
		r.sockets += r.listeners
		// Hold them while the honest application is measured.
		time.Sleep(500 * time.Millisecond)
	}()
	beside := h.measureHonest(t)
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the socket hoarder did not finish within 30 s")
	}
	t.Logf("socket hoarder: %d listeners (then %v), %d sockets (then %v), paced %d times",
		r.listeners, r.listenErr, r.sockets, r.socketErr, r.eagain)
	end := h.daemonResources(t, "end")
	checkBeside(t, alone, beside)
	checkBounded(t, start, end)
	if r.listeners != maxListeners || !errors.Is(r.listenErr, syscall.EMFILE) {
		t.Errorf("%d listeners, then %v; want %d, then EMFILE", r.listeners, r.listenErr, maxListeners)
	}
	if r.sockets != maxSockets || !errors.Is(r.socketErr, syscall.EMFILE) {
		t.Errorf("%d sockets, then %v; want %d, then EMFILE", r.sockets, r.socketErr, maxSockets)
	}
	if r.eagain == 0 {
		t.Error("1520 control requests were never paced at 1000 a second")
	}
	lc := h.limitCounts(t)
	if lc["listeners"] == 0 || lc["sockets"] == 0 || lc["control_rate"] == 0 {
		t.Errorf("refusals not counted: %v", lc)
	}
	if want := uint64(maxSockets - maxListeners - maxFlows); lc["flows"] != want {
		t.Errorf("%d sockets left to gVisor at the flow limit, want %d", lc["flows"], want)
	}
}

// An application that listens and never accepts (never drains its ring):
// peers' connections fill its ring (-ring 256), then the service holds 64
// more (-max-backlog), then resets the rest, as a kernel with a full accept
// queue and tcp_abort_on_overflow does.
func TestHostileConnectionHoarder(t *testing.T) {
	const ring, backlog, conns = 256, 64, 450
	h := upHostileBed(t, "-ring", strconv.Itoa(ring), "-max-backlog", strconv.Itoa(backlog))
	start := h.daemonResources(t, "start")
	alone := h.measureHonest(t)

	hoard := attachRawTenant(t, filepath.Join(h.runDir, "joyride.sock"))
	if rep := hoard.Do(t, proto.Request{Op: "listen", Network: "tcp", Addr: h.tb.Server.Addr.Addr().String() + ":9500", Backlog: 4096}); !rep.OK {
		t.Fatalf("listen: %+v", rep)
	}
	var peers []net.Conn
	defer func() {
		for _, c := range peers {
			c.Close()
		}
	}()
	dialed := make(chan error, 1)
	resetAtConnect := 0
	go func() {
		dialed <- local.InNetns(h.tb.Client.Netns, func() error {
			for i := range conns {
				c, err := net.DialTimeout("tcp4", h.tb.Server.Addr.Addr().String()+":9500", 5*time.Second)
				if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) {
					resetAtConnect++ // the reset came before connect returned
					continue
				}
				if err != nil {
					return fmt.Errorf("connection %d: %w", i, err)
				}
				peers = append(peers, c)
			}
			return nil
		})
	}()
	beside := h.measureHonest(t)
	if err := <-dialed; err != nil {
		t.Fatal(err)
	}
	// A reset connection fails its read at once; a held one times out.
	time.Sleep(200 * time.Millisecond)
	reset, alive := resetAtConnect, 0
	for _, c := range peers {
		c.SetReadDeadline(time.Now().Add(2 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			alive++
		case errors.Is(err, syscall.ECONNRESET):
			reset++
		default:
			t.Errorf("a peer's connection: %v, want a timeout (held) or ECONNRESET", err)
		}
	}
	t.Logf("connection hoarder: of %d connections %d held (ring %d + backlog %d), %d reset (%d before connect returned)",
		conns, alive, ring, backlog, reset, resetAtConnect)
	end := h.daemonResources(t, "end")
	checkBeside(t, alone, beside)
	checkBounded(t, start, end)
	if alive != ring+backlog || reset != conns-ring-backlog {
		t.Errorf("%d held and %d reset, want %d and %d", alive, reset, ring+backlog, conns-ring-backlog)
	}
	if lc := h.limitCounts(t); lc["backlog"] != uint64(reset) {
		t.Errorf("%d backlog refusals counted, want %d", lc["backlog"], reset)
	}
}

// An application that never reads: 16 peers write 8 MiB each to its TCP
// listener, one floods its UDP socket, and it writes 16 MiB on a stream to
// a peer that never reads, ignoring its send window. The service holds at
// most -max-buffered-bytes (1 MiB) for it: it stops reading the peers'
// streams (their windows close, their writes time out) and fails its
// stream with ENOBUFS.
func TestHostileSlowReader(t *testing.T) {
	const budget = 1 << 20
	h := upHostileBed(t, "-ring", "256", "-max-buffered-bytes", strconv.Itoa(budget))
	start := h.daemonResources(t, "start")
	alone := h.measureHonest(t)

	// The stream the slow reader floods goes to a Linux peer that accepts
	// and never reads.
	var sink net.Listener
	if err := local.InNetns(h.tb.Client.Netns, func() (err error) {
		sink, err = net.Listen("tcp4", h.tb.Client.Addr.Addr().String()+":9700")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var sinkMu sync.Mutex
	var sinkConns []net.Conn
	defer func() {
		sink.Close()
		sinkMu.Lock()
		defer sinkMu.Unlock()
		for _, c := range sinkConns {
			c.Close()
		}
	}()
	go func() {
		for {
			c, err := sink.Accept()
			if err != nil {
				return
			}
			sinkMu.Lock()
			sinkConns = append(sinkConns, c)
			sinkMu.Unlock()
		}
	}()

	slow := attachRawTenant(t, filepath.Join(h.runDir, "joyride.sock"))
	svcAddr := h.tb.Server.Addr.Addr().String()
	if rep := slow.Do(t, proto.Request{Op: "listen", Network: "tcp", Addr: svcAddr + ":9600"}); !rep.OK {
		t.Fatalf("listen tcp: %+v", rep)
	}
	if rep := slow.Do(t, proto.Request{Op: "listen", Network: "udp", Addr: svcAddr + ":9601"}); !rep.OK {
		t.Fatalf("listen udp: %+v", rep)
	}
	out := slow.Do(t, proto.Request{Op: "dial", Network: "tcp", Addr: h.tb.Client.Addr.Addr().String() + ":9700"})
	if !out.OK {
		t.Fatalf("dial: %+v", out)
	}

	var wg sync.WaitGroup
	var peerWritten [16]int
	for i := range peerWritten {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local.InNetns(h.tb.Client.Netns, func() error {
				c, err := net.DialTimeout("tcp4", svcAddr+":9600", 5*time.Second)
				if err != nil {
					return err
				}
				defer c.Close()
				c.SetWriteDeadline(time.Now().Add(3 * time.Second))
				peerWritten[i], _ = c.Write(make([]byte, 8<<20))
				return nil
			})
		}()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		local.InNetns(h.tb.Client.Netns, func() error {
			c, err := net.Dial("udp4", svcAddr+":9601")
			if err != nil {
				return err
			}
			defer c.Close()
			for range 5000 {
				c.Write(make([]byte, 512))
				time.Sleep(200 * time.Microsecond)
			}
			return nil
		})
	}()
	var streamSent int
	go func() {
		defer wg.Done()
		chunk := make([]byte, proto.MaxMessage)
		for deadline := time.Now().Add(3 * time.Second); streamSent < 16<<20 && time.Now().Before(deadline); {
			if err := slow.end.Send(proto.OpSend, out.Sock, 0, chunk); err != nil {
				slow.end.Notify()
				time.Sleep(100 * time.Microsecond)
				continue
			}
			streamSent += len(chunk)
		}
		slow.end.Notify()
	}()
	beside := h.measureHonest(t)
	wg.Wait()
	end := h.daemonResources(t, "end")
	total := 0
	for _, n := range peerWritten {
		total += n
	}
	t.Logf("slow reader: peers wrote %d KiB to it in 3 s (of %d KiB), it wrote %d KiB ignoring its window", total>>10, len(peerWritten)*8<<10, streamSent>>10)
	checkBeside(t, alone, beside)
	checkBounded(t, start, end)
	// Now it reads: somewhere in its ring is its stream's failure.
	var errno syscall.Errno
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(5 * time.Second); errno == 0 && time.Now().Before(deadline); {
		d, _, err := slow.end.Recv(buf)
		if errors.Is(err, channel.ErrEmpty) {
			slow.end.Wait(time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if d.Op == proto.OpError && d.Sock == out.Sock {
			errno = syscall.Errno(d.Arg)
		}
	}
	if errno != syscall.ENOBUFS {
		t.Errorf("the stream written past the budget failed with %v, want ENOBUFS", errno)
	}
	if total >= len(peerWritten)*8<<20 {
		t.Error("the peers wrote everything to an application that reads nothing: nothing was bounded")
	}
	if lc := h.limitCounts(t); lc["buffered_bytes"] == 0 {
		t.Errorf("no refusal at the buffer budget counted: %v", lc)
	}
}
