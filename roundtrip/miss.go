package roundtrip

import (
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetcache/fleetcache/coalesce"
	"github.com/fleetcache/fleetcache/policy"
)

// The miss path, in the order it runs: a miss is collapsed with the
// identical ones of the process (run), its leader waits for a fleet peer or
// claims the fleet lease (lead), asks the origin (fetch, exchange) and
// settles the answer (complete, freshen, share), whose body is then read for
// the store (fill) while its owner reads it; the others are served what it
// stored (follow). The lease ends once, with the fill (endLease).

// miss is one request that nothing stored could answer as it is, from the
// lookup that found nothing to the end of the fill of its answer, as
// net/http's transportRequest is one request's state: its methods are the
// steps of the path.
type miss struct {
	t      *Transport
	rq     *policy.Request
	stored *policy.Response // a stale entry to revalidate, a stored part to complete, or nil
	fwd    string           // why the store could not answer (Cache-Status fwd)
	key    string           // the flight key: one variant of one URL, or one range of it
	me     *caller
	// lease is the URL's fleet lease as the last claim left it. When Mine,
	// this miss holds it, and ends it once, with the fill of its answer.
	lease coalesce.Lease
	// background: a stale-while-revalidate refresh, which leaves the fetch
	// to a fleet peer already on it.
	background bool
	// begun is set by whichever comes first for a lease holder: its fetch
	// starting, or its caller giving up before it could; see run.
	begun atomic.Bool
}

// caller identifies one RoundTrip call, so that a result knows whose
// request it sent.
type caller struct{ ctx context.Context }

// A result is what the leader of a burst came to, handed to every caller of
// the burst: a *failure, a *ready entry, a *flight whose body is being read,
// or leftToPeer. Its owner, the caller whose request was sent, is answered
// with it (respond); the others are served the entry it stored when that can
// answer their own request, and send their own request otherwise (follow).
type result interface {
	ownedBy(c *caller) bool
}

// failure is an origin call that returned no response.
type failure struct {
	owner *caller
	err   error
}

// ready is an entry known without reading a body: read from the store
// after a fleet peer's fill (no owner, no resp), freshened by a 304, or a
// stored part completed by a 206 (resp is that answer).
type ready struct {
	owner  *caller
	entry  *policy.Response
	resp   *http.Response // the origin's answer it was made from, or nil
	out    written        // what became of it in the store
	detail string         // why it may not be shared, when it may not
}

// leftToPeer is a background refresh that found a fleet peer refreshing
// the same URL: it fetched nothing.
type leftToPeer struct{}

func (f *failure) ownedBy(c *caller) bool { return f.owner == c }
func (r *ready) ownedBy(c *caller) bool   { return r.owner == c }
func (leftToPeer) ownedBy(*caller) bool   { return false }

// shared reports whether the entry may be served to other callers.
func (r *ready) shared() bool { return r.out != uncacheable }

// report fills in what cs says about the store: stored, or why not.
func (r *ready) report(cs policy.CacheStatus) policy.CacheStatus {
	if !r.shared() {
		cs.Detail = r.detail
		return cs
	}
	cs.Stored, cs.Detail = r.out == stored, r.out.detail()
	return cs
}

// miss answers a request that nothing stored can answer; partial is a
// stored part that lacks what rq asks for, or nil; lease is the URL's fleet
// lease as the lookup left it.
func (t *Transport) miss(rq *policy.Request, partial *policy.Response, fwd string, lease coalesce.Lease) (*http.Response, error) {
	t.stats.misses.Add(1)
	return t.newMiss(rq, partial, fwd, lease).run()
}

// revalidate validates a stale (or no-cache) stored response with the
// origin: a 304 freshens it, a new response replaces it.
func (t *Transport) revalidate(rq *policy.Request, stored *policy.Response, fwd string) (*http.Response, error) {
	t.stats.revalidations.Add(1)
	return t.newMiss(rq, stored, fwd, coalesce.Lease{Key: rq.URL}).run()
}

