// Package afxdp is the library-OS baseline: gVisor's TCP/IP stack linked into
// the application itself, fed by an AF_XDP socket on the server's interface.
// It is what kernel bypass looks like without a service (Junction, Demikernel,
// F-Stack): no IPC hop and no second process, but every application owns a NIC
// queue and carries its own stack. Next to Joyride it shows what the service
// design costs or gains, on the same wire and the same TCP/IP code
// (nic/netstack is shared with joyrided).
//
// A poller goroutine drives the stack: it polls the AF_XDP port (frames go
// through the stack in the poller's goroutine, gonet's sockets wake the
// application's goroutines), yields after every round so the application's
// goroutines run on the same core, and after Spin without work sleeps on the
// socket's file descriptor (it becomes readable when frames arrive) with a
// bounded timeout, so an idle application costs (almost) nothing.
//
// UDP sockets from ListenPacket go on the fast path below gVisor that joyrided
// uses too (netstack.FastPath, fastudp.go), unless the option fast_path is off:
// the two user-space stacks then differ by the service design, not by their
// packet path.
package afxdp

import (
	"context"
	"errors"
	"fmt"
	"image/color"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/joyride-bench/joyride/nic"
	nicafxdp "github.com/joyride-bench/joyride/nic/afxdp"
	"github.com/joyride-bench/joyride/nic/netstack"
	"github.com/joyride-bench/joyride/stacks"
	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// Options configure the AF_XDP stack.
type Options struct {
	// Queue is the interface queue the socket binds (default 0).
	Queue int `yaml:"queue" json:"queue"`
	// Mode is how the XDP program attaches: auto (native where the driver
	// can, else generic), native, generic.
	Mode string `yaml:"mode" json:"mode"`
	// ZeroCopy asks for zero-copy AF_XDP (the driver must support it).
	ZeroCopy bool `yaml:"zerocopy" json:"zerocopy"`
	// Spin is how long the poller polls after its last work before it sleeps,
	// e.g. "1ms" (default).
	Spin string `yaml:"spin" json:"spin"`
	// Profile is the NIC feature profile the socket's port is used under
	// (nic.Profiles: lcd, the default, or cx5): its ring size, and the
	// offloads the stack may see — as for joyrided's and the reflector's
	// DPDK ports, so that stacks compare under the same NIC.
	Profile string `yaml:"profile" json:"profile"`
	// FastPath is "on" (the default: UDP sockets from ListenPacket on the
	// fast path below gVisor) or "off" (every datagram through gVisor, for
	// comparison).
	FastPath string `yaml:"fast_path" json:"fast_path"`
}

// Validate checks the options.
func (o *Options) Validate() error {
	switch o.Mode {
	case "", "auto", "native", "generic":
	default:
		return fmt.Errorf("mode %q is not allowed (allowed: auto, native, generic)", o.Mode)
	}
	if o.Queue < 0 || o.Queue > 1023 {
		return fmt.Errorf("queue %d is out of range (0..1023)", o.Queue)
	}
	if o.Spin != "" {
		if d, err := time.ParseDuration(o.Spin); err != nil || d < 0 || d > time.Second {
			return fmt.Errorf("spin %q is not a duration in 0s..1s (e.g. 1ms)", o.Spin)
		}
	}
	switch o.FastPath {
	case "", "on", "off":
	default:
		return fmt.Errorf("fast_path %q is not allowed (allowed: on, off)", o.FastPath)
	}
	p, err := nic.LookupProfile(o.Profile)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	if o.Queue >= p.Queues {
		return fmt.Errorf("queue %d is not allowed by profile %s (%d queue(s))", o.Queue, p.Name, p.Queues)
	}
	return nil
}

func init() {
	stacks.Register(stacks.Factory{
		Name:       "afxdp",
		Summary:    "library OS: gVisor netstack inside the application over an AF_XDP socket",
		NewOptions: func() any { return &Options{Mode: "auto", Spin: "1ms", FastPath: "on"} },
		Lacks: map[stacks.Capability]string{
			stacks.Preload:       "its netstack lives inside a Go application; no shim puts a C program's sockets on it",
			stacks.MultiInstance: "a library OS owns the NIC queue: one application per queue (the density Joyride's service design allows and a library OS does not)",
			stacks.PCIDevice:     "it opens its own AF_XDP socket over an interface",
			stacks.MultiQueue:    "its socket is bound to one queue",
		},
		Display: &stacks.Display{Color: color.RGBA{0x00, 0x9e, 0x73, 0xff}, Marker: stacks.MarkerUp, Order: 2}, // Okabe–Ito bluish green
		Open: func(opts any, env stacks.Env) (stacks.Stack, error) {
			return Open(*opts.(*Options), env)
		},
	})
}

// Stack is a running library-OS stack.
type Stack struct {
	port  *nicafxdp.Port
	link  *netstack.Endpoint
	stack *stack.Stack
	fast  *netstack.FastPath // nil: fast_path off
	addr  netip.Addr
	spin  time.Duration

	stop   atomic.Bool
	done   chan struct{}
	closed sync.Once
}

// Open binds an AF_XDP socket to env.Iface and starts the stack over it.
func Open(o Options, env stacks.Env) (*Stack, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("afxdp stack: %w", err)
	}
	mode := o.Mode
	if mode == "" {
		mode = "auto"
	}
	profile, _ := nic.LookupProfile(o.Profile) // checked by Validate
	port, err := nicafxdp.Open(env.Iface, nicafxdp.Options{Queue: o.Queue, Mode: mode, ZeroCopy: o.ZeroCopy,
		RingSize: profile.Ring, Frames: max(4096, 4*profile.Ring)})
	if err != nil {
		return nil, fmt.Errorf("afxdp stack: %w", err)
	}
	// The stack sees the port as the profile allows it.
	link := netstack.New(nic.Restrict(port, profile), netstack.Options{})
	st, err := netstack.NewStack(link, env.Addr, netip.Addr{})
	if err != nil {
		port.Close()
		return nil, fmt.Errorf("afxdp stack: %w", err)
	}
	spin := time.Millisecond
	if o.Spin != "" {
		spin, _ = time.ParseDuration(o.Spin)
	}
	s := &Stack{port: port, link: link, stack: st, spin: spin, addr: env.Addr.Addr(), done: make(chan struct{})}
	if o.FastPath != "off" {
		s.fast = netstack.NewFastPath(link, st, env.Addr, netip.Addr{})
	}
	go s.poll()
	return s, nil
}

