//go:build dpdk && cgo

package experiments_test

import (
	"context"
	"encoding/json"
	"errors"
	"image/color"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/joyride-bench/joyride/analysis"
	"github.com/joyride-bench/joyride/experiments"
	"github.com/joyride-bench/joyride/stacks"
	_ "github.com/joyride-bench/joyride/stacks/all"
	"github.com/joyride-bench/joyride/testbed/local"
)

// This file is what a newcomer's fifth stack goes through, from outside the
// package and through its exported API only: a stack registered here, and
// nowhere in the spec's validation, the runner, the report or the figures,
// must be validated, measured, reported and drawn like the built-in ones.

// twinColor is the twin stack's colour, which no other stack uses, so that a
// figure that drew the twin can be told by it.
var twinColor = color.RGBA{0x12, 0x34, 0x56, 0xff}

// registerTwin registers "twin": the kernel stack's code (jrapp serves it as
// -stack kernel) under another name, with capabilities of its own: UDP only,
// several instances, no preload and no multi-queue.
func registerTwin(t *testing.T) {
	t.Helper()
	kernel, err := stacks.Lookup("kernel")
	if err != nil {
		t.Fatal(err)
	}
	stacks.Register(stacks.Factory{
		Name:         "twin",
		Summary:      "the kernel's sockets under another name (a test's stack)",
		NewOptions:   kernel.NewOptions,
		Open:         kernel.Open,
		Base:         "kernel",
		Protocols:    []string{"udp"},
		Capabilities: []stacks.Capability{stacks.MultiInstance},
		Lacks: map[stacks.Capability]string{
			stacks.Preload:    "the twin is a test's stack",
			stacks.MultiQueue: "the twin is a test's stack",
		},
		Display: &stacks.Display{Color: twinColor, Marker: stacks.MarkerDiamond, Order: 10},
	})
	t.Cleanup(func() { stacks.Unregister("twin") })
}

// problem returns the message of the spec's problem at path that contains
// all of want, or fails the test listing the problems there were.
func problem(t *testing.T, err error, path string, want ...string) {
	t.Helper()
	var se *experiments.SpecError
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T), want a *SpecError", err, err)
	}
	for _, p := range se.Problems {
		if p.Path != path {
			continue
		}
		if !slices.ContainsFunc(want, func(w string) bool { return !strings.Contains(p.Msg, w) }) {
			return
		}
	}
	t.Fatalf("no problem at %s saying all of %q in:\n%v", path, want, err)
}

