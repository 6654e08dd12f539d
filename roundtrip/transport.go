package roundtrip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetcache/fleetcache/coalesce"
	"github.com/fleetcache/fleetcache/policy"
	"github.com/fleetcache/fleetcache/rules"
)

// DefaultName is the cache's name in Cache-Status unless Options.Name says
// otherwise.
const DefaultName = "fleetcache"

// Store is the shared store the transport reads and writes.
// *rediscache.Store implements it.
type Store interface {
	// Get returns the response stored for url and variant, or nil. On a
	// miss it returns the Vary names recorded for url, so that a caller
	// that guessed the variant wrong can ask again.
	Get(ctx context.Context, url, variant string) (*policy.Response, []string, error)
	// Put stores resp for ttl; explicit is false for entries that only a
	// heuristic made fresh or that are kept only for revalidation. kept is
	// false, with no error, when the store declines the entry (too large
	// for it); an error means the store failed, and feeds the breaker.
	Put(ctx context.Context, resp *policy.Response, ttl time.Duration, explicit bool) (kept bool, err error)
	// Purge removes every variant stored for url.
	Purge(ctx context.Context, url string) error
}

// TagStore is a Store that removes entries by tag (policy.Response.Tags).
// When the store given to New implements it, a response to an unsafe
// method that names RFC 9875 Cache-Group-Invalidation groups removes the
// entries of those groups (of the request's origin) for every instance
// sharing the store. *rediscache.Store implements it.
type TagStore interface {
	Store
	// PurgeTag removes every entry with any of tags, and returns how many.
	PurgeTag(ctx context.Context, tags ...string) (int64, error)
}

// RefusedError is implemented by store errors that mean the store is up and
// refused one call: a Redis that answers with an error (a script error, a
// key of the wrong type, out of memory, no permission). Such a call fails
// alone: its request goes to the origin as for any store error, it is
// counted in Stats.StoreRefused and logged at most once a minute per kind,
// and it never opens the breaker, which is for a store that is down, stuck
// or overloaded. rediscache's errors implement it.
type RefusedError interface {
	error
	// Refused names the kind of refusal, such as "OOM" or "WRONGTYPE".
	Refused() string
}

// FleetStore is a Store that the processes of a fleet share. When the
// store given to New implements it, a miss is collapsed across the whole
// fleet, not only inside one process: the process that claims a URL's lease
// fetches it while the others wait for its fill, and a URL whose answers
// can be shared with nobody is marked so that its misses neither wait nor
// are waited for. It speaks in URLs: key and channel names are the store's.
// *rediscache.Store implements it, with two Redis round trips for a miss
// (Claim, then Fill).
type FleetStore interface {
	Store
	// Claim is Get that also claims url's lease for ttl, in the same round
	// trip, when the variant is not stored, or, with stale, even when it is
	// (its caller will revalidate it): the lease is taken when nobody
	// holds it and url is not marked, and otherwise reported as it stands.
	// vary are the Vary names variant was computed with; when they are not
	// url's, nothing is claimed and url's names are returned, as from Get.
	Claim(ctx context.Context, url string, vary []string, variant string, ttl time.Duration, stale bool) (*policy.Response, []string, coalesce.Lease, error)
	// Wait returns once lease's holder no longer holds it (it filled,
	// released, or died and let it expire), when ctx ends, or when the
	// store fails; the caller then claims again.
	Wait(ctx context.Context, lease coalesce.Lease) error
	// Fill is Put by the holder of resp.URL's lease: when it keeps the
	// entry, the same round trip ends the lease and wakes the waiters.
	// Otherwise the lease is left to Release.
	Fill(ctx context.Context, lease coalesce.Lease, resp *policy.Response, ttl time.Duration, explicit bool) (kept bool, err error)
	// Release ends lease, if it is the caller's, and wakes the waiters;
	// with unshareable it also marks the URL for a few seconds, held or
	// not.
	Release(ctx context.Context, lease coalesce.Lease, unshareable bool) error
}

