// Package ssh runs commands on the remote nodes of a testbed.
//
// It is a small client over golang.org/x/crypto/ssh with the few operations
// jrbench needs: run a command and capture its output, stream a command's
// output as it comes, and copy a file. One Client holds one SSH connection;
// each operation opens its own session (an SSH channel) on it, so operations
// may run concurrently.
//
// # Authentication and host keys
//
// Users log in with a private key file (no passwords, no agent). The server's
// host key is checked against a known_hosts file in OpenSSH's format, under one
// of two policies:
//
//   - strict: the host's key must already be in the file. Tests use this with
//     stand-in nodes whose host key they generated and wrote there.
//   - accept-new: a host not in the file yet is trusted on first use and its
//     key appended; from then on only that key is accepted, and a changed
//     key is an error (OpenSSH's StrictHostKeyChecking=accept-new). This is
//     the default for CloudLab nodes, whose keys are created with the
//     experiment; the file is jrbench/known_hosts under the user's
//     configuration directory (spec.DefaultKnownHosts), never
//     ~/.ssh/known_hosts.
//
// # Timeouts and dropped connections
//
// Every operation is bounded: by its context's deadline or, when the context
// has none, by Config.Timeout. When an operation times out it returns at
// once (an error wrapping context.DeadlineExceeded) after asking the node to
// kill the command and closing the session; OpenSSH may let the command run
// to its end, so a command that must not outlive its deadline should carry
// its own (coreutils timeout) as well. A keepalive request goes out every Config.KeepAlive; a connection
// that misses Config.KeepAliveMax replies in a row is closed, and every
// operation on it returns an error (ErrConnLost).
package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Host key policies (the values of spec.SSH.HostKeyPolicy).
const (
	Strict    = "strict"
	AcceptNew = "accept-new"
)

// Defaults for the zero values of Config.
const (
	DefaultDialTimeout  = 10 * time.Second
	DefaultTimeout      = 60 * time.Second
	DefaultKeepAlive    = 5 * time.Second
	DefaultKeepAliveMax = 3
)

// ErrConnLost is returned by operations on a connection that dropped (or that
// was closed after a timeout).
var ErrConnLost = errors.New("ssh connection lost")

// Config says how to reach and log in to a node.
type Config struct {
	// Addr is host:port.
	Addr string
	// User is the login name.
	User string
	// KeyFile is the path of an unencrypted private key (OpenSSH or PEM).
	KeyFile string
	// KnownHosts is the known_hosts file host keys are checked against.
	KnownHosts string
	// HostKeyPolicy is Strict or AcceptNew ("" means AcceptNew).
	HostKeyPolicy string
	// DialTimeout bounds TCP connect plus SSH handshake (default 10s).
	DialTimeout time.Duration
	// Timeout bounds an operation whose context has no deadline (default 60s).
	Timeout time.Duration
	// KeepAlive is the interval between keepalive requests (default 5s); a
	// negative value disables them.
	KeepAlive time.Duration
	// KeepAliveMax is how many keepalives in a row may go unanswered before
	// the connection is declared lost (default 3).
	KeepAliveMax int
}

// Client is a connection to one node.
type Client struct {
	cfg  Config
	conn net.Conn
	c    *ssh.Client

	done      chan struct{} // closed by Close or when the connection is lost
	closeOnce sync.Once
	mu        sync.Mutex
	lost      error // why the connection ended, if it was lost
}

// Dial connects to cfg.Addr, checks the host key and logs in.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	if cfg.KeepAliveMax <= 0 {
		cfg.KeepAliveMax = DefaultKeepAliveMax
	}
	signer, err := loadKey(cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	hostKey, err := hostKeyCallback(cfg.KnownHosts, cfg.HostKeyPolicy)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w", cfg.Addr, err)
	}
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline) // the handshake must finish in time
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(conn, cfg.Addr, &ssh.ClientConfig{
		User:            cfg.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hostKey,
		Timeout:         cfg.DialTimeout,
	})
	if !stop() || err != nil {
		conn.Close()
		if err == nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("ssh %s@%s: %w", cfg.User, cfg.Addr, err)
	}
	conn.SetDeadline(time.Time{})
	c := &Client{cfg: cfg, conn: conn, c: ssh.NewClient(sc, chans, reqs), done: make(chan struct{})}
	go func() {
		err := c.c.Wait()
		c.fail(fmt.Errorf("%w: %v", ErrConnLost, err))
	}()
	if cfg.KeepAlive > 0 {
		go c.keepAlive()
	}
	return c, nil
}

