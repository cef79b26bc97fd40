// Package channel is the shared-memory data plane between the Joyride network
// service (joyrided) and one application process.
//
// # The region
//
// The service creates one Region per application: a single memfd that both
// processes map. Nothing but bytes is shared, so nothing in it can be a
// pointer: every reference is an index (a ring slot, a buffer number) that each
// side turns into an address inside its own mapping. The region holds, at fixed
// offsets:
//
//	header     magic, version, Config, total size, and the two need-wakeup flags
//	up         ring of descriptors, app -> service  (messages the app sends)
//	upFree     ring of buffer indices, service -> app (app buffers the service is done with)
//	down       ring of descriptors, service -> app  (messages the service delivers)
//	downFree   ring of buffer indices, app -> service (service buffers the app is done with)
//	buffers    partition A: the app's buffers, indices [0, B)
//	           partition S: the service's buffers, indices [B, 2B)
//
// # Single-producer, single-consumer rings
//
// Each ring has exactly one writer and one reader, so it needs no lock. It is an
// array of 2^k slots and two free-running uint32 counters, each on its own cache
// line: the producer's (how many entries were ever published) and the
// consumer's (how many were ever consumed). Slot i is entries[i & (size-1)];
// producer - consumer (in uint32 arithmetic, so the counters may wrap) is the
// number of entries waiting, never more than the ring's size. The producer
// writes the entries first and then stores its counter with an atomic store;
// the consumer loads that counter atomically and only then reads the entries:
// the atomic pair orders the plain writes before the plain reads. Each side
// keeps its own counter privately and a cached copy of the other side's, so the
// common case costs one atomic store per batch and no atomic load at all until
// the cached view runs out.
//
// # Buffers and partitions
//
// A message travels as a chain of 24-byte descriptors (Desc), each naming one
// buffer and how many bytes of it are used; FlagMore says that the next
// descriptor continues the message. The sender copies the payload into buffers
// of its OWN partition and lends them to the peer with the descriptors; the
// receiver copies the payload out and gives each buffer back through the free
// ring that leads to its owner. Each side allocates only from its own partition
// and keeps a bitmap of which of its buffers are lent out, so a buffer returns
// to its owner's free list only if it was really lent: a forged or doubled free
// cannot make the same buffer appear twice. Messages are copied once on each
// side of the ring; there is no zero-copy hand-off of buffers, which keeps the
// ownership rules trivial to check.
//
// # Need-wakeup
//
// A busy side never makes a system call: the producer publishes and the
// consumer, polling, sees it. A side that runs out of work and wants to sleep
// sets its need-wakeup flag in the header, checks its ring once more (a message
// may have arrived just before the flag was visible: PrepareSleep), and only
// then sleeps on its eventfd: in poll(2) (Wait), in an epoll or ppoll of many
// descriptors (the service), or in Go's netpoller (Sleeper, the Go client);
// FinishSleep clears the flag when it wakes. A producer that has published
// checks the peer's flag (Notify) and writes the peer's eventfd only when it
// is set. This is the protocol of AF_XDP's XDP_RING_NEED_WAKEUP: with
// sequentially consistent atomics on both sides (store flag, load counter /
// store counter, load flag) at least one side sees the other's store, so a
// wakeup is never lost; it can be spurious, and the sleepers' callers simply
// loop.
//
// # Why the service validates everything
//
// The application is not trusted: it can write any byte of the region at any
// time, including while the service reads it. The service therefore never reads
// back anything it wrote (its own counters and its Config live in private
// memory), reads every shared descriptor exactly once into a local copy before
// looking at it (no double fetch), and checks every value that comes from the
// application: the producer counter may not be ahead of the consumer by more
// than the ring's size nor behind it; a descriptor's buffer must be in the
// application's partition (or NoBuf for an empty message) and its length at
// most one buffer; a chain may not be longer than the ring; a free-ring index
// must name one of the service's buffers that is currently lent out. Anything
// else is reported as ErrCorrupt, after which the service disconnects the
// application. The region is sealed against shrinking and growing, so the
// application cannot truncate the memfd under the service's mapping (which
// would make the service fault). The result: a hostile application can corrupt
// its own data and stall its own traffic, nothing else.
//
// The app end applies the same checks to what the service writes; it trusts the
// service, but the checks are the same code and cost next to nothing.
//
// # Use
//
// Each half of an End, sending (Send, Notify) and receiving (Recv, Pending,
// the waits), is used by one goroutine at a time; Send/Recv/Pending/Notify on
// the data path allocate nothing and make no system call (Notify makes one
// only when the peer sleeps). Exactly one App end and one Service end may exist for
// a region at any time, system-wide: the free lists are private to the End.
package channel
