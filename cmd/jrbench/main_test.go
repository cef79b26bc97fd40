package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// jrbench is tested as the user runs it: the built binary, its stderr and its
// exit status.
func jrbench(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("JRBENCH_BIN")
	if dir == "" {
		dir, _ = filepath.Abs("../../bin")
	}
	p := filepath.Join(dir, "jrbench")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s missing: run make build (or make test) first", p)
	}
	return p
}

func TestBadExperimentFailsBeforeAnythingStarts(t *testing.T) {
	bin := jrbench(t)
	nsBefore, _ := exec.Command("ip", "netns", "list").Output()
	for file, want := range map[string]string{
		"unknown-key.yaml":    "unknown-key.yaml:3:",
		"wrong-type.yaml":     "wrong-type.yaml:6:",
		"negative-rate.yaml":  "negative-rate.yaml:7:",
		"unknown-stack.yaml":  "unknown-stack.yaml:4:",
		"unknown-option.yaml": "unknown-option.yaml:6:",
	} {
		cmd := exec.Command(bin, "run", filepath.Join("..", "..", "experiments", "testdata", file))
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%s: exit %v, want status 2; output:\n%s", file, err, out)
			continue
		}
		if !strings.Contains(string(out), want) {
			t.Errorf("%s: output does not name %q:\n%s", file, want, out)
		}
	}
	nsAfter, _ := exec.Command("ip", "netns", "list").Output()
	if string(nsAfter) != string(nsBefore) {
		t.Errorf("a rejected experiment changed the namespaces:\nbefore:\n%s\nafter:\n%s", nsBefore, nsAfter)
	}
}

func TestValidateAcceptsTheShippedExperiments(t *testing.T) {
	bin := jrbench(t)
	cmd := exec.Command(bin, "validate", "smoke", "rpc-latency")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("validate: %v\n%s", err, out)
	}
}

func TestUnknownExperimentName(t *testing.T) {
	bin := jrbench(t)
	cmd := exec.Command(bin, "run", "no-such-experiment")
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "no-such-experiment.yaml") {
		t.Fatalf("exit %v, output %s", err, out)
	}
}
