// Package spec reads testbed files: YAML descriptions of the machines an
// experiment runs on.
//
// A testbed is the set of nodes that play the two roles of every experiment:
// the client (the load generator, jrgen) and the server (the stack under test
// with its application). A testbed file says, for each node, how jrbench
// reaches it, which NIC the benchmark traffic uses, which addresses that
// traffic carries, which cores the roles may be pinned to and how many
// hugepages DPDK needs:
//
//	name: cloudlab
//	nodes:
//	  - name: node0
//	    roles: [client]
//	    ssh: {host: amd101.utah.cloudlab.us, user: alice, key: ~/.ssh/id_ed25519}
//	    nic: {pci: "0000:41:00.0", pmd_args: "mprq_en=1"}
//	    ip: 198.18.0.1/24
//	    cores: [2, 3, 4, 5]
//	    hugepages: 1024
//	  - name: node1
//	    roles: [server]
//	    ...
//
// A node is reached either over SSH (host, user and private key; port 22
// unless given; host keys checked against a known_hosts file, see
// [SSH.HostKeyPolicy]) or, on this machine, in a network namespace (netns).
//
// The NIC is either a PCI device, named by its address as lspci -D prints it
// (0000:41:00.0), with optional PMD arguments that DPDK appends to the device
// (-a 0000:41:00.0,mprq_en=1), or a DPDK virtual device given whole
// (net_af_xdp0,iface=eth1), which is what runs on machines without a
// DPDK-capable NIC.
//
// Benchmark addresses (ip) must lie in 198.18.0.0/15, the block RFC 2544
// reserves for network benchmarking, so that a misconfigured run cannot send
// traffic to a real host. The SSH host is the control network and may be any
// name or address.
//
// "local" is a built-in testbed that needs no file: two namespaces on this
// machine joined by a veth pair, created for each run by package
// testbed/local. Load("local") returns it.
//
// Parsing is strict, as for experiment files: an unknown key, a wrong type or
// an impossible value is an error that names the file, the line, the key and
// what is allowed, and every problem of a file is reported at once.
package spec