func (t *Transport) newMiss(rq *policy.Request, stored *policy.Response, fwd string, lease coalesce.Lease) *miss {
	return &miss{t: t, rq: rq, stored: stored, fwd: fwd, key: t.flightKey(rq), me: &caller{ctx: rq.R.Context()}, lease: lease}
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

// run sends one origin request for all the identical requests of the
// process (and, with a fleet store, of the fleet) that arrive while it runs.
// The caller whose request is sent streams the answer; the others are
// served the stored result when it can answer their own request, and send
// their own request otherwise (RFC 9111 §4).
func (m *miss) run() (*http.Response, error) {
	t := m.t
	if t.hfm.marked(m.key, t.now()) {
		// Not collapsed: the answer is this caller's alone, so its own
		// conditions go to the origin too.
		return m.respond(m.fetch(m.stored, true))
	}
	key, holder := m.key, m.lease.Mine
	var h *holding
	if holder {
		// The fleet's lease holder fetches in a call of its own, never
		// joining another caller's, which would wait for it; the
		// process's other callers wait for that call (see lead).
		key = "lease\x00" + key
		h = t.holders.register(m.key)
	}
	ctx := m.rq.R.Context()
	res, _, err := t.group.Do(ctx, key, t.fetchTimeout, func(gctx context.Context) (result, error) {
		if holder && !m.begun.CompareAndSwap(false, true) {
			return nil, context.Canceled // its caller gave up first
		}
		t.fetches.add()
		defer t.fetches.done()
		r := m.lead(gctx)
		if f, ok := r.(*flight); ok && f.owner == m.me {
			// Should the caller stop waiting for the header, the
			// flight goes on without it.
			f.keepOwner = context.AfterFunc(ctx, f.disown)
		}
		if h != nil {
			t.holders.finish(m.key, h, r)
		}
		return r, nil
	})
	if err != nil {
		if holder && m.begun.CompareAndSwap(false, true) {
			// Gave up before its fetch began: nobody else will end the
			// lease, and the process's callers waiting for the holder
			// read the store again.
			m.endLease(false)
			t.holders.finish(m.key, h, nil)
		}
		return nil, err
	}
	if f, ok := res.(*flight); ok && f.owner == m.me && !f.keepOwner() {
		return nil, ctx.Err() // gave up just as the header came
	}
	if res.ownedBy(m.me) {
		return m.respond(res)
	}
	return m.follow(res)
}

// lead is the work of the first caller of a burst. The group forgets a key
// once the response's header has arrived, but its body may still be
// filling: a caller that comes then joins that flight, and one that comes
// after it was stored finds the entry, which its lookup may have missed
// just before (in a fleet, the claim reads it again).
func (m *miss) lead(ctx context.Context) result {
	t := m.t
	if f, ok := t.filling.Load(m.key); ok && !m.lease.Mine {
		return f.(*flight)
	}
	// Range requests skip the fleet lease: it is one per URL, and a range
	// is a small part of it that peers rarely ask for at once; queueing a
	// peer's full fetch, or another range, behind it would only add delay.
	if t.fleet == nil || t.brk.isOpen() || m.rq.Range != "" || m.lease.Mine {
		if t.fleet == nil && !m.background {
			if entry := t.usable(ctx, m.rq); entry != nil {
				return &ready{entry: entry, out: stored}
			}
		}
		return m.fetch(m.stored, false)
	}
	if !m.lease.Marked && m.lease.Holder == "" {
		// Nothing claimed yet: a revalidation, whose entry is stored, or a
		// lookup that guessed the Vary names wrong.
		if entry := m.claim(ctx); entry != nil {
			return m.found(entry)
		}
	}
	// Twice at most: a peer that gave up without storing leaves the lease
	// free for one of the waiters.
	for waits := 0; ; waits++ {
		switch {
		case m.lease.Mine, m.lease.Marked, m.lease.Holder == "", waits == 2:
			// Ours; or marked, so that queueing behind a holder would
			// only serialise the burst; or the store failed.
			return m.fetch(m.stored, false)
		case m.background:
			return leftToPeer{}
		}
		if r := m.awaitPeer(ctx); r != nil {
			return r
		}
	}
}

// claim reads the store again and claims the URL's fleet lease in the same
// round trip, even when a (stale) entry is stored for a revalidation. It
// returns the stored response when it can be served as it is; the lease is
// left in m.lease.
func (m *miss) claim(ctx context.Context) *policy.Response {
	t, rq := m.t, m.rq
	names := t.vary.get(rq.URL)
	var resp *policy.Response
	var vary []string
	lease := coalesce.Lease{Key: rq.URL}
	err := t.storeCallSized(ctx, t.sizes.get(rq.URL), nil, func(ctx context.Context) (err error) {
		variant := policy.Variant(names, policy.VaryValues(names, rq.R.Header))
		resp, vary, lease, err = t.fleet.Claim(ctx, rq.URL, names, variant, t.leaseTimeout, m.stored != nil)
		return err
	})
	m.lease = lease
	if err != nil {
		return nil
	}
	if resp == nil {
		t.vary.set(rq.URL, vary) // a wrong guess is not made twice
		return nil
	}
	t.vary.set(rq.URL, resp.Vary)
	if t.policy.Reuse(rq, resp, t.now()).Action != policy.Serve {
		return nil
	}
	return resp
}

// awaitPeer waits, at most the lease time, for the fleet peer that holds
// the lease to end it, and reads the store again, claiming the lease if it
// is free by then; it returns what the read found when that can answer rq.
// A wait cut short (the lease time, a store failure) reads again all the
// same: the lease may have expired with its dead holder, and a store that
// is down fails the read too, which sends the request to the origin.
//
// A holder that is a caller of this transport is waited for in process,
// and its result taken as a caller that joined its call would: also when it
// registers only after this caller found the lease held (its claim returned
// later), which ends the wait through the store.
func (m *miss) awaitPeer(ctx context.Context) result {
	hs := &m.t.holders
	registered := hs.registered(m.key)
	defer hs.unwatch(m.key, registered)
	if h := hs.find(m.key); h != nil {
		return m.awaitHolder(ctx, h)
	}
	wctx, cancel := context.WithTimeout(ctx, m.t.leaseTimeout)
	defer cancel()
	waited := make(chan struct{})
	go func() {
		defer close(waited)
		_ = m.t.fleet.Wait(wctx, m.lease)
	}()
	select {
	case <-waited:
	case <-registered:
		cancel()
		<-waited
		if h := hs.find(m.key); h != nil {
			return m.awaitHolder(ctx, h)
		}
	}
	if entry := m.claim(ctx); entry != nil {
		return m.found(entry)
	}
	return nil
}

// awaitHolder waits for the call of a holder of this transport and returns
// its result; when the holder gave up before fetching, it reads again.
func (m *miss) awaitHolder(ctx context.Context, h *holding) result {
	select {
	case <-h.done:
		if h.res != nil {
			return h.res
		}
	case <-ctx.Done():
		return m.fetch(m.stored, false)
	}
	if entry := m.claim(ctx); entry != nil {
		return m.found(entry)
	}
	return nil
}

// holders are the fleet leases held by callers of one transport, by flight
// key, with the calls that fetch under them, so that the transport's other
// callers for the key wait for that call in process rather than for its
// fill through the store.
type holders struct {
	mu    sync.Mutex
	calls map[string]*holding
	woken map[string]chan struct{} // closed when a holding for the key is registered
}

// holding is one holder's call: res is set, nil when the holder gave up
// before fetching, and then done is closed.
type holding struct {
	done chan struct{}
	res  result
}

func (hs *holders) register(key string) *holding {
	h := &holding{done: make(chan struct{})}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.calls == nil {
		hs.calls, hs.woken = make(map[string]*holding), make(map[string]chan struct{})
	}
	hs.calls[key] = h
	if ch, ok := hs.woken[key]; ok {
		close(ch)
		delete(hs.woken, key)
	}
	return h
}

func (hs *holders) finish(key string, h *holding, res result) {
	h.res = res
	close(h.done)
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.calls[key] == h {
		delete(hs.calls, key)
	}
}

func (hs *holders) find(key string) *holding {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return hs.calls[key]
}

// registered returns a channel closed when a holding for key is
// registered. Only the leader of a key's call waits on it, so there is one
// at a time; unwatch forgets it.
func (hs *holders) registered(key string) chan struct{} {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.woken == nil {
		hs.calls, hs.woken = make(map[string]*holding), make(map[string]chan struct{})
	}
	ch := make(chan struct{})
	hs.woken[key] = ch
	return ch
}

func (hs *holders) unwatch(key string, ch chan struct{}) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.woken[key] == ch {
		delete(hs.woken, key)
	}
}

