// Command jrgen is the DPDK load generator: one point of UDP or TCP echo load
// from a DPDK port over a Linux interface (af_xdp or af_packet vdev), bounded
// in time. The runner starts it in the client's network namespace, pinned to
// its core. For UDP it resolves the server's MAC by ARP and offers open-loop
// load (loadgen.Run); for TCP (-protocol tcp) a client-side gVisor stack on
// the port (which does its own ARP, and answers it for -src) opens -conns
// connections and the load is spread over them (loadgen.RunTCP): open loop at
// -rate, or closed loop with -window requests outstanding per connection,
// requests of -size bytes or of sizes drawn from -sizes; with -app memcached,
// redis or http the requests are instead that application's (key-value gets
// and sets from the -mc-* flags, or GETs of -http-path), so that the unmodified
// server can be measured. -mode connect opens
// connections at -rate instead and records each one's setup time, and the time
// to the first byte of an echo on it (loadgen.RunConnect). It writes the
// latency interval log (HdrHistogram .hlog, nanoseconds, one histogram per
// -interval of scheduled send time) to -hlog (connect
// mode: the first-byte log next to it, x.ttfb.hlog), and prints the counters
// as one JSON object (loadgen.Result) on standard output. With -blast (UDP
// only) it measures the wire's packet-rate limit instead (loadgen.BlastResult).
//
// Exit status: 0 when the point ran (whatever it measured), 1 when it could not
// run, 2 for bad flags.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/joyride-bench/joyride/analysis"
	"github.com/joyride-bench/joyride/loadgen"
	"github.com/joyride-bench/joyride/nic/arp"
	"github.com/joyride-bench/joyride/nic/dpdk"
)

