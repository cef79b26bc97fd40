package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestParseCPUs(t *testing.T) {
	for in, want := range map[string][]int{"0": {0}, "0,1": {0, 1}, "2-5": {2, 3, 4, 5}, "1,3-4,1": {1, 3, 4, 1}} {
		got, err := parseCPUs(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("parseCPUs(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "a", "1,", "-1", "3-2", "1024", "0-x"} {
		if _, err := parseCPUs(in); err == nil || !strings.Contains(err.Error(), "allowed:") {
			t.Errorf("parseCPUs(%q): %v, want an error naming what is allowed", in, err)
		}
	}
}

// TestCheckQueuesRefusesWhatDoesNotApply: the multi-core generator is UDP rpc
// only, one cpu per queue, and the defaults leave everything as before.
func TestCheckQueuesRefusesWhatDoesNotApply(t *testing.T) {
	type exit struct{ msg string }
	check := func(q int, cpus, protocol, mode, blast string) (msg string) {
		*queues, *cpuList = q, cpus
		defer func() {
			*queues, *cpuList = 1, ""
			if r := recover(); r != nil {
				msg = r.(exit).msg
			}
		}()
		checkQueues(protocol, mode, blast, func(code int, format string, a ...any) {
			panic(exit{fmt.Sprintf("%d: ", code) + fmt.Sprintf(format, a...)})
		})
		return ""
	}
	for _, c := range []struct {
		queues                      int
		cpus, protocol, mode, blast string
		want                        string
	}{
		{1, "", "udp", "rpc", "", ""},
		{1, "", "tcp", "connect", "raw", ""},
		{2, "0,1", "udp", "rpc", "", ""},
		{1, "1", "udp", "rpc", "", ""},
		{2, "0,1", "tcp", "rpc", "", "2: -queues/-cpus: the multi-core generator is UDP only"},
		{2, "0,1", "udp", "connect", "", "2: -queues/-cpus: the multi-core generator offers rpc load only"},
		{2, "0,1", "udp", "rpc", "raw", "2: -queues/-cpus: -blast measures one queue"},
		{2, "", "udp", "rpc", "", "2: -queues 2 needs -cpus with 2 cpus"},
		{2, "0", "udp", "rpc", "", "2: -cpus \"0\" names 1 cpus for -queues 2"},
		{0, "", "udp", "rpc", "", "2: -queues 0 outside 1..16"},
		{2, "0,x", "udp", "rpc", "", "2: -cpus \"0,x\": \"x\" is not a cpu"},
	} {
		got := check(c.queues, c.cpus, c.protocol, c.mode, c.blast)
		if (c.want == "") != (got == "") || !strings.HasPrefix(got, c.want) {
			t.Errorf("-queues %d -cpus %q -protocol %s -mode %s -blast %q: %q, want %q",
				c.queues, c.cpus, c.protocol, c.mode, c.blast, got, c.want)
		}
	}
}
