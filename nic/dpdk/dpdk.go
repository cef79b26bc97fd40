//go:build dpdk && cgo

package dpdk

/*
#cgo pkg-config: libdpdk
#include <stdlib.h>
#include <string.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mbuf_pool_ops.h>
#include <rte_mempool.h>
#include <rte_cycles.h>

static int jr_errno(void) { return rte_errno; }

// jr_pool_create is rte_pktmbuf_pool_create with RTE_MEMPOOL_F_NO_IOVA_CONTIG:
// without hugepages the default population asks for IOVA-contiguous chunks and
// gets one per 4 KiB page, which breaks net_af_xdp's use of the pool as UMEM.
static struct rte_mempool *jr_pool_create(const char *name, unsigned n, unsigned cache,
		unsigned data_room, int socket) {
	struct rte_pktmbuf_pool_private priv;
	memset(&priv, 0, sizeof(priv));
	priv.mbuf_data_room_size = data_room;
	unsigned elt = sizeof(struct rte_mbuf) + data_room;
	struct rte_mempool *mp = rte_mempool_create_empty(name, n, elt, cache,
		sizeof(priv), socket, RTE_MEMPOOL_F_NO_IOVA_CONTIG);
	if (mp == NULL)
		return NULL;
	if (rte_mempool_set_ops_byname(mp, rte_mbuf_best_mempool_ops(), NULL) != 0)
		goto fail;
	rte_pktmbuf_pool_init(mp, &priv);
	if (rte_mempool_populate_default(mp) < 0)
		goto fail;
	rte_mempool_obj_iter(mp, rte_pktmbuf_init, NULL);
	return mp;
fail:
	rte_mempool_free(mp);
	return NULL;
}

// jr_port_setup configures and starts a port. It asks for RSS only when there
// are several RX queues and the device offers it (LCD model: never required).
static int jr_port_setup(uint16_t port, uint16_t nrxq, uint16_t ntxq, uint16_t *rxd,
		uint16_t *txd, struct rte_mempool *mp) {
	struct rte_eth_dev_info info;
	int rc = rte_eth_dev_info_get(port, &info);
	if (rc != 0)
		return rc;
	struct rte_eth_conf conf;
	memset(&conf, 0, sizeof(conf));
	conf.rxmode.mq_mode = RTE_ETH_MQ_RX_NONE;
	if (nrxq > 1 && info.flow_type_rss_offloads != 0) {
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_hf = info.flow_type_rss_offloads &
			(RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP);
	}
	rc = rte_eth_dev_configure(port, nrxq, ntxq, &conf);
	if (rc != 0)
		return rc;
	rc = rte_eth_dev_adjust_nb_rx_tx_desc(port, rxd, txd);
	if (rc != 0)
		return rc;
	int socket = rte_eth_dev_socket_id(port);
	if (socket < 0)
		socket = 0;
	for (uint16_t q = 0; q < nrxq; q++) {
		rc = rte_eth_rx_queue_setup(port, q, *rxd, socket, NULL, mp);
		if (rc != 0)
			return rc;
	}
	for (uint16_t q = 0; q < ntxq; q++) {
		rc = rte_eth_tx_queue_setup(port, q, *txd, socket, NULL);
		if (rc != 0)
			return rc;
	}
	rc = rte_eth_dev_start(port);
	if (rc != 0)
		return rc;
	rte_eth_promiscuous_enable(port); // best effort: not every vdev has it
	return 0;
}

// jr_rx receives a burst and exposes each frame's data pointer and length, so Go
// reads the frames without another call.
static uint16_t jr_rx(uint16_t port, uint16_t q, struct rte_mbuf **m, uint16_t n,
		void **data, uint16_t *len) {
	uint16_t k = rte_eth_rx_burst(port, q, m, n);
	for (uint16_t i = 0; i < k; i++) {
		data[i] = rte_pktmbuf_mtod(m[i], void *);
		len[i] = rte_pktmbuf_data_len(m[i]);
	}
	return k;
}

// jr_alloc takes n mbufs from the pool (all or none, as rte_pktmbuf_alloc_bulk)
// and exposes their data room.
static int jr_alloc(struct rte_mempool *mp, struct rte_mbuf **m, unsigned n,
		void **data, uint16_t *room) {
	if (rte_pktmbuf_alloc_bulk(mp, m, n) != 0)
		return 0;
	for (unsigned i = 0; i < n; i++) {
		data[i] = rte_pktmbuf_mtod(m[i], void *);
		room[i] = rte_pktmbuf_tailroom(m[i]);
	}
	return (int)n;
}

// jr_tx sets the frames' lengths and sends them, retrying a bounded number of
// times while the ring is full (the driver reclaims completions in tx_burst), and
// frees what could not be sent.
static uint16_t jr_tx(uint16_t port, uint16_t q, struct rte_mbuf **m, uint16_t n,
		const uint16_t *len, unsigned retries) {
	for (uint16_t i = 0; i < n; i++) {
		m[i]->data_len = len[i];
		m[i]->pkt_len = len[i];
		m[i]->nb_segs = 1;
		m[i]->next = NULL;
	}
	uint16_t sent = rte_eth_tx_burst(port, q, m, n);
	while (sent < n && retries-- > 0)
		sent += rte_eth_tx_burst(port, q, m + sent, n - sent);
	if (sent < n)
		rte_pktmbuf_free_bulk(m + sent, n - sent);
	return sent;
}

static void jr_free(struct rte_mbuf **m, unsigned n) { rte_pktmbuf_free_bulk(m, n); }

static int jr_link(uint16_t port, uint32_t *speed, int *up) {
	struct rte_eth_link link;
	int rc = rte_eth_link_get_nowait(port, &link);
	if (rc != 0)
		return rc;
	*speed = link.link_speed;
	*up = link.link_status;
	return 0;
}
*/
import "C"

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/joyride-bench/joyride/nic"
	"golang.org/x/sys/unix"
)

