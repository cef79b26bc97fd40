package tsc

import (
	"testing"
	"time"
)

func TestCounterAdvancesWithTime(t *testing.T) {
	a := Read()
	time.Sleep(20 * time.Millisecond)
	b := Read()
	if b <= a {
		t.Fatalf("TSC did not advance: %d then %d", a, b)
	}
	got := time.Duration(ToNanos(b - a))
	if got < 15*time.Millisecond || got > 200*time.Millisecond {
		t.Fatalf("20 ms sleep measured as %v with %.0f Hz", got, Hz())
	}
}

func BenchmarkRead(b *testing.B) {
	for i := 0; i < b.N; i++ {
		Read()
	}
}
