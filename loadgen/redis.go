package loadgen

import (
	"bytes"
	"io"
	"strconv"
)

// The redis workload: the key-value workload of memcached (MemcachedConfig:
// the same keys, popularity, get/set mix and values) in redis's protocol,
// RESP2, so that an unmodified redis server can be the application under
// test. Requests are GET and SET commands as RESP arrays of bulk strings;
// replies are +OK (a set), a bulk string (a get that hit), the null bulk
// string $-1 (a get that missed) or an error -ERR ....

// redisProtocol writes GETs and SETs and parses redis's replies.
type redisProtocol struct {
	kvWorkload
}

func newRedisProtocol(cfg MemcachedConfig, seed uint64) (*redisProtocol, error) {
	w, err := newKVWorkload(cfg, seed)
	if err != nil {
		return nil, err
	}
	return &redisProtocol{w}, nil
}

// kvKeyLen is the length of every key, "key:%08d" (the key space is below
// 10^8).
const kvKeyLen = len("key:00000000")

// appendBulkKey appends key k as a RESP bulk string.
func appendBulkKey(b []byte, k int) []byte {
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(kvKeyLen), 10)
	b = append(b, "\r\n"...)
	b = appendKey(b, k)
	return append(b, "\r\n"...)
}

func (p *redisProtocol) appendSet(b []byte, k int) []byte {
	b = append(b, "*3\r\n$3\r\nSET\r\n"...)
	b = appendBulkKey(b, k)
	b = append(b, '$')
	return p.appendValue(b)
}

func (p *redisProtocol) request(id int) []byte {
	k, set := p.op(id)
	if set {
		return p.appendSet(p.buf[:0], k)
	}
	b := append(p.buf[:0], "*2\r\n$3\r\nGET\r\n"...)
	return appendBulkKey(b, k)
}

func (p *redisProtocol) newReader(c *tcpConn) io.Writer {
	return &redisReader{c: c, p: p, line: lineReader{max: maxLine}}
}

// maxRedisBulk bounds a bulk string's length (redis's own limit, 512 MB): a
// longer one means the stream is not RESP.
const maxRedisBulk = 512 << 20

// redisReader cuts a connection's stream into RESP replies: one line (+OK,
// -ERR ..., $-1), or a bulk string's "$N" line followed by N bytes and CRLF.
type redisReader struct {
	c    *tcpConn
	p    *redisProtocol
	line lineReader
	// A bulk string being received: bytes of its data and CRLF still to
	// come, and how many of them were compared with the stored value.
	bulk, bulkPos int
	bad           bool // the current reply does not answer the request
}

func (r *redisReader) Write(b []byte) (int, error) {
	total := len(b)
	for len(b) > 0 {
		if r.bulk > 0 {
			b = r.bulkData(b)
			continue
		}
		line, rest, done, tooLong := r.line.next(b)
		b = rest
		if !done {
			break
		}
		if tooLong {
			r.reply(false, false)
			continue
		}
		r.handle(line)
	}
	return total, nil
}

// bulkData consumes the bulk string's data from b, checking it is the stored
// value (every set stores the same one, so a get that hits must read it back)
// followed by CRLF; it returns the rest of b.
func (r *redisReader) bulkData(b []byte) []byte {
	k := min(r.bulk, len(b))
	if !r.bad {
		// The expected bytes are the value then CRLF; bulkPos is where in
		// them b starts.
		v := r.p.value
		got := b[:k]
		if r.bulkPos < len(v) {
			n := min(len(v)-r.bulkPos, len(got))
			r.bad = !bytes.Equal(got[:n], v[r.bulkPos:r.bulkPos+n])
			got = got[n:]
		}
		if crlf := max(r.bulkPos+k-len(v)-len(got), 0); len(got) > 0 && !r.bad {
			r.bad = !bytes.Equal(got, []byte("\r\n")[crlf:crlf+len(got)])
		}
	}
	r.bulk -= k
	r.bulkPos += k
	if r.bulk == 0 {
		r.reply(true, !r.bad)
	}
	return b[k:]
}

// handle acts on one reply line.
func (r *redisReader) handle(line []byte) {
	set := r.p.answersSet(r.c.expect)
	switch {
	case string(line) == "+OK":
		r.reply(false, set)
	case string(line) == "$-1":
		r.reply(false, !set) // a miss
	case len(line) > 1 && line[0] == '$':
		n, err := strconv.Atoi(string(line[1:]))
		if err != nil || n < 0 || n > maxRedisBulk {
			r.reply(false, false)
			return
		}
		// A value for a set, or one that is not the stored value's length,
		// does not answer the request; its bytes are skipped all the same.
		r.bad = set || n != len(r.p.value)
		r.bulk, r.bulkPos = n+2, 0
	default: // -ERR ..., other simple strings, integers, arrays, garbage
		r.reply(false, false)
	}
}

func (r *redisReader) reply(hit, ok bool) {
	r.c.e.kvReply(r.c, &r.p.kvWorkload, hit, ok)
	r.bad = false
}
