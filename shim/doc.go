// Package shim holds the tests of libjoyride-preload.so, the C library in this
// directory that lets unmodified Linux programs use Joyride.
//
// Loaded with LD_PRELOAD, the library interposes the socket calls of libc: an
// AF_INET socket() registers the process with joyrided (once) and returns a
// real kernel eventfd standing for the socket, so the program's epoll, poll
// and select work unchanged; listen, accept, connect, send and recv become
// control requests and messages on the shared region, and a dispatcher thread
// drains the service's messages into per-socket queues (the payload stays in
// the service's buffers until read copies it out), writing the socket's
// eventfd when it becomes readable (and on every arrival for EPOLLET).
// Everything else (files, Unix sockets, IPv6, loopback) goes to the kernel,
// and so does everything when joyrided is not there (JOYRIDE_FALLBACK=kernel, the default) unless JOYRIDE_FALLBACK=fail.
//
//	LD_PRELOAD=bin/libjoyride-preload.so JOYRIDE_SOCKET=/run/joyride/joyride.sock memcached -l 198.18.0.2
//
// The tests run memcached, redis-server, nginx and curl under the library on
// the local namespace testbed, with joyrided owning the server namespace's
// interface; docs/JOYRIDE.md ("The preload shim") is the reference.
package shim