// found is the result of a read that found what a fleet peer stored: each
// caller served from it counts as coalesced. A lease the read took is not
// needed.
func (m *miss) found(entry *policy.Response) result {
	m.endLease(false)
	return &ready{entry: entry, out: stored}
}

// usable reads the store and returns what it holds for rq when that can be
// served as it is.
func (t *Transport) usable(ctx context.Context, rq *policy.Request) *policy.Response {
	entry, _, _ := t.lookup(ctx, rq, false)
	if entry == nil || t.policy.Reuse(rq, entry, t.now()).Action != policy.Serve {
		return nil
	}
	return entry
}

// fetch asks the origin and settles its answer. base is the stored response
// the request is made from: conditional on its validators, or asking for
// the part it lacks; without one the caller's own conditions are dropped so
// that the answer can be stored and shared, unless own says the answer is
// the caller's alone anyway.
func (m *miss) fetch(base *policy.Response, own bool) result {
	t, rq := m.t, m.rq
	var out *http.Request
	completing := false
	switch {
	case base != nil && !t.policy.Covers(rq, base):
		// A stored part that lacks what is asked: ask for the one range
		// it lacks, or, when that cannot be combined, for what the
		// caller asked.
		if out, completing = t.policy.Complete(rq, base, t.maxEntry); !completing {
			base = nil
		}
	case base != nil:
		out, _ = policy.Conditional(rq, base)
	case own:
		out = rq.R
	default:
		out = policy.Unconditional(rq)
	}
	a, err := m.exchange(out)
	if err != nil {
		m.endLease(false)
		return &failure{owner: m.me, err: err}
	}
	if completing {
		if r := m.complete(base, a); r != nil {
			return r
		}
		// A 200 (the representation changed, so If-Range sent it whole)
		// or an error: the answer to the caller's own request.
	}
	if base != nil && a.resp.StatusCode == http.StatusNotModified {
		return m.freshen(base, a)
	}
	return m.share(base, a)
}