var (
	initMu sync.Mutex
	inited bool
)

// Available reports whether this binary was built with DPDK.
func Available() bool { return true }

// Init starts DPDK's EAL with args (args[0] is the program name, as argv). It can
// run once per process; a second call is an error.
func Init(args []string) error {
	initMu.Lock()
	defer initMu.Unlock()
	if inited {
		return fmt.Errorf("dpdk: EAL already initialised in this process")
	}
	// AF_XDP UMEMs and BPF maps are locked memory; the default 8 MiB limit makes
	// libxdp fall back from its dispatcher and large pools fail.
	unix.Setrlimit(unix.RLIMIT_MEMLOCK, &unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY})
	argv := make([]*C.char, len(args))
	for i, a := range args {
		argv[i] = C.CString(a)
	}
	// EAL keeps pointers into argv for the life of the process: never freed.
	rc := C.rte_eal_init(C.int(len(argv)), (**C.char)(unsafe.Pointer(&argv[0])))
	if rc < 0 {
		return fmt.Errorf("dpdk: rte_eal_init %q: %s", args, errString(C.jr_errno()))
	}
	inited = true
	return nil
}

// Cleanup releases EAL resources; call it last, after every port is closed.
func Cleanup() error {
	initMu.Lock()
	defer initMu.Unlock()
	if !inited {
		return nil
	}
	inited = false
	// EAL leaves its runtime directory (/var/run/dpdk/<file-prefix>) behind.
	runDir := C.GoString(C.rte_eal_get_runtime_dir())
	if rc := C.rte_eal_cleanup(); rc != 0 {
		return fmt.Errorf("dpdk: rte_eal_cleanup: %s", errString(-rc))
	}
	if strings.HasPrefix(runDir, "/var/run/dpdk/") || strings.HasPrefix(runDir, "/run/dpdk/") {
		os.RemoveAll(runDir)
	}
	return nil
}

// TSCHz is DPDK's view of the time-stamp counter rate.
func TSCHz() uint64 { return uint64(C.rte_get_tsc_hz()) }

// PortNames lists the ports DPDK probed, by name.
func PortNames() []string {
	var names []string
	var buf [C.RTE_ETH_NAME_MAX_LEN]C.char
	for id := C.uint16_t(0); id < C.RTE_MAX_ETHPORTS; id++ {
		if C.rte_eth_dev_is_valid_port(id) == 0 {
			continue
		}
		if C.rte_eth_dev_get_name_by_port(id, &buf[0]) == 0 {
			names = append(names, C.GoString(&buf[0]))
		}
	}
	return names
}

func errString(code C.int) string {
	if code < 0 {
		code = -code
	}
	return fmt.Sprintf("%s (errno %d)", C.GoString(C.rte_strerror(code)), int(code))
}