// Options configure a Transport. The zero value is the recommended
// production setup: a shared cache in front of http.DefaultTransport.
type Options struct {
	// Transport sends the requests the cache cannot answer.
	// Nil means http.DefaultTransport.
	Transport http.RoundTripper
	// Private makes a private (single-user) cache, which may store
	// responses marked private. The default is a shared cache.
	Private bool
	// CookieAuth shares responses to requests with a Cookie only when
	// they say public or s-maxage (policy.Options.CookieAuth): for a cache
	// in front of an origin that tells its users apart by cookie.
	CookieAuth bool
	// HeuristicCap caps heuristic freshness; 0 means 24h.
	HeuristicCap time.Duration
	// MaxEntryBytes is the largest body that is stored; larger bodies
	// stream through uncached and are never held whole. 0 means 8 MiB.
	MaxEntryBytes int64
	// MaxBufferedBytes bounds the bytes of response bodies the transport
	// holds at once, over all requests, while it reads them whole for the
	// store. A response that would go past it streams to its caller
	// uncached, at the caller's pace, so that slow readers cannot make
	// the process hold their bodies. 0 means DefaultMaxBufferedBytes.
	MaxBufferedBytes int64
	// Name is the cache's name in Cache-Status; "" means DefaultName.
	Name string
	// Logger receives the few events worth logging (the breaker's
	// transitions, refused store calls) and, at Debug level, a line per
	// request saying what the cache did; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now. Tests inject one.
	Now func() time.Time
	// StoreTimeout bounds each call to the store; 0 means 100ms. A call
	// that fails or times out sends the request to the origin as if the
	// cache were empty.
	StoreTimeout time.Duration
	// FetchTimeout bounds an origin fetch that several callers share (a
	// collapsed miss, a background refresh); 0 means 30s. A fetch that
	// only one caller reads is bounded by that caller's context instead.
	FetchTimeout time.Duration
	// LeaseTimeout is the longest a process waits for a fleet peer that
	// fetches the same URL before fetching it itself; 0 means 5s.
	LeaseTimeout time.Duration
	// OnResult, when set, is called once per request, when RoundTrip
	// returns, with what the cache did for it: for metrics, traces or
	// tests. It runs on the caller's goroutine before the caller sees the
	// response: it must be quick, and must not read the body. It is the
	// simple form of an Observer's Result.
	OnResult func(*http.Request, Result)
	// Observer, when set, is told of every request's result and of every
	// call to the origin and the store (see packages metrics and tracing).
	Observer Observer
	// Rules adjust what the cache does with the responses of some URLs
	// (see package rules); nil means none.
	Rules *rules.Set
	// TagFields names the response fields whose tags a purge by tag finds
	// a stored response by (policy.Options.TagFields); nil means
	// policy.DefaultTagFields (Cache-Tag, Surrogate-Key).
	TagFields []string
	// StripTags removes the tag fields from every response the transport
	// returns, as a CDN does with the surrogate keys meant for it alone.
	// They are stored either way. The default keeps them.
	StripTags bool
}

// Transport is a caching http.RoundTripper. It is safe for concurrent use.
type Transport struct {
	store  Store
	fleet  FleetStore // the store, when it is one; nil otherwise
	tags   TagStore   // the store, when it is one; nil otherwise
	near   nearer     // the store, when it has a near tier; nil otherwise
	policy *policy.Policy
	strip  bool // Options.StripTags
	next   http.RoundTripper
	name   string
	log    *slog.Logger
	now    func() time.Time

	maxEntry     int64
	storeTimeout time.Duration
	fetchTimeout time.Duration
	leaseTimeout time.Duration

	group      coalesce.Group[result]
	reads      coalesce.Group[got] // store reads of large entries
	vary       varyMemo
	sizes      sizeMemo
	hfm        markers
	brk        breaker
	refusals   refusalLog
	holders    holders    // fleet leases this transport's callers hold, with their calls
	filling    sync.Map   // flight key -> *flight whose body is still being read
	refreshing sync.Map   // flight keys with a background refresh under way
	bgMu       sync.Mutex // orders goBackground against Close
	bg         sync.WaitGroup
	fetches    inflight        // shared fetches and the bodies being read for the store
	buffers    budget          // the bytes of those bodies held now
	background context.Context // ended by Close: stops background refreshes
	stop       context.CancelFunc
	closed     atomic.Bool // set by Close: requests pass through uncached
	closeOnce  sync.Once

	stats counters

	observer Observer // nil: nobody is told
}

// New returns a Transport that caches in store.
func New(store Store, opts Options) *Transport {
	t := &Transport{
		store: store,
		policy: policy.New(policy.Options{
			Private:      opts.Private,
			CookieAuth:   opts.CookieAuth,
			HeuristicCap: opts.HeuristicCap,
			Routes:       opts.Rules.Routes(),
			TagFields:    opts.TagFields,
		}),
		strip:        opts.StripTags,
		next:         opts.Transport,
		name:         opts.Name,
		log:          opts.Logger,
		now:          opts.Now,
		maxEntry:     opts.MaxEntryBytes,
		storeTimeout: opts.StoreTimeout,
		fetchTimeout: opts.FetchTimeout,
		leaseTimeout: opts.LeaseTimeout,
	}
	t.background, t.stop = context.WithCancel(context.Background())
	if t.next == nil {
		t.next = http.DefaultTransport
	}
	if t.name == "" {
		t.name = DefaultName
	}
	if t.log == nil {
		t.log = slog.Default()
	}
	if t.now == nil {
		t.now = time.Now
	}
	if t.observer = Observers(opts.Observer, onResult(opts.OnResult)); t.observer != nil {
		t.next = observedOrigin{next: t.next, obs: t.observer}
	}
	if t.maxEntry <= 0 {
		t.maxEntry = 8 << 20
	}
	t.buffers.limit = opts.MaxBufferedBytes
	if t.buffers.limit <= 0 {
		t.buffers.limit = DefaultMaxBufferedBytes
	}
	if t.storeTimeout <= 0 {
		t.storeTimeout = 100 * time.Millisecond
	}
	if t.fetchTimeout <= 0 {
		t.fetchTimeout = 30 * time.Second
	}
	if t.leaseTimeout <= 0 {
		t.leaseTimeout = 5 * time.Second
	}
	t.brk = breaker{log: t.log, now: t.now}
	t.refusals = refusalLog{log: t.log, now: t.now}
	t.fleet, _ = store.(FleetStore)
	t.tags, _ = store.(TagStore)
	t.near, _ = store.(nearer)
	return t
}

