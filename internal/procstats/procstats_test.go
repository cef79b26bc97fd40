package procstats

import (
	"bufio"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A SIGUSR1 to the process makes Report print a line that Parse reads back,
// with the goroutines really running.
func TestReportOnSignal(t *testing.T) {
	r, w := io.Pipe()
	Report(w, nil)
	stop := make(chan struct{})
	defer close(stop)
	for range 50 {
		go func() { <-stop }()
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	syscall.Kill(syscall.Getpid(), syscall.SIGUSR1)
	select {
	case l := <-lines:
		if !strings.HasPrefix(l, Prefix) {
			t.Fatalf("line %q", l)
		}
		s, err := Parse(l)
		if err != nil || s.Goroutines < 50 || s.HeapKiB <= 0 {
			t.Fatalf("%+v %v from %q", s, err, l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no report within 5 s of SIGUSR1")
	}
	if _, err := Parse("PROCSTATS {"); err == nil {
		t.Fatal("a broken line parsed")
	}
}
