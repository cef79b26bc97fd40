//go:build dpdk && cgo

// Package dpdktest gives tests a real DPDK wire without any kernel interface: a
// pair of memif ports in one process (one the memif server, one the client of
// the same socket), frames crossing real shared-memory rings. EAL starts once
// per process, so a test binary opens the pair in TestMain.
package dpdktest

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/joyride-bench/joyride/nic"
	"github.com/joyride-bench/joyride/nic/dpdk"
	"github.com/joyride-bench/joyride/nic/dpdk/eal"
)

// Pair is two connected memif ports.
type Pair struct {
	// Server and Client are the two ends (net_memif0, net_memif1).
	Server, Client *dpdk.Port
	dir            string
}

// OpenPair starts EAL (without hugepages, on lcore 0, with a file prefix unique
// to this process and name) and opens both ends, waiting for the link. cfg
// shapes both ports.
func OpenPair(name string, cfg dpdk.PortConfig) (*Pair, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%s: DPDK tests need root", name)
	}
	dir, err := os.MkdirTemp("", "jr-memif-"+name)
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "memif.sock")
	err = dpdk.Init(eal.Args{Program: name, Core: 0, FilePrefix: fmt.Sprintf("%s%d", name, os.Getpid()), NoHugeMB: 256,
		Vdevs: []string{"net_memif0,role=server,id=0,socket=" + sock, "net_memif1,role=client,id=0,socket=" + sock}}.List())
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	p := &Pair{dir: dir}
	if p.Server, err = dpdk.OpenPort("net_memif0", cfg); err == nil {
		p.Client, err = dpdk.OpenPort("net_memif1", cfg)
	}
	if err != nil {
		p.Close()
		return nil, err
	}
	for _, port := range []*dpdk.Port{p.Server, p.Client} {
		for i := 0; ; i++ {
			if _, up, _ := port.Link(); up {
				break
			}
			if i > 1000 {
				p.Close()
				return nil, fmt.Errorf("%s: memif link did not come up in 10 s", name)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// A memif client hands the server its receive buffers only when it polls
	// RX: until then the server cannot send. Poll it once.
	b := nic.NewBatch(32)
	for p.Client.RxBurst(b) > 0 {
		p.Client.Free(b)
	}
	return p, nil
}

// Close closes both ends and EAL. memif tears the pair down from its interrupt
// thread, so the ends close 100 ms apart: closer, the thread races EAL cleanup
// (seen: SIGSEGV in 1 run of ~12).
func (p *Pair) Close() {
	if p.Client != nil {
		p.Client.Close()
		time.Sleep(100 * time.Millisecond)
	}
	if p.Server != nil {
		p.Server.Close()
		time.Sleep(100 * time.Millisecond)
	}
	dpdk.Cleanup()
	os.RemoveAll(p.dir)
}
