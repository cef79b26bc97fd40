package loadgen

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// httpReply is a reply as the reader saw it.
type httpReply struct {
	status int
	body   string
}

// httpHarness is appHarness for n GETs, with the replies the reader saw.
func httpHarness(n int) (*tcpEngine, *tcpConn, *[]httpReply) {
	p, err := newHTTPProtocol(HTTPConfig{}, netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		panic(err)
	}
	e, c := appHarness(n, p)
	var seen []httpReply
	c.reader.(*httpReader).sawReply = func(status int, body []byte) {
		seen = append(seen, httpReply{status, string(body)})
	}
	return e, c, &seen
}

func TestHTTPReaderCutsReplies(t *testing.T) {
	stream := []byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello" +
		// An interim reply, then a body that looks like a status line.
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length:12\r\n\r\nHTTP/1.1 200" +
		"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno!" +
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nab\r\n\r\n3\r\nxyz\r\n0\r\nTrailer: t\r\n\r\n" +
		"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n" +
		"HTTP/1.0 200 OK\nCONTENT-LENGTH: 0\n\n") // bare LFs are tolerated
	want := []httpReply{{200, "hello"}, {200, "HTTP/1.1 200"}, {404, "no!"}, {200, "ab\r\nxyz"}, {204, ""}, {200, ""}}
	var seen *[]httpReply
	feedSplits(t, stream, func() (*tcpEngine, *tcpConn) {
		e, c, s := httpHarness(len(want))
		seen = s
		return e, c
	}, func(e *tcpEngine, c *tcpConn) error {
		r := e.res
		if r.Received != 4 || r.Unmatched != 2 || r.HTTPNot200 != 2 || r.ReceivedBytes != 5+12+7 || c.expect != len(want) {
			return fmt.Errorf("received %d unmatched %d not 200 %d bytes %d expect %d", r.Received, r.Unmatched, r.HTTPNot200, r.ReceivedBytes, c.expect)
		}
		if !slices.Equal(*seen, want) {
			return fmt.Errorf("replies %+v, want %+v", *seen, want)
		}
		return nil
	})
}