// answer is the origin's answer to one exchange, read no further than its
// header.
type answer struct {
	resp              *http.Response
	reqTime, respTime time.Time
	cancel            context.CancelFunc // ends the exchange
	timer             *time.Timer        // the shared fetch deadline
}

// done ends an exchange whose body is read or not wanted.
func (a *answer) done() {
	a.timer.Stop()
	a.cancel()
}

// exchange sends out to the origin, detached from the caller's context and
// bounded by FetchTimeout: the answer may be shared.
func (m *miss) exchange(out *http.Request) (*answer, error) {
	t := m.t
	fctx, cancel := context.WithCancel(context.WithoutCancel(m.rq.R.Context()))
	timer := time.AfterFunc(t.fetchTimeout, cancel)
	a := &answer{reqTime: t.now(), cancel: cancel, timer: timer}
	resp, err := t.next.RoundTrip(out.WithContext(fctx))
	a.respTime = t.now()
	if err != nil {
		a.done()
		return nil, err
	}
	if resp.Header == nil {
		resp.Header = make(http.Header)
	}
	a.resp = resp
	return a, nil
}

// complete settles the answer to a completion request: the stored part
// joined with it, or, for an answer about a range the caller did not ask
// for, the caller's own request sent again. It returns nil for an answer to
// the caller's request as it is.
func (m *miss) complete(partial *policy.Response, a *answer) result {
	resp := a.resp
	if joined := m.t.combine(m.rq, partial, resp, a.reqTime, a.respTime); joined != nil {
		a.done()
		return m.keep(joined, a)
	}
	if resp.StatusCode == http.StatusPartialContent || resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
		resp.Body.Close()
		a.done()
		return m.fetch(nil, false)
	}
	return nil
}

