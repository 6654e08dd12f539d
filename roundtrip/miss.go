package roundtrip

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/fleetcache/fleetcache/coalesce"
	"github.com/fleetcache/fleetcache/policy"
)

// miss fetches a response nothing stored can answer; partial is a stored
// partial response that lacks what rq asks for, or nil.
func (t *Transport) miss(rq *policy.Request, partial *policy.Response, fwd string) (*http.Response, error) {
	t.stats.misses.Add(1)
	return t.collapse(rq, partial, fwd)
}

// revalidate validates a stale (or no-cache) stored response with the
// origin: a 304 freshens it, a new response replaces it.
func (t *Transport) revalidate(rq *policy.Request, stored *policy.Response, fwd string) (*http.Response, error) {
	t.stats.revalidations.Add(1)
	return t.collapse(rq, stored, fwd)
}

// flightKey names what a fetch produces: one variant of one URL, or one
// range of it.
func (t *Transport) flightKey(rq *policy.Request) string {
	names := t.vary.get(rq.URL)
	key := rq.R.Method + " " + rq.URL + "\x00" + policy.Variant(names, policy.VaryValues(names, rq.R.Header))
	if rq.Range != "" {
		key += "\x00" + rq.Range + "\x00" + rq.R.Header.Get("If-Range")
	}
	return key
}

// collapse sends one origin request for all the identical requests of the
// process (and, with a fleet store, of the fleet) that arrive while it
// runs. The caller whose request is sent streams the answer; the others are
// served the stored result when it can answer their own request, and send
// their own request otherwise (RFC 9111 §4).
func (t *Transport) collapse(rq *policy.Request, stored *policy.Response, fwd string) (*http.Response, error) {
	ctx := rq.R.Context()
	me := &caller{ctx: ctx}
	key := t.flightKey(rq)
	if t.hfm.marked(key, t.now()) {
		// Not collapsed: the answer is this caller's alone, so its own
		// conditions go to the origin too.
		return t.respond(rq, stored, fwd, t.origin(rq, stored, me, nil, key, true))
	}
	f, _, err := t.group.Do(ctx, key, t.fetchTimeout, func(gctx context.Context) (*flight, error) {
		t.fetches.add()
		defer t.fetches.done()
		f := t.lead(gctx, rq, stored, me, key)
		if f != nil && f.owner == me {
			// Should the caller stop waiting for the header, the
			// flight goes on without it.
			f.keepOwner = context.AfterFunc(ctx, f.disown)
		}
		return f, nil
	})
	if err != nil {
		return nil, err
	}
	if f != nil && f.owner == me && !f.keepOwner() {
		return nil, ctx.Err() // gave up just as the header came
	}
	if f == nil {
		// Joined a background refresh that left the fetch to a fleet peer.
		f = t.origin(rq, stored, me, nil, key, false)
	}
	if f.owner == me {
		return t.respond(rq, stored, fwd, f)
	}
	return t.follow(rq, stored, fwd, f)
}

// lead is the work of the first caller of a burst. The group forgets a key
// once the response's header has arrived, but its body may still be
// filling: a caller that comes then joins that flight, and one that comes
// after it was stored finds the entry, which our caller's lookup may have
// missed just before (with a fleet, fetch reads it under the lease).
func (t *Transport) lead(ctx context.Context, rq *policy.Request, stored *policy.Response, me *caller, key string) *flight {
	if f, ok := t.filling.Load(key); ok {
		return f.(*flight)
	}
	if t.fleet == nil {
		if entry := t.usable(ctx, rq); entry != nil {
			return doneFlight(entry)
		}
	}
	return t.fetch(ctx, rq, stored, me, key, false)
}

