// Package stacks is what an application sees of a network stack, and the registry
// that lets an experiment pick one by name.
//
// A Stack hands out the standard library's types (net.Listener, net.PacketConn,
// net.Conn), so the same application code (cmd/jrapp) runs unchanged on the Linux
// kernel, on Joyride, or on a library OS: that is the compatibility story inside Go.
// A stack with no sockets at all, such as the null reflector that bounces frames
// straight off the NIC, implements Reflector instead and fails the socket calls
// with ErrNoSockets.
//
// Each implementation registers a Factory in its init function with a typed options
// struct; experiment files name the stack and give options, and unknown names or
// unknown options are errors that list what is allowed.
package stacks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// Stack is a network stack as an application uses it.
type Stack interface {
	// Name is the registered name ("kernel", "null", ...).
	Name() string
	// Listen opens a stream listener ("tcp", "tcp4") on addr.
	Listen(network, addr string) (net.Listener, error)
	// ListenPacket opens a datagram socket ("udp", "udp4") on addr.
	ListenPacket(network, addr string) (net.PacketConn, error)
	// Dial opens a connection to addr.
	Dial(network, addr string) (net.Conn, error)
	// Stats are the stack's own counters (what it can see).
	Stats() Stats
	// Close releases the stack; sockets it handed out stop working.
	Close() error
}

// Preloader is implemented by stacks that can host an unmodified program (a
// C server from the distribution): PreloadEnv is the environment that puts the
// program's sockets on this stack. The kernel needs none; Joyride's is its
// preload shim (LD_PRELOAD, shim/).
type Preloader interface {
	PreloadEnv() ([]string, error)
}

// Reflector is implemented by stacks that serve without sockets: Reflect bounces
// traffic until ctx is done.
type Reflector interface {
	Reflect(ctx context.Context) error
}

// ErrNoSockets is returned by the socket calls of a stack that only reflects.
var ErrNoSockets = errors.New("stack has no sockets: it only reflects frames")

// Stats are a stack's counters; fields a stack cannot see stay zero.
type Stats struct {
	RxPackets uint64 `json:"rx_packets"`
	TxPackets uint64 `json:"tx_packets"`
	Dropped   uint64 `json:"dropped"`
	// FastRx and FastTx count the datagrams a user-space stack carried on
	// its fast path below the TCP/IP stack (netstack.FastPath); 0 otherwise.
	FastRx uint64 `json:"fast_rx,omitempty"`
	FastTx uint64 `json:"fast_tx,omitempty"`
}

// Env is where a stack runs: the interface it owns (or whose addresses it uses)
// and the resources the testbed assigned to it.
type Env struct {
	// Iface is the network interface the stack serves on (in the current netns).
	Iface string
	// Addr is the stack's IP address and prefix on that interface.
	Addr netip.Prefix
	// CPUs are the cores the stack may use; polling loops pin to the first.
	CPUs []int
	// FilePrefix keeps this process's DPDK runtime files apart from others'.
	FilePrefix string
	// RunDir is a directory private to this run (control sockets, state);
	// empty means the stack's system-wide default.
	RunDir string
}

// Daemon is a service process a stack needs beside the application (Joyride's
// joyrided). The runner starts it in the server's namespace, pinned like the
// application, waits for the line "READY" on its standard output, starts the
// application, and stops the daemon after the application.
type Daemon struct {
	// Binary is the program's name; it is looked up next to jrapp.
	Binary string
	// Args are its arguments.
	Args []string
}

// Factory makes one kind of stack.
type Factory struct {
	// Name is how experiments refer to the stack.
	Name string
	// Summary is one line for listings and error messages.
	Summary string
	// NewOptions returns a pointer to a fresh options struct holding the defaults;
	// YAML options are decoded into it with unknown keys rejected.
	NewOptions func() any
	// Open starts the stack with options from NewOptions (decoded) in env.
	Open func(opts any, env Env) (Stack, error)
	// Daemon, when not nil, says which service process must run before Open.
	// The runner samples its resources with the application's.
	Daemon func(opts any, env Env) *Daemon
	// ServerFiles are what the stack's server side needs beside jrapp in
	// the binary directory (its daemon, a preload library): the runner
	// copies those present to a remote server node.
	ServerFiles []string
	// Protocols are the transports the stack serves; nil means udp and tcp.
	Protocols []string
	// Capabilities are what the stack can do beyond serving its protocols
	// (capabilities.go): the runner, the spec's validation, the report and
	// the figures ask for a capability, never for a name.
	Capabilities []Capability
	// Lacks says, for a capability the stack does not have, why: the error
	// that refuses an experiment asking for it quotes the reason.
	Lacks map[Capability]string
	// Display is how figures show the stack; nil gives it a colour and a
	// marker drawn from a palette by its name, after the displayed stacks in
	// legends.
	Display *Display
	// Base, when set, is the registered stack whose code serves this one: a
	// variant of it under another name, with its own capabilities and
	// display. The runner starts the server processes (jrapp, the daemon's
	// binary) with -stack Base, so NewOptions must make Base's options; the
	// results carry Name.
	Base string
}

