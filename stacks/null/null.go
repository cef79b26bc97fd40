// Package null is the floor of every measurement: a "stack" with no stack at all.
// A DPDK process owns the server's interface and bounces each UDP datagram straight
// back to its sender (Ethernet, IP and UDP source and destination swapped, in
// place, no copy), answering ARP so that peers can find it. What a client measures
// against it is the wire plus the load generator: any stack's latency above the
// null stack's is the cost of that stack.
//
// Swapping source and destination leaves the IPv4 and UDP checksums valid (a sum
// does not depend on the order of its terms), so the reflector touches only the
// bytes it swaps.
package null

import (
	"context"
	"errors"
	"fmt"
	"image/color"
	"net"
	"runtime"
	"sync/atomic"

	"github.com/joyride-bench/joyride/nic"
	"github.com/joyride-bench/joyride/nic/arp"
	"github.com/joyride-bench/joyride/nic/dpdk"
	"github.com/joyride-bench/joyride/stacks"
)

// Options configure the null stack.
type Options struct {
	// Driver is the DPDK vdev over the server's interface: af_xdp or af_packet.
	Driver string `yaml:"driver" json:"driver"`
	// Profile is the NIC profile the port is opened under (nic.Profiles:
	// lcd, the default, or cx5): its rings.
	Profile string `yaml:"profile" json:"profile,omitempty"`
	// Burst is the most frames handled per poll.
	Burst int `yaml:"burst" json:"burst"`
}

// Validate checks the options.
func (o *Options) Validate() error {
	switch o.Driver {
	case "af_xdp", "af_packet":
	default:
		return fmt.Errorf("driver %q is not allowed (allowed: af_xdp, af_packet)", o.Driver)
	}
	if o.Burst < 1 || o.Burst > nic.MaxBurst {
		return fmt.Errorf("burst %d is out of range (1..%d)", o.Burst, nic.MaxBurst)
	}
	_, err := nic.LookupProfile(o.Profile)
	return err
}

func init() {
	stacks.Register(stacks.Factory{
		Name:         "null",
		Summary:      "DPDK reflector: swaps addresses and sends each UDP frame back (the floor)",
		Protocols:    []string{"udp"}, // a reflector has no TCP: it would answer a SYN with the SYN
		NewOptions:   func() any { return &Options{Driver: "af_xdp", Burst: 32} },
		Capabilities: []stacks.Capability{stacks.Floor},
		Lacks: map[stacks.Capability]string{
			stacks.Preload:       "it reflects frames and has no sockets",
			stacks.MultiInstance: "it reflects frames: it has no application instances to multiply",
			stacks.PCIDevice:     "it opens its own vdev over an interface",
			stacks.MultiQueue:    "it polls one queue",
		},
		Display: &stacks.Display{Color: color.RGBA{0x77, 0x77, 0x77, 0xff}, Marker: stacks.MarkerCross, Order: 0}, // grey: the floor, not a contender
		Open: func(opts any, env stacks.Env) (stacks.Stack, error) {
			return Open(*opts.(*Options), env)
		},
	})
}

// Stack is the running reflector.
type Stack struct {
	port    *dpdk.Port
	bouncer *Bouncer
}

// Open starts DPDK on env.Iface with the chosen vdev.
func Open(o Options, env stacks.Env) (*Stack, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("null stack: %w", err)
	}
	cpu := 0
	if len(env.CPUs) > 0 {
		cpu = env.CPUs[0]
	}
	args, name, err := dpdk.VdevArgs(o.Driver, env.Iface, cpu, env.FilePrefix)
	if err != nil {
		return nil, fmt.Errorf("null stack: %w", err)
	}
	if err := dpdk.Init(args); err != nil {
		return nil, fmt.Errorf("null stack: %w", err)
	}
	profile, _ := nic.LookupProfile(o.Profile) // checked by Validate
	port, err := dpdk.OpenPort(name, dpdk.ProfileConfig(profile))
	if err != nil {
		dpdk.Cleanup()
		return nil, fmt.Errorf("null stack: %w", err)
	}
	return &Stack{port: port, bouncer: NewBouncer(port.MAC(), arp.New(port.MAC(), env.Addr.Addr()), o.Burst)}, nil
}

// Name implements stacks.Stack.
func (s *Stack) Name() string { return "null" }

