package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// The memcached workload: the generator speaks memcached's text protocol
// (get and set) so that an unmodified memcached server can be the
// application under test, as mutilate and Lancet do. Keys are drawn from a
// popularity distribution — uniform, or Zipf with exponent θ (YCSB and
// Facebook's ETC traces sit near 0.99: a few keys take most requests) — and
// every key is stored before the measurement so that every get hits.

// MemcachedConfig describes the key-value workload of a memcached or redis
// point (TCPConfig.Memcached, TCPConfig.Redis): the same keys, popularity,
// get/set mix and values for both servers.
type MemcachedConfig struct {
	// Keys is the key space, 1..MaxMemcachedKeys; keys are "key:%08d".
	Keys int
	// Popularity is "uniform" or "zipf:θ" with θ in (0, 5].
	Popularity string
	// GetFraction is the probability a request is a get (the rest are sets).
	GetFraction float64
	// ValueSize is the bytes of every stored value, 1..MaxMemcachedValue.
	ValueSize int
}

// Limits of the memcached workload.
const (
	MaxMemcachedKeys  = 1 << 20
	MaxMemcachedValue = 64 << 10
)

// ParsePopularity checks a key popularity: "uniform" or "zipf:θ"; it returns θ
// (0 for uniform).
func ParsePopularity(s string) (float64, error) {
	if s == "uniform" {
		return 0, nil
	}
	if v, ok := strings.CutPrefix(s, "zipf:"); ok {
		theta, err := strconv.ParseFloat(v, 64)
		if err == nil && theta > 0 && theta <= 5 {
			return theta, nil
		}
	}
	return 0, fmt.Errorf("popularity %q: want uniform or zipf:θ with θ in (0, 5], e.g. zipf:0.99", s)
}

// Check validates c.
func (c MemcachedConfig) Check() error {
	var errs []error
	if c.Keys < 1 || c.Keys > MaxMemcachedKeys {
		errs = append(errs, fmt.Errorf("memcached keys %d outside 1..%d", c.Keys, MaxMemcachedKeys))
	}
	if _, err := ParsePopularity(c.Popularity); err != nil {
		errs = append(errs, err)
	}
	if !(c.GetFraction >= 0 && c.GetFraction <= 1) {
		errs = append(errs, fmt.Errorf("memcached get fraction %v outside [0, 1]", c.GetFraction))
	}
	if c.ValueSize < 1 || c.ValueSize > MaxMemcachedValue {
		errs = append(errs, fmt.Errorf("memcached value size %d outside 1..%d", c.ValueSize, MaxMemcachedValue))
	}
	return errors.Join(errs...)
}

// keySampler draws key indices with the configured popularity.
type keySampler struct {
	n   int
	cdf []float64 // Zipf: cumulative probability of keys 0..i; nil for uniform
}

func newKeySampler(keys int, popularity string) (*keySampler, error) {
	theta, err := ParsePopularity(popularity)
	if err != nil {
		return nil, err
	}
	k := &keySampler{n: keys}
	if theta > 0 {
		// The exact distribution, P(i) ∝ 1/(i+1)^θ, by its CDF: math/rand's
		// Zipf needs θ > 1, and the traces of interest have θ just below 1.
		k.cdf = make([]float64, keys)
		sum := 0.0
		for i := range keys {
			sum += 1 / math.Pow(float64(i+1), theta)
			k.cdf[i] = sum
		}
		for i := range k.cdf {
			k.cdf[i] /= sum
		}
	}
	return k, nil
}

func (k *keySampler) draw(rng *rand.Rand) int {
	if k.cdf == nil {
		return rng.IntN(k.n)
	}
	return min(sort.SearchFloat64s(k.cdf, rng.Float64()), k.n-1)
}

// kvWorkload is the key-value workload memcached and redis share: the key and
// operation of every request, drawn from a MemcachedConfig, and the one value
// every set stores (so a get that hits must read back exactly that value).
// Both servers see the same requests for the same seed.
type kvWorkload struct {
	cfg   MemcachedConfig
	keys  *keySampler
	key   []int32 // per request: key index, negative for a set of key -1-k
	value []byte
	buf   []byte // the request being written
	seed  uint64
	rng   *rand.Rand // draws key and operation of the next request
	// preload: writing the sets that store every key before the run.
	preload bool
}

