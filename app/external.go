package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// External is an unmodified server program from the distribution that serves
// on the kernel stack in place of one of ours (memcached: the application
// mutilate and Lancet measure). Run starts it, waits until it accepts
// connections, calls ready, and stops it (SIGTERM, then SIGKILL) when ctx is
// done.
type External struct {
	// Name is the application ("memcached").
	Name string
	// Args build the command line for the address and port to listen on.
	Args func(addr string, port int) []string
}

// Externals are the external applications jrapp can run, by name.
var Externals = map[string]External{
	"memcached": {Name: "memcached", Args: func(addr string, port int) []string {
		// One worker thread (the server side has one core), no UDP, enough
		// memory for any key space the generator may store (1 GiB, taken
		// lazily), as many connections as the generator may open; -u root
		// because jrapp runs as root and memcached refuses it otherwise.
		return []string{"memcached", "-l", addr, "-p", strconv.Itoa(port), "-U", "0", "-t", "1",
			"-m", "1024", "-c", "20000", "-u", "root"}
	}},
}

// Run runs the program until ctx is done or it exits; its output goes to
// stderr. An exit before ctx is done is an error carrying its last output.
func (x External) Run(ctx context.Context, listen string, ready func()) error {
	host, portText, err := net.SplitHostPort(listen)
	if err != nil {
		return err
	}
	port, _ := strconv.Atoi(portText)
	args := x.Args(host, port)
	path, err := exec.LookPath(args[0])
	if err != nil {
		return fmt.Errorf("%s is not installed (Debian package %s; make deps installs it): %w", args[0], x.Name, err)
	}
	var out bytes.Buffer
	cmd := exec.Command(path, args[1:]...)
	cmd.Stdout, cmd.Stderr = &out, &out
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
		c, err := net.DialTimeout("tcp", listen, 200*time.Millisecond)
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
