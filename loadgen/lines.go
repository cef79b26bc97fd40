package loadgen

import "bytes"

// lineReader gathers one line of a reply stream across the segments it
// arrives in: the framing every text protocol of the TCP engine shares
// (memcached's, RESP's and HTTP/1.1's replies are lines, some followed by a
// counted block the protocol's reader skips itself). A line longer than max
// means the stream is not the protocol's: it is reported (tooLong) when its
// end comes, and its bytes are dropped rather than buffered.
type lineReader struct {
	buf     []byte
	max     int
	tooLong bool
}

// next consumes b up to and including the next LF. When a line is complete
// it returns it without its CRLF (or LF), valid until the next call, with done
// true; rest is what follows it in b.
func (l *lineReader) next(b []byte) (line, rest []byte, done, tooLong bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		l.add(b)
		return nil, nil, false, false
	}
	l.add(b[:i])
	line, tooLong = bytes.TrimSuffix(l.buf, []byte{'\r'}), l.tooLong
	l.buf, l.tooLong = l.buf[:0], false
	return line, b[i+1:], true, tooLong
}

func (l *lineReader) add(b []byte) {
	if l.tooLong {
		return
	}
	if len(l.buf)+len(b) > l.max {
		l.buf, l.tooLong = l.buf[:0], true
		return
	}
	l.buf = append(l.buf, b...)
}
