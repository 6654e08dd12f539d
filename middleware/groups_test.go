package middleware_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/fleetcache/fleetcache/internal/redistest"
	"github.com/fleetcache/fleetcache/middleware"
)

// A handler's Cache-Group-Invalidation on a POST removes the pages of
// those groups (RFC 9875 §3): the middleware goes through the transport,
// which does it.
func TestMiddleware_RFC9875_3_CacheGroupInvalidation(t *testing.T) {
	onEachRedis(t, func(t *testing.T, r *redistest.Redis) {
		f := newFixture(t, r, func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost {
				w.Header().Set("Cache-Group-Invalidation", `"items"`)
				w.WriteHeader(http.StatusNoContent)
				return
			}
			w.Header().Set("Cache-Control", "max-age=60")
			if strings.HasPrefix(r.URL.Path, "/items/") {
				w.Header().Set("Cache-Groups", `"items"`)
			}
			fmt.Fprint(w, r.URL.Path)
		}, middleware.Options{})
		for _, p := range []string{"/items/1", "/items/2", "/about"} {
			wantStatus(t, f.get(p), 200, "stored")
			wantStatus(t, f.get(p), 200, "hit")
		}
		wantStatus(t, f.do(http.MethodPost, "/cart"), http.StatusNoContent, "fwd=method")
		wantStatus(t, f.get("/items/1"), 200, "fwd=uri-miss")
		wantStatus(t, f.get("/items/2"), 200, "fwd=uri-miss")
		wantStatus(t, f.get("/about"), 200, "hit")
		f.wantRuns(6)
	})
}
