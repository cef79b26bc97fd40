package spec

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/joyride-bench/joyride/internal/strictyaml"
	"github.com/joyride-bench/joyride/nic/dpdk/eal"
)

// Testbed is a parsed testbed file.
type Testbed struct {
	// Name names the testbed in results (meta.json) and messages.
	Name string `json:"name"`
	// Description is free text.
	Description string `json:"description,omitempty"`
	// File is the file the testbed was read from; "" for the built-in local.
	File string `json:"file,omitempty"`
	// Builtin is true for the built-in "local" testbed, whose namespaces and
	// interfaces are created for each run by package testbed/local.
	Builtin bool `json:"builtin,omitempty"`
	// Nodes are the machines, in file order.
	Nodes []Node `json:"nodes"`
}

// Role names.
const (
	RoleClient = "client"
	RoleServer = "server"
)

// Node is one machine of a testbed.
type Node struct {
	// Name identifies the node within the testbed ([a-z0-9-]).
	Name string `json:"name"`
	// Roles is client, server or both.
	Roles []string `json:"roles"`
	// SSH says how to reach a remote node; nil for a local one.
	SSH *SSH `json:"ssh,omitempty"`
	// Netns is the network namespace of a local node; "" for an SSH node.
	// For the built-in testbed it is a pattern with "<id>" standing for the
	// run's testbed id.
	Netns string `json:"netns,omitempty"`
	// NIC is the device the benchmark traffic uses.
	NIC NIC `json:"nic"`
	// IP is the node's benchmark address with its prefix length, inside
	// 198.18.0.0/15.
	IP netip.Prefix `json:"ip"`
	// MAC is the NIC's MAC address when given (nil otherwise: read from the
	// device at run time).
	MAC net.HardwareAddr `json:"mac,omitempty"`
	// Cores are the CPU numbers the node's roles may be pinned to; empty
	// means no pinning requested.
	Cores []int `json:"cores,omitempty"`
	// Hugepages is the number of hugepages (of the default size, 2 MiB on
	// x86) DPDK needs on the node; 0 runs DPDK with --no-huge.
	Hugepages int `json:"hugepages"`
}

// Has reports whether the node plays role.
func (n Node) Has(role string) bool { return slices.Contains(n.Roles, role) }

// Host key policies for SSH nodes.
const (
	// HostKeyStrict accepts only a host key already in the known_hosts file.
	HostKeyStrict = "strict"
	// HostKeyAcceptNew records the key of a host seen for the first time in
	// the known_hosts file and from then on accepts only that key (OpenSSH's
	// StrictHostKeyChecking=accept-new).
	HostKeyAcceptNew = "accept-new"
)

// SSH is how jrbench reaches a remote node.
type SSH struct {
	// Host is the node's name or address on the control network.
	Host string `json:"host"`
	// Port is the SSH port (default 22).
	Port int `json:"port"`
	// User is the login name.
	User string `json:"user"`
	// Key is the path of the (unencrypted) private key; "~/" is expanded and
	// a relative path is taken from the testbed file's directory.
	Key string `json:"key"`
	// KnownHosts is the known_hosts file host keys are checked against;
	// default DefaultKnownHosts().
	KnownHosts string `json:"known_hosts"`
	// HostKeyPolicy is HostKeyAcceptNew (the default) or HostKeyStrict.
	HostKeyPolicy string `json:"host_key_policy"`
}

// Addr is host:port.
func (s SSH) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// NIC is a DPDK port: a PCI device or a virtual device.
type NIC struct {
	// PCI is the device's PCI address, 0000:41:00.0; "" for a vdev.
	PCI string `json:"pci,omitempty"`
	// PMDArgs are device arguments appended to the PCI address in DPDK's
	// -a option (mprq_en=1,rxq_cqe_comp_en=0); only with PCI.
	PMDArgs string `json:"pmd_args,omitempty"`
	// Vdev is a DPDK virtual device, net_af_xdp0,iface=eth1; "" for PCI.
	Vdev string `json:"vdev,omitempty"`
	// Iface is the Linux interface of the device, when it has one (given,
	// or the iface= argument of the vdev); checks use it.
	Iface string `json:"iface,omitempty"`
}

