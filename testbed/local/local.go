package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Roles of the two nodes.
const (
	RoleClient = "client"
	RoleServer = "server"
	// RoleWire is the emulated wire's namespace (Options.Wire).
	RoleWire = "wire"
)

const (
	// StateDir holds one <id>.json per testbed so that a later process
	// (`jrbench testbed down`, `status`) can find what an earlier one made.
	StateDir = "/run/jrbench/testbeds"

	// Name prefixes. Interface names are limited to 15 characters
	// (IFNAMSIZ-1), which is what bounds the id length.
	clientNetnsPrefix = "jr-client-"
	serverNetnsPrefix = "jr-server-"
	clientIfacePrefix = "jrc-"
	serverIfacePrefix = "jrs-"
	// The wire namespace (Options.Wire) and its two veth ends: jwc-<id>
	// faces the client, jws-<id> the server.
	wireNetnsPrefix       = "jr-wire-"
	wireClientIfacePrefix = "jwc-"
	wireServerIfacePrefix = "jws-"

	// MTU of the veth pair: a standard Ethernet frame, so results compare
	// with real NICs at their default MTU.
	MTU = 1500
)

// Addresses of the two ends, from the RFC 2544 benchmarking block
// 198.18.0.0/15. They are the same for every testbed: each testbed lives in
// its own pair of namespaces, so they never clash.
var (
	ClientAddr = netip.MustParsePrefix("198.18.0.1/24")
	ServerAddr = netip.MustParsePrefix("198.18.0.2/24")
)

// benchNet is the only range this package ever assigns.
var benchNet = netip.MustParsePrefix("198.18.0.0/15")