func main() {
	driver := flag.String("driver", "af_xdp", "DPDK vdev over -iface: af_xdp or af_packet")
	iface := flag.String("iface", "", "the client's network interface")
	cpu := flag.Int("cpu", 1, "EAL main lcore (the process is pinned by its parent)")
	prefix := flag.String("file-prefix", fmt.Sprintf("jrgen%d", os.Getpid()), "DPDK runtime file prefix")
	src := flag.String("src", "198.18.0.1", "the generator's IPv4 address")
	dst := flag.String("dst", "198.18.0.2", "the server's IPv4 address")
	port := flag.Int("port", 9000, "the server's UDP or TCP port")
	protocol := flag.String("protocol", "udp", "transport of the echo: udp or tcp")
	serviceSpec := flag.String("service", "", "synthetic requests: the service time each asks for, e.g. exponential:10us, constant:5us, bimodal:5us,100us,0.1, lognormal:10us,1.0 (size >= 26)")
	mode := flag.String("mode", "rpc", "rpc (requests and replies) or connect (open TCP connections at -rate per second and record each one's setup time)")
	conns := flag.Int("conns", 1, fmt.Sprintf("TCP connections, 1..%d: requests are spread over them round-robin (tcp only)", loadgen.MaxConns))
	rate := flag.Float64("rate", 10000, "offered load, requests/s")
	duration := flag.Duration("duration", 2*time.Second, "measured span (at most 10m)")
	warmup := flag.Duration("warmup", 500*time.Millisecond, "span before it, sent but not recorded")
	interval := flag.Duration("interval", loadgen.DefaultInterval, fmt.Sprintf("span of one histogram of the interval log, %v..%v in whole milliseconds (a point of more than %d intervals gets longer ones)", loadgen.MinInterval, loadgen.MaxInterval, loadgen.MaxIntervals))
	size := flag.Int("size", 64, "request (and reply) bytes: the UDP payload, or the TCP message (at least 18)")
	sizes := flag.String("sizes", "", "tcp only: draw each request's size (and its echo's) from a distribution instead of -size, e.g. uniform:64,4096, exponential:1024, bimodal:64,65536,0.1, lognormal:1024,1.0")
	appName := flag.String("app", "echo", "tcp only: the server's application protocol: echo (the generator's requests, echoed), memcached (gets and sets in memcached's text protocol), redis (GETs and SETs in RESP2) or http (HTTP/1.1 GETs of -http-path on keep-alive connections; a reply answers when its status is 200)")
	mcKeys := flag.Int("mc-keys", 10000, "memcached and redis: key space (every key is stored before the run)")
	mcPopularity := flag.String("mc-popularity", "zipf:0.99", "memcached and redis: key popularity, uniform or zipf:θ")
	mcGets := flag.Float64("mc-gets", 0.9, "memcached and redis: share of gets (the rest are sets)")
	mcValue := flag.Int("mc-value", 64, "memcached and redis: bytes of every value")
	httpPath := flag.String("http-path", "/", `http: the path every GET asks for ("/" followed by printable ASCII without spaces)`)
	ports := flag.Int("ports", 1, "tcp only: spread the connections over this many server ports, -port upward (one application instance on each)")
	window := flag.Int("window", 0, fmt.Sprintf("tcp only: closed loop with this many requests outstanding per connection, 1..%d (-rate and -schedule unused); 0 is open loop", loadgen.MaxWindow))
	schedule := flag.String("schedule", "poisson", "arrival process: poisson or constant")
	seed := flag.Uint64("seed", 1, "seed of the schedule")
	late := flag.Duration("late", 50*time.Microsecond, "a request sent this long after its time counts as late")
	hlog := flag.String("hlog", "", "write the latency interval log here")
	blast := flag.String("blast", "", "instead of load, send frames to the server as fast as the port takes them for -duration and print a loadgen.BlastResult: 'raw' (60-byte frames no stack answers: the wire's limit) or 'udp' (-size requests: against a reflector, the round-trip limit)")
	flag.Parse()

	fail := func(code int, format string, a ...any) {
		fmt.Fprintf(os.Stderr, "jrgen: "+format+"\n", a...)
		os.Exit(code)
	}
	srcIP, err := netip.ParseAddr(*src)
	if err != nil || !srcIP.Is4() {
		fail(2, "-src %q is not an IPv4 address", *src)
	}
	dstIP, err := netip.ParseAddr(*dst)
	if err != nil || !dstIP.Is4() {
		fail(2, "-dst %q is not an IPv4 address", *dst)
	}
	if !benchmarkNet.Contains(dstIP) && !dstIP.IsLoopback() {
		fail(2, "-dst %v is outside 198.18.0.0/15, the range reserved for benchmarking: refusing to send load there", dstIP)
	}
	if *port <= 0 || *port > 65535 {
		fail(2, "-port %d outside 1..65535", *port)
	}
	if *iface == "" {
		fail(2, "-iface is required")
	}
	service, err := loadgen.ParseService(*serviceSpec)
	if err != nil {
		fail(2, "-service: %v", err)
	}
	var sizeDist loadgen.SizeDist
	if *sizes != "" {
		if sizeDist, err = loadgen.ParseSize(*sizes); err != nil {
			fail(2, "-sizes: %v", err)
		}
	}
	if *protocol != "tcp" && (*sizes != "" || *window != 0 || *ports != 1) {
		fail(2, "-sizes, -window and -ports need -protocol tcp")
	}
	var memcached, redis *loadgen.MemcachedConfig
	var httpCfg *loadgen.HTTPConfig
	switch *appName {
	case "echo":
	case "memcached", "redis", "http":
		if *protocol != "tcp" || *mode != "rpc" {
			fail(2, "-app %s needs -protocol tcp and -mode rpc", *appName)
		}
		if *appName == "http" {
			httpCfg = &loadgen.HTTPConfig{Path: *httpPath}
			if err := httpCfg.Check(); err != nil {
				fail(2, "-http-path: %v", err)
			}
			break
		}
		kv := &loadgen.MemcachedConfig{Keys: *mcKeys, Popularity: *mcPopularity, GetFraction: *mcGets, ValueSize: *mcValue}
		if err := kv.Check(); err != nil {
			fail(2, "%v", err)
		}
		if *appName == "memcached" {
			memcached = kv
		} else {
			redis = kv
		}
	default:
		fail(2, "-app %q: allowed echo, memcached, redis, http", *appName)
	}
	if (redis != nil || httpCfg != nil) && service.Enabled() {
		fail(2, "-service asks the echo's synthetic requests for service times: not with -app %s", *appName)
	}
	if err := loadgen.CheckInterval(*interval); err != nil {
		fail(2, "-%v", err)
	}
	if *window < 0 || *window > loadgen.MaxWindow {
		fail(2, "-window %d outside 0..%d", *window, loadgen.MaxWindow)
	}
	switch *protocol {
	case "udp":
	case "tcp":
		if *blast != "" {
			fail(2, "-blast is UDP only: it cannot be used with -protocol tcp")
		}
		if *conns < 1 || *conns > loadgen.MaxConns {
			fail(2, "-conns %d outside 1..%d", *conns, loadgen.MaxConns)
		}
	default:
		fail(2, "-protocol %q: allowed udp, tcp", *protocol)
	}
	plan := checkQueues(*protocol, *mode, *blast, fail) // -queues, -cpus, -pci: multi.go
	args, name, err := plan.ealArgs(*driver, *iface, *cpu, *prefix)
	if err != nil {
		fail(2, "%v", err)
	}
	if err := dpdk.Init(args); err != nil {
		fail(1, "%v", err)
	}
	// From here on, failing must also release EAL's runtime files.
	plainFail := fail
	fail = func(code int, format string, a ...any) {
		dpdk.Cleanup()
		plainFail(code, format, a...)
	}
	p, err := dpdk.OpenPort(name, plan.portConfig())
	if err != nil {
		fail(1, "%v", err)
	}
	if *mode != "rpc" && *mode != "connect" {
		fail(2, "-mode %q: allowed rpc, connect", *mode)
	}
	if *mode == "connect" {
		res, err := loadgen.RunConnect(p, loadgen.Config{
			Flow:     loadgen.Flow{SrcIP: srcIP, DstIP: dstIP, DstPort: uint16(*port)},
			Schedule: *schedule, Rate: *rate, Duration: *duration, Warmup: *warmup, Seed: *seed, LateThreshold: *late,
			Interval: *interval})
		p.Close()
		if err != nil {
			fail(1, "%v", err)
		}
		finish(res, *hlog, fail)
		return
	}
	if *protocol == "tcp" {
		// The client stack resolves the server and answers ARP itself.
		res, err := loadgen.RunTCP(p, loadgen.TCPConfig{Config: loadgen.Config{
			Flow: loadgen.Flow{SrcIP: srcIP, DstIP: dstIP, DstPort: uint16(*port)},
			Size: *size, Schedule: *schedule, Rate: *rate, Duration: *duration, Warmup: *warmup,
			Seed: *seed, LateThreshold: *late, Service: service, Interval: *interval}, Conns: *conns, Window: *window, Sizes: sizeDist, Memcached: memcached, Redis: redis, HTTP: httpCfg, Ports: *ports})
		p.Close()
		if err != nil {
			fail(1, "%v", err)
		}
		finish(res, *hlog, fail)
		return
	}
	resp := arp.New(p.MAC(), srcIP)
	udp := plan.udpQueues(p, fail)
	mac, err := arp.Resolve(udp.ARPPort(), resp, dstIP, 5*time.Second)
	if err != nil {
		p.Close()
		fail(1, "%v", err)
	}
	if *blast != "" {
		if *duration > time.Minute {
			fail(2, "-duration %v: a blast lasts at most 1m", *duration)
		}
		var frame []byte
		switch *blast {
		case "raw":
			frame = loadgen.BlastFrame(p.MAC(), mac)
		case "udp":
			tmpl, err := loadgen.NewUDPTemplate(loadgen.Flow{SrcMAC: p.MAC(), DstMAC: mac, SrcIP: srcIP, DstIP: dstIP,
				SrcPort: 40000, DstPort: uint16(*port)}, *size)
			if err != nil {
				fail(2, "%v", err)
			}
			frame = tmpl.Write(make([]byte, tmpl.Len()), 0, 0, 0)
		default:
			fail(2, "-blast %q: allowed raw, udp", *blast)
		}
		res := loadgen.Blast(p, frame, *duration, 32)
		p.Close()
		out, _ := json.Marshal(res)
		fmt.Println(string(out))
		dpdk.Cleanup()
		return
	}
	cfg := loadgen.Config{
		Flow: loadgen.Flow{SrcMAC: p.MAC(), DstMAC: mac, SrcIP: srcIP, DstIP: dstIP,
			SrcPort: 40000, DstPort: uint16(*port)},
		Size: *size, Schedule: *schedule, Rate: *rate, Duration: *duration, Warmup: *warmup,
		Seed: *seed, LateThreshold: *late, Service: service, Interval: *interval,
	}
	res, err := udp.Run(resp, cfg)
	plan.closeExtra()
	p.Close()
	if err != nil {
		fail(1, "%v", err)
	}
	finish(res, *hlog, fail)
}