// ErrClosed is returned by Purge after Close.
var ErrClosed = errors.New("fleetcache: transport closed")

// Close stops the cache and waits for its work: background refreshes,
// shared fetches and the bodies being read into the store (each bounded by
// FetchTimeout, or by its reader's context once it streams to one caller
// alone), and the ends of fleet leases. It then closes the wrapped
// transport's idle connections. Requests that arrive from the moment Close
// begins are sent to the origin uncached, their Cache-Status saying
// fwd=bypass; detail=closed. Close may be called more than once; every call
// returns when the first is done, with its error.
//
// The store is the caller's to close, best after the transport, so that the
// entries being filled are stored; a store closed first refuses the calls
// made after it (rediscache does), and those requests are served uncached.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() {
		t.bgMu.Lock()
		t.closed.Store(true)
		t.stop()
		t.bgMu.Unlock()
		t.bg.Wait()
		t.fetches.wait()
		t.CloseIdleConnections()
	})
	return nil
}

// CloseIdleConnections closes the idle connections of the wrapped
// transport, so that http.Client's CloseIdleConnections reaches it.
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// inflight counts the work Close waits for. Unlike a sync.WaitGroup it may
// gain members while Close waits: a fetch that a caller gave up on starts
// its body whenever the origin answers.
type inflight struct {
	mu   sync.Mutex
	n    int
	idle *sync.Cond
}

func (w *inflight) add() {
	w.mu.Lock()
	w.n++
	w.mu.Unlock()
}

func (w *inflight) done() {
	w.mu.Lock()
	if w.n--; w.n == 0 && w.idle != nil {
		w.idle.Broadcast()
	}
	w.mu.Unlock()
}

func (w *inflight) wait() {
	w.mu.Lock()
	if w.idle == nil {
		w.idle = sync.NewCond(&w.mu)
	}
	for w.n > 0 {
		w.idle.Wait()
	}
	w.mu.Unlock()
}

// goBackground runs fn in a goroutine that Close waits for; it reports
// false, running nothing, once Close has begun.
func (t *Transport) goBackground(fn func()) bool {
	t.bgMu.Lock()
	defer t.bgMu.Unlock()
	if t.background.Err() != nil {
		return false
	}
	t.bg.Add(1)
	go func() {
		defer t.bg.Done()
		fn()
	}()
	return true
}

var errReadAfterClose = errors.New("fleetcache: read on closed response body")

// RoundTrip answers req from the cache when the policy allows it, and
// otherwise from the origin, storing what may be stored. WithBypass and
// WithRefresh in req's context change what it does for one request.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var resp *http.Response
	var err error
	if t.observer != nil || t.log.Enabled(req.Context(), slog.LevelDebug) {
		resp, err = t.observe(req)
	} else {
		resp, err = t.roundTrip(req)
	}
	if t.strip && resp != nil {
		// Every response's header is its caller's own (served ones are
		// clones), so it may be changed here.
		for _, f := range t.policy.TagFields() {
			delete(resp.Header, f)
		}
	}
	return resp, err
}

