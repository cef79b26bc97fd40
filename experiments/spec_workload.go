package experiments

// Parsing an experiment file's workload: protocols, sizes, instances, rates
// or windows, and the key-value and external applications' settings.

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/joyride-bench/joyride/loadgen"
	"github.com/joyride-bench/joyride/stacks"
)

func lowest(rates []float64) float64 {
	if len(rates) == 0 {
		return 0
	}
	return rates[0]
}

func (p *parser) workload(n *yaml.Node, w *Workload) {
	m, ok := p.Mapping(n, "workload", workloadKeys)
	if !ok {
		return
	}
	if pn := m["protocol"]; pn != nil && pn.Kind == yaml.SequenceNode {
		p.protocolList(pn, w)
	} else {
		p.Enum(pn, "workload.protocol", protocols, &w.Protocol)
	}
	if sn := m["schedule"]; sn != nil {
		// poisson, constant, or bursty:ON,OFF (periods with arrivals, without).
		if v, ok := p.Str(sn, "workload.schedule"); ok {
			if err := loadgen.ValidSchedule(v); err != nil {
				p.Add(sn, "workload.schedule", "%q is not allowed (allowed: %s, bursty:ON,OFF such as bursty:1ms,4ms)", v, strings.Join(schedules, ", "))
			} else {
				w.Schedule = v
			}
		}
	}
	if sn := m["size"]; sn != nil {
		if sn.Kind == yaml.ScalarNode && sn.ShortTag() == "!!str" {
			// A distribution of sizes.
			d, err := loadgen.ParseSize(sn.Value)
			switch {
			case err != nil:
				p.Add(sn, "workload.size", "%v", err)
			case w.Protocol != "tcp":
				p.Add(sn, "workload.size", "a distribution of sizes needs protocol: tcp (a udp request is one frame of one size)")
			case d.Fixed():
				if p.sizeInRange(sn, "workload.size", w.Protocol, d.Mean) {
					w.Size = d.Mean
				}
			default:
				w.SizeDist, w.Size = d.String(), max(d.Mean, MinSize)
			}
		} else if v, ok := p.Integer(sn, "workload.size"); ok && p.sizeInRange(sn, "workload.size", w.Protocol, int(v)) {
			w.Size = int(v)
		}
	}
	if sn := m["sizes"]; sn != nil {
		if m["size"] != nil {
			p.Add(sn, "workload.sizes", "give either size (one size or a distribution) or sizes (a sweep), not both")
		} else {
			w.Sizes = p.intList(sn, "workload.sizes", "size", func(item *yaml.Node, path string, v int64) bool {
				return p.sizeInRange(item, path, w.Protocol, int(v))
			})
			if len(w.Sizes) > 0 {
				w.Size = w.Sizes[0]
			}
		}
	}
	if in := m["instances"]; in != nil {
		w.Instances = p.intList(in, "workload.instances", "instance count", func(item *yaml.Node, path string, v int64) bool {
			if v < 1 || v > MaxInstances {
				p.Add(item, path, "%s is out of range (1..%d application instances)", item.Value, MaxInstances)
				return false
			}
			return true
		})
		if w.Protocol != "tcp" {
			p.Add(in, "workload.instances", "several application instances share the load by connection: it needs protocol: tcp")
		}
	}
	rn, wn := m["rates"], m["windows"]
	switch {
	case rn != nil && wn != nil:
		p.Add(wn, "workload.windows", "give either rates (open loop) or windows (closed loop), not both")
	case wn != nil:
		if w.Protocol != "tcp" {
			p.Add(wn, "workload.windows", "a closed loop keeps requests outstanding on connections: it needs protocol: tcp")
		}
		if sn := m["schedule"]; sn != nil {
			p.Add(sn, "workload.schedule", "a closed loop (windows) has no schedule: each reply sends the next request")
		}
		w.Windows = p.intList(wn, "workload.windows", "window", func(item *yaml.Node, path string, v int64) bool {
			if v < 1 || v > loadgen.MaxWindow {
				p.Add(item, path, "%s is out of range (1..%d requests outstanding per connection)", item.Value, loadgen.MaxWindow)
				return false
			}
			return true
		})
	case rn != nil:
		w.Rates = p.rates(rn)
	default:
		p.Add(n, "workload", "missing key \"rates\" (offered requests/s, a strictly increasing list such as [10000, 50000]; or windows: [1, 4, 16] for a closed loop over tcp)")
	}
	p.duration(m["duration"], "workload.duration", 100*time.Millisecond, 600*time.Second, "100ms..600s", &w.Duration)
	p.duration(m["warmup"], "workload.warmup", 0, 60*time.Second, "0s..60s", &w.Warmup)
	p.duration(m["late_threshold"], "workload.late_threshold", 1, time.Second, "> 0, at most 1s", &w.LateThreshold)
	intervals := fmt.Sprintf("%v..%v in whole milliseconds", loadgen.MinInterval, loadgen.MaxInterval)
	if in := m["interval"]; in != nil {
		var iv Duration
		p.duration(in, "workload.interval", loadgen.MinInterval, loadgen.MaxInterval, intervals, &iv)
		if iv.Duration != 0 && loadgen.CheckInterval(iv.Duration) != nil {
			p.Add(in, "workload.interval", "%s is not a whole number of milliseconds (%s; interval logs stamp intervals to the millisecond)", in.Value, intervals)
		} else if iv.Duration != 0 {
			w.Interval = iv
		}
	}
	p.Enum(m["mode"], "workload.mode", modes, &w.Mode)
	if w.Mode == "connect" && w.Protocol != "tcp" {
		p.Add(m["mode"], "workload.mode", "connect opens TCP connections: it needs protocol: tcp")
	}
	if w.Mode == "connect" && (w.Windows != nil || w.Sizes != nil || w.SizeDist != "") {
		p.Add(m["mode"], "workload.mode", "connect opens connections at rates: windows and sizes do not apply")
	}
	if sn := m["service"]; sn != nil {
		if v, ok := p.Str(sn, "workload.service"); ok {
			if _, err := loadgen.ParseService(v); err != nil {
				p.Add(sn, "workload.service", "%v", err)
			} else {
				w.Service = v
			}
		}
	}
	for _, key := range kvApps {
		if mn := m[key]; mn != nil {
			if w.Memcached != nil {
				p.Add(mn, "workload."+key, "give one key-value workload, workload.%s or workload.%s, not both", kvApps[0], kvApps[1])
				continue
			}
			w.Memcached, w.kvKey = p.memcached(mn, "workload."+key), key
		}
	}
	if cn := m["connections"]; cn != nil {
		if v, ok := p.Integer(cn, "workload.connections"); ok {
			switch {
			case v < 1 || v > MaxConnections:
				p.Add(cn, "workload.connections", "%s is out of range (1..%d)", cn.Value, MaxConnections)
			case w.Protocol != "tcp" && v != 1 && !slices.Contains(w.Protocols, "tcp"):
				p.Add(cn, "workload.connections", "%s connections need protocol: tcp (udp has no connections)", cn.Value)
			default:
				w.Connections = int(v)
			}
		}
	}
}

