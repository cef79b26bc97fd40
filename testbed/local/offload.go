package local

import (
	"fmt"
	"sort"
	"strings"

	"github.com/safchain/ethtool"
)

// disableTxChecksum turns off every TX checksum offload of iface, like
// `ethtool -K <iface> tx off`, in the calling thread's namespace (the
// ethtool socket is bound to the namespace it is opened in).
//
// Why: with TX checksum offload on, the kernel hands the veth skbs marked
// CHECKSUM_PARTIAL, whose L4 checksum is only a pseudo-header seed for
// hardware to finish. A real NIC would; veth does not, and an AF_XDP or
// AF_PACKET socket on the other end receives the frame with the wrong
// checksum, which DPDK (and any user-space stack) then drops or counts as
// corrupt. With offload off the kernel computes checksums in software.
//
// "tx-checksumming" is only ethtool(8)'s umbrella name; the kernel knows
// the individual tx-checksum-* features, so all of them are switched off
// and then read back.
func disableTxChecksum(iface string) error {
	e, err := ethtool.NewEthtool()
	if err != nil {
		return fmt.Errorf("disable tx-checksumming on %s: open ethtool socket: %w", iface, err)
	}
	defer e.Close()

	names, err := e.FeatureNames(iface)
	if err != nil {
		return fmt.Errorf("disable tx-checksumming on %s: list features: %w", iface, err)
	}
	off := map[string]bool{}
	var feats []string
	for name := range names {
		if strings.HasPrefix(name, "tx-checksum-") {
			off[name] = false
			feats = append(feats, name)
		}
	}
	sort.Strings(feats)
	if len(off) == 0 {
		return fmt.Errorf("disable tx-checksumming on %s: kernel reports no tx-checksum-* features", iface)
	}
	if err := e.Change(iface, off); err != nil {
		return fmt.Errorf("disable tx-checksumming (%s) on %s: %w", strings.Join(feats, ","), iface, err)
	}

	// SETFEATURES silently keeps features the driver cannot change, so
	// verify instead of trusting the call.
	got, err := e.Features(iface)
	if err != nil {
		return fmt.Errorf("disable tx-checksumming on %s: read back features: %w", iface, err)
	}
	for _, f := range feats {
		if got[f] {
			return fmt.Errorf("disable tx-checksumming on %s: feature %s is still on", iface, f)
		}
	}
	return nil
}