// freshen settles a 304 to a revalidation: the stored response freshened
// with it (RFC 9111 §4.3.4), or, when the 304 selects nothing stored or what
// it freshened cannot answer the request, the request sent again,
// unconditionally.
func (m *miss) freshen(base *policy.Response, a *answer) result {
	t, rq := m.t, m.rq
	a.resp.Body.Close()
	a.done()
	t.stats.notModified.Add(1)
	fresh, ok := t.policy.Freshen(base, a.resp, a.reqTime, a.respTime)
	if !ok || !t.policy.Covers(rq, fresh) {
		return m.fetch(nil, false)
	}
	r := m.keep(fresh, a)
	if !r.shared() {
		// The 304 made the response unshareable (private, no-store):
		// nobody but this caller is served it, and what was stored goes
		// unless the reason may be this request's own.
		merged := &http.Response{StatusCode: fresh.Status, Header: fresh.Header}
		_, why := t.policy.Storable(rq, merged)
		r.detail = string(why)
		if t.policy.ForEveryone(rq, merged, nil, why) {
			t.purge(rq.R.Context(), rq.URL)
		}
	}
	return r
}

// keep stores an entry made without reading a body, and ends the lease.
func (m *miss) keep(entry *policy.Response, a *answer) *ready {
	out := m.store(entry)
	m.endLease(false)
	return &ready{owner: m.me, entry: entry, resp: a.resp, out: out}
}

// share settles an answer with a body: when it may be stored, a flight
// whose body is read for the store (fill) while its owner reads it, shared
// with the callers that join it; otherwise its owner's alone.
func (m *miss) share(base *policy.Response, a *answer) result {
	t, rq, resp := m.t, m.rq, a.resp
	f := &flight{owner: m.me, resp: resp, reqTime: a.reqTime, respTime: a.respTime,
		cancel: a.cancel, timer: a.timer, wake: make(chan struct{}), buffers: &t.buffers}
	storable, why := t.policy.Storable(rq, resp)
	if storable && resp.ContentLength > t.maxEntry {
		storable, why = false, policy.ReasonTooLarge
	}
	if storable {
		// The entry is built from the header now and gets its body when
		// the body is in. One that would be neither fresh nor worth a
		// revalidation (no freshness, no validator) is kept by no store
		// and can serve no waiter: it is as unshareable as a private one.
		f.head = t.policy.NewResponse(rq, resp, nil, a.reqTime, a.respTime)
		if ttl, _ := t.policy.Keep(f.head, a.respTime); ttl <= 0 {
			why, f.head = policy.ReasonUncacheable, nil
		}
	}
	f.detail = string(why)
	if f.head != nil && resp.ContentLength > 0 {
		// A body of known length is accounted for whole, before a byte
		// of it is read.
		if t.buffers.take(resp.ContentLength) {
			f.held, f.buf = resp.ContentLength, make([]byte, 0, resp.ContentLength)
		} else {
			// The process holds all it may: this one streams through
			// uncached. That says nothing about the URL (why stays
			// empty): no marker, no purge.
			f.head, f.detail = nil, bufferFull.detail()
		}
	}
	if f.head == nil {
		m.unshareable(resp, base, why)
		f.mu.Lock()
		f.state, f.rest = streaming, resp.Body
		f.handOff()
		f.mu.Unlock()
		return f
	}
	t.filling.Store(m.key, f)
	t.fetches.add()
	go f.pump(t.maxEntry, func(body []byte) (*policy.Response, written) {
		return m.fill(f, body)
	}, func(entry *policy.Response, out written) {
		defer t.fetches.done()
		t.filling.CompareAndDelete(m.key, f)
		if out == tooLarge && entry == nil {
			// Handed to its owner for its size: too large for everyone.
			m.unshareable(resp, base, policy.ReasonTooLarge)
			return
		}
		m.endLease(false)
	})
	return f
}

