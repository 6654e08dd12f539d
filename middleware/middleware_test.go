package middleware_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fleetcache/fleetcache/internal/redistest"
	"github.com/fleetcache/fleetcache/middleware"
)

func TestMiddleware_MissThenHit(t *testing.T) {
	onEachRedis(t, func(t *testing.T, r *redistest.Redis) {
		f := newFixture(t, r, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=60")
			fmt.Fprint(w, "<h1>report</h1>")
		}, middleware.Options{})
		first := f.get("/report?q=1")
		wantStatus(t, first, 200, "fleetcache; fwd=uri-miss; fwd-status=200", "stored")
		require.Equal(t, "<h1>report</h1>", first.body)
		require.Equal(t, "text/html; charset=utf-8", first.header.Get("Content-Type"), "sniffed as net/http does")
		f.clk.Advance(3 * time.Second)
		hit := f.get("/report?q=1")
		wantStatus(t, hit, 200, "fleetcache; hit; ttl=57")
		require.Equal(t, "3", hit.header.Get("Age"))
		require.Equal(t, first.body, hit.body)
		require.Equal(t, "15", hit.header.Get("Content-Length"))
		f.wantRuns(1)
		wantStatus(t, f.get("/report?q=2"), 200, "fwd=uri-miss")
		f.wantRuns(2)
	})
}

type ctxKey struct{}

// The handler sees the caller's request: its URL as a server sees it, its
// Host, RemoteAddr, header and context values; the cache only drops the
// caller's own conditions so that the answer can be shared.
func TestMiddleware_HandlerSeesTheCallersRequest(t *testing.T) {
	onEachRedis(t, func(t *testing.T, r *redistest.Redis) {
		seen := make(chan *http.Request, 1)
		f := newFixture(t, r, func(w http.ResponseWriter, r *http.Request) {
			seen <- r
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("ETag", `"v1"`)
			fmt.Fprint(w, r.Context().Value(ctxKey{}))
		}, middleware.Options{SharedCookies: []string{"_ga"}}, func(next http.Handler) http.Handler {
			// An outer middleware's context value reaches the handler.
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, "outer value")))
			})
		})
		got := f.get("/a/b?x=1&y=2", "Host", "shop.example", "Cookie", "_ga=GA1.1", "If-None-Match", `"old"`, "X-Trace", "t1")
		wantStatus(t, got, 200, "stored")
		require.Equal(t, "outer value", got.body)
		r2 := <-seen
		require.Equal(t, "/a/b", r2.URL.Path)
		require.Equal(t, "x=1&y=2", r2.URL.RawQuery)
		require.Empty(t, r2.URL.Host, "a server request's URL has no host")
		require.Equal(t, "shop.example", r2.Host)
		require.NotEmpty(t, r2.RemoteAddr)
		require.Equal(t, "/a/b?x=1&y=2", r2.RequestURI)
		require.Equal(t, "_ga=GA1.1", r2.Header.Get("Cookie"), "a shared cookie still reaches the handler")
		require.Equal(t, "t1", r2.Header.Get("X-Trace"))
		require.Empty(t, r2.Header.Get("If-None-Match"), "the caller's own condition is answered by the cache")
	})
}

// A stale entry is revalidated by calling the handler with the cache's
// conditional request; http.ServeContent answers it with a 304, and the
// caller gets the stored body (RFC 9111 §4.3.1, §4.3.4).
func TestMiddleware_RFC9111_4_3_RevalidationCallsTheHandler(t *testing.T) {
	onEachRedis(t, func(t *testing.T, r *redistest.Redis) {
		var conds []string
		var mu sync.Mutex
		modified := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		f := newFixture(t, r, func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			conds = append(conds, r.Header.Get("If-None-Match"))
			mu.Unlock()
			w.Header().Set("Cache-Control", "max-age=10")
			w.Header().Set("ETag", `"v1"`)
			http.ServeContent(w, r, "page.txt", modified, strings.NewReader("page body"))
		}, middleware.Options{})
		wantStatus(t, f.get("/page"), 200, "stored")
		f.clk.Advance(30 * time.Second)
		again := f.get("/page")
		wantStatus(t, again, 200, "fwd=stale; fwd-status=304")
		require.Equal(t, "page body", again.body)
		wantStatus(t, f.get("/page"), 200, "hit")
		require.Equal(t, []string{"", `"v1"`}, conds)
		// The caller's own validators are answered by the cache.
		wantStatus(t, f.get("/page", "If-None-Match", `"v1"`), http.StatusNotModified, "hit")
		f.wantRuns(2)
	})
}

// A POST through the middleware reaches the handler, and its 2xx removes
// the stored page (RFC 9111 §4.4).
func TestMiddleware_RFC9111_4_4_UnsafeMethodInvalidates(t *testing.T) {
	onEachRedis(t, func(t *testing.T, r *redistest.Redis) {
		var body []byte
		f := newFixture(t, r, func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost {
				b := new(bytes.Buffer)
				_, _ = b.ReadFrom(r.Body)
				body = b.Bytes()
				w.WriteHeader(http.StatusNoContent)
				return
			}
			w.Header().Set("Cache-Control", "max-age=60")
			fmt.Fprint(w, "list")
		}, middleware.Options{})
		wantStatus(t, f.get("/items"), 200, "stored")
		wantStatus(t, f.get("/items"), 200, "hit")
		req, err := http.NewRequest(http.MethodPost, f.srv.URL+"/items", strings.NewReader("new item"))
		require.NoError(t, err)
		resp, err := f.srv.Client().Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusNoContent, resp.StatusCode)
		require.Contains(t, resp.Header.Get("Cache-Status"), "fwd=method")
		require.Equal(t, "new item", string(body))
		wantStatus(t, f.get("/items"), 200, "fwd=uri-miss")
		f.wantRuns(3)
	})
}

