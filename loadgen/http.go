package loadgen

import (
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"strconv"
)

// The http workload: HTTP/1.1 GETs of one path on keep-alive connections, so
// that an unmodified web server (nginx) can be the application under test.
// A connection's requests are pipelined as the schedule or window sends them:
// HTTP/1.1 allows it, and the server answers them in order. A reply is an
// answer when its status is 200.

// HTTPConfig describes the requests of an http point.
type HTTPConfig struct {
	// Path is what every GET asks for: "/" when empty. It starts with "/" and
	// is printable ASCII without spaces (what may stand in a request line
	// unescaped), at most MaxHTTPPath bytes.
	Path string
}

// MaxHTTPPath bounds HTTPConfig.Path.
const MaxHTTPPath = 1024

// Check validates c.
func (c HTTPConfig) Check() error {
	p := c.Path
	if p == "" {
		return nil
	}
	ok := len(p) <= MaxHTTPPath && p[0] == '/'
	for i := 0; i < len(p) && ok; i++ {
		ok = p[i] > ' ' && p[i] < 0x7f // no spaces, CR, LF or other controls
	}
	if !ok {
		return fmt.Errorf(`http path %q: want "/" followed by printable ASCII without spaces, CR or LF (escape others as %%XX), at most %d bytes, e.g. /index.html`,
			p, MaxHTTPPath)
	}
	return nil
}

// httpProtocol writes the same GET for every request.
type httpProtocol struct {
	req []byte
}

func newHTTPProtocol(cfg HTTPConfig, server netip.Addr) (*httpProtocol, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	path := cfg.Path
	if path == "" {
		path = "/"
	}
	return &httpProtocol{req: fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, server)}, nil
}

func (p *httpProtocol) request(int) []byte { return p.req }

func (p *httpProtocol) newReader(c *tcpConn) io.Writer {
	return &httpReader{c: c, line: lineReader{max: maxHTTPLine}}
}

// maxHTTPLine bounds a status or header line (nginx's own default for a
// request's is 8 KiB).
const maxHTTPLine = 8 << 10

// maxHTTPBody bounds a Content-Length or chunk size: a larger one means the
// stream is not HTTP (and would overflow the counts).
const maxHTTPBody = 1 << 40

// httpState is where in a reply an httpReader is.
type httpState uint8

const (
	httpStatusLine httpState = iota
	httpHeaders
	httpBody      // a Content-Length body
	httpChunkSize // the line that starts a chunk
	httpChunkData
	httpChunkEnd // the CRLF after a chunk's data
	httpTrailers // header lines after the last chunk, up to an empty line
)

// httpReader cuts a connection's stream into HTTP/1.1 replies: a status line,
// headers up to an empty line, and a body of Content-Length bytes or in
// chunks (Transfer-Encoding: chunked). Interim 1xx replies are skipped.
type httpReader struct {
	c         *tcpConn
	line      lineReader
	state     httpState
	status    int
	length    int64 // Content-Length, -1 when there is none
	chunked   bool
	remaining int64 // bytes of the body (or chunk) still to come
	bodyLen   int64 // bytes of the body so far
	bad       bool  // the reply is malformed: it does not answer the request
	// sawReply, when set (tests), is given every reply's status and body,
	// which are then kept for it; a run only counts them.
	sawReply func(status int, body []byte)
	body     []byte
}

func (r *httpReader) Write(b []byte) (int, error) {
	total := len(b)
	for len(b) > 0 {
		if r.state == httpBody || r.state == httpChunkData {
			k := int(min(r.remaining, int64(len(b))))
			if r.sawReply != nil {
				r.body = append(r.body, b[:k]...)
			}
			r.remaining -= int64(k)
			r.bodyLen += int64(k)
			b = b[k:]
			if r.remaining == 0 {
				if r.state == httpBody {
					r.finish()
				} else {
					r.state = httpChunkEnd
				}
			}
			continue
		}
		line, rest, done, tooLong := r.line.next(b)
		b = rest
		if !done {
			break
		}
		switch {
		case !tooLong:
			r.handle(line)
		case r.state == httpHeaders || r.state == httpTrailers:
			r.bad = true // one header dropped: the reply is still framed
		default:
			r.lost()
		}
	}
	return total, nil
}

