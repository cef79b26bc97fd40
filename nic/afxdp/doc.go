// Package afxdp is a nic.Port over an AF_XDP socket bound to one queue of a Linux
// network interface, in pure Go: no cgo, no libbpf, no clang.
//
// # AF_XDP in one page
//
// An AF_XDP socket (XSK) moves raw Ethernet frames between a driver queue and a
// process without the kernel's network stack in between. Its pieces are:
//
//   - The UMEM: one region of the process's memory (here an anonymous mmap of
//     Frames x FrameSize bytes) registered with the socket (XDP_UMEM_REG) and
//     pinned by the kernel. It is cut into equal chunks ("frames"); every packet
//     that crosses the socket lives in one of them. A frame is named by its
//     offset in the UMEM (its "address").
//   - Four single-producer/single-consumer rings, each an mmap of the socket
//     holding a producer index, a consumer index, a flags word and an array of
//     entries. The process produces into two and consumes from two.
//
// The four rings:
//
//   - the fill ring (process -> kernel): addresses of empty frames the kernel
//     may receive into;
//   - the RX ring (kernel -> process): descriptors {address, length} of frames
//     that now hold a received packet;
//   - the TX ring (process -> kernel): descriptors of frames to transmit;
//   - the completion ring (kernel -> process): addresses of transmitted frames
//     the process may reuse.
//
// So a receive buffer travels fill -> RX -> (process) and a transmit buffer
// TX -> completion -> (process); a received frame can be transmitted in place
// (put on the TX ring with no copy), because RX and TX share the UMEM. Indices
// only grow (they wrap at 2^32) and an entry is at index & (size-1); each side
// publishes its index with a store-release and reads the other's with a
// load-acquire (Go's sync/atomic is at least that strong).
//
// # Need-wakeup
//
// With XDP_USE_NEED_WAKEUP (always set here) the kernel raises
// XDP_RING_NEED_WAKEUP in a ring's flags when it has stopped looking at that ring
// and needs a system call to start again. The port kicks only then:
// sendto(MSG_DONTWAIT) after producing TX descriptors when the TX ring asks, and a
// non-blocking recvfrom when the fill ring asks (a zero-copy driver that ran out of
// fill entries). In copy mode the TX ring always asks (the kernel transmits
// inside sendto, at most 32 frames per call, so TxBurst kicks until the ring is
// drained or a small bound is hit), and the fill ring never does: receiving costs
// no system call at all.
//
// # Copy and zero-copy
//
// In zero-copy mode (XDP_ZEROCOPY, Options.ZeroCopy) a driver with AF_XDP
// support DMAs straight into the UMEM. Every other driver, veth included, runs in
// copy mode (XDP_COPY, the default here): the kernel copies each packet between
// its own buffer and the UMEM, once per direction, which is still far cheaper than
// the socket layer.
//
// # Why an XDP program
//
// A packet reaches an XSK only if the XDP program on the interface redirects it
// there: the socket is an entry in a BPF map of type XSKMAP keyed by queue, and
// the program calls bpf_redirect_map(xsks_map, ctx->rx_queue_index, XDP_PASS). The
// XDP_PASS in the flags argument is the action when the map has no socket for the
// queue, so packets on other queues (or before the socket is inserted, or after it
// is closed) go to the kernel stack instead of being dropped. This package builds
// that four-instruction program with cilium/ebpf's asm package at run time, so
// neither clang nor an object file is needed.
//
// The program runs in native (driver) mode when the driver supports XDP, else in
// generic (SKB) mode, which works on any interface after the kernel has built an
// skb. Options.Mode chooses; "auto" tries native first. On veth both work for
// AF_XDP in copy mode (the veth pitfall, that a peer needs an XDP program or GRO
// to accept redirected xdp_frames, concerns XDP_REDIRECT into a veth, not
// sockets); "auto" falls back to generic whenever the native attach fails.
//
// # Attachment lifetime and Cleanup
//
// The program is attached through a BPF link (link.AttachXDP), which this package
// does NOT pin: the kernel owns the attachment through the link's file
// descriptor, so it disappears when the Port is closed and also when the process
// dies in any way, SIGKILL included, with no stale program left behind. Only on
// kernels without XDP links (before 5.9) does Open fall back to the legacy
// netlink attachment, which outlives the process; Cleanup finds such a leftover by
// the program's name ("jr_afxdp") in the interface's netlink XDP attributes and
// detaches it, and also removes a pin at /sys/fs/bpf/jr-afxdp-<iface> if some
// other tool left one. Cleanup refuses (with an error naming the link) to detach a
// link held by a live process: that is someone else's open Port. Open calls
// Cleanup first.
//
// # Buffers and handles
//
// A nic.Batch handle is a pointer to the frame's entry in a Go-allocated table
// of per-frame records (Port.frames), which holds the frame's index and whom it
// belongs to (free list, fill ring, caller, TX ring). Converting a handle back is
// a pointer cast with a bounds check, allocation-free and vet-clean; the table
// also catches double frees. The frame's data address for TX is taken from the
// Frames slice itself (its offset in the UMEM), so a received frame can be
// resliced (headers stripped or added within its chunk) and transmitted in place;
// a slice that points elsewhere is copied into the frame's chunk.
//
// # Namespaces
//
// Open resolves the interface, creates the socket and attaches the program in the
// calling thread's network namespace; lock the OS thread and enter the namespace
// around Open when the interface lives elsewhere (see the tests). After Open the
// socket stays bound to that interface and the Port can be used from any thread.
// The UMEM is pinned memory accounted to RLIMIT_MEMLOCK or the memory cgroup; as
// root (CAP_IPC_LOCK) that is no limit.
package afxdp
