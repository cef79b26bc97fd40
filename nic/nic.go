// Package nic is frame I/O: the Port interface every packet-moving part of the
// project (the load generator, the null reflector, later Joyride's service and the
// AF_XDP stack) is written against, and the types that describe a port.
//
// A Port moves Ethernet frames in bursts. Buffers belong to the port (for DPDK they
// are mbufs in a mempool), so frames are handed around in a Batch: a reusable set of
// views onto port-owned buffers plus the backend's handles for them. The life of a
// buffer is always one of:
//
//	RxBurst -> read frames -> Free               (consume)
//	RxBurst -> rewrite frames in place -> TxBurst (reflect, no copy)
//	Alloc -> write frames, set lengths -> TxBurst (transmit)
//
// TxBurst frees whatever it could not send, so a caller never leaks a buffer. A Port
// (more exactly one queue of it) is used by one goroutine at a time; the hot path
// allocates nothing and costs one call into the backend per burst, never per frame.
//
// The "least common denominator" model: code must work when Features says a port has
// no checksum offload, no RSS and small rings (as DPDK's af_xdp and af_packet vdevs,
// and many cloud vNICs, do).
package nic

import (
	"fmt"
	"net"
	"unsafe"
)

// MaxBurst is the largest burst a Batch holds; backends size their scratch arrays
// from it.
const MaxBurst = 256

// Batch is a reusable burst of frames owned by a Port. Create one with NewBatch and
// reuse it for the life of the loop: the hot path then allocates nothing.
type Batch struct {
	// Frames[i] views the data of frame i, for i < N. After RxBurst its length is
	// the received length; after Alloc it is the buffer's whole data room, and the
	// caller reslices it to the length to send before TxBurst.
	Frames [][]byte
	// N is the number of valid frames.
	N int
	// Handles are the backend's handles for Frames (mbuf pointers for DPDK). Only
	// the Port that filled the batch interprets them.
	Handles []unsafe.Pointer
}

// NewBatch returns a batch able to hold size frames (at most MaxBurst).
func NewBatch(size int) *Batch {
	if size <= 0 || size > MaxBurst {
		panic(fmt.Sprintf("nic: batch size %d outside 1..%d", size, MaxBurst))
	}
	return &Batch{Frames: make([][]byte, size), Handles: make([]unsafe.Pointer, size)}
}

// Cap is the number of frames the batch can hold.
func (b *Batch) Cap() int { return len(b.Frames) }

// Port is one network port's frame I/O on one queue pair.
type Port interface {
	// RxBurst receives up to b.Cap() frames into b and returns how many (also in
	// b.N). It never blocks.
	RxBurst(b *Batch) int
	// Alloc fills b with up to n empty transmit buffers and returns how many (also
	// in b.N); fewer than n means the pool is (momentarily) exhausted.
	Alloc(b *Batch, n int) int
	// TxBurst sends b.Frames[:b.N], each with its slice length as the frame
	// length, returns how many were queued, and frees the rest. b.N is 0 after.
	TxBurst(b *Batch) int
	// Free releases b.Frames[:b.N] back to the port. b.N is 0 after.
	Free(b *Batch)

	// MAC is the port's Ethernet address.
	MAC() net.HardwareAddr
	// MTU is the largest IP packet the port carries.
	MTU() int
	// Features says what the port offloads and how it is shaped.
	Features() Features
	// Stats are the port's counters since it started.
	Stats() (Stats, error)
	// Close stops the port and releases its buffers.
	Close() error
}

// RxWaiter is implemented by ports whose arrivals a sleeping owner can wait
// for: each descriptor polls readable (POLLIN) while a frame waits in a receive
// ring. A polling engine that shares its core with applications sleeps in
// ppoll(2) on these and on its applications' doorbells instead of spinning;
// a port without them (most DPDK PMDs have no Rx interrupts) can only be
// polled, and the owner must wake on a timer to look.
type RxWaiter interface {
	// RxWaitFds are the descriptors; nil when the port has none. The caller
	// only polls them: it must not read, write or close them.
	RxWaitFds() []int
}

// RxWaitFds returns port's RxWaitFds, or nil if it has none.
func RxWaitFds(port Port) []int {
	if w, ok := port.(RxWaiter); ok {
		return w.RxWaitFds()
	}
	return nil
}

// Features describes a port's offloads and shape. The zero value is the least
// common denominator: nothing offloaded, one queue.
type Features struct {
	Driver      string // backend driver name, e.g. "net_af_xdp", "mlx5_pci"
	RxQueues    int    // queues configured
	TxQueues    int
	RxRingSize  int // descriptors per RX ring
	TxRingSize  int
	MaxRxQueues int // what the device could offer
	MaxTxQueues int

	RxIPv4Checksum bool // the port verifies IPv4 header checksums on receive
	RxL4Checksum   bool // ... and TCP/UDP checksums
	TxIPv4Checksum bool // the port can compute IPv4 header checksums on send
	TxL4Checksum   bool // ... and TCP/UDP checksums
	TSO            bool // TCP segmentation offload
	RSS            bool // receive-side scaling across queues
	FlowSteering   bool // exact-match flow rules (rte_flow or similar)
}

// String summarises the features on one line for logs and meta.json.
func (f Features) String() string {
	return fmt.Sprintf("driver=%s rxq=%d txq=%d rxring=%d txring=%d csum(rx ip/l4=%t/%t tx ip/l4=%t/%t) tso=%t rss=%t flow=%t",
		f.Driver, f.RxQueues, f.TxQueues, f.RxRingSize, f.TxRingSize,
		f.RxIPv4Checksum, f.RxL4Checksum, f.TxIPv4Checksum, f.TxL4Checksum, f.TSO, f.RSS, f.FlowSteering)
}

// Stats are a port's counters. Extended holds the backend's extra named counters
// (DPDK xstats), which differ from driver to driver.
type Stats struct {
	RxPackets uint64 `json:"rx_packets"`
	TxPackets uint64 `json:"tx_packets"`
	RxBytes   uint64 `json:"rx_bytes"`
	TxBytes   uint64 `json:"tx_bytes"`
	RxMissed  uint64 `json:"rx_missed"` // dropped by the port: no buffer or ring full
	RxErrors  uint64 `json:"rx_errors"`
	TxErrors  uint64 `json:"tx_errors"`
	RxNoMbuf  uint64 `json:"rx_nombuf"`

	Extended map[string]uint64 `json:"extended,omitempty"`
}