func loadKey(path string) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ssh key: %w", err)
	}
	s, err := ssh.ParsePrivateKey(b)
	var pp *ssh.PassphraseMissingError
	if errors.As(err, &pp) {
		return nil, fmt.Errorf("ssh key %s is protected by a passphrase: give an unencrypted key (e.g. a dedicated one made with ssh-keygen -N '')", path)
	}
	if err != nil {
		return nil, fmt.Errorf("ssh key %s: %w", path, err)
	}
	return s, nil
}

// knownHostsMu serialises appends to known_hosts files within the process.
var knownHostsMu sync.Mutex

// hostKeyCallback checks host keys against file under policy.
func hostKeyCallback(file, policy string) (ssh.HostKeyCallback, error) {
	switch policy {
	case "", AcceptNew, Strict:
	default:
		return nil, fmt.Errorf("host key policy %q (allowed: %s, %s)", policy, AcceptNew, Strict)
	}
	if file == "" {
		return nil, errors.New("ssh: no known_hosts file given")
	}
	if policy != Strict {
		if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(file, os.O_CREATE|os.O_RDONLY, 0o600)
		if err != nil {
			return nil, err
		}
		f.Close()
	}
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		knownHostsMu.Lock()
		defer knownHostsMu.Unlock()
		check, err := knownhosts.New(file) // re-read: another client may have added the host
		if err != nil {
			return fmt.Errorf("known_hosts %s: %w", file, err)
		}
		err = check(hostname, remote, key)
		var ke *knownhosts.KeyError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &ke) && len(ke.Want) > 0:
			return fmt.Errorf("host key of %s does not match the one recorded in %s:%d (%s): if the node was reinstalled, delete that line; otherwise someone may be intercepting the connection",
				hostname, file, ke.Want[0].Line, ssh.FingerprintSHA256(key))
		case errors.As(err, &ke) && policy != Strict:
			f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = fmt.Fprintln(f, knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key))
			return err
		case errors.As(err, &ke):
			return fmt.Errorf("host %s (key %s) is not in %s and the policy is strict", hostname, ssh.FingerprintSHA256(key), file)
		default:
			return err
		}
	}, nil
}

// fail ends the connection, recording why.
func (c *Client) fail(err error) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.lost = err
		c.mu.Unlock()
		close(c.done)
		c.conn.Close()
	})
}

// Err returns nil while the connection is up, else why it ended.
func (c *Client) Err() error {
	select {
	case <-c.done:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.lost
	default:
		return nil
	}
}

// Close closes the connection; operations in progress return errors.
func (c *Client) Close() error {
	c.fail(fmt.Errorf("%w: client closed", ErrConnLost))
	return nil
}

func (c *Client) keepAlive() {
	t := time.NewTicker(c.cfg.KeepAlive)
	defer t.Stop()
	missed := 0
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		reply := make(chan error, 1)
		go func() {
			_, _, err := c.c.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		select {
		case <-c.done:
			return
		case err := <-reply:
			if err != nil {
				c.fail(fmt.Errorf("%w: keepalive: %v", ErrConnLost, err))
				return
			}
			missed = 0
		case <-time.After(c.cfg.KeepAlive):
			missed++
			if missed >= c.cfg.KeepAliveMax {
				c.fail(fmt.Errorf("%w: %d keepalives to %s unanswered", ErrConnLost, missed, c.cfg.Addr))
				return
			}
		}
	}
}

// bound applies Config.Timeout to a context without a deadline.
func (c *Client) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.cfg.Timeout)
}

// ExitError is a command that ran and exited with a non-zero status (or was
// killed by a signal).
type ExitError struct {
	Cmd    string
	Status int
	Signal string
	Stderr string // the end of its standard error, when captured
}

func (e *ExitError) Error() string {
	s := fmt.Sprintf("%q: exit status %d", e.Cmd, e.Status)
	if e.Signal != "" {
		s = fmt.Sprintf("%q: killed by signal %s", e.Cmd, e.Signal)
	}
	if e.Stderr != "" {
		s += ": " + e.Stderr
	}
	return s
}

