// Package fleetcachetest runs a fleetcache transport in a service's tests:
// over a fresh in-memory Redis (miniredis), on one clock that the test
// moves and that drives the cache's freshness, Redis's expiry and a test
// origin's Date together.
//
//	func TestPriceIsCachedForAMinute(t *testing.T) {
//		cache := fleetcachetest.New(t, fleetcachetest.Options{})
//		pricing := cache.Origin(t, pricingHandler) // its Date follows the clock
//		catalog := &Catalog{Pricing: pricing.URL, Client: cache.Client}
//
//		catalog.Price(ctx, "42")
//		catalog.Price(ctx, "42")
//		cache.ExpectOutcomes(t, roundtrip.OutcomeMiss, roundtrip.OutcomeHit)
//
//		cache.Advance(2 * time.Minute) // past max-age=60
//		catalog.Price(ctx, "42")
//		cache.ExpectOutcomes(t, roundtrip.OutcomeRevalidated)
//	}
//
// Why one clock: the cache reckons a response's age from the origin's Date
// and its own clock, and Redis drops an entry when its TTL runs out. Move
// one without the others and a test sees what production never does: a
// response stale on arrival, revalidated forever, or gone from Redis while
// the cache still counts it fresh. docs/testing.md explains the clocks and
// how long an entry stays in Redis.
package fleetcachetest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/fleetcache/fleetcache/rediscache"
	"github.com/fleetcache/fleetcache/roundtrip"
)

// Options configure a Cache. The zero value is the production setup of the
// transport and the store, on the test's clock.
type Options struct {
	// Transport configures the transport. Its Now is always the Cache's
	// clock; an OnResult of its own is called after the Cache recorded the
	// result. A nil Transport.Transport is a fresh http.Transport whose
	// connections Cleanup closes, and a zero StoreTimeout is
	// DefaultStoreTimeout.
	Transport roundtrip.Options
	// Store configures the store; an empty Prefix is "test:".
	Store rediscache.Options
	// Start is the clock's first reading; zero means now, to the second
	// (HTTP dates have no finer resolution).
	Start time.Time
}

// DefaultStoreTimeout is the transport's StoreTimeout in tests. The
// production 100ms fails a store call open on a loaded test machine now and
// then, which would turn an expected hit into a miss; miniredis answers at
// once when it is up, and refuses at once when the test stopped it.
const DefaultStoreTimeout = 5 * time.Second

// Cache is one instance of a service's cache, over a miniredis of its own
// (or shared with its peers), on a clock the test moves.
type Cache struct {
	// Transport is the caching transport; Client sends through it.
	Transport *roundtrip.Transport
	Client    *http.Client
	// Store is the Redis store, and Redis the miniredis it lives in, which
	// a test may stop (Redis.Close) and start again (Redis.Restart).
	Store *rediscache.Store
	Redis *miniredis.Miniredis

	clock *clock
	opts  Options

	mu      sync.Mutex
	results []Result
	checked int // results before it were seen by ExpectOutcomes
}

// Result is what the cache did for one request.
type Result struct {
	Method, URL string
	roundtrip.Result
}

// New starts a miniredis and returns a Cache over it. Everything it starts
// is stopped when the test ends.
func New(t testing.TB, opts Options) *Cache {
	t.Helper()
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		t.Fatalf("fleetcachetest: starting miniredis: %v", err)
	}
	t.Cleanup(m.Close)
	start := opts.Start
	if start.IsZero() {
		start = time.Now().Truncate(time.Second)
	}
	return newCache(t, m, &clock{now: start}, opts)
}

// Peer returns another instance of the service: its own transport and
// results, on the same Redis and clock, as a second pod of a deployment.
func (c *Cache) Peer(t testing.TB) *Cache {
	t.Helper()
	return newCache(t, c.Redis, c.clock, c.opts)
}