// protocolList reads protocol: [udp, tcp].
func (p *parser) protocolList(n *yaml.Node, w *Workload) {
	seq, _ := p.Sequence(n, "workload.protocol")
	var list []string
	for i, item := range seq {
		var v string
		path := fmt.Sprintf("workload.protocol[%d]", i)
		if !p.Enum(item, path, protocols, &v) {
			return
		}
		if slices.Contains(list, v) {
			p.Add(item, path, "%q is listed twice", v)
			return
		}
		list = append(list, v)
	}
	switch len(list) {
	case 0:
		p.Add(n, "workload.protocol", "empty: give udp, tcp, or a list of them")
	case 1:
		w.Protocol = list[0]
	default:
		// The checks of sizes and of tcp-only keys run as for udp, which is
		// the stricter.
		w.Protocols, w.Protocol = list, "udp"
	}
}

// externalApp checks an experiment of an unmodified program and fills the
// workload's defaults.
func (p *parser) externalApp(n *yaml.Node, e *Experiment) {
	w := &e.Workload
	kv := slices.Contains(kvApps, e.App)
	if kv && w.Memcached == nil {
		w.Memcached, w.kvKey = &MemcachedSpec{Keys: 10000, Popularity: "zipf:0.99", GetFraction: 0.9, ValueSize: 64}, e.App
	}
	if w.Protocol != "tcp" || w.Mode != "rpc" {
		p.Add(n, "workload", "app %s is served over tcp: it needs protocol: tcp and mode rpc", e.App)
	}
	if kv {
		w.Size = w.Memcached.ValueSize // what summary.csv's size column reports
		if w.Sizes != nil || w.SizeDist != "" {
			p.Add(n, "workload", "app %s sizes its requests by %s.value_size: size and sizes do not apply", e.App, e.App)
		}
	} else if w.SizeDist != "" {
		p.Add(n, "workload.size", "app %s serves one file of workload.size bytes: give a number, not a distribution", e.App)
	}
	for _, s := range e.Stacks {
		if err := stacks.Require(s.Name, stacks.Preload); err != nil {
			p.Add(n, "stacks", "app %s is Debian's unmodified program: %v", e.App, err)
		}
	}
}

