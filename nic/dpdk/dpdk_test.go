//go:build dpdk && cgo

package dpdk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/joyride-bench/joyride/nic"
	"github.com/joyride-bench/joyride/nic/dpdk/eal"
)

// The tests drive a real pair of DPDK ports: two memif vdevs in this process,
// one the server and one the client of the same memif socket, so frames cross a
// real shared-memory ring and touch no kernel interface. EAL can start once per
// process, so TestMain opens the pair for every test.
var server, client *Port

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "nic/dpdk tests need root (DPDK maps memory and opens memif sockets)")
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "jr-dpdk-test")
	if err != nil {
		panic(err)
	}
	sock := filepath.Join(dir, "memif.sock")
	args := eal.Args{Program: "jr-test", Core: 0, FilePrefix: fmt.Sprintf("jrtest%d", os.Getpid()), NoHugeMB: 256,
		Vdevs: []string{"net_memif0,role=server,id=0,socket=" + sock, "net_memif1,role=client,id=0,socket=" + sock}}.List()
	if err := Init(args); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if server, err = OpenPort("net_memif0", PortConfig{PoolSize: 4095}); err == nil {
		client, err = OpenPort("net_memif1", PortConfig{PoolSize: 4095})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	client.Close()
	// memif tears the pair down from its interrupt thread: give it time
	// between the two ends, or the thread races EAL cleanup (seen: SIGSEGV).
	time.Sleep(100 * time.Millisecond)
	server.Close()
	time.Sleep(100 * time.Millisecond)
	Cleanup()
	os.RemoveAll(dir)
	os.Exit(code)
}

