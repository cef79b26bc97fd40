//go:build !dpdk || !cgo

package dpdk

import (
	"net"

	"github.com/joyride-bench/joyride/nic"
)

// Available reports whether this binary was built with DPDK.
func Available() bool { return false }

// Init fails: this binary has no DPDK.
func Init(args []string) error { return ErrUnavailable }

// Cleanup does nothing without DPDK.
func Cleanup() error { return nil }

// TSCHz is 0 without DPDK.
func TSCHz() uint64 { return 0 }

// PortNames is empty without DPDK.
func PortNames() []string { return nil }

// Port is never opened without DPDK.
type Port struct{}

// OpenPort fails: this binary has no DPDK.
func OpenPort(name string, cfg PortConfig) (*Port, error) { return nil, ErrUnavailable }

func (p *Port) Name() string                                 { return "" }
func (p *Port) RxBurst(b *nic.Batch) int                     { return 0 }
func (p *Port) Alloc(b *nic.Batch, n int) int                { return 0 }
func (p *Port) TxBurst(b *nic.Batch) int                     { return 0 }
func (p *Port) Free(b *nic.Batch)                            {}
func (p *Port) MAC() net.HardwareAddr                        { return nil }
func (p *Port) MTU() int                                     { return 0 }
func (p *Port) Features() nic.Features                       { return nic.Features{} }
func (p *Port) Stats() (nic.Stats, error)                    { return nic.Stats{}, ErrUnavailable }
func (p *Port) Close() error                                 { return nil }
func (p *Port) Link() (speedMbps uint32, up bool, err error) { return 0, false, ErrUnavailable }
func (p *Port) Queue(q int) *Queue                           { return nil }
func (p *Port) Queues() int                                  { return 0 }

// Queue is never opened without DPDK.
type Queue struct{}

func (q *Queue) RxBurst(b *nic.Batch) int      { return 0 }
func (q *Queue) Alloc(b *nic.Batch, n int) int { return 0 }
func (q *Queue) TxBurst(b *nic.Batch) int      { return 0 }
func (q *Queue) Free(b *nic.Batch)             {}
func (q *Queue) MAC() net.HardwareAddr         { return nil }
func (q *Queue) MTU() int                      { return 0 }
func (q *Queue) Features() nic.Features        { return nic.Features{} }
func (q *Queue) Stats() (nic.Stats, error)     { return nic.Stats{}, ErrUnavailable }
func (q *Queue) Close() error                  { return nil }

var (
	_ nic.Port = (*Port)(nil)
	_ nic.Port = (*Queue)(nil)
)
