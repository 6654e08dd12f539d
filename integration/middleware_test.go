package integration_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/integration/internal/fleetproc"
	"github.com/fleetcache/fleetcache/internal/redistest"
	"github.com/fleetcache/fleetcache/middleware"
	"github.com/fleetcache/fleetcache/rediscache"
	"github.com/fleetcache/fleetcache/roundtrip"
)

// middlewareFleet starts n replicas of a service whose handler is behind
// package middleware, sharing r; the handler asks origin for each request.
func middlewareFleet(t *testing.T, r *redistest.Redis, n int, lease time.Duration) []*fleetproc.Proc {
	t.Helper()
	return fleetproc.Start(t, n, func(i int) fleetproc.Config {
		return fleetproc.Config{ID: i, Redis: r.URL, Prefix: fleetPrefix, LeaseTimeout: lease, StoreTimeout: patientStoreTimeout, Middleware: true}
	})
}

// serviceURL is the URL under which the replicas' cache keeps path.
func serviceURL(path string) string { return "http://" + fleetproc.ServiceHost + path }

// A slow handler behind four replicas, fifty callers each at once, runs
// once for the whole fleet, and every caller gets its whole answer.
func TestMiddlewareFleet_SlowHandlerRunsOnce(t *testing.T) {
	fleetproc.NoLeaks(t)
	r := redistest.RealServer.Start(t)
	origin := fleetproc.NewOrigin(t, "max-age=60", 128<<10)
	procs := middlewareFleet(t, r, 4, 30*time.Second) // the lease outlasts the held handler

	origin.Hold()
	fleetproc.Send(t, procs, fleetproc.Command{URL: origin.URL + "/report", N: 50})
	origin.Arrived(t, 10*time.Second)
	awaitSubscribers(t, r, serviceURL("/report"), int64(len(procs)-1))
	origin.Release()
	results := fleetproc.Results(fleetproc.Collect(t, procs))

	if got := origin.Requests(); got != 1 {
		t.Errorf("the handler ran %d times, want 1", got)
	}
	fleetproc.CheckBodies(t, results, origin, 4*50)
}

// A POST through one replica reaches the handler and removes the page for
// every replica: the next GET anywhere runs the handler again.
func TestMiddlewareFleet_PostInvalidatesForOthers(t *testing.T) {
	fleetproc.NoLeaks(t)
	r := redistest.RealServer.Start(t)
	origin := fleetproc.NewOrigin(t, "max-age=60", 4<<10)
	procs := middlewareFleet(t, r, 3, 0)
	url := origin.URL + "/items"

	fleetproc.CheckBodies(t, fleetproc.Results(fleetproc.Do(t, procs[:1], fleetproc.Command{URL: url, N: 1})), origin, 1)
	for _, res := range fleetproc.Results(fleetproc.Do(t, procs[1:], fleetproc.Command{URL: url, N: 2})) {
		if !strings.Contains(res.CacheStatus, "hit") {
			t.Fatalf("process %d before the POST: Cache-Status %q, want a hit", res.Proc, res.CacheStatus)
		}
	}
	before := origin.Requests()
	post := fleetproc.Results(fleetproc.Do(t, procs[:1], fleetproc.Command{URL: url, N: 1, Method: http.MethodPost}))
	if post[0].Status != http.StatusOK || !strings.Contains(post[0].CacheStatus, "fwd=method") {
		t.Fatalf("POST: status %d, Cache-Status %q", post[0].Status, post[0].CacheStatus)
	}
	after := fleetproc.Results(fleetproc.Do(t, procs[1:2], fleetproc.Command{URL: url, N: 1}))
	if cs := after[0].CacheStatus; !strings.Contains(cs, "fwd=uri-miss") {
		t.Errorf("process %d after the POST: Cache-Status %q, want a miss", after[0].Proc, cs)
	}
	fleetproc.CheckBodies(t, after, origin, 1)
	if got := origin.Requests() - before; got != 2 {
		t.Errorf("the handler ran %d times for the POST and the GET after it, want 2", got)
	}
}