func newKVWorkload(cfg MemcachedConfig, seed uint64) (kvWorkload, error) {
	if err := cfg.Check(); err != nil {
		return kvWorkload{}, err
	}
	ks, err := newKeySampler(cfg.Keys, cfg.Popularity)
	if err != nil {
		return kvWorkload{}, err
	}
	return kvWorkload{cfg: cfg, keys: ks, seed: seed, value: bytes.Repeat([]byte{'v'}, cfg.ValueSize),
		buf: make([]byte, 0, 64+cfg.ValueSize)}, nil
}

// grow draws the operations and keys of requests up to n-1, extending the
// draws already made with the same generator (so they are prefix-stable, as
// the engine's other per-request draws, and each request is drawn once).
func (w *kvWorkload) grow(n int) {
	if n <= len(w.key) {
		return
	}
	if w.rng == nil {
		w.rng = rand.New(rand.NewPCG(w.seed, 0x6d656d6361636865)) // "memcache"
	}
	n = max(n, 2*len(w.key), 1024)
	for len(w.key) < n {
		k := int32(w.keys.draw(w.rng))
		if w.rng.Float64() >= w.cfg.GetFraction {
			k = -1 - k
		}
		w.key = append(w.key, k)
	}
}

// op is request id's key and whether it is a set (else a get). While the
// keys are stored, request id is the set of key id.
func (w *kvWorkload) op(id int) (key int, set bool) {
	if w.preload {
		return id, true
	}
	w.grow(id + 1)
	if k := w.key[id]; k < 0 {
		return int(-1 - k), true
	}
	return int(w.key[id]), false
}

// answersSet reports whether the reply to request id answers a set: every
// reply does while the keys are stored.
func (w *kvWorkload) answersSet(id int) bool {
	return w.preload || id < len(w.key) && w.key[id] < 0
}

func (w *kvWorkload) workload() *kvWorkload { return w }

// appendValue appends the value's length, CRLF, the value and CRLF: how a set
// ends in both memcached's protocol and RESP.
func (w *kvWorkload) appendValue(b []byte) []byte {
	b = strconv.AppendInt(b, int64(len(w.value)), 10)
	b = append(b, "\r\n"...)
	b = append(b, w.value...)
	return append(b, "\r\n"...)
}

// kvProtocol is a protocol of the key-value workload: its keys are stored
// before the run (preloadKeys).
type kvProtocol interface {
	tcpProtocol
	workload() *kvWorkload
	// appendSet appends the request that stores key k.
	appendSet(b []byte, k int) []byte
}

// memcachedProtocol writes gets and sets and parses memcached's replies.
type memcachedProtocol struct {
	kvWorkload
}

func newMemcachedProtocol(cfg MemcachedConfig, seed uint64) (*memcachedProtocol, error) {
	w, err := newKVWorkload(cfg, seed)
	if err != nil {
		return nil, err
	}
	return &memcachedProtocol{w}, nil
}

// appendKey appends "key:%08d" without fmt (on the hot path).
func appendKey(b []byte, k int) []byte {
	b = append(b, "key:"...)
	var d [8]byte
	for i := 7; i >= 0; i-- {
		d[i] = byte('0' + k%10)
		k /= 10
	}
	return append(b, d[:]...)
}

func (p *memcachedProtocol) appendSet(b []byte, k int) []byte {
	b = append(b, "set "...)
	b = appendKey(b, k)
	b = append(b, " 0 0 "...)
	return p.appendValue(b)
}

func (p *memcachedProtocol) request(id int) []byte {
	k, set := p.op(id)
	if set {
		return p.appendSet(p.buf[:0], k)
	}
	b := append(p.buf[:0], "get "...)
	b = appendKey(b, k)
	return append(b, "\r\n"...)
}

func (p *memcachedProtocol) newReader(c *tcpConn) io.Writer {
	return &memcachedReader{c: c, p: p, line: lineReader{max: maxLine}}
}

// memcachedReader cuts a connection's stream into memcached replies: a line
// ("STORED", "END", an error), or "VALUE <key> <flags> <bytes>", the data
// block and "END".
type memcachedReader struct {
	c    *tcpConn
	p    *memcachedProtocol
	line lineReader
	data int  // bytes of a value's data block (+CRLF) still to skip
	hit  bool // a VALUE line was seen for the current get
	bad  bool // the current reply does not answer the request
}

// maxLine bounds a reply line: a longer one means the stream is not memcached.
const maxLine = 512