func (t *Transport) roundTrip(req *http.Request) (*http.Response, error) {
	rq := t.policy.ParseRequest(req)
	ctx := req.Context()
	asked := controlOf(ctx)
	switch {
	case t.closed.Load():
		rq.Bypass = reasonClosed
	case rq.Bypass == "" && asked == bypassControl:
		rq.Bypass = reasonRequested
	}
	if rq.Bypass != "" {
		return t.bypass(&rq)
	}
	if asked == refreshControl {
		return t.refresh(&rq)
	}
	now := t.now()
	// A miss that may collapse claims the fleet lease with its lookup.
	claim := t.fleet != nil && req.Method == http.MethodGet && rq.Range == "" && !rq.OnlyIfCached
	stored, fwd, lease := t.lookup(ctx, &rq, claim)
	if stored != nil {
		reuse := t.policy.Reuse(&rq, stored, now)
		switch reuse.Action {
		case policy.Serve:
			t.stats.hits.Add(1)
			detail := reuse.Detail
			if t.near != nil && detail == "" && t.near.Near(stored) {
				detail = "near"
			}
			return t.serve(&rq, stored, reuse.Age, policy.CacheStatus{Hit: true, TTL: reuse.TTL, HasTTL: true, Detail: detail}), nil
		case policy.ServeStale:
			t.stats.hits.Add(1)
			t.stats.staleServed.Add(1)
			t.refreshInBackground(&rq, stored)
			return t.serve(&rq, stored, reuse.Age, policy.CacheStatus{Hit: true, TTL: reuse.TTL, HasTTL: true, Detail: "stale-while-revalidate"}), nil
		case policy.Revalidate:
			if rq.OnlyIfCached {
				return t.gatewayTimeout(&rq), nil
			}
			return t.revalidate(&rq, stored, reuse.Fwd)
		}
		fwd = reuse.Fwd
	}
	if rq.OnlyIfCached {
		return t.gatewayTimeout(&rq), nil
	}
	if req.Method == http.MethodHead {
		return t.headMiss(&rq, stored, fwd)
	}
	if fwd != "partial" {
		stored = nil
	}
	// A stored partial response that lacks what is asked stays: the origin
	// is asked for the missing part alone when that can be combined.
	return t.miss(&rq, stored, fwd, lease)
}

// Why a request bypasses the cache, besides policy's reasons; the words
// are the Cache-Status detail.
const (
	reasonClosed    policy.Reason = "closed"    // after Close
	reasonRequested policy.Reason = "requested" // WithBypass
)

// bypass sends a request the cache must not answer, and applies what its
// response invalidates (RFC 9111 §4.4). Its Cache-Status says which stored
// URLs were invalidated, or that the store failed to do it.
func (t *Transport) bypass(rq *policy.Request) (*http.Response, error) {
	t.stats.bypasses.Add(1)
	resp, err := t.next.RoundTrip(rq.R)
	if err != nil {
		return nil, err
	}
	if resp.Header == nil {
		resp.Header = make(http.Header)
	}
	cs := policy.CacheStatus{Fwd: "bypass", FwdStatus: resp.StatusCode, Detail: string(rq.Bypass)}
	if rq.Bypass == policy.ReasonMethod {
		cs.Fwd = "method"
		urls := t.policy.Invalidates(rq.R, resp)
		var groups []string
		if t.tags != nil {
			groups = policy.InvalidatedGroups(rq.R, resp)
		}
		if len(urls) > 0 || len(groups) > 0 {
			cs.Detail = strings.TrimSpace("invalidated " + strings.Join(urls, " "))
			if len(groups) > 0 {
				cs.Detail += fmt.Sprintf(" and %d groups", len(groups))
			}
			var errs []error
			for _, u := range urls {
				errs = append(errs, t.purge(rq.R.Context(), u))
			}
			if len(groups) > 0 {
				errs = append(errs, t.purgeGroups(rq.R.Context(), groups))
			}
			var refused RefusedError
			switch err := errors.Join(errs...); {
			case errors.As(err, &refused):
				cs.Detail = storeRefused.detail()
			case err != nil:
				cs.Detail = storeFailed.detail()
			}
		}
	}
	cs.AppendTo(resp.Header, t.name)
	return resp, nil
}

// purge removes every variant of url. Its error is the store's, already
// counted by storeCall; entries expire by their TTL anyway.
func (t *Transport) purge(ctx context.Context, url string) error {
	t.vary.forget(url)
	ctx = context.WithoutCancel(ctx) // an invalidation must not be lost to a caller that stopped reading
	return t.storeCall(ctx, func(ctx context.Context) error { return t.store.Purge(ctx, url) })
}

// purgeGroups removes the entries of RFC 9875 cache groups (as
// policy.GroupTag names them) for every instance, as purge does a URL's.
func (t *Transport) purgeGroups(ctx context.Context, groups []string) error {
	ctx = context.WithoutCancel(ctx)
	return t.storeCallSized(ctx, groupPurgeWork, nil, func(ctx context.Context) error {
		_, err := t.tags.PurgeTag(ctx, groups...)
		return err
	})
}

// groupPurgeWork is the size a purge of groups counts as for its store
// call: it walks every shard, a batch of entries per script (about 20 ms
// for 1,000 entries on a local Redis), so it gets 81 StoreTimeouts, and
// its timing out, like a large entry's, is no evidence that the store is
// down.
const groupPurgeWork = 20 * largeEntry