// Inside the stale-if-error window of the stored page (max-age=10,
// stale-if-error=60) a handler that answers 500 or panics is a failed
// origin, and every replica serves the stale page; outside it the 500
// passes through, and a panic aborts the caller's response as net/http
// does without the cache.
func TestMiddlewareFleet_RFC5861_4_StaleIfErrorAcrossReplicas(t *testing.T) {
	fleetproc.NoLeaks(t)
	r := redistest.RealServer.Start(t)
	origin := fleetproc.NewOrigin(t, "max-age=10, stale-if-error=60", 4<<10)
	procs := middlewareFleet(t, r, 3, 0)
	url := origin.URL + "/page"
	fleetproc.CheckBodies(t, fleetproc.Results(fleetproc.Do(t, procs[:1], fleetproc.Command{URL: url, N: 1})), origin, 1)

	origin.Fail(http.StatusInternalServerError)
	inside, outside := 30*time.Second, 120*time.Second
	for _, tc := range []struct {
		name  string
		skew  time.Duration
		panic bool
		check func(t *testing.T, res fleetproc.Result)
	}{
		{"500 inside", inside, false, wantStale(origin)},
		{"panic inside", inside, true, wantStale(origin)},
		{"500 outside", outside, false, func(t *testing.T, res fleetproc.Result) {
			if res.Status != http.StatusInternalServerError || res.Err != "" {
				t.Errorf("process %d: status %d, err %q; want the handler's 500", res.Proc, res.Status, res.Err)
			}
		}},
		{"panic outside", outside, true, func(t *testing.T, res fleetproc.Result) {
			if res.Err == "" {
				t.Errorf("process %d: status %d, Cache-Status %q; want the response aborted", res.Proc, res.Status, res.CacheStatus)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, res := range fleetproc.Results(fleetproc.Do(t, procs, fleetproc.Command{URL: url, N: 2, Skew: tc.skew, Panic: tc.panic})) {
				tc.check(t, res)
			}
		})
	}
}

func wantStale(origin *fleetproc.Origin) func(t *testing.T, res fleetproc.Result) {
	return func(t *testing.T, res fleetproc.Result) {
		t.Helper()
		fleetproc.CheckBodies(t, []fleetproc.Result{res}, origin, 1)
		if !strings.Contains(res.CacheStatus, "fwd=stale") || !strings.Contains(res.CacheStatus, "detail=stale-if-error") {
			t.Errorf("process %d: Cache-Status %q, want the stale page for an error", res.Proc, res.CacheStatus)
		}
	}
}

// A 64 MiB response streams through the middleware to its caller with the
// process holding a bounded part of it: at most MaxEntryBytes buffered for
// the store (which it outgrows) plus one read chunk, and live heap far
// below the body's size.
func TestMiddleware_LargeStreamStaysUnderMemoryBound(t *testing.T) {
	fleetproc.NoLeaks(t)
	r := redistest.RealServer.Start(t)
	store, err := rediscache.Open(context.Background(), r.URL, rediscache.Options{Prefix: "mem:"})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	const size, maxEntry, bound = 64 << 20, 8 << 20, 24 << 20
	cache := middleware.NewCache(store, middleware.Options{Cache: roundtrip.Options{MaxEntryBytes: maxEntry}})
	defer cache.Close()
	chunk := strings.Repeat("0123456789abcdef", 2<<10) // 32 KiB
	srv := httptest.NewServer(cache.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		for written := 0; written < size; written += len(chunk) {
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
		}
	})))
	defer srv.Close()

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	resp, err := srv.Client().Get(srv.URL + "/export")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 1<<20)
	var read, peakHeap, peakBuffered int64
	for {
		n, err := io.ReadFull(resp.Body, buf)
		read += int64(n)
		if read%(4<<20) == 0 || err != nil {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			peakHeap = max(peakHeap, int64(ms.HeapAlloc)-int64(base))
			peakBuffered = max(peakBuffered, cache.Stats().BufferedBytes)
		}
		if err != nil {
			break
		}
	}
	if read != size {
		t.Fatalf("read %d bytes, want %d", read, size)
	}
	if peakBuffered > maxEntry+32<<10 {
		t.Errorf("BufferedBytes reached %d, over MaxEntryBytes %d and a read chunk", peakBuffered, maxEntry)
	}
	if peakHeap > bound {
		t.Errorf("live heap grew by up to %d MiB while streaming %d MiB; want under %d MiB", peakHeap>>20, size>>20, bound>>20)
	}
	if cs := resp.Header.Get("Cache-Status"); strings.Contains(cs, "; stored") {
		t.Errorf("Cache-Status %q: a body over MaxEntryBytes was stored", cs)
	}
	t.Logf("streamed %d MiB: live heap grew by at most %.1f MiB, at most %.1f MiB buffered for the store",
		size>>20, float64(peakHeap)/(1<<20), float64(peakBuffered)/(1<<20))
}