// poll drives the stack until Close (see the package comment).
func (s *Stack) poll() {
	defer close(s.done)
	s.link.SetSpinning(true)
	defer s.link.SetSpinning(false)
	last := time.Now()
	backoff := 20 * time.Microsecond
	fd := s.port.FD()
	for !s.stop.Load() {
		rx, tx := s.link.Poll()
		if rx+tx > 0 {
			last = time.Now()
			backoff = 20 * time.Microsecond
			runtime.Gosched()
			continue
		}
		if time.Since(last) < s.spin {
			// Let the application's goroutines (woken by this round) run.
			runtime.Gosched()
			continue
		}
		// Asleep, nothing flushes: transmits from the application leave at once.
		s.link.SetSpinning(false)
		if fd >= 0 {
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			ts := unix.NsecToTimespec(backoff.Nanoseconds())
			unix.Ppoll(pfd, &ts, nil)
		} else {
			time.Sleep(backoff)
		}
		s.link.SetSpinning(true)
		if backoff < time.Millisecond {
			backoff *= 2
		}
	}
}

// Name implements stacks.Stack.
func (s *Stack) Name() string { return "afxdp" }

func fullAddr(network, addr string) (tcpip.FullAddress, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		host, port, serr := net.SplitHostPort(addr)
		if serr != nil {
			return tcpip.FullAddress{}, err
		}
		p, perr := net.LookupPort(network, port)
		if perr != nil || host != "" {
			return tcpip.FullAddress{}, fmt.Errorf("address %q: want ip:port with an IPv4 address", addr)
		}
		ap = netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(p))
	}
	if !ap.Addr().Is4() {
		return tcpip.FullAddress{}, fmt.Errorf("address %q is not IPv4", addr)
	}
	fa := tcpip.FullAddress{Port: ap.Port()}
	if !ap.Addr().IsUnspecified() {
		fa.Addr = tcpip.AddrFrom4(ap.Addr().As4())
	}
	return fa, nil
}

func opErr(op, network, addr string, err error) error {
	return &net.OpError{Op: op, Net: network, Addr: &net.TCPAddr{}, Err: fmt.Errorf("%s: %w", addr, err)}
}

// Listen implements stacks.Stack (tcp, tcp4).
func (s *Stack) Listen(network, addr string) (net.Listener, error) {
	if network != "tcp" && network != "tcp4" {
		return nil, opErr("listen", network, addr, errors.New("the afxdp stack listens on tcp only"))
	}
	fa, err := fullAddr(network, addr)
	if err != nil {
		return nil, opErr("listen", network, addr, err)
	}
	return gonet.ListenTCP(s.stack, fa, ipv4.ProtocolNumber)
}

// ListenPacket implements stacks.Stack (udp, udp4).
func (s *Stack) ListenPacket(network, addr string) (net.PacketConn, error) {
	if network != "udp" && network != "udp4" {
		return nil, opErr("listen", network, addr, errors.New("the afxdp stack has udp packet sockets only"))
	}
	fa, err := fullAddr(network, addr)
	if err != nil {
		return nil, opErr("listen", network, addr, err)
	}
	gc, err := gonet.DialUDP(s.stack, &fa, nil, ipv4.ProtocolNumber)
	if err != nil || s.fast == nil || (fa.Addr.Len() == 4 && fa.Addr.As4() != s.addr.As4()) {
		return gc, err // a socket bound to an address that is not ours stays on gVisor
	}
	return newFastUDP(gc, s.fast, uint16(gc.LocalAddr().(*net.UDPAddr).Port)), nil
}

// Dial implements stacks.Stack.
func (s *Stack) Dial(network, addr string) (net.Conn, error) {
	fa, err := fullAddr(network, addr)
	if err != nil {
		return nil, opErr("dial", network, addr, err)
	}
	switch network {
	case "tcp", "tcp4":
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return gonet.DialContextTCP(ctx, s.stack, fa, ipv4.ProtocolNumber)
	case "udp", "udp4":
		return gonet.DialUDP(s.stack, nil, &fa, ipv4.ProtocolNumber)
	}
	return nil, opErr("dial", network, addr, errors.New("the afxdp stack dials tcp and udp"))
}

// Stats implements stacks.Stack.
func (s *Stack) Stats() stacks.Stats {
	st := s.link.Stats()
	out := stacks.Stats{RxPackets: st.RxFrames, TxPackets: st.TxFrames, Dropped: st.RxBad + st.TxRingFull + st.TxNoBuffer}
	if s.fast != nil {
		fs := s.fast.Stats()
		out.FastRx, out.FastTx = fs.RxDatagrams, fs.TxDatagrams
	}
	return out
}

// Close implements stacks.Stack: it stops the stack, then the poller, then
// releases the socket (which detaches the XDP program).
func (s *Stack) Close() error {
	var err error
	s.closed.Do(func() {
		s.stack.Close()
		s.stop.Store(true)
		<-s.done
		err = s.port.Close()
	})
	return err
}
