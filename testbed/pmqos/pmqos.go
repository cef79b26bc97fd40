// Package pmqos holds a CPU power-management quality-of-service request while a
// measurement runs.
//
// An idle vCPU halts, and waking a halted vCPU costs this VM about 100 µs: enough
// to turn a 24 µs kernel round trip into 120–350 µs. A polling stack never lets its
// vCPU go idle, so without care the harness would credit it with the VM's idle
// policy instead of with its network stack. Writing a 32-bit 0 to
// /dev/cpu_dma_latency and keeping the file open asks the kernel to keep every CPU
// out of deep idle states (on this VM: poll instead of halt) until the file is
// closed, which also happens when the process dies, so a crash cannot leave the
// request behind.
package pmqos

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync"
)

// Device is the kernel's CPU DMA-latency PM QoS interface.
const Device = "/dev/cpu_dma_latency"

// Request is a held PM QoS request.
type Request struct {
	mu    sync.Mutex
	f     *os.File
	Value int32 // the latency bound requested, µs
}

// Hold asks for a CPU wake-up latency of at most us microseconds (0: never
// halt) and holds the request until Release.
func Hold(us int32) (*Request, error) {
	f, err := os.OpenFile(Device, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("pm qos: open %s: %w", Device, err)
	}
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], uint32(us))
	if _, err := f.Write(b[:]); err != nil {
		f.Close()
		return nil, fmt.Errorf("pm qos: write %d µs to %s: %w", us, Device, err)
	}
	return &Request{f: f, Value: us}, nil
}

// Release drops the request; it is safe to call more than once.
func (r *Request) Release() error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// Held reports whether the request is still held.
func (r *Request) Held() bool {
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f != nil
}

// Current reads the latency bound the kernel now enforces (the strictest of all
// held requests), in µs; 2000000000 means none.
func Current() (int32, error) {
	b, err := os.ReadFile(Device)
	if err != nil {
		return 0, fmt.Errorf("pm qos: read %s: %w", Device, err)
	}
	if len(b) < 4 {
		return 0, fmt.Errorf("pm qos: read %s: %d bytes", Device, len(b))
	}
	return int32(binary.NativeEndian.Uint32(b)), nil
}