// Purge removes what the store holds for rawURL (every variant, for every
// instance sharing the store), found as a GET of rawURL would find it: the
// URL is normalised the way requests are keyed (policy.NormalizeURL), so
// http://API.example.com:80/%7Eitem and http://api.example.com/~item are
// one. The call is bounded by ctx and StoreTimeout; an error means the
// store did not purge (it was failing, or the breaker is open), or rawURL
// is not an absolute http(s) URL, or the transport is closed (ErrClosed).
func (t *Transport) Purge(ctx context.Context, rawURL string) error {
	key, err := t.Key(rawURL)
	if err != nil {
		return fmt.Errorf("fleetcache: purge: %w", err)
	}
	if t.closed.Load() {
		return ErrClosed
	}
	t.vary.forget(key)
	if err := t.storeCall(ctx, func(ctx context.Context) error { return t.store.Purge(ctx, key) }); err != nil {
		return fmt.Errorf("fleetcache: purge %s: %w", key, err)
	}
	return nil
}

// Key returns the URL the store keeps what a GET of rawURL finds under:
// rawURL normalised (policy.NormalizeURL) and keyed as the transport's
// Rules say. It is for calling the store directly, as a purge with more
// options than Purge's does; an error means rawURL is not an absolute
// http(s) URL.
func (t *Transport) Key(rawURL string) (string, error) {
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		return "", err
	}
	rq := t.policy.ParseRequest(req)
	if rq.Bypass == policy.ReasonURL {
		return "", fmt.Errorf("%q is not an absolute URL", rawURL)
	}
	return rq.URL, nil
}

// refresh answers a request made WithRefresh: what is stored is not used,
// the origin is asked without conditions, and its answer is stored as for
// a miss.
func (t *Transport) refresh(rq *policy.Request) (*http.Response, error) {
	if rq.OnlyIfCached {
		return t.gatewayTimeout(rq), nil // only the stored response could answer
	}
	stored, fwd, _ := t.lookup(rq.R.Context(), rq, false) // learns the URL's Vary names
	if stored != nil {
		fwd = "request" // a stored response the request would not have (RFC 9211 §2.2)
	}
	// Like a request's no-cache, this keeps a response stored meanwhile
	// (one a fleet peer filled) from answering it unvalidated.
	rq.NoCache = true
	if rq.R.Method == http.MethodHead {
		return t.headMiss(rq, nil, fwd)
	}
	return t.miss(rq, nil, fwd, coalesce.Lease{Key: rq.URL})
}

// lookup reads the stored response for rq with one store round trip in the
// common case, learning the URL's Vary names on the way; with claim, a miss
// claims the URL's fleet lease in the same round trip. fwd says why nothing
// was found.
func (t *Transport) lookup(ctx context.Context, rq *policy.Request, claim bool) (*policy.Response, string, coalesce.Lease) {
	names := t.vary.get(rq.URL)
	lease := coalesce.Lease{Key: rq.URL}
	for range 2 {
		variant := policy.Variant(names, policy.VaryValues(names, rq.R.Header))
		g, err := t.get(ctx, rq.URL, names, variant, claim)
		resp, vary := g.resp, g.vary
		lease = g.lease
		switch {
		case err != nil:
			return nil, "uri-miss", coalesce.Lease{Key: rq.URL}
		case resp != nil:
			t.vary.set(rq.URL, resp.Vary)
			t.sizes.set(rq.URL, int64(len(resp.Body)))
			return resp, "", lease
		case len(vary) == 0:
			t.vary.set(rq.URL, vary)
			return nil, "uri-miss", lease
		case equalNames(vary, names):
			return nil, "vary-miss", lease
		}
		names = vary
		t.vary.set(rq.URL, vary)
	}
	return nil, "vary-miss", lease
}

// slowRead returns the check that a timed-out read of url's variant moved a
// large entry, and records its size for the next read; nil when the store
// cannot tell sizes.
func (t *Transport) slowRead(url, variant string) func(ctx context.Context) bool {
	sz, ok := t.store.(sizer)
	if !ok {
		return nil
	}
	return func(ctx context.Context) bool {
		n, err := sz.Size(ctx, url, variant)
		t.sizes.set(url, n)
		return err == nil && n >= largeEntry
	}
}

// got is what one store read returned, with the fleet lease a claiming
// read left.
type got struct {
	resp  *policy.Response
	vary  []string
	lease coalesce.Lease
}

