package roundtrip_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetcache/fleetcache/internal/redistest"
	"github.com/fleetcache/fleetcache/policy"
	"github.com/fleetcache/fleetcache/rediscache"
	"github.com/fleetcache/fleetcache/roundtrip"
)

// The tests of what a service does with the transport day to day: purge,
// per-request controls, the result hook, shutdown.

// doCtx sends a GET with ctx through the cache and reads the whole body.
func (f *fixture) doCtx(ctx context.Context, method, path string, header ...string) (*http.Response, string) {
	f.t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, f.o.URL+path, nil)
	require.NoError(f.t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	return f.send(req)
}

func (f *fixture) send(req *http.Request) (*http.Response, string) {
	f.t.Helper()
	resp, err := f.cl.Do(req)
	require.NoError(f.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(f.t, err)
	return resp, string(b)
}

// Purge keys the URL as a request for it would be keyed: the purge the
// issue found silently wrong (a percent-encoded path) now works, for every
// variant.
func TestPurge_NormalisesTheURLAsRequestsAreKeyed(t *testing.T) {
	onEachStore(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprint(w, r.URL.Path, " ", r.Header.Get("Accept-Language"))
	}, roundtrip.Options{}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		for _, lang := range []string{"en", "fr"} {
			f.get("/a", "Accept-Language", lang)
			resp, _ := f.get("/a", "Accept-Language", lang)
			require.Contains(t, resp.Header.Get("Cache-Status"), "hit")
		}
		require.NoError(t, f.tr.Purge(ctx, strings.Replace(f.o.URL, "http://", "HTTP://", 1)+"/%61#fragment"))
		for _, lang := range []string{"en", "fr"} {
			resp, body := f.get("/a", "Accept-Language", lang)
			assert.Equal(t, "/a "+lang, body)
			assert.NotContains(t, resp.Header.Get("Cache-Status"), "hit", "every variant purged")
		}
		assert.EqualValues(t, 4, f.o.hits.Load(), "each variant fetched again")

		for _, bad := range []string{"/a", "::", "mailto:x@example.com"} {
			assert.Error(t, f.tr.Purge(ctx, bad), "Purge(%q)", bad)
		}
		require.NoError(t, f.tr.Close())
		assert.ErrorIs(t, f.tr.Purge(ctx, f.o.URL+"/a"), roundtrip.ErrClosed)
	})
}

func TestPurge_StoreFailureIsReported(t *testing.T) {
	f := newFixture(t, fixedBody("max-age=60", "x"), roundtrip.Options{})
	f.store.fail.Store(true)
	assert.Error(t, f.tr.Purge(context.Background(), f.o.URL+"/a"))
}

// The response to an unsafe method says which stored URLs it invalidated
// (RFC 9111 §4.4, RFC 9211 §2.8), or that the store could not do it.
func TestInvalidate_RFC9111_4_4_CacheStatusNamesWhatWasInvalidated(t *testing.T) {
	handler := func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/items":
			w.Header().Set("Location", "/items/7")
			w.Header().Set("Content-Location", "http://elsewhere.example/items/7") // another origin: never invalidated
			w.WriteHeader(http.StatusCreated)
		case r.Method == http.MethodDelete:
			w.WriteHeader(http.StatusNotFound) // an error: invalidates nothing
		default:
			w.Header().Set("Cache-Control", "max-age=60")
			fmt.Fprint(w, r.URL.Path)
		}
	}
	onEachStore(t, handler, roundtrip.Options{}, func(t *testing.T, f *fixture) {
		f.get("/items")
		f.get("/items/7")
		resp, _ := f.do(http.MethodPost, "/items")
		assert.Equal(t, fmt.Sprintf(`fleetcache; fwd=method; fwd-status=201; detail="invalidated %s/items %s/items/7"`, f.o.URL, f.o.URL),
			resp.Header.Get("Cache-Status"))
		for _, path := range []string{"/items", "/items/7"} {
			resp, _ = f.get(path)
			assert.Contains(t, resp.Header.Get("Cache-Status"), "fwd=uri-miss", path)
		}

		resp, _ = f.do(http.MethodDelete, "/items")
		assert.Equal(t, "fleetcache; fwd=method; fwd-status=404; detail=method", resp.Header.Get("Cache-Status"))
		resp, _ = f.get("/items")
		assert.Contains(t, resp.Header.Get("Cache-Status"), "hit", "an error response invalidates nothing")
	})

	f := newFixture(t, handler, roundtrip.Options{})
	f.store.fail.Store(true)
	resp, _ := f.do(http.MethodPost, "/items")
	assert.Equal(t, "fleetcache; fwd=method; fwd-status=201; detail=store-error", resp.Header.Get("Cache-Status"))
	f.store.fail.Store(false)
	f.store.refusal.Store(true)
	resp, _ = f.do(http.MethodPost, "/items")
	assert.Equal(t, "fleetcache; fwd=method; fwd-status=201; detail=store-refused", resp.Header.Get("Cache-Status"))
}

