package dpdk

import (
	"slices"
	"strings"
	"testing"
)

// VdevArgs keeps its one-queue arguments; VdevQueues lays out N queues as one
// af_xdp vdev per queue, or one af_packet vdev with N queue pairs.
func TestVdevQueues(t *testing.T) {
	args, name, err := VdevArgs("af_xdp", "jrc-x", 1, "p")
	want := []string{"jr", "--no-huge", "-m", "512", "--no-pci", "-l", "1", "--file-prefix", "p", "--log-level", "*:warning",
		"--vdev", "net_af_xdp0,iface=jrc-x,start_queue=0,queue_count=1"}
	if err != nil || name != "net_af_xdp0" || !slices.Equal(args, want) {
		t.Fatalf("VdevArgs: %q %s %v", args, name, err)
	}

	args, ports, perPort, err := VdevQueues("af_xdp", "jrc-x", 1, 2, "p")
	if err != nil || perPort != 1 || !slices.Equal(ports, []string{"net_af_xdp0", "net_af_xdp1"}) ||
		!slices.Equal(args[len(args)-4:], []string{"--vdev", "net_af_xdp0,iface=jrc-x,start_queue=0,queue_count=1",
			"--vdev", "net_af_xdp1,iface=jrc-x,start_queue=1,queue_count=1"}) {
		t.Fatalf("af_xdp x2: %q %q %d %v", args, ports, perPort, err)
	}
	args, ports, perPort, err = VdevQueues("af_packet", "jrc-x", 1, 3, "p")
	if err != nil || perPort != 3 || !slices.Equal(ports, []string{"net_af_packet0"}) ||
		args[len(args)-1] != "net_af_packet0,iface=jrc-x,qpairs=3,framecnt=4096" {
		t.Fatalf("af_packet x3: %q %q %d %v", args, ports, perPort, err)
	}

	for _, q := range []int{0, MaxVdevQueues + 1} {
		if _, _, _, err := VdevQueues("af_xdp", "jrc-x", 1, q, "p"); err == nil || !strings.Contains(err.Error(), "1..16") {
			t.Errorf("%d queues: %v, want a refusal naming 1..16", q, err)
		}
	}
	// A second interface's devices numbered after the first's.
	vdevs, ports, _, err := Vdevs("af_xdp", "jrw-b", 1, 1)
	if err != nil || !slices.Equal(ports, []string{"net_af_xdp1"}) || !slices.Equal(vdevs, []string{"net_af_xdp1,iface=jrw-b,start_queue=0,queue_count=1"}) {
		t.Fatalf("af_xdp from 1: %q %q %v", vdevs, ports, err)
	}
	if vdevs, ports, _, err = Vdevs("af_packet", "jrw-b", 1, 1); err != nil || ports[0] != "net_af_packet1" || !strings.HasPrefix(vdevs[0], "net_af_packet1,iface=jrw-b,") {
		t.Fatalf("af_packet from 1: %q %q %v", vdevs, ports, err)
	}
	if _, _, err := VdevArgs("memif", "x", 0, "p"); err == nil || !strings.Contains(err.Error(), "allowed: af_xdp, af_packet") {
		t.Errorf("unknown driver: %v", err)
	}
}
