package analysis

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
)

// Point is one row of summary.csv: one (stack, protocol, offered rate,
// repetition) measurement.
type Point struct {
	// Stack is the registered stack name ("kernel", "null", "afxdp", "joyride").
	Stack string
	// Protocol is the transport ("udp", "tcp").
	Protocol string
	// App is the application protocol ("echo", "synthetic", "memcached", ...).
	App string
	// OfferedRPS is the rate the open-loop schedule asked for, requests/s.
	OfferedRPS float64
	// AchievedRPS is the rate of answered requests over the measurement, requests/s.
	AchievedRPS float64
	// Sent, Received and Lost count requests over the measurement (warm-up
	// excluded); Late counts those sent after their scheduled time.
	Sent, Received, Lost, Late uint64
	// Latency distribution in microseconds, from the point's .hlog (FillLatency).
	P50us, P90us, P99us, P999us, MaxUs, MinUs, MeanUs float64
	// 95% confidence intervals of p50 and p99 in microseconds, from order
	// statistics of the point's .hlog (QuantileCI, FillLatency). All four are 0
	// when unknown (a summary.csv from before they existed, a failed point);
	// otherwise Hi > 0, and a Lo of 0 or a Hi of +Inf means "unbounded on that
	// side" (too few samples). HasCI tells.
	P50Lo, P50Hi, P99Lo, P99Hi float64
	// Rep is the repetition number.
	Rep int
	// Valid is false when the point cannot be trusted (DESIGN.md §8), for
	// instance when the generator itself saturated.
	Valid bool
	// Reason says why a point is not valid, or, for a valid one that is an
	// upper bound, why ("" for an exact valid point).
	Reason string
	// UpperBound marks a valid point whose generator sent more than 1% of
	// its requests late in short spells, the VM taking its vCPU away, and was
	// on time between them (loadgen late spells): its latencies include those
	// stalls, so they bound the stack's from above. A generator that fell
	// behind for good makes the point invalid instead.
	UpperBound bool
	// Hlog is the path of the point's .hlog relative to the run directory.
	Hlog string
	// Size is the request size in bytes (the mean when sizes are drawn), 0
	// when unknown (a summary.csv from before it existed).
	Size int
	// Window is, for a closed-loop point, the requests each connection kept
	// outstanding; 0 for open loop, where OfferedRPS is the load.
	Window int
	// Gbps is the payload throughput of the measured replies, Gbit/s in one
	// direction (the echo carries as much back).
	Gbps float64
	// Instances is how many application instances served (density); 0 when
	// the experiment did not sweep them (one).
	Instances int
	// ServerMemMiB is the memory of every server-side process (the
	// applications and the stack's daemon) at the end of the load, as
	// proportional set size: a page shared by k processes (Joyride's regions,
	// shared libraries) counts 1/k in each, so the sum counts it once.
	ServerMemMiB float64
	// ServerCores is how busy the server side's cores were over the measured
	// span (1.0 = one core fully busy); CPUUsPerReq is that busy time per
	// answered request, in µs: at X µs per request, a million requests/s
	// need X cores. 0 when not measured.
	ServerCores, CPUUsPerReq float64
	// Checks are the validity checks of the point's interval log
	// (CheckPoint, SetArrival); nil when not checked. Of them summary.csv
	// keeps the interval count and span, τ, p and the 5% critical value of
	// the ADF test, ρ, p and the independence lag of the rank test, A² and
	// the gaps of the arrival check, and the verdict.
	Checks *Checks
}

// HasCI reports whether p carries confidence intervals for p50 and p99.
func (p Point) HasCI() bool { return p.P50Hi > 0 && p.P99Hi > 0 }

// summaryHeader is the column order WriteSummaryCSV writes.
var summaryHeader = []string{
	"stack", "protocol", "app", "offered_rps", "achieved_rps",
	"sent", "received", "lost", "late",
	"p50_us", "p90_us", "p99_us", "p999_us", "max_us", "min_us", "mean_us",
	"rep", "valid", "reason", "hlog",
	"p50_lo_us", "p50_hi_us", "p99_lo_us", "p99_hi_us",
	"intervals", "adf_stat", "adf_p", "adf_crit5", "lag1_rho", "lag1_p", "indep_lag", "checks",
	"size", "window", "gbps", "server_cores", "cpu_us_per_req", "instances", "server_mem_mib",
	"interval_ms", "arrival_a2", "arrival_n", "upper_bound",
}

// requiredColumns are the columns DESIGN.md §6 promises; the others may be
// missing from a summary.csv and read as their zero value.
var requiredColumns = []string{
	"stack", "protocol", "app", "offered_rps", "achieved_rps",
	"sent", "received", "lost", "late",
	"p50_us", "p90_us", "p99_us", "p999_us", "max_us", "rep", "valid",
}