// get reads url's variant from the store; with claim, a read that misses
// claims the URL's fleet lease in the same round trip (FleetStore.Claim).
// Concurrent reads of an entry known to be large share one store call:
// sixteen callers of a hot 6 MiB entry would otherwise have Redis copy 96
// MiB at once and each wait for all of it. Such a shared read claims
// nothing: one lease cannot go to several callers.
//
// A read of an entry not known to be large that times out finds out its
// size (slowRead); when the size explains the wait, the read is made again
// as a large one, rather than the caller going to the origin.
func (t *Transport) get(ctx context.Context, url string, names []string, variant string, claim bool) (got, error) {
	size := t.sizes.get(url)
	read := func(claim bool) func(ctx context.Context) (got, error) {
		return func(ctx context.Context) (g got, err error) {
			g.lease = coalesce.Lease{Key: url}
			err = t.storeCallSized(ctx, size, t.slowRead(url, variant), func(ctx context.Context) (err error) {
				if claim {
					g.resp, g.vary, g.lease, err = t.fleet.Claim(ctx, url, names, variant, t.leaseTimeout, false)
					return err
				}
				g.resp, g.vary, err = t.store.Get(ctx, url, variant)
				return err
			})
			return g, err
		}
	}
	if size < largeEntry {
		g, err := read(claim)(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			return g, err
		}
		if size = t.sizes.get(url); size < largeEntry {
			return got{lease: coalesce.Lease{Key: url}}, err
		}
	}
	g, _, err := t.reads.Do(ctx, url+"\x00"+variant, t.storeTimeout*time.Duration(2+4*size/largeEntry), read(false))
	return g, err
}

// storeCall runs one store operation under the store timeout and the
// breaker. Its error only ever means "act as if uncached".
func (t *Transport) storeCall(ctx context.Context, op func(ctx context.Context) error) error {
	return t.storeCallSized(ctx, 0, nil, op)
}

// largeEntry is the size from which a store call's time is dominated by the
// bytes it moves rather than by the round trip.
const largeEntry = 1 << 20

// storeCallSized is storeCall for an operation that moves about size bytes:
// it is given StoreTimeout four times more for every MiB, since Redis and
// the network take time in proportion to the size (sixteen readers of a 6
// MiB entry on a 2-core machine's loopback took up to 950ms). A call that times out is an
// outage unless slow, asked then, finds that a large entry explains it: a
// slow large read is not a store that is down. The request's tally, when
// it is observed, hears of the time and of failures.
func (t *Transport) storeCallSized(ctx context.Context, size int64, slow func(ctx context.Context) bool, op func(ctx context.Context) error) error {
	tl := tallyOf(ctx)
	if !t.brk.allow() {
		tl.unreachable()
		return errBreakerOpen
	}
	start := tl.start()
	cctx, cancel := context.WithTimeout(ctx, t.storeTimeout*time.Duration(1+4*size/largeEntry))
	err := op(cctx)
	cancel()
	tl.since(start)
	if t.observer != nil {
		t.observer.Store(ctx, start, err)
	}
	var refused RefusedError
	switch {
	case err == nil:
		t.brk.done(nil, false)
	case errors.As(err, &refused):
		t.brk.done(nil, false) // it answered: it is up
		t.stats.storeRefused.Add(1)
		t.refusals.note(refused.Refused(), err)
	case ctx.Err() != nil:
		t.brk.done(err, true)
	default:
		t.stats.storeErrors.Add(1)
		timedOut := errors.Is(err, context.DeadlineExceeded)
		large := timedOut && (size >= largeEntry || slow != nil && t.probe(ctx, slow))
		t.brk.done(err, large)
		if !large {
			tl.unreachable()
		}
	}
	return err
}

// probeTimeouts is how many store timeouts a probe after a timed-out read
// may take: a Redis still sending large replies to others answers late, and
// a frozen one costs the probe this long only until the breaker opens.
const probeTimeouts = 10

// probe runs slow under a store timeout of its own.
func (t *Transport) probe(ctx context.Context, slow func(ctx context.Context) bool) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), probeTimeouts*t.storeTimeout)
	defer cancel()
	return slow(ctx)
}

// sizer is implemented by stores that tell an entry's size without reading
// it (rediscache does): after a read timed out, it says whether the entry
// is large enough to explain it.
type sizer interface {
	Size(ctx context.Context, url, variant string) (int64, error)
}

// nearer is implemented by stores with a tier in process memory in front of
// the shared one (rediscache with Options.NearBytes): Near reports whether a
// response that Get or Claim just returned came from that tier, and the
// hit's Cache-Status then says detail=near.
type nearer interface {
	Near(resp *policy.Response) bool
}

