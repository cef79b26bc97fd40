package analysis

import (
	"math"
	"testing"
)

// binomPMFSum is P(B <= k) for B ~ Binomial(n, p), summed term by term.
func binomPMFSum(k, n int, p float64) float64 {
	sum := 0.0
	for i := 0; i <= k; i++ {
		lc := lchoose(n, i)
		sum += math.Exp(lc + float64(i)*math.Log(p) + float64(n-i)*math.Log1p(-p))
	}
	return sum
}

func lchoose(n, k int) float64 {
	a, _ := math.Lgamma(float64(n + 1))
	b, _ := math.Lgamma(float64(k + 1))
	c, _ := math.Lgamma(float64(n - k + 1))
	return a - b - c
}

func TestBinomCDFAgainstDirectSum(t *testing.T) {
	for _, n := range []int{1, 2, 7, 50, 300} {
		for _, p := range []float64{0.01, 0.25, 0.5, 0.9, 0.99} {
			for k := 0; k < n; k++ {
				got, want := binomCDF(int64(k), int64(n), p), binomPMFSum(k, n, p)
				if math.Abs(got-want) > 1e-10 {
					t.Fatalf("binomCDF(%d, %d, %g) = %.15g, want %.15g", k, n, p, got, want)
				}
			}
		}
	}
	if binomCDF(-1, 10, 0.5) != 0 || binomCDF(10, 10, 0.5) != 1 {
		t.Error("binomCDF at the ends")
	}
}

func TestBinomQuantile(t *testing.T) {
	for _, c := range []struct {
		n     int64
		p     float64
		alpha float64
	}{{100, 0.5, 0.025}, {100, 0.5, 0.975}, {1000, 0.99, 0.025}, {3_000_000, 0.99, 0.975}, {50_000_000, 0.5, 0.025}, {20, 0.99, 0.025}} {
		k := binomQuantile(c.alpha, c.n, c.p)
		if binomCDF(k, c.n, c.p) < c.alpha || (k > 0 && binomCDF(k-1, c.n, c.p) >= c.alpha) {
			t.Errorf("binomQuantile(%g, %d, %g) = %d: CDF there %g, below %g", c.alpha, c.n, c.p, k,
				binomCDF(k, c.n, c.p), binomCDF(k-1, c.n, c.p))
		}
		// Against the normal approximation for large n.
		if c.n >= 1_000_000 {
			z := -1.959963984540054
			if c.alpha > 0.5 {
				z = -z
			}
			approx := float64(c.n)*c.p + z*math.Sqrt(float64(c.n)*c.p*(1-c.p))
			if math.Abs(float64(k)-approx) > 3 {
				t.Errorf("binomQuantile(%g, %d, %g) = %d, normal approximation %.1f", c.alpha, c.n, c.p, k, approx)
			}
		}
	}
}

func TestStudentT(t *testing.T) {
	for _, c := range []struct{ t, df, want float64 }{
		{2.228138852, 10, 0.05}, // t table, 97.5% quantile with 10 df
		{2.845339707, 20, 0.01},
		{1.959963985, 1e7, 0.05},
		{0, 5, 1},
	} {
		if got := studentTTwoSided(c.t, c.df); math.Abs(got-c.want) > 1e-6 {
			t.Errorf("studentTTwoSided(%g, %g) = %g, want %g", c.t, c.df, got, c.want)
		}
	}
}
