// Package eal builds the command line of DPDK's Environment Abstraction
// Layer (EAL), the arguments rte_eal_init takes before a process can open a
// port. Every process of the project that drives DPDK (jrgen, joyrided, the
// null reflector, jremu, the tests) says the same few things: the one lcore it
// runs on (-l, the core it is pinned to), a runtime directory of its own
// (--file-prefix, so that two processes on a machine do not share hugepage
// files), its devices (-a for a PCI device with its PMD arguments, --vdev for
// a virtual device; --no-pci when there is no PCI device, so EAL does not
// probe the machine's NICs), memory (hugepages, or --no-huge with -m MB) and
// a quiet log (--log-level *:warning). Args says them once, in one order.
//
// The package is plain Go: the testbed and experiment code can name a
// node's device without linking DPDK.
package eal

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Args is one process's EAL configuration.
type Args struct {
	// Program is argv[0]: it names the process in EAL's messages.
	Program string
	// Core is the one lcore (-l): the core the process is pinned to.
	Core int
	// FilePrefix names the runtime directory (--file-prefix); unique per
	// process on a machine.
	FilePrefix string
	// PCI are PCI devices for -a, each "address[,pmd args]" (PCIDevice);
	// with none, EAL is told --no-pci.
	PCI []string
	// Vdevs are virtual devices for --vdev, each "name,key=value,...".
	Vdevs []string
	// NoHugeMB, when above 0, runs without hugepages on that many MB of
	// ordinary memory (--no-huge -m NoHugeMB); 0 uses hugepages.
	NoHugeMB int
}

// LogLevel is every process's EAL log level: warnings and errors only, so a
// role's log holds what went wrong, not DPDK's start-up chatter.
const LogLevel = "*:warning"

// List is the argument vector for rte_eal_init (dpdk.Init).
func (a Args) List() []string {
	args := []string{a.Program}
	if a.NoHugeMB > 0 {
		args = append(args, "--no-huge", "-m", strconv.Itoa(a.NoHugeMB))
	}
	if len(a.PCI) == 0 {
		args = append(args, "--no-pci")
	}
	args = append(args, "-l", strconv.Itoa(a.Core), "--file-prefix", a.FilePrefix, "--log-level", LogLevel)
	for _, d := range a.PCI {
		args = append(args, "-a", d)
	}
	for _, v := range a.Vdevs {
		args = append(args, "--vdev", v)
	}
	return args
}

// PCIDevice is the -a value of a PCI device: its address, then its PMD
// arguments (mprq_en=1,rxq_cqe_comp_en=0) when there are any.
func PCIDevice(addr, pmdArgs string) string {
	if pmdArgs == "" {
		return addr
	}
	return addr + "," + pmdArgs
}

// ParsePCIDevice checks an -a value (address[,pmd args]) and returns its
// address, which is also the name DPDK gives the device's port.
func ParsePCIDevice(dev string) (addr string, err error) {
	addr, _, _ = strings.Cut(dev, ",")
	if !pciAddrRE.MatchString(addr) {
		return "", fmt.Errorf("PCI device %q: expected a PCI address as lspci -D prints it (0000:41:00.0), optionally followed by ,key=value PMD arguments", dev)
	}
	return addr, nil
}

var pciAddrRE = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)