// handle acts on one line of a reply.
func (r *httpReader) handle(line []byte) {
	switch r.state {
	case httpStatusLine:
		if len(line) == 0 {
			return // an empty line before a reply may be ignored (RFC 9112 §2.2)
		}
		status, ok := parseStatusLine(line)
		if !ok && !bytes.HasPrefix(line, []byte("HTTP/")) {
			r.lost() // not a reply: its end cannot be found
			return
		}
		// A reply with a malformed status line still has headers that
		// frame it: it fails, and the next one is found.
		r.state, r.status, r.length, r.chunked, r.bodyLen, r.bad = httpHeaders, status, -1, false, 0, !ok
	case httpHeaders:
		if len(line) == 0 {
			r.endHeaders()
			return
		}
		r.header(line)
	case httpChunkSize:
		size, ok := parseChunkSize(line)
		if !ok {
			r.bad = true
			r.lost() // the rest of the body cannot be found
			return
		}
		if size == 0 {
			r.state = httpTrailers
		} else {
			r.state, r.remaining = httpChunkData, size
		}
	case httpChunkEnd:
		r.bad = r.bad || len(line) != 0
		r.state = httpChunkSize
	case httpTrailers:
		if len(line) == 0 {
			r.finish()
		}
	}
}

// header takes in one header line: only the framing ones matter.
func (r *httpReader) header(line []byte) {
	name, value, ok := bytes.Cut(line, []byte{':'})
	if !ok {
		r.bad = true
		return
	}
	value = bytes.Trim(value, " \t")
	switch {
	case bytes.EqualFold(name, []byte("Content-Length")):
		n, err := strconv.ParseInt(string(value), 10, 64)
		if err != nil || n < 0 || n > maxHTTPBody || value[0] == '+' || r.length >= 0 && n != r.length {
			r.bad = true
			return
		}
		r.length = n
	case bytes.EqualFold(name, []byte("Transfer-Encoding")):
		// Chunked must be the last coding; any other framing runs to the
		// connection's close, which a keep-alive load cannot use.
		codings := bytes.Split(value, []byte{','})
		r.chunked = bytes.EqualFold(bytes.TrimSpace(codings[len(codings)-1]), []byte("chunked"))
		r.bad = r.bad || !r.chunked
	}
}

// endHeaders starts the body the headers announced.
func (r *httpReader) endHeaders() {
	switch {
	case r.status < 200 && !r.bad:
		r.state = httpStatusLine // interim (100 Continue ...): the reply is yet to come
	case r.chunked:
		r.state = httpChunkSize
	case r.status == 204 || r.status == 304:
		r.finish() // no body whatever the headers say
	case r.length > 0:
		r.state, r.remaining = httpBody, r.length
	case r.length == 0:
		r.finish()
	default:
		// Neither length nor chunks: the body runs to the connection's close.
		r.bad = true
		r.finish()
	}
}

// finish records the complete reply: an answer when it is well formed with
// status 200.
func (r *httpReader) finish() {
	c, e := r.c, r.c.e
	ok := !r.bad && r.status == 200
	if !r.bad && r.status != 200 {
		e.res.HTTPNot200++
	}
	if ok && !c.failed && c.expect < c.next && e.interval[c.expect] != 0 {
		e.res.ReceivedBytes += uint64(r.bodyLen) // replied adds the engine's size, 0 here
	}
	if r.sawReply != nil {
		r.sawReply(r.status, r.body)
	}
	e.replied(c, ok)
	r.state, r.bad, r.body = httpStatusLine, false, r.body[:0]
}

// lost records a failed reply for bytes that cannot be framed, and looks for
// the next status line.
func (r *httpReader) lost() {
	r.c.e.replied(r.c, false)
	r.state, r.bad, r.body = httpStatusLine, false, r.body[:0]
}

// parseStatusLine reads "HTTP/1.x NNN reason".
func parseStatusLine(line []byte) (status int, ok bool) {
	const prefix = "HTTP/1."
	if len(line) < len(prefix)+5 || string(line[:len(prefix)]) != prefix || line[len(prefix)+1] != ' ' ||
		len(line) > len(prefix)+5 && line[len(prefix)+5] != ' ' {
		return 0, false
	}
	code := line[len(prefix)+2 : len(prefix)+5]
	for _, d := range code {
		if d < '0' || d > '9' {
			return 0, false
		}
	}
	status, _ = strconv.Atoi(string(code))
	return status, status >= 100
}

// parseChunkSize reads a chunk-size line: hex digits, then extensions after
// ";" that are ignored.
func parseChunkSize(line []byte) (int64, bool) {
	hex, _, _ := bytes.Cut(line, []byte{';'})
	hex = bytes.TrimRight(hex, " \t")
	if len(hex) == 0 || len(hex) > 10 { // 10 hex digits cover maxHTTPBody
		return 0, false
	}
	n, err := strconv.ParseUint(string(hex), 16, 64)
	if err != nil || n > maxHTTPBody {
		return 0, false
	}
	return int64(n), true
}
