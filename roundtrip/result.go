package roundtrip

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/fleetcache/fleetcache/policy"
)

// Outcome says, in one word, what the cache did for a request.
type Outcome uint8

// The outcomes, from the cheapest to the origin to the dearest.
const (
	// OutcomeHit: served from the store without asking the origin (a
	// stale-while-revalidate response included, and a local 304 to the
	// caller's own validators).
	OutcomeHit Outcome = iota + 1
	// OutcomeCoalesced: served from another request's fetch, in this
	// process or in another instance.
	OutcomeCoalesced
	// OutcomeRevalidated: the stored response, confirmed by the origin
	// with a 304.
	OutcomeRevalidated
	// OutcomeStale: the stored response, served stale because the origin
	// failed (stale-if-error).
	OutcomeStale
	// OutcomeMiss: the origin's response, nothing usable being stored (or
	// a 504 for only-if-cached).
	OutcomeMiss
	// OutcomeBypass: sent to the origin without the cache: an unsafe
	// method, a request the cache does not answer, WithBypass, a closed
	// transport.
	OutcomeBypass
	// OutcomeError: RoundTrip returned an error.
	OutcomeError
)

func (o Outcome) String() string {
	switch o {
	case OutcomeHit:
		return "hit"
	case OutcomeCoalesced:
		return "coalesced"
	case OutcomeRevalidated:
		return "revalidated"
	case OutcomeStale:
		return "stale"
	case OutcomeMiss:
		return "miss"
	case OutcomeBypass:
		return "bypass"
	case OutcomeError:
		return "error"
	}
	return "unknown"
}

// Result is what the cache did for one request, as Options.OnResult hears
// it when RoundTrip returns.
type Result struct {
	Outcome Outcome
	// CacheStatus is the transport's member of the response's
	// Cache-Status field (RFC 9211); zero with Err. Its detail says
	// "storing" when the body was still being read into the store.
	CacheStatus policy.CacheStatus
	Status      int   // the response's status code; 0 with Err
	Err         error // what RoundTrip returned instead of a response
	// Duration runs from the call of RoundTrip to its return: the
	// response's header, not its body.
	Duration time.Duration
	// StoreDuration is the part of Duration spent in store calls.
	StoreDuration time.Duration
	// StoreReachable is false when a store call for the request failed,
	// timed out, or was not made because the breaker is open: the
	// request was served as if nothing were stored. A store that answered
	// with a refusal (RefusedError) was reachable.
	StoreReachable bool
}

// observe runs roundTrip for a request whose Result someone wants: an
// Observer (Options.OnResult is one), or the debug log.
func (t *Transport) observe(req *http.Request) (*http.Response, error) {
	start := time.Now()
	tl := &tally{}
	tallied := req.WithContext(context.WithValue(req.Context(), tallyKey{}, tl))
	resp, err := t.roundTrip(tallied)
	r := Result{Duration: time.Since(start), StoreDuration: time.Duration(tl.store.Load()), StoreReachable: !tl.failed.Load(), Err: err}
	if err == nil {
		if resp.Request == tallied {
			resp.Request = req // the caller's, as when it is not observed
		}
		r.Status = resp.StatusCode
		members, _ := policy.ParseCacheStatus(resp.Header) // ours is well formed; another's is not our business
		for _, m := range members {
			if m.Cache == t.name {
				r.CacheStatus = m.CacheStatus // the last one that names us is ours
			}
		}
	}
	r.Outcome = outcomeOf(r.CacheStatus, err)
	if t.observer != nil {
		t.observer.Result(req, r)
	}
	ctx := req.Context()
	if t.log.Enabled(ctx, slog.LevelDebug) {
		attrs := []slog.Attr{
			slog.String("method", req.Method),
			slog.String("url", req.URL.Redacted()),
			slog.String("outcome", r.Outcome.String()),
			slog.Int("status", r.Status),
			slog.String("cache_status", r.CacheStatus.String(t.name)),
			slog.Duration("duration", r.Duration),
			slog.Duration("store_duration", r.StoreDuration),
			slog.Bool("store_reachable", r.StoreReachable),
		}
		if err != nil {
			attrs = append(attrs, slog.Any("err", err))
		}
		t.log.LogAttrs(ctx, slog.LevelDebug, "fleetcache: request", attrs...)
	}
	return resp, err
}

// outcomeOf reads the outcome from what Cache-Status says.
func outcomeOf(cs policy.CacheStatus, err error) Outcome {
	switch {
	case err != nil:
		return OutcomeError
	case cs.Hit:
		return OutcomeHit
	case cs.Collapsed:
		return OutcomeCoalesced
	case cs.Detail == "stale-if-error":
		return OutcomeStale
	case cs.Fwd == "bypass" || cs.Fwd == "method":
		return OutcomeBypass
	case cs.FwdStatus == http.StatusNotModified && (cs.Fwd == "stale" || cs.Fwd == "request"):
		return OutcomeRevalidated
	}
	return OutcomeMiss
}

// tally is what an observed request's store calls add up to. Background
// work started for the request (a refresh, a body being stored) may add to
// it after its Result was made: the fields are atomic, and nobody reads
// them then.
type tally struct {
	store  atomic.Int64 // nanoseconds in store calls
	failed atomic.Bool
}

type tallyKey struct{}

// tallyOf returns the tally of an observed request's context, or nil; every
// method of a nil tally does nothing, at no cost.
func tallyOf(ctx context.Context) *tally {
	tl, _ := ctx.Value(tallyKey{}).(*tally)
	return tl
}

func (tl *tally) start() time.Time {
	if tl == nil {
		return time.Time{}
	}
	return time.Now()
}

func (tl *tally) since(start time.Time) {
	if tl != nil {
		tl.store.Add(int64(time.Since(start)))
	}
}

func (tl *tally) unreachable() {
	if tl != nil {
		tl.failed.Store(true)
	}
}