// finish writes the interval log (if asked), prints the counters and releases EAL.
func finish(res *loadgen.Result, hlog string, fail func(int, string, ...any)) {
	// The generator reports its own CPU use: a point where it ran out of CPU
	// measured the generator, not the stack.
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		res.CPUSeconds = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		res.MaxRSSKiB = ru.Maxrss // Linux reports KiB
	}
	if hlog != "" {
		logs := map[string][]*hdrhistogram.Histogram{hlog: res.Intervals}
		if res.FirstByte != nil {
			// Connect mode: the time to the first byte has a log of its own.
			logs[FirstByteHlog(hlog)] = res.FirstByte
		}
		for path, hs := range logs {
			if err := analysis.WriteFileAtomic(path, func(w io.Writer) error {
				return analysis.WriteHlog(w, res.Start, hs)
			}); err != nil {
				fail(1, "write %s: %v", path, err)
			}
		}
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	dpdk.Cleanup()
}

var benchmarkNet = netip.MustParsePrefix("198.18.0.0/15")

// FirstByteHlog is where a connect point's time-to-first-byte log goes, next
// to its setup-time log: x.hlog -> x.ttfb.hlog.
func FirstByteHlog(hlog string) string { return strings.TrimSuffix(hlog, ".hlog") + ".ttfb.hlog" }
