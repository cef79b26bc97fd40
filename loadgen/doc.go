// Package loadgen is the DPDK load generator's engine: it offers RPC load from
// a nic.Port and measures every request's latency.
//
// Open loop means requests leave at times drawn before the run (DrawSchedule),
// whatever the server does; a closed-loop client waits for replies and so slows
// down exactly when the server is slow, hiding the latency it should measure
// ("coordinated omission"). Each request carries its index; its latency is the
// reply's arrival time minus its *scheduled* send time, so a generator that falls
// behind its schedule shows up as latency and as a "late" count, never hidden.
// The TCP engine also offers a closed loop on purpose (Machnet's msg_gen: a
// window of requests outstanding per connection) to measure what throughput a
// stack sustains; its latency then runs from each request's issue.
//
// An engine runs in one goroutine (the UDP engine locked to its OS thread,
// pinned by the caller to a core of its own): it sends what is due, polls
// replies, and records latencies into an HdrHistogram per one-second interval.
// Time comes from the TSC, frames from templates built once with gopacket, so
// the packet path allocates nothing and makes one call into the port per burst.
// Several UDP engines, one per queue and core, split a schedule and merge their
// histograms (RunMulti), so the generator scales past one core.
//
// Requests are the generator's echo requests (18-byte header: magic, index,
// scheduled offset), synthetic ones (plus a service time for the server to
// spend), of fixed sizes or sizes drawn from a distribution; or, over TCP, an
// unmodified server's: memcached gets and sets (the text protocol, keys of a
// chosen popularity), the same key-value workload as redis GETs and SETs
// (RESP2), or HTTP/1.1 GETs of one path (nginx).
package loadgen