// Listen implements stacks.Stack: the null stack has no sockets.
func (s *Stack) Listen(network, addr string) (net.Listener, error) { return nil, stacks.ErrNoSockets }

// ListenPacket implements stacks.Stack: the null stack has no sockets.
func (s *Stack) ListenPacket(network, addr string) (net.PacketConn, error) {
	return nil, stacks.ErrNoSockets
}

// Dial implements stacks.Stack: the null stack has no sockets.
func (s *Stack) Dial(network, addr string) (net.Conn, error) { return nil, stacks.ErrNoSockets }

// Stats implements stacks.Stack.
func (s *Stack) Stats() stacks.Stats { return s.bouncer.Stats() }

// Port is the DPDK port the reflector owns.
func (s *Stack) Port() *dpdk.Port { return s.port }

// Reflect implements stacks.Reflector: it busy-polls the port on a locked OS
// thread until ctx is done.
func (s *Stack) Reflect(ctx context.Context) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var stop atomic.Bool
	go func() { <-ctx.Done(); stop.Store(true) }()
	rx := nic.NewBatch(s.bouncer.burst)
	for !stop.Load() {
		s.bouncer.Burst(s.port, rx)
	}
	return nil
}

// Close implements stacks.Stack.
func (s *Stack) Close() error {
	return errors.Join(s.port.Close(), dpdk.Cleanup())
}

// Bouncer is the reflector's per-burst work, separate from the port's owner so it
// can run on any nic.Port.
type Bouncer struct {
	mac   net.HardwareAddr
	arp   *arp.Responder
	burst int
	out   *nic.Batch // frames going back
	drop  *nic.Batch // frames that are not ours to reflect
	one   *nic.Batch // ARP answers

	rx, tx, dropped atomic.Uint64
}

// NewBouncer reflects for the host mac, answering ARP with resp.
func NewBouncer(mac net.HardwareAddr, resp *arp.Responder, burst int) *Bouncer {
	return &Bouncer{mac: mac, arp: resp, burst: burst,
		out: nic.NewBatch(burst), drop: nic.NewBatch(burst), one: nic.NewBatch(1)}
}

// Stats are the frames seen, sent back and dropped.
func (b *Bouncer) Stats() stacks.Stats {
	return stacks.Stats{RxPackets: b.rx.Load(), TxPackets: b.tx.Load(), Dropped: b.dropped.Load()}
}

// Burst receives one burst into rx, reflects the UDP frames in place, answers ARP,
// and drops the rest. It returns the number of frames received.
func (b *Bouncer) Burst(port nic.Port, rx *nic.Batch) int {
	n := port.RxBurst(rx)
	if n == 0 {
		return 0
	}
	b.out.N, b.drop.N = 0, 0
	for i := 0; i < n; i++ {
		f := rx.Frames[i]
		dst := b.drop
		if swapUDP(f, b.mac) {
			dst = b.out
		} else if answer, _, _ := b.arp.Handle(f); answer != nil {
			arp.SendOne(port, b.one, answer)
		}
		dst.Frames[dst.N], dst.Handles[dst.N] = f, rx.Handles[i]
		dst.N++
	}
	rx.N = 0
	sent := port.TxBurst(b.out)
	dropped := b.drop.N
	port.Free(b.drop)
	b.rx.Add(uint64(n))
	b.tx.Add(uint64(sent))
	b.dropped.Add(uint64(dropped + (n - dropped - sent)))
	return n
}

// swapUDP turns an IPv4 UDP frame into its reply in place; false for other frames.
func swapUDP(f []byte, mac net.HardwareAddr) bool {
	if len(f) < 42 || f[12] != 0x08 || f[13] != 0x00 || f[14]>>4 != 4 || f[23] != 17 {
		return false
	}
	ihl := int(f[14]&0x0f) * 4
	if ihl < 20 || len(f) < 14+ihl+8 {
		return false
	}
	copy(f[0:6], f[6:12])
	copy(f[6:12], mac)
	var tmp [4]byte
	copy(tmp[:], f[26:30])
	copy(f[26:30], f[30:34])
	copy(f[30:34], tmp[:])
	u := 14 + ihl
	f[u], f[u+1], f[u+2], f[u+3] = f[u+2], f[u+3], f[u], f[u+1]
	return true
}
