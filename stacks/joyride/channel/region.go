package channel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"sync"

	"golang.org/x/sys/unix"
)

// Limits and defaults of Config.
const (
	DefaultRingSize = 1024
	DefaultBuffers  = 1024
	DefaultBufSize  = 2048
	MaxRingSize     = 65536
	MaxBuffers      = 65536
	MinBufSize      = 256
	MaxBufSize      = 65536
)

// NoBuf is the Buf of a descriptor that carries no buffer (an empty message).
const NoBuf = ^uint32(0)

// Version is the layout version written in the header; Attach refuses others.
const Version = 1

// magic is "JOYRIDE1" read as a little-endian uint64.
const magic = 0x3145444952594f4a

// cacheLine is the alignment of every shared counter and section.
const cacheLine = 64

// pageSize aligns the buffer area and the region's size.
const pageSize = 4096

// Header offsets. Everything the header holds is written once by Create, except
// the two need-wakeup flags, which live on their own cache lines.
const (
	hdrMagic       = 0  // uint64
	hdrVersion     = 8  // uint32
	hdrRingSize    = 12 // uint32
	hdrBuffers     = 16 // uint32
	hdrBufSize     = 20 // uint32
	hdrSize        = 24 // uint64: total bytes of the region
	hdrAppWake     = 1 * cacheLine
	hdrServiceWake = 2 * cacheLine
	headerSize     = 4 * cacheLine
)

// descSize is the size of one Desc in a ring.
const descSize = 24

// Config shapes one application's region. A zero field takes its default.
type Config struct {
	// RingSize is the number of descriptors of the up and down rings: a power
	// of two, 1..65536 (default 1024). It also bounds a message's chain.
	RingSize int `yaml:"ring_size" json:"ring_size"`
	// Buffers is the number of buffers in each direction's partition,
	// 1..65536 (default 1024).
	Buffers int `yaml:"buffers" json:"buffers"`
	// BufSize is the size of one buffer in bytes: a multiple of 64 in
	// 256..65536 (default 2048).
	BufSize int `yaml:"buf_size" json:"buf_size"`
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.RingSize == 0 {
		c.RingSize = DefaultRingSize
	}
	if c.Buffers == 0 {
		c.Buffers = DefaultBuffers
	}
	if c.BufSize == 0 {
		c.BufSize = DefaultBufSize
	}
	return c
}

// Validate reports whether c (after defaults) is within limits.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.RingSize < 1 || c.RingSize > MaxRingSize || c.RingSize&(c.RingSize-1) != 0 {
		return fmt.Errorf("channel: RingSize %d must be a power of two in 1..%d", c.RingSize, MaxRingSize)
	}
	if c.Buffers < 1 || c.Buffers > MaxBuffers {
		return fmt.Errorf("channel: Buffers %d must be in 1..%d", c.Buffers, MaxBuffers)
	}
	if c.BufSize < MinBufSize || c.BufSize > MaxBufSize || c.BufSize%cacheLine != 0 {
		return fmt.Errorf("channel: BufSize %d must be a multiple of %d in %d..%d", c.BufSize, cacheLine, MinBufSize, MaxBufSize)
	}
	return nil
}

// MaxMessage is the largest payload one Send can carry with this Config: a
// chain may use at most min(RingSize, Buffers) buffers (and at most 4 GiB-1).
func (c Config) MaxMessage() int {
	c = c.withDefaults()
	m := min(c.RingSize, c.Buffers) * c.BufSize
	return min(m, math.MaxUint32)
}

// maxRegionSize is the size of the largest valid region.
var maxRegionSize = Config{RingSize: MaxRingSize, Buffers: MaxBuffers, BufSize: MaxBufSize}.Size()

// Size is the number of bytes a region with this Config occupies.
func (c Config) Size() int {
	return newLayout(c.withDefaults()).size
}

// ringLayout places one ring.
type ringLayout struct {
	prod, cons int // offsets of the two counters (each on its own cache line)
	data       int // offset of the entries
	size       int // number of entries (a power of two)
}

// layout is where everything is in a region; it is a pure function of Config.
type layout struct {
	cfg                        Config
	up, upFree, down, downFree ringLayout
	bufs                       int // offset of buffer 0
	size                       int // total bytes, a multiple of pageSize
}

