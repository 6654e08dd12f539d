package integration_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/integration/internal/fleetproc"
	"github.com/fleetcache/fleetcache/internal/redistest"
	"github.com/fleetcache/fleetcache/rediscache"
	"github.com/fleetcache/fleetcache/roundtrip"
)

// RFC 5861 §4: with the origin failing, a stale entry inside its
// stale-if-error window is served, by every process of the fleet; past the
// window the caller gets the origin's failure.
func TestFaults_RFC5861_4_StaleIfError(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fail    func(*fleetproc.Origin)
		outside func(fleetproc.Result) bool // the origin's failure reached the caller
	}{
		{
			name: "503",
			fail: func(o *fleetproc.Origin) { o.Fail(http.StatusServiceUnavailable) },
			outside: func(r fleetproc.Result) bool {
				return r.Status == http.StatusServiceUnavailable && strings.Contains(r.CacheStatus, "fwd-status=503")
			},
		},
		{
			name:    "connection refused",
			fail:    (*fleetproc.Origin).Close,
			outside: func(r fleetproc.Result) bool { return r.Err != "" },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fleetproc.NoLeaks(t)
			redisURL := redistest.RealServer.Start(t).URL
			origin := fleetproc.NewOrigin(t, "max-age=1, stale-if-error=10", 64<<10)
			procs := fleetproc.Start(t, 2, fleetConfig(redisURL, 0, patientStoreTimeout))
			url := origin.URL + "/sie"
			prime := fleetproc.Results(fleetproc.Do(t, procs[:1], fleetproc.Command{URL: url, N: 1}))
			fleetproc.CheckBodies(t, prime, origin, 1)

			tc.fail(origin)
			// Five seconds later for the fleet: four past max-age, inside
			// stale-if-error=10.
			inside := fleetproc.Results(fleetproc.Do(t, procs, fleetproc.Command{URL: url, N: 10, Skew: 5 * time.Second}))
			fleetproc.CheckBodies(t, inside, origin, 20)
			for _, r := range inside {
				if cs := r.CacheStatus; !strings.Contains(cs, "fwd=stale") || !strings.Contains(cs, "detail=stale-if-error") {
					t.Errorf("inside the window, process %d: Cache-Status %q, want the stale entry served on error", r.Proc, cs)
				}
			}

			// Thirty seconds later: past the window.
			outside := fleetproc.Results(fleetproc.Do(t, procs, fleetproc.Command{URL: url, N: 10, Skew: 30 * time.Second}))
			for _, r := range outside {
				if !tc.outside(r) {
					t.Errorf("outside the window, process %d: status %d, err %q, Cache-Status %q; want the origin's failure",
						r.Proc, r.Status, r.Err, r.CacheStatus)
				}
			}
		})
	}
}

// Redis crashing under load costs the callers nothing, and caching comes
// back by itself once Redis is back.
func TestFaults_RedisKilledUnderLoad(t *testing.T) {
	fleetproc.NoLeaks(t)
	srv := redistest.Server(t)
	origin := fleetproc.NewOrigin(t, "max-age=60", 16<<10)
	tr, client := inProcessCache(t, "redis://"+srv.Addr())

	var (
		requests, failures, hitsAfterRestart atomic.Int64
		restarted                            atomic.Bool
		firstFailure                         atomic.Pointer[fleetproc.Result]
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				afterRestart := restarted.Load()
				r := fleetproc.Get(client, 0, fmt.Sprintf("%s/load/%d", origin.URL, (g+i)%4))
				requests.Add(1)
				if r.Err != "" || r.Status != http.StatusOK || r.Sum != origin.Sum {
					failures.Add(1)
					firstFailure.CompareAndSwap(nil, &r)
				}
				if afterRestart && strings.Contains(r.CacheStatus, "fleetcache; hit") {
					hitsAfterRestart.Add(1)
				}
			}
		})
	}
	var once sync.Once
	stopLoad := func() { once.Do(func() { close(stop); wg.Wait() }) }
	t.Cleanup(stopLoad) // before the transport and Redis go, if the test stops early

	fleetproc.PollUntil(t, "hits before Redis is killed", 10*time.Second, func() bool { return tr.Stats().Hits > 0 }, nil)
	srv.Kill()
	before := requests.Load()
	fleetproc.PollUntil(t, "the breaker to open under load", 10*time.Second, func() bool {
		return tr.Stats().BreakerOpen && requests.Load() > before+20
	}, func() string { return fmt.Sprintf("%+v", tr.Stats()) })
	srv.Restart(t)
	// Redis comes back empty: a hit on a request sent from now on is an
	// entry stored after the restart.
	restarted.Store(true)
	fleetproc.PollUntil(t, "a hit after the restart", 15*time.Second, func() bool { return hitsAfterRestart.Load() > 0 },
		func() string { return fmt.Sprintf("%+v", tr.Stats()) })
	stopLoad()

	st := tr.Stats()
	t.Logf("%d requests, %d hits after the restart; %+v", requests.Load(), hitsAfterRestart.Load(), st)
	if n := failures.Load(); n > 0 {
		r := firstFailure.Load()
		t.Errorf("%d of %d requests failed; first: status %d, err %q, Cache-Status %q", n, requests.Load(), r.Status, r.Err, r.CacheStatus)
	}
	if st.BreakerOpen || st.BreakerTrips < 1 {
		t.Errorf("breaker open %v after %d trips; want it tripped and closed again", st.BreakerOpen, st.BreakerTrips)
	}
}