// Serves reports whether the stack serves protocol ("udp", "tcp").
func (f Factory) Serves(protocol string) bool {
	return f.Protocols == nil || slices.Contains(f.Protocols, protocol)
}

// Has reports whether the stack has capability c.
func (f Factory) Has(c Capability) bool {
	return slices.Contains(f.Capabilities, c)
}

// ServerStack is the registered name the server processes open: Base, or
// the stack's own name.
func (f Factory) ServerStack() string {
	if f.Base != "" {
		return f.Base
	}
	return f.Name
}

var (
	mu        sync.RWMutex
	factories = map[string]Factory{}
)

// Register adds a stack kind. It panics on a duplicate name, an unknown
// capability, a second stack claiming a capability only one may have (the
// floor, the baseline) or a Base that is not registered: all programming
// errors.
func Register(f Factory) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := factories[f.Name]; dup {
		panic("stacks: duplicate registration of " + f.Name)
	}
	for _, c := range slices.Concat(f.Capabilities, slices.Collect(maps.Keys(f.Lacks))) {
		if _, ok := capabilityMeaning[c]; !ok {
			panic(fmt.Sprintf("stacks: %s registers unknown capability %q", f.Name, c))
		}
	}
	for _, c := range uniqueCapabilities {
		if !f.Has(c) {
			continue
		}
		for _, g := range factories {
			if g.Has(c) {
				panic(fmt.Sprintf("stacks: %s and %s both claim capability %s, which only one stack may have", g.Name, f.Name, c))
			}
		}
	}
	if f.Base != "" {
		if _, ok := factories[f.Base]; !ok {
			panic(fmt.Sprintf("stacks: %s is based on %q, which is not registered (register the base first)", f.Name, f.Base))
		}
	}
	factories[f.Name] = f
}

// Unregister removes a stack kind: for tests that register a stack of their
// own and must leave the registry as they found it.
func Unregister(name string) {
	mu.Lock()
	defer mu.Unlock()
	delete(factories, name)
}

// Names lists the registered stacks, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	names := make([]string, 0, len(factories))
	for n := range factories {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Lookup finds a stack kind by name; the error lists the registered names.
func Lookup(name string) (Factory, error) {
	mu.RLock()
	f, ok := factories[name]
	mu.RUnlock()
	if !ok {
		return Factory{}, fmt.Errorf("unknown stack %q (registered: %s)", name, strings.Join(Names(), ", "))
	}
	return f, nil
}

// DecodeOptions decodes a stack's options from a YAML node (nil means defaults),
// rejecting unknown keys. The error names the offending key and line.
func DecodeOptions(name string, node *yaml.Node) (any, error) {
	f, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	opts := f.NewOptions()
	if node == nil || node.Kind == 0 {
		return opts, nil
	}
	if node.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: options of stack %q must be a mapping of key: value", node.Line, name)
	}
	// yaml.v3 rejects unknown fields only through a Decoder, which would lose the
	// line numbers of the enclosing file; check the keys against the struct here.
	allowed := optionKeys(opts)
	for i := 0; i+1 < len(node.Content); i += 2 {
		key := node.Content[i]
		if !contains(allowed, key.Value) {
			return nil, fmt.Errorf("line %d: unknown option %q for stack %q (allowed: %s)",
				key.Line, key.Value, name, strings.Join(allowed, ", "))
		}
	}
	if err := node.Decode(opts); err != nil {
		return nil, fmt.Errorf("options of stack %q: %w", name, err)
	}
	if v, ok := opts.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return nil, fmt.Errorf("line %d: options of stack %q: %w", node.Line, name, err)
		}
	}
	return opts, nil
}

// optionKeys lists the YAML keys of an options struct (pointer), from its yaml tags.
func optionKeys(opts any) []string {
	t := reflect.TypeOf(opts)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var keys []string
	if t.Kind() != reflect.Struct {
		return keys
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		keys = append(keys, name)
	}
	sort.Strings(keys)
	return keys
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// DecodeOptionsBytes is DecodeOptions for options passed as YAML or JSON text (as
// the runner hands them to cmd/jrapp on its command line).
func DecodeOptionsBytes(name string, text []byte) (any, error) {
	if len(bytes.TrimSpace(text)) == 0 {
		return DecodeOptions(name, nil)
	}
	var node yaml.Node
	if err := yaml.Unmarshal(text, &node); err != nil {
		return nil, fmt.Errorf("options of stack %q: %w", name, err)
	}
	if node.Kind == yaml.DocumentNode && len(node.Content) == 1 {
		return DecodeOptions(name, node.Content[0])
	}
	return DecodeOptions(name, &node)
}

// Open decodes nothing: it opens a registered stack with already decoded options.
func Open(name string, opts any, env Env) (Stack, error) {
	f, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	if opts == nil {
		opts = f.NewOptions()
	}
	return f.Open(opts, env)
}