// A bypassed request neither reads nor writes the store; a request's
// no-store directive, which it is easy to mistake it for, is still answered
// from the store (RFC 9111 §5.2.1.5).
func TestWithBypass_NeitherReadNorWrittenUnlikeNoStore(t *testing.T) {
	var n atomic.Int64
	onEachStore(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, n.Add(1))
	}, roundtrip.Options{}, func(t *testing.T, f *fixture) {
		n.Store(0)
		bypass := roundtrip.WithBypass(roundtrip.WithRefresh(context.Background())) // the last one counts
		resp, body := f.doCtx(bypass, http.MethodGet, "/p")
		assert.Equal(t, "1", body)
		assert.Equal(t, "fleetcache; fwd=bypass; fwd-status=200; detail=requested", resp.Header.Get("Cache-Status"))
		resp, body = f.get("/p")
		assert.Equal(t, "2", body, "the bypassed response was not stored")
		assert.Contains(t, resp.Header.Get("Cache-Status"), "fwd=uri-miss")

		_, body = f.doCtx(bypass, http.MethodGet, "/p")
		assert.Equal(t, "3", body, "the stored response was not used")
		resp, body = f.get("/p")
		assert.Equal(t, "2", body, "nor replaced")
		assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")

		resp, body = f.get("/p", "Cache-Control", "no-store")
		assert.Equal(t, "2", body, "no-store is answered from the store")
		assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
	})
}

// An unsafe method keeps invalidating under WithBypass: the cache would
// otherwise serve what the request changed (RFC 9111 §4.4).
func TestWithBypass_RFC9111_4_4_UnsafeMethodStillInvalidates(t *testing.T) {
	onEachStore(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, r.Method)
	}, roundtrip.Options{}, func(t *testing.T, f *fixture) {
		f.get("/p")
		resp, _ := f.doCtx(roundtrip.WithBypass(context.Background()), http.MethodPut, "/p")
		assert.Contains(t, resp.Header.Get("Cache-Status"), `fwd=method; fwd-status=200; detail="invalidated `)
		resp, _ = f.get("/p")
		assert.Contains(t, resp.Header.Get("Cache-Status"), "fwd=uri-miss")
	})
}

// An origin that keeps its ETag while the body changes answers every
// revalidation 304: no-cache keeps the old body, WithRefresh fetches the
// new one, unconditionally, and stores it for everyone.
func TestWithRefresh_RefetchesWhereNoCacheRevalidates(t *testing.T) {
	var version atomic.Int64
	var conditional atomic.Int64
	onEachStore(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("ETag", `"same"`)
		if r.Header.Get("If-None-Match") != "" {
			conditional.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprint(w, "v", version.Load())
	}, roundtrip.Options{}, func(t *testing.T, f *fixture) {
		version.Store(1)
		conditional.Store(0)
		refresh := roundtrip.WithRefresh(context.Background())

		resp, body := f.doCtx(refresh, http.MethodGet, "/r")
		assert.Equal(t, "v1", body)
		assert.Equal(t, "fleetcache; fwd=uri-miss; fwd-status=200; stored", resp.Header.Get("Cache-Status"))

		version.Store(2)
		resp, body = f.get("/r", "Cache-Control", "no-cache")
		assert.Equal(t, "v1", body, "no-cache revalidates: the 304 keeps the stored body")
		assert.Contains(t, resp.Header.Get("Cache-Status"), "fwd=request; fwd-status=304")
		assert.EqualValues(t, 1, conditional.Load())

		resp, body = f.doCtx(refresh, http.MethodGet, "/r")
		assert.Equal(t, "v2", body)
		assert.Equal(t, "fleetcache; fwd=request; fwd-status=200; stored", resp.Header.Get("Cache-Status"))
		assert.EqualValues(t, 1, conditional.Load(), "the refresh sent no validator")

		resp, body = f.get("/r")
		assert.Equal(t, "v2", body, "the refreshed response replaced the stored one")
		assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")

		resp, _ = f.doCtx(refresh, http.MethodGet, "/r", "Cache-Control", "only-if-cached")
		assert.Equal(t, http.StatusGatewayTimeout, resp.StatusCode, "only the stored response could answer, and it may not")
	})
}

// resultLog keeps what OnResult hears.
type resultLog struct {
	mu      sync.Mutex
	results []roundtrip.Result
	urls    []string
}

func (l *resultLog) hook(r *http.Request, res roundtrip.Result) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.results = append(l.results, res)
	l.urls = append(l.urls, r.URL.Path)
}

