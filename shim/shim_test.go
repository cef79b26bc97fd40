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

// startJoyrided starts bin/joyrided in the server namespace, with extra
// flags, and waits for READY.
func (b *bed) startJoyrided(t *testing.T, extra ...string) {
	t.Helper()
	cmd := b.tb.CommandWithBPFFS(context.Background(), b.tb.Server, "taskset", append([]string{"-c", "0",
		filepath.Join(b.bin, "joyrided"), "-iface", b.tb.Server.Iface, "-driver", "af_xdp",
		"-addr", b.tb.Server.Addr.String(), "-socket", b.sock, "-cpu", "0", "-file-prefix", "jrshim-" + b.tb.ID}, extra...)...)
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
def drain(s):
    """Reads a non-blocking socket until EAGAIN."""
    out = b""
    while True:
        try:
            b = s.recv(100)
        except BlockingIOError:
            return out
        check(b, "EOF too early")
        out += b
got, edges = b"", 0
while got != b"xy":
    ev = ep.poll(10)
    check(ev, "epoll timed out with %r" % got)
    edges += 1
    got += drain(c)
check(edges >= 2, "edges %d" % edges)
# A partial read leaves the socket readable; with EPOLLET the next arrival
# must still make a new edge (the kernel makes one per arrival).
c.sendall(b"et1")
check(ep.poll(10), "epoll: no edge for ab")
check(c.recv(1) == b"a", "EPOLLET partial read")
c.sendall(b"et2")
rest = b""
while rest != b"bc":
    check(ep.poll(10), "epoll: no new edge for c while b was still queued (have %r)" % rest)
    rest += drain(c)
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
# A connection nobody reads (1.5 MB, more than sockets may keep in the
# service's buffers) does not stall another; then its bytes, in order.
SIZE = 1500000
pattern = bytes((i * 7) % 251 for i in range(SIZE))
a, _ = ls.accept()
b2, _ = ls.accept()
check(b2.recv(4) == b"ping", "second connection")
deadline = time.time() + 20
while time.time() < deadline:
    n = struct.unpack("i", fcntl.ioctl(a.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]
    if n == SIZE: break
    time.sleep(0.05)
check(n == SIZE, "FIONREAD of the unread connection %d, want %d" % (n, SIZE))
b2.sendall(b"pong")
got = bytearray()
while len(got) < SIZE:
    p = a.recv(4099, socket.MSG_PEEK)
    d = a.recv(65536 + 17)
    check(d and d.startswith(p[:len(d)]), "peek then read at %d" % len(got))
    got += d
check(bytes(got) == pattern, "the unread connection's bytes")
a.close()
# fork with data queued: the child gets its own copy, then EIO (the
# connection is the parent's); the parent still reads it.
check(b2.recv(4) == b"more", "more")
deadline = time.time() + 10
while time.time() < deadline:
    n = struct.unpack("i", fcntl.ioctl(b2.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]
    if n == 8: break
    time.sleep(0.02)
check(n == 8, "FIONREAD before fork %d" % n)
pid = os.fork()
if pid == 0:
    ok = b2.recv(8) == b"forkdata"
    try:
        b2.recv(8); ok = False
    except OSError as e:
        ok = ok and e.errno == errno.EIO
    os._exit(0 if ok else 1)
_, st = os.waitpid(pid, 0)
check(os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0, "child after fork: status %r" % st)
check(b2.recv(8) == b"forkdata", "parent after fork")
b2.sendall(b"done")
b2.close()
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
	expect("et1")
	c.Write([]byte("ab"))
	expect("et2")
	c.Write([]byte("c"))
	expect("ok3")
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after the server's shutdown(SHUT_WR): %d %v, want EOF", n, err)
	}
	c.Write([]byte("bye"))
	c.Close()
	pattern := make([]byte, 1_500_000)
	for i := range pattern {
		pattern[i] = byte(i * 7 % 251)
	}
	ca := b.dial(t, port, p)
	wrote := make(chan error, 1)
	go func() { _, err := ca.Write(pattern); wrote <- err }()
	cb := b.dial(t, port, p)
	cb.SetDeadline(time.Now().Add(60 * time.Second))
	cb.Write([]byte("ping"))
	if got := make([]byte, 4); func() bool { _, err := io.ReadFull(cb, got); return err != nil }() || string(got) != "pong" {
		t.Fatalf("second connection while the first is unread: %q\n%s", got, p.out.String())
	}
	if err := <-wrote; err != nil {
		t.Fatalf("writing 1.5 MB: %v", err)
	}
	ca.Close()
	cb.Write([]byte("more"))
	cb.Write([]byte("forkdata"))
	if got := make([]byte, 4); func() bool { _, err := io.ReadFull(cb, got); return err != nil }() || string(got) != "done" {
		t.Fatalf("after the fork: %q\n%s", got, p.out.String())
	}
	cb.Close()
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

// wakeProg is a C program with two modes. "echo IP PORT" answers every UDP
// datagram with itself and its receive time (the kernel peer, in the client
// namespace). "ping IP PORT N MINPAUSE MAXPAUSE" (under the shim) sends N
// single datagrams to the echo, one at a time, after a random pause of
// MINPAUSE..MAXPAUSE µs each, and measures each round trip and its part up to
// the echo (CLOCK_MONOTONIC is one clock in every network namespace).
//
// While a round trip takes longer than 300 µs, a probe thread looks into the
// shared region (found in /proc/self/maps by its magic; the layout of
// docs/JOYRIDE.md) every 250 µs for a lost wake-up: a ring that holds a
// message while its consumer sleeps with its need-wakeup flag still set. A
// producer that saw the flag would have cleared it (Notify swaps it to 0)
// and written the eventfd, so that state lasts nanoseconds unless the wake-up
// was lost; two samples in a row (250 µs or more) count. The VM taking a vCPU
// away makes round trips slow but not that state, so it tells the two apart.
const wakeProg = `
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return x < y ? -1 : x > y;
}

static void rcvtimeo(int s, long us)
{
	struct timeval tv = {us / 1000000, us % 1000000};
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

/* ---- the probe ---- */

static volatile uint32_t *svc_wake, *app_wake, *up_prod, *up_cons, *dn_prod, *dn_cons;
static long long g_t0;     /* send time of the round trip in flight, 0 none */
static uint64_t g_mark;    /* seq << 32 | down runs << 16 | up runs (longest, in samples) */

static size_t al(size_t n) { return (n + 63) & ~(size_t)63; }

static int find_region(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		return -1;
	char line[512];
	int found = -1;
	while (found < 0 && fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		char perm[8];
		if (!strstr(line, "/memfd:") || sscanf(line, "%lx-%lx %7s", &lo, &hi, perm) != 3 || perm[3] != 's' ||
		    hi - lo < 4096)
			continue;
		uint8_t *m = (uint8_t *)lo;
		uint64_t magic;
		uint32_t ver, R, B;
		memcpy(&magic, m, 8);
		memcpy(&ver, m + 8, 4);
		memcpy(&R, m + 12, 4);
		memcpy(&B, m + 16, 4);
		if (magic != 0x3145444952594f4aULL || ver != 1)
			continue;
		uint32_t F = 1;
		while (F < B)
			F <<= 1;
		app_wake = (volatile uint32_t *)(m + 64);
		svc_wake = (volatile uint32_t *)(m + 128);
		size_t off = 256;
		up_prod = (volatile uint32_t *)(m + off);
		up_cons = (volatile uint32_t *)(m + off + 64);
		off = al(off + 128 + (size_t)R * 24); /* up */
		off = al(off + 128 + (size_t)F * 4);  /* upFree */
		dn_prod = (volatile uint32_t *)(m + off);
		dn_cons = (volatile uint32_t *)(m + off + 64);
		found = 0;
	}
	fclose(f);
	return found;
}

static int stuck(volatile uint32_t *flag, volatile uint32_t *prod, volatile uint32_t *cons)
{
	return __atomic_load_n(flag, __ATOMIC_SEQ_CST) == 1 &&
	       __atomic_load_n(prod, __ATOMIC_SEQ_CST) != __atomic_load_n(cons, __ATOMIC_SEQ_CST);
}

static void *probe(void *arg)
{
	(void)arg;
	uint64_t seq = ~0ull;
	int up = 0, dn = 0;
	for (;;) {
		struct timespec ts = {0, 250000};
		nanosleep(&ts, NULL);
		long long t0 = __atomic_load_n(&g_t0, __ATOMIC_ACQUIRE);
		uint64_t mark = __atomic_load_n(&g_mark, __ATOMIC_ACQUIRE);
		if (!t0 || now_ns() - t0 < 300000)
			continue;
		if (mark >> 32 != seq) {
			seq = mark >> 32;
			up = dn = 0;
		}
		up = stuck(svc_wake, up_prod, up_cons) ? up + 1 : 0;
		dn = stuck(app_wake, dn_prod, dn_cons) ? dn + 1 : 0;
		for (;;) {
			uint64_t u = mark & 0xffff, d = mark >> 16 & 0xffff;
			uint64_t nu = (uint64_t)up > u ? (uint64_t)up : u, nd = (uint64_t)dn > d ? (uint64_t)dn : d;
			if (nu == u && nd == d)
				break;
			uint64_t want = seq << 32 | nd << 16 | nu;
			if (__atomic_compare_exchange_n(&g_mark, &mark, want, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) ||
			    mark >> 32 != seq)
				break;
		}
	}
	return NULL;
}

/* One round trip: 1, its time and the part of it until the echo had the
 * datagram, in ns; 0 when no answer came in time. */
static int ping(int s, uint64_t seq, long long *rtt, long long *up)
{
	uint64_t m[2] = {seq, 0};
	__atomic_store_n(&g_mark, (seq & 0xffffffff) << 32, __ATOMIC_RELEASE);
	long long t0 = now_ns();
	__atomic_store_n(&g_t0, t0, __ATOMIC_RELEASE);
	if (send(s, m, sizeof m, 0) != sizeof m) {
		perror("send");
		exit(2);
	}
	for (;;) {
		ssize_t r = recv(s, m, sizeof m, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			__atomic_store_n(&g_t0, 0, __ATOMIC_RELEASE);
			return 0;
		}
		if (r == sizeof m && m[0] == seq) {
			*rtt = now_ns() - t0;
			*up = (long long)m[1] - t0;
			__atomic_store_n(&g_t0, 0, __ATOMIC_RELEASE);
			return 1;
		}
	}
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: echo IP PORT | ping IP PORT N MINPAUSE MAXPAUSE\n");
		return 2;
	}
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[3]))};
	if (inet_pton(AF_INET, argv[2], &sa.sin_addr) != 1) {
		fprintf(stderr, "bad address %s\n", argv[2]);
		return 2;
	}
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0) {
		perror("socket");
		return 2;
	}
	if (!strcmp(argv[1], "echo")) {
		if (bind(s, (struct sockaddr *)&sa, sizeof sa) != 0) {
			perror("bind");
			return 2;
		}
		printf("echoing\n");
		fflush(stdout);
		for (;;) {
			uint64_t m[2];
			struct sockaddr_in from;
			socklen_t fl = sizeof from;
			ssize_t n = recvfrom(s, m, sizeof m, 0, (struct sockaddr *)&from, &fl);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				perror("recvfrom");
				return 2;
			}
			m[1] = (uint64_t)now_ns();
			sendto(s, m, (size_t)n, 0, (struct sockaddr *)&from, fl);
		}
	}
	if (argc < 7) {
		fprintf(stderr, "ping needs N MINPAUSE MAXPAUSE\n");
		return 2;
	}
	int n = atoi(argv[4]);
	long lo = atol(argv[5]), hi = atol(argv[6]);
	if (connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) {
		perror("connect");
		return 2;
	}
	if (find_region() != 0) {
		fprintf(stderr, "no Joyride region in /proc/self/maps: not under the shim?\n");
		return 3;
	}
	pthread_t pt;
	pthread_create(&pt, NULL, probe, NULL);
	/* Until the echo answers (the stack resolves the peer's MAC first),
	 * then a burst that warms every path up. */
	long long t, u;
	int ok = 0;
	rcvtimeo(s, 200000);
	for (int i = 0; i < 50 && !ok; i++)
		ok = ping(s, 1u << 31 | (unsigned)i, &t, &u);
	if (!ok) {
		fprintf(stderr, "the echo never answered\n");
		return 3;
	}
	for (int i = 0; i < 100; i++)
		ping(s, 1u << 30 | (unsigned)i, &t, &u);
	rcvtimeo(s, 2000000);
	srand(1);
	long long *rtt = calloc((size_t)n, sizeof *rtt);
	int got = 0, lost = 0, slow = 0, lostup = 0, lostdown = 0, slowlost = 0;
	for (int i = 0; i < n; i++) {
		long us = lo + (hi > lo ? rand() % (hi - lo + 1) : 0);
		struct timespec ps = {us / 1000000, (us % 1000000) * 1000};
		nanosleep(&ps, NULL);
		long long up;
		if (!ping(s, (uint64_t)i, &rtt[got], &up)) {
			lost++;
			continue;
		}
		uint64_t mark = __atomic_load_n(&g_mark, __ATOMIC_ACQUIRE);
		int wu = (mark & 0xffff) >= 2, wd = (mark >> 16 & 0xffff) >= 2;
		lostup += wu;
		lostdown += wd;
		if (rtt[got] > 500000) {
			slow++;
			slowlost += wu || wd;
			printf("slow %d: %lld us, %lld of them to the echo, after a pause of %ld us%s%s\n", i, rtt[got] / 1000,
			       up / 1000, us, wu ? "; LOST WAKE-UP on the up ring" : "",
			       wd ? "; LOST WAKE-UP on the down ring" : "");
		} else if (wu || wd) {
			printf("lost wake-up (%s) in a round trip of %lld us\n", wu ? "up" : "down", rtt[got] / 1000);
		}
		got++;
	}
	qsort(rtt, (size_t)got, sizeof *rtt, cmp);
	long long b[8] = {0};
	const long long edge[7] = {100, 200, 500, 1000, 2000, 5000, 10000};
	for (int i = 0; i < got; i++) {
		int j = 0;
		while (j < 7 && rtt[i] / 1000 >= edge[j])
			j++;
		b[j]++;
	}
	printf("histogram <100:%lld <200:%lld <500:%lld <1000:%lld <2000:%lld <5000:%lld <10000:%lld >=10000:%lld (us)\n",
	       b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]);
	printf("RESULT n=%d got=%d lost=%d slow=%d slow_lost_wakeup=%d lost_wakeup_up=%d lost_wakeup_down=%d "
	       "p50=%lld p99=%lld max=%lld\n",
	       n, got, lost, slow, slowlost, lostup, lostdown, got ? rtt[got / 2] / 1000 : 0,
	       got ? rtt[got * 99 / 100] / 1000 : 0, got ? rtt[got - 1] / 1000 : 0);
	return 0;
}
`

// TestWakeup checks the need-wakeup protocol between the shim and an idle
// joyrided. A wake-up lost on either ring leaves a message waiting for the
// sleeping side's timeout: joyrided's sleep is bounded by -idle-poll (1 ms,
// or ten times that after 100 ms of idleness), and the shim's dispatcher
// polls with 100 ms. So instead of the usual couple of hundred microseconds
// the round trip takes about a millisecond or more. A C client under the
// shim, pinned to the CPU joyrided does not use (so joyrided has a core of
// its own, spins 1 ms after its last work, then sleeps with a growing
// bound), sends single UDP datagrams to a kernel echo in the client
// namespace, with a random pause of 1 to 3 ms before each one, so they
// arrive while joyrided goes to sleep or sleeps.
//
// Every round trip above 500 µs is counted. This VM makes plenty of those on
// its own: bursts in which every round trip, both ways, is 2 to 10 times
// slower (anything from 0.6% to 8% of 4000 in runs with nothing else
// running). So the test fails on slow round trips during which the probe
// (wakeProg) saw a lost wake-up, more than 0.1% of them, and, as a coarse
// bound, on more than a quarter of all round trips being slow.
//
// The shim once published the up ring's producer counter with a release
// store and then loaded joyrided's need-wakeup flag. x86 may run that load
// before the store is visible, so both sides can miss each other. To hit
// it, the store has to stay in the store buffer across joyrided's whole
// re-check (its flag store, a NIC poll, then its load of the counter). On
// this machine (2 vCPUs, x86-64) the test passed every time without the
// fence too: the probe saw no lost wake-up in 5 runs of 4000 round trips
// without the fence, nor in 5 runs with it. So on x86 this test is a guard,
// not a reproducer. The fence is there because the memory model requires
// it (and because weaker CPUs reorder more).
func TestWakeup(t *testing.T) {
	need(t, "gcc", "taskset")
	b := upBed(t, true)
	src := filepath.Join(b.dir, "wake.c")
	prog := filepath.Join(b.dir, "wake")
	if err := os.WriteFile(src, []byte(wakeProg), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("gcc", "-O2", "-Wall", "-Werror", "-pthread", "-o", prog, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	const port = 7400
	peer := b.tb.Client.Addr.Addr().String()
	echo := b.start(t, b.tb.Client, os.Environ(), "taskset", "-c", "1", prog, "echo", peer, strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(echo.out.String(), "echoing") {
		if echo.exited() || time.Now().After(deadline) {
			t.Fatalf("echo did not start:\n%s", echo.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	const n = 4000
	out, err := b.run(t, b.tb.Server, b.shimEnv(), nil, "taskset", "-c", "1", prog, "ping", peer, strconv.Itoa(port),
		strconv.Itoa(n), "1000", "3000")
	t.Logf("wake ping:\n%s", tail(out, 60))
	if err != nil {
		t.Fatalf("wake ping: %v", err)
	}
	m := regexp.MustCompile(`RESULT n=\d+ got=(\d+) lost=(\d+) slow=(\d+) slow_lost_wakeup=(\d+) lost_wakeup_up=(\d+) lost_wakeup_down=(\d+) `).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no RESULT line")
	}
	num := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
	got, lost, slow, slowLost, lostUp, lostDown := num(1), num(2), num(3), num(4), num(5), num(6)
	t.Logf("%d round trips, %d slower than 500 µs, %d of those with a lost wake-up (lost wake-ups seen: %d on the up ring, %d on the down ring)",
		got, slow, slowLost, lostUp, lostDown)
	if lost > 2 || got+lost != n {
		t.Errorf("%d of %d datagrams got no answer within 2 s", lost, n)
	}
	if slowLost > n/1000 {
		t.Errorf("%d round trips took more than 500 µs with a message left waiting for a sleeping consumer whose need-wakeup flag was set (at most %d allowed): lost wake-ups", slowLost, n/1000)
	}
	if slow > n/4 {
		t.Errorf("%d of %d round trips took more than 500 µs (at most %d allowed)", slow, got, n/4)
	}
	if !strings.Contains(b.jrd.out.String(), "name=wake") {
		t.Errorf("joyrided did not log the client attaching:\n%s", b.jrd.out.String())
	}
}