// f2 formats rates and latencies with two decimals.
func f2(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

// g6 formats a test statistic or p-value with six significant digits.
func g6(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

// pointFields returns the fields of p in summaryHeader order.
func pointFields(p Point) []string {
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	f := []string{
		p.Stack, p.Protocol, p.App, f2(p.OfferedRPS), f2(p.AchievedRPS),
		u(p.Sent), u(p.Received), u(p.Lost), u(p.Late),
		f2(p.P50us), f2(p.P90us), f2(p.P99us), f2(p.P999us), f2(p.MaxUs), f2(p.MinUs), f2(p.MeanUs),
		strconv.Itoa(p.Rep), strconv.FormatBool(p.Valid), p.Reason, p.Hlog,
	}
	if p.HasCI() {
		f = append(f, f2(p.P50Lo), f2(p.P50Hi), f2(p.P99Lo), f2(p.P99Hi))
	} else {
		f = append(f, "", "", "", "")
	}
	tail := []string{strconv.Itoa(p.Size), strconv.Itoa(p.Window), strconv.FormatFloat(p.Gbps, 'f', 4, 64),
		strconv.FormatFloat(p.ServerCores, 'f', 3, 64), f2(p.CPUUsPerReq), strconv.Itoa(p.Instances), f2(p.ServerMemMiB)}
	c := p.Checks
	bound := strconv.FormatBool(p.UpperBound)
	if c == nil {
		return append(append(append(f, "", "", "", "", "", "", "", ""), tail...), "", "", "", bound)
	}
	checksTail := []string{"", "", ""}
	if c.IntervalMs > 0 {
		checksTail[0] = strconv.FormatInt(c.IntervalMs, 10)
	}
	if c.Arrival.Ran {
		checksTail[1], checksTail[2] = g6(c.Arrival.A2), strconv.Itoa(c.Arrival.N)
	}
	f = append(f, strconv.Itoa(c.Intervals))
	if c.ADF.Ran {
		f = append(f, g6(c.ADF.Stat), g6(c.ADF.P), g6(c.ADF.Crit5))
	} else {
		f = append(f, "", "", "")
	}
	if c.Lag1.Ran {
		f = append(f, g6(c.Lag1.Rho), g6(c.Lag1.P), strconv.Itoa(c.Lag1.IndepLag))
	} else {
		f = append(f, "", "", "")
	}
	return append(append(append(append(f, c.Verdict), tail...), checksTail...), bound)
}

// WriteSummaryCSV writes pts to path as summary.csv (header first, one row per
// point, rates and latencies with two decimals), atomically.
func WriteSummaryCSV(path string, pts []Point) error {
	return WriteFileAtomic(path, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		if err := cw.Write(summaryHeader); err != nil {
			return err
		}
		for _, p := range pts {
			if err := cw.Write(pointFields(p)); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	})
}

// ReadSummaryCSV reads a summary.csv written by WriteSummaryCSV or by hand. The
// columns may come in any order; the columns of DESIGN.md §6 are required, the
// others (min_us, mean_us, reason, hlog, the confidence intervals and the
// checks) optional, unknown ones ignored; an empty optional cell reads as
// "unknown". Errors name the file, line and column.
func ReadSummaryCSV(path string) ([]Point, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read summary: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: empty, no header", path)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	col := make(map[string]int, len(header))
	for i, name := range header {
		if _, dup := col[name]; dup {
			return nil, fmt.Errorf("%s:1: column %q appears twice", path, name)
		}
		col[name] = i
	}
	for _, name := range requiredColumns {
		if _, ok := col[name]; !ok {
			return nil, fmt.Errorf("%s:1: missing column %q", path, name)
		}
	}
	var pts []Point
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return pts, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err) // csv.ParseError carries the line
		}
		p, err := parsePoint(rec, col)
		if err != nil {
			line, _ := r.FieldPos(0)
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		pts = append(pts, p)
	}
}

