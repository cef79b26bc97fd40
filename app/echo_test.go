package app

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// The echo servers are tested on loopback with the kernel's sockets: the same
// code serves every stack.
func TestUDPEcho(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeUDPEcho(ctx, pc) }()
	c, err := net.Dial("udp4", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 10; i++ {
		msg := bytes.Repeat([]byte{byte(i)}, 64+i)
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 2048)
		n, err := c.Read(got)
		if err != nil || !bytes.Equal(got[:n], msg) {
			t.Fatalf("echo %d: %v, got %d bytes", i, err, n)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("server returned %v after cancel", err)
	}
}

func TestTCPEcho(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeTCPEcho(ctx, ln) }()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	msg := bytes.Repeat([]byte("joyride"), 10000)
	go c.Write(msg)
	got := make([]byte, len(msg))
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo of %d bytes: %v", len(msg), err)
	}
	cancel() // also closes the open connection
	if err := <-done; err != nil {
		t.Fatalf("server returned %v after cancel", err)
	}
	c.Close()
}

func TestHTTPServesOnAnyListener(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeHTTP(ctx, ln, "kernel") }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello from kernel /x\n" {
		t.Fatalf("body %q", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A synthetic request is answered after its service time, and echoed intact.
func TestSyntheticSpinsForTheServiceTime(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ServeUDPSynthetic(ctx, pc)
	c, err := net.Dial("udp4", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := make([]byte, 64)
	binary.BigEndian.PutUint16(req, syntheticMagic)
	binary.BigEndian.PutUint64(req[serviceOffset:], uint64(3*time.Millisecond))
	c.SetDeadline(time.Now().Add(2 * time.Second))
	start := time.Now()
	c.Write(req)
	got := make([]byte, 128)
	n, err := c.Read(got)
	if err != nil || !bytes.Equal(got[:n], req) {
		t.Fatalf("reply: %v, %d bytes", err, n)
	}
	if rtt := time.Since(start); rtt < 3*time.Millisecond {
		t.Fatalf("answered after %v, before the 3 ms service time", rtt)
	}
}