// Port is a started DPDK port; as a nic.Port it moves frames on queue 0. Use Queue
// for the others. Like every nic.Port, one goroutine per queue.
type Port struct {
	name     string
	id       C.uint16_t
	pool     *C.struct_rte_mempool
	mac      net.HardwareAddr
	mtu      int
	features nic.Features
	q0       *Queue
	// rxWaitFds are the PMD's AF_XDP sockets (net_af_xdp only; see RxWaitFds).
	rxWaitFds []int
	// queues are the port's queue pairs (max of RX and TX queues), made once
	// at open so that Queue hands out the same scratch memory every time and
	// Close frees it.
	queues []*Queue
	closed bool
}

// Queue is one RX/TX queue pair of a port. It is a nic.Port of its own (the
// one-goroutine-per-queue rule applies), so engines that each own a queue can
// be written against nic.Port; MAC, MTU and Features are the port's, Stats the
// queue's share of them, and Close does nothing (close the Port).
type Queue struct {
	port *Port
	q    C.uint16_t
	// Scratch for the C helpers (data pointers and lengths of the current burst),
	// in C memory: passing Go memory to C makes each call allocate a copy.
	cData *unsafe.Pointer
	cLens *C.uint16_t
	// cMbufs holds the burst's mbuf pointers for C: handing C the Go array
	// (Batch.Handles) made the runtime check every pointer in it on every
	// call (cgoCheckUnknownPointer: 4% of joyrided's CPU under load).
	cMbufs **C.struct_rte_mbuf
	mbufs  []*C.struct_rte_mbuf
	data   []unsafe.Pointer // views of cData and cLens
	lens   []C.uint16_t
}

func newQueue(p *Port, q int) *Queue {
	cq := &Queue{port: p, q: C.uint16_t(q)}
	cq.cData = (*unsafe.Pointer)(C.calloc(nic.MaxBurst, C.size_t(unsafe.Sizeof(unsafe.Pointer(nil)))))
	cq.cLens = (*C.uint16_t)(C.calloc(nic.MaxBurst, 2))
	cq.cMbufs = (**C.struct_rte_mbuf)(C.calloc(nic.MaxBurst, C.size_t(unsafe.Sizeof(unsafe.Pointer(nil)))))
	cq.mbufs = unsafe.Slice(cq.cMbufs, nic.MaxBurst)
	cq.data = unsafe.Slice(cq.cData, nic.MaxBurst)
	cq.lens = unsafe.Slice(cq.cLens, nic.MaxBurst)
	return cq
}

var poolSeq int

