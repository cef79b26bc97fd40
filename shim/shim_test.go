//go:build dpdk && cgo

package shim

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/joyride-bench/joyride/testbed/local"
)

// The real thing: the local namespace testbed, joyrided owning the server
// namespace's veth (DPDK af_xdp), Debian's programs under LD_PRELOAD in the
// server namespace, and plain Linux clients in the client namespace. Every
// Joyride test runs its program with JOYRIDE_FALLBACK=fail, so a shim that
// could not attach makes socket() fail instead of silently using the kernel,
// and checks that the kernel of the server namespace has no listener on the
// port and that joyrided logged the program attaching.

// syncBuf is a bytes.Buffer safe for a process writer and a test reader.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type bed struct {
	tb   *local.Testbed
	bin  string
	lib  string
	dir  string
	sock string
	jrd  *proc // joyrided, when started
}

type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuf
	done chan struct{}
	once sync.Once
}

// stop ends the process (SIGTERM, SIGKILL after 5 s) and returns its output.
func (p *proc) stop() string {
	p.once.Do(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p.out.String()
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func binDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("JRBENCH_BIN")
	if dir == "" {
		dir, _ = filepath.Abs("../bin")
	}
	for _, b := range []string{"joyrided", "libjoyride-preload.so"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			t.Fatalf("%s missing in %s: run make build first", b, dir)
		}
	}
	if os.Geteuid() != 0 {
		t.Fatal("these tests need root (network namespaces, DPDK)")
	}
	return dir
}

func need(t *testing.T, progs ...string) {
	t.Helper()
	for _, p := range progs {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("%s is not installed (make deps installs it): %v", p, err)
		}
	}
}

// upBed brings up a testbed, and joyrided in its server namespace if asked.
func upBed(t *testing.T, joyride bool) *bed {
	t.Helper()
	bin := binDir(t)
	tb, err := local.Up(context.Background(), local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tb.Down(); err != nil {
			t.Errorf("testbed down: %v", err)
		}
	})
	if err := local.EnsureBPFFS(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	b := &bed{tb: tb, bin: bin, lib: filepath.Join(bin, "libjoyride-preload.so"), dir: dir, sock: filepath.Join(dir, "jr.sock")}
	if joyride {
		b.startJoyrided(t)
	}
	return b
}

