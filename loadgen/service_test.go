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