func alignUp(n, a int) int { return (n + a - 1) &^ (a - 1) }

// newLayout computes the layout of a valid, defaulted Config.
func newLayout(cfg Config) layout {
	l := layout{cfg: cfg}
	off := headerSize
	place := func(entries, entrySize int) ringLayout {
		r := ringLayout{prod: off, cons: off + cacheLine, data: off + 2*cacheLine, size: entries}
		off = alignUp(r.data+entries*entrySize, cacheLine)
		return r
	}
	freeSize := 1 << bits.Len(uint(cfg.Buffers-1)) // holds every buffer of a partition
	l.up = place(cfg.RingSize, descSize)
	l.upFree = place(freeSize, 4)
	l.down = place(cfg.RingSize, descSize)
	l.downFree = place(freeSize, 4)
	l.bufs = alignUp(off, pageSize)
	l.size = alignUp(l.bufs+2*cfg.Buffers*cfg.BufSize, pageSize)
	return l
}

// Region is one application's shared memory: a header, four rings and two
// buffer partitions in one memfd, plus the two eventfds used for wakeups. The
// service makes one with Create, the application maps the same memory with
// Attach.
type Region struct {
	lay     layout
	mem     []byte // the mapping
	memfd   int
	appEfd  int // the eventfd the app waits on
	svcEfd  int // the eventfd the service waits on
	app     *End
	service *End

	closeOnce sync.Once
	closeErr  error
}

// counterBase is where ring counters start. It is 0 except in tests, which
// move it close to 2^32 to exercise wrapping.
var counterBase uint32

// Create makes a new region (the service's side): a sealed memfd named name
// holding the layout of cfg, mapped, with its header written, and two
// eventfds. Hand Fds to the application (SCM_RIGHTS) and keep the Region.
func Create(name string, cfg Config) (*Region, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lay := newLayout(cfg)
	r := &Region{lay: lay, memfd: -1, appEfd: -1, svcEfd: -1}
	fail := func(what string, err error) (*Region, error) {
		r.Close()
		return nil, fmt.Errorf("channel: create %q: %s: %w", name, what, err)
	}
	var err error
	if r.memfd, err = unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING); err != nil {
		r.memfd = -1
		return fail("memfd_create", err)
	}
	if err = unix.Ftruncate(r.memfd, int64(lay.size)); err != nil {
		return fail("ftruncate", err)
	}
	// The application gets this fd: without the seals it could shrink the file
	// and make the service's accesses fault (SIGBUS).
	if _, err = unix.FcntlInt(uintptr(r.memfd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL); err != nil {
		return fail("seal", err)
	}
	if r.mem, err = unix.Mmap(r.memfd, 0, lay.size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		r.mem = nil
		return fail("mmap", err)
	}
	if r.appEfd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		r.appEfd = -1
		return fail("eventfd", err)
	}
	if r.svcEfd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		r.svcEfd = -1
		return fail("eventfd", err)
	}
	le := binary.LittleEndian
	le.PutUint32(r.mem[hdrVersion:], Version)
	le.PutUint32(r.mem[hdrRingSize:], uint32(cfg.RingSize))
	le.PutUint32(r.mem[hdrBuffers:], uint32(cfg.Buffers))
	le.PutUint32(r.mem[hdrBufSize:], uint32(cfg.BufSize))
	le.PutUint64(r.mem[hdrSize:], uint64(lay.size))
	for _, rl := range []ringLayout{lay.up, lay.upFree, lay.down, lay.downFree} {
		le.PutUint32(r.mem[rl.prod:], counterBase)
		le.PutUint32(r.mem[rl.cons:], counterBase)
	}
	le.PutUint64(r.mem[hdrMagic:], magic) // last: a complete header
	r.makeEnds()
	return r, nil
}