func newCache(t testing.TB, m *miniredis.Miniredis, clk *clock, opts Options) *Cache {
	t.Helper()
	c := &Cache{Redis: m, clock: clk, opts: opts}
	// No retries: miniredis in this process answers or refuses at once,
	// and a test that stopped it should not wait for go-redis to give up.
	client := redis.NewClient(&redis.Options{Addr: m.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1, DialerRetries: 1})
	t.Cleanup(func() { _ = client.Close() })
	so := opts.Store
	if so.Prefix == "" {
		so.Prefix = "test:"
	}
	store, err := rediscache.New(client, so)
	if err != nil {
		t.Fatalf("fleetcachetest: %v", err)
	}
	t.Cleanup(func() { _ = store.Close() })
	c.Store = store

	to := opts.Transport
	to.Now = clk.Now
	if to.StoreTimeout == 0 {
		to.StoreTimeout = DefaultStoreTimeout
	}
	if to.Transport == nil {
		to.Transport = &http.Transport{} // closed by the transport's Close
	}
	own := to.OnResult
	to.OnResult = func(r *http.Request, res roundtrip.Result) {
		c.mu.Lock()
		c.results = append(c.results, Result{Method: r.Method, URL: r.URL.String(), Result: res})
		c.mu.Unlock()
		if own != nil {
			own(r, res)
		}
	}
	c.Transport = roundtrip.New(store, to)
	t.Cleanup(func() { _ = c.Transport.Close() }) // before the store's: cleanups run last first
	c.Client = &http.Client{Transport: c.Transport}
	return c
}

// Now is the clock's reading.
func (c *Cache) Now() time.Time { return c.clock.Now() }

// Advance moves the clock forward by d: the cache's, Redis's (keys whose
// TTL runs out expire, as miniredis's FastForward does) and the test
// origins' Date, for this Cache and its peers. The breaker's cooldown runs
// on it too: after Redis.Restart, Advance a second for caching to resume.
func (c *Cache) Advance(d time.Duration) {
	c.clock.advance(d)
	c.Redis.FastForward(d)
}

// Handler wraps an origin's handler so that its responses carry the
// clock's Date, as a real origin's carry the real time; h may still set
// its own.
func (c *Cache) Handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", c.Now().UTC().Format(http.TimeFormat))
		h.ServeHTTP(w, r)
	})
}

// Origin starts a test server for h, whose responses carry the clock's
// Date (Handler); it is closed when the test ends.
func (c *Cache) Origin(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(c.Handler(h))
	t.Cleanup(s.Close)
	return s
}

// Results returns what the cache did for every request since New, in the
// order the transport answered them.
func (c *Cache) Results() []Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Result(nil), c.results...)
}

// ExpectOutcomes checks the outcomes of the requests answered since the
// previous ExpectOutcomes (or New), in order, and reports each request
// with its Cache-Status when they differ. The next call checks the requests
// that come after these either way.
func (c *Cache) ExpectOutcomes(t testing.TB, want ...roundtrip.Outcome) {
	t.Helper()
	c.mu.Lock()
	got := c.results[c.checked:]
	c.checked = len(c.results)
	c.mu.Unlock()
	same := len(got) == len(want)
	for i := 0; same && i < len(got); i++ {
		same = got[i].Outcome == want[i]
	}
	if same {
		return
	}
	var b strings.Builder
	for _, r := range got {
		b.WriteString("\n\t" + r.Method + " " + r.URL + ": " + r.Outcome.String() + " (" + r.CacheStatus.String(c.name()) + ")")
		if r.Err != nil {
			b.WriteString(" error: " + r.Err.Error())
		}
	}
	if len(got) == 0 {
		b.WriteString("\n\tno requests")
	}
	t.Errorf("fleetcachetest: outcomes %v, want %v; the requests:%s", outcomeNames(got), want, b.String())
}

func (c *Cache) name() string {
	if c.opts.Transport.Name != "" {
		return c.opts.Transport.Name
	}
	return roundtrip.DefaultName
}

func outcomeNames(rs []Result) []roundtrip.Outcome {
	out := make([]roundtrip.Outcome, len(rs))
	for i, r := range rs {
		out[i] = r.Outcome
	}
	return out
}

// clock is the one clock of a Cache and its peers.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