func (l *resultLog) take() []roundtrip.Result {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.results
	l.results, l.urls = nil, nil
	return r
}

func outcomes(rs []roundtrip.Result) []roundtrip.Outcome {
	var out []roundtrip.Outcome
	for _, r := range rs {
		out = append(out, r.Outcome)
	}
	return out
}

func TestOnResult_OneResultPerRequest(t *testing.T) {
	var down atomic.Bool
	handler := func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Cache-Control", "max-age=10, stale-if-error=600")
		w.Header().Set("ETag", `"v"`)
		if r.Header.Get("If-None-Match") == `"v"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprint(w, "body")
	}
	log := &resultLog{}
	onEachStore(t, handler, roundtrip.Options{OnResult: log.hook}, func(t *testing.T, f *fixture) {
		log.take()
		down.Store(false)
		f.get("/a")                 // miss
		f.get("/a")                 // hit
		f.clk.Advance(time.Minute)  //
		f.get("/a")                 // revalidated
		f.clk.Advance(time.Minute)  //
		down.Store(true)            //
		f.get("/a")                 // stale-if-error
		f.do(http.MethodPost, "/a") // bypass
		rs := log.take()
		assert.Equal(t, []roundtrip.Outcome{roundtrip.OutcomeMiss, roundtrip.OutcomeHit, roundtrip.OutcomeRevalidated, roundtrip.OutcomeStale, roundtrip.OutcomeBypass}, outcomes(rs))
		require.Len(t, rs, 5)
		assert.Equal(t, policy.CacheStatus{Fwd: "uri-miss", FwdStatus: 200, Stored: true}, rs[0].CacheStatus)
		assert.Equal(t, policy.CacheStatus{Hit: true, TTL: 10 * time.Second, HasTTL: true}, rs[1].CacheStatus)
		assert.Equal(t, []int{200, 200, 200, 200, 503}, []int{rs[0].Status, rs[1].Status, rs[2].Status, rs[3].Status, rs[4].Status})
		for i, r := range rs {
			assert.True(t, r.StoreReachable, "result %d", i)
			assert.Positive(t, r.Duration, "result %d", i)
			assert.LessOrEqual(t, r.StoreDuration, r.Duration, "result %d", i)
			assert.NoError(t, r.Err)
		}
		assert.Positive(t, rs[1].StoreDuration, "a hit reads the store")
	})
}

func TestOnResult_StoreUnreachableAndOriginErrors(t *testing.T) {
	log := &resultLog{}
	f := newFixture(t, fixedBody("max-age=60", "x"), roundtrip.Options{OnResult: log.hook})
	f.store.fail.Store(true)
	resp, body := f.get("/a")
	assert.Equal(t, "x", body)
	assert.Contains(t, resp.Header.Get("Cache-Status"), "detail=store-error")
	rs := log.take()
	require.Len(t, rs, 1)
	assert.Equal(t, roundtrip.OutcomeMiss, rs[0].Outcome)
	assert.False(t, rs[0].StoreReachable)

	f.store.fail.Store(false)
	f.store.refusal.Store(true)
	f.get("/a")
	rs = log.take()
	require.Len(t, rs, 1)
	assert.True(t, rs[0].StoreReachable, "a store that refuses is up")

	f.o.Close() // the origin is gone
	_, err := f.cl.Get(f.o.URL + "/b")
	require.Error(t, err)
	rs = log.take()
	require.Len(t, rs, 1)
	assert.Equal(t, roundtrip.OutcomeError, rs[0].Outcome)
	assert.Error(t, rs[0].Err)
	assert.Zero(t, rs[0].Status)
}

// With Redis killed, every request is still answered, and its result says
// the store was not reachable.
func TestOnResult_RedisKilled(t *testing.T) {
	redistest.Run(t, redistest.Backends, func(t *testing.T, r *redistest.Redis) {
		store, err := rediscache.Open(context.Background(), r.URL, rediscache.Options{Prefix: "rt:"})
		require.NoError(t, err)
		t.Cleanup(func() { store.Close() })
		log := &resultLog{}
		// A dead Redis costs each store call its whole timeout (go-redis
		// retries the dial): a short one keeps the test short.
		f := newFixtureOn(t, newClock(), store, fixedBody("max-age=60", "x"), roundtrip.Options{OnResult: log.hook, StoreTimeout: 500 * time.Millisecond})
		f.get("/a")
		r.Kill(t)
		for range 3 {
			_, body := f.get("/a")
			assert.Equal(t, "x", body)
		}
		rs := log.take()
		require.Len(t, rs, 4)
		assert.True(t, rs[0].StoreReachable)
		for i, res := range rs[1:] {
			assert.False(t, res.StoreReachable, "request %d after the kill", i+1)
			assert.Equal(t, roundtrip.OutcomeMiss, res.Outcome)
		}
	})
}

// Close may be called twice, and what comes after it is served, uncached,
// saying so; the store is not touched.
func TestClose_IdempotentAndLaterRequestsPassThroughUncached(t *testing.T) {
	onEachStore(t, fixedBody("max-age=60", "x"), roundtrip.Options{}, func(t *testing.T, f *fixture) {
		f.get("/a")
		require.NoError(t, f.tr.Close())
		require.NoError(t, f.tr.Close())
		var gets int64
		if f.store != nil {
			gets = f.store.gets.Load()
		}
		for range 2 {
			resp, body := f.get("/a")
			assert.Equal(t, "x", body)
			assert.Equal(t, "fleetcache; fwd=bypass; fwd-status=200; detail=closed", resp.Header.Get("Cache-Status"))
		}
		resp, _ := f.do(http.MethodPost, "/a")
		assert.Equal(t, "fleetcache; fwd=bypass; fwd-status=200; detail=closed", resp.Header.Get("Cache-Status"), "nothing invalidated")
		assert.EqualValues(t, 4, f.o.hits.Load())
		if f.store != nil {
			assert.Equal(t, gets, f.store.gets.Load(), "the store is not read after Close")
			assert.Equal(t, 1, f.store.len(), "nor written")
		}
	})
}

// A store closed before the transport refuses what the transport asks:
// requests are answered from the origin and never claimed stored.
func TestClose_StoreClosedFirstIsNotClaimedStored(t *testing.T) {
	redistest.Run(t, redistest.Backends, func(t *testing.T, r *redistest.Redis) {
		store, err := rediscache.Open(context.Background(), r.URL, rediscache.Options{Prefix: "rt:"})
		require.NoError(t, err)
		f := newFixtureOn(t, newClock(), store, fixedBody("max-age=60", "x"), roundtrip.Options{StoreTimeout: roundtripStoreTimeout})
		require.NoError(t, store.Close())
		for range 8 { // past the breaker's threshold, were these failures
			resp, body := f.get("/a")
			assert.Equal(t, "x", body)
			assert.Equal(t, "fleetcache; fwd=uri-miss; fwd-status=200; detail=store-refused", resp.Header.Get("Cache-Status"))
		}
		st := f.tr.Stats()
		assert.False(t, st.BreakerOpen, "a closed store is not a failing one")
		assert.Zero(t, st.StoreErrors)
		assert.Positive(t, st.StoreRefused)
	})
}

type idleCounter struct {
	http.RoundTripper
	closed atomic.Int64
}

func (c *idleCounter) CloseIdleConnections() { c.closed.Add(1) }

func TestCloseIdleConnections_ReachesTheWrappedTransport(t *testing.T) {
	next := &idleCounter{RoundTripper: http.DefaultTransport}
	tr := roundtrip.New(newMemStore(time.Now), roundtrip.Options{Transport: next})
	client := &http.Client{Transport: tr}
	client.CloseIdleConnections()
	assert.EqualValues(t, 1, next.closed.Load())
	require.NoError(t, tr.Close())
	assert.EqualValues(t, 2, next.closed.Load(), "Close closes them too")
}

// At debug level the transport writes one line per request saying what
// the cache did; at info, none.
func TestDebugLog_OneLinePerRequest(t *testing.T) {
	var buf syncBuffer
	level := new(slog.LevelVar)
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level}))
	f := newFixture(t, fixedBody("max-age=60", "x"), roundtrip.Options{Logger: logger})
	f.get("/a")
	f.get("/a")
	assert.Empty(t, strings.TrimSpace(buf.String()), "nothing at info level")

	level.Set(slog.LevelDebug)
	f.get("/a?x")
	f.get("/a?x")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 2)
	for i, want := range []string{
		`level=DEBUG msg="fleetcache: request" method=GET url=` + f.o.URL + `/a?x outcome=miss status=200 cache_status="fleetcache; fwd=uri-miss; fwd-status=200; stored" duration=`,
		`level=DEBUG msg="fleetcache: request" method=GET url=` + f.o.URL + `/a?x outcome=hit status=200 cache_status="fleetcache; hit; ttl=60" duration=`,
	} {
		_, rest, _ := strings.Cut(lines[i], " ") // the time
		assert.True(t, strings.HasPrefix(rest, want), "line %q\nwant it to start %q", rest, want)
		assert.Contains(t, rest, "store_reachable=true")
	}

	// Observed or not, a response served from the store names the
	// caller's request.
	req, err := http.NewRequest(http.MethodGet, f.o.URL+"/a?x", nil)
	require.NoError(t, err)
	resp, err := f.tr.RoundTrip(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Same(t, req, resp.Request)
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