func waitLinkUp(t testing.TB, ports ...*Port) {
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range ports {
		for {
			_, up, err := p.Link()
			if err != nil {
				t.Fatal(err)
			}
			if up {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("link of %s still down after 10 s", p.Name())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// frame writes a recognisable 64-byte frame numbered seq into buf.
func frame(buf []byte, seq uint32) []byte {
	f := buf[:64]
	for i := range f {
		f[i] = byte(i)
	}
	binary.BigEndian.PutUint16(f[12:], 0x88b5) // local experimental ethertype
	binary.BigEndian.PutUint32(f[14:], seq)
	return f
}

func TestFramesCrossTheWire(t *testing.T) {
	waitLinkUp(t, server, client)
	const n = 32
	tx := nic.NewBatch(n)
	if got := client.Alloc(tx, n); got != n {
		t.Fatalf("Alloc gave %d of %d buffers", got, n)
	}
	for i := 0; i < n; i++ {
		if len(tx.Frames[i]) < 2048 {
			t.Fatalf("buffer %d has only %d bytes of room", i, len(tx.Frames[i]))
		}
		tx.Frames[i] = frame(tx.Frames[i], uint32(i))
	}
	if sent := client.TxBurst(tx); sent != n {
		t.Fatalf("TxBurst sent %d of %d", sent, n)
	}
	rx := nic.NewBatch(n)
	var seen []uint32
	deadline := time.Now().Add(5 * time.Second)
	for len(seen) < n && time.Now().Before(deadline) {
		k := server.RxBurst(rx)
		for i := 0; i < k; i++ {
			want := frame(make([]byte, 64), binary.BigEndian.Uint32(rx.Frames[i][14:]))
			if !bytes.Equal(rx.Frames[i], want) {
				t.Fatalf("frame %d arrived altered: % x", i, rx.Frames[i])
			}
			seen = append(seen, binary.BigEndian.Uint32(rx.Frames[i][14:]))
		}
		server.Free(rx)
	}
	if len(seen) != n {
		t.Fatalf("received %d of %d frames", len(seen), n)
	}
	for i, s := range seen {
		if s != uint32(i) {
			t.Fatalf("frames out of order: %v", seen)
		}
	}
	st, err := client.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.TxPackets < n {
		t.Fatalf("client counted %d TX packets, want >= %d", st.TxPackets, n)
	}
}

func TestReflectInPlace(t *testing.T) {
	waitLinkUp(t, server, client)
	tx := nic.NewBatch(8)
	client.Alloc(tx, 8)
	for i := 0; i < 8; i++ {
		tx.Frames[i] = frame(tx.Frames[i], 1000+uint32(i))
	}
	if sent := client.TxBurst(tx); sent != 8 {
		t.Fatalf("TxBurst sent %d of 8", sent)
	}
	// The server sends the received mbufs straight back: no copy, no alloc. Both
	// ends are polled in one loop because a memif client hands the server its
	// receive buffers only when it polls (the server cannot send before).
	rx, back := nic.NewBatch(8), nic.NewBatch(8)
	reflected, got := 0, 0
	deadline := time.Now().Add(5 * time.Second)
	for got < 8 && time.Now().Before(deadline) {
		got += client.RxBurst(rx)
		client.Free(rx)
		if server.RxBurst(back) > 0 {
			reflected += server.TxBurst(back)
		}
	}
	if got != 8 {
		t.Fatalf("reflected %d, got back %d of 8", reflected, got)
	}
}

func TestErrors(t *testing.T) {
	if err := Init([]string{"again"}); err == nil || !strings.Contains(err.Error(), "already") {
		t.Fatalf("second Init: %v", err)
	}
	_, err := OpenPort("net_nosuch0", PortConfig{})
	if err == nil || !strings.Contains(err.Error(), "net_memif0") {
		t.Fatalf("unknown port should list the probed ones, got %v", err)
	}
	if _, err := OpenPort("net_memif0", PortConfig{PoolSize: 100, RxRing: 1024}); err == nil {
		t.Fatal("a pool smaller than the RX ring must be refused")
	}
}

func TestFeaturesDescribeTheVdev(t *testing.T) {
	f := server.Features()
	if f.Driver != "net_memif" || f.RxQueues != 1 || f.RxRingSize == 0 {
		t.Fatalf("features: %v", f)
	}
	if len(server.MAC()) != 6 {
		t.Fatalf("MAC %v", server.MAC())
	}
}

// A queue is a nic.Port of its own: the port's MAC, MTU and features, with
// one queue the port's stats; Close leaves the port open.
func TestQueueIsAPort(t *testing.T) {
	q := server.Queue(0)
	if server.Queues() != 1 || q.MAC().String() != server.MAC().String() || q.MTU() != server.MTU() ||
		q.Features() != server.Features() {
		t.Fatalf("queue 0 of %s: %d queues, MAC %v MTU %d features %v", server.Name(), server.Queues(), q.MAC(), q.MTU(), q.Features())
	}
	ps, err := server.Stats()
	if err != nil {
		t.Fatal(err)
	}
	qs, err := q.Stats()
	if err != nil || qs.RxPackets != ps.RxPackets || qs.TxPackets != ps.TxPackets {
		t.Fatalf("one queue's stats %+v (%v), the port's %+v", qs, err, ps)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if _, up, err := server.Link(); err != nil || !up {
		t.Fatalf("closing a queue closed the port: up %v, %v", up, err)
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "has 1 queue pairs, no queue 1") {
			t.Fatalf("Queue(1) of a one-queue port: %v, want a panic naming the queues", r)
		}
	}()
	server.Queue(1)
}

// BenchmarkTxRxBurst measures the burst calls: alloc + write + TX on one port, RX +
// free on the other, 32 frames a burst over memif. Reported per frame.
func BenchmarkTxRxBurst(b *testing.B) {
	waitLinkUp(b, server, client)
	const burst = 32
	tx, rx := nic.NewBatch(burst), nic.NewBatch(burst)
	b.ReportAllocs()
	b.ResetTimer()
	received := 0
	for i := 0; i < b.N; i += burst {
		n := client.Alloc(tx, burst)
		for j := 0; j < n; j++ {
			tx.Frames[j] = tx.Frames[j][:64]
		}
		client.TxBurst(tx)
		for k := server.RxBurst(rx); k > 0; k = server.RxBurst(rx) {
			received += k
			server.Free(rx)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/frame")
	_ = received
}