// fetch is the leader's work: wait for a fleet peer that already fetches
// the URL, or take the fleet lease and ask the origin. In background mode
// (a stale-while-revalidate refresh) it gives up, returning nil, when a peer
// is already on it.
func (t *Transport) fetch(ctx context.Context, rq *policy.Request, stored *policy.Response, me *caller, key string, background bool) *flight {
	// Range requests skip the fleet lease: it is one per URL, and a range
	// is a small part of it that peers rarely ask for at once; queueing a
	// peer's full fetch, or another range, behind it would only add delay.
	if t.fleet == nil || t.brk.isOpen() || rq.Range != "" {
		return t.origin(rq, stored, me, nil, key, false)
	}
	leaseKey := t.fstore.LeaseKey(rq.URL)
	// Twice at most: a peer that gave up without storing leaves the lease
	// free for one of the waiters.
	for range 2 {
		var lease *coalesce.Lease
		var ok bool
		err := t.storeCall(ctx, func(ctx context.Context) (err error) {
			lease, ok, err = t.fleet.Acquire(ctx, leaseKey, t.leaseTimeout)
			return err
		})
		switch {
		case err != nil:
			return t.origin(rq, stored, me, nil, key, false)
		case !ok && t.fleetMarked(ctx, rq.URL):
			// A peer holds the lease, but the URL's last answer could
			// not be shared: queueing behind it would only serialise
			// the burst.
			return t.origin(rq, stored, me, nil, key, false)
		case ok:
			// A peer may have stored the URL and let the lease go since
			// this caller looked: read once more under the lease.
			if entry := t.usable(ctx, rq); entry != nil {
				t.endLease(lease)
				return doneFlight(entry)
			}
			return t.origin(rq, stored, me, lease, key, false)
		case background:
			return nil
		}
		if entry := t.awaitPeer(ctx, rq, leaseKey); entry != nil {
			return doneFlight(entry) // each caller served from it counts as coalesced
		}
	}
	return t.origin(rq, stored, me, nil, key, false)
}

// fleetMarked reports whether a fleet peer marked url as not worth
// collapsing (hit-for-miss). It is read only when a peer holds the lease,
// so that an uncontended miss does not pay a round trip for it.
func (t *Transport) fleetMarked(ctx context.Context, url string) bool {
	var marked bool
	err := t.storeCall(ctx, func(ctx context.Context) (err error) {
		marked, err = t.fleet.Marked(ctx, t.fstore.MarkerKey(url))
		return err
	})
	return err != nil || marked
}

// awaitPeer waits, at most the lease time, for the fleet peer holding
// leaseKey to store the URL, and returns the stored response when it can
// answer rq. The watch is set up before the store is read again, so a fill
// that happens in between is not missed.
func (t *Transport) awaitPeer(ctx context.Context, rq *policy.Request, leaseKey string) *policy.Response {
	ctx, cancel := context.WithTimeout(ctx, t.leaseTimeout)
	defer cancel()
	w := t.fleet.Watch(ctx, t.fstore.FillChannel(rq.URL), leaseKey)
	defer w.Stop()
	if entry := t.usable(ctx, rq); entry != nil {
		return entry
	}
	if err := w.Wait(ctx); err != nil {
		return nil
	}
	return t.usable(ctx, rq)
}

// usable reads the store and returns what it holds for rq when that can be
// served as it is.
func (t *Transport) usable(ctx context.Context, rq *policy.Request) *policy.Response {
	entry, _ := t.lookup(ctx, rq)
	if entry == nil || t.policy.Reuse(rq, entry, t.now()).Action != policy.Serve {
		return nil
	}
	return entry
}

