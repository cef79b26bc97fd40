// Package app holds the RPC applications the harness serves on any stack. They
// are written against the standard library's net interfaces only, so the same code
// runs on the Linux kernel, on Joyride and on a library OS: a difference in what
// the generator measures is the stack's, not the application's.
package app

import (
	"context"
	"net"
)

// ServeUDPEcho answers every datagram on pc with the same bytes to its sender,
// until ctx is done (then pc is closed).
func ServeUDPEcho(ctx context.Context, pc net.PacketConn) error {
	return serveUDP(ctx, pc, nil)
}

// serveUDP answers every datagram with its own bytes, after work (if any) has
// run on it, until ctx is done.
func serveUDP(ctx context.Context, pc net.PacketConn, work func(req []byte)) error {
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if work != nil {
			work(buf[:n])
		}
		if _, err := pc.WriteTo(buf[:n], from); err != nil && ctx.Err() != nil {
			return nil
		}
	}
}

// echo copies c's input back to it with a plain buffer. Not io.Copy: on a
// kernel socket it splices through a pipe, which holds two more file
// descriptors per connection (10,000 connections hit "too many open files").
func echo(c net.Conn) {
	buf := make([]byte, 16<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// ServeTCPEcho echoes every byte each accepted connection sends, until ctx is
// done (then the listener and every connection are closed).
func ServeTCPEcho(ctx context.Context, ln net.Listener) error {
	return serveTCP(ctx, ln, echo)
}
