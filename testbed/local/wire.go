package local

import (
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// createWireVeths makes the two veth pairs of a testbed with a wire
// namespace: client ⇄ wire (jrc-<id> ⇄ jwc-<id>) and server ⇄ wire
// (jrs-<id> ⇄ jws-<id>), each created inside the client's or server's
// namespace with its peer directly in the wire's, as createVeth does.
func createWireVeths(t *Testbed, handles map[string]netns.NsHandle) error {
	w := t.Wire
	nq := t.queues()
	for _, p := range []struct {
		node     Node
		wireSide string
	}{{t.Client, w.ClientIface}, {t.Server, w.ServerIface}} {
		h, err := netlink.NewHandleAt(handles[p.node.Netns])
		if err != nil {
			return fmt.Errorf("netlink handle in netns %s: %w", p.node.Netns, err)
		}
		la := netlink.NewLinkAttrs()
		la.Name = p.node.Iface
		la.MTU = MTU
		la.NumTxQueues = nq
		la.NumRxQueues = nq
		veth := netlink.NewVeth(la)
		veth.PeerName = p.wireSide
		veth.PeerNamespace = netlink.NsFd(int(handles[w.Netns]))
		veth.PeerMTU = MTU
		veth.PeerNumTxQueues = uint32(nq)
		veth.PeerNumRxQueues = uint32(nq)
		err = h.LinkAdd(veth)
		h.Close()
		if err != nil {
			return fmt.Errorf("create veth %s (netns %s) <-> %s (netns %s): %w",
				p.node.Iface, p.node.Netns, p.wireSide, w.Netns, err)
		}
	}
	return nil
}

// setupWire configures the wire namespace: IPv6 and TX checksum offload off
// on both ends (so nothing but the client's and server's own frames cross,
// and those carry full checksums), no addresses, lo and both ends up.
func setupWire(w *Wire, ns netns.NsHandle) error {
	if err := InNetns(w.Netns, func() error {
		for _, ifc := range []string{w.ClientIface, w.ServerIface} {
			if err := disableIPv6(ifc); err != nil {
				return err
			}
			if err := disableTxChecksum(ifc); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("netns %s: %w", w.Netns, err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink handle in netns %s: %w", w.Netns, err)
	}
	defer h.Close()
	for _, ifc := range []string{"lo", w.ClientIface, w.ServerIface} {
		link, err := h.LinkByName(ifc)
		if err != nil {
			return fmt.Errorf("netns %s: find %s: %w", w.Netns, ifc, err)
		}
		if err := h.LinkSetUp(link); err != nil {
			return fmt.Errorf("netns %s: set %s up: %w", w.Netns, ifc, err)
		}
	}
	return nil
}
