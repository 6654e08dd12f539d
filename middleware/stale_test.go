package middleware_test

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/internal/poll"

	"github.com/stretchr/testify/require"

	"github.com/fleetcache/fleetcache/internal/redistest"
	"github.com/fleetcache/fleetcache/middleware"
)

// A stale entry inside stale-while-revalidate is served at once, and the
// handler refreshes it in the background (RFC 5861 §3).
func TestMiddleware_RFC5861_3_StaleWhileRevalidate(t *testing.T) {
	onEachRedis(t, func(t *testing.T, r *redistest.Redis) {
		var version atomic.Int64
		f := newFixture(t, r, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=10, stale-while-revalidate=60")
			fmt.Fprint(w, "v", version.Add(1))
		}, middleware.Options{})
		wantStatus(t, f.get("/swr"), 200, "stored")
		f.clk.Advance(30 * time.Second)
		stale := f.get("/swr")
		wantStatus(t, stale, 200, "hit", "detail=stale-while-revalidate")
		require.Equal(t, "v1", stale.body)
		poll.Until(t, "the background refresh", 10*time.Second, func() bool {
			return f.get("/swr").body == "v2"
		})
		f.wantRuns(2)
	})
}

// The stale-if-error window of RFC 5861 §4: inside it, a handler that
// answers 500 or panics is a failed origin and the stale entry is served;
// outside it, the 500 passes through, and the panic does to the caller
// what it does without the cache (net/http aborts the response).
func TestMiddleware_RFC5861_4_StaleIfError(t *testing.T) {
	tests := []struct {
		name   string
		after  time.Duration // past the entry's freshness (max-age=10)
		fail   func(w http.ResponseWriter)
		status int // 0: the caller's request fails
		stale  bool
	}{
		{"500 inside the window", 30 * time.Second, func(w http.ResponseWriter) { http.Error(w, "down", 500) }, 200, true},
		{"panic inside the window", 30 * time.Second, func(http.ResponseWriter) { panic("handler bug") }, 200, true},
		{"panic after the header, inside the window", 30 * time.Second, func(w http.ResponseWriter) {
			w.Header().Set("Cache-Control", "max-age=10, stale-if-error=60")
			w.WriteHeader(200)
			fmt.Fprint(w, "half")
			http.NewResponseController(w).Flush()
			panic("handler bug")
		}, 0, false},
		{"500 outside the window", 120 * time.Second, func(w http.ResponseWriter) { http.Error(w, "down", 500) }, 500, false},
		{"panic outside the window", 120 * time.Second, func(http.ResponseWriter) { panic("handler bug") }, 0, false},
		{"ErrAbortHandler outside the window", 120 * time.Second, func(http.ResponseWriter) { panic(http.ErrAbortHandler) }, 0, false},
	}
	onEachRedis(t, func(t *testing.T, r *redistest.Redis) {
		var mu sync.Mutex
		var fail func(w http.ResponseWriter)
		f := newFixture(t, r, func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			broken := fail
			mu.Unlock()
			if broken != nil {
				broken(w)
				return
			}
			w.Header().Set("Cache-Control", "max-age=10, stale-if-error=60")
			fmt.Fprint(w, "good page")
		}, middleware.Options{})
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				path := fmt.Sprintf("/page/%d", i)
				mu.Lock()
				fail = nil
				mu.Unlock()
				wantStatus(t, f.get(path), 200, "stored")
				f.clk.Advance(tt.after)
				mu.Lock()
				fail = tt.fail
				mu.Unlock()
				got := f.get(path)
				f.clk.Advance(-tt.after)
				if tt.status == 0 {
					require.Error(t, got.err, "status %d, body %q", got.status, got.body)
					return
				}
				wantStatus(t, got, tt.status)
				if tt.stale {
					require.Contains(t, got.cacheStatus(), "fwd=stale")
					require.Contains(t, got.cacheStatus(), "detail=stale-if-error")
					require.Equal(t, "good page", got.body)
				}
			})
		}
	})
}

// A burst of callers in one process runs a slow handler once; the fleet
// version of this is in package integration.
func TestMiddleware_BurstRunsHandlerOnce(t *testing.T) {
	onEachRedis(t, func(t *testing.T, r *redistest.Redis) {
		const callers = 50
		gate := make(chan struct{})
		var arrived atomic.Int64
		f := newFixture(t, r, func(w http.ResponseWriter, r *http.Request) {
			<-gate
			w.Header().Set("Cache-Control", "max-age=60")
			fmt.Fprint(w, "expensive")
		}, middleware.Options{}, func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				arrived.Add(1)
				next.ServeHTTP(w, r)
			})
		})
		var wg sync.WaitGroup
		replies := make([]reply, callers)
		for i := range replies {
			wg.Go(func() { replies[i] = f.get("/slow") })
		}
		poll.Until(t, "every caller to arrive", 10*time.Second, func() bool { return arrived.Load() == callers })
		close(gate)
		wg.Wait()
		for _, got := range replies {
			wantStatus(t, got, 200)
			require.Equal(t, "expensive", got.body)
		}
		f.wantRuns(1)
	})
}
