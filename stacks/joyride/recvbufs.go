package joyride

import "sync"

// recvBufs recycles the buffers the dispatcher copies received payloads into,
// so that a socket in steady use allocates nothing per message: read copies a
// payload out and gives its buffer back. Two size classes keep a queue of
// small datagrams from pinning large buffers; sync.Pool (rather than a free
// list under a lock) because buffers are taken by the dispatcher and given
// back by any reader, and its per-P caches make both sides lock-free. It
// stores *[]byte so that putting a buffer back does not allocate.
type recvBufs struct {
	small, large sync.Pool
	max          int // the largest payload of one message
}

// smallRecvBuf is the capacity of the small class: a request or a reply of
// an RPC, a memcached get, one MTU-sized datagram.
const smallRecvBuf = 2048

func newRecvBufs(max int) *recvBufs {
	r := &recvBufs{max: max}
	r.small.New = func() any { b := make([]byte, smallRecvBuf); return &b }
	r.large.New = func() any { b := make([]byte, max); return &b }
	return r
}

// get returns a buffer of at least n bytes (n ≤ max).
func (r *recvBufs) get(n int) *[]byte {
	if n <= smallRecvBuf {
		return r.small.Get().(*[]byte)
	}
	return r.large.Get().(*[]byte)
}

// put gives b back; nil is ignored.
func (r *recvBufs) put(b *[]byte) {
	switch {
	case b == nil:
	case cap(*b) == smallRecvBuf:
		r.small.Put(b)
	case cap(*b) == r.max:
		r.large.Put(b)
	}
}
