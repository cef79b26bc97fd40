package loadgen

import (
	"encoding/binary"
	"net"
	"runtime"
	"time"

	"github.com/joyride-bench/joyride/internal/tsc"
	"github.com/joyride-bench/joyride/nic"
)

// BlastEtherType marks blaster frames: IEEE's local experimental EtherType, which
// no stack handles, so a Linux peer counts them (rx_packets) and drops them
// without answering.
const BlastEtherType = 0x88b5

// BlastFrame returns a minimum-size (60-byte) frame from src to dst.
func BlastFrame(src, dst net.HardwareAddr) []byte {
	f := make([]byte, 60)
	copy(f[0:6], dst)
	copy(f[6:12], src)
	binary.BigEndian.PutUint16(f[12:], BlastEtherType)
	return f
}

// BlastResult is what a blast measured at the sender.
type BlastResult struct {
	Sent       uint64  `json:"sent"`
	Received   uint64  `json:"received"` // frames that came back (from a reflector)
	Seconds    float64 `json:"seconds"`
	SentPPS    float64 `json:"sent_pps"`
	RecvPPS    float64 `json:"received_pps"`
	FrameBytes int     `json:"frame_bytes"`
}

// Blast transmits copies of frame as fast as port takes them for d, bursts of
// burst frames, on a goroutine locked to its OS thread. It measures the
// wire's packet-rate limit: the reference the generator's sustained rate is
// compared with. Received frames are counted and freed as they come, so against
// a reflector the same loop measures the round-trip limit.
func Blast(port nic.Port, frame []byte, d time.Duration, burst int) BlastResult {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if burst <= 0 || burst > nic.MaxBurst {
		burst = 32
	}
	tx, rx := nic.NewBatch(burst), nic.NewBatch(burst)
	start := tsc.Read()
	end := start + tsc.FromDuration(d)
	var sent, received uint64
	now := start
	for now < end {
		n := port.Alloc(tx, burst)
		for i := 0; i < n; i++ {
			tx.Frames[i] = tx.Frames[i][:copy(tx.Frames[i], frame)]
		}
		sent += uint64(port.TxBurst(tx))
		if m := port.RxBurst(rx); m > 0 {
			received += uint64(m)
			port.Free(rx)
		}
		now = tsc.Read()
	}
	secs := float64(tsc.ToNanos(now-start)) / 1e9
	return BlastResult{Sent: sent, Received: received, Seconds: secs, SentPPS: float64(sent) / secs,
		RecvPPS: float64(received) / secs, FrameBytes: len(frame)}
}
