package spec

import (
	"errors"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLoadGood(t *testing.T) {
	tb, err := Load("testdata/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if tb.Name != "two-nodes" || len(tb.Nodes) != 2 || tb.Builtin {
		t.Fatalf("got %+v", tb)
	}
	c, s := tb.Node(RoleClient), tb.Node(RoleServer)
	if c == nil || s == nil || c.Name != "node0" || s.Name != "node1" {
		t.Fatalf("roles: client %v server %v", c, s)
	}
	// Defaults and resolution.
	if c.SSH.Port != 22 || c.SSH.HostKeyPolicy != HostKeyAcceptNew || c.SSH.KnownHosts != DefaultKnownHosts() {
		t.Errorf("client ssh defaults: %+v", c.SSH)
	}
	if want := filepath.Join("testdata", "keys", "id_ed25519"); c.SSH.Key != want {
		t.Errorf("relative key resolved to %q, want %q", c.SSH.Key, want)
	}
	if s.SSH.Port != 2222 || s.SSH.HostKeyPolicy != HostKeyStrict || s.SSH.KnownHosts != "/tmp/kh" || s.SSH.Addr() != "10.10.1.2:2222" {
		t.Errorf("server ssh: %+v", s.SSH)
	}
	if got := c.NIC.Device(); got != "0000:41:00.0,mprq_en=1,rxq_cqe_comp_en=0" {
		t.Errorf("client device %q", got)
	}
	if s.NIC.Iface != "eth1" || s.NIC.Vdev != "net_af_xdp0,iface=eth1" || s.NIC.Device() != "" {
		t.Errorf("server nic %+v", s.NIC)
	}
	if c.IP != netip.MustParsePrefix("198.18.0.1/24") || s.IP != netip.MustParsePrefix("198.18.0.2/24") {
		t.Errorf("ips %v %v", c.IP, s.IP)
	}
	if c.MAC.String() != "0c:42:a1:00:00:01" || !slices.Equal(c.Cores, []int{2, 3, 4, 5}) || c.Hugepages != 1024 || s.Hugepages != 0 {
		t.Errorf("client %+v", c)
	}
}

func TestOneNodeBothRoles(t *testing.T) {
	tb, err := Load("testdata/good-both-roles.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n := tb.Nodes[0]
	if tb.Node(RoleClient) != tb.Node(RoleServer) || n.Netns != "jr-standin" || n.SSH != nil || n.NIC.Iface != "veth1" || n.IP.String() != "198.19.255.1/16" {
		t.Fatalf("%+v", n)
	}
}

func TestLocalIsBuiltin(t *testing.T) {
	for _, ref := range []string{"local", ""} {
		tb, err := Load(ref)
		if err != nil {
			t.Fatal(err)
		}
		if !tb.Builtin || tb.Name != "local" || tb.Node(RoleClient).IP.Addr().String() != "198.18.0.1" || tb.Node(RoleServer).IP.Addr().String() != "198.18.0.2" {
			t.Fatalf("%q: %+v", ref, tb)
		}
	}
}

func TestBadFiles(t *testing.T) {
	for file, want := range map[string][]string{
		"unknown-key.yaml": {`unknown-key.yaml:8: nodes[0]: unknown key "hugepage" (allowed: name, roles, ssh, netns, nic, ip, mac, cores, hugepages)`},
		"bad-values.yaml": {
			`bad-values.yaml:5: nodes[0].ssh: missing key "key"`,
			`bad-values.yaml:6: nodes[0].nic.pci: "41:00.0" is not a PCI address`,
			`bad-values.yaml:7: nodes[0].ip: 10.0.0.1 is outside 198.18.0.0/15`,
			`bad-values.yaml:8: nodes[0].cores[1]: core 1 given twice`,
			`bad-values.yaml:8: nodes[0].cores[2]: -2 is out of range`,
			`bad-values.yaml:9: nodes[0].hugepages: expected an integer, got "many"`,
			`bad-values.yaml:11: nodes[1].roles[1]: "router" is not allowed (allowed: client, server)`,
			`bad-values.yaml:12: nodes[1].netns: give ssh (a remote node) or netns`,
			`bad-values.yaml:13: nodes[1].ssh.port: 70000 is out of range (1 to 65535)`,
			`bad-values.yaml:13: nodes[1].ssh.host_key_policy: "yolo" is not allowed (allowed: accept-new, strict)`,
			`bad-values.yaml:14: nodes[1].nic.vdev: give pci (a PCI device) or vdev`,
			`bad-values.yaml:16: nodes[1].mac: "zz" is not a MAC address`,
		},
		"two-clients.yaml": {
			`two-clients.yaml:3: nodes: no node has role "server"`,
			`two-clients.yaml:3: nodes: role "client" is given to 2 nodes (a, a)`,
			`two-clients.yaml:8: nodes[1].name: duplicate node name "a"`,
			`two-clients.yaml:8: nodes[1].ip: address 198.18.0.1 already used`,
			`two-clients.yaml:11: nodes[1].nic.pmd_args: pmd_args go with pci`,
		},
		"wrong-type.yaml": {`wrong-type.yaml:3: nodes: expected a list, got a mapping`},
	} {
		_, err := Load(filepath.Join("testdata", file))
		var se *SpecError
		if !errors.As(err, &se) {
			t.Errorf("%s: got %v, want a *SpecError", file, err)
			continue
		}
		msg := strings.ReplaceAll(err.Error(), "testdata/", "")
		for _, w := range want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: error does not contain\n\t%s\ngot:\n%s", file, w, msg)
			}
		}
	}
}

func TestParseMessages(t *testing.T) {
	for src, want := range map[string]string{
		"":                         "x.yaml: empty file",
		"name: a\nnodes: [\n":      "x.yaml:2: invalid YAML",
		"name: local\nnodes: []\n": `x.yaml:1: name: "local" is the built-in testbed`,
		"nodes: []\n":              `x.yaml:1: missing key "name"`,
		"name: a\n---\nname: b\n":  "a second YAML document",
		"name: a\nnodes:\n - name: n\n   roles: [client, server]\n   netns: x\n   nic: {vdev: af_xdp}\n   ip: 198.18.0.0/24\n": `x.yaml:6: nodes[0].nic.vdev: "af_xdp" is not a DPDK vdev`,
	} {
		_, err := Parse("x.yaml", []byte(src))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", src, err, want)
		}
	}
	_, err := Parse("x.yaml", []byte("name: a\nnodes:\n - name: n\n   roles: [client, server]\n   netns: x\n   nic: {vdev: net_null0}\n   ip: 198.18.0.0/24\n"))
	if err == nil || !strings.Contains(err.Error(), "x.yaml:7: nodes[0].ip: 198.18.0.0 is the network address") {
		t.Errorf("network address: %v", err)
	}
}
