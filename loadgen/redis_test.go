package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/joyride-bench/joyride/analysis"
)

// appHarness is an engine with one connection speaking proto on which n
// requests were all written and are measured; the test feeds the connection's
// reader the server's byte stream.
func appHarness(n int, proto tcpProtocol) (*tcpEngine, *tcpConn) {
	e := &tcpEngine{cfg: &TCPConfig{Conns: 1}, res: &Result{Intervals: []*hdrhistogram.Histogram{analysis.NewHistogram()}}}
	e.grow(n)
	for i := range e.interval {
		e.interval[i] = 1
	}
	e.proto = proto
	c := &tcpConn{e: e, next: n}
	e.conns = []*tcpConn{c}
	e.sentAll = uint64(n)
	c.reader = proto.newReader(c)
	return e, c
}

// feedSplits feeds stream to a fresh harness (from newHarness) cut at every
// possible place, and byte by byte, checking each with check.
func feedSplits(t *testing.T, stream []byte, newHarness func() (*tcpEngine, *tcpConn), check func(e *tcpEngine, c *tcpConn) error) {
	t.Helper()
	for cut := 0; cut <= len(stream); cut++ {
		e, c := newHarness()
		c.reader.Write(stream[:cut])
		c.reader.Write(stream[cut:])
		if err := check(e, c); err != nil {
			t.Fatalf("cut at byte %d of %q: %v", cut, stream, err)
		}
	}
	e, c := newHarness()
	for i := range stream {
		c.reader.Write(stream[i : i+1])
	}
	if err := check(e, c); err != nil {
		t.Fatalf("byte by byte: %v", err)
	}
}

// redisTestValue is a stored value that looks like RESP replies: the reader
// must take a bulk string's data by its length, not by its contents.
const redisTestValue = "a\r\n$-1\r\n+OK\r\n"

func redisTestProtocol(keys []int32) *redisProtocol {
	return &redisProtocol{kvWorkload{key: keys, cfg: MemcachedConfig{Keys: 1 << 20}, value: []byte(redisTestValue)}}
}

func bulk(s string) string { return fmt.Sprintf("$%d\r\n%s\r\n", len(s), s) }

func TestRedisReaderCutsReplies(t *testing.T) {
	// get 1 (hit), set 2, get 2 (hit), get 5 (miss), set 0, get 3 (error).
	keys := []int32{1, -3, 2, 5, -1, 3}
	stream := []byte(bulk(redisTestValue) + "+OK\r\n" + bulk(redisTestValue) + "$-1\r\n" + "+OK\r\n" + "-ERR out of memory\r\n")
	feedSplits(t, stream, func() (*tcpEngine, *tcpConn) { return appHarness(len(keys), redisTestProtocol(keys)) },
		func(e *tcpEngine, c *tcpConn) error {
			if r := e.res; r.Received != 5 || r.Unmatched != 1 || r.Hits != 2 || r.Misses != 1 || c.expect != len(keys) {
				return fmt.Errorf("received %d unmatched %d hits %d misses %d expect %d", r.Received, r.Unmatched, r.Hits, r.Misses, c.expect)
			}
			return nil
		})
}

func TestRedisReaderRefusesWrongReplies(t *testing.T) {
	wrongValue := strings.Repeat("x", len(redisTestValue))
	for _, c := range []struct {
		name      string
		key       int32
		reply     string
		unmatched uint64
		misses    uint64
	}{
		{"miss", 7, "$-1\r\n", 0, 1},
		{"miss for a set", -8, "$-1\r\n", 1, 0},
		{"OK for a get", 7, "+OK\r\n", 1, 0},
		{"a value for a set", -8, bulk(redisTestValue), 1, 0},
		{"another value", 7, bulk(wrongValue), 1, 0},
		{"a value of another length", 7, bulk("v"), 1, 0},
		{"no CRLF after the value", 7, "$" + strconv.Itoa(len(redisTestValue)) + "\r\n" + redisTestValue + "xy", 1, 0},
		{"error", 7, "-ERR unknown command\r\n", 1, 0},
		{"integer", 7, ":1\r\n", 1, 0},
		{"bad length", 7, "$x\r\n", 1, 0},
		{"huge length", 7, "$99999999999\r\n", 1, 0},
		{"garbage line", 7, strings.Repeat("x", 600) + "\r\n", 1, 0},
	} {
		e, conn := appHarness(1, redisTestProtocol([]int32{c.key}))
		conn.reader.Write([]byte(c.reply))
		if e.res.Unmatched != c.unmatched || e.res.Misses != c.misses || conn.expect != 1 {
			t.Errorf("%s: unmatched %d misses %d expect %d", c.name, e.res.Unmatched, e.res.Misses, conn.expect)
		}
	}
}

func TestRedisRequestBytes(t *testing.T) {
	p := redisTestProtocol([]int32{1, -3})
	p.value = []byte("vv")
	if got, want := string(p.request(0)), "*2\r\n$3\r\nGET\r\n$12\r\nkey:00000001\r\n"; got != want {
		t.Errorf("get: %q, want %q", got, want)
	}
	if got, want := string(p.request(1)), "*3\r\n$3\r\nSET\r\n$12\r\nkey:00000002\r\n$2\r\nvv\r\n"; got != want {
		t.Errorf("set: %q, want %q", got, want)
	}
}

