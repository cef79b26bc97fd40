package analysis

import "math"

// Special functions the statistics need, kept here rather than pulling a
// numerical library into the module for four formulas. Each is tested against
// a direct computation (stats_test.go).

// regIncBeta is the regularized incomplete beta function I_x(a, b), a, b > 0,
// 0 <= x <= 1, by the continued fraction of Numerical Recipes (6.4) evaluated
// with the modified Lentz method. The number of terms needed grows like
// sqrt(max(a, b)), so the iteration bound grows with it.
func regIncBeta(a, b, x float64) float64 {
	switch {
	case x <= 0:
		return 0
	case x >= 1:
		return 1
	}
	la, _ := math.Lgamma(a)
	lb, _ := math.Lgamma(b)
	lab, _ := math.Lgamma(a + b)
	front := math.Exp(lab - la - lb + a*math.Log(x) + b*math.Log1p(-x))
	if x < (a+1)/(a+b+2) {
		return front * betaCF(a, b, x) / a
	}
	return 1 - front*betaCF(b, a, 1-x)/b
}

// betaCF evaluates the continued fraction of regIncBeta.
func betaCF(a, b, x float64) float64 {
	const tiny, eps = 1e-300, 1e-15
	maxIter := 1000 + int(10*math.Sqrt(math.Max(a, b)))
	qab, qap, qam := a+b, a+1, a-1
	c, d := 1.0, 1-qab*x/qap
	if math.Abs(d) < tiny {
		d = tiny
	}
	d = 1 / d
	h := d
	for m := 1; m <= maxIter; m++ {
		fm := float64(m)
		m2 := 2 * fm
		aa := fm * (b - fm) * x / ((qam + m2) * (a + m2))
		d = 1 + aa*d
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = 1 + aa/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		h *= d * c
		aa = -(a + fm) * (qab + fm) * x / ((a + m2) * (qap + m2))
		d = 1 + aa*d
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = 1 + aa/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < eps {
			break
		}
	}
	return h
}

// binomCDF is P(B <= k) for B ~ Binomial(n, p).
func binomCDF(k, n int64, p float64) float64 {
	switch {
	case k < 0:
		return 0
	case k >= n:
		return 1
	case p <= 0:
		return 1
	case p >= 1:
		return 0
	}
	return regIncBeta(float64(n-k), float64(k+1), 1-p)
}

// binomQuantile is the smallest k in [0, n] with P(B <= k) >= alpha for
// B ~ Binomial(n, p), found by bisection on binomCDF.
func binomQuantile(alpha float64, n int64, p float64) int64 {
	lo, hi := int64(0), n // binomCDF(n) = 1 >= alpha
	for lo < hi {
		mid := lo + (hi-lo)/2
		if binomCDF(mid, n, p) >= alpha {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// normCDF is the standard normal distribution function.
func normCDF(z float64) float64 { return 0.5 * math.Erfc(-z/math.Sqrt2) }

// studentTTwoSided is P(|T| >= |t|) for T with df degrees of freedom.
func studentTTwoSided(t, df float64) float64 {
	if math.IsInf(t, 0) {
		return 0
	}
	return regIncBeta(df/2, 0.5, df/(df+t*t))
}
