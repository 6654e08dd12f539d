package middleware_test

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fleetcache/fleetcache/internal/redistest"
	"github.com/fleetcache/fleetcache/middleware"
	"github.com/fleetcache/fleetcache/rediscache"
)

// clock is the cache's clock in tests: time passes when the test says so.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// fixture is a server whose handler is behind the middleware, over one
// Redis.
type fixture struct {
	t     *testing.T
	cache *middleware.Cache
	srv   *httptest.Server
	clk   *clock
	runs  atomic.Int64 // how many times the handler ran
}

// onEachRedis runs test on a real redis-server and on miniredis.
func onEachRedis(t *testing.T, test func(t *testing.T, r *redistest.Redis)) {
	redistest.Run(t, redistest.Backends, test)
}

// newFixture serves h behind the middleware, with opts, on r; outer, when
// given, wraps the middleware as a server's other middleware would.
func newFixture(t *testing.T, r *redistest.Redis, h http.HandlerFunc, opts middleware.Options, outer ...func(http.Handler) http.Handler) *fixture {
	t.Helper()
	store, err := rediscache.Open(context.Background(), r.URL, rediscache.Options{Prefix: "mw:"})
	require.NoError(t, err)
	f := &fixture{t: t, clk: newClock()}
	if opts.Cache.Now == nil {
		opts.Cache.Now = f.clk.Now
	}
	if opts.Cache.StoreTimeout == 0 {
		opts.Cache.StoreTimeout = 5 * time.Second // exact run counts; a slow store fails open by design
	}
	f.cache = middleware.NewCache(store, opts)
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.runs.Add(1)
		h(w, r)
	})
	served := f.cache.Wrap(counted)
	for _, o := range outer {
		served = o(served)
	}
	f.srv = httptest.NewUnstartedServer(served)
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the panics tests cause on purpose
	f.srv.Start()
	t.Cleanup(func() {
		f.srv.Close()
		require.NoError(t, f.cache.Close())
		store.Close()
	})
	return f
}

// reply is what a client got.
type reply struct {
	status int
	header http.Header
	body   string
	err    error
}

func (r reply) cacheStatus() string { return r.header.Get("Cache-Status") }

// do sends method path with the header pairs kv and reads the whole body.
func (f *fixture) do(method, path string, kv ...string) reply {
	f.t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, nil)
	require.NoError(f.t, err)
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i] == "Host" {
			req.Host = kv[i+1]
			continue
		}
		req.Header.Add(kv[i], kv[i+1])
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		return reply{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: string(body), err: err}
}

func (f *fixture) get(path string, kv ...string) reply {
	f.t.Helper()
	return f.do(http.MethodGet, path, kv...)
}

// wantStatus fails the test unless r is a response with status whose
// Cache-Status has every one of parts.
func wantStatus(t *testing.T, r reply, status int, parts ...string) {
	t.Helper()
	require.NoError(t, r.err)
	require.Equal(t, status, r.status, "body %q, Cache-Status %q", r.body, r.cacheStatus())
	for _, p := range parts {
		require.Contains(t, r.cacheStatus(), p)
	}
}

// wantRuns fails the test unless the handler ran n times.
func (f *fixture) wantRuns(n int64) {
	f.t.Helper()
	require.Equal(f.t, n, f.runs.Load(), "handler runs")
}

// stored says whether Cache-Status reports the response stored.
func stored(r reply) bool { return strings.Contains(r.cacheStatus(), "; stored") }
