package ssh_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/joyride-bench/joyride/testbed/ssh"
	"github.com/joyride-bench/joyride/testbed/ssh/sshtest"
)

func config(nd *sshtest.Node) ssh.Config {
	return ssh.Config{
		Addr:          nd.Addr,
		User:          nd.User,
		KeyFile:       nd.Key,
		KnownHosts:    nd.KnownHosts,
		HostKeyPolicy: ssh.Strict,
		KeepAlive:     500 * time.Millisecond,
		KeepAliveMax:  3,
	}
}

func dial(t *testing.T, cfg ssh.Config) *ssh.Client {
	t.Helper()
	c, err := ssh.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// One stand-in node serves every subtest: starting sshd costs little, but the
// subtests share what they check (the same connection behaviour).
func TestAgainstRealSshd(t *testing.T) {
	nd := sshtest.Start(t)
	ctx := context.Background()

	t.Run("run", func(t *testing.T) {
		c := dial(t, config(nd))
		out, err := c.Run(ctx, "uname -s; echo err >&2; ip -o link show "+nd.Iface)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(out.Stdout), "Linux\n") || string(out.Stderr) != "err\n" {
			t.Errorf("stdout %q stderr %q", out.Stdout, out.Stderr)
		}
		// The command ran inside the node's namespace.
		if !strings.Contains(string(out.Stdout), nd.Iface) {
			t.Errorf("the node does not see its interface %s: %q", nd.Iface, out.Stdout)
		}
		_, err = c.Run(ctx, "echo oops >&2; exit 3")
		var ee *ssh.ExitError
		if !errors.As(err, &ee) || ee.Status != 3 || ee.Stderr != "oops" {
			t.Errorf("exit 3: got %v", err)
		}
	})

	t.Run("stream", func(t *testing.T) {
		c := dial(t, config(nd))
		var out bytes.Buffer
		if err := c.Stream(ctx, "for i in 1 2 3; do echo $i; done", &out, nil); err != nil {
			t.Fatal(err)
		}
		if out.String() != "1\n2\n3\n" {
			t.Errorf("got %q", out.String())
		}
	})

	t.Run("copy", func(t *testing.T) {
		c := dial(t, config(nd))
		src := filepath.Join(t.TempDir(), "payload")
		data := bytes.Repeat([]byte("joyride\x00\xff"), 100000) // ~900 kB, binary
		if err := os.WriteFile(src, data, 0o640); err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(nd.Dir, "copied file") // a space: quoting
		if err := c.CopyFile(ctx, src, dst); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(dst) // the node shares this machine's files
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("copied %d bytes (err %v), want %d", len(got), err, len(data))
		}
		if st, _ := os.Stat(dst); st.Mode().Perm() != 0o640 {
			t.Errorf("mode %v, want 0640", st.Mode().Perm())
		}
		if err := c.WriteFile(ctx, "/nonexistent/dir/f", strings.NewReader("x"), 0o600); err == nil {
			t.Error("writing into a missing directory succeeded")
		}
	})

	t.Run("timeout", func(t *testing.T) {
		c := dial(t, config(nd))
		tctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.Run(tctx, "sleep 30")
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
			t.Fatalf("got %v after %v", err, time.Since(start))
		}
		// The connection survives a timed-out command.
		if _, err := c.Run(ctx, "true"); err != nil {
			t.Fatalf("after a timeout: %v", err)
		}
		// Config.Timeout bounds a context without a deadline.
		cfg := config(nd)
		cfg.Timeout = 300 * time.Millisecond
		c2 := dial(t, cfg)
		if _, err := c2.Run(ctx, "sleep 30"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Config.Timeout: got %v", err)
		}
	})

	t.Run("host-key", func(t *testing.T) {
		// Strict with an empty file: refused.
		cfg := config(nd)
		cfg.KnownHosts = filepath.Join(t.TempDir(), "known_hosts")
		os.WriteFile(cfg.KnownHosts, nil, 0o600)
		if _, err := ssh.Dial(ctx, cfg); err == nil || !strings.Contains(err.Error(), "policy is strict") {
			t.Fatalf("strict, unknown host: %v", err)
		}
		// accept-new records the key in a new file, then accepts it again.
		cfg.KnownHosts = filepath.Join(t.TempDir(), "sub", "known_hosts")
		cfg.HostKeyPolicy = ssh.AcceptNew
		dial(t, cfg).Close()
		b, err := os.ReadFile(cfg.KnownHosts)
		if err != nil || !strings.HasPrefix(string(b), "["+nd.IP+"]:2222 ssh-ed25519 ") {
			t.Fatalf("known_hosts after accept-new: %q, %v", b, err)
		}
		dial(t, cfg).Close()
		// A different key for the same host: refused, also under accept-new.
		// Build a genuinely different valid key line from the user key.
		userPub, _ := os.ReadFile(nd.Key + ".pub")
		f := strings.Fields(string(userPub))
		os.WriteFile(cfg.KnownHosts, []byte("["+nd.IP+"]:2222 "+f[0]+" "+f[1]+"\n"), 0o600)
		if _, err := ssh.Dial(ctx, cfg); err == nil || !strings.Contains(err.Error(), "does not match") {
			t.Fatalf("changed host key: %v", err)
		}
	})

	t.Run("bad-key", func(t *testing.T) {
		cfg := config(nd)
		cfg.KeyFile = filepath.Join(nd.Dir, "user_key.pub") // not a private key
		if _, err := ssh.Dial(ctx, cfg); err == nil {
			t.Fatal("dial with a public key as the private key succeeded")
		}
		cfg.KeyFile = filepath.Join(nd.Dir, "host_key") // a key the node does not authorise
		if _, err := ssh.Dial(ctx, cfg); err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
			t.Fatalf("unauthorised key: %v", err)
		}
	})

	t.Run("connection-closed", func(t *testing.T) {
		c := dial(t, config(nd))
		errc := make(chan error, 1)
		go func() {
			_, err := c.Run(ctx, "sleep 30")
			errc <- err
		}()
		time.Sleep(300 * time.Millisecond)
		nd.KillSessions()
		select {
		case err := <-errc:
			if err == nil {
				t.Fatal("no error when the node closed the connection")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run hangs after the node closed the connection")
		}
		if _, err := c.Run(ctx, "true"); !errors.Is(err, ssh.ErrConnLost) {
			t.Fatalf("Run on a lost connection: %v", err)
		}
	})

	// Last: it freezes the node.
	t.Run("node-hangs", func(t *testing.T) {
		c := dial(t, config(nd))
		errc := make(chan error, 1)
		go func() {
			_, err := c.Run(ctx, "sleep 60") // no deadline but Config.Timeout (60s)
			errc <- err
		}()
		time.Sleep(300 * time.Millisecond)
		nd.Freeze()
		defer nd.Thaw()
		select {
		case err := <-errc:
			if !errors.Is(err, ssh.ErrConnLost) {
				t.Fatalf("got %v, want ErrConnLost", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run hangs on a node that stopped answering (keepalive 0.5s x 3)")
		}
	})
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/tmp/a":   "/tmp/a",
		"a b":      "'a b'",
		"it's":     `'it'\''s'`,
		"":         "''",
		"$(rm -r)": "'$(rm -r)'",
	} {
		if got := ssh.Quote(in); got != want {
			t.Errorf("Quote(%q) = %q, want %q", in, got, want)
		}
	}
}
