package paperkit

import (
	"errors"
	"strings"
	"testing"

	"github.com/joyride-bench/joyride/internal/strictyaml"
)

// A figure and claim around one measure, for the parse tests.
func manifestWith(claim string) string {
	return "figures:\n  - id: lat\n    experiment: rpc-latency\n    plot: latency-vs-load\n    claims:\n      - " + claim + "\n"
}

// Every problem is reported with its line, its key path and what is allowed.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []string
	}{
		{"empty file", "", []string{"m.yaml: empty file: a manifest needs figures"}},
		{"unknown top key", "figures: []\nnot_yet: x\n", []string{
			`m.yaml:1: figures: empty list`,
			`m.yaml:2: unknown key "not_yet" (allowed: figures)`}},
		{"figure keys", "figures:\n  - {id: Lat!, plot: p, colour: red}\n", []string{
			`m.yaml:2: figures[0]: unknown key "colour" (allowed: id, title, papers, experiment, plot, claims)`,
			`m.yaml:2: figures[0].id: "Lat!" is not allowed (lowercase letters, digits and -`,
			`m.yaml:2: figures[0]: missing key "experiment" (the name of an experiments/<name>.yaml)`}},
		{"duplicate id", "figures:\n  - {id: a, experiment: e, plot: p}\n  - {id: a, experiment: e, plot: q}\n", []string{
			`m.yaml:3: figures[1].id: duplicate figure id "a" (first given at line 2)`}},
		{"bad metric", manifestWith("{claim: c, measure: {stack: kernel, rate: 1000, metric: p42}}"), []string{
			`m.yaml:6: figures[0].claims[0].measure.metric: "p42" is not allowed (allowed: p50, p99, peak, cpu, gbps, mem)`}},
		{"unknown claim key", manifestWith("{claim: c, measure: {stack: kernel, metric: peak}, baseline: kernel}"), []string{
			`m.yaml:6: figures[0].claims[0]: unknown key "baseline" (allowed: claim, published, measure, versus, expect, not_measurable)`}},
		{"unknown measure key", manifestWith("{claim: c, measure: {stack: kernel, metric: peak, stacks: x}}"), []string{
			`figures[0].claims[0].measure: unknown key "stacks" (allowed: stack, protocol, rate, window, size, instances, metric)`}},
		{"no measure", manifestWith("{claim: c, expect: {at_most: 1}}"), []string{
			`m.yaml:6: figures[0].claims[0]: missing key "measure" (stack, metric and the point: stack, protocol, rate, window, size, instances, metric), or "not_measurable" with the reason`,
			`m.yaml:6: figures[0].claims[0].expect: expect needs a measure`}},
		{"missing stack and metric", manifestWith("{claim: c, measure: {rate: 1000}}"), []string{
			`figures[0].claims[0].measure: missing key "stack"`,
			`figures[0].claims[0].measure: missing key "metric"`}},
		{"unquoted null", manifestWith("{claim: c, measure: {stack: null, rate: 1000, metric: p50}}"), []string{
			`figures[0].claims[0].measure.stack: null is YAML's empty value: write the null stack as "null", quoted`}},
		{"protocol and rate", manifestWith("{claim: c, measure: {stack: kernel, protocol: sctp, rate: -5, metric: p50}}"), []string{
			`figures[0].claims[0].measure.protocol: "sctp" is not allowed (allowed: udp, tcp)`,
			`figures[0].claims[0].measure.rate: -5 is out of range (an offered rate in requests/s, > 0 and <= 5000000)`}},
		{"peak with a rate", manifestWith("{claim: c, measure: {stack: kernel, rate: 1000, metric: peak}}"), []string{
			`figures[0].claims[0].measure: metric peak is the highest offered rate kept up with, over every rate: give neither rate nor window`}},
		{"p50 without a load", manifestWith("{claim: c, measure: {stack: kernel, metric: p50}}"), []string{
			`figures[0].claims[0].measure: metric p50 is read at one load: give rate (requests/s) or window (closed loop)`}},
		{"rate and window", manifestWith("{claim: c, measure: {stack: kernel, rate: 10, window: 8, metric: gbps}}"), []string{
			`figures[0].claims[0].measure: give rate (an open loop's offered rate) or window (a closed loop's requests outstanding), not both`}},
		{"size zero", manifestWith("{claim: c, measure: {stack: kernel, window: 8, size: 0, metric: gbps}}"), []string{
			`figures[0].claims[0].measure.size: 0 is out of range (request size in bytes, one of the experiment's sizes, > 0)`}},
		{"ratio without versus", manifestWith("{claim: c, measure: {stack: kernel, metric: peak}, expect: {ratio_at_least: 1.5}}"), []string{
			`figures[0].claims[0].expect.ratio_at_least: a ratio needs a baseline: add versus (e.g. versus: {stack: kernel})`}},
		{"two bounds", manifestWith("{claim: c, measure: {stack: kernel, metric: peak}, expect: {at_most: 1, at_least: 0}}"), []string{
			`figures[0].claims[0].expect: 2 bounds: give exactly one of at_most, at_least, ratio_at_most, ratio_at_least, difference_at_most, difference_at_least`}},
		{"unknown bound", manifestWith("{claim: c, measure: {stack: kernel, metric: peak}, expect: {below: 1}}"), []string{
			`figures[0].claims[0].expect: unknown key "below" (allowed: at_most, at_least, ratio_at_most, ratio_at_least, difference_at_most, difference_at_least)`}},
		{"ratio bound", manifestWith("{claim: c, measure: {stack: joyride, metric: peak}, versus: {stack: kernel}, expect: {ratio_at_least: 0}}"), []string{
			`figures[0].claims[0].expect.ratio_at_least: 0 is out of range (a ratio's bound is > 0)`}},
		{"bound not a number", manifestWith("{claim: c, measure: {stack: joyride, metric: peak}, expect: {at_least: lots}}"), []string{
			`figures[0].claims[0].expect.at_least: expected a number, got "lots"`}},
		{"versus the same point", manifestWith("{claim: c, measure: {stack: kernel, metric: peak}, versus: {stack: kernel}}"), []string{
			`figures[0].claims[0].versus: names the same point as measure: change its stack or another key`}},
		{"empty versus", manifestWith("{claim: c, measure: {stack: kernel, metric: peak}, versus: {}}"), []string{
			`figures[0].claims[0].versus: empty: name the baseline's stack`}},
		{"versus needs a rate", manifestWith("{claim: c, measure: {stack: kernel, metric: peak}, versus: {stack: joyride, metric: p50}}"), []string{
			`figures[0].claims[0].versus: metric p50 is read at one load: give rate (requests/s) or window (closed loop)`}},
		{"empty reason", manifestWith("{claim: c, not_measurable: \"\"}"), []string{
			`figures[0].claims[0].not_measurable: empty: say why this testbed cannot measure the claim`}},
		{"claims not a list", "figures:\n  - {id: a, experiment: e, plot: p, claims: {claim: c}}\n", []string{
			`m.yaml:2: figures[0].claims: expected a list, got a mapping`}},
		{"two documents", "figures: []\n---\nfigures: []\n", []string{
			`a second YAML document: a manifest holds exactly one`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("m.yaml", []byte(tc.src))
			var se *strictyaml.Error
			if !errors.As(err, &se) {
				t.Fatalf("got %v, want a *strictyaml.Error", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// A versus takes measure's keys unless it overrides them; a peak drops the
// rate it would inherit.
func TestParseVersusAndExpect(t *testing.T) {
	src := `figures:
  - id: lat
    title: latency
    papers: [Machnet, Junction]
    experiment: rpc-latency
    plot: latency-vs-load
    claims:
      - claim: bypass beats the kernel
        published: "9 µs"
        measure: {protocol: udp, stack: joyride, rate: 10000, metric: p50}
        versus: {stack: kernel}
        expect: {ratio_at_most: 1.0}
      - claim: more apps, same latency
        measure: {stack: joyride, rate: 10000, metric: p50, instances: 16}
        versus: {instances: 1}
        expect: {difference_at_most: 5}
      - claim: the floor
        measure: {stack: "null", rate: 10000, metric: p50}
        expect: {at_most: 8.4}
      - claim: peak against p50's point
        measure: {stack: joyride, rate: 10000, metric: p50}
        versus: {stack: kernel, metric: peak}
      - claim: 100G
        not_measurable: needs a 100G NIC
  - id: cdf
    experiment: rpc-latency
    plot: cdf-10000
  - id: other
    experiment: conn-setup
    plot: latency-vs-load
`
	m, err := Parse("m.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(m.Experiments(), ","); got != "rpc-latency,conn-setup" {
		t.Errorf("experiments %s", got)
	}
	f := m.Figures[0]
	if f.Title != "latency" || strings.Join(f.Papers, ",") != "Machnet,Junction" || len(f.Claims) != 5 {
		t.Fatalf("figure %+v", f)
	}
	c := f.Claims[0]
	if *c.Versus != (Selector{Stack: "kernel", Protocol: "udp", Rate: 10000, Metric: "p50"}) || c.Published != "9 µs" {
		t.Errorf("versus %+v", *c.Versus)
	}
	if *c.Expect != (Expectation{Of: Ratio, AtMost: true, Bound: 1}) || c.Expect.String() != "ratio ≤ 1" {
		t.Errorf("expect %+v %s", *c.Expect, c.Expect)
	}
	c = f.Claims[1]
	if *c.Versus != (Selector{Stack: "joyride", Rate: 10000, Instances: 1, Metric: "p50"}) ||
		*c.Expect != (Expectation{Of: Difference, AtMost: true, Bound: 5}) {
		t.Errorf("versus %+v expect %+v", *c.Versus, *c.Expect)
	}
	if c := f.Claims[2]; c.Measure.Stack != "null" || c.Versus != nil || *c.Expect != (Expectation{Of: Absolute, AtMost: true, Bound: 8.4}) || c.Expect.String() != "≤ 8.4" {
		t.Errorf("claim %+v", c)
	}
	if v := f.Claims[3].Versus; *v != (Selector{Stack: "kernel", Metric: "peak"}) {
		t.Errorf("peak versus %+v", *v)
	}
	if c := f.Claims[4]; c.Measure != nil || c.NotMeasurable != "needs a 100G NIC" {
		t.Errorf("claim %+v", c)
	}
}

// The repository's own manifest parses (its experiments are checked against
// the experiment files by cmd/jrbench's tests).
func TestRepositoryManifestParses(t *testing.T) {
	m, err := Load("../paper/manifest.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range m.Figures {
		for _, c := range f.Claims {
			n++
			if c.Expect == nil && c.NotMeasurable == "" && c.Versus == nil {
				t.Errorf("figure %s: claim %q compares with nothing and expects nothing", f.ID, c.Claim)
			}
		}
	}
	if n == 0 {
		t.Fatal("no claims")
	}
}
