package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// External is an unmodified server program from the distribution that serves
// in place of one of ours (memcached: the application mutilate and Lancet
// measure; redis-server; nginx). On the kernel stack it uses the kernel's
// sockets; on Joyride the same binary runs with the preload shim in its
// environment (stacks.Preloader). Run starts it, waits until it accepts
// connections, calls ready, and stops it (SIGTERM, then SIGKILL) when ctx is
// done.
type External struct {
	// Name is the application ("memcached"), Package the Debian package
	// that has it.
	Name, Package string
	// Setup, when set, prepares dir (private to this run of the program)
	// before it starts: configuration, files to serve.
	Setup func(dir, addr string, port, size int) error
	// Args build the command line for the address and port to listen on.
	Args func(dir, addr string, port int) []string
}

// Externals are the external applications jrapp can run, by name.
var Externals = map[string]External{
	"memcached": {Name: "memcached", Package: "memcached", Args: func(_, addr string, port int) []string {
		// One worker thread (the server side has one core), no UDP, enough
		// memory for any key space the generator may store (1 GiB, taken
		// lazily), as many connections as the generator may open; -u root
		// because jrapp runs as root and memcached refuses it otherwise.
		return []string{"memcached", "-l", addr, "-p", strconv.Itoa(port), "-U", "0", "-t", "1",
			"-m", "1024", "-c", "20000", "-u", "root"}
	}},
	"redis": {Name: "redis-server", Package: "redis-server", Args: func(dir, addr string, port int) []string {
		// No persistence (a snapshot's fork would be measured as the
		// stack's latency), one I/O thread, no protected mode (the
		// generator is another host), connections up to the generator's.
		return []string{"redis-server", "--bind", addr, "--port", strconv.Itoa(port), "--save", "",
			"--appendonly", "no", "--protected-mode", "no", "--daemonize", "no", "--io-threads", "1",
			"--maxclients", "10000", "--dir", dir, "--logfile", ""}
	}},
	"nginx": {Name: "nginx", Package: "nginx", Setup: nginxSetup, Args: func(dir, _ string, _ int) []string {
		return []string{"nginx", "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", "stderr"}
	}},
}

// nginxSetup writes a configuration for one worker (the server side has one
// core) with its master, as Debian runs it, serving index.html of size bytes
// on addr:port with keep-alive and no access log.
func nginxSetup(dir, addr string, port, size int) error {
	www := filepath.Join(dir, "www")
	if err := os.MkdirAll(www, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(www, "index.html"), bytes.Repeat([]byte("j"), size), 0o644); err != nil {
		return err
	}
	conf := fmt.Sprintf(`daemon off;
master_process on;
worker_processes 1;
user root;
pid %[1]s/nginx.pid;
error_log stderr warn;
events { worker_connections 20000; }
http {
	access_log off;
	keepalive_requests 1000000;
	keepalive_timeout 600s;
	client_body_temp_path %[1]s/tmp;
	proxy_temp_path %[1]s/tmp;
	fastcgi_temp_path %[1]s/tmp;
	uwsgi_temp_path %[1]s/tmp;
	scgi_temp_path %[1]s/tmp;
	server {
		listen %[2]s;
		root %[3]s;
	}
}
`, dir, net.JoinHostPort(addr, strconv.Itoa(port)), www)
	return os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644)
}

// Dialer opens a connection the way the program's clients would reach it; Run
// uses it to see when the program listens (on Joyride the kernel sees nothing).
type Dialer func(ctx context.Context, addr string) (net.Conn, error)

// KernelDialer dials through the kernel's sockets.
func KernelDialer(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// Run runs the program until ctx is done or it exits; its output goes to
// stderr. env is added to the program's environment (the preload shim on
// Joyride); dial says when it listens. An exit before ctx is done is an error
// carrying its last output.
func (x External) Run(ctx context.Context, listen string, size int, env []string, dial Dialer, ready func()) error {
	host, portText, err := net.SplitHostPort(listen)
	if err != nil {
		return err
	}
	port, _ := strconv.Atoi(portText)
	dir, err := os.MkdirTemp("", "jrapp-"+x.Name+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if x.Setup != nil {
		if err := x.Setup(dir, host, port, size); err != nil {
			return fmt.Errorf("%s: setup: %w", x.Name, err)
		}
	}
	args := x.Args(dir, host, port)
	path, err := exec.LookPath(args[0])
	if err != nil {
		return fmt.Errorf("%s is not installed (Debian package %s; make deps installs it): %w", args[0], x.Package, err)
	}
	var out bytes.Buffer
	cmd := exec.Command(path, args[1:]...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), env...)
	// It dies with jrapp, even a SIGKILLed one (nginx's master then ends
	// its workers).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() error {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		os.Stderr.Write(out.Bytes())
		return nil
	}
	// Ready when it accepts a connection.
	deadline := time.Now().Add(10 * time.Second)
	for {
		dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		c, err := dial(dctx, listen)
		cancel()
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			return fmt.Errorf("%s exited before accepting connections (%v): %s", x.Name, err, bytes.TrimSpace(out.Bytes()))
		case <-ctx.Done():
			return stop()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("%s did not accept connections on %s within 10 s", x.Name, listen)
		}
	}
	ready()
	select {
	case <-ctx.Done():
		return stop()
	case err := <-exited:
		if err == nil {
			err = errors.New("exited")
		}
		return fmt.Errorf("%s stopped on its own (%v): %s", x.Name, err, bytes.TrimSpace(out.Bytes()))
	}
}