// session runs cmd on a new session, wiring its input and outputs, and waits
// for it within ctx. On timeout or cancellation the session is closed, and the
// connection too if the session does not end within a few seconds.
func (c *Client) session(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	if err := c.Err(); err != nil {
		return err
	}
	ctx, cancel := c.bound(ctx)
	defer cancel()
	type result struct {
		s   *ssh.Session
		err error
	}
	// Opening a session is a round trip: bound it too.
	opened := make(chan result, 1)
	go func() {
		s, err := c.c.NewSession()
		opened <- result{s, err}
	}()
	var s *ssh.Session
	select {
	case r := <-opened:
		if r.err != nil {
			// EOF here usually means the connection just ended: give the
			// watcher a moment to record why.
			select {
			case <-c.done:
				return c.Err()
			case <-time.After(time.Second):
			}
			return fmt.Errorf("ssh %s: new session: %w", c.cfg.Addr, r.err)
		}
		s = r.s
	case <-ctx.Done():
		c.fail(fmt.Errorf("%w: no session within the deadline", ErrConnLost))
		return fmt.Errorf("ssh %s: %q: %w", c.cfg.Addr, cmd, ctx.Err())
	case <-c.done:
		return c.Err()
	}
	defer s.Close()
	s.Stdin, s.Stdout, s.Stderr = stdin, stdout, stderr
	if err := s.Start(cmd); err != nil {
		return fmt.Errorf("ssh %s: %q: %w", c.cfg.Addr, cmd, err)
	}
	waited := make(chan error, 1)
	go func() { waited <- s.Wait() }()
	select {
	case err := <-waited:
		return c.exitErr(cmd, err)
	case <-c.done:
		return c.Err()
	case <-ctx.Done():
	}
	// Ask the node to kill the command and close the session, then return
	// without waiting for the node's side of the close: sshd closes a
	// session only when its command exits, and OpenSSH does not always
	// deliver the signal, so the command may run on. Callers that need it
	// gone put their own bound on the node (coreutils timeout). A node
	// that stopped answering is caught by the keepalives.
	s.Signal(ssh.SIGKILL)
	s.Close()
	return fmt.Errorf("ssh %s: %q: %w", c.cfg.Addr, cmd, ctx.Err())
}

func (c *Client) exitErr(cmd string, err error) error {
	var ee *ssh.ExitError
	var em *ssh.ExitMissingError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee):
		return &ExitError{Cmd: cmd, Status: ee.ExitStatus(), Signal: ee.Signal()}
	case errors.As(err, &em):
		if lost := c.Err(); lost != nil {
			return lost
		}
		return fmt.Errorf("ssh %s: %q: %w", c.cfg.Addr, shortCmd(cmd), err)
	default:
		if lost := c.Err(); lost != nil {
			return lost
		}
		return fmt.Errorf("ssh %s: %q: %w", c.cfg.Addr, shortCmd(cmd), err)
	}
}

// shortCmd is cmd as an error names it: a script's first line, at most 100
// bytes (the whole of a role's wrapper script would bury the error).
func shortCmd(cmd string) string {
	short, _, multi := strings.Cut(cmd, "\n")
	if len(short) > 100 {
		short, multi = short[:100], true
	}
	if multi {
		short += " …"
	}
	return short
}

// Output is what a command printed.
type Output struct {
	Stdout, Stderr []byte
}

// Run runs cmd (a shell command line, run by the user's login shell) and
// returns what it printed. A non-zero exit is an *ExitError carrying the end
// of standard error; the output is returned in every case.
func (c *Client) Run(ctx context.Context, cmd string) (Output, error) {
	var out, errb bytes.Buffer
	err := c.session(ctx, cmd, nil, &out, &errb)
	var ee *ExitError
	if errors.As(err, &ee) {
		ee.Stderr = tail(errb.String(), 512)
	}
	return Output{out.Bytes(), errb.Bytes()}, err
}

// Stream runs cmd and copies its output to stdout and stderr as it arrives
// (either may be nil to discard).
func (c *Client) Stream(ctx context.Context, cmd string, stdout, stderr io.Writer) error {
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	return c.session(ctx, cmd, nil, stdout, stderr)
}

// StreamInput is Stream with the command's standard input read from stdin.
// The session ends when the command's outputs close and stdin is at its end:
// a caller that keeps stdin open (a pipe) must close it once the outputs
// closed, or StreamInput waits on. Closing it early tells the command that
// its input ended, as a dropped connection also does: the runner uses that to
// stop its roles (experiments/remote.go).
func (c *Client) StreamInput(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	return c.session(ctx, cmd, stdin, stdout, stderr)
}

// WriteFile writes data from r to path on the node, with mode perm, by
// running "cat" on a session: the data goes to a temporary file next to path
// that is renamed over it once complete, so a dropped connection never
// leaves a truncated file at path.
func (c *Client) WriteFile(ctx context.Context, path string, r io.Reader, perm os.FileMode) error {
	q := Quote(path)
	tmp := Quote(path + ".jrbench-tmp")
	cmd := fmt.Sprintf("umask 077 && cat > %s && chmod %o %s && mv -f %s %s", tmp, perm.Perm(), tmp, tmp, q)
	var errb bytes.Buffer
	err := c.session(ctx, cmd, r, io.Discard, &errb)
	var ee *ExitError
	if errors.As(err, &ee) {
		ee.Stderr = tail(errb.String(), 512)
	}
	return err
}

// CopyFile copies the local file src to dst on the node, keeping its mode.
func (c *Client) CopyFile(ctx context.Context, src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	return c.WriteFile(ctx, dst, f, st.Mode())
}

// Quote quotes s for a POSIX shell.
func Quote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,@%+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return s
}
