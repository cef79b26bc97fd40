// Package local builds the single-machine testbed: two network namespaces
// joined by one veth pair.
//
// A network namespace is a private copy of the kernel's network stack
// (interfaces, addresses, routes, sockets). Putting the load generator in
// jr-client-<id> and the stack under test in jr-server-<id> gives each side
// its own stack on one machine, so traffic between them has to cross a real
// link instead of short-circuiting through loopback. A veth pair is that
// link: a virtual cable whose two ends live in different namespaces, and
// whose ends are ordinary netdevs that AF_XDP, AF_PACKET and DPDK's
// net_af_xdp / net_af_packet vdevs can attach to.
//
//	jr-client-<id>                          jr-server-<id>
//	  jrc-<id> 198.18.0.1/24  <== veth ==>  jrs-<id> 198.18.0.2/24
//
// With Options.Wire a third namespace sits in the middle, pure L2 (no
// addresses): jrc-<id> ⇄ jwc-<id> [jr-wire-<id>] jws-<id> ⇄ jrs-<id>. Nothing
// crosses until a forwarder runs there: cmd/jremu, the emulated wire of
// nic/emu (delay, loss, rate limit, ...), started with Command on Wire.Node().
//
// Addresses come from 198.18.0.0/15, which RFC 2544 reserves for network
// benchmarking: they are never routed on the Internet, so a misdirected
// packet cannot reach a real host. Nothing outside that block is ever
// assigned or targeted, and only inside namespaces this package created.
//
// Each testbed has a short id so that parallel runs and tests do not
// collide, and is recorded in /run/jrbench/testbeds/<id>.json so another
// process (jrbench testbed down) can find and remove it. The root namespace
// is never touched: the veth is created directly inside the two namespaces.
package local