// origin sends rq to the origin, detached from the caller's context and
// bounded by FetchTimeout, and returns the flight that reads the answer.
// The request is made conditional on stored's validators when there is a
// stored response; otherwise the caller's own conditions are dropped so that
// the answer can be stored and shared, unless keepConditions says the
// answer is the caller's alone anyway.
func (t *Transport) origin(rq *policy.Request, stored *policy.Response, me *caller, lease *coalesce.Lease, key string, keepConditions bool) *flight {
	var out *http.Request
	completing := false
	switch {
	case stored != nil && !t.policy.Covers(rq, stored):
		// A stored part that lacks what is asked: ask for the one range
		// it lacks, or, when that cannot be combined, for what the
		// caller asked.
		if out, completing = t.policy.Complete(rq, stored, t.maxEntry); !completing {
			stored = nil
		}
	case stored != nil:
		out, _ = policy.Conditional(rq, stored)
	case keepConditions:
		out = rq.R
	default:
		out = policy.Unconditional(rq)
	}
	fctx, cancel := context.WithCancel(context.WithoutCancel(rq.R.Context()))
	timer := time.AfterFunc(t.fetchTimeout, cancel)
	reqTime := t.now()
	resp, err := t.next.RoundTrip(out.WithContext(fctx))
	respTime := t.now()
	if err != nil {
		timer.Stop()
		cancel()
		t.endLease(lease)
		return failedFlight(me, err)
	}
	if resp.Header == nil {
		resp.Header = make(http.Header)
	}
	f := &flight{owner: me, resp: resp, reqTime: reqTime, respTime: respTime, cancel: cancel, timer: timer, wake: make(chan struct{})}

	if completing {
		switch joined := t.combine(rq, stored, resp, reqTime, respTime); {
		case joined != nil:
			timer.Stop()
			cancel()
			f.ready, f.state, f.entry = true, complete, joined
			f.out = t.put(rq.R.Context(), joined)
			f.storable = f.out != uncacheable
			t.endLease(lease)
			return f
		case resp.StatusCode == http.StatusPartialContent || resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
			// An answer about a range the caller did not ask for: ask
			// for what the caller asked.
			resp.Body.Close()
			timer.Stop()
			cancel()
			return t.origin(rq, nil, me, lease, key, false)
		}
		// A 200 (the representation changed, so If-Range sent it whole)
		// or an error: the answer to the caller's own request.
	}

	if stored != nil && resp.StatusCode == http.StatusNotModified {
		resp.Body.Close()
		timer.Stop()
		cancel()
		t.stats.notModified.Add(1)
		fresh, ok := t.policy.Freshen(stored, resp, reqTime, respTime)
		if !ok || !t.policy.Covers(rq, fresh) {
			// The 304 selects nothing we hold (RFC 9111 §4.3.4), or
			// what it freshened cannot answer the request: ask again,
			// unconditionally.
			return t.origin(rq, nil, me, lease, key, false)
		}
		f.ready, f.state, f.entry = true, complete, fresh
		f.out = t.put(rq.R.Context(), fresh)
		f.storable = f.out != uncacheable
		if !f.storable {
			// The 304 made the response unshareable (private, no-store):
			// nobody but this caller is served it, and what was stored
			// goes unless the reason may be this request's own.
			merged := &http.Response{StatusCode: fresh.Status, Header: fresh.Header}
			_, why := t.policy.Storable(rq, merged)
			f.detail = string(why)
			if t.policy.ForEveryone(rq, merged, nil, why) {
				t.purge(rq.R.Context(), rq.URL)
			}
		}
		t.endLease(lease)
		return f
	}

	storable, why := t.policy.Storable(rq, resp)
	if storable && resp.ContentLength > t.maxEntry {
		storable, why = false, policy.ReasonTooLarge
	}
	if storable {
		// The entry is built from the header now and gets its body when
		// the body is in. One that would be neither fresh nor worth a
		// revalidation (no freshness, no validator) is kept by no store
		// and can serve no waiter: it is as unshareable as a private one.
		f.head = t.policy.NewResponse(rq, resp, nil, reqTime, respTime)
		if ttl, _ := t.policy.Keep(f.head, respTime); ttl <= 0 {
			storable, why, f.head = false, policy.ReasonUncacheable, nil
		}
	}
	f.storable, f.detail, f.buffers = storable, string(why), &t.buffers
	if storable && resp.ContentLength > 0 {
		// A body of known length is accounted for whole, before a byte
		// of it is read.
		if t.buffers.take(resp.ContentLength) {
			f.held, f.buf = resp.ContentLength, make([]byte, 0, resp.ContentLength)
		} else {
			// The process holds all it may: this one streams through
			// uncached. That says nothing about the URL (why stays
			// empty): no marker, no purge.
			f.storable, f.detail, f.head = false, bufferFull.detail(), nil
		}
	}
	if !f.storable {
		t.unshareable(rq, resp, stored, why, key, lease)
		f.mu.Lock()
		f.state, f.rest = streaming, resp.Body
		f.handOff()
		f.mu.Unlock()
		return f
	}
	t.filling.Store(key, f)
	t.fetches.add()
	go f.pump(t.maxEntry, func(body []byte) (*policy.Response, outcome) {
		entry := *f.head // f.head stays as the owner may have seen it
		entry.Body = body
		out := t.put(rq.R.Context(), &entry)
		if out == tooLarge {
			t.unshareable(rq, resp, nil, policy.ReasonTooLarge, key, nil)
		}
		// Stored first, forgotten second, and both before anyone sees the
		// body end: a caller that finds neither the flight nor the entry
		// cannot exist, and none finds a finished flight.
		t.filling.CompareAndDelete(key, f)
		return &entry, out
	}, func(entry *policy.Response, out outcome) {
		defer t.fetches.done()
		t.filling.CompareAndDelete(key, f)
		if out == tooLarge && entry == nil { // handed off for its size; a store's refusal was handled in fill
			t.unshareable(rq, resp, stored, policy.ReasonTooLarge, key, lease)
			return
		}
		t.endLease(lease)
	})
	return f
}

