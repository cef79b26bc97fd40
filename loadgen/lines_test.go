package loadgen

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// feedLines gives the reader stream in pieces of random sizes, as TCP
// delivers it, and returns each line it completes (tooLong ones as "!").
func feedLines(l *lineReader, stream string, rng *rand.Rand) []string {
	var got []string
	b := []byte(stream)
	for len(b) > 0 {
		seg := b[:min(len(b), 1+rng.IntN(7))]
		b = b[len(seg):]
		for {
			line, rest, done, tooLong := l.next(seg)
			if !done {
				break
			}
			if tooLong {
				got = append(got, "!")
			} else {
				got = append(got, string(line))
			}
			seg = rest
		}
	}
	return got
}

// Lines come back whole whatever the segments, without CRLF or a bare LF, the
// empty line included; a line over max (its CR counted) is reported once at
// its end, and the lines after it are read as if it had not been there.
func TestLineReader(t *testing.T) {
	long := strings.Repeat("x", 20)
	stream := "STORED\r\nEND\n\r\n" + long + "\r\nVALUE a 0 1\r\n" + strings.Repeat("y", 15) + "\r\n" + "tail"
	want := []string{"STORED", "END", "", "!", "VALUE a 0 1", strings.Repeat("y", 15)}
	for seed := range uint64(50) {
		l := lineReader{max: 16}
		if got := feedLines(&l, stream, rand.New(rand.NewPCG(seed, 1))); !slices.Equal(got, want) {
			t.Fatalf("seed %d: %q, want %q", seed, got, want)
		}
		// "tail" waits for its LF, then completes.
		if line, rest, done, tooLong := l.next([]byte("\r\nnext")); !done || tooLong || string(line) != "tail" || string(rest) != "next" {
			t.Fatalf("seed %d: %q %q %v %v", seed, line, rest, done, tooLong)
		}
	}
}