// fill stores the entry once its body has arrived whole, before anyone
// sees the body end.
func (m *miss) fill(f *flight, body []byte) (*policy.Response, written) {
	entry := *f.head // f.head stays as the owner may have seen it
	entry.Body = body
	out := m.store(&entry)
	if out == tooLarge {
		m.unshareable(f.resp, nil, policy.ReasonTooLarge)
	}
	// Stored first, forgotten second, and both before anyone sees the body
	// end: a caller that finds neither the flight nor the entry cannot
	// exist, and none finds a finished flight.
	m.t.filling.CompareAndDelete(m.key, f)
	return &entry, out
}

// store offers entry to the store; a fleet lease this miss holds ends with
// the write when the write keeps it.
func (m *miss) store(entry *policy.Response) written {
	out := m.t.put(m.rq.R.Context(), entry, m.lease)
	if out == stored {
		m.lease.Mine = false // the fill ended it
	}
	return out
}

// unshareable handles an answer that may not be stored. When the policy
// says the reason holds for every request of the URL, not only for this
// one, the key is marked so that the next burst is not collapsed behind an
// answer it cannot use (Varnish's hit-for-miss), in the process and in the
// fleet; and a stored response it answered a revalidation of is removed,
// since the origin no longer lets it be shared. Server errors leave the
// stored response alone: stale-if-error may need it. The lease ends here.
func (m *miss) unshareable(resp *http.Response, base *policy.Response, why policy.Reason) {
	t := m.t
	everyone := t.policy.ForEveryone(m.rq, resp, base, why)
	if everyone {
		t.hfm.mark(m.key, t.now())
	}
	m.endLease(everyone)
	if everyone && base != nil && resp.StatusCode < 500 {
		t.purge(m.rq.R.Context(), m.rq.URL)
	}
}

