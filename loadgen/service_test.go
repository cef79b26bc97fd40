package loadgen

import (
	"math"
	"testing"
)

func TestServiceDistributionsHaveTheirMeans(t *testing.T) {
	for _, c := range []struct {
		spec string
		mean float64 // ns
	}{
		{"constant:10us", 10000},
		{"exponential:10us", 10000},
		{"bimodal:5us,100us,0.1", 0.9*5000 + 0.1*100000},
		{"lognormal:10us,1.0", 10000},
	} {
		d, err := ParseService(c.spec)
		if err != nil {
			t.Fatal(err)
		}
		if again, err := ParseService(d.String()); err != nil || again != d {
			t.Errorf("%s prints as %s, which reads back as %+v (%v)", c.spec, d.String(), again, err)
		}
		v := d.Draw(200000, 1)
		sum := 0.0
		for _, x := range v {
			sum += float64(x)
		}
		if got := sum / float64(len(v)); math.Abs(got-c.mean)/c.mean > 0.03 {
			t.Errorf("%s: mean %.0f ns, want %.0f", c.spec, got, c.mean)
		}
	}
	if v := (ServiceDist{}).Draw(3, 1); v[0] != 0 || v[2] != 0 {
		t.Error("no distribution drew service times")
	}
}

func TestParseServiceRefusesBadSpecs(t *testing.T) {
	for _, s := range []string{"uniform:5us", "exponential", "exponential:-1us", "constant:2s",
		"bimodal:5us,100us", "bimodal:5us,100us,1.5", "lognormal:10us", "lognormal:10us,9"} {
		if _, err := ParseService(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
	if d, err := ParseService(""); err != nil || d.Enabled() {
		t.Error("empty spec is not 'none'")
	}
}

func TestParseSize(t *testing.T) {
	for _, s := range []string{"64", "fixed:64", "uniform:64,4096", "exponential:1024", "bimodal:64,65536,0.1", "lognormal:1024,1"} {
		d, err := ParseSize(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if back, err := ParseSize(d.String()); err != nil || back != d {
			t.Fatalf("%s -> %v -> %v, %v", s, d, back, err)
		}
	}
	for _, s := range []string{"", "0", "65537", "-1", "uniform:10", "uniform:100,10", "bimodal:1,2,1.5", "lognormal:100,0", "pareto:3", "exponential:x"} {
		if _, err := ParseSize(s); err == nil {
			t.Fatalf("%q accepted", s)
		}
	}
}

func TestSizeDrawMeansAndClamp(t *testing.T) {
	for _, c := range []struct {
		spec string
		mean float64
	}{{"exponential:1000", 1000}, {"lognormal:2000,1", 2000}, {"uniform:100,300", 200}, {"bimodal:100,1100,0.25", 350}} {
		d, _ := ParseSize(c.spec)
		xs := d.Draw(200000, 7, 1, 1<<20)
		var sum float64
		for _, x := range xs {
			sum += float64(x)
		}
		if m := sum / float64(len(xs)); m < 0.97*c.mean || m > 1.03*c.mean {
			t.Fatalf("%s: mean %.1f, want %.0f", c.spec, m, c.mean)
		}
		// Prefix-stable: a longer draw starts with the shorter one.
		if ys := d.Draw(10, 7, 1, 1<<20); ys[9] != xs[9] {
			t.Fatalf("%s: draws are not prefix-stable", c.spec)
		}
	}
	d, _ := ParseSize("exponential:1000")
	for _, x := range d.Draw(10000, 1, 18, 2000) {
		if x < 18 || x > 2000 {
			t.Fatalf("%d outside the clamp [18, 2000]", x)
		}
	}
}
