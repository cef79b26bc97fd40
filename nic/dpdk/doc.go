// Package dpdk is the project's own thin cgo layer over DPDK 22.11: the
// Environment Abstraction Layer (EAL), ports (ethdevs) and mbuf pools, exposed as a
// nic.Port.
//
// DPDK drives a NIC from user space: the process owns the device's queues and moves
// frames by polling them in bursts, with no system call and no interrupt per packet.
// Here the "NIC" is usually a virtual device (vdev) over a Linux interface, such as
// net_af_xdp (an AF_XDP socket), net_af_packet or net_memif (shared memory between
// two processes); on real nodes it is a PCI device with its PMD (mlx5, ice). The code
// above this package cannot tell the difference.
//
// Rules this layer keeps:
//   - one cgo call per burst, never per packet: the C helpers in the preamble loop
//     over the burst and hand back data pointers and lengths in arrays;
//   - packet pools are created with RTE_MEMPOOL_F_NO_IOVA_CONTIG so that, without
//     hugepages (--no-huge), the pool is one virtually contiguous chunk: net_af_xdp
//     registers the pool as its UMEM and silently stops transmitting otherwise;
//   - missing offloads are features, not errors (the vdevs offer no RSS and no
//     checksum offload): Features reports what the port has.
//
// The package builds for real only with the build tag "dpdk" (the Makefile sets it
// when pkg-config finds libdpdk). Without it every entry point returns
// ErrUnavailable, which says how to get DPDK, instead of failing to link.
package dpdk

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/joyride-bench/joyride/nic"
	"github.com/joyride-bench/joyride/nic/dpdk/eal"
)

// ErrUnavailable is returned by every call when the binary was built without DPDK.
var ErrUnavailable = errors.New("DPDK support is not built in: install Debian's libdpdk-dev (make deps) and rebuild with the 'dpdk' build tag (make build does both)")

// PortConfig shapes a port when it is opened.
type PortConfig struct {
	RxQueues int // default 1
	TxQueues int // default 1
	RxRing   int // RX descriptors per queue, default 1024 (the driver may adjust)
	TxRing   int // TX descriptors per queue, default 1024
	// PoolSize is the number of mbufs in the port's pool, shared by RX and TX.
	// It must exceed the RX rings (net_af_xdp pre-fills its ring at start);
	// default 8191.
	PoolSize int
	// DataRoom is each mbuf's data room; default and minimum 2176 (DPDK's
	// RTE_MBUF_DEFAULT_BUF_SIZE), which af_xdp and af_packet need.
	DataRoom int
}

// ProfileConfig is the port configuration a NIC profile allows: its rings
// (nic.Profile.Ring) and one queue pair; open the port with it, then hand
// users nic.Restrict(port, profile) so they see only the profile's features.
func ProfileConfig(p nic.Profile) PortConfig {
	return PortConfig{RxRing: p.Ring, TxRing: p.Ring}
}

func (c *PortConfig) defaults() {
	if c.RxQueues <= 0 {
		c.RxQueues = 1
	}
	if c.TxQueues <= 0 {
		c.TxQueues = 1
	}
	if c.RxRing <= 0 {
		c.RxRing = 1024
	}
	if c.TxRing <= 0 {
		c.TxRing = 1024
	}
	if c.PoolSize <= 0 {
		c.PoolSize = 8191
	}
	if c.DataRoom < 2176 {
		c.DataRoom = 2176
	}
}

// VdevArgs returns EAL arguments for a process that drives one Linux interface
// through a vdev, without hugepages or PCI scanning, pinned to cpu. driver is
// "af_xdp" or "af_packet"; the port is then named "net_<driver>0".
// It is VdevQueues with one queue.
func VdevArgs(driver, iface string, cpu int, filePrefix string) ([]string, string, error) {
	args, ports, _, err := VdevQueues(driver, iface, cpu, 1, filePrefix)
	if err != nil {
		return nil, "", err
	}
	return args, ports[0], nil
}

// MaxVdevQueues bounds the queue pairs VdevQueues sets up: DPDK keeps per-queue
// counters for 16 queues (RTE_ETHDEV_QUEUE_STAT_CNTRS), which is also the most
// queue pairs the af_xdp PMD takes.
const MaxVdevQueues = 16

// VdevQueues returns EAL arguments for a process that polls queues queue pairs
// of one Linux interface (queues 0..queues-1), and the DPDK ports that give
// them: open each name in ports with PortConfig{RxQueues: perPort, TxQueues:
// perPort}; port i's queue j is the interface's queue i*perPort+j.
//
// The two drivers need different layouts:
//   - af_xdp: one vdev per queue (net_af_xdp0..N-1, vdev i with start_queue=i,
//     queue_count=1), each a port with one queue pair. DPDK 22.11's af_xdp PMD
//     refuses queue_count above the interface's *combined* channel count, and
//     veth reports only separate RX and TX counts (`ethtool -l`: combined
//     n/a), so one vdev with queue_count=N cannot open a veth's N queues; N
//     vdevs with one queue each can, and work on any NIC alike. Each has its
//     own mbuf pool and UMEM.
//   - af_packet: one vdev with qpairs=N (one port, N queues): its queues are N
//     packet sockets in one PACKET_FANOUT group, which spreads received frames
//     over them by flow hash, whatever queue the interface received them on.
//
// The interface needs at least queues RX and TX queues (a veth:
// `ip link add ... numrxqueues N numtxqueues N`; testbed/local Options.Queues).
func VdevQueues(driver, iface string, cpu, queues int, filePrefix string) (args, ports []string, perPort int, err error) {
	vdevs, ports, perPort, err := Vdevs(driver, iface, 0, queues)
	if err != nil {
		return nil, nil, 0, err
	}
	return VdevEAL(cpu, filePrefix, vdevs...).List(), ports, perPort, nil
}

// VdevEAL is the EAL configuration of a process whose ports are all vdevs
// over Linux interfaces: no hugepages (512 MB of ordinary memory), no PCI.
func VdevEAL(cpu int, filePrefix string, vdevs ...string) eal.Args {
	return eal.Args{Program: "jr", Core: cpu, FilePrefix: filePrefix, NoHugeMB: 512, Vdevs: vdevs}
}

// Vdevs returns the --vdev values that give queues queue pairs of iface with
// the driver (the layouts of VdevQueues), their ports and the queues per
// port. The devices are numbered from first: a process that drives two
// interfaces names the second's from the first's count.
func Vdevs(driver, iface string, first, queues int) (vdevs, ports []string, perPort int, err error) {
	if queues < 1 || queues > MaxVdevQueues {
		return nil, nil, 0, fmt.Errorf("%d queues: a vdev port has 1..%d", queues, MaxVdevQueues)
	}
	switch driver {
	case "af_xdp":
		for q := 0; q < queues; q++ {
			name := "net_af_xdp" + strconv.Itoa(first+q)
			vdevs = append(vdevs, name+",iface="+iface+",start_queue="+strconv.Itoa(q)+",queue_count=1")
			ports = append(ports, name)
		}
		return vdevs, ports, 1, nil
	case "af_packet":
		name := "net_af_packet" + strconv.Itoa(first)
		return []string{name + ",iface=" + iface + ",qpairs=" + strconv.Itoa(queues) + ",framecnt=4096"}, []string{name}, queues, nil
	}
	return nil, nil, 0, errors.New("unknown DPDK vdev driver " + driver + " (allowed: af_xdp, af_packet)")
}
