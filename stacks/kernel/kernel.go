// Package kernel is the baseline every other stack is measured against: the Linux
// kernel's own TCP/IP stack, reached through ordinary sockets in the server's
// network namespace. Every message costs system calls, copies between kernel and
// user space, and (on a VM) the wake-ups of a blocked thread.
package kernel

import (
	"context"
	"fmt"
	"image/color"
	"net"
	"syscall"

	"github.com/joyride-bench/joyride/stacks"
	"golang.org/x/sys/unix"
)

// Options configure the kernel stack.
type Options struct {
	// BusyPollUs sets SO_BUSY_POLL on sockets: the kernel spins this many
	// microseconds on the device queue before sleeping (0: off, the default).
	BusyPollUs int `yaml:"busy_poll_us" json:"busy_poll_us"`
}

// Validate checks the options.
func (o *Options) Validate() error {
	if o.BusyPollUs < 0 || o.BusyPollUs > 10000 {
		return fmt.Errorf("busy_poll_us %d is out of range (0..10000)", o.BusyPollUs)
	}
	return nil
}

func init() {
	stacks.Register(stacks.Factory{
		Name:       "kernel",
		Summary:    "the Linux kernel's TCP/IP stack through ordinary sockets",
		NewOptions: func() any { return &Options{} },
		// An unmodified program's sockets are already the kernel's; veth
		// and real NICs spread flows over their queues.
		Capabilities: []stacks.Capability{stacks.Preload, stacks.MultiInstance, stacks.PCIDevice, stacks.MultiQueue, stacks.Baseline},
		Display:      &stacks.Display{Color: color.RGBA{0x00, 0x72, 0xb2, 0xff}, Marker: stacks.MarkerCircle, Order: 1}, // Okabe–Ito blue
		Open: func(opts any, env stacks.Env) (stacks.Stack, error) {
			o := *opts.(*Options)
			if err := o.Validate(); err != nil {
				return nil, fmt.Errorf("kernel stack: %w", err)
			}
			return &Stack{opts: o}, nil
		},
	})
}

// Stack is the Linux stack of the current network namespace.
type Stack struct{ opts Options }

func (s *Stack) config() net.ListenConfig {
	return net.ListenConfig{Control: s.control}
}

// control applies socket options before bind.
func (s *Stack) control(network, address string, c syscall.RawConn) error {
	if s.opts.BusyPollUs == 0 {
		return nil
	}
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BUSY_POLL, s.opts.BusyPollUs)
	})
	if err != nil {
		return err
	}
	return serr
}

// Name implements stacks.Stack.
func (s *Stack) Name() string { return "kernel" }

// Listen implements stacks.Stack.
func (s *Stack) Listen(network, addr string) (net.Listener, error) {
	lc := s.config()
	return lc.Listen(context.Background(), network, addr)
}

// ListenPacket implements stacks.Stack.
func (s *Stack) ListenPacket(network, addr string) (net.PacketConn, error) {
	lc := s.config()
	return lc.ListenPacket(context.Background(), network, addr)
}

// Dial implements stacks.Stack.
func (s *Stack) Dial(network, addr string) (net.Conn, error) {
	d := net.Dialer{Control: s.control}
	return d.Dial(network, addr)
}

// Stats implements stacks.Stack: the kernel's counters are the interface's, read
// by the harness from outside; the stack itself reports none.
func (s *Stack) Stats() stacks.Stats { return stacks.Stats{} }

// Close implements stacks.Stack.
func (s *Stack) Close() error { return nil }