// OpenPort configures and starts the port DPDK probed under name (for example
// "net_af_xdp0", or a PCI address such as "0000:41:00.0").
func OpenPort(name string, cfg PortConfig) (*Port, error) {
	cfg.defaults()
	initMu.Lock()
	ok := inited
	poolSeq++
	seq := poolSeq
	initMu.Unlock()
	if !ok {
		return nil, fmt.Errorf("dpdk: open port %s: EAL not initialised (call dpdk.Init)", name)
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var id C.uint16_t
	if rc := C.rte_eth_dev_get_port_by_name(cname, &id); rc != 0 {
		return nil, fmt.Errorf("dpdk: no port named %q (probed: %v): %s", name, PortNames(), errString(rc))
	}
	if cfg.PoolSize <= cfg.RxRing*cfg.RxQueues {
		return nil, fmt.Errorf("dpdk: port %s: pool of %d mbufs must exceed the RX rings (%d x %d)", name, cfg.PoolSize, cfg.RxQueues, cfg.RxRing)
	}
	pname := C.CString(fmt.Sprintf("jr_pool_%d_%d", int(id), seq))
	defer C.free(unsafe.Pointer(pname))
	socket := C.rte_eth_dev_socket_id(id)
	if socket < 0 {
		socket = 0
	}
	pool := C.jr_pool_create(pname, C.uint(cfg.PoolSize), 256, C.uint(cfg.DataRoom), socket)
	if pool == nil {
		return nil, fmt.Errorf("dpdk: port %s: mempool of %d x %d B: %s", name, cfg.PoolSize, cfg.DataRoom, errString(C.jr_errno()))
	}
	rxd, txd := C.uint16_t(cfg.RxRing), C.uint16_t(cfg.TxRing)
	xskBefore := xdpSockets()
	if rc := C.jr_port_setup(id, C.uint16_t(cfg.RxQueues), C.uint16_t(cfg.TxQueues), &rxd, &txd, pool); rc != 0 {
		C.rte_eth_dev_stop(id)
		C.rte_mempool_free(pool)
		return nil, fmt.Errorf("dpdk: port %s: configure/start with %d rxq, %d txq: %s", name, cfg.RxQueues, cfg.TxQueues, errString(rc))
	}
	p := &Port{name: name, id: id, pool: pool}
	// The af_xdp PMD of DPDK 22.11 has no Rx interrupts, but its queues are
	// AF_XDP sockets of this process, opened by the setup above: they poll
	// readable while frames wait, which is all a sleeping owner needs.
	for fd := range xdpSockets() {
		if !xskBefore[fd] {
			p.rxWaitFds = append(p.rxWaitFds, fd)
		}
	}
	slices.Sort(p.rxWaitFds)
	var addr C.struct_rte_ether_addr
	if rc := C.rte_eth_macaddr_get(id, &addr); rc == 0 {
		p.mac = C.GoBytes(unsafe.Pointer(&addr.addr_bytes[0]), 6)
	}
	var mtu C.uint16_t
	p.mtu = 1500
	if C.rte_eth_dev_get_mtu(id, &mtu) == 0 {
		p.mtu = int(mtu)
	}
	p.features = p.readFeatures(cfg, int(rxd), int(txd))
	for q := 0; q < max(cfg.RxQueues, cfg.TxQueues); q++ {
		p.queues = append(p.queues, newQueue(p, q))
	}
	p.q0 = p.queues[0]
	return p, nil
}

func (p *Port) readFeatures(cfg PortConfig, rxd, txd int) nic.Features {
	var info C.struct_rte_eth_dev_info
	f := nic.Features{RxQueues: cfg.RxQueues, TxQueues: cfg.TxQueues, RxRingSize: rxd, TxRingSize: txd}
	if C.rte_eth_dev_info_get(p.id, &info) != 0 {
		return f
	}
	f.Driver = C.GoString(info.driver_name)
	f.MaxRxQueues = int(info.max_rx_queues)
	f.MaxTxQueues = int(info.max_tx_queues)
	rx, tx := uint64(info.rx_offload_capa), uint64(info.tx_offload_capa)
	f.RxIPv4Checksum = rx&C.RTE_ETH_RX_OFFLOAD_IPV4_CKSUM != 0
	f.RxL4Checksum = rx&(C.RTE_ETH_RX_OFFLOAD_UDP_CKSUM|C.RTE_ETH_RX_OFFLOAD_TCP_CKSUM) == (C.RTE_ETH_RX_OFFLOAD_UDP_CKSUM | C.RTE_ETH_RX_OFFLOAD_TCP_CKSUM)
	f.TxIPv4Checksum = tx&C.RTE_ETH_TX_OFFLOAD_IPV4_CKSUM != 0
	f.TxL4Checksum = tx&(C.RTE_ETH_TX_OFFLOAD_UDP_CKSUM|C.RTE_ETH_TX_OFFLOAD_TCP_CKSUM) == (C.RTE_ETH_TX_OFFLOAD_UDP_CKSUM | C.RTE_ETH_TX_OFFLOAD_TCP_CKSUM)
	f.TSO = tx&C.RTE_ETH_TX_OFFLOAD_TCP_TSO != 0
	f.RSS = info.flow_type_rss_offloads != 0 && info.max_rx_queues > 1
	// rte_flow support cannot be read from dev_info; it is probed by the code
	// that needs it. Report it absent (LCD model).
	return f
}

// Name is the DPDK device name the port was opened by.
func (p *Port) Name() string { return p.name }

// Queue returns queue pair q (0 <= q < configured queues); it panics for any
// other q, which DPDK would not check before crashing.
func (p *Port) Queue(q int) *Queue {
	if q < 0 || q >= len(p.queues) {
		panic(fmt.Sprintf("dpdk: port %s has %d queue pairs, no queue %d", p.name, len(p.queues), q))
	}
	return p.queues[q]
}

// Queues is the number of queue pairs (the larger of RX and TX queues).
func (p *Port) Queues() int { return len(p.queues) }

// RxBurst implements nic.Port on queue 0.
func (p *Port) RxBurst(b *nic.Batch) int { return p.q0.RxBurst(b) }

// Alloc implements nic.Port on queue 0.
func (p *Port) Alloc(b *nic.Batch, n int) int { return p.q0.Alloc(b, n) }

// TxBurst implements nic.Port on queue 0.
func (p *Port) TxBurst(b *nic.Batch) int { return p.q0.TxBurst(b) }

// Free implements nic.Port.
func (p *Port) Free(b *nic.Batch) { p.q0.Free(b) }

// MAC implements nic.Port.
func (p *Port) MAC() net.HardwareAddr { return p.mac }

// RxWaitFds implements nic.RxWaiter: for a net_af_xdp port, the AF_XDP sockets
// behind its queues (found when the port was opened), which poll readable while
// frames wait; nil for other PMDs, which this layer can only poll.
func (p *Port) RxWaitFds() []int { return p.rxWaitFds }

// xdpSockets returns the process's open AF_XDP sockets (SO_DOMAIN == AF_XDP).
func xdpSockets() map[int]bool {
	found := map[int]bool{}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return found
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err != nil || !strings.HasPrefix(target, "socket:") {
			continue
		}
		if d, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN); err == nil && d == unix.AF_XDP {
			found[fd] = true
		}
	}
	return found
}

