package eal

import (
	"slices"
	"strings"
	"testing"
)

// The two shapes every role uses: a PCI device on hugepages (a testbed node)
// and vdevs without hugepages (the local testbed), with the same core, prefix
// and log level arguments.
func TestList(t *testing.T) {
	pci := Args{Program: "joyrided", Core: 3, FilePrefix: "server-x", PCI: []string{PCIDevice("0000:41:00.0", "mprq_en=1")}}
	if got, want := pci.List(), []string{"joyrided", "-l", "3", "--file-prefix", "server-x", "--log-level", "*:warning",
		"-a", "0000:41:00.0,mprq_en=1"}; !slices.Equal(got, want) {
		t.Errorf("PCI: %q, want %q", got, want)
	}
	vdev := Args{Program: "jr", Core: 1, FilePrefix: "p", NoHugeMB: 512, Vdevs: []string{"net_af_xdp0,iface=a", "net_af_xdp1,iface=b"}}
	if got, want := vdev.List(), []string{"jr", "--no-huge", "-m", "512", "--no-pci", "-l", "1", "--file-prefix", "p", "--log-level", "*:warning",
		"--vdev", "net_af_xdp0,iface=a", "--vdev", "net_af_xdp1,iface=b"}; !slices.Equal(got, want) {
		t.Errorf("vdev: %q, want %q", got, want)
	}
}

func TestPCIDevice(t *testing.T) {
	if PCIDevice("0000:41:00.0", "") != "0000:41:00.0" {
		t.Error("no PMD arguments: the bare address")
	}
	for dev, addr := range map[string]string{"0000:41:00.0": "0000:41:00.0", "0000:41:00.1,mprq_en=1,rxq_cqe_comp_en=0": "0000:41:00.1"} {
		if got, err := ParsePCIDevice(dev); err != nil || got != addr {
			t.Errorf("%q: %q %v, want %q", dev, got, err, addr)
		}
	}
	for _, bad := range []string{"", "41:00.0", "0000:41:00.8", "eth1", "0000:41:00.0x,a=b"} {
		if _, err := ParsePCIDevice(bad); err == nil || !strings.Contains(err.Error(), "lspci -D") {
			t.Errorf("%q: %v, want a refusal", bad, err)
		}
	}
}
