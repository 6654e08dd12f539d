// Package middleware_test measures package middleware: a handler behind it
// against the bare handler and against victorspringer/http-cache's
// middleware with its Redis adapter, on a redis-server of their own. The figures are in
// docs/benchmarks.md (Middleware); run them with
//
//	cd bench && go test -run='^$' -bench=. -benchmem ./middleware/
package middleware_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	httpcache "github.com/victorspringer/http-cache"
	hcredis "github.com/victorspringer/http-cache/adapter/redis"

	"github.com/fleetcache/fleetcache/internal/redistest"
	"github.com/fleetcache/fleetcache/middleware"
	"github.com/fleetcache/fleetcache/rediscache"
)

// handlers are the two kinds of endpoint: a cheap one that writes 1 KiB
// of JSON, and an expensive one that first works for about a millisecond
// (hashing 2 MiB), as a page built from a few queries would.
var handlers = []struct {
	name string
	h    http.HandlerFunc
}{
	{"cheap-1k", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(page)
	}},
	{"expensive-1k", func(w http.ResponseWriter, r *http.Request) {
		sum := sha256.Sum256(work)
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("ETag", fmt.Sprintf(`"%x"`, sum[:8]))
		_, _ = w.Write(page)
	}},
}

var (
	page = []byte(`{"items":"` + strings.Repeat("x", 1000) + `"}`)
	work = make([]byte, 2<<20)
)

// redisURL and redisAddr name the redis-server the benchmarks share,
// started by TestMain.
var redisURL, redisAddr string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "middleware-bench")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv, err := redistest.Start(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "skipping the middleware benchmarks:", err)
		os.RemoveAll(dir)
		os.Exit(0)
	}
	redisAddr = srv.Addr()
	redisURL = "redis://" + redisAddr
	code := m.Run()
	srv.Kill()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cached returns h behind the middleware on the shared redis-server, under
// a prefix of its own, warmed with one request for the benchmark's URL.
func cached(tb testing.TB, prefix string, h http.Handler) http.Handler {
	store, err := rediscache.Open(context.Background(), redisURL, rediscache.Options{Prefix: prefix})
	if err != nil {
		tb.Fatal(err)
	}
	cache := middleware.NewCache(store, middleware.Options{})
	tb.Cleanup(func() {
		cache.Close()
		store.Close()
	})
	c := cache.Wrap(h)
	if rec := serve(c); rec.Code != http.StatusOK || !strings.Contains(rec.Header().Get("Cache-Status"), "stored") {
		tb.Fatalf("warm-up: status %d, Cache-Status %q", rec.Code, rec.Header().Get("Cache-Status"))
	}
	return c
}

// victor returns h behind victorspringer/http-cache's middleware, the
// classic server-side cache, with its Redis adapter on the same server
// (a ring of one) and a TTL as long as the handler's max-age, warmed
// with one request.
func victor(tb testing.TB, h http.Handler) http.Handler {
	c, err := httpcache.NewClient(
		httpcache.ClientWithAdapter(hcredis.NewAdapter(&hcredis.RingOptions{Addrs: map[string]string{"one": redisAddr}})),
		httpcache.ClientWithTTL(10*time.Minute),
	)
	if err != nil {
		tb.Fatal(err)
	}
	v := c.Middleware(h)
	serve(v)
	return v
}

func serve(h http.Handler) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://svc.test/items?page=1", nil))
	return rec
}

// BenchmarkMiddleware serves one warm URL over and over from every core,
// in process (no network between caller and server): the bare handler, and
// the handler behind the middleware, whose every request is a hit read from
// Redis.
func BenchmarkMiddleware(b *testing.B) {
	for i, hc := range handlers {
		impls := []struct {
			name string
			h    http.Handler
		}{
			{"bare", hc.h},
			{"fleetcache", cached(b, fmt.Sprintf("bench%d:", i), hc.h)},
			{"victorspringer-redis", victor(b, hc.h)},
		}
		for _, impl := range impls {
			b.Run(hc.name+"/"+impl.name, func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if rec := serve(impl.h); rec.Code != http.StatusOK || rec.Body.Len() != len(page) {
							b.Fatalf("status %d, %d bytes", rec.Code, rec.Body.Len())
						}
					}
				})
			})
		}
	}
}

// The benchmark's setup works: a warm URL is a hit with the handler's body.
func TestCachedHandlerHits(t *testing.T) {
	for i, hc := range handlers {
		rec := serve(cached(t, fmt.Sprintf("test%d:", i), hc.h))
		if !strings.Contains(rec.Header().Get("Cache-Status"), "hit") || rec.Body.String() != string(page) {
			t.Errorf("%s: Cache-Status %q, body %q", hc.name, rec.Header().Get("Cache-Status"), rec.Body.String())
		}
	}
}