// memcached reads a key-value workload at path, defaults filled.
func (p *parser) memcached(n *yaml.Node, path string) *MemcachedSpec {
	ms := &MemcachedSpec{Keys: 10000, Popularity: "zipf:0.99", GetFraction: 0.9, ValueSize: 64}
	m, ok := p.Mapping(n, path, memcachedKeys)
	if !ok {
		return ms
	}
	if kn := m["keys"]; kn != nil {
		if v, ok := p.Integer(kn, path+".keys"); ok {
			if v < 1 || v > loadgen.MaxMemcachedKeys {
				p.Add(kn, path+".keys", "%s is out of range (1..%d)", kn.Value, loadgen.MaxMemcachedKeys)
			} else {
				ms.Keys = int(v)
			}
		}
	}
	if pn := m["popularity"]; pn != nil {
		if v, ok := p.Str(pn, path+".popularity"); ok {
			if _, err := loadgen.ParsePopularity(v); err != nil {
				p.Add(pn, path+".popularity", "%v", err)
			} else {
				ms.Popularity = v
			}
		}
	}
	if gn := m["get_fraction"]; gn != nil {
		if v, ok := p.Number(gn, path+".get_fraction"); ok {
			if !(v >= 0 && v <= 1) {
				p.Add(gn, path+".get_fraction", "%s is out of range (a share of gets in [0, 1])", gn.Value)
			} else {
				ms.GetFraction = v
			}
		}
	}
	if vn := m["value_size"]; vn != nil {
		if v, ok := p.Integer(vn, path+".value_size"); ok {
			if v < 1 || v > loadgen.MaxMemcachedValue {
				p.Add(vn, path+".value_size", "%s is out of range (1..%d bytes)", vn.Value, loadgen.MaxMemcachedValue)
			} else {
				ms.ValueSize = int(v)
			}
		}
	}
	return ms
}

// sizeInRange checks a request size against the protocol's limits.
func (p *parser) sizeInRange(n *yaml.Node, path, protocol string, v int) bool {
	switch {
	case protocol == "tcp" && (v < MinSize || v > MaxTCPSize):
		p.Add(n, path, "%d is out of range for tcp (%d..%d bytes; the generator's header needs %d)", v, MinSize, MaxTCPSize, MinSize)
	case protocol != "tcp" && (v < MinSize || v > MaxUDPSize):
		p.Add(n, path, "%d is out of range for udp (%d..%d bytes: the generator's header needs %d, and one 1500-byte frame holds %d)", v, MinSize, MaxUDPSize, MinSize, MaxUDPSize)
	default:
		return true
	}
	return false
}

// intList reads a non-empty, strictly increasing list of integers, each
// checked by ok (which reports its own problem); nil when any is wrong.
func (p *parser) intList(n *yaml.Node, path, what string, ok func(*yaml.Node, string, int64) bool) []int {
	seq, isSeq := p.Sequence(n, path)
	if !isSeq {
		return nil
	}
	if len(seq) == 0 {
		p.Add(n, path, "empty: list at least one %s", what)
		return nil
	}
	var out []int
	good := true
	for i, item := range seq {
		ipath := fmt.Sprintf("%s[%d]", path, i)
		v, isInt := p.Integer(item, ipath)
		switch {
		case !isInt || !ok(item, ipath, v):
			good = false
		case len(out) > 0 && int(v) <= out[len(out)-1]:
			p.Add(item, ipath, "%s is not above the previous %s %d (the list must be strictly increasing)", item.Value, what, out[len(out)-1])
			good = false
		}
		out = append(out, int(v))
	}
	if !good {
		return nil
	}
	return out
}

func (p *parser) rates(n *yaml.Node) []float64 {
	const path = "workload.rates"
	seq, ok := p.Sequence(n, path)
	if !ok {
		return nil
	}
	if len(seq) == 0 {
		p.Add(n, path, "empty: list at least one offered rate (requests/s)")
		return nil
	}
	var out []float64
	good := true
	prev, prevText := math.Inf(-1), ""
	for i, item := range seq {
		ipath := fmt.Sprintf("%s[%d]", path, i)
		v, ok := p.Number(item, ipath)
		if !ok {
			good = false
			continue
		}
		switch {
		case math.IsNaN(v) || v <= 0:
			p.Add(item, ipath, "%s is not a positive rate (requests/s > 0)", item.Value)
			good = false
		case v > MaxRate:
			p.Add(item, ipath, "%s is above the maximum rate (requests/s <= %g)", item.Value, MaxRate)
			good = false
		case v <= prev:
			p.Add(item, ipath, "%s is not above the previous rate %s (rates must be strictly increasing)", item.Value, prevText)
			good = false
		}
		if !math.IsNaN(v) {
			prev, prevText = v, item.Value
		}
		out = append(out, v)
	}
	if !good {
		return nil
	}
	return out
}
