package main

// The multi-core generator's wiring (-queues, -cpus): one engine per queue of
// the client's interface, each pinned to a cpu of its own (loadgen.RunMulti).
// With the defaults (-queues 1, no -cpus) every function here hands back what
// main did before: the same EAL arguments, port and loadgen.Run.

import (
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/joyride-bench/joyride/loadgen"
	"github.com/joyride-bench/joyride/nic"
	"github.com/joyride-bench/joyride/nic/dpdk"
	"github.com/joyride-bench/joyride/nic/dpdk/eal"
)

var (
	queues  = flag.Int("queues", 1, fmt.Sprintf("UDP only: queues of -iface to generate from, 1..%d, one engine per queue with rate/queues each (the interface needs that many RX and TX queues; needs -cpus)", dpdk.MaxVdevQueues))
	cpuList = flag.String("cpus", "", "the cpus the engines run on, one per queue, e.g. 0,1 or 2-5 (each engine's thread is pinned to its own)")
	pci     = flag.String("pci", "", "instead of a vdev over -iface, a PCI device (a real NIC; EAL's -a argument: address[,pmd args], e.g. 0000:41:00.0,mprq_en=1); -iface then only names it in messages; one queue")
)

// portPlan is what the flags set up for the UDP path: the DPDK ports to open
// and the engines' cpus.
type portPlan struct {
	cpus    []int
	perPort int          // queues per DPDK port (VdevQueues)
	names   []string     // DPDK ports to open, the first by main
	extra   []*dpdk.Port // the others, opened by udpQueues
}

// checkQueues refuses -queues and -cpus where they do not apply, before EAL
// starts, and parses -cpus.
func checkQueues(protocol, mode, blast string, fail func(int, string, ...any)) *portPlan {
	plan := &portPlan{}
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
		plan.cpus = cpus
	} else if *queues > 1 {
		fail(2, "-queues %d needs -cpus with %d cpus, one per engine (e.g. -cpus %s)", *queues, *queues, exampleCPUs(*queues))
	}
	return plan
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

// ealArgs is dpdk.VdevArgs for -queues queues (or the -pci device): the EAL
// arguments and the port main opens (the others are opened by udpQueues).
func (plan *portPlan) ealArgs(driver, iface string, cpu int, prefix string) ([]string, string, error) {
	if *pci != "" {
		return plan.pciArgs(*pci, cpu, prefix)
	}
	args, names, perPort, err := dpdk.VdevQueues(driver, iface, cpu, *queues, prefix)
	if err != nil {
		return nil, "", err
	}
	plan.names, plan.perPort = names, perPort
	return args, names[0], nil
}

// portConfig shapes every port: perPort queue pairs (af_packet: all of them on
// one port; af_xdp: one port per queue).
func (plan *portPlan) portConfig() dpdk.PortConfig {
	return dpdk.PortConfig{RxQueues: plan.perPort, TxQueues: plan.perPort}
}

// udpQueues opens the other ports (af_xdp: one per queue) and lists every
// engine's queue: p itself when it is the only one and no engine is pinned,
// as loadgen.Run wants it. It runs before ARP resolution because an af_xdp
// queue whose port is not open yet has no XSK: its frames would go to the
// client's kernel instead.
func (plan *portPlan) udpQueues(p *dpdk.Port, fail func(int, string, ...any)) loadgen.Queues {
	q := loadgen.Queues{CPUs: plan.cpus}
	if len(plan.names) == 1 && plan.perPort == 1 && len(plan.cpus) == 0 {
		q.Queues = []nic.Port{p}
		return q
	}
	for i := 0; i < plan.perPort; i++ {
		q.Queues = append(q.Queues, p.Queue(i))
	}
	for _, name := range plan.names[1:] {
		ep, err := dpdk.OpenPort(name, plan.portConfig())
		if err != nil {
			plan.closeExtra()
			p.Close()
			fail(1, "%v", err)
		}
		plan.extra = append(plan.extra, ep)
		for i := 0; i < plan.perPort; i++ {
			q.Queues = append(q.Queues, ep.Queue(i))
		}
	}
	return q
}

// closeExtra closes the ports udpQueues opened.
func (plan *portPlan) closeExtra() {
	for _, ep := range plan.extra {
		ep.Close()
	}
	plan.extra = nil
}

// pciArgs are the EAL arguments for -pci: the device (with its PMD arguments)
// on hugepages, as on a testbed node; the port is named by its address.
func (plan *portPlan) pciArgs(dev string, cpu int, prefix string) ([]string, string, error) {
	addr, err := eal.ParsePCIDevice(dev)
	if err != nil {
		return nil, "", fmt.Errorf("-pci: %w", err)
	}
	if *queues != 1 {
		return nil, "", fmt.Errorf("-pci with -queues %d: the multi-core generator opens vdev queues only (use -queues 1)", *queues)
	}
	plan.names, plan.perPort = []string{addr}, 1
	return eal.Args{Program: "jr", Core: cpu, FilePrefix: prefix, PCI: []string{dev}}.List(), addr, nil
}
