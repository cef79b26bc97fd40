//go:build dpdk && cgo

package netstack

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/joyride-bench/joyride/nic/dpdk"
)

// With DPDK the scenarios run over a real memif pair in this process: memif0 is
// the server end of the shared-memory socket, memif1 the client. EAL starts once
// per process, so TestMain opens the pair for every test; each test builds fresh
// stacks (and Endpoints) over it.
var srvPort, cliPort *dpdk.Port

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "nic/netstack DPDK tests need root (DPDK maps memory and opens memif sockets)")
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "jr-netstack-test")
	if err != nil {
		panic(err)
	}
	sock := filepath.Join(dir, "memif.sock")
	err = dpdk.Init([]string{"jr-test", "--no-huge", "--no-pci", "-m", "256", "-l", "0",
		"--file-prefix", fmt.Sprintf("jrns%d", os.Getpid()), "--log-level", "*:warning",
		"--vdev", "net_memif0,role=server,id=0,socket=" + sock,
		"--vdev", "net_memif1,role=client,id=0,socket=" + sock})
	if err == nil {
		srvPort, err = dpdk.OpenPort("net_memif0", dpdk.PortConfig{PoolSize: 4095})
	}
	if err == nil {
		cliPort, err = dpdk.OpenPort("net_memif1", dpdk.PortConfig{PoolSize: 4095})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, p := range []*dpdk.Port{srvPort, cliPort} {
		for i := 0; ; i++ {
			if _, up, _ := p.Link(); up {
				break
			}
			if i > 1000 {
				fmt.Fprintln(os.Stderr, "memif link did not come up")
				os.Exit(1)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// A memif client hands the server its receive buffers only when it polls
	// RX: until then the server cannot send (the first ARP reply would be
	// dropped and resent a second later). Poll it once before any test.
	drainQuiet(cliPort)
	code := m.Run()
	cliPort.Close()
	// memif tears the pair down from its interrupt thread: give it time
	// between the two ends, or the thread races EAL cleanup (seen: SIGSEGV).
	time.Sleep(100 * time.Millisecond)
	srvPort.Close()
	time.Sleep(100 * time.Millisecond)
	dpdk.Cleanup()
	os.RemoveAll(dir)
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
