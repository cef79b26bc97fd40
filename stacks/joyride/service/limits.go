package service

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// # Per-application limits
//
// The service holds things on its applications' behalf: sockets and the
// ports they bind, connections accepted for them, bytes the stack has not
// taken yet or the application's ring could not take, fast-path entries, and
// the time of its control goroutine and engine. Without a bound one
// application could take all of them from the others. Each is bounded per
// application (Config), and past a bound the application gets what a kernel
// would give a process in the same place:
//
//   - sockets (MaxSockets) and TCP listeners (MaxListeners): EMFILE, the
//     errno of a process out of descriptors;
//   - connections accepted but not yet announced on a full ring
//     (MaxBacklog, the accept queue): the connection is reset, as Linux does
//     with tcp_abort_on_overflow; gVisor completes the handshake before the
//     service sees a connection, so a SYN cannot be refused, and a reset
//     frees the memory at once and tells the peer now instead of after its
//     retransmissions;
//   - bytes buffered (MaxBufferedBytes): a send beyond it fails the socket
//     with ENOBUFS (the kernel's errno when socket memory runs out; the data
//     was handed over asynchronously, so the stream cannot continue), and on
//     the receive side the service stops reading the socket, so TCP's window
//     closes as it would for a full kernel receive buffer;
//   - fast-path entries (MaxFlows): no error; the socket is served by gVisor
//     instead, a slower path with no per-socket table;
//   - control requests (ControlRate): EAGAIN, "try again", for a request the
//     service declines to do now.
//
// Every refusal is counted in Stats (by limit) and logged, at most once per
// LimitLogInterval per application and limit, with the count since the last
// line: an application hammering a limit cannot flood the log either.

// Defaults of Config's limits; docs/SECURITY.md says why each is what it is.
const (
	DefaultMaxListeners     = 1024
	DefaultMaxBacklog       = 4096
	DefaultMaxBufferedBytes = 64 << 20
	DefaultMaxFlows         = 1024
	DefaultControlRate      = 10000
	DefaultControlBurst     = 1000
)

// LimitLogInterval is the least time between two log lines about one
// application's one limit.
const LimitLogInterval = 10 * time.Second

// limit names one of the bounds, for counters and log lines.
type limit int

const (
	limitSockets limit = iota
	limitListeners
	limitBacklog
	limitBuffers
	limitFlows
	limitControlRate
	numLimits
)

var limitNames = [numLimits]string{"sockets", "listeners", "backlog", "buffered_bytes", "flows", "control_rate"}

func (l limit) String() string { return limitNames[l] }

// LimitCounts are the refusals of each limit, summed over applications.
func (s *Stats) LimitCounts() map[string]uint64 {
	m := make(map[string]uint64, numLimits)
	for l := range numLimits {
		m[l.String()] = s.overLimit(l).Load()
	}
	return m
}

// limitLog rate-limits one application's log lines about its limits.
type limitLog struct {
	mu     sync.Mutex
	last   [numLimits]time.Time
	missed [numLimits]uint64 // refusals since the last line
}

// refuse counts one refusal of limit l for application a and logs it unless
// a line about the same limit went out less than LimitLogInterval ago.
func (s *Service) refuse(a *app, l limit, detail string) {
	s.stats.overLimit(l).Add(1)
	now := time.Now()
	a.limits.mu.Lock()
	a.limits.missed[l]++
	if now.Sub(a.limits.last[l]) < LimitLogInterval {
		a.limits.mu.Unlock()
		return
	}
	n := a.limits.missed[l]
	a.limits.missed[l] = 0
	a.limits.last[l] = now
	a.limits.mu.Unlock()
	s.log.Warn("application over its limit", "app", a.id, "name", a.name, "limit", l.String(),
		"refused", n, "detail", detail, "interval", LimitLogInterval)
}

// newControlLimiter is an application's token bucket for control requests;
// nil when the rate is unlimited.
func (s *Service) newControlLimiter() *rate.Limiter {
	if s.cfg.ControlRate <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(s.cfg.ControlRate), s.cfg.ControlBurst)
}
