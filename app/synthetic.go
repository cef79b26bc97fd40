package app

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"time"
)

// Synthetic requests (see loadgen: header, then the service time in ns at
// byte 18, big-endian) ask the server to spend that long before it answers.
// The synthetic application spins for it — a CPU-bound service time, as
// Caladan's and Shenango's synthetic servers do — then echoes the request.
const (
	syntheticMagic  = 0x4a52
	serviceOffset   = 18
	syntheticHeader = serviceOffset + 8
	maxService      = time.Second
)

// serviceOf returns the service time a request asks for (0 if it is not a
// synthetic request).
func serviceOf(req []byte) time.Duration {
	if len(req) < syntheticHeader || binary.BigEndian.Uint16(req) != syntheticMagic {
		return 0
	}
	return min(time.Duration(binary.BigEndian.Uint64(req[serviceOffset:])), maxService)
}

// spin busy-waits for d.
func spin(d time.Duration) {
	if d <= 0 {
		return
	}
	for start := time.Now(); time.Since(start) < d; {
	}
}

// ServeUDPSynthetic answers every datagram after spinning for its service time.
func ServeUDPSynthetic(ctx context.Context, pc net.PacketConn) error {
	return serveUDP(ctx, pc, func(req []byte) { spin(serviceOf(req)) })
}

// ServeTCPSynthetic reads requests of size bytes from each connection, spins
// for each one's service time and echoes it.
func ServeTCPSynthetic(ctx context.Context, ln net.Listener, size int) error {
	return serveTCP(ctx, ln, func(c net.Conn) {
		req := make([]byte, size)
		for {
			if _, err := io.ReadFull(c, req); err != nil {
				return
			}
			spin(serviceOf(req))
			if _, err := c.Write(req); err != nil {
				return
			}
		}
	})
}

// serveTCP accepts connections and runs handle on each, until ctx is done
// (then the listener and every connection are closed).
func serveTCP(ctx context.Context, ln net.Listener, handle func(net.Conn)) error {
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { mu.Lock(); delete(conns, c); mu.Unlock(); c.Close() }()
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetNoDelay(true)
			}
			handle(c)
		}()
	}
}