// A spec that asks a stack for what it cannot do is refused before anything
// starts, by an error that names the stack, the capability and the stacks
// that have it.
func TestSpecRefusesCapabilitiesAStackLacks(t *testing.T) {
	registerTwin(t)
	if _, err := experiments.Parse("ok.yaml", []byte("name: ok\nstacks: [kernel, twin]\nworkload: {rates: [1000]}\n")); err != nil {
		t.Fatalf("the twin over udp: %v", err)
	}

	_, err := experiments.Parse("memcached.yaml", []byte("name: x\nstacks: [kernel, twin]\napp: memcached\nworkload: {protocol: tcp, rates: [1000]}\n"))
	if err == nil {
		t.Fatal("memcached on the twin (no preload) was accepted")
	}
	problem(t, err, "stacks", `stack "twin"`, "lacks capability preload", "the twin is a test's stack", "stacks with it: joyride, kernel")

	_, err = experiments.Parse("afxdp.yaml", []byte("name: x\nstacks: [afxdp]\napp: nginx\nworkload: {protocol: tcp, rates: [1000]}\n"))
	problem(t, err, "stacks", `stack "afxdp"`, "lacks capability preload", "stacks with it: joyride, kernel")

	_, err = experiments.Parse("tcp.yaml", []byte("name: x\nstacks: [twin]\nworkload: {protocol: tcp, rates: [1000]}\n"))
	problem(t, err, "stacks", `stack "twin" does not serve tcp`)

	// Several instances: the twin may, null may not; the error lists the
	// twin among the stacks that can.
	_, err = experiments.Parse("dens.yaml", []byte("name: x\nstacks: [kernel, \"null\"]\nworkload: {protocol: tcp, connections: 4, instances: [1, 2], rates: [1000]}\n"))
	problem(t, err, "stacks", `stack "null"`, "lacks capability multi-instance", "stacks with it: joyride, kernel, twin")

	// Several generator engines need a stack that serves several queues:
	// refused by the runner before it creates anything.
	e, err := experiments.Parse("multi.yaml", []byte("name: x\nstacks: [kernel, twin]\nworkload: {rates: [1000]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	pl := experiments.Placement{Generator: 1, Server: 0, GeneratorExtra: []int{0}}
	_, err = experiments.Run(context.Background(), e, experiments.RunOptions{BinDir: t.TempDir(), ResultsDir: t.TempDir(), Placement: &pl})
	if err == nil || !strings.Contains(err.Error(), `stack "twin" lacks capability multi-queue`) || !strings.Contains(err.Error(), "stacks with it: kernel") {
		t.Fatalf("two generator cores on the twin: %v", err)
	}
}

// The twin runs through the real runner on the local testbed (jrapp serves
// it with the kernel's code, the results carry its name), and the report and
// the figures treat it as a stack of their own: a ratio to the kernel, its
// registered colour in the figure.
func TestFakeStackRunsReportsAndPlots(t *testing.T) {
	bin := experiments.BinDir(t)
	registerTwin(t)
	e, err := experiments.Parse("twin.yaml", []byte(`name: twin
stacks: [kernel, twin]
workload:
  rates: [2000]
  duration: 1s
  warmup: 200ms
  interval: 25ms
  late_threshold: 500us
repetitions: 1
`))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := experiments.Run(context.Background(), e, experiments.RunOptions{BinDir: bin, ResultsDir: t.TempDir(), SkipCalibration: true})
	if err != nil {
		t.Fatalf("run: %v", err)
	}

	pts, err := analysis.ReadSummaryCSV(filepath.Join(dir, "summary.csv"))
	if err != nil {
		t.Fatal(err)
	}
	var twin []analysis.Point
	for _, p := range pts {
		if p.Stack == "twin" {
			twin = append(twin, p)
		}
	}
	if len(pts) != 2 || len(twin) != 1 {
		t.Fatalf("summary has %d points, %d of the twin; want 2 and 1: %+v", len(pts), len(twin), pts)
	}
	// At 2000 requests/s every request is answered, but for a point the
	// generator marked invalid for sending late, whose losses are bounded
	// by its late requests (as in the smoke test: a stolen vCPU makes a
	// burst longer than the server's receive ring).
	p := twin[0]
	if p.Sent == 0 || p.Received+p.Lost != p.Sent || (p.Lost != 0 && (p.Valid || p.Lost > p.Late)) {
		t.Errorf("twin: sent %d received %d lost %d late %d valid %v", p.Sent, p.Received, p.Lost, p.Late, p.Valid)
	}
	if p.AchievedRPS < 0.95*p.OfferedRPS || p.AchievedRPS > 1.05*p.OfferedRPS {
		t.Errorf("twin: achieved %.0f of %.0f offered (outside 5%%)", p.AchievedRPS, p.OfferedRPS)
	}
	if _, err := os.Stat(filepath.Join(dir, p.Hlog)); err != nil {
		t.Errorf("the twin's histogram: %v", err)
	}

	report, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(report), "## Ratios to the kernel") || !strings.Contains(string(report), "| twin (udp/echo) |") {
		t.Errorf("report.md compares no twin with the kernel:\n%s", report)
	}

	svg, err := os.ReadFile(filepath.Join(dir, "plots", "latency-vs-load.svg"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(svg), "#123456") || !strings.Contains(string(svg), ">twin<") {
		t.Error("latency-vs-load.svg does not draw the twin in its registered colour (#123456) with its name in the legend")
	}

	var m experiments.Meta
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err != nil {
		t.Fatalf("meta.json: %v", err)
	}
	if m.State != "complete" || !slices.ContainsFunc(m.Points, func(p experiments.PointMeta) bool { return p.Stack == "twin" }) {
		t.Errorf("meta: state %s, points %+v", m.State, m.Points)
	}
	if m.Testbed == nil {
		t.Fatal("meta.json records no testbed")
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, ns := range []string{m.Testbed.Client.Netns, m.Testbed.Server.Netns} {
		if strings.Contains(string(out), ns) {
			t.Errorf("namespace %s left behind", ns)
		}
	}
	tbs, _ := local.List()
	for _, tb := range tbs {
		if tb.ID == m.Testbed.ID {
			t.Errorf("testbed %s still listed (%s)", tb.ID, tb.Status)
		}
	}
}
