package loadgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/joyride-bench/joyride/analysis"
)

// mcHarness is an engine with one connection on which requests with the given
// keys (negative: a set of key -1-k) were all written, measured, and whose
// replies are fed to the connection's memcached reader.
func mcHarness(keys []int32) (*tcpEngine, *tcpConn) {
	e := &tcpEngine{cfg: &TCPConfig{Conns: 1}, res: &Result{Intervals: []*hdrhistogram.Histogram{analysis.NewHistogram()}}}
	e.grow(len(keys))
	for i := range e.interval {
		e.interval[i] = 1
	}
	e.proto = &memcachedProtocol{kvWorkload{key: keys, cfg: MemcachedConfig{Keys: 1 << 20}}}
	c := &tcpConn{e: e, next: len(keys)}
	e.conns = []*tcpConn{c}
	e.sentAll = uint64(len(keys))
	c.reader = e.proto.newReader(c)
	return e, c
}

func mcReplies(keys []int32) string {
	var b strings.Builder
	for _, k := range keys {
		if k < 0 {
			b.WriteString("STORED\r\n")
			continue
		}
		fmt.Fprintf(&b, "VALUE key:%08d 0 6\r\nv\r\nEND\r\nEND\r\n", k) // the data may hold CRLF and END
	}
	return b.String()
}

func TestMemcachedReaderCutsReplies(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	keys := make([]int32, 500)
	gets := 0
	for i := range keys {
		keys[i] = int32(rng.IntN(1000))
		if rng.IntN(4) == 0 {
			keys[i] = -1 - keys[i]
		} else {
			gets++
		}
	}
	stream := []byte(mcReplies(keys))
	e, c := mcHarness(keys)
	// Fed in pieces cut anywhere, as TCP delivers them.
	for len(stream) > 0 {
		n := min(len(stream), 1+rng.IntN(40))
		c.reader.Write(stream[:n])
		stream = stream[n:]
	}
	if e.res.Received != uint64(len(keys)) || e.res.Unmatched != 0 || e.res.Hits != uint64(gets) || e.res.Misses != 0 || c.expect != len(keys) {
		t.Fatalf("received %d unmatched %d hits %d (want %d) misses %d expect %d", e.res.Received, e.res.Unmatched,
			e.res.Hits, gets, e.res.Misses, c.expect)
	}
}

func TestMemcachedReaderRefusesWrongReplies(t *testing.T) {
	for _, c := range []struct {
		name      string
		key       int32
		reply     string
		unmatched uint64
		misses    uint64
	}{
		{"miss", 7, "END\r\n", 0, 1},
		{"another key's value", 7, "VALUE key:00000008 0 1\r\nx\r\nEND\r\n", 1, 0},
		{"a value for a set", -8, "VALUE key:00000007 0 1\r\nx\r\nEND\r\n", 1, 0},
		{"server error", 7, "SERVER_ERROR out of memory\r\n", 1, 0},
		{"not stored", -8, "NOT_STORED\r\n", 1, 0},
		{"garbage line", 7, strings.Repeat("x", 600) + "\r\n", 1, 0},
	} {
		e, conn := mcHarness([]int32{c.key})
		conn.reader.Write([]byte(c.reply))
		if e.res.Unmatched != c.unmatched || e.res.Misses != c.misses || conn.expect != 1 {
			t.Errorf("%s: unmatched %d misses %d expect %d", c.name, e.res.Unmatched, e.res.Misses, conn.expect)
		}
	}
}

func TestZipfPopularity(t *testing.T) {
	k, err := newKeySampler(1000, "zipf:0.99")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	counts := make([]int, 1000)
	const n = 200000
	for range n {
		counts[k.draw(rng)]++
	}
	// P(key 0) = 1/H where H = sum 1/i^0.99 over 1000 keys.
	h := 0.0
	for i := 1; i <= 1000; i++ {
		h += 1 / math.Pow(float64(i), 0.99)
	}
	if got, want := float64(counts[0])/n, 1/h; math.Abs(got-want) > 0.1*want {
		t.Fatalf("key 0 drawn %.4f of the time, want %.4f", got, want)
	}
	if counts[0] < 5*counts[9] {
		t.Fatalf("key 0 %d times, key 9 %d times: not skewed", counts[0], counts[9])
	}
	for _, bad := range []string{"zipf:0", "zipf:x", "pareto", "zipf:6"} {
		if _, err := ParsePopularity(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzMemcachedReader: whatever a server sends, the reader neither panics nor
// answers more requests than were written.
func FuzzMemcachedReader(f *testing.F) {
	f.Add([]byte(mcReplies([]int32{1, -3, 2})))
	f.Add([]byte("VALUE key:00000001 0 99999999999\r\n"))
	f.Add([]byte("VALUE\r\nEND\r\nSTORED\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys := []int32{1, -3, 2, 5}
		e, c := mcHarness(keys)
		c.reader.Write(data)
		if c.expect > c.next || e.res.Received > uint64(len(keys)) {
			t.Fatalf("expect %d next %d received %d", c.expect, c.next, e.res.Received)
		}
	})
}

// Requests' keys are drawn once each, in chunks, and the same whether the
// draws were extended request by request or made at once (the open loop
// asks one request at a time: redrawing everything each time was quadratic).
func TestMemcachedDrawsExtendOnce(t *testing.T) {
	cfg := MemcachedConfig{Keys: 1000, Popularity: "zipf:0.99", GetFraction: 0.8, ValueSize: 10}
	a, err := newMemcachedProtocol(cfg, 9)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := newMemcachedProtocol(cfg, 9)
	grown := 0
	for id := range 5000 {
		before := len(a.key)
		a.request(id)
		if len(a.key) != before {
			grown++
		}
	}
	if grown > 4 {
		t.Fatalf("the draws grew %d times for 5000 requests: not in chunks", grown)
	}
	b.grow(5000)
	if !slices.Equal(a.key[:5000], b.key[:5000]) {
		t.Fatal("draws extended one by one differ from draws made at once")
	}
}