// With Redis unreachable every request still succeeds, from the origin, and
// the breaker opens so that Redis is no longer waited for. A Redis that
// hangs must cost no more than one that refuses connections: each store call
// is bounded by the store timeout.
func TestFaults_RedisDown_FailOpen(t *testing.T) {
	for _, tc := range redisOutages {
		t.Run(tc.name, func(t *testing.T) {
			fleetproc.NoLeaks(t)
			srv := redistest.Server(t)
			origin := fleetproc.NewOrigin(t, "max-age=60", 16<<10)
			tr, client := inProcessCache(t, "redis://"+srv.Addr())
			url := origin.URL + "/down"
			fleetproc.CheckBodies(t, []fleetproc.Result{fleetproc.Get(client, 0, url)}, origin, 1)

			tc.start(t, srv)
			// Store calls take at most the store timeout (100ms) each, and
			// a request makes a handful before the breaker opens: a request
			// slower than this waited on Redis itself.
			const bound = 2 * time.Second
			get := func() {
				t.Helper()
				// A request stuck on Redis fails the test at the bound; the
				// cleanup's closing of the store then unblocks it.
				done := make(chan fleetproc.Result, 1)
				go func() { done <- fleetproc.Get(client, 0, url) }()
				timer := time.NewTimer(bound)
				defer timer.Stop()
				select {
				case r := <-done:
					fleetproc.CheckBodies(t, []fleetproc.Result{r}, origin, 1)
				case <-timer.C:
					t.Fatalf("a request waited over %v with Redis %s: store calls are not bounded by the store timeout; %+v",
						bound, tc.name, tr.Stats())
				}
			}
			sent := int64(1)
			for n := 0; !tr.Stats().BreakerOpen; n++ {
				if n == 20 {
					t.Fatalf("breaker still closed after %d requests: %+v", n, tr.Stats())
				}
				get()
				sent++
			}
			for range 20 {
				get()
				sent++
			}
			if got := origin.Requests(); got != sent {
				t.Errorf("origin got %d requests, want all %d", got, sent)
			}
			st := tr.Stats()
			if !st.BreakerOpen || st.BreakerTrips != 1 || st.Hits != 0 || st.Stores != 1 {
				t.Errorf("stats %+v; want the breaker open after one trip, no hits, only the first response stored", st)
			}
		})
	}
}

// redisOutages are the ways a running Redis becomes unreachable.
var redisOutages = []struct {
	name  string
	start func(t testing.TB, srv *redistest.Srv)
}{
	{"stopped", func(_ testing.TB, srv *redistest.Srv) { srv.Kill() }},
	{"unresponsive", func(t testing.TB, srv *redistest.Srv) {
		// The server keeps its connections and accepts new ones, but
		// answers nothing, as a stuck server or a dead network path does;
		// the pause outlives the test, whose cleanup kills the server.
		if err := srv.Client(t).Do(context.Background(), "CLIENT", "PAUSE", "600000", "ALL").Err(); err != nil {
			t.Fatalf("CLIENT PAUSE: %v", err)
		}
	}},
}

// BenchmarkRedisDown_vs_Direct measures a request through the cache while
// Redis is down and the breaker open, against the same request sent without
// the cache: the difference is what an outage adds to each request.
func BenchmarkRedisDown_vs_Direct(b *testing.B) {
	origin := fleetproc.NewOrigin(b, "max-age=60", 1<<10)
	url := origin.URL + "/bench"
	run := func(b *testing.B, client *http.Client) {
		for b.Loop() {
			if r := fleetproc.Get(client, 0, url); r.Err != "" || r.Status != http.StatusOK {
				b.Fatalf("status %d, err %q", r.Status, r.Err)
			}
		}
	}
	b.Run("direct", func(b *testing.B) {
		base := &http.Transport{}
		b.Cleanup(base.CloseIdleConnections)
		run(b, &http.Client{Transport: base})
	})
	for _, tc := range redisOutages {
		b.Run("redis-"+tc.name, func(b *testing.B) {
			srv := redistest.Server(b)
			tr, client := inProcessCache(b, "redis://"+srv.Addr())
			tc.start(b, srv)
			for n := 0; !tr.Stats().BreakerOpen; n++ {
				if n == 20 {
					b.Fatalf("breaker still closed: %+v", tr.Stats())
				}
				fleetproc.Get(client, 0, url)
			}
			run(b, client)
		})
	}
}

// inProcessCache opens the cache on redisURL as a service would, and
// returns its transport with a client using it; all are closed when the
// test ends. The lease is short so that a fleet wait cut by a Redis failure
// does not hold a test up.
func inProcessCache(t testing.TB, redisURL string) (*roundtrip.Transport, *http.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	store, err := rediscache.Open(ctx, redisURL, rediscache.Options{Prefix: fleetPrefix})
	if err != nil {
		t.Fatal(err)
	}
	origin := &http.Transport{}
	tr := roundtrip.New(store, roundtrip.Options{
		Transport:    origin,
		LeaseTimeout: time.Second,
		Logger:       fleetproc.Logger(t),
	})
	t.Cleanup(func() {
		if err := errors.Join(tr.Close(), store.Close()); err != nil {
			t.Errorf("close: %v", err)
		}
		origin.CloseIdleConnections()
	})
	return tr, &http.Client{Transport: tr}
}
