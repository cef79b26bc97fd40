package nic

import (
	"fmt"
	"sort"
	"strings"
)

// A Profile is a NIC as a cloud or a testbed offers it, named: what a port may
// use of its device's features. Machnet designs for the "least common
// denominator" vNIC (one queue, no RSS or flow steering, no checksum offload,
// shallow rings); a bare-metal ConnectX-5 offers all of it. A stack run under
// a profile sees a port whose Features are the device's, cut down to the
// profile's (Restrict), and opens its queues and rings within the profile's
// bounds (Queues, Ring), so that what a result depends on is named, and the
// code paths without an offload are the ones exercised.
type Profile struct {
	Name string
	// Queues bounds the RX/TX queues a port may use.
	Queues int
	// Ring is the descriptors per ring.
	Ring int
	// Offloads and steering the profile allows.
	RxChecksum, TxChecksum, TSO, RSS, FlowSteering bool
}

// Profiles are the named profiles.
var Profiles = map[string]Profile{
	// lcd: the least common denominator of cloud vNICs (Machnet's design
	// point): one queue, nothing offloaded, 256-entry rings.
	"lcd": {Name: "lcd", Queues: 1, Ring: 256},
	// cx5: what a ConnectX-5 offers (mlx5): many queues, deep rings, checksum
	// offload both ways, TSO, RSS and rte_flow steering.
	"cx5": {Name: "cx5", Queues: 16, Ring: 4096, RxChecksum: true, TxChecksum: true, TSO: true, RSS: true, FlowSteering: true},
}

// LookupProfile returns the named profile; "" is lcd, the default, so that a
// result never silently depends on an offload.
func LookupProfile(name string) (Profile, error) {
	if name == "" {
		name = "lcd"
	}
	p, ok := Profiles[name]
	if !ok {
		names := make([]string, 0, len(Profiles))
		for n := range Profiles {
			names = append(names, n)
		}
		sort.Strings(names)
		return Profile{}, fmt.Errorf("NIC profile %q is not known (allowed: %s)", name, strings.Join(names, ", "))
	}
	return p, nil
}

// Allow cuts a device's features down to what the profile permits.
func (p Profile) Allow(f Features) Features {
	f.RxIPv4Checksum = f.RxIPv4Checksum && p.RxChecksum
	f.RxL4Checksum = f.RxL4Checksum && p.RxChecksum
	f.TxIPv4Checksum = f.TxIPv4Checksum && p.TxChecksum
	f.TxL4Checksum = f.TxL4Checksum && p.TxChecksum
	f.TSO = f.TSO && p.TSO
	f.RSS = f.RSS && p.RSS
	f.FlowSteering = f.FlowSteering && p.FlowSteering
	f.MaxRxQueues = min(f.MaxRxQueues, p.Queues)
	f.MaxTxQueues = min(f.MaxTxQueues, p.Queues)
	return f
}

// Restrict returns port as the profile lets its users see it: Features cut
// down by Allow, everything else the port's own.
func Restrict(port Port, p Profile) Port { return restricted{Port: port, profile: p} }

type restricted struct {
	Port
	profile Profile
}

func (r restricted) Features() Features { return r.profile.Allow(r.Port.Features()) }

// RxWaitFds passes the port's descriptors through: a profile restricts
// offloads and rings, not how an owner may wait.
func (r restricted) RxWaitFds() []int { return RxWaitFds(r.Port) }
