package afxdp

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ring is one of the socket's four mmap'd rings. Exactly one of descs (RX, TX)
// and addrs (fill, completion) is set. The process is the producer of the fill
// and TX rings and the consumer of the RX and completion rings; the cached
// indices are its private copies, published or refreshed with one atomic
// operation per burst.
type ring struct {
	mem      []byte  // the mapping, for munmap
	producer *uint32 // shared producer index
	consumer *uint32 // shared consumer index
	flags    *uint32 // shared flags (XDP_RING_NEED_WAKEUP)
	size     uint32  // entries, a power of two
	mask     uint32  // size - 1

	descs []unix.XDPDesc // RX and TX rings
	addrs []uint64       // fill and completion rings

	// cachedProd and cachedCons are the last known indices: the side the
	// process owns is authoritative here (published with a store), the other
	// side is refreshed from the shared word only when the cache runs short.
	cachedProd uint32
	cachedCons uint32
}

// mapRing mmaps a ring of size entries of entrySize bytes at page offset pgoff
// of the socket, using the kernel's offsets for its fields.
func mapRing(fd int, off unix.XDPRingOffset, pgoff int64, size uint32, entrySize uintptr, isDesc bool) (ring, error) {
	length := int(off.Desc) + int(size)*int(entrySize)
	mem, err := unix.Mmap(fd, pgoff, length, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return ring{}, fmt.Errorf("mmap %d bytes at offset %#x: %w", length, pgoff, err)
	}
	r := ring{
		mem:      mem,
		producer: (*uint32)(unsafe.Pointer(&mem[off.Producer])),
		consumer: (*uint32)(unsafe.Pointer(&mem[off.Consumer])),
		flags:    (*uint32)(unsafe.Pointer(&mem[off.Flags])),
		size:     size,
		mask:     size - 1,
	}
	if isDesc {
		r.descs = unsafe.Slice((*unix.XDPDesc)(unsafe.Pointer(&mem[off.Desc])), int(size))
	} else {
		r.addrs = unsafe.Slice((*uint64)(unsafe.Pointer(&mem[off.Desc])), int(size))
	}
	r.cachedProd = atomic.LoadUint32(r.producer)
	r.cachedCons = atomic.LoadUint32(r.consumer)
	return r, nil
}

func (r *ring) unmap() {
	if r.mem != nil {
		unix.Munmap(r.mem)
		r.mem = nil
	}
}

// free is, for a ring the process produces into, how many entries it may
// produce now. It reads the shared consumer only when the cache says fewer than
// want are free.
func (r *ring) free(want uint32) uint32 {
	if n := r.size - (r.cachedProd - r.cachedCons); n >= want {
		return n
	}
	r.cachedCons = atomic.LoadUint32(r.consumer)
	return r.size - (r.cachedProd - r.cachedCons)
}

// publish makes the produced entries visible to the kernel.
func (r *ring) publish() { atomic.StoreUint32(r.producer, r.cachedProd) }

// avail is, for a ring the process consumes from, how many entries are ready.
// It reads the shared producer only when the cache says fewer than want are.
func (r *ring) avail(want uint32) uint32 {
	if n := r.cachedProd - r.cachedCons; n >= want {
		return n
	}
	r.cachedProd = atomic.LoadUint32(r.producer)
	return r.cachedProd - r.cachedCons
}

// release hands consumed entries back to the kernel.
func (r *ring) release() { atomic.StoreUint32(r.consumer, r.cachedCons) }

// needWakeup reports whether the kernel asks for a system call on this ring.
func (r *ring) needWakeup() bool { return atomic.LoadUint32(r.flags)&unix.XDP_RING_NEED_WAKEUP != 0 }

// pending is, for a ring the process produces into, how many produced entries
// the kernel has not consumed yet.
func (r *ring) pending() uint32 { return r.cachedProd - atomic.LoadUint32(r.consumer) }