// MTU implements nic.Port.
func (p *Port) MTU() int { return p.mtu }

// Features implements nic.Port.
func (p *Port) Features() nic.Features { return p.features }

// Link reports the link speed in Mbit/s and whether it is up.
func (p *Port) Link() (speedMbps uint32, up bool, err error) {
	var speed C.uint32_t
	var st C.int
	if rc := C.jr_link(p.id, &speed, &st); rc != 0 {
		return 0, false, fmt.Errorf("dpdk: link of %s: %s", p.name, errString(rc))
	}
	return uint32(speed), st != 0, nil
}

// Stats implements nic.Port: the basic counters plus the driver's xstats.
func (p *Port) Stats() (nic.Stats, error) {
	var s C.struct_rte_eth_stats
	if rc := C.rte_eth_stats_get(p.id, &s); rc != 0 {
		return nic.Stats{}, fmt.Errorf("dpdk: stats of %s: %s", p.name, errString(rc))
	}
	st := nic.Stats{
		RxPackets: uint64(s.ipackets), TxPackets: uint64(s.opackets),
		RxBytes: uint64(s.ibytes), TxBytes: uint64(s.obytes),
		RxMissed: uint64(s.imissed), RxErrors: uint64(s.ierrors),
		TxErrors: uint64(s.oerrors), RxNoMbuf: uint64(s.rx_nombuf),
	}
	n := C.rte_eth_xstats_get_names(p.id, nil, 0)
	if n > 0 {
		names := make([]C.struct_rte_eth_xstat_name, n)
		vals := make([]C.struct_rte_eth_xstat, n)
		if C.rte_eth_xstats_get_names(p.id, &names[0], C.uint(n)) == n &&
			C.rte_eth_xstats_get(p.id, &vals[0], C.uint(n)) == n {
			st.Extended = make(map[string]uint64, n)
			for i := range vals {
				st.Extended[C.GoString(&names[vals[i].id].name[0])] = uint64(vals[i].value)
			}
		}
	}
	return st, nil
}

// Close stops the port and frees its pool. Frames still held by the caller must
// have been freed first.
func (p *Port) Close() error {
	if p.closed {
		return nil
	}
	p.closed = true
	var err error
	if rc := C.rte_eth_dev_stop(p.id); rc != 0 {
		err = fmt.Errorf("dpdk: stop %s: %s", p.name, errString(rc))
	}
	if rc := C.rte_eth_dev_close(p.id); rc != 0 && err == nil {
		err = fmt.Errorf("dpdk: close %s: %s", p.name, errString(rc))
	}
	C.rte_mempool_free(p.pool)
	for _, q := range p.queues {
		C.free(unsafe.Pointer(q.cData))
		C.free(unsafe.Pointer(q.cLens))
		C.free(unsafe.Pointer(q.cMbufs))
	}
	return err
}

// toC copies the batch's first n handles into the queue's C array.
func (q *Queue) toC(b *nic.Batch, n int) {
	for i := 0; i < n; i++ {
		q.mbufs[i] = (*C.struct_rte_mbuf)(b.Handles[i])
	}
}