// endLease ends the fleet lease this miss holds, once, and marks the URL
// for the fleet when mark says its answers can be shared with nobody and no
// peer marked it already. Peers waiting for a stored entry have been woken
// by the fill; a release wakes the others, which then read again and find
// the lease free. A release is attempted even while the breaker is open,
// bounded by the store timeout; one that fails is tried once more in the
// background, for at most the lease time: a lease left to expire would hold
// every peer for LeaseTimeout, which a Redis that stalled for a moment must
// not cost them.
func (m *miss) endLease(mark bool) {
	t, l := m.t, m.lease
	m.lease.Mine = false
	mark = mark && !l.Marked
	if t.fleet == nil || !l.Mine && !mark {
		return
	}
	l.Key = m.rq.URL
	ctx := context.WithoutCancel(m.rq.R.Context())
	if !l.Mine {
		_ = t.storeCall(ctx, func(ctx context.Context) error { return t.fleet.Release(ctx, l, true) })
		return
	}
	rctx, cancel := context.WithTimeout(ctx, t.storeTimeout)
	err := t.fleet.Release(rctx, l, mark)
	cancel()
	if err == nil {
		return
	}
	t.fetches.add()
	go func() {
		defer t.fetches.done()
		ctx, cancel := context.WithTimeout(ctx, t.leaseTimeout)
		defer cancel()
		_ = t.fleet.Release(ctx, l, mark)
	}()
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

// respond turns the result the caller owns into its response.
func (m *miss) respond(r result) (*http.Response, error) {
	t, rq := m.t, m.rq
	if stale := m.staleOnError(r); stale != nil {
		return stale, nil
	}
	switch r := r.(type) {
	case *failure:
		return nil, r.err
	case *ready:
		// Freshened by a 304, or a part completed by a 206.
		resp := t.serveEntry(rq, r.entry, r.report(policy.CacheStatus{Fwd: m.fwd, FwdStatus: r.resp.StatusCode}))
		// A cookie the origin set with its answer is this caller's; it is
		// never stored.
		if c := r.resp.Header["Set-Cookie"]; len(c) > 0 {
			resp.Header["Set-Cookie"] = c
		}
		return resp, nil
	}
	f := r.(*flight)
	if f.head != nil && f.resp.ContentLength >= 0 && f.resp.ContentLength <= settleBytes {
		if err := f.settle(rq.R.Context()); err != nil {
			f.disown()
			return nil, err
		}
	}
	cs := f.report(policy.CacheStatus{Fwd: m.fwd, FwdStatus: f.resp.StatusCode})
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

// follow serves a caller that waited on another caller's result: the
// stored entry when it can answer this caller's own request, and otherwise
// this caller's own request to the origin.
func (m *miss) follow(r result) (*http.Response, error) {
	t, rq := m.t, m.rq
	switch r := r.(type) {
	case *failure:
		// The origin failed for the leader; asking it again at once, once
		// per waiter, would only pile on.
		return m.respond(&failure{owner: m.me, err: r.err})
	case *ready:
		if r.shared() && t.policy.Reuse(rq, r.entry, t.now()).Action == policy.Serve {
			t.stats.coalesced.Add(1)
			return t.serveEntry(rq, r.entry, r.report(policy.CacheStatus{Fwd: m.fwd, Collapsed: true})), nil
		}
	case *flight:
		if r.join() {
			entry, err := r.wait(rq.R.Context())
			if err != nil {
				return nil, err
			}
			if entry != nil && t.policy.Reuse(rq, entry, t.now()).Action == policy.Serve {
				t.stats.coalesced.Add(1)
				return t.serveEntry(rq, entry, r.report(policy.CacheStatus{Fwd: m.fwd, Collapsed: true})), nil
			}
		}
	}
	m.key = t.flightKey(rq) // the leader may have learnt the URL's Vary names
	return m.respond(m.fetch(m.stored, false))
}

// serveEntry serves an entry that was just fetched or freshened, with cs
// saying how (its ttl is added here).
func (t *Transport) serveEntry(rq *policy.Request, entry *policy.Response, cs policy.CacheStatus) *http.Response {
	reuse := t.policy.Reuse(rq, entry, t.now())
	cs.TTL, cs.HasTTL = reuse.TTL, true
	return t.serve(rq, entry, reuse.Age, cs)
}

// staleOnError serves the stored response instead of an origin failure
// when stale-if-error or the policy allows it (RFC 5861 §4, RFC 9111
// §4.2.4).
func (m *miss) staleOnError(r result) *http.Response {
	t, rq, stored := m.t, m.rq, m.stored
	if stored == nil {
		return nil
	}
	status := 0
	switch r := r.(type) {
	case *failure:
	case *flight:
		switch status = r.resp.StatusCode; status {
		case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		default:
			return nil
		}
	default:
		return nil
	}
	now := t.now()
	if !t.policy.StaleIfError(rq, stored, now) {
		return nil
	}
	if f, ok := r.(*flight); ok {
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
		m := t.newMiss(&brq, stored, "", coalesce.Lease{Key: brq.URL})
		m.background = true
		res, _, err := t.group.Do(ctx, key, t.fetchTimeout, func(gctx context.Context) (result, error) {
			return m.lead(gctx), nil
		})
		if _, failed := res.(*failure); err != nil || failed || !res.ownedBy(m.me) {
			return
		}
		t.stats.revalidations.Add(1)
		if f, ok := res.(*flight); ok {
			body := f.body(ctx)
			_, _ = io.Copy(io.Discard, body)
			body.Close()
		}
	})
	if !started {
		t.refreshing.Delete(key)
	}
}