// combine reads the origin's answer to a completion request and joins it
// to partial, the stored part it completes (RFC 9111 §3.4); nil, with the
// answer left unread, when it is not a 206 that may be stored and combined.
// The answer is small: it is bounded by MaxEntryBytes, or not combined.
func (t *Transport) combine(rq *policy.Request, partial *policy.Response, resp *http.Response, reqTime, respTime time.Time) *policy.Response {
	if ok, _ := t.policy.Storable(rq, resp); !ok || resp.StatusCode != http.StatusPartialContent || resp.ContentLength > t.maxEntry {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, t.maxEntry+1))
	resp.Body.Close()
	if err != nil || int64(len(body)) > t.maxEntry {
		return nil // read, but not combinable: the caller's request goes again
	}
	joined, ok := t.policy.Combine(partial, resp, body, reqTime, respTime)
	if !ok || !t.policy.Covers(rq, joined) {
		return nil
	}
	return joined
}

// unshareable handles a response that may not be stored. When the policy
// says the reason holds for every request of the URL, not only for this
// one, key is marked so that the next burst is not collapsed behind a
// response it cannot use (Varnish's hit-for-miss), in the process and in
// the fleet; and a stored response it answered a revalidation of is
// removed, since the origin no longer lets it be shared. Server errors
// leave the stored response alone: stale-if-error may need it.
func (t *Transport) unshareable(rq *policy.Request, resp *http.Response, stored *policy.Response, why policy.Reason, key string, lease *coalesce.Lease) {
	defer t.endLease(lease)
	if !t.policy.ForEveryone(rq, resp, stored, why) {
		return
	}
	t.hfm.mark(key, t.now())
	ctx := context.WithoutCancel(rq.R.Context())
	if t.fleet != nil {
		_ = t.storeCall(ctx, func(ctx context.Context) error { return t.fleet.Mark(ctx, t.fstore.MarkerKey(rq.URL)) })
	}
	if stored != nil && resp.StatusCode < 500 {
		t.purge(ctx, rq.URL)
	}
}

// endLease frees the fleet lease once the fetch is over. Peers waiting on
// a stored entry have already been woken by the store's fill announcement;
// the others see the lease go and fetch for themselves. It is attempted even
// while the breaker is open, bounded by the store timeout: a lease left to
// expire would hold every peer for LeaseTimeout.
func (t *Transport) endLease(lease *coalesce.Lease) {
	if lease == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.storeTimeout)
	defer cancel()
	_ = lease.Release(ctx)
}

// respond turns the flight the caller owns into its response.
func (t *Transport) respond(rq *policy.Request, stored *policy.Response, fwd string, f *flight) (*http.Response, error) {
	if stale := t.staleOnError(rq, stored, f); stale != nil {
		return stale, nil
	}
	if f.err != nil {
		return nil, f.err
	}
	if f.ready {
		// Served by a fleet peer's fetch, or freshened by a 304.
		status := 0
		if f.resp != nil {
			status = f.resp.StatusCode
		}
		resp := t.serveEntry(rq, f.entry, f.report(policy.CacheStatus{Fwd: fwd, FwdStatus: status, Collapsed: f.resp == nil}))
		if f.resp != nil {
			// A cookie the origin set with its 304 is this caller's; it
			// is never stored.
			if c := f.resp.Header["Set-Cookie"]; len(c) > 0 {
				resp.Header["Set-Cookie"] = c
			}
		}
		return resp, nil
	}
	if f.head != nil && f.resp.ContentLength >= 0 && f.resp.ContentLength <= settleBytes {
		if err := f.settle(rq.R.Context()); err != nil {
			f.disown()
			return nil, err
		}
	}
	cs := f.report(policy.CacheStatus{Fwd: fwd, FwdStatus: f.resp.StatusCode})
	if f.head != nil && policy.NotModified(rq.R, f.head) {
		// The caller's own validators match what is being stored: a
		// local 304 (RFC 9111 §4.3.2), while the body is still read
		// whole for the store.
		f.disown()
		return t.serveEntry(rq, f.head, cs), nil
	}
	resp := *f.resp
	resp.Header = f.resp.Header.Clone()
	resp.Body = f.body(rq.R.Context())
	resp.Request = rq.R
	cs.AppendTo(resp.Header, t.name)
	return &resp, nil
}