func (r *memcachedReader) Write(b []byte) (int, error) {
	total := len(b)
	for len(b) > 0 {
		if r.data > 0 {
			k := min(r.data, len(b))
			r.data -= k
			b = b[k:]
			continue
		}
		line, rest, done, tooLong := r.line.next(b)
		b = rest
		if !done {
			break
		}
		if tooLong {
			r.c.e.kvReply(r.c, &r.p.kvWorkload, false, false)
			r.hit, r.bad = false, false
			continue
		}
		r.handle(line)
	}
	return total, nil
}

// handle acts on one reply line.
func (r *memcachedReader) handle(line []byte) {
	e, c := r.c.e, r.c
	switch {
	case bytes.HasPrefix(line, []byte("VALUE ")):
		f := bytes.Fields(line)
		n, err := strconv.Atoi(string(f[len(f)-1]))
		if len(f) != 4 || err != nil || n < 0 {
			r.bad = true
			return
		}
		if id := c.expect; !r.p.preload && id < len(r.p.key) {
			want := appendKey(nil, int(max(r.p.key[id], 0)))
			r.bad = r.bad || !bytes.Equal(f[1], want) || r.p.key[id] < 0
		}
		r.hit, r.data = true, n+2
	case string(line) == "END":
		e.kvReply(c, &r.p.kvWorkload, r.hit, !r.bad)
		r.hit, r.bad = false, false
	case string(line) == "STORED":
		e.kvReply(c, &r.p.kvWorkload, false, !r.bad)
		r.bad = false
	default: // ERROR, CLIENT_ERROR ..., SERVER_ERROR ..., NOT_STORED, garbage
		e.kvReply(c, &r.p.kvWorkload, false, false)
		r.hit, r.bad = false, false
	}
}

// kvReply records one reply of the key-value workload: while the keys are
// stored it only counts the set answered; in the run, a measured get that
// found its value counts a hit, one that did not a miss.
func (e *tcpEngine) kvReply(c *tcpConn, w *kvWorkload, hit, ok bool) {
	if w.preload {
		e.preloaded++
		if !ok {
			e.preloadFailed++
		}
		return
	}
	// c.expect < c.next: a reply nobody asked for is no get (and past the
	// per-request arrays).
	if id := c.expect; ok && !c.failed && id < c.next && id < len(w.key) && w.key[id] >= 0 && e.interval[id] != 0 {
		if hit {
			e.res.Hits++
		} else {
			e.res.Misses++
		}
	}
	e.replied(c, ok)
}

// preloadKeys stores every key before the run (so that every get hits): key k
// is set on connection k mod Conns, each connection's sets pipelined as fast
// as its send buffer takes them, and it waits until every set is answered
// (memcached's STORED, redis's +OK).
func (e *tcpEngine) preloadKeys(p kvProtocol, timeout time.Duration) error {
	w := p.workload()
	w.preload = true
	defer func() { w.preload = false }()
	deadline := time.Now().Add(timeout)
	nc := len(e.conns)
	keys := w.cfg.Keys
	for _, c := range e.conns {
		c.preKey = c.idx
	}
	for e.preloaded < keys {
		for _, c := range e.conns {
			for c.preKey < keys {
				req := p.appendSet(w.buf[:0], c.preKey)
				e.reader.Reset(req[c.off:])
				w, err := c.ep.Write(&e.reader, tcpip.WriteOptions{})
				c.off += int(w)
				if err != nil {
					if _, ok := err.(*tcpip.ErrWouldBlock); !ok {
						return fmt.Errorf("storing the keys: connection %d: %s", c.idx, err)
					}
				}
				if c.off < len(req) {
					break // out of send buffer: the next round goes on
				}
				c.off = 0
				c.preKey += nc
			}
		}
		e.poll()
		e.readyMu.Lock()
		e.readyWork, e.readyList = e.readyList, e.readyWork[:0]
		e.readyMu.Unlock()
		for _, i := range e.readyWork {
			e.read(e.conns[i])
			if e.conns[i].failed {
				return fmt.Errorf("storing the keys: connection %d failed", i)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("storing the keys: %d of %d sets answered in %v", e.preloaded, keys, timeout)
		}
	}
	if e.preloadFailed > 0 {
		return fmt.Errorf("storing the keys: %s refused %d of %d sets", e.res.App, e.preloadFailed, keys)
	}
	return nil
}
