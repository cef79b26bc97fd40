package loadgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// A synthetic request asks the server to spend a service time before it
// answers (cmd/jrapp -app synthetic): the request header is followed by the
// service time in nanoseconds, 8 bytes big-endian, so a synthetic request is at
// least SyntheticHeaderLen bytes. Heavy-tailed service times are where stacks
// differ most (head-of-line blocking, queueing behind a long request).
const (
	ServiceOffset      = HeaderLen
	SyntheticHeaderLen = HeaderLen + 8
	// MaxService bounds one request's service time.
	MaxService = time.Second
)

// Service distributions.
const (
	ServiceConstant    = "constant"    // every request Mean
	ServiceExponential = "exponential" // mean Mean
	ServiceBimodal     = "bimodal"     // Mean, or Long with probability P
	ServiceLognormal   = "lognormal"   // mean Mean, shape Sigma
)

// ServiceDist is the distribution of the service time requests ask for.
type ServiceDist struct {
	Kind  string        // "" for none (plain echo)
	Mean  time.Duration // constant value, exponential/lognormal mean, bimodal short mode
	Long  time.Duration // bimodal long mode
	P     float64       // bimodal probability of Long
	Sigma float64       // lognormal shape
}

// Enabled reports whether requests carry a service time.
func (d ServiceDist) Enabled() bool { return d.Kind != "" }

// String is the form ParseService reads.
func (d ServiceDist) String() string {
	switch d.Kind {
	case "":
		return ""
	case ServiceBimodal:
		return fmt.Sprintf("%s:%v,%v,%g", d.Kind, d.Mean, d.Long, d.P)
	case ServiceLognormal:
		return fmt.Sprintf("%s:%v,%g", d.Kind, d.Mean, d.Sigma)
	}
	return fmt.Sprintf("%s:%v", d.Kind, d.Mean)
}

// ParseService reads "constant:10us", "exponential:10us", "bimodal:5us,100us,0.1"
// or "lognormal:10us,1.0"; "" means none.
func ParseService(s string) (ServiceDist, error) {
	if s == "" {
		return ServiceDist{}, nil
	}
	kind, args, _ := strings.Cut(s, ":")
	parts := strings.Split(args, ",")
	bad := func(why string) (ServiceDist, error) {
		return ServiceDist{}, fmt.Errorf("service %q: %s (forms: constant:10us, exponential:10us, bimodal:5us,100us,0.1, lognormal:10us,1.0)", s, why)
	}
	dur := func(v string) (time.Duration, bool) {
		d, err := time.ParseDuration(v)
		return d, err == nil && d > 0 && d <= MaxService
	}
	d := ServiceDist{Kind: kind}
	var ok bool
	switch kind {
	case ServiceConstant, ServiceExponential:
		if len(parts) != 1 {
			return bad("want one duration")
		}
		if d.Mean, ok = dur(parts[0]); !ok {
			return bad("the mean must be a duration in (0, 1s]")
		}
	case ServiceBimodal:
		if len(parts) != 3 {
			return bad("want short,long,probability")
		}
		var ok2 bool
		d.Mean, ok = dur(parts[0])
		d.Long, ok2 = dur(parts[1])
		p, err := strconv.ParseFloat(parts[2], 64)
		if !ok || !ok2 || err != nil || p < 0 || p > 1 {
			return bad("want two durations in (0, 1s] and a probability in [0, 1]")
		}
		d.P = p
	case ServiceLognormal:
		if len(parts) != 2 {
			return bad("want mean,sigma")
		}
		sigma, err := strconv.ParseFloat(parts[1], 64)
		if d.Mean, ok = dur(parts[0]); !ok || err != nil || sigma <= 0 || sigma > 4 {
			return bad("want a mean in (0, 1s] and a sigma in (0, 4]")
		}
		d.Sigma = sigma
	default:
		return bad("unknown distribution " + strconv.Quote(kind))
	}
	return d, nil
}

// Draw returns n service times in nanoseconds, drawn before the run like the
// schedule (seeded, so a point is reproducible), each capped at MaxService.
func (d ServiceDist) Draw(n int, seed uint64) []uint64 {
	out := make([]uint64, n)
	if !d.Enabled() {
		return out
	}
	rng := rand.New(rand.NewPCG(seed, 0x73657276696365)) // "service"
	mean := float64(d.Mean)
	// lognormal with mean m: mu = ln m - sigma^2/2.
	mu := math.Log(mean) - d.Sigma*d.Sigma/2
	for i := range out {
		var v float64
		switch d.Kind {
		case ServiceConstant:
			v = mean
		case ServiceExponential:
			v = rng.ExpFloat64() * mean
		case ServiceBimodal:
			v = mean
			if rng.Float64() < d.P {
				v = float64(d.Long)
			}
		case ServiceLognormal:
			v = math.Exp(mu + d.Sigma*rng.NormFloat64())
		}
		out[i] = uint64(min(v, float64(MaxService)))
	}
	return out
}