// Vary selects among the stored variants the handler made (RFC 9111 §4.1).
func TestMiddleware_RFC9111_4_1_Vary(t *testing.T) {
	onEachRedis(t, func(t *testing.T, r *redistest.Redis) {
		f := newFixture(t, r, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Vary", "Accept-Language")
			fmt.Fprint(w, "hello in ", r.Header.Get("Accept-Language"))
		}, middleware.Options{})
		for range 2 {
			for _, lang := range []string{"de", "fr"} {
				got := f.get("/hello", "Accept-Language", lang)
				require.Equal(t, "hello in "+lang, got.body)
			}
		}
		f.wantRuns(2)
	})
}

// What a shared cache in front of a service with users must never share:
// a response that sets a cookie, one marked private, one to a request with
// Authorization or a Cookie unless it says public or s-maxage (RFC 9111
// §3, §3.5, and the cookie rule of policy.Options.CookieAuth).
func TestMiddleware_RFC9111_3_5_NeverShared(t *testing.T) {
	tests := []struct {
		name   string
		req    []string // request header pairs
		resp   []string // response header pairs
		shared bool
		detail string
	}{
		{"Set-Cookie", nil, []string{"Cache-Control", "public, max-age=60", "Set-Cookie", "session=1"}, false, "set-cookie"},
		{"private", nil, []string{"Cache-Control", "private, max-age=60"}, false, "private"},
		{"Authorization", []string{"Authorization", "Bearer t"}, []string{"Cache-Control", "max-age=60"}, false, "authorization"},
		{"Authorization, public", []string{"Authorization", "Bearer t"}, []string{"Cache-Control", "public, max-age=60"}, true, ""},
		{"Cookie", []string{"Cookie", "session=1"}, []string{"Cache-Control", "max-age=60"}, false, "cookie"},
		{"Cookie, must-revalidate", []string{"Cookie", "session=1"}, []string{"Cache-Control", "max-age=60, must-revalidate"}, false, "cookie"},
		{"Cookie, public", []string{"Cookie", "session=1"}, []string{"Cache-Control", "public, max-age=60"}, true, ""},
		{"Cookie, s-maxage", []string{"Cookie", "session=1"}, []string{"Cache-Control", "s-maxage=60"}, true, ""},
		{"shared cookies only", []string{"Cookie", "_ga=1; consent=yes"}, []string{"Cache-Control", "max-age=60"}, true, ""},
		{"a shared cookie and another", []string{"Cookie", "_ga=1; session=2"}, []string{"Cache-Control", "max-age=60"}, false, "cookie"},
		{"no cookie", nil, []string{"Cache-Control", "max-age=60"}, true, ""},
	}
	onEachRedis(t, func(t *testing.T, r *redistest.Redis) {
		var resp []string
		f := newFixture(t, r, func(w http.ResponseWriter, r *http.Request) {
			for i := 0; i+1 < len(resp); i += 2 {
				w.Header().Add(resp[i], resp[i+1])
			}
			fmt.Fprint(w, "for ", r.Header.Get("Cookie"), r.Header.Get("Authorization"))
		}, middleware.Options{SharedCookies: []string{"_ga", "consent"}})
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				resp = tt.resp
				path := fmt.Sprintf("/page/%d", i)
				first := f.get(path, tt.req...)
				wantStatus(t, first, 200)
				require.Equal(t, tt.shared, stored(first), first.cacheStatus())
				if !tt.shared {
					require.Contains(t, first.cacheStatus(), "detail="+tt.detail)
				}
				// Another user, without credentials, is never served what
				// was not shared.
				other := f.get(path)
				require.Equal(t, tt.shared, strings.Contains(other.cacheStatus(), "hit"), other.cacheStatus())
			})
		}
	})
}

// A stored page that a cookie-less request filled is not served to a
// request with a cookie unless it says public: the handler may tell users
// apart by it.
func TestMiddleware_RFC9111_3_5_StoredPageNotServedToCookie(t *testing.T) {
	onEachRedis(t, func(t *testing.T, r *redistest.Redis) {
		f := newFixture(t, r, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=60")
			if c, err := r.Cookie("session"); err == nil {
				fmt.Fprint(w, "hello ", c.Value)
				return
			}
			fmt.Fprint(w, "hello guest")
		}, middleware.Options{})
		wantStatus(t, f.get("/home"), 200, "stored")
		got := f.get("/home", "Cookie", "session=ann")
		require.Equal(t, "hello ann", got.body)
		require.Contains(t, got.cacheStatus(), "detail=cookie")
		require.Equal(t, "hello guest", f.get("/home").body)
		f.wantRuns(2)
	})
}
