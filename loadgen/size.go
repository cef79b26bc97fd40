package loadgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Message-size distributions. Real RPC traffic mixes small and large
// messages (a few hundred bytes with a long tail to tens of KiB is typical of
// datacenter key-value and RPC traces); a stack that batches, copies or
// segments differently shows it only when sizes vary.
const (
	SizeFixed       = "fixed"       // every message Mean bytes
	SizeUniform     = "uniform"     // uniform on [Min, Max]
	SizeExponential = "exponential" // mean Mean, at least Min
	SizeBimodal     = "bimodal"     // Min, or Max with probability P
	SizeLognormal   = "lognormal"   // mean Mean, shape Sigma
)

// SizeDist is the distribution of request sizes in bytes. Every drawn size is
// clamped to [Floor, Ceil], the limits the protocol allows (the header below,
// one frame or 64 KiB above).
type SizeDist struct {
	Kind  string  // "" or SizeFixed for one size
	Mean  int     // fixed size; exponential and lognormal mean
	Min   int     // uniform low end; bimodal small mode
	Max   int     // uniform high end; bimodal large mode
	P     float64 // bimodal probability of Max
	Sigma float64 // lognormal shape
}

// Fixed reports whether every request has the same size (Mean).
func (d SizeDist) Fixed() bool { return d.Kind == "" || d.Kind == SizeFixed }

// Largest is the largest size the distribution can draw before clamping.
func (d SizeDist) Largest() int {
	switch d.Kind {
	case SizeUniform, SizeBimodal:
		return d.Max
	case SizeExponential, SizeLognormal:
		return math.MaxInt32
	}
	return d.Mean
}

// Smallest is the smallest size the distribution can draw before clamping.
func (d SizeDist) Smallest() int {
	switch d.Kind {
	case SizeUniform, SizeBimodal:
		return d.Min
	case SizeExponential, SizeLognormal:
		return 1
	}
	return d.Mean
}

// String is the form ParseSize reads.
func (d SizeDist) String() string {
	switch d.Kind {
	case "", SizeFixed:
		return strconv.Itoa(d.Mean)
	case SizeUniform:
		return fmt.Sprintf("%s:%d,%d", d.Kind, d.Min, d.Max)
	case SizeBimodal:
		return fmt.Sprintf("%s:%d,%d,%g", d.Kind, d.Min, d.Max, d.P)
	case SizeLognormal:
		return fmt.Sprintf("%s:%d,%g", d.Kind, d.Mean, d.Sigma)
	}
	return fmt.Sprintf("%s:%d", d.Kind, d.Mean)
}

// sizeForms lists what ParseSize reads, for error messages.
const sizeForms = "64, fixed:64, uniform:64,4096, exponential:1024, bimodal:64,65536,0.1, lognormal:1024,1.0"

// ParseSize reads a size in bytes ("64") or a distribution of sizes:
// "fixed:64", "uniform:64,4096", "exponential:1024", "bimodal:64,65536,0.1"
// (64 B, or 64 KiB one time in ten) or "lognormal:1024,1.0" (mean, shape).
func ParseSize(s string) (SizeDist, error) {
	bad := func(why string) (SizeDist, error) {
		return SizeDist{}, fmt.Errorf("size %q: %s (forms: %s)", s, why, sizeForms)
	}
	num := func(v string) (int, bool) {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		return n, err == nil && n > 0 && n <= MaxTCPSize
	}
	kind, args, hasKind := strings.Cut(s, ":")
	if !hasKind {
		n, ok := num(s)
		if !ok {
			return bad(fmt.Sprintf("want a byte count in 1..%d or a distribution", MaxTCPSize))
		}
		return SizeDist{Kind: SizeFixed, Mean: n}, nil
	}
	parts := strings.Split(args, ",")
	d := SizeDist{Kind: kind}
	var ok, ok2 bool
	switch kind {
	case SizeFixed, SizeExponential:
		if len(parts) != 1 {
			return bad("want one byte count")
		}
		if d.Mean, ok = num(parts[0]); !ok {
			return bad(fmt.Sprintf("the size must be in 1..%d", MaxTCPSize))
		}
	case SizeUniform:
		if len(parts) != 2 {
			return bad("want min,max")
		}
		d.Min, ok = num(parts[0])
		d.Max, ok2 = num(parts[1])
		if !ok || !ok2 || d.Min > d.Max {
			return bad(fmt.Sprintf("want 1 <= min <= max <= %d", MaxTCPSize))
		}
		d.Mean = (d.Min + d.Max) / 2
	case SizeBimodal:
		if len(parts) != 3 {
			return bad("want small,large,probability")
		}
		d.Min, ok = num(parts[0])
		d.Max, ok2 = num(parts[1])
		p, err := strconv.ParseFloat(strings.TrimSpace(parts[2]), 64)
		if !ok || !ok2 || err != nil || p < 0 || p > 1 {
			return bad(fmt.Sprintf("want two byte counts in 1..%d and a probability in [0, 1]", MaxTCPSize))
		}
		d.P = p
		d.Mean = int(math.Round(float64(d.Min)*(1-p) + float64(d.Max)*p))
	case SizeLognormal:
		if len(parts) != 2 {
			return bad("want mean,sigma")
		}
		sigma, err := strconv.ParseFloat(strings.TrimSpace(parts[1]), 64)
		if d.Mean, ok = num(parts[0]); !ok || err != nil || sigma <= 0 || sigma > 4 {
			return bad(fmt.Sprintf("want a mean in 1..%d and a sigma in (0, 4]", MaxTCPSize))
		}
		d.Sigma = sigma
	default:
		return bad("unknown distribution " + strconv.Quote(kind))
	}
	return d, nil
}

// Draw returns n sizes, each clamped to [floor, ceil], seeded so that a point
// is reproducible; Draw(m, seed) starts with Draw(n, seed) for m > n, so a
// closed loop can extend its draws as it goes.
func (d SizeDist) Draw(n int, seed uint64, floor, ceil int) []int32 {
	out := make([]int32, n)
	rng := rand.New(rand.NewPCG(seed, 0x73697a6573)) // "sizes"
	mean := float64(d.Mean)
	mu := math.Log(mean) - d.Sigma*d.Sigma/2 // lognormal with mean m
	for i := range out {
		var v float64
		switch d.Kind {
		case SizeUniform:
			v = float64(d.Min + rng.IntN(d.Max-d.Min+1))
		case SizeExponential:
			v = math.Round(rng.ExpFloat64() * mean)
		case SizeBimodal:
			v = float64(d.Min)
			if rng.Float64() < d.P {
				v = float64(d.Max)
			}
		case SizeLognormal:
			v = math.Round(math.Exp(mu + d.Sigma*rng.NormFloat64()))
		default:
			v = mean
		}
		out[i] = int32(min(max(v, float64(floor)), float64(ceil)))
	}
	return out
}
