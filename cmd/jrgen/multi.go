package main

// The multi-core generator's wiring (-queues, -cpus): one engine per queue of
// the client's interface, each pinned to a cpu of its own (loadgen.RunMulti).
// With the defaults (-queues 1, no -cpus) every function here hands back what
// main did before: the same EAL arguments, port and loadgen.Run.

import (
	"flag"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/joyride-bench/joyride/loadgen"
	"github.com/joyride-bench/joyride/nic"
	"github.com/joyride-bench/joyride/nic/arp"
	"github.com/joyride-bench/joyride/nic/dpdk"
)

var (
	queues  = flag.Int("queues", 1, fmt.Sprintf("UDP only: queues of -iface to generate from, 1..%d, one engine per queue with rate/queues each (the interface needs that many RX and TX queues; needs -cpus)", dpdk.MaxVdevQueues))
	cpuList = flag.String("cpus", "", "the cpus the engines run on, one per queue, e.g. 0,1 or 2-5 (each engine's thread is pinned to its own)")
	pci     = flag.String("pci", "", "instead of a vdev over -iface, a PCI device (a real NIC; EAL's -a argument: address[,pmd args], e.g. 0000:41:00.0,mprq_en=1); -iface then only names it in messages; one queue")
)

// multi is what the flags set up for the UDP path.
var multi struct {
	cpus     []int
	perPort  int          // queues per DPDK port (VdevQueues)
	names    []string     // DPDK ports to open, the first by main
	extra    []*dpdk.Port // the others, opened by udpQueues
	queues   []nic.Port   // every engine's queue, in order
	pinnable bool         // run through RunMulti (-queues > 1 or -cpus)
}

// checkQueues refuses -queues and -cpus where they do not apply, before EAL
// starts, and parses -cpus.
func checkQueues(protocol, mode, blast string, fail func(int, string, ...any)) {
	if *queues < 1 || *queues > dpdk.MaxVdevQueues {
		fail(2, "-queues %d outside 1..%d", *queues, dpdk.MaxVdevQueues)
	}
	if *queues > 1 || *cpuList != "" {
		switch {
		case protocol != "udp":
			fail(2, "-queues/-cpus: the multi-core generator is UDP only for now (got -protocol %s; use -queues 1 without -cpus)", protocol)
		case mode != "rpc":
			fail(2, "-queues/-cpus: the multi-core generator offers rpc load only (got -mode %s; use -queues 1 without -cpus)", mode)
		case blast != "":
			fail(2, "-queues/-cpus: -blast measures one queue (use -queues 1 without -cpus)")
		}
	}
	if *cpuList != "" {
		cpus, err := parseCPUs(*cpuList)
		if err != nil {
			fail(2, "-cpus %q: %v", *cpuList, err)
		}
		if len(cpus) != *queues {
			fail(2, "-cpus %q names %d cpus for -queues %d: give one cpu per queue", *cpuList, len(cpus), *queues)
		}
		multi.cpus = cpus
	} else if *queues > 1 {
		fail(2, "-queues %d needs -cpus with %d cpus, one per engine (e.g. -cpus %s)", *queues, *queues, exampleCPUs(*queues))
	}
	multi.pinnable = *queues > 1 || *cpuList != ""
}