// Attach maps the region an application received (its side): memfd is the
// region, appEventFd the eventfd the application waits on, serviceEventFd the
// one the service waits on. It checks the header (magic, version, Config
// within limits, size equal to the file's). On success the Region owns the
// three fds and Close closes them; on error they are left open.
func Attach(memfd, appEventFd, serviceEventFd int) (*Region, error) {
	var st unix.Stat_t
	if err := unix.Fstat(memfd, &st); err != nil {
		return nil, fmt.Errorf("channel: attach: fstat memfd %d: %w", memfd, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("channel: attach: fd %d is not a memfd (mode %#o)", memfd, st.Mode)
	}
	if st.Size < headerSize || st.Size > int64(maxRegionSize) {
		return nil, fmt.Errorf("channel: attach: region of %d bytes cannot hold a header (%d bytes)", st.Size, headerSize)
	}
	size := int(st.Size)
	mem, err := unix.Mmap(memfd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("channel: attach: mmap %d bytes: %w", size, err)
	}
	lay, err := checkHeader(mem)
	if err != nil {
		unix.Munmap(mem)
		return nil, fmt.Errorf("channel: attach: %w", err)
	}
	r := &Region{lay: lay, mem: mem, memfd: memfd, appEfd: appEventFd, svcEfd: serviceEventFd}
	r.makeEnds()
	return r, nil
}

// checkHeader validates a mapped header and returns the layout it describes.
func checkHeader(mem []byte) (layout, error) {
	le := binary.LittleEndian
	if m := le.Uint64(mem[hdrMagic:]); m != magic {
		return layout{}, fmt.Errorf("bad magic %#x (want %#x): not a Joyride region", m, uint64(magic))
	}
	if v := le.Uint32(mem[hdrVersion:]); v != Version {
		return layout{}, fmt.Errorf("region version %d, this side speaks %d", v, Version)
	}
	cfg := Config{
		RingSize: int(le.Uint32(mem[hdrRingSize:])),
		Buffers:  int(le.Uint32(mem[hdrBuffers:])),
		BufSize:  int(le.Uint32(mem[hdrBufSize:])),
	}
	if cfg.RingSize == 0 || cfg.Buffers == 0 || cfg.BufSize == 0 {
		return layout{}, fmt.Errorf("header has a zero field in %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		return layout{}, fmt.Errorf("header: %w", err)
	}
	lay := newLayout(cfg)
	if s := le.Uint64(mem[hdrSize:]); s != uint64(lay.size) || len(mem) != lay.size {
		return layout{}, fmt.Errorf("size mismatch: header says %d bytes, file has %d, %+v needs %d", s, len(mem), cfg, lay.size)
	}
	return lay, nil
}

func (r *Region) makeEnds() {
	l := &r.lay
	B := uint32(l.cfg.Buffers)
	r.app = newEnd(r, "app", l.up, l.down, l.upFree, l.downFree, 0, B, hdrAppWake, hdrServiceWake, r.appEfd, r.svcEfd)
	r.service = newEnd(r, "service", l.down, l.up, l.downFree, l.upFree, B, 0, hdrServiceWake, hdrAppWake, r.svcEfd, r.appEfd)
}

// Fds returns the region's file descriptors, to pass to the application.
// They stay owned by the Region.
func (r *Region) Fds() (memfd, appEventFd, serviceEventFd int) {
	return r.memfd, r.appEfd, r.svcEfd
}

// Size is the number of bytes of shared memory the region occupies.
func (r *Region) Size() int { return r.lay.size }

// Config is the region's configuration (with defaults filled in).
func (r *Region) Config() Config { return r.lay.cfg }

// App is the application's end of the region.
func (r *Region) App() *End { return r.app }

// Service is the service's end of the region.
func (r *Region) Service() *End { return r.service }

// Close unmaps the region and closes its fds. It is idempotent; the Ends must
// not be used afterwards.
func (r *Region) Close() error {
	r.closeOnce.Do(func() {
		var errs []error
		if r.mem != nil {
			errs = append(errs, unix.Munmap(r.mem))
			r.mem = nil
		}
		for _, fd := range []*int{&r.memfd, &r.appEfd, &r.svcEfd} {
			if *fd >= 0 {
				errs = append(errs, unix.Close(*fd))
				*fd = -1
			}
		}
		if err := errors.Join(errs...); err != nil {
			r.closeErr = fmt.Errorf("channel: close: %w", err)
		}
	})
	return r.closeErr
}
