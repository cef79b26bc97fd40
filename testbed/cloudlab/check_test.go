// Package cloudlab holds the CloudLab profile (profile.py) and node setup
// script (setup.sh), which cannot run here; this test checks what can be
// checked without CloudLab: the profile runs under Python against a stub of
// geni-lib (testdata/geni) and asks for what it should, the script passes
// bash -n and shellcheck, and the testbed/cloudlab.yaml template parses once
// its placeholders are filled in.
package cloudlab

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/joyride-bench/joyride/testbed/spec"
)

func need(t *testing.T, bin string) {
	t.Helper()
	if _, err := exec.LookPath(bin); err != nil {
		t.Fatalf("%s not installed (make deps installs it)", bin)
	}
}

func TestProfileRunsAgainstGeniStub(t *testing.T) {
	need(t, "python3")
	cmd := exec.Command("python3", "profile.py")
	cmd.Env = append(os.Environ(), "PYTHONPATH=testdata/geni", "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3 profile.py: %v\n%s", err, out)
	}
	s := string(out)
	for _, want := range []string{
		`<node client_id="node0" exclusive="true">`,
		`<node client_id="node1" exclusive="true">`,
		`<disk_image name="urn:publicid:IDN+emulab.net+image+emulab-ops//UBUNTU22-64-STD"/>`,
		`<ip address="198.18.0.1" netmask="255.255.255.0" type="ipv4"/>`,
		`<ip address="198.18.0.2" netmask="255.255.255.0" type="ipv4"/>`,
		`<property capacity="100000000"/>`,
		`<best_effort enabled="false"/>`,
		`<link_multiplexing enabled="false"/>`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("RSpec lacks %s:\n%s", want, s)
		}
	}
	if n := strings.Count(s, `<hardware_type name="c6525-100g"/>`); n != 2 {
		t.Errorf("%d nodes of type c6525-100g, want 2:\n%s", n, s)
	}
	if n := strings.Count(s, `<interface_ref `); n != 2 {
		t.Errorf("the link joins %d interfaces, want 2:\n%s", n, s)
	}
}

func TestSetupScriptSyntax(t *testing.T) {
	need(t, "bash")
	if out, err := exec.Command("bash", "-n", "setup.sh").CombinedOutput(); err != nil {
		t.Fatalf("bash -n setup.sh: %v\n%s", err, out)
	}
	need(t, "shellcheck")
	if out, err := exec.Command("shellcheck", "setup.sh").CombinedOutput(); err != nil {
		t.Fatalf("shellcheck setup.sh: %v\n%s", err, out)
	}
}

func TestTemplateParsesWhenFilledIn(t *testing.T) {
	b, err := os.ReadFile("../cloudlab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// As shipped, the placeholders are errors that name themselves.
	if _, err := spec.Parse("cloudlab.yaml", b); err == nil || !strings.Contains(err.Error(), "<node0 hostname") {
		t.Fatalf("template with placeholders: %v", err)
	}
	fill := map[string]string{
		"host": "amd101.utah.cloudlab.us", "user": "alice", "key": "~/.ssh/id_ed25519", "pci": `"0000:41:00.0"`,
	}
	re := regexp.MustCompile(`(?m)^(\s+)(host|user|key|pci): "?<[^>]*>"?$`)
	filled := re.ReplaceAllStringFunc(string(b), func(m string) string {
		sub := re.FindStringSubmatch(m)
		return sub[1] + sub[2] + ": " + fill[sub[2]]
	})
	if regexp.MustCompile(`(?m)^[^#]*<`).MatchString(filled) {
		t.Fatalf("placeholders left:\n%s", filled)
	}
	tb, err := spec.Parse("cloudlab.yaml", []byte(filled))
	if err != nil {
		t.Fatal(err)
	}
	c, s := tb.Node(spec.RoleClient), tb.Node(spec.RoleServer)
	if c.Name != "node0" || s.Name != "node1" || c.Hugepages != 1024 || c.NIC.PCI != "0000:41:00.0" || s.IP.String() != "198.18.0.2/24" {
		t.Errorf("%+v", tb)
	}
}