// parseCPUs reads a list such as "0,1" or "2-5,7" (taskset -c's syntax), in
// order, repeats allowed (engines then share a core).
func parseCPUs(s string) ([]int, error) {
	var cpus []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || a < 0 || b < a || b > 1023 {
			return nil, fmt.Errorf("%q is not a cpu (0..1023) or an ascending range of them (allowed: comma-separated cpus and ranges, e.g. 0,1 or 2-5)", part)
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

func exampleCPUs(n int) string {
	if n == 2 {
		return "0,1"
	}
	return "0-" + strconv.Itoa(n-1)
}

// vdevArgs is dpdk.VdevArgs for -queues queues: the EAL arguments and the port
// main opens (the others are opened by udpQueues).
func vdevArgs(driver, iface string, cpu int, prefix string) ([]string, string, error) {
	if *pci != "" {
		return pciArgs(*pci, cpu, prefix)
	}
	args, names, perPort, err := dpdk.VdevQueues(driver, iface, cpu, *queues, prefix)
	if err != nil {
		return nil, "", err
	}
	multi.names, multi.perPort = names, perPort
	return args, names[0], nil
}

// portConfig shapes every port: perPort queue pairs (af_packet: all of them on
// one port; af_xdp: one port per queue).
func portConfig() dpdk.PortConfig {
	return dpdk.PortConfig{RxQueues: multi.perPort, TxQueues: multi.perPort}
}

// udpQueues opens the other ports (af_xdp: one per queue) and lists every
// engine's queue. It returns the port to resolve the server's MAC on: p itself
// with one queue, else all queues polled in turn, since the server may answer
// ARP on any of them. It runs before ARP resolution because an af_xdp queue
// whose port is not open yet has no XSK: its frames would go to the client's
// kernel instead.
func udpQueues(p *dpdk.Port, fail func(int, string, ...any)) nic.Port {
	for q := 0; q < multi.perPort; q++ {
		multi.queues = append(multi.queues, p.Queue(q))
	}
	for _, name := range multi.names[1:] {
		ep, err := dpdk.OpenPort(name, portConfig())
		if err != nil {
			closeExtra()
			p.Close()
			fail(1, "%v", err)
		}
		multi.extra = append(multi.extra, ep)
		for q := 0; q < multi.perPort; q++ {
			multi.queues = append(multi.queues, ep.Queue(q))
		}
	}
	if len(multi.queues) == 1 {
		return p
	}
	return &fanIn{Port: multi.queues[0], queues: multi.queues}
}

// runUDP offers the point: loadgen.Run on p, or one engine per queue.
func runUDP(p *dpdk.Port, resp *arp.Responder, cfg loadgen.Config) (*loadgen.Result, error) {
	if !multi.pinnable {
		return loadgen.Run(p, resp, cfg)
	}
	defer closeExtra()
	return loadgen.RunMulti(multi.queues, multi.cpus, resp, cfg)
}

func closeExtra() {
	for _, ep := range multi.extra {
		ep.Close()
	}
	multi.extra = nil
}

// fanIn is a nic.Port that receives from every queue in turn and does the rest
// (transmit, MAC, ...) on the first: ARP resolution before the engines start,
// from one goroutine.
type fanIn struct {
	nic.Port   // the first queue
	queues     []nic.Port
	next, last int // the queue to poll next; the one that filled the batch
}

func (f *fanIn) RxBurst(b *nic.Batch) int {
	for range f.queues {
		q := f.next
		f.next = (f.next + 1) % len(f.queues)
		if n := f.queues[q].RxBurst(b); n > 0 {
			f.last = q
			return n
		}
	}
	return 0
}

func (f *fanIn) Free(b *nic.Batch) { f.queues[f.last].Free(b) }

// pciArgs are the EAL arguments for -pci: the device (with its PMD arguments)
// on hugepages, as on a testbed node; the port is named by its address.
func pciArgs(dev string, cpu int, prefix string) ([]string, string, error) {
	addr, _, _ := strings.Cut(dev, ",")
	if !pciAddrRE.MatchString(addr) {
		return nil, "", fmt.Errorf("-pci %q: expected a PCI address as lspci -D prints it (0000:41:00.0), optionally followed by ,key=value PMD arguments", dev)
	}
	if *queues != 1 {
		return nil, "", fmt.Errorf("-pci with -queues %d: the multi-core generator opens vdev queues only (use -queues 1)", *queues)
	}
	multi.names, multi.perPort = []string{addr}, 1
	return []string{"jr", "-l", strconv.Itoa(cpu), "--file-prefix", prefix, "-a", dev, "--log-level", "*:warning"}, addr, nil
}

var pciAddrRE = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)
