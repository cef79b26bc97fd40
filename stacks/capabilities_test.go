package stacks

import (
	"strings"
	"testing"
)

// register adds f for the length of the test.
func register(t *testing.T, f Factory) {
	t.Helper()
	if f.NewOptions == nil {
		f.NewOptions = func() any { return &struct{}{} }
	}
	Register(f)
	t.Cleanup(func() { Unregister(f.Name) })
}

func mustPanic(t *testing.T, want string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Fatalf("no panic, want one saying %q", want)
		}
		if !strings.Contains(r.(string), want) {
			t.Fatalf("panic %q, want it to say %q", r, want)
		}
	}()
	f()
}

func TestRequireNamesTheStackTheCapabilityAndWhoHasIt(t *testing.T) {
	register(t, Factory{Name: "test-sockets", Capabilities: []Capability{Preload, MultiInstance}})
	register(t, Factory{Name: "test-shim", Capabilities: []Capability{Preload}})
	register(t, Factory{Name: "test-libos", Lacks: map[Capability]string{Preload: "its stack lives inside the application"}})

	if err := Require("test-shim", Preload); err != nil {
		t.Errorf("test-shim has preload, yet: %v", err)
	}
	err := Require("test-libos", Preload)
	if err == nil {
		t.Fatal("test-libos lacks preload, yet Require accepted it")
	}
	for _, want := range []string{`"test-libos"`, "preload", "its stack lives inside the application", "stacks with it: test-shim, test-sockets"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if err := Require("test-shim", MultiQueue); err == nil || !strings.Contains(err.Error(), "no registered stack has it") {
		t.Errorf("nobody has multi-queue, error: %v", err)
	}
	if err := Require("test-nonexistent", Preload); err == nil || !strings.Contains(err.Error(), "unknown stack") {
		t.Errorf("unregistered stack, error: %v", err)
	}
	if !Has("test-sockets", MultiInstance) || Has("test-shim", MultiInstance) || Has("test-nonexistent", Preload) {
		t.Error("Has disagrees with the registrations")
	}
}

func TestRegisterRefusesWhatWouldMisleadTheRunner(t *testing.T) {
	register(t, Factory{Name: "test-floor", Capabilities: []Capability{Floor}})
	mustPanic(t, "only one stack may have", func() {
		Register(Factory{Name: "test-floor-2", Capabilities: []Capability{Floor}})
	})
	mustPanic(t, `unknown capability "teleport"`, func() {
		Register(Factory{Name: "test-teleport", Capabilities: []Capability{"teleport"}})
	})
	mustPanic(t, `unknown capability "teleport"`, func() {
		Register(Factory{Name: "test-teleport", Lacks: map[Capability]string{"teleport": "no"}})
	})
	mustPanic(t, "not registered", func() {
		Register(Factory{Name: "test-variant", Base: "test-missing-base"})
	})
	for _, n := range Names() {
		if n != "test-floor" && strings.HasPrefix(n, "test-") {
			t.Errorf("refused registration %s is in the registry", n)
		}
	}
}

func TestVariantServesAsItsBase(t *testing.T) {
	register(t, Factory{Name: "test-base"})
	register(t, Factory{Name: "test-variant", Base: "test-base"})
	f, err := Lookup("test-variant")
	if err != nil {
		t.Fatal(err)
	}
	if f.ServerStack() != "test-base" {
		t.Errorf("variant's server stack %q, want test-base", f.ServerStack())
	}
	if b, _ := Lookup("test-base"); b.ServerStack() != "test-base" {
		t.Errorf("a stack without a base serves as %q, want itself", b.ServerStack())
	}
}