// FuzzRedisReader: whatever a server sends, the reader neither panics nor
// answers more requests than were written.
func FuzzRedisReader(f *testing.F) {
	f.Add([]byte(bulk(redisTestValue) + "+OK\r\n$-1\r\n"))
	f.Add([]byte("$99999\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys := []int32{1, -3, 2, 5}
		e, c := appHarness(len(keys), redisTestProtocol(keys))
		c.reader.Write(data)
		if c.expect > c.next || e.res.Received > uint64(len(keys)) {
			t.Fatalf("expect %d next %d received %d", c.expect, c.next, e.res.Received)
		}
	})
}

// freeLoopbackPort is a TCP port of 127.0.0.1 nothing listens on (a moment
// ago).
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startServer runs a server (its output kept for failures), killed by its PID
// when the test ends, and dials addr until it listens.
func startServer(t *testing.T, addr string, name string, args ...string) net.Conn {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed (make deps installs it): %v", name, err)
	}
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			t.Errorf("%s (pid %d) did not exit when killed", name, cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			t.Cleanup(func() { conn.Close() })
			return conn
		}
		select {
		case <-exited:
			t.Fatalf("%s exited: %s", name, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s after 10s: %v", name, addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// exchange writes reqs on conn (from another goroutine: the replies are read
// while the requests are still being written, so neither side's buffers fill)
// and feeds c's reader what comes back until done, for at most 10 s.
func exchange(t *testing.T, conn net.Conn, reqs []byte, c *tcpConn, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	conn.SetDeadline(deadline)
	written := make(chan error, 1)
	go func() {
		_, err := conn.Write(reqs)
		written <- err
	}()
	buf := make([]byte, 64<<10)
	for !done() {
		n, err := conn.Read(buf)
		c.reader.Write(buf[:n])
		if err != nil && !done() {
			t.Fatalf("reading the replies: %v", err)
		}
	}
	if err := <-written; err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("writing the requests: %v", err)
	}
}

// The requests redis is sent are redis's: a real redis-server answers every
// one, stores what was SET, and GETs read it back.
func TestRedisServer(t *testing.T) {
	port := freeLoopbackPort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	conn := startServer(t, addr, "redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--save", "", "--appendonly", "no", "--dir", t.TempDir())

	cfg := MemcachedConfig{Keys: 200, Popularity: "zipf:0.99", GetFraction: 0.7, ValueSize: 100}
	p, err := newRedisProtocol(cfg, 7)
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	requests := func() []byte {
		var all []byte
		for id := range n {
			all = append(all, p.request(id)...)
		}
		return all
	}

	// Before the keys are stored, a get hits when its key was set by an
	// earlier request.
	wantHits, wantMisses := 0, 0
	stored := map[int]bool{}
	for id := range n {
		k, set := p.op(id)
		switch {
		case set:
			stored[k] = true
		case stored[k]:
			wantHits++
		default:
			wantMisses++
		}
	}
	if wantHits == 0 || wantMisses == 0 {
		t.Fatalf("the draws have %d hits and %d misses before storing: the test needs both", wantHits, wantMisses)
	}
	e, c := appHarness(n, p)
	exchange(t, conn, requests(), c, func() bool { return c.expect == n })
	if r := e.res; r.Received != n || r.Unmatched != 0 || r.Hits != uint64(wantHits) || r.Misses != uint64(wantMisses) {
		t.Fatalf("before storing: received %d unmatched %d hits %d misses %d, want %d received, %d hits, %d misses",
			r.Received, r.Unmatched, r.Hits, r.Misses, n, wantHits, wantMisses)
	}

	// The preload's sets, then the same requests: every get hits.
	e, c = appHarness(0, p)
	p.preload = true
	var sets []byte
	for k := range cfg.Keys {
		sets = append(sets, p.request(k)...)
	}
	exchange(t, conn, sets, c, func() bool { return e.preloaded == cfg.Keys })
	p.preload = false
	if e.preloadFailed != 0 {
		t.Fatalf("redis refused %d of %d sets", e.preloadFailed, cfg.Keys)
	}
	e, c = appHarness(n, p)
	exchange(t, conn, requests(), c, func() bool { return c.expect == n })
	if r := e.res; r.Received != n || r.Unmatched != 0 || r.Hits != uint64(wantHits+wantMisses) || r.Misses != 0 {
		t.Fatalf("after storing: received %d unmatched %d hits %d misses %d, want every get to hit", r.Received, r.Unmatched, r.Hits, r.Misses)
	}

	// An error reply answers nothing.
	e, c = appHarness(1, p)
	exchange(t, conn, []byte("*1\r\n$7\r\nNOTACMD\r\n"), c, func() bool { return c.expect == 1 })
	if e.res.Unmatched != 1 || e.res.Received != 0 {
		t.Fatalf("an error reply: unmatched %d received %d", e.res.Unmatched, e.res.Received)
	}
}
