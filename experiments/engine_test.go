package experiments

import (
	"reflect"
	"testing"
)

func TestEngineFactsFromTheDaemonLog(t *testing.T) {
	log := `time=2026-12-07T10:00:00Z level=INFO msg="engine core policy" policy=dedicated apps=0
time=2026-12-07T10:00:01Z level=INFO msg="app attached" name=jrapp
time=2026-12-07T10:00:01Z level=INFO msg="engine core policy" policy=shared apps=1
time=2026-12-07T10:00:04Z level=INFO msg="fast path counters" rx=20012 tx=20010 tx_fallbacks=0 resolves=1 ports_left=0 filtered=3
time=2026-12-07T10:00:04Z level=INFO msg="limit counters" sockets=2 listeners=0 backlog=7 buffered_bytes=0 flows=1 control_rate=0
time=2026-12-07T10:00:05Z level=INFO msg="engine core policy" policy=dedicated apps=0
`
	got := engineFacts(log)
	want := &EngineFacts{CorePolicy: "shared", PolicyChanges: 3,
		FastPath: map[string]uint64{"rx": 20012, "tx": 20010, "tx_fallbacks": 0, "resolves": 1, "ports_left": 0, "filtered": 3},
		Limits:   map[string]uint64{"sockets": 2, "listeners": 0, "backlog": 7, "buffered_bytes": 0, "flows": 1, "control_rate": 0}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if f := engineFacts("level=INFO msg=\"listening\"\n"); f != nil {
		t.Errorf("a log without engine lines gave %+v", f)
	}
}