// fromC copies n mbuf pointers from the queue's C array into the batch.
func (q *Queue) fromC(b *nic.Batch, n int) {
	for i := 0; i < n; i++ {
		b.Handles[i] = unsafe.Pointer(q.mbufs[i])
	}
}

// RxBurst receives up to b.Cap() frames on this queue.
func (q *Queue) RxBurst(b *nic.Batch) int {
	n := int(C.jr_rx(q.port.id, q.q, q.cMbufs, C.uint16_t(b.Cap()), q.cData, q.cLens))
	q.fromC(b, n)
	for i := 0; i < n; i++ {
		b.Frames[i] = unsafe.Slice((*byte)(q.data[i]), int(q.lens[i]))
	}
	b.N = n
	return n
}

// Alloc takes up to n transmit buffers from the port's pool: all n, or as many as
// a smaller retry gets when the pool is low.
func (q *Queue) Alloc(b *nic.Batch, n int) int {
	if n > b.Cap() {
		n = b.Cap()
	}
	got := 0
	for want := n; want > 0 && got == 0; want /= 2 {
		got = int(C.jr_alloc(q.port.pool, q.cMbufs, C.uint(want), q.cData, q.cLens))
	}
	q.fromC(b, got)
	for i := 0; i < got; i++ {
		b.Frames[i] = unsafe.Slice((*byte)(q.data[i]), int(q.lens[i]))
	}
	b.N = got
	return got
}

// txRetries bounds how often jr_tx retries a full ring inside one call.
const txRetries = 64

// TxBurst sends b.Frames[:b.N] and frees what the ring did not take.
func (q *Queue) TxBurst(b *nic.Batch) int {
	n := b.N
	if n == 0 {
		return 0
	}
	for i := 0; i < n; i++ {
		q.lens[i] = C.uint16_t(len(b.Frames[i]))
	}
	q.toC(b, n)
	sent := int(C.jr_tx(q.port.id, q.q, q.cMbufs, C.uint16_t(n), q.cLens, txRetries))
	b.N = 0
	return sent
}

// Free returns b.Frames[:b.N] to the pool.
func (q *Queue) Free(b *nic.Batch) {
	if b.N > 0 {
		q.toC(b, b.N)
		C.jr_free(q.cMbufs, C.uint(b.N))
	}
	b.N = 0
}

// MAC implements nic.Port: the port's address.
func (q *Queue) MAC() net.HardwareAddr { return q.port.mac }

// MTU implements nic.Port: the port's MTU.
func (q *Queue) MTU() int { return q.port.mtu }

// Features implements nic.Port: the port's features.
func (q *Queue) Features() nic.Features { return q.port.features }

// Stats implements nic.Port with this queue's share of the port's counters, so
// that the stats of all of a port's queues add up to the port's: packets,
// bytes and RX errors per queue (DPDK's q_* counters), and the counters DPDK
// keeps only per port (missed, TX errors, no-mbuf, the driver's xstats) on
// queue 0. A port with one queue reports exactly Port.Stats.
func (q *Queue) Stats() (nic.Stats, error) {
	if len(q.port.queues) == 1 {
		return q.port.Stats()
	}
	var s C.struct_rte_eth_stats
	if rc := C.rte_eth_stats_get(q.port.id, &s); rc != 0 {
		return nic.Stats{}, fmt.Errorf("dpdk: stats of %s: %s", q.port.name, errString(rc))
	}
	var qs nic.Stats
	if i := int(q.q); i < C.RTE_ETHDEV_QUEUE_STAT_CNTRS {
		qs.RxPackets, qs.TxPackets = uint64(s.q_ipackets[i]), uint64(s.q_opackets[i])
		qs.RxBytes, qs.TxBytes = uint64(s.q_ibytes[i]), uint64(s.q_obytes[i])
		qs.RxErrors = uint64(s.q_errors[i])
	}
	if q.q == 0 {
		st, err := q.port.Stats()
		if err != nil {
			return nic.Stats{}, err
		}
		qs.RxMissed, qs.TxErrors, qs.RxNoMbuf, qs.Extended = st.RxMissed, st.TxErrors, st.RxNoMbuf, st.Extended
	}
	return qs, nil
}

// Close implements nic.Port: a queue is closed with its port, so it does
// nothing.
func (q *Queue) Close() error { return nil }

var (
	_ nic.Port = (*Port)(nil)
	_ nic.Port = (*Queue)(nil)
)
