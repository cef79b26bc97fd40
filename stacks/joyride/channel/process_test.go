package channel

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestTwoProcesses runs the application end in a child process that received
// the fds as a real application would (inherited here instead of SCM_RIGHTS)
// and echoes every message back.
func TestTwoProcesses(t *testing.T) {
	if os.Getenv("JOYRIDE_CHANNEL_CHILD") == "1" {
		return // the child runs in TestMain
	}
	r, err := Create("joyride-2proc", Config{RingSize: 64, Buffers: 64, BufSize: 2048})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m, a, v := r.Fds()
	var files []*os.File
	for _, fd := range []int{m, a, v} {
		d, err := unix.Dup(fd)
		if err != nil {
			t.Fatal(err)
		}
		f := os.NewFile(uintptr(d), "fd")
		defer f.Close()
		files = append(files, f)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestTwoProcesses$")
	cmd.Env = append(os.Environ(), "JOYRIDE_CHANNEL_CHILD=1")
	cmd.ExtraFiles = files // fds 3, 4, 5 in the child
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	svc := r.Service()
	var dst []byte
	for i := range 300 {
		msg := payload(i*97%70000, byte(i))
		for {
			err := svc.Send(1, uint32(i), 0, msg)
			if err == nil {
				break
			}
			if err != ErrFull {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond)
		}
		if err := svc.Notify(); err != nil {
			t.Fatal(err)
		}
		for {
			d, got, err := svc.Recv(dst)
			if err == ErrEmpty {
				if err := svc.Wait(10 * time.Second); err != nil {
					t.Fatal("no echo:", err)
				}
				continue
			}
			if err != nil || d.Sock != uint32(i) || !bytes.Equal(got, msg) {
				t.Fatalf("echo %d: %+v %d bytes %v", i, d, len(got), err)
			}
			dst = got
			break
		}
	}
	svc.Send(0, 0, 0, nil) // stop
	svc.Notify()
	if err := cmd.Wait(); err != nil {
		t.Fatal("child:", err)
	}
}

func TestMain(m *testing.M) {
	if os.Getenv("JOYRIDE_CHANNEL_CHILD") == "1" {
		os.Exit(echoChild())
	}
	os.Exit(m.Run())
}

func echoChild() int {
	r, err := Attach(3, 4, 5)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	defer r.Close()
	app := r.App()
	var dst []byte
	for {
		d, got, err := app.Recv(dst)
		if err == ErrEmpty {
			if err := app.Wait(10 * time.Second); err != nil {
				fmt.Fprintln(os.Stderr, "child: wait:", err)
				return 1
			}
			continue
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 1
		}
		if d.Op == 0 {
			return 0
		}
		for app.Send(d.Op, d.Sock, d.Arg, got) == ErrFull {
			time.Sleep(time.Millisecond)
		}
		app.Notify()
		dst = got
	}
}