// startJoyrided starts bin/joyrided in the server namespace and waits for READY.
func (b *bed) startJoyrided(t *testing.T) {
	t.Helper()
	cmd := b.tb.CommandWithBPFFS(context.Background(), b.tb.Server, "taskset", "-c", "0",
		filepath.Join(b.bin, "joyrided"), "-iface", b.tb.Server.Iface, "-driver", "af_xdp",
		"-addr", b.tb.Server.Addr.String(), "-socket", b.sock, "-cpu", "0", "-file-prefix", "jrshim-"+b.tb.ID)
	p := &proc{name: "joyrided", cmd: cmd, out: &syncBuf{}, done: make(chan struct{})}
	cmd.Stderr = p.out
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		sig := false
		for sc.Scan() {
			if sc.Text() == "READY" && !sig {
				close(ready)
				sig = true
				continue
			}
			fmt.Fprintln(p.out, sc.Text())
		}
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { t.Logf("joyrided log (tail):\n%s", tail(p.stop(), 15)) })
	select {
	case <-ready:
	case <-p.done:
		t.Fatalf("joyrided exited before READY:\n%s", p.out.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("joyrided not READY within 30 s:\n%s", p.out.String())
	}
	b.jrd = p
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// shimEnv is the environment of a program under the shim.
func (b *bed) shimEnv(extra ...string) []string {
	env := append(os.Environ(), "LD_PRELOAD="+b.lib, "JOYRIDE_SOCKET="+b.sock, "JOYRIDE_FALLBACK=fail")
	return append(env, extra...)
}

// start runs a long-lived program in node's namespace with env.
func (b *bed) start(t *testing.T, node local.Node, env []string, name string, args ...string) *proc {
	t.Helper()
	cmd := b.tb.Command(context.Background(), node, name, args...)
	cmd.Env = env
	p := &proc{name: name, cmd: cmd, out: &syncBuf{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { t.Logf("%s output (tail):\n%s", name, tail(p.stop(), 15)) })
	return p
}

// run runs a short program in node's namespace and returns its output.
func (b *bed) run(t *testing.T, node local.Node, env []string, stdin io.Reader, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := b.tb.Command(ctx, node, name, args...)
	cmd.Env = env
	cmd.Stdin = stdin
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// dial connects from the client namespace's kernel stack to the server,
// retrying until the server listens.
func (b *bed) dial(t *testing.T, port int, p *proc) net.Conn {
	t.Helper()
	addr := net.JoinHostPort(b.tb.Server.Addr.Addr().String(), strconv.Itoa(port))
	deadline := time.Now().Add(15 * time.Second)
	for {
		var c net.Conn
		err := local.InNetns(b.tb.Client.Netns, func() (err error) {
			c, err = net.DialTimeout("tcp", addr, 2*time.Second)
			return err
		})
		if err == nil {
			t.Cleanup(func() { c.Close() })
			return c
		}
		if p != nil && p.exited() {
			t.Fatalf("%s exited:\n%s", p.name, p.out.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("dial %s: %v", addr, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkOnJoyride fails the test unless the traffic really went through
// joyrided: the server namespace's kernel has no listener on port, joyrided
// logged app attaching, and the program logged no fallback.
func (b *bed) checkOnJoyride(t *testing.T, port int, app string, p *proc) {
	t.Helper()
	out, err := b.run(t, b.tb.Server, os.Environ(), nil, "ss", "-ltnH")
	if err != nil {
		t.Fatalf("ss: %v: %s", err, out)
	}
	if strings.Contains(out, ":"+strconv.Itoa(port)+" ") {
		t.Errorf("the server namespace's kernel listens on port %d: the shim fell back to the kernel:\n%s", port, out)
	}
	if n := strings.Count(b.jrd.out.String(), "application attached"); n == 0 || !strings.Contains(b.jrd.out.String(), "name="+app) {
		t.Errorf("joyrided did not log %s attaching:\n%s", app, b.jrd.out.String())
	}
	if p != nil && strings.Contains(p.out.String(), "joyrided not usable") {
		t.Errorf("%s logged a fallback:\n%s", app, p.out.String())
	}
}

// memcachedCheck sets keys on c and reads them back.
func memcachedCheck(t *testing.T, c net.Conn, prefix string, n int) {
	t.Helper()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	val := func(i int) []byte {
		size := 10 + (i*7919)%3000
		if i%10 == 9 {
			size = 200_000 // several messages, and beyond one send window's worth of buffers
		}
		return bytes.Repeat([]byte{byte('a' + i%26)}, size)
	}
	for i := 0; i < n; i++ {
		v := val(i)
		fmt.Fprintf(c, "set %s%d 0 0 %d\r\n%s\r\n", prefix, i, len(v), v)
		line, err := r.ReadString('\n')
		if err != nil || line != "STORED\r\n" {
			t.Fatalf("set %s%d: %q %v", prefix, i, line, err)
		}
	}
	for i := 0; i < n; i++ {
		v := val(i)
		fmt.Fprintf(c, "get %s%d\r\n", prefix, i)
		hdr, err := r.ReadString('\n')
		want := fmt.Sprintf("VALUE %s%d 0 %d\r\n", prefix, i, len(v))
		if err != nil || hdr != want {
			t.Fatalf("get %s%d: header %q (want %q) %v", prefix, i, hdr, want, err)
		}
		got := make([]byte, len(v)+2)
		if _, err := io.ReadFull(r, got); err != nil {
			t.Fatalf("get %s%d: %v", prefix, i, err)
		}
		if !bytes.Equal(got[:len(v)], v) {
			t.Fatalf("get %s%d: value differs", prefix, i)
		}
		if end, _ := r.ReadString('\n'); end != "END\r\n" {
			t.Fatalf("get %s%d: trailer %q", prefix, i, end)
		}
	}
}

func TestMemcached(t *testing.T) {
	need(t, "memcached")
	b := upBed(t, true)
	const port = 11311
	p := b.start(t, b.tb.Server, b.shimEnv(), "memcached", "-u", "root", "-l", b.tb.Server.Addr.Addr().String(),
		"-p", strconv.Itoa(port), "-U", "0", "-t", "2", "-m", "64")
	c := b.dial(t, port, p)
	memcachedCheck(t, c, "k", 40)
	// Concurrent connections (memcached's worker threads, the shim's locking).
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		c := b.dial(t, port, p)
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			memcachedCheck(t, c, fmt.Sprintf("g%d-", g), 20)
		}(g)
	}
	wg.Wait()
	// Values written on one connection are read on another.
	c2 := b.dial(t, port, p)
	fmt.Fprintf(c2, "get k3\r\n")
	c2.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c2).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "VALUE k3 0 ") {
		t.Fatalf("get k3 on a second connection: %q %v", line, err)
	}
	b.checkOnJoyride(t, port, "memcached", p)
	if p.exited() {
		t.Fatalf("memcached exited:\n%s", p.out.String())
	}
}

func TestRedis(t *testing.T) {
	need(t, "redis-server", "redis-cli", "redis-benchmark")
	b := upBed(t, true)
	const port = 6390
	host := b.tb.Server.Addr.Addr().String()
	p := b.start(t, b.tb.Server, b.shimEnv(), "redis-server", "--port", strconv.Itoa(port), "--bind", host,
		"--protected-mode", "no", "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", b.dir)
	b.dial(t, port, p).Close()
	cli := func(stdin io.Reader, args ...string) string {
		t.Helper()
		out, err := b.run(t, b.tb.Client, os.Environ(), stdin, "redis-cli", append([]string{"-h", host, "-p", strconv.Itoa(port)}, args...)...)
		if err != nil {
			t.Fatalf("redis-cli %v: %v: %s", args, err, out)
		}
		return strings.TrimSpace(out)
	}
	if got := cli(nil, "SET", "greeting", "hello joyride"); got != "OK" {
		t.Fatalf("SET: %q", got)
	}
	if got := cli(nil, "GET", "greeting"); got != "hello joyride" {
		t.Fatalf("GET: %q", got)
	}
	big := strings.Repeat("0123456789abcdef", 40_000) // 640 kB: more than the send window
	if got := cli(strings.NewReader(big), "-x", "SET", "big"); got != "OK" {
		t.Fatalf("SET big: %q", got)
	}
	if got := cli(nil, "STRLEN", "big"); got != strconv.Itoa(len(big)) {
		t.Fatalf("STRLEN big: %q", got)
	}
	if got := cli(nil, "GET", "big"); got != big {
		t.Fatalf("GET big: %d bytes, want %d", len(got), len(big))
	}
	out, err := b.run(t, b.tb.Client, os.Environ(), nil, "redis-benchmark", "-h", host, "-p", strconv.Itoa(port),
		"-n", "5000", "-c", "20", "-t", "set,get", "-q")
	if err != nil || strings.Count(out, "requests per second") < 2 {
		t.Fatalf("redis-benchmark: %v:\n%s", err, out)
	}
	t.Logf("redis-benchmark:\n%s", out)
	for i := 0; i < 20; i++ {
		k := "key" + strconv.Itoa(i)
		cli(nil, "SET", k, strings.Repeat("v", i*100+1))
		if got := cli(nil, "GET", k); got != strings.Repeat("v", i*100+1) {
			t.Fatalf("GET %s: %q", k, got)
		}
	}
	b.checkOnJoyride(t, port, "redis-server", p)
}

func TestNginx(t *testing.T) {
	need(t, "nginx", "curl", "wrk")
	b := upBed(t, true)
	const port = 8088
	host := b.tb.Server.Addr.Addr().String()
	www := filepath.Join(b.dir, "www")
	os.MkdirAll(www, 0o755)
	os.MkdirAll(filepath.Join(b.dir, "tmp"), 0o755)
	index := "hello from nginx on joyride\n"
	os.WriteFile(filepath.Join(www, "index.html"), []byte(index), 0o644)
	big := bytes.Repeat([]byte("joyride-nginx-"), 50_000) // 700 kB
	os.WriteFile(filepath.Join(www, "big.bin"), big, 0o644)
	// sendfile off: with sendfile nginx hands the kernel a file descriptor to
	// copy from; the shim does emulate sendfile(2) with read + send, but
	// writev is nginx's ordinary path and the one this test is about.
	conf := fmt.Sprintf(`daemon off;
master_process on;
worker_processes 2;
user root;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 256; }
http {
    access_log off;
    sendfile off;
    default_type application/octet-stream;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
    server {
        listen %[2]s:%[3]d;
        root %[4]s;
    }
}
`, b.dir, host, port, www)
	confPath := filepath.Join(b.dir, "nginx.conf")
	os.WriteFile(confPath, []byte(conf), 0o644)
	p := b.start(t, b.tb.Server, b.shimEnv(), "nginx", "-c", confPath, "-p", b.dir, "-e", filepath.Join(b.dir, "error.log"))
	t.Cleanup(func() {
		if e, err := os.ReadFile(filepath.Join(b.dir, "error.log")); err == nil {
			t.Logf("nginx error.log (tail):\n%s", tail(string(e), 20))
		}
	})
	b.dial(t, port, p).Close()
	url := fmt.Sprintf("http://%s:%d/", host, port)
	for i := 0; i < 30; i++ {
		out, err := b.run(t, b.tb.Client, os.Environ(), nil, "curl", "-sS", "--max-time", "10", "-w", "|%{http_code}", url+"index.html")
		if err != nil || out != index+"|200" {
			t.Fatalf("curl %d: %v: %q", i, err, out)
		}
	}
	out, err := b.run(t, b.tb.Client, os.Environ(), nil, "curl", "-sS", "--max-time", "20", "-o", "-", url+"big.bin")
	if err != nil || out != string(big) {
		t.Fatalf("curl big.bin: %v: %d bytes, want %d", err, len(out), len(big))
	}
	out, _ = b.run(t, b.tb.Client, os.Environ(), nil, "curl", "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", url+"missing")
	if out != "404" {
		t.Fatalf("curl missing: %q, want 404", out)
	}
	// wrk, the HTTP benchmark, for one second over 8 keep-alive connections:
	// every reply a 2xx, and more than a handful of them.
	out, err = b.run(t, b.tb.Client, os.Environ(), nil, "wrk", "-t1", "-c8", "-d1s", "--timeout", "5s", url+"index.html")
	if err != nil {
		t.Fatalf("wrk: %v: %s", err, out)
	}
	m := regexp.MustCompile(`(\d+) requests in`).FindStringSubmatch(out)
	if m == nil || strings.Contains(out, "Non-2xx") || strings.Contains(out, "Socket errors") {
		t.Fatalf("wrk against nginx on Joyride:\n%s", out)
	}
	if n, _ := strconv.Atoi(m[1]); n < 100 {
		t.Fatalf("wrk: only %d requests in a second:\n%s", n, out)
	}
	t.Logf("wrk: %s requests in 1 s, all 2xx", m[1])
	// A reload (SIGHUP): the master forks new workers, which listen with
	// reuseport next to the old ones until those finish.
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	for i := 0; i < 10; i++ {
		out, err := b.run(t, b.tb.Client, os.Environ(), nil, "curl", "-sS", "--max-time", "10", url+"index.html")
		if err != nil || out != index {
			t.Fatalf("curl after reload %d: %v: %q", i, err, out)
		}
	}
	b.checkOnJoyride(t, port, "nginx", p)
	// The master and both workers registered (the workers after fork).
	if n := strings.Count(b.jrd.out.String(), "name=nginx"); n < 3 {
		t.Errorf("joyrided saw %d nginx attachments, want the master and 2 workers:\n%s", n, b.jrd.out.String())
	}
}

func TestCurlClient(t *testing.T) {
	need(t, "curl")
	b := upBed(t, true)
	const port = 8089
	body := bytes.Repeat([]byte("0123456789"), 120_000) // 1.2 MB
	var ln net.Listener
	if err := local.InNetns(b.tb.Client.Netns, func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(b.tb.Client.Addr.Addr().String(), strconv.Itoa(port)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var remotes []string
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		remotes = append(remotes, r.RemoteAddr)
		mu.Unlock()
		if r.URL.Path == "/big" {
			w.Write(body)
			return
		}
		fmt.Fprintf(w, "kernel server saw %s", r.Method)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	url := fmt.Sprintf("http://%s:%d/", b.tb.Client.Addr.Addr().String(), port)
	out, err := b.run(t, b.tb.Server, b.shimEnv(), nil, "curl", "-sS", "--max-time", "15", "-w", "|%{http_code}", url+"small")
	if err != nil || out != "kernel server saw GET|200" {
		t.Fatalf("curl under the shim: %v: %q", err, out)
	}
	out, err = b.run(t, b.tb.Server, b.shimEnv(), nil, "curl", "-sS", "--max-time", "20", "-o", "-", url+"big")
	if err != nil || out != string(body) {
		t.Fatalf("curl big: %v: %d bytes, want %d (%.200q)", err, len(out), len(body), out)
	}
	out, err = b.run(t, b.tb.Server, b.shimEnv(), strings.NewReader("posted"), "curl", "-sS", "--max-time", "15", "--data-binary", "@-", url+"post")
	if err != nil || out != "kernel server saw POST" {
		t.Fatalf("curl POST: %v: %q", err, out)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, r := range remotes {
		if !strings.HasPrefix(r, b.tb.Server.Addr.Addr().String()+":") {
			t.Errorf("request from %s, want the server namespace's Joyride address", r)
		}
	}
	if !strings.Contains(b.jrd.out.String(), "name=curl") {
		t.Errorf("joyrided did not see curl attach:\n%s", b.jrd.out.String())
	}
	// A refused connection is an error, as on the kernel.
	out, err = b.run(t, b.tb.Server, b.shimEnv(), nil, "curl", "-sS", "--max-time", "10", fmt.Sprintf("http://%s:%d/", b.tb.Client.Addr.Addr().String(), port+1))
	if err == nil || !strings.Contains(out, "onnect") {
		t.Fatalf("curl to a closed port: %v: %q (want a connection failure)", err, out)
	}
}

const pyProbe = `
import os, socket, sys
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
except OSError as e:
    print("socket failed errno", e.errno)
    sys.exit(3)
print("fd", os.readlink("/proc/self/fd/%d" % s.fileno()))
`

func TestFallback(t *testing.T) {
	need(t, "memcached", "python3")
	b := upBed(t, false) // no joyrided: b.sock does not exist
	env := append(os.Environ(), "LD_PRELOAD="+b.lib, "JOYRIDE_SOCKET="+b.sock)
	// The kernel fallback (the default): memcached works, with one log line.
	const port = 11312
	host := b.tb.Client.Addr.Addr().String()
	p := b.start(t, b.tb.Client, env, "memcached", "-u", "root", "-l", host, "-p", strconv.Itoa(port), "-U", "0", "-t", "2")
	var c net.Conn
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := local.InNetns(b.tb.Client.Netns, func() (err error) {
			c, err = net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(port)), 2*time.Second)
			return err
		})
		if err == nil {
			break
		}
		if time.Now().After(deadline) || p.exited() {
			t.Fatalf("memcached on the kernel fallback: %v\n%s", err, p.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	defer c.Close()
	memcachedCheck(t, c, "fb", 10)
	if n := strings.Count(p.out.String(), "joyrided not usable"); n != 1 {
		t.Errorf("want exactly one fallback log line, got %d:\n%s", n, p.out.String())
	}
	if !strings.Contains(p.out.String(), "JOYRIDE_FALLBACK=kernel") {
		t.Errorf("fallback line does not name the policy:\n%s", p.out.String())
	}
	out, err := b.run(t, b.tb.Client, env, nil, "python3", "-c", pyProbe)
	if err != nil || !strings.Contains(out, "fd socket:[") {
		t.Errorf("kernel fallback: python3 socket(): %v: %s", err, out)
	}
	// JOYRIDE_FALLBACK=fail: socket() fails with ENETDOWN.
	out, err = b.run(t, b.tb.Client, append(env, "JOYRIDE_FALLBACK=fail"), nil, "python3", "-c", pyProbe)
	if err == nil || !strings.Contains(out, fmt.Sprintf("socket failed errno %d", syscall.ENETDOWN)) || !strings.Contains(out, "joyrided not usable") {
		t.Errorf("JOYRIDE_FALLBACK=fail: want socket() to fail with ENETDOWN and a log line: %v: %s", err, out)
	}
}

// TestProbe checks, on Joyride, that a socket under the shim is the eventfd
// standing for a Joyride socket (and that Unix sockets are left alone).
func TestProbe(t *testing.T) {
	need(t, "python3")
	b := upBed(t, true)
	out, err := b.run(t, b.tb.Server, b.shimEnv(), nil, "python3", "-c", pyProbe+`
u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
print("unix", os.readlink("/proc/self/fd/%d" % u.fileno()))
`)
	if err != nil || !strings.Contains(out, "fd anon_inode:[eventfd]") || !strings.Contains(out, "unix socket:[") {
		t.Fatalf("python3 under the shim: %v: %s", err, out)
	}
}

// callsScript exercises the interposed calls one by one, as a server on
// Joyride (argv: server address, client address, base port), with the Go
// client of TestCalls in the client namespace.
const callsScript = `
import errno, fcntl, os, select, socket, struct, sys, termios, time
host, peer, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
def check(cond, what):
    if not cond:
        print("FAIL", what, flush=True); sys.exit(1)
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((host, port)); ls.listen(16)
check(ls.getsockname() == (host, port), "getsockname %r" % (ls.getsockname(),))
check(ls.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1, "SO_ACCEPTCONN")
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind((host, port + 1))
print("listening", flush=True)
c, addr = ls.accept()
check(addr[0] == peer and c.getpeername() == addr, "accept addr %r %r" % (addr, c.getpeername()))
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
check(c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1, "TCP_NODELAY readback")
# MSG_PEEK leaves the data; MSG_DONTWAIT on an empty queue is EAGAIN.
d = c.recv(5, socket.MSG_PEEK)
check(d == b"hello", "peek %r" % d)
check(c.recv(5) == b"hello", "recv after peek")
try:
    c.recv(5, socket.MSG_DONTWAIT); check(False, "DONTWAIT on empty")
except BlockingIOError:
    pass
c.sendall(b"ok1")
# select, FIONREAD, dup.
r, _, _ = select.select([c], [], [], 10)
check(r == [c], "select readable")
time.sleep(0.2)
n = struct.unpack("i", fcntl.ioctl(c.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]
check(n == 3, "FIONREAD %d" % n)
check(c.recv(3) == b"abc", "recv abc")
d2 = os.dup(c.fileno())
os.write(d2, b"dup")
os.close(d2)
c.sendall(b"ok2")
# Non-blocking + edge-triggered epoll: every arrival is a new edge.
c.setblocking(False)
check(fcntl.fcntl(c.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK, "F_GETFL O_NONBLOCK")
ep = select.epoll()
ep.register(c.fileno(), select.EPOLLIN | select.EPOLLET)
got, edges = b"", 0
while got != b"xy":
    ev = ep.poll(10)
    check(ev, "epoll timed out with %r" % got)
    edges += 1
    while True:
        try:
            b = c.recv(100)
        except BlockingIOError:
            break
        check(b, "EOF too early")
        got += b
check(edges >= 2, "edges %d" % edges)
ep.close()
c.setblocking(True)
c.sendall(b"ok3")
c.shutdown(socket.SHUT_WR)
rest = b""
while True:
    b = c.recv(100)
    if not b: break
    rest += b
check(rest == b"bye", "after shutdown %r" % rest)
c.close()
# UDP.
data, src = u.recvfrom(100)
check(data == b"ping" and src[0] == peer, "udp %r %r" % (data, src))
u.sendto(data.upper(), src)
# Non-blocking connect to a closed port: EINPROGRESS, then SO_ERROR.
s = socket.socket(); s.setblocking(False)
e = s.connect_ex((peer, port + 2))
check(e == errno.EINPROGRESS, "connect_ex %d" % e)
_, w, _ = select.select([], [s], [], 10)
check(w == [s], "writable after connect")
e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
check(e == errno.ECONNREFUSED, "SO_ERROR %d" % e)
s.close()
# Blocking connect to the client's kernel listener.
s = socket.create_connection((peer, port + 3), timeout=10)
s.sendall(b"from-python")
check(s.recv(100) == b"hi", "reply")
s.close()
# A blocking receive: SO_RCVTIMEO bounds it (EAGAIN), a signal interrupts it (EINTR).
import signal
q = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
q.bind((host, port + 4))
q.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 300000))
t0 = time.time()
try:
    q.recv(10); check(False, "recv with SO_RCVTIMEO returned")
except (BlockingIOError, TimeoutError):
    pass
check(0.2 < time.time() - t0 < 5, "SO_RCVTIMEO waited %.2f s" % (time.time() - t0))
q.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 0))
class Alarm(Exception): pass
def on_alarm(sig, frame): raise Alarm()
signal.signal(signal.SIGALRM, on_alarm)
signal.setitimer(signal.ITIMER_REAL, 0.3)
try:
    q.recv(10); check(False, "recv returned")
except Alarm:
    pass
q.close()
print("ALL OK", flush=True)
`

func TestCalls(t *testing.T) {
	need(t, "python3")
	b := upBed(t, true)
	const port = 7300
	host, peer := b.tb.Server.Addr.Addr().String(), b.tb.Client.Addr.Addr().String()
	var ln net.Listener
	if err := local.InNetns(b.tb.Client.Netns, func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(peer, strconv.Itoa(port+3)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 11)
		if _, err := io.ReadFull(c, buf); err == nil && string(buf) == "from-python" {
			c.Write([]byte("hi"))
		}
		io.Copy(io.Discard, c)
	}()
	p := b.start(t, b.tb.Server, b.shimEnv(), "python3", "-u", "-c", callsScript, host, peer, strconv.Itoa(port))
	c := b.dial(t, port, p)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	expect := func(want string) {
		t.Helper()
		got := make([]byte, len(want))
		if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
			t.Fatalf("read %q: got %q %v\n%s", want, got, err, p.out.String())
		}
	}
	c.Write([]byte("hello"))
	expect("ok1")
	c.Write([]byte("abc"))
	expect("dupok2")
	c.Write([]byte("x"))
	time.Sleep(200 * time.Millisecond)
	c.Write([]byte("y"))
	expect("ok3")
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after the server's shutdown(SHUT_WR): %d %v, want EOF", n, err)
	}
	c.Write([]byte("bye"))
	c.Close()
	var u net.Conn
	if err := local.InNetns(b.tb.Client.Netns, func() (err error) {
		u, err = net.Dial("udp", net.JoinHostPort(host, strconv.Itoa(port+1)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	u.SetDeadline(time.Now().Add(10 * time.Second))
	u.Write([]byte("ping"))
	buf := make([]byte, 100)
	if n, err := u.Read(buf); err != nil || string(buf[:n]) != "PING" {
		t.Fatalf("udp reply %q %v\n%s", buf[:n], err, p.out.String())
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("script did not finish:\n%s", p.out.String())
	}
	if !strings.Contains(p.out.String(), "ALL OK") {
		t.Fatalf("script failed:\n%s", p.out.String())
	}
	b.checkOnJoyride(t, port, "python3", p)
}