// settleBytes is the largest storable body, of known length, whose caller
// is answered only once it arrived and the store took it, so that
// Cache-Status can say whether it was stored: a body that small comes with
// its header in practice. A larger one, or one of unknown length, streams
// to its caller at once, and Cache-Status says detail=storing.
const settleBytes = 32 << 10

// follow serves a caller that waited on another caller's flight: the
// stored result when it can answer this caller's own request, and
// otherwise this caller's own request to the origin.
func (t *Transport) follow(rq *policy.Request, stored *policy.Response, fwd string, f *flight) (*http.Response, error) {
	if f.err != nil {
		// The origin failed for the leader; asking it again at once, once
		// per waiter, would only pile on.
		return t.respond(rq, stored, fwd, failedFlight(nil, f.err))
	}
	if f.join() {
		entry, err := f.wait(rq.R.Context())
		if err != nil {
			return nil, err
		}
		if entry != nil && t.policy.Reuse(rq, entry, t.now()).Action == policy.Serve {
			t.stats.coalesced.Add(1)
			return t.serveEntry(rq, entry, f.report(policy.CacheStatus{Fwd: fwd, Collapsed: true})), nil
		}
	}
	return t.respond(rq, stored, fwd, t.origin(rq, stored, &caller{ctx: rq.R.Context()}, nil, t.flightKey(rq), false))
}

// serveEntry serves an entry that was just fetched or freshened, with cs
// saying how (its ttl is added here).
func (t *Transport) serveEntry(rq *policy.Request, entry *policy.Response, cs policy.CacheStatus) *http.Response {
	reuse := t.policy.Reuse(rq, entry, t.now())
	cs.TTL, cs.HasTTL = reuse.TTL, true
	return t.serve(rq, entry, reuse.Age, cs)
}

// staleOnError serves stored instead of an origin failure when
// stale-if-error or the policy allows it (RFC 5861 §4, RFC 9111 §4.2.4).
func (t *Transport) staleOnError(rq *policy.Request, stored *policy.Response, f *flight) *http.Response {
	if stored == nil {
		return nil
	}
	status := 0
	if f.resp != nil {
		status = f.resp.StatusCode
		switch status {
		case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		default:
			return nil
		}
	} else if f.err == nil {
		return nil
	}
	now := t.now()
	if !t.policy.StaleIfError(rq, stored, now) {
		return nil
	}
	if f.resp != nil && f.owner != nil {
		f.body(rq.R.Context()).Close()
	}
	t.stats.staleServed.Add(1)
	reuse := t.policy.Reuse(rq, stored, now)
	return t.serve(rq, stored, reuse.Age, policy.CacheStatus{
		Fwd: "stale", FwdStatus: status, TTL: reuse.TTL, HasTTL: true, Detail: "stale-if-error",
	})
}

// refreshInBackground revalidates a stale entry that was served under
// stale-while-revalidate, once for the process and, through the lease,
// once for the fleet. The caller never waits for it.
func (t *Transport) refreshInBackground(rq *policy.Request, stored *policy.Response) {
	// The refresh is for the stored response, whole: a range the caller
	// asked for would bring back a part of it.
	r := rq.R.Clone(context.WithoutCancel(rq.R.Context()))
	r.Header.Del("Range")
	r.Header.Del("If-Range")
	brq := t.policy.ParseRequest(r)
	key := t.flightKey(&brq)
	if _, busy := t.refreshing.LoadOrStore(key, struct{}{}); busy {
		return
	}
	started := t.goBackground(func() {
		defer t.refreshing.Delete(key)
		ctx, cancel := context.WithTimeout(r.Context(), t.fetchTimeout)
		defer cancel()
		stop := context.AfterFunc(t.background, cancel)
		defer stop()
		brq.R = r.WithContext(ctx)
		me := &caller{ctx: ctx}
		f, _, err := t.group.Do(ctx, key, t.fetchTimeout, func(gctx context.Context) (*flight, error) {
			return t.fetch(gctx, &brq, stored, me, key, true), nil
		})
		if err != nil || f == nil || f.owner != me || f.resp == nil {
			return
		}
		t.stats.revalidations.Add(1)
		body := f.body(ctx)
		_, _ = io.Copy(io.Discard, body)
		body.Close()
	})
	if !started {
		t.refreshing.Delete(key)
	}
}
