//go:build dpdk && cgo

package netstack

import (
	"fmt"
	"os"
	"testing"

	"github.com/joyride-bench/joyride/nic/dpdk"
	"github.com/joyride-bench/joyride/nic/dpdk/dpdktest"
)

// With DPDK the scenarios run over a real memif pair in this process: memif0 is
// the server end of the shared-memory socket, memif1 the client. EAL starts once
// per process, so TestMain opens the pair for every test; each test builds fresh
// stacks (and Endpoints) over it.
var srvPort, cliPort *dpdk.Port

func TestMain(m *testing.M) {
	pair, err := dpdktest.OpenPair("jrns", dpdk.PortConfig{PoolSize: 4095})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srvPort, cliPort = pair.Server, pair.Client
	code := m.Run()
	pair.Close()
	os.Exit(code)
}

func TestUDPEcho(t *testing.T) { testUDPEcho(t, srvPort, cliPort) }
func TestARP(t *testing.T)     { testARP(t, srvPort, cliPort) }
func TestTCP(t *testing.T)     { testTCP(t, srvPort, cliPort, pollOpts{}) }

// TestTCPSpinning: the same with both pollers declaring SetSpinning, so the TCP
// processors' writes are batched into the pollers' bursts.
func TestTCPSpinning(t *testing.T) { testTCP(t, srvPort, cliPort, pollOpts{spin: true}) }
func TestStats(t *testing.T)       { testStats(t, srvPort, cliPort) }

// TestChecksums drives the memif client end raw from the test (it polls it).
func TestChecksums(t *testing.T) { testChecksums(t, srvPort, cliPort) }

// BenchmarkUDPRoundTrip: a 64 B UDP echo round trip between two stacks over the
// memif pair, one datagram in flight, each stack polled by its own goroutine.
func BenchmarkUDPRoundTrip(b *testing.B) { benchUDPRoundTrip(b, srvPort, cliPort, pollOpts{}) }

// BenchmarkUDPRoundTripSpinning: the same with both pollers declaring SetSpinning.
func BenchmarkUDPRoundTripSpinning(b *testing.B) {
	benchUDPRoundTrip(b, srvPort, cliPort, pollOpts{spin: true})
}

// BenchmarkUDPRoundTripLocked: the same with both pollers locked to their OS
// threads. On two vCPUs two locked spinning pollers plus two application
// goroutines make every Gosched a thread hand-off: expect it to be much slower
// than BenchmarkUDPRoundTrip there; it shows the cost, it is not a target.
func BenchmarkUDPRoundTripLocked(b *testing.B) {
	benchUDPRoundTrip(b, srvPort, cliPort, pollOpts{lock: true})
}