// Device is what a role is given to attach a PCI NIC (jrgen's and
// joyrided's -pci, EAL's -a): the address with its PMD arguments; "" for a
// vdev, which the roles build themselves from its driver and interface.
func (n NIC) Device() string {
	if n.PCI == "" {
		return ""
	}
	return eal.PCIDevice(n.PCI, n.PMDArgs)
}

// Node returns the node that plays role (the first, there is exactly one
// in a valid testbed).
func (t *Testbed) Node(role string) *Node {
	for i := range t.Nodes {
		if t.Nodes[i].Has(role) {
			return &t.Nodes[i]
		}
	}
	return nil
}

// Local is the built-in testbed: the two namespaces of package
// testbed/local, created for each run. Its values mirror that package's.
func Local() *Testbed {
	return &Testbed{
		Name:        "local",
		Description: "two network namespaces on this machine joined by a veth pair (created per run)",
		Builtin:     true,
		Nodes: []Node{
			{
				Name:  "client",
				Roles: []string{RoleClient},
				Netns: "jr-client-<id>",
				NIC:   NIC{Vdev: "net_af_xdp0,iface=jrc-<id>", Iface: "jrc-<id>"},
				IP:    netip.MustParsePrefix("198.18.0.1/24"),
			},
			{
				Name:  "server",
				Roles: []string{RoleServer},
				Netns: "jr-server-<id>",
				NIC:   NIC{Vdev: "net_af_xdp0,iface=jrs-<id>", Iface: "jrs-<id>"},
				IP:    netip.MustParsePrefix("198.18.0.2/24"),
			},
		},
	}
}

// DefaultKnownHosts is the known_hosts file used when a node names none:
// jrbench/known_hosts under the user's configuration directory
// (os.UserConfigDir: $XDG_CONFIG_HOME or ~/.config on Linux). jrbench keeps
// its own file so that accept-new never edits ~/.ssh/known_hosts.
func DefaultKnownHosts() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		dir = filepath.Join(os.TempDir(), "jrbench-"+strconv.Itoa(os.Getuid()))
	}
	return filepath.Join(dir, "jrbench", "known_hosts")
}

// Problem is one thing wrong in a testbed file.
type Problem = strictyaml.Problem

// SpecError lists every problem found in a testbed file, one per line as
// "file:line: path: message".
type SpecError = strictyaml.Error

// Allowed keys, in the order messages list them.
var (
	topKeys  = []string{"name", "description", "nodes"}
	nodeKeys = []string{"name", "roles", "ssh", "netns", "nic", "ip", "mac", "cores", "hugepages"}
	sshKeys  = []string{"host", "port", "user", "key", "known_hosts", "host_key_policy"}
	nicKeys  = []string{"pci", "pmd_args", "vdev", "iface"}

	roles    = []string{RoleClient, RoleServer}
	policies = []string{HostKeyAcceptNew, HostKeyStrict}
)

// Limits.
const (
	MaxNodes     = 16
	MaxHugepages = 1 << 20
	MaxCore      = 4095
)

