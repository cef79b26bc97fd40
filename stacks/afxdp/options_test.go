package afxdp

import (
	"strings"
	"testing"
)

// The stack's port is used under a NIC profile like every DPDK port of the
// harness: unknown profiles and queues the profile does not have are refused.
func TestOptionsProfile(t *testing.T) {
	for _, c := range []struct {
		o    Options
		want string // "" = valid
	}{
		{Options{}, ""},
		{Options{Profile: "cx5", Queue: 3}, ""},
		{Options{Profile: "e810"}, "profile"},
		{Options{Queue: 1}, "not allowed by profile lcd"},
		{Options{FastPath: "maybe"}, "fast_path \"maybe\" is not allowed (allowed: on, off)"},
	} {
		err := c.o.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v: %v", c.o, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%+v: %v, want an error about %q", c.o, err, c.want)
		}
	}
}
