//go:build !dpdk || !cgo

package dpdk

import (
	"errors"
	"strings"
	"testing"
)

// Built without DPDK, every entry point says so, and how to fix it, instead of
// crashing or failing to link.
func TestWithoutDPDKEveryCallSaysHowToGetIt(t *testing.T) {
	if Available() {
		t.Fatal("stub claims DPDK is available")
	}
	if err := Init([]string{"x"}); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "libdpdk-dev") {
		t.Fatalf("Init: %v", err)
	}
	if _, err := OpenPort("net_af_xdp0", PortConfig{}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("OpenPort: %v", err)
	}
}