var (
	nameRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	pciRE     = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)
	vdevRE    = regexp.MustCompile(`^net_[a-z0-9_]+(,[A-Za-z0-9_]+=[^,\s]*)*$`)
	pmdArgsRE = regexp.MustCompile(`^[A-Za-z0-9_]+=[^,\s]*(,[A-Za-z0-9_]+=[^,\s]*)*$`)
	ifaceRE   = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)
	netnsRE   = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	hostRE    = regexp.MustCompile(`^[A-Za-z0-9.:_-]{1,253}$`)
	userRE    = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}$`)

	// benchNet is RFC 2544's block for network benchmarking.
	benchNet = netip.MustParsePrefix("198.18.0.0/15")
)

// Load returns the testbed named by ref: "local" (or "") is the built-in
// testbed; anything else is the path of a testbed file, read, parsed
// strictly, filled with defaults and validated. Problems in the file are
// returned together as a *SpecError.
func Load(ref string) (*Testbed, error) {
	if ref == "" || ref == "local" {
		return Local(), nil
	}
	data, err := os.ReadFile(ref)
	if err != nil {
		return nil, err
	}
	return Parse(ref, data)
}

// Parse is Load from bytes; file names the source in messages, and relative
// key paths are taken from its directory.
func Parse(file string, data []byte) (*Testbed, error) {
	p := &parser{dir: filepath.Dir(file)}
	t := p.document(data)
	if err := p.Err(file); err != nil {
		return nil, err
	}
	t.File = file
	return t, nil
}

// parser collects problems while walking the YAML tree.
type parser struct {
	strictyaml.Parser
	dir string // the file's directory, for relative key paths
}

func (p *parser) document(data []byte) *Testbed {
	root := p.Document(data, "empty file: a testbed needs name and nodes", "a testbed file")
	if root == nil {
		return nil
	}
	return p.testbed(root)
}

func (p *parser) testbed(root *yaml.Node) *Testbed {
	t := &Testbed{}
	m, ok := p.Mapping(root, "", topKeys)
	if !ok {
		return t
	}
	if n := m["name"]; n == nil {
		p.Add(root, "", "missing key \"name\" ([a-z0-9-], e.g. cloudlab)")
	} else if s, ok := p.Str(n, "name"); ok {
		if s == "local" {
			p.Add(n, "name", "\"local\" is the built-in testbed; choose another name")
		} else if !nameRE.MatchString(s) {
			p.Add(n, "name", "%q is not a valid name (allowed: lowercase letters, digits and -, at most 63)", s)
		}
		t.Name = s
	}
	if n := m["description"]; n != nil {
		t.Description, _ = p.Str(n, "description")
	}
	nodes := m["nodes"]
	if nodes == nil {
		p.Add(root, "", "missing key \"nodes\" (a list of nodes with roles client and server)")
		return t
	}
	seq, ok := p.Sequence(nodes, "nodes")
	if !ok {
		return t
	}
	if len(seq) == 0 || len(seq) > MaxNodes {
		p.Add(nodes, "nodes", "%d nodes (allowed: 1 to %d)", len(seq), MaxNodes)
	}
	names := strictyaml.Unique[string]{}
	ips := strictyaml.Unique[netip.Addr]{}
	for i, n := range seq {
		path := fmt.Sprintf("nodes[%d]", i)
		node, ok := p.node(n, path)
		if !ok {
			continue
		}
		if node.Name != "" {
			if prev, dup := names.Seen(node.Name, n); dup {
				p.Add(n, path+".name", "duplicate node name %q (first given at line %d)", node.Name, prev)
			}
		}
		if node.IP.IsValid() {
			if prev, dup := ips.Seen(node.IP.Addr(), n); dup {
				p.Add(n, path+".ip", "address %s already used by the node at line %d", node.IP.Addr(), prev)
			}
		}
		t.Nodes = append(t.Nodes, node)
	}
	for _, role := range roles {
		var with []string
		for _, n := range t.Nodes {
			if n.Has(role) {
				with = append(with, n.Name)
			}
		}
		switch {
		case len(with) == 0 && len(seq) > 0:
			p.Add(nodes, "nodes", "no node has role %q (exactly one must)", role)
		case len(with) > 1:
			p.Add(nodes, "nodes", "role %q is given to %d nodes (%s); exactly one node plays each role", role, len(with), strings.Join(with, ", "))
		}
	}
	return t
}

func (p *parser) node(n *yaml.Node, path string) (Node, bool) {
	var node Node
	m, ok := p.Mapping(n, path, nodeKeys)
	if !ok {
		return node, false
	}
	if v := m["name"]; v == nil {
		p.Add(n, path, "missing key \"name\"")
	} else if s, ok := p.Str(v, path+".name"); ok {
		if !nameRE.MatchString(s) {
			p.Add(v, path+".name", "%q is not a valid name (allowed: lowercase letters, digits and -)", s)
		}
		node.Name = s
	}
	if v := m["roles"]; v == nil {
		p.Add(n, path, "missing key \"roles\" (a list of: %s)", strings.Join(roles, ", "))
	} else if seq, ok := p.Sequence(v, path+".roles"); ok {
		if len(seq) == 0 {
			p.Add(v, path+".roles", "empty list (allowed: %s)", strings.Join(roles, ", "))
		}
		for i, r := range seq {
			var s string
			rp := fmt.Sprintf("%s.roles[%d]", path, i)
			if p.Enum(r, rp, roles, &s) {
				if slices.Contains(node.Roles, s) {
					p.Add(r, rp, "role %q given twice", s)
					continue
				}
				node.Roles = append(node.Roles, s)
			}
		}
	}
	switch sn, nn := m["ssh"], m["netns"]; {
	case sn != nil && nn != nil:
		p.Add(nn, path+".netns", "give ssh (a remote node) or netns (a namespace on this machine), not both")
		p.ssh(sn, path+".ssh") // for its own problems
	case sn != nil:
		node.SSH = p.ssh(sn, path+".ssh")
	case nn != nil:
		if s, ok := p.Str(nn, path+".netns"); ok {
			if !netnsRE.MatchString(s) {
				p.Add(nn, path+".netns", "%q is not a namespace name (allowed: letters, digits, _ . -)", s)
			}
			node.Netns = s
		}
	default:
		p.Add(n, path, "missing key \"ssh\" (host, user, key) or \"netns\": how jrbench reaches the node")
	}
	if v := m["nic"]; v == nil {
		p.Add(n, path, "missing key \"nic\" (pci with optional pmd_args, or vdev)")
	} else {
		node.NIC = p.nic(v, path+".nic")
	}
	if v := m["ip"]; v == nil {
		p.Add(n, path, "missing key \"ip\" (the benchmark address, in 198.18.0.0/15, e.g. 198.18.0.1/24)")
	} else if s, ok := p.Str(v, path+".ip"); ok {
		node.IP = p.ip(v, path+".ip", s)
	}
	if v := m["mac"]; v != nil {
		if s, ok := p.Str(v, path+".mac"); ok {
			mac, err := net.ParseMAC(s)
			if err != nil || len(mac) != 6 {
				p.Add(v, path+".mac", "%q is not a MAC address (expected six hex bytes, aa:bb:cc:dd:ee:ff)", s)
			} else {
				node.MAC = mac
			}
		}
	}
	if v := m["cores"]; v != nil {
		node.Cores = p.cores(v, path+".cores")
	}
	if v := m["hugepages"]; v != nil {
		if h, ok := p.Integer(v, path+".hugepages"); ok {
			if h < 0 || h > MaxHugepages {
				p.Add(v, path+".hugepages", "%d is out of range (0 to %d pages; 0 runs DPDK without hugepages)", h, MaxHugepages)
			} else {
				node.Hugepages = int(h)
			}
		}
	}
	return node, true
}

func (p *parser) ssh(n *yaml.Node, path string) *SSH {
	s := &SSH{Port: 22, HostKeyPolicy: HostKeyAcceptNew}
	m, ok := p.Mapping(n, path, sshKeys)
	if !ok {
		return s
	}
	if v := m["host"]; v == nil {
		p.Add(n, path, "missing key \"host\" (the node's name or address on the control network)")
	} else if h, ok := p.Str(v, path+".host"); ok {
		if !hostRE.MatchString(h) {
			p.Add(v, path+".host", "%q is not a host name or address", h)
		}
		s.Host = h
	}
	if v := m["user"]; v == nil {
		p.Add(n, path, "missing key \"user\" (the login name)")
	} else if u, ok := p.Str(v, path+".user"); ok {
		if !userRE.MatchString(u) {
			p.Add(v, path+".user", "%q is not a user name", u)
		}
		s.User = u
	}
	if v := m["key"]; v == nil {
		p.Add(n, path, "missing key \"key\" (the path of the private key, e.g. ~/.ssh/id_ed25519)")
	} else if k, ok := p.Str(v, path+".key"); ok {
		if k == "" {
			p.Add(v, path+".key", "empty path (give the private key file)")
		}
		s.Key = p.expand(k)
	}
	if v := m["port"]; v != nil {
		if port, ok := p.Integer(v, path+".port"); ok {
			if port < 1 || port > 65535 {
				p.Add(v, path+".port", "%d is out of range (1 to 65535)", port)
			} else {
				s.Port = int(port)
			}
		}
	}
	if v := m["known_hosts"]; v != nil {
		if k, ok := p.Str(v, path+".known_hosts"); ok && k != "" {
			s.KnownHosts = p.expand(k)
		}
	}
	p.Enum(m["host_key_policy"], path+".host_key_policy", policies, &s.HostKeyPolicy)
	if s.KnownHosts == "" {
		s.KnownHosts = DefaultKnownHosts()
	}
	return s
}

// expand turns "~/x" into $HOME/x and a relative path into one relative to
// the testbed file's directory.
func (p *parser) expand(path string) string {
	if rest, ok := strings.CutPrefix(path, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	if !filepath.IsAbs(path) {
		return filepath.Join(p.dir, path)
	}
	return path
}

func (p *parser) nic(n *yaml.Node, path string) NIC {
	var nic NIC
	m, ok := p.Mapping(n, path, nicKeys)
	if !ok {
		return nic
	}
	get := func(key string) (string, *yaml.Node) {
		v := m[key]
		if v == nil {
			return "", nil
		}
		s, _ := p.Str(v, path+"."+key)
		return s, v
	}
	pci, pn := get("pci")
	args, an := get("pmd_args")
	vdev, vn := get("vdev")
	iface, in := get("iface")
	switch {
	case pn != nil && vn != nil:
		p.Add(vn, path+".vdev", "give pci (a PCI device) or vdev (a DPDK virtual device), not both")
	case pn != nil:
		if !pciRE.MatchString(pci) {
			p.Add(pn, path+".pci", "%q is not a PCI address (expected domain:bus:device.function in lowercase hex, as lspci -D prints it: 0000:41:00.0)", pci)
		}
		nic.PCI = pci
		if an != nil {
			if !pmdArgsRE.MatchString(args) {
				p.Add(an, path+".pmd_args", "%q is not a list of PMD arguments (expected key=value[,key=value...], e.g. mprq_en=1,rxq_cqe_comp_en=0)", args)
			}
			nic.PMDArgs = args
		}
	case vn != nil:
		if an != nil {
			p.Add(an, path+".pmd_args", "pmd_args go with pci; put a vdev's arguments in the vdev string")
		}
		if !vdevRE.MatchString(vdev) {
			p.Add(vn, path+".vdev", "%q is not a DPDK vdev (expected net_<driver><n>[,key=value...], e.g. net_af_xdp0,iface=eth1)", vdev)
		}
		nic.Vdev = vdev
		for _, kv := range strings.Split(vdev, ",")[1:] {
			if v, ok := strings.CutPrefix(kv, "iface="); ok {
				nic.Iface = v
			}
		}
	default:
		p.Add(n, path, "missing key \"pci\" (with optional pmd_args) or \"vdev\"")
	}
	if in != nil {
		if !ifaceRE.MatchString(iface) {
			p.Add(in, path+".iface", "%q is not an interface name (1 to 15 of letters, digits, _ . -)", iface)
		} else if nic.Iface != "" && nic.Iface != iface {
			p.Add(in, path+".iface", "%q differs from the vdev's iface=%s", iface, nic.Iface)
		}
		nic.Iface = iface
	}
	return nic
}

func (p *parser) ip(n *yaml.Node, path, s string) netip.Prefix {
	var pfx netip.Prefix
	var err error
	if strings.Contains(s, "/") {
		pfx, err = netip.ParsePrefix(s)
	} else {
		var a netip.Addr
		if a, err = netip.ParseAddr(s); err == nil {
			pfx = netip.PrefixFrom(a, 24)
		}
	}
	switch {
	case err != nil || !pfx.Addr().Is4():
		p.Add(n, path, "%q is not an IPv4 address (expected e.g. 198.18.0.1/24; the prefix length defaults to 24)", s)
	case !benchNet.Contains(pfx.Addr()):
		p.Add(n, path, "%s is outside 198.18.0.0/15, the block reserved for benchmarking (RFC 2544); benchmark traffic goes nowhere else", pfx.Addr())
	case pfx.Bits() < 15 || pfx.Bits() > 30:
		p.Add(n, path, "prefix length /%d is out of range (/15 to /30)", pfx.Bits())
	case pfx.Addr() == pfx.Masked().Addr():
		p.Add(n, path, "%s is the network address of %s; give a host address", pfx.Addr(), pfx.Masked())
	default:
		return pfx
	}
	return netip.Prefix{}
}

func (p *parser) cores(n *yaml.Node, path string) []int {
	seq, ok := p.Sequence(n, path)
	if !ok {
		return nil
	}
	var cores []int
	for i, c := range seq {
		cp := fmt.Sprintf("%s[%d]", path, i)
		v, ok := p.Integer(c, cp)
		if !ok {
			continue
		}
		if v < 0 || v > MaxCore {
			p.Add(c, cp, "%d is out of range (CPU numbers 0 to %d)", v, MaxCore)
			continue
		}
		if slices.Contains(cores, int(v)) {
			p.Add(c, cp, "core %d given twice", v)
			continue
		}
		cores = append(cores, int(v))
	}
	return cores
}
