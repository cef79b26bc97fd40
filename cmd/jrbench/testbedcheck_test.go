package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/joyride-bench/joyride/testbed/ssh/sshtest"
)

// testbed check against a stand-in node: a real sshd in a namespace of its
// own, playing both roles.
func TestTestbedCheckOverSSH(t *testing.T) {
	bin := jrbench(t)
	nd := sshtest.Start(t)
	write := func(name, nic string, hugepages int) string {
		p := filepath.Join(t.TempDir(), name)
		y := fmt.Sprintf(`name: standin
nodes:
  - name: standin
    roles: [client, server]
    ssh:
      host: %s
      port: %d
      user: %s
      key: %s
      known_hosts: %s
      host_key_policy: strict
    nic: %s
    ip: 198.18.0.2/24
    hugepages: %d
`, nd.IP, sshtest.Port, nd.User, nd.Key, nd.KnownHosts, nic, hugepages)
		if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	check := func(file string) (string, int) {
		out, err := exec.Command(bin, "testbed", "check", file).CombinedOutput()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return string(out), 0
		case errors.As(err, &ee):
			return string(out), ee.ExitCode()
		}
		t.Fatalf("%v\n%s", err, out)
		return "", 0
	}
	row := func(out, check, status string) bool {
		return regexp.MustCompile(`(?m)^standin\s+` + check + `\s+` + status + `\s`).MatchString(out)
	}

	// Everything present: the node's interface, no hugepages asked.
	out, code := check(write("good.yaml", fmt.Sprintf(`{vdev: "net_af_packet0,iface=%s"}`, nd.Iface), 0))
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, c := range []string{"reach", "dpdk", "nic", "hugepages", "clock"} {
		if !row(out, c, "ok") {
			t.Errorf("no ok row for %s:\n%s", c, out)
		}
	}
	if !strings.Contains(out, "Linux") || !strings.Contains(out, "state UP") {
		t.Errorf("reach should show uname -a and nic the interface state:\n%s", out)
	}

	// A missing PCI device and more hugepages than the machine has.
	out, code = check(write("bad.yaml", `{pci: "0000:ff:1f.7"}`, 1<<20))
	if code != 1 || !row(out, "nic", "FAIL") || !row(out, "hugepages", "FAIL") || !strings.Contains(out, "no PCI device /sys/bus/pci/devices/0000:ff:1f.7") {
		t.Errorf("exit %d:\n%s", code, out)
	}

	// Unreachable: the host key is not the one known.
	f := write("wrongkey.yaml", `{vdev: net_null0}`, 0)
	os.WriteFile(nd.KnownHosts+".empty", nil, 0o600)
	b, _ := os.ReadFile(f)
	os.WriteFile(f, []byte(strings.Replace(string(b), nd.KnownHosts, nd.KnownHosts+".empty", 1)), 0o600)
	out, code = check(f)
	if code != 1 || !row(out, "reach", "FAIL") || !row(out, "dpdk", "skip") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

func TestTestbedCheckBadFile(t *testing.T) {
	bin := jrbench(t)
	out, err := exec.Command(bin, "testbed", "check", "../../testbed/spec/testdata/unknown-key.yaml").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), `unknown-key.yaml:8: nodes[0]: unknown key "hugepage"`) {
		t.Fatalf("exit %v:\n%s", err, out)
	}
}
