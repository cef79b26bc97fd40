package pmqos

import "testing"

// The kernel's aggregate request must show our 0 while held and return to its
// previous value after Release.
func TestHoldAndRelease(t *testing.T) {
	before, err := Current()
	if err != nil {
		t.Fatal(err)
	}
	if before == 0 {
		t.Skip("another process already holds a 0 µs request: the effect of ours cannot be seen")
	}
	r, err := Hold(0)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := Current(); v != 0 || !r.Held() {
		t.Fatalf("while held: kernel bound %d µs, held=%v", v, r.Held())
	}
	if err := r.Release(); err != nil {
		t.Fatal(err)
	}
	if err := r.Release(); err != nil {
		t.Fatal("second Release:", err)
	}
	if v, _ := Current(); v != before || r.Held() {
		t.Fatalf("after release: kernel bound %d µs (was %d), held=%v", v, before, r.Held())
	}
}
