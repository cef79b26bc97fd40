package check

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/joyride-bench/joyride/testbed/spec"
)

// The built-in testbed checks this machine, which runs the project's tests:
// every check passes (DPDK is installed where the tests run) and the table
// names each node and check once, in order. The SSH node's checks are
// tested end to end by cmd/jrbench's TestTestbedCheckOverSSH.
func TestLocalTestbed(t *testing.T) {
	tb := spec.Local()
	rows := Run(context.Background(), tb, 10*time.Second, time.Second)
	if len(rows) != len(tb.Nodes)*len(Checks) {
		t.Fatalf("%d rows for %d nodes: %+v", len(rows), len(tb.Nodes), rows)
	}
	for i, r := range rows {
		n, c := tb.Nodes[i/len(Checks)].Name, Checks[i%len(Checks)]
		if r.Node != n || r.Check != c || r.Status != StatusOK {
			t.Errorf("row %d: %+v, want %s %s ok", i, r, n, c)
		}
	}
	if Failed(rows) != 0 {
		t.Errorf("%d failed", Failed(rows))
	}
	var b bytes.Buffer
	if err := Print(&b, tb, rows); err != nil || !strings.HasPrefix(b.String(), "testbed local (built-in)\nNODE") {
		t.Fatalf("%v\n%s", err, b.String())
	}
}

// A node whose namespace does not exist fails to be reached, and its other
// checks are skipped, not failed.
func TestUnreachableNodeSkips(t *testing.T) {
	tb := &spec.Testbed{Name: "gone", Nodes: []spec.Node{{Name: "n", Netns: "jr-check-test-no-such-netns"}}}
	rows := Run(context.Background(), tb, 5*time.Second, time.Second)
	if len(rows) != len(Checks) || rows[0].Status != StatusFail || !strings.Contains(rows[0].Detail, "jr-check-test-no-such-netns") {
		t.Fatalf("%+v", rows)
	}
	for _, r := range rows[1:] {
		if r.Status != StatusSkip {
			t.Errorf("%+v, want skip", r)
		}
	}
	if Failed(rows) != 1 {
		t.Errorf("%d failed, want 1", Failed(rows))
	}
}

func TestParseEpoch(t *testing.T) {
	for in, want := range map[string]time.Time{
		"1700000000.123456789\n": time.Unix(1700000000, 123456789),
		"1700000000.5":           time.Unix(1700000000, 500000000),
		"1700000000":             time.Unix(1700000000, 0),
	} {
		if got, err := parseEpoch(in); err != nil || !got.Equal(want) {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "17.x"} {
		if _, err := parseEpoch(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