// serve builds the caller's response from a stored one: its own header map
// and body reader, Age and Cache-Status added, or a local 304 when the
// caller's own validators match (RFC 9111 §4.3.2), or the byte range the
// caller asked for (RFC 9110 §14.2): a 206 whose body is a slice of the
// stored one, or a 416. The policy has said that stored can answer rq.
func (t *Transport) serve(rq *policy.Request, stored *policy.Response, age time.Duration, cs policy.CacheStatus) *http.Response {
	status, body := stored.Status, stored.Body
	var h http.Header
	switch {
	case policy.NotModified(rq.R, stored):
		status = http.StatusNotModified
		h = notModifiedHeader(stored.Header)
	case rq.Range != "" || stored.Status == http.StatusPartialContent:
		part := t.policy.Part(rq, stored)
		status, body = part.Status, part.Body
		if status == http.StatusRequestedRangeNotSatisfiable {
			h = unsatisfiableHeader(stored.Header)
		} else {
			h = stored.Header.Clone()
		}
		switch {
		case part.ContentRange != "":
			h["Content-Range"] = []string{part.ContentRange}
			h["Content-Length"] = []string{strconv.Itoa(len(body))}
		case stored.Status == http.StatusPartialContent:
			// A stored part that holds every byte, sent whole.
			delete(h, "Content-Range")
			h["Content-Length"] = []string{strconv.Itoa(len(body))}
		}
	default:
		h = stored.Header.Clone()
	}
	if h == nil {
		h = make(http.Header, 2)
	}
	// Age is sent in whole seconds, rounded down; the ttl counts from
	// the same rounded age so that the two add up to the lifetime.
	cs.TTL += age % time.Second
	// One backing array for the two fields the cache adds.
	added := []string{strconv.FormatInt(int64(age/time.Second), 10), cs.String(t.name)}
	h["Age"] = added[0:1:1]
	h["Cache-Status"] = append(h["Cache-Status"], added[1])
	resp := &http.Response{
		Status:     statusLine(status),
		StatusCode: status,
		Proto:      protoName(stored.ProtoMajor, stored.ProtoMinor),
		ProtoMajor: stored.ProtoMajor,
		ProtoMinor: stored.ProtoMinor,
		Header:     h,
		Request:    rq.R,
		Body:       http.NoBody,
	}
	if status != http.StatusNotModified {
		resp.ContentLength = int64(len(body))
		if rq.R.Method != http.MethodHead && len(body) > 0 {
			resp.Body = newEntryBody(body)
		}
	}
	return resp
}

// entryBody reads a stored body. The bytes are shared by every caller
// served from the same entry; nobody writes to them.
type entryBody struct{ bytes.Reader }

func newEntryBody(b []byte) *entryBody {
	e := &entryBody{}
	e.Reset(b)
	return e
}

func (*entryBody) Close() error { return nil }

// statusLines holds "200 OK" and its kin, so that a hit does not build the
// status line again.
var statusLines = func() map[int]string {
	m := make(map[int]string)
	for code := 100; code < 600; code++ {
		if text := http.StatusText(code); text != "" {
			m[code] = strconv.Itoa(code) + " " + text
		}
	}
	return m
}()

func statusLine(code int) string {
	if s, ok := statusLines[code]; ok {
		return s
	}
	return strconv.Itoa(code)
}

func protoName(major, minor int) string {
	if major == 1 && minor == 1 {
		return "HTTP/1.1"
	}
	return "HTTP/" + strconv.Itoa(major) + "." + strconv.Itoa(minor)
}

// notModifiedHeader keeps the fields a 304 carries (RFC 9110 §15.4.5).
func notModifiedHeader(stored http.Header) http.Header {
	h := make(http.Header, 8)
	for _, k := range []string{"Cache-Control", "Content-Location", "Date", "Etag", "Expires", "Vary", "Last-Modified"} {
		if v, ok := stored[k]; ok {
			h[k] = append([]string(nil), v...) // the stored slices are shared by every caller
		}
	}
	return h
}

// unsatisfiableHeader keeps the fields a 416 made from a stored response
// carries: what identifies the representation, not what describes its body.
func unsatisfiableHeader(stored http.Header) http.Header {
	h := make(http.Header, 6)
	for _, k := range []string{"Date", "Etag", "Last-Modified", "Vary"} {
		if v, ok := stored[k]; ok {
			h[k] = append([]string(nil), v...)
		}
	}
	return h
}

// gatewayTimeout answers only-if-cached when nothing suitable is stored
// (RFC 9111 §5.2.1.7).
func (t *Transport) gatewayTimeout(rq *policy.Request) *http.Response {
	h := make(http.Header, 2)
	h.Set("Content-Type", "text/plain; charset=utf-8")
	policy.CacheStatus{Detail: "only-if-cached"}.AppendTo(h, t.name) // nothing was forwarded
	body := "504 Gateway Timeout: only-if-cached and no suitable stored response\n"
	return &http.Response{
		Status:        "504 Gateway Timeout",
		StatusCode:    http.StatusGatewayTimeout,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader([]byte(body))),
		ContentLength: int64(len(body)),
		Request:       rq.R,
	}
}