// parsePoint decodes one record whose columns are located by col.
func parsePoint(rec []string, col map[string]int) (Point, error) {
	var p Point
	var err error
	field := func(name string) (string, bool) {
		i, ok := col[name]
		if !ok {
			return "", false
		}
		return rec[i], true
	}
	str := func(name string, dst *string) {
		if v, ok := field(name); ok {
			*dst = v
		}
	}
	num := func(name string, dst *float64) {
		if v, ok := field(name); ok && err == nil {
			if v == "" && !slices.Contains(requiredColumns, name) {
				return
			}
			if *dst, err = strconv.ParseFloat(v, 64); err != nil {
				err = fmt.Errorf("column %s: %q is not a number", name, v)
			}
		}
	}
	count := func(name string, dst *uint64) {
		if v, ok := field(name); ok && err == nil {
			if *dst, err = strconv.ParseUint(v, 10, 64); err != nil {
				err = fmt.Errorf("column %s: %q is not a count", name, v)
			}
		}
	}
	str("stack", &p.Stack)
	str("protocol", &p.Protocol)
	str("app", &p.App)
	str("reason", &p.Reason)
	str("hlog", &p.Hlog)
	num("offered_rps", &p.OfferedRPS)
	num("achieved_rps", &p.AchievedRPS)
	count("sent", &p.Sent)
	count("received", &p.Received)
	count("lost", &p.Lost)
	count("late", &p.Late)
	num("p50_us", &p.P50us)
	num("p90_us", &p.P90us)
	num("p99_us", &p.P99us)
	num("p999_us", &p.P999us)
	num("max_us", &p.MaxUs)
	num("min_us", &p.MinUs)
	num("mean_us", &p.MeanUs)
	num("p50_lo_us", &p.P50Lo)
	num("p50_hi_us", &p.P50Hi)
	num("p99_lo_us", &p.P99Lo)
	num("p99_hi_us", &p.P99Hi)
	num("gbps", &p.Gbps)
	num("server_cores", &p.ServerCores)
	num("cpu_us_per_req", &p.CPUUsPerReq)
	integer := func(name string, dst *int) {
		if v, ok := field(name); ok && v != "" && err == nil {
			if *dst, err = strconv.Atoi(v); err != nil {
				err = fmt.Errorf("column %s: %q is not an integer", name, v)
			}
		}
	}
	integer("size", &p.Size)
	integer("window", &p.Window)
	integer("instances", &p.Instances)
	num("server_mem_mib", &p.ServerMemMiB)
	if err != nil {
		return p, err
	}
	if p.Checks, err = parseChecks(field); err != nil {
		return p, err
	}
	if v, ok := field("rep"); ok {
		if p.Rep, err = strconv.Atoi(v); err != nil {
			return p, fmt.Errorf("column rep: %q is not an integer", v)
		}
	}
	if v, ok := field("valid"); ok {
		if p.Valid, err = strconv.ParseBool(v); err != nil {
			return p, fmt.Errorf("column valid: %q is not true or false", v)
		}
	}
	if v, ok := field("upper_bound"); ok && v != "" {
		if p.UpperBound, err = strconv.ParseBool(v); err != nil {
			return p, fmt.Errorf("column upper_bound: %q is not true or false", v)
		}
	}
	return p, nil
}

// parseChecks reads the check columns of a record; nil when they are absent or
// empty (the point was not checked).
func parseChecks(field func(string) (string, bool)) (*Checks, error) {
	var c Checks
	seen := false
	var err error
	get := func(name string) string {
		v, _ := field(name)
		if v != "" {
			seen = true
		}
		return v
	}
	num := func(name, v string, dst *float64) {
		if v != "" && err == nil {
			if *dst, err = strconv.ParseFloat(v, 64); err != nil {
				err = fmt.Errorf("column %s: %q is not a number", name, v)
			}
		}
	}
	integer := func(name, v string, dst *int) {
		if v != "" && err == nil {
			if *dst, err = strconv.Atoi(v); err != nil {
				err = fmt.Errorf("column %s: %q is not an integer", name, v)
			}
		}
	}
	integer("intervals", get("intervals"), &c.Intervals)
	if v := get("adf_stat"); v != "" {
		c.ADF.Ran = true
		num("adf_stat", v, &c.ADF.Stat)
		num("adf_p", get("adf_p"), &c.ADF.P)
		num("adf_crit5", get("adf_crit5"), &c.ADF.Crit5)
	}
	if v := get("lag1_rho"); v != "" {
		c.Lag1.Ran = true
		num("lag1_rho", v, &c.Lag1.Rho)
		num("lag1_p", get("lag1_p"), &c.Lag1.P)
		integer("indep_lag", get("indep_lag"), &c.Lag1.IndepLag)
	}
	if v := get("interval_ms"); v != "" && err == nil {
		if c.IntervalMs, err = strconv.ParseInt(v, 10, 64); err != nil {
			err = fmt.Errorf("column interval_ms: %q is not an integer", v)
		}
	}
	if v := get("arrival_a2"); v != "" {
		c.Arrival.Ran = true
		num("arrival_a2", v, &c.Arrival.A2)
		integer("arrival_n", get("arrival_n"), &c.Arrival.N)
	}
	c.Verdict = get("checks")
	if err != nil || !seen {
		return nil, err
	}
	return &c, nil
}