// idRE limits ids to what fits in an interface name ("jrc-" + 11 chars)
// and is safe in file names.
var idRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,10}$`)

// Node is one side of the testbed.
type Node struct {
	Role  string           // "client" or "server"
	Netns string           // e.g. "jr-client-<id>"
	Iface string           // veth end inside Netns, e.g. "jrc-<id>"
	Addr  netip.Prefix     // 198.18.0.1/24 (client), 198.18.0.2/24 (server)
	MAC   net.HardwareAddr // JSON: "aa:bb:cc:dd:ee:ff"
}

// nodeJSON is Node with the MAC as text: net.HardwareAddr is a []byte and
// would otherwise be encoded as base64.
type nodeJSON struct {
	Role  string       `json:"role"`
	Netns string       `json:"netns"`
	Iface string       `json:"iface"`
	Addr  netip.Prefix `json:"addr"`
	MAC   string       `json:"mac,omitempty"`
}

// MarshalJSON writes the MAC as "aa:bb:cc:dd:ee:ff".
func (n Node) MarshalJSON() ([]byte, error) {
	j := nodeJSON{Role: n.Role, Netns: n.Netns, Iface: n.Iface, Addr: n.Addr}
	if len(n.MAC) > 0 {
		j.MAC = n.MAC.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (n *Node) UnmarshalJSON(b []byte) error {
	var j nodeJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*n = Node{Role: j.Role, Netns: j.Netns, Iface: j.Iface, Addr: j.Addr}
	if j.MAC != "" {
		mac, err := net.ParseMAC(j.MAC)
		if err != nil {
			return fmt.Errorf("node %s: %w", j.Netns, err)
		}
		n.MAC = mac
	}
	return nil
}

// Testbed is a pair of namespaces joined by a veth pair.
type Testbed struct {
	ID     string `json:"id"`
	Client Node   `json:"client"`
	Server Node   `json:"server"`
	// Queues is the number of RX and TX queues of each veth end when more
	// than one (Options.Queues); 0 means one.
	Queues int `json:"queues,omitempty"`
	// Wire is the namespace between client and server (Options.Wire); nil
	// when the two are joined directly.
	Wire *Wire `json:"wire,omitempty"`
	// Owner is the process that made the testbed and will remove it; nil
	// for a detached one (Options.Detached).
	Owner *Owner `json:"owner,omitempty"`

	// Status is filled in by List and not stored: "up" (state file and
	// both namespaces present, its owner running or none), "abandoned"
	// (up, but the process that made it is gone: a run killed with
	// SIGKILL), "orphan" (namespaces without a state file, e.g. a process
	// killed during Up), or "stale" (state file whose namespaces are
	// gone).
	Status string `json:"-"`
}

// Options configure Up.
type Options struct {
	// ID names the testbed; empty picks 6 random hex characters. At most
	// 11 characters of [a-z0-9-], starting with a letter or digit.
	ID string
	// Queues is the number of RX and TX queues of each veth end, 1..MaxQueues;
	// 0 means 1. More than one is for a multi-queue generator (one DPDK
	// queue per core): a frame sent on one end's TX queue i arrives on the
	// other end's RX queue i, so the sender's queue choice decides which of
	// the receiver's queues (and so which XSK) sees it.
	Queues int
	// Wire puts a third namespace, jr-wire-<id>, between client and server:
	// client ⇄ veth ⇄ wire ⇄ veth ⇄ server, with no addresses in the wire
	// namespace. Nothing crosses until a forwarder runs there (cmd/jremu, an
	// emulated wire: delay, loss, rate limit); client and server keep the
	// same addresses and subnet, so ARP passes through the L2 forwarder.
	Wire bool
	// Detached makes a testbed meant to outlive the process that makes it
	// (jrbench testbed up): no owner is recorded, so it is never reported
	// abandoned; it stays until removed by id.
	Detached bool
}

// Wire is the emulated wire's namespace and its two interfaces.
type Wire struct {
	Netns       string `json:"netns"`        // jr-wire-<id>
	ClientIface string `json:"client_iface"` // jwc-<id>, peer of the client's interface
	ServerIface string `json:"server_iface"` // jws-<id>, peer of the server's interface
}

// Node returns the wire namespace as a Node (Role "wire", no address or
// interface), for Command and CommandWithBPFFS.
func (w *Wire) Node() Node { return Node{Role: RoleWire, Netns: w.Netns} }

func wireNames(id string) *Wire {
	return &Wire{Netns: wireNetnsPrefix + id, ClientIface: wireClientIfacePrefix + id, ServerIface: wireServerIfacePrefix + id}
}

// MaxQueues bounds Options.Queues: as many queue pairs as DPDK's vdevs open
// (dpdk.MaxVdevQueues).
const MaxQueues = 16

// queues is the veth's queue count the options ask for.
func (o Options) queues() (int, error) {
	switch {
	case o.Queues == 0:
		return 1, nil
	case o.Queues < 1 || o.Queues > MaxQueues:
		return 0, fmt.Errorf("invalid testbed queue count %d (allowed: 1..%d, or 0 for 1)", o.Queues, MaxQueues)
	}
	return o.Queues, nil
}

// names returns the testbed skeleton for id, before anything exists.
func names(id string) *Testbed {
	return &Testbed{
		ID: id,
		Client: Node{
			Role:  RoleClient,
			Netns: clientNetnsPrefix + id,
			Iface: clientIfacePrefix + id,
			Addr:  ClientAddr,
		},
		Server: Node{
			Role:  RoleServer,
			Netns: serverNetnsPrefix + id,
			Iface: serverIfacePrefix + id,
			Addr:  ServerAddr,
		},
	}
}

// ValidID reports whether id can name a testbed.
func ValidID(id string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("invalid testbed id %q: want 1-11 characters of [a-z0-9-] "+
			"(the interface name %s<id> must fit in 15 characters)", id, clientIfacePrefix)
	}
	return nil
}

func randomID() (string, error) {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random testbed id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// testHookUp, when set by tests, is called after each step of Up and can
// fail it, to check that Up undoes what it made.
var testHookUp func(step string) error

func hook(step string) error {
	if testHookUp == nil {
		return nil
	}
	return testHookUp(step)
}

func statePath(id string) string { return filepath.Join(StateDir, id+".json") }

// queues is the number of RX and TX queues of each veth end.
func (t *Testbed) queues() int { return max(t.Queues, 1) }

// Up creates a testbed: two namespaces, a veth pair between them with one
// RX and one TX queue per end (opts.Queues of each when set), addresses,
// links up, TX checksum offload off. On any error everything it created is
// removed again.
func Up(ctx context.Context, opts Options) (tb *Testbed, err error) {
	id := opts.ID
	if id == "" {
		if id, err = randomID(); err != nil {
			return nil, err
		}
	}
	if err := ValidID(id); err != nil {
		return nil, err
	}
	nq, err := opts.queues()
	if err != nil {
		return nil, err
	}
	t := names(id)
	if nq > 1 {
		t.Queues = nq
	}
	if opts.Wire {
		t.Wire = wireNames(id)
	}
	if !opts.Detached {
		t.Owner = currentOwner()
	}
	for _, a := range []netip.Prefix{t.Client.Addr, t.Server.Addr} {
		if !benchNet.Contains(a.Addr()) {
			// Guard against someone editing the constants.
			return nil, fmt.Errorf("address %s outside %s", a, benchNet)
		}
	}

	// Refuse to reuse an id: tearing down on error must never remove
	// something another run owns.
	if _, err := os.Stat(statePath(id)); err == nil {
		return nil, fmt.Errorf("testbed %s already exists (%s)", id, statePath(id))
	}
	for _, ns := range t.netnsNames() {
		if netnsExists(ns) {
			return nil, fmt.Errorf("testbed %s: netns %s already exists", id, ns)
		}
	}

	// Undo in reverse order on failure. Only things this call created are
	// on the list.
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()

	if err := prepareNetnsDir(); err != nil {
		return nil, fmt.Errorf("testbed %s: %w", id, err)
	}
	handles := map[string]netns.NsHandle{}
	defer func() {
		for _, h := range handles {
			h.Close()
		}
	}()
	for _, n := range []*Node{&t.Client, &t.Server} {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("testbed %s: %w", id, err)
		}
		if err := createNetns(n.Netns); err != nil {
			return nil, fmt.Errorf("testbed %s: %w", id, err)
		}
		name := n.Netns
		undo = append(undo, func() { _ = deleteNetns(name) })
		h, err := netns.GetFromName(n.Netns)
		if err != nil {
			return nil, fmt.Errorf("testbed %s: open netns %s: %w", id, n.Netns, err)
		}
		handles[n.Netns] = h
	}
	if t.Wire != nil {
		if err := createNetns(t.Wire.Netns); err != nil {
			return nil, fmt.Errorf("testbed %s: %w", id, err)
		}
		name := t.Wire.Netns
		undo = append(undo, func() { _ = deleteNetns(name) })
		h, err := netns.GetFromName(name)
		if err != nil {
			return nil, fmt.Errorf("testbed %s: open netns %s: %w", id, name, err)
		}
		handles[name] = h
	}
	if err := hook("netns"); err != nil {
		return nil, fmt.Errorf("testbed %s: %w", id, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("testbed %s: %w", id, err)
	}

	if t.Wire == nil {
		if err := createVeth(t, handles[t.Client.Netns], handles[t.Server.Netns]); err != nil {
			return nil, fmt.Errorf("testbed %s: %w", id, err)
		}
	} else if err := createWireVeths(t, handles); err != nil {
		return nil, fmt.Errorf("testbed %s: %w", id, err)
	}
	// The veth goes away with its namespaces; deleting them is enough.
	if err := hook("veth"); err != nil {
		return nil, fmt.Errorf("testbed %s: %w", id, err)
	}

	for _, n := range []*Node{&t.Client, &t.Server} {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("testbed %s: %w", id, err)
		}
		if err := setupNode(n, handles[n.Netns], t.queues()); err != nil {
			return nil, fmt.Errorf("testbed %s: %w", id, err)
		}
	}

	if t.Wire != nil {
		if err := setupWire(t.Wire, handles[t.Wire.Netns]); err != nil {
			return nil, fmt.Errorf("testbed %s: %w", id, err)
		}
	}
	if err := hook("setup"); err != nil {
		return nil, fmt.Errorf("testbed %s: %w", id, err)
	}
	if err := writeState(t); err != nil {
		return nil, fmt.Errorf("testbed %s: %w", id, err)
	}
	t.Status = "up"
	return t, nil
}

// createVeth makes the pair directly inside the two namespaces, so the root
// namespace never sees it (no name clash with the host, nothing to leak
// there if we die half-way).
func createVeth(t *Testbed, clientNs, serverNs netns.NsHandle) error {
	h, err := netlink.NewHandleAt(clientNs)
	if err != nil {
		return fmt.Errorf("netlink handle in netns %s: %w", t.Client.Netns, err)
	}
	defer h.Close()

	la := netlink.NewLinkAttrs()
	la.Name = t.Client.Iface
	la.MTU = MTU
	// One queue pair per end by default: DPDK's net_af_xdp binds queue 0,
	// and with more queues the kernel would spread traffic over queues the
	// XSK never sees. A multi-queue testbed is for users that bind every
	// queue (one XSK per queue); both ends get the same count, which veth
	// also requires for XDP (no fewer RX queues than the peer's TX queues).
	nq := t.queues()
	la.NumTxQueues = nq
	la.NumRxQueues = nq
	veth := netlink.NewVeth(la)
	veth.PeerName = t.Server.Iface
	veth.PeerNamespace = netlink.NsFd(int(serverNs))
	veth.PeerMTU = MTU
	veth.PeerNumTxQueues = uint32(nq)
	veth.PeerNumRxQueues = uint32(nq)
	if err := h.LinkAdd(veth); err != nil {
		return fmt.Errorf("create veth %s (netns %s) <-> %s (netns %s): %w",
			t.Client.Iface, t.Client.Netns, t.Server.Iface, t.Server.Netns, err)
	}
	return nil
}

// setupNode configures one end inside its namespace: IPv6 off on the veth,
// TX checksum offload off, address, lo and veth up; then reads back the
// MAC and checks that the end has nq RX and TX queues.
func setupNode(n *Node, ns netns.NsHandle, nq int) error {
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink handle in netns %s: %w", n.Netns, err)
	}
	defer h.Close()

	// Thread-bound settings first, while the link is still down so that no
	// IPv6 DAD/router-solicitation/MLD packet ever appears on the wire: a
	// load generator counting received frames must see only its own.
	if err := InNetns(n.Netns, func() error {
		if err := disableIPv6(n.Iface); err != nil {
			return err
		}
		return disableTxChecksum(n.Iface)
	}); err != nil {
		return fmt.Errorf("netns %s: %w", n.Netns, err)
	}

	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("netns %s: find lo: %w", n.Netns, err)
	}
	// lo up: servers bound to 127.0.0.1 and local control traffic work as
	// in a normal host.
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("netns %s: set lo up: %w", n.Netns, err)
	}

	link, err := h.LinkByName(n.Iface)
	if err != nil {
		return fmt.Errorf("netns %s: find %s: %w", n.Netns, n.Iface, err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{
		IP:   n.Addr.Addr().AsSlice(),
		Mask: net.CIDRMask(n.Addr.Bits(), n.Addr.Addr().BitLen()),
	}}
	if err := h.AddrAdd(link, addr); err != nil {
		return fmt.Errorf("netns %s: add %s to %s: %w", n.Netns, n.Addr, n.Iface, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("netns %s: set %s up: %w", n.Netns, n.Iface, err)
	}

	link, err = h.LinkByName(n.Iface)
	if err != nil {
		return fmt.Errorf("netns %s: re-read %s: %w", n.Netns, n.Iface, err)
	}
	a := link.Attrs()
	if a.NumTxQueues != nq || a.NumRxQueues != nq {
		return fmt.Errorf("netns %s: %s has %d TX / %d RX queues, want %d/%d",
			n.Netns, n.Iface, a.NumTxQueues, a.NumRxQueues, nq, nq)
	}
	n.MAC = append(net.HardwareAddr(nil), a.HardwareAddr...)
	return nil
}

// disableIPv6 turns IPv6 off on iface in the calling thread's namespace
// (/proc/sys/net is per namespace of the opening thread). A kernel without
// IPv6 has nothing to disable.
func disableIPv6(iface string) error {
	p := filepath.Join("/proc/sys/net/ipv6/conf", iface, "disable_ipv6")
	if _, err := os.Stat("/proc/sys/net/ipv6"); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := os.WriteFile(p, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("disable IPv6 on %s: %w", iface, err)
	}
	return nil
}

func writeState(t *Testbed) error {
	if err := os.MkdirAll(StateDir, 0o755); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	// Write then rename so a concurrent List never reads half a file.
	tmp, err := os.CreateTemp(StateDir, "."+t.ID+".*.tmp")
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	_, werr := tmp.Write(append(b, '\n'))
	cerr := tmp.Close()
	if werr != nil || cerr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write state %s: %w", tmp.Name(), errors.Join(werr, cerr))
	}
	if err := os.Rename(tmp.Name(), statePath(t.ID)); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

func readState(id string) (*Testbed, error) {
	b, err := os.ReadFile(statePath(id))
	if err != nil {
		return nil, err
	}
	var t Testbed
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("decode %s: %w", statePath(id), err)
	}
	return &t, nil
}

// Down removes the testbed: the veth pair, both namespaces and the state
// file. Missing pieces are skipped, so calling it twice is fine.
//
// Processes still running inside the namespaces are not killed (they are
// the caller's); they keep the namespace alive, invisible, until they
// exit, but the veth is deleted explicitly so the wire is gone at once.
func (t *Testbed) Down() error {
	var errs []error
	nodes := []Node{t.Client, t.Server}
	if t.Wire != nil {
		// The wire's namespace goes first, with its two ends (which
		// deletes their peers in client and server too).
		w := t.Wire
		if strings.HasPrefix(w.Netns, wireNetnsPrefix) {
			if netnsExists(w.Netns) {
				for _, ifc := range []string{w.ClientIface, w.ServerIface} {
					if ifc != "" {
						if err := deleteLinkIn(w.Netns, ifc); err != nil {
							errs = append(errs, err)
						}
					}
				}
			}
			if err := deleteNetns(w.Netns); err != nil {
				errs = append(errs, fmt.Errorf("testbed %s: %w", t.ID, err))
			}
		} else if w.Netns != "" {
			errs = append(errs, fmt.Errorf("testbed %s: refusing to delete netns %q (not jr-wire-*)", t.ID, w.Netns))
		}
	}
	for _, n := range nodes {
		if n.Netns == "" {
			continue
		}
		// Never delete a namespace this package would not have created,
		// whatever a (hand-edited) state file says.
		if !strings.HasPrefix(n.Netns, clientNetnsPrefix) && !strings.HasPrefix(n.Netns, serverNetnsPrefix) {
			errs = append(errs, fmt.Errorf("testbed %s: refusing to delete netns %q (not jr-client-*/jr-server-*)", t.ID, n.Netns))
			continue
		}
		if netnsExists(n.Netns) && n.Iface != "" {
			if err := deleteLinkIn(n.Netns, n.Iface); err != nil {
				errs = append(errs, err)
			}
		}
		if err := deleteNetns(n.Netns); err != nil {
			errs = append(errs, fmt.Errorf("testbed %s: %w", t.ID, err))
		}
	}
	if t.ID != "" {
		if err := os.Remove(statePath(t.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("testbed %s: remove state: %w", t.ID, err))
		}
		if err := os.Remove(procsPath(t.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("testbed %s: remove process list: %w", t.ID, err))
		}
		removeRuntimeFiles(t.ID)
	}
	return errors.Join(errs...)
}

// RuntimeDirs are where processes of a testbed leave runtime files that
// outlive them when they are killed: DPDK's EAL (one directory per
// --file-prefix, which every role names "<role>-<testbed id>") and the run's
// control sockets.
var RuntimeDirs = []string{"/var/run/dpdk", "/run/dpdk"}

// removeRuntimeFiles removes what processes of testbed id left behind:
// <dir>/*-<id> under RuntimeDirs and /run/jrbench/<id>. A process killed
// with SIGKILL cannot clean up after itself; the testbed it ran in can.
func removeRuntimeFiles(id string) {
	if ValidID(id) != nil {
		return // never glob with an id that could match someone else's files
	}
	for _, d := range RuntimeDirs {
		matches, _ := filepath.Glob(filepath.Join(d, "*-"+id))
		for _, m := range matches {
			os.RemoveAll(m)
		}
	}
	os.RemoveAll(filepath.Join("/run/jrbench", id))
}

// deleteLinkIn deletes iface inside the named namespace (which deletes its
// veth peer too); a missing link is fine.
func deleteLinkIn(nsName, iface string) error {
	ns, err := netns.GetFromName(nsName)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("open netns %s: %w", nsName, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink handle in netns %s: %w", nsName, err)
	}
	defer h.Close()
	link, err := h.LinkByName(iface)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("netns %s: find %s: %w", nsName, iface, err)
	}
	if err := h.LinkDel(link); err != nil {
		return fmt.Errorf("netns %s: delete %s: %w", nsName, iface, err)
	}
	return nil
}

// DownID tears down testbed id, using its state file when there is one and
// the naming scheme otherwise (e.g. after a crash during Up). Unknown ids
// are not an error. Unlike Down, it first ends the processes still running in
// the testbed (SIGTERM, SIGKILL after 3 s): after a runner was killed, its
// jrapp, jrgen and joyrided are orphans nobody else will stop. Those Start
// recorded go first, each by PID and only if it is still the process that
// was started (same start time); then whatever else still runs in the
// testbed's namespaces (their children: memcached under jrapp, say), which
// nothing but the testbed's own roles ever enters.
func DownID(id string) error {
	// Looser than ValidID: orphaned namespaces found by List may carry
	// ids Up would not make; the id only has to be a safe file name.
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\x00") {
		return fmt.Errorf("invalid testbed id %q", id)
	}
	t, err := readState(id)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			// A corrupt state file must not keep the namespaces alive.
			t = names(id)
			t.findWire()
			t.stopProcesses()
			return errors.Join(err, t.Down())
		}
		t = names(id)
		t.findWire()
	}
	if t.ID != id {
		// The file is named by id; trust the name over its content.
		t.ID = id
	}
	t.stopProcesses()
	return t.Down()
}

// stopProcesses ends the processes Start recorded, then what still runs in
// the testbed's namespaces (only ever in jr-client-*/jr-server-*/jr-wire-*
// ones, as Down deletes).
func (t *Testbed) stopProcesses() {
	t.stopRecorded(3 * time.Second)
	if t.Wire != nil && strings.HasPrefix(t.Wire.Netns, wireNetnsPrefix) {
		// The wire first: its forwarder holds both links' traffic.
		stopNetnsProcesses(t.Wire.Netns, 3*time.Second)
	}
	for _, n := range []Node{t.Client, t.Server} {
		if strings.HasPrefix(n.Netns, clientNetnsPrefix) || strings.HasPrefix(n.Netns, serverNetnsPrefix) {
			stopNetnsProcesses(n.Netns, 3*time.Second)
		}
	}
}

// findWire records the wire namespace of a testbed known only by its id
// (no state file) when one exists, so that DownID removes it too.
func (t *Testbed) findWire() {
	if t.Wire == nil && netnsExists(wireNetnsPrefix+t.ID) {
		t.Wire = wireNames(t.ID)
	}
}

// netnsNames lists the testbed's namespaces.
func (t *Testbed) netnsNames() []string {
	ns := []string{t.Client.Netns, t.Server.Netns}
	if t.Wire != nil {
		ns = append(ns, t.Wire.Netns)
	}
	return ns
}

// List returns the testbeds recorded in StateDir, plus namespaces named
// jr-client-*/jr-server-* that have no state file (Status "orphan"), sorted
// by id. For orphans, interfaces, addresses and MACs are read from the
// live namespaces where possible.
func List() ([]*Testbed, error) {
	byID := map[string]*Testbed{}
	var errs []error

	ents, err := os.ReadDir(StateDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", StateDir, err)
	}
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") {
			continue
		}
		id := strings.TrimSuffix(name, ".json")
		t, err := readState(id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		t.ID = id
		t.Status = "up"
		switch {
		case !netnsExists(t.Client.Netns) || !netnsExists(t.Server.Netns) || (t.Wire != nil && !netnsExists(t.Wire.Netns)):
			t.Status = "stale"
		case t.Abandoned():
			t.Status = "abandoned"
		}
		byID[id] = t
	}

	nsEnts, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", netnsDir, err)
	}
	for _, e := range nsEnts {
		var id string
		switch name := e.Name(); {
		case strings.HasPrefix(name, clientNetnsPrefix):
			id = strings.TrimPrefix(name, clientNetnsPrefix)
		case strings.HasPrefix(name, serverNetnsPrefix):
			id = strings.TrimPrefix(name, serverNetnsPrefix)
		case strings.HasPrefix(name, wireNetnsPrefix):
			id = strings.TrimPrefix(name, wireNetnsPrefix)
		default:
			continue
		}
		if id == "" || byID[id] != nil {
			continue
		}
		t := names(id)
		t.findWire()
		t.Status = "orphan"
		for _, n := range []*Node{&t.Client, &t.Server} {
			probe(n)
		}
		byID[id] = t
	}

	out := make([]*Testbed, 0, len(byID))
	for _, t := range byID {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, errors.Join(errs...)
}

// probe fills in what a live namespace says about n; fields it cannot
// confirm are cleared so status never shows a guess as fact.
func probe(n *Node) {
	iface := n.Iface
	n.Iface, n.Addr, n.MAC = "", netip.Prefix{}, nil
	if !netnsExists(n.Netns) {
		n.Netns = ""
		return
	}
	ns, err := netns.GetFromName(n.Netns)
	if err != nil {
		return
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return
	}
	defer h.Close()
	link, err := h.LinkByName(iface)
	if err != nil {
		return
	}
	n.Iface = iface
	n.MAC = link.Attrs().HardwareAddr
	addrs, err := h.AddrList(link, netlink.FAMILY_V4)
	if err != nil || len(addrs) == 0 {
		return
	}
	if ip, ok := netip.AddrFromSlice(addrs[0].IP.To4()); ok {
		ones, _ := addrs[0].Mask.Size()
		n.Addr = netip.PrefixFrom(ip, ones)
	}
}

// Command returns `ip netns exec <n.Netns> name args...`. The child runs in
// the node's namespace; note that `ip netns exec` also gives it a private
// mount namespace with a fresh /sys, so bpffs is not mounted there even
// when the host has it: use CommandWithBPFFS for af_xdp programs.
func (t *Testbed) Command(ctx context.Context, n Node, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Netns, name}, args...)...)
}

// bpffsShim mounts bpffs in the child's private /sys view, then execs the
// real program ("$@"), so the program keeps the same pid and signals.
const bpffsShim = `[ "$(stat -f -c %T ` + BPFFSPath + ` 2>/dev/null)" = bpf_fs ] || ` +
	`mount -t bpf bpf ` + BPFFSPath + ` || exit 126; exec "$@"`

// CommandWithBPFFS is Command for programs that need bpffs (DPDK's
// net_af_xdp via libxdp pins its XDP dispatcher there). The mount lives
// only in the child's mount namespace, which `ip netns exec` created, and
// disappears with it.
func (t *Testbed) CommandWithBPFFS(ctx context.Context, n Node, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Netns,
		"sh", "-c", bpffsShim, "jr-bpffs", name}, args...)...)
}