// A malformed reply fails, and the reply after it is still found when the
// malformed one's end can be.
func TestHTTPReaderRefusesWrongReplies(t *testing.T) {
	const good = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	for _, c := range []struct {
		name  string
		reply string
	}{
		{"no length", "HTTP/1.1 200 OK\r\n\r\n"},
		{"other transfer coding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"},
		{"two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"},
		{"negative length", "HTTP/1.1 200 OK\r\nContent-Length: -2\r\nContent-Length: 2\r\n\r\nok"},
		{"header without colon", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nnonsense\r\n\r\nok"},
		{"header too long", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: " + strings.Repeat("x", 9000) + "\r\n\r\nok"},
		{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"},
		{"no CRLF after a chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokxx\r\n0\r\n\r\n"},
		{"not HTTP", "SSH-2.0-OpenSSH\r\n"},
		{"status not a number", "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n"},
		{"status line too long", "HTTP/1.1 200 " + strings.Repeat("x", 9000) + "\r\n"},
	} {
		e, conn, _ := httpHarness(2)
		conn.reader.Write([]byte(c.reply + good))
		if r := e.res; r.Unmatched != 1 || r.Received != 1 || r.HTTPNot200 != 0 || conn.expect != 2 {
			t.Errorf("%s: unmatched %d received %d not 200 %d expect %d", c.name, r.Unmatched, r.Received, r.HTTPNot200, conn.expect)
		}
	}
}

func TestHTTPPath(t *testing.T) {
	p, err := newHTTPProtocol(HTTPConfig{}, netip.MustParseAddr("198.18.0.2"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(p.request(0)), "GET / HTTP/1.1\r\nHost: 198.18.0.2\r\n\r\n"; got != want {
		t.Errorf("request %q, want %q", got, want)
	}
	for _, ok := range []string{"", "/", "/index.html", "/a/b?c=d&e=%20"} {
		if err := (HTTPConfig{Path: ok}).Check(); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"index.html", "/a b", "/a\r\nX: y", "/\x00", "/é", "/" + strings.Repeat("a", MaxHTTPPath)} {
		if err := (HTTPConfig{Path: bad}).Check(); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	cfg := TCPConfig{Config: Config{Flow: Flow{SrcIP: netip.MustParseAddr("198.18.0.1"), DstIP: netip.MustParseAddr("198.18.0.2"), DstPort: 80},
		Schedule: "poisson", Rate: 1, Duration: time.Second}, HTTP: &HTTPConfig{}, Redis: &MemcachedConfig{}}
	if err := cfg.check(); err == nil || !strings.Contains(err.Error(), "at most one") {
		t.Errorf("http and redis together: %v", err)
	}
}

// FuzzHTTPReader: whatever a server sends, the reader neither panics nor
// answers more requests than were written.
func FuzzHTTPReader(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 404 x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, c, _ := httpHarness(3)
		c.reader.Write(data)
		if c.expect > c.next || e.res.Received > 3 {
			t.Fatalf("expect %d next %d received %d", c.expect, c.next, e.res.Received)
		}
	})
}

// The requests http is sent are HTTP: a real nginx answers every pipelined
// GET, with the file's content, or 404, which answers nothing.
func TestHTTPNginx(t *testing.T) {
	dir := t.TempDir()
	var content strings.Builder
	for i := range 300 {
		fmt.Fprintf(&content, "line %d of the served file\n", i)
	}
	if err := os.WriteFile(filepath.Join(dir, "file.txt"), []byte(content.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freeLoopbackPort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	// The temp paths are nginx's compiled-in ones otherwise, outside dir.
	conf := fmt.Sprintf(`daemon off; master_process off; error_log stderr; pid %[1]s/nginx.pid;
events {}
http {
	access_log off;
	client_body_temp_path %[1]s/body; proxy_temp_path %[1]s/proxy; fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi; scgi_temp_path %[1]s/scgi;
	server { listen %[2]s; root %[1]s; }
}
`, dir, addr)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// -e: the error log is stderr from the start, before the configuration
	// is read.
	conn := startServer(t, addr, "nginx", "-e", "stderr", "-p", dir, "-c", confPath)

	server := netip.MustParseAddr("127.0.0.1")
	found, _ := newHTTPProtocol(HTTPConfig{Path: "/file.txt"}, server)
	missing, _ := newHTTPProtocol(HTTPConfig{Path: "/missing.txt"}, server)
	const n = 500 // under nginx's keepalive_requests (1000): it closes the connection then
	var reqs []byte
	var want []int
	for i := range n {
		if i%7 == 3 {
			reqs = append(reqs, missing.request(i)...)
			want = append(want, 404)
		} else {
			reqs = append(reqs, found.request(i)...)
			want = append(want, 200)
		}
	}
	e, c, seen := httpHarness(n)
	exchange(t, conn, reqs, c, func() bool { return c.expect == n })
	n404 := uint64(n / 7)
	if r := e.res; r.Received != n-n404 || r.Unmatched != n404 || r.HTTPNot200 != n404 ||
		r.ReceivedBytes != (n-n404)*uint64(content.Len()) {
		t.Fatalf("received %d unmatched %d not 200 %d bytes %d, want %d, %d, %d, %d", r.Received, r.Unmatched, r.HTTPNot200,
			r.ReceivedBytes, n-n404, n404, n404, (n-n404)*uint64(content.Len()))
	}
	for i, r := range *seen {
		if r.status != want[i] || r.status == 200 && r.body != content.String() || r.status == 404 && !strings.Contains(r.body, "404") {
			t.Fatalf("reply %d: status %d, body %q; want status %d", i, r.status, r.body, want[i])
		}
	}
}