// headMiss forwards a HEAD the store cannot answer; a 200 to it freshens
// the stored GET response, or marks it for revalidation when it no longer
// matches (RFC 9111 §4.3.5).
func (t *Transport) headMiss(rq *policy.Request, stored *policy.Response, fwd string) (*http.Response, error) {
	t.stats.misses.Add(1)
	reqTime := t.now()
	resp, err := t.next.RoundTrip(rq.R)
	if err != nil {
		return nil, err
	}
	if resp.Header == nil {
		resp.Header = make(http.Header)
	}
	// Only a HEAD whose answer could be shared may change what everyone
	// is served.
	if ok, _ := t.policy.Storable(asGet(rq), resp); ok && stored != nil && resp.StatusCode == http.StatusOK {
		if fresh, ok := t.policy.FreshenHead(stored, resp, reqTime, t.now()); ok {
			t.put(rq.R.Context(), fresh, coalesce.Lease{})
		} else {
			t.purge(rq.R.Context(), rq.URL)
		}
	}
	policy.CacheStatus{Fwd: fwd, FwdStatus: resp.StatusCode}.AppendTo(resp.Header, t.name)
	return resp, nil
}

// asGet is rq as a GET: a HEAD's answer may update the stored GET response
// only where the GET's answer could have been stored.
func asGet(rq *policy.Request) *policy.Request {
	r := *rq.R
	r.Method = http.MethodGet
	g := *rq
	g.R = &r
	return &g
}

// put stores an entry for as long as the policy says it is worth keeping,
// and says what came of it: uncacheable when the policy says it is not
// worth keeping at all, tooLarge when the store declined it (too large for
// its budget), storeFailed or storeRefused when the store failed. Only
// uncacheable says anything about the entry: in every other case it was
// fine to share. With a fleet lease that is Mine, the write is the fill,
// which ends the lease when it stores the entry.
func (t *Transport) put(ctx context.Context, entry *policy.Response, lease coalesce.Lease) written {
	ttl, explicit := t.policy.Keep(entry, t.now())
	if ttl <= 0 {
		return uncacheable
	}
	var kept bool
	ctx = context.WithoutCancel(ctx)
	size := int64(len(entry.Body))
	t.sizes.set(entry.URL, size)
	err := t.storeCallSized(ctx, size, nil, func(ctx context.Context) (err error) {
		if lease.Mine {
			kept, err = t.fleet.Fill(ctx, lease, entry, ttl, explicit)
			return err
		}
		kept, err = t.store.Put(ctx, entry, ttl, explicit)
		return err
	})
	var r RefusedError
	switch {
	case errors.As(err, &r):
		return storeRefused
	case err != nil:
		return storeFailed
	case !kept:
		return tooLarge
	}
	t.stats.stores.Add(1)
	t.vary.set(entry.URL, entry.Vary)
	return stored
}

func equalNames(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Stats are the transport's counters since New.
type Stats struct {
	Hits          int64 // served from the store without contacting the origin
	Misses        int64 // found nothing usable stored (those then served by another's fetch included)
	Revalidations int64 // conditional requests sent for stale entries
	NotModified   int64 // revalidations the origin answered with 304
	Stores        int64 // entries written to the store
	Coalesced     int64 // callers served from another caller's or process's fetch
	Bypasses      int64 // requests the cache did not handle (unsafe methods, several ranges)
	StaleServed   int64 // stale entries served (stale-while-revalidate, stale-if-error)
	StoreErrors   int64 // store calls that failed or timed out: the store is down, stuck or overloaded (each served from the origin)
	StoreRefused  int64 // store calls the store answered with an error, such as a Redis out of memory (each served from the origin; see RefusedError)
	BufferedBytes int64 // bytes of response bodies held now while read for the store (at most MaxBufferedBytes)
	BreakerOpen   bool  // the store is failing and is not being called
	BreakerTrips  int64 // times the breaker opened
}

type counters struct {
	hits, misses, revalidations, notModified, stores, coalesced, bypasses, staleServed, storeErrors, storeRefused atomic.Int64
}

// Stats returns the transport's counters.
func (t *Transport) Stats() Stats {
	open, trips := t.brk.state()
	return Stats{
		Hits:          t.stats.hits.Load(),
		Misses:        t.stats.misses.Load(),
		Revalidations: t.stats.revalidations.Load(),
		NotModified:   t.stats.notModified.Load(),
		Stores:        t.stats.stores.Load(),
		Coalesced:     t.stats.coalesced.Load(),
		Bypasses:      t.stats.bypasses.Load(),
		StaleServed:   t.stats.staleServed.Load(),
		StoreErrors:   t.stats.storeErrors.Load(),
		StoreRefused:  t.stats.storeRefused.Load(),
		BufferedBytes: t.buffers.used.Load(),
		BreakerOpen:   open,
		BreakerTrips:  trips,
	}
}
