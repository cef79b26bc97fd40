package stacks

import (
	"fmt"
	"image/color"
	"strings"
)

// Capability is something a stack can do that an experiment may need. Code
// above the stacks (the spec's validation, the runner, the report, the
// figures) asks whether a stack has a capability instead of testing its
// name, so that a new stack declares what it can do in its Factory and
// nothing else changes.
type Capability string

const (
	// Preload: the stack runs an unmodified program (memcached,
	// redis-server, nginx) on its sockets, as its own (the kernel) or
	// through a preload environment (Preloader).
	Preload Capability = "preload"
	// MultiInstance: several application processes on one server node
	// share the stack (the density experiments).
	MultiInstance Capability = "multi-instance"
	// PCIDevice: the stack serves on a server node whose NIC is a PCI
	// device (through the kernel's driver, or a service process given the
	// device), not only over an interface it opens a vdev on.
	PCIDevice Capability = "pci-device"
	// MultiQueue: the stack serves a NIC's several receive queues, so
	// several generator engines can load it at once.
	MultiQueue Capability = "multi-queue"
	// Floor: the stack is the latency floor (no stack at all: the wire and
	// the generator), which the report subtracts and figures shade.
	Floor Capability = "floor"
	// Baseline: the stack every other is compared with in the report's
	// ratios.
	Baseline Capability = "baseline"
)

// capabilityMeaning says what each capability means, for error messages.
var capabilityMeaning = map[Capability]string{
	Preload:       "runs unmodified programs on its sockets",
	MultiInstance: "serves several application processes on one node",
	PCIDevice:     "serves on a PCI NIC",
	MultiQueue:    "serves a NIC's several queues",
	Floor:         "is the latency floor",
	Baseline:      "is the baseline of the ratios",
}

// uniqueCapabilities may belong to one registered stack only: the report
// has one floor and one baseline.
var uniqueCapabilities = []Capability{Floor, Baseline}

// Has reports whether the registered stack name has capability c; an
// unregistered name has none.
func Has(name string, c Capability) bool {
	f, err := Lookup(name)
	return err == nil && f.Has(c)
}

// With lists the registered stacks that have capability c, sorted.
func With(c Capability) []string {
	var out []string
	for _, n := range Names() {
		if Has(n, c) {
			out = append(out, n)
		}
	}
	return out
}

// Require returns nil when stack name has capability c, else an error that
// names the stack, the capability, why the stack lacks it (when it says) and
// which stacks have it.
func Require(name string, c Capability) error {
	f, err := Lookup(name)
	if err != nil {
		return err
	}
	if f.Has(c) {
		return nil
	}
	msg := fmt.Sprintf("stack %q lacks capability %s (%s)", name, c, capabilityMeaning[c])
	if why := f.Lacks[c]; why != "" {
		msg += ": " + why
	}
	if with := With(c); len(with) > 0 {
		msg += "; stacks with it: " + strings.Join(with, ", ")
	} else {
		msg += "; no registered stack has it"
	}
	return fmt.Errorf("%s", msg)
}

// Marker is the shape of a stack's points in figures.
type Marker string

const (
	MarkerCircle  Marker = "circle"
	MarkerBox     Marker = "box"
	MarkerUp      Marker = "up" // a triangle pointing up
	MarkerDown    Marker = "down"
	MarkerDiamond Marker = "diamond"
	MarkerCross   Marker = "cross"
)

// Display is how every figure shows a stack, so that a stack looks the same
// in every figure of every run.
type Display struct {
	// Color of its lines and markers.
	Color color.RGBA
	// Marker of its points.
	Marker Marker
	// Order is its place in legends, lowest first; stacks without a
	// Display come after every stack with one.
	Order int
}

// DisplayOf returns the Display of the registered stack name, or nil.
func DisplayOf(name string) *Display {
	f, err := Lookup(name)
	if err != nil {
		return nil
	}
	return f.Display
}
