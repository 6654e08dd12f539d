package roundtrip

import (
	"errors"
	"log/slog"
	"sync"
	"time"
)

// errBreakerOpen is returned instead of calling Redis while the breaker is
// open; callers treat it like any other store failure: go to the origin.
var errBreakerOpen = errors.New("fleetcache: store circuit breaker open")

// Breaker thresholds. A handful of consecutive failures means Redis is down
// or stuck, not that one command was unlucky; the cooldown grows while
// probes keep failing so that a long outage costs almost nothing, and is
// capped so that caching resumes soon after Redis comes back.
const (
	breakerFailures    = 5
	breakerCooldown    = 250 * time.Millisecond
	breakerMaxCooldown = 5 * time.Second
)

// breaker stops calling the store after repeated failures, lets one probe
// through once the cooldown has passed, and closes again when a probe
// succeeds. It logs each transition once.
type breaker struct {
	log *slog.Logger
	now func() time.Time

	mu       sync.Mutex
	failures int
	open     bool
	probing  bool
	cooldown time.Duration
	retryAt  time.Time
	trips    int64
}

// allow reports whether a store call may be made now. While open, the first
// caller after the cooldown becomes the probe.
func (b *breaker) allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open {
		return true
	}
	if b.probing || b.now().Before(b.retryAt) {
		return false
	}
	b.probing = true
	return true
}

// done records the outcome of a call that allow let through. A call that
// its caller abandoned (cancelled) is no evidence about the store: it only
// frees the probe slot.
func (b *breaker) done(err error, abandoned bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if abandoned {
		b.probing = false
		return
	}
	if err == nil {
		if b.open {
			b.log.Info("fleetcache: store reachable again, caching resumed")
		}
		b.failures, b.open, b.probing, b.cooldown = 0, false, false, 0
		return
	}
	b.failures++
	switch {
	case b.open && b.probing:
		b.probing = false
		b.cooldown = min(2*b.cooldown, breakerMaxCooldown)
		b.retryAt = b.now().Add(b.cooldown)
	case !b.open && b.failures >= breakerFailures:
		b.open, b.trips = true, b.trips+1
		b.cooldown = breakerCooldown
		b.retryAt = b.now().Add(b.cooldown)
		b.log.Warn("fleetcache: store failing, serving from the origin uncached until it recovers", "err", err)
	}
}

// isOpen reports whether store calls are being skipped.
func (b *breaker) isOpen() bool {
	open, _ := b.state()
	return open
}

func (b *breaker) state() (open bool, trips int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open, b.trips
}

// refusalInterval is how often each kind of store refusal is logged: a
// Redis out of memory refuses every write, and one line a minute says so
// without flooding the log.
const refusalInterval = time.Minute

// refusalLog logs store refusals, each kind at most once a refusalInterval,
// with how many were not logged since.
type refusalLog struct {
	log *slog.Logger
	now func() time.Time

	mu    sync.Mutex
	kinds map[string]*refusalKind
}

type refusalKind struct {
	logged time.Time
	quiet  int64 // refusals since the last line
}

// maxRefusalKinds bounds the kinds remembered; the kind is the first word
// of an error reply, so a store answering odd replies cannot grow the map.
const maxRefusalKinds = 64

// note records a refused call; err is the whole error, kind its refusal's.
func (l *refusalLog) note(kind string, err error) {
	now := l.now()
	l.mu.Lock()
	if l.kinds == nil {
		l.kinds = make(map[string]*refusalKind)
	}
	k := l.kinds[kind]
	if k == nil {
		if len(l.kinds) >= maxRefusalKinds {
			clear(l.kinds)
		}
		k = &refusalKind{}
		l.kinds[kind] = k
	} else if now.Sub(k.logged) < refusalInterval {
		k.quiet++
		l.mu.Unlock()
		return
	}
	quiet := k.quiet
	k.logged, k.quiet = now, 0
	l.mu.Unlock()
	l.log.Warn("fleetcache: the store refused a call; the request went to the origin", "kind", kind, "err", err, "refused_since_last_line", quiet)
}
