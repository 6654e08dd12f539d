package integration_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/integration/internal/fleetproc"
	"github.com/fleetcache/fleetcache/internal/redistest"
)

// A burst of identical misses from every process of a fleet reaches the
// origin once, and every caller gets the whole body. On a cluster the
// processes meet through sharded pub/sub.
func TestFleetProcs_OneOriginRequestPerBurst(t *testing.T) {
	for _, tc := range []struct {
		backend        redistest.Backend
		procs, callers int
	}{
		{redistest.RealServer, 4, 50},
		{redistest.RealCluster, 2, 20},
	} {
		t.Run(tc.backend.Name, func(t *testing.T) {
			fleetproc.NoLeaks(t)
			r := tc.backend.Start(t)
			redisURL := r.URL
			origin := fleetproc.NewOrigin(t, "max-age=60", 256<<10)
			procs := fleetproc.Start(t, tc.procs, fleetConfig(redisURL, 0, patientStoreTimeout))
			url := origin.URL + "/cold"

			origin.Hold()
			fleetproc.Send(t, procs, fleetproc.Command{URL: url, N: tc.callers})
			// The origin answers only once every other process waits for
			// the leader's fill: the bursts overlap however the processes
			// were scheduled.
			awaitSubscribers(t, r, url, int64(tc.procs-1))
			origin.Release()
			results := fleetproc.Results(fleetproc.Collect(t, procs))

			if got := origin.Requests(); got != 1 {
				t.Errorf("origin got %d requests, want 1", got)
			}
			fleetproc.CheckBodies(t, results, origin, tc.procs*tc.callers)
			fetched, collapsed := 0, 0
			for _, r := range results {
				switch cs := r.CacheStatus; {
				case strings.Contains(cs, "; collapsed"):
					collapsed++
				case strings.Contains(cs, "fwd=uri-miss; fwd-status=200; detail=storing"):
					fetched++ // 64 KiB: the header left before the store's answer
				default:
					t.Errorf("process %d: Cache-Status %q, want a miss being stored or a collapsed one", r.Proc, cs)
				}
			}
			if fetched != 1 || collapsed != len(results)-1 {
				t.Errorf("%d callers fetched, %d collapsed; want 1 and %d", fetched, collapsed, len(results)-1)
			}
		})
	}
}

// A leader that dies holding the lease delays the others by the lease time
// at most; then one of them fetches for all.
func TestFleetProcs_LeaderKilledHoldingLease(t *testing.T) {
	fleetproc.NoLeaks(t)
	r := redistest.RealServer.Start(t)
	redisURL := r.URL
	origin := fleetproc.NewOrigin(t, "max-age=60", 64<<10)
	const lease = time.Second
	procs := fleetproc.Start(t, 4, fleetConfig(redisURL, lease, patientStoreTimeout))
	url := origin.URL + "/leader-dies"

	origin.Hold()
	fleetproc.Send(t, procs, fleetproc.Command{URL: url, N: 50})
	id, err := strconv.Atoi(origin.Arrived(t, 10*time.Second))
	if err != nil || id < 0 || id >= len(procs) {
		t.Fatalf("origin request from process %d (%v)", id, err)
	}
	awaitSubscribers(t, r, url, int64(len(procs)-1))
	procs[id].Kill(t)
	origin.Release()
	others := append(procs[:id:id], procs[id+1:]...)
	results := fleetproc.Results(fleetproc.Collect(t, others))

	if got := origin.Requests(); got != 2 {
		t.Errorf("origin got %d requests, want 2: the dead leader's and its successor's", got)
	}
	fleetproc.CheckBodies(t, results, origin, 150)
	// Lease time + one origin request, with room for a loaded machine.
	const bound = lease + 1500*time.Millisecond
	var slowest time.Duration
	for _, r := range results {
		slowest = max(slowest, r.Latency)
	}
	t.Logf("slowest caller served after %v (lease %v)", slowest, lease)
	if slowest > bound {
		t.Errorf("slowest caller served after %v, want under %v", slowest, bound)
	}
}

// RFC 5861 §3: while the entry is stale within stale-while-revalidate,
// every process serves it at once and the fleet revalidates it once, in the
// background.
func TestFleetProcs_RFC5861_3_StaleWhileRevalidateOncePerFleet(t *testing.T) {
	fleetproc.NoLeaks(t)
	redisURL := redistest.RealServer.Start(t).URL
	origin := fleetproc.NewOrigin(t, "max-age=1, stale-while-revalidate=60", 64<<10)
	procs := fleetproc.Start(t, 2, fleetConfig(redisURL, 0, patientStoreTimeout))
	url := origin.URL + "/swr"

	prime := fleetproc.Results(fleetproc.Do(t, procs[:1], fleetproc.Command{URL: url, N: 1}))
	fleetproc.CheckBodies(t, prime, origin, 1)
	if cs := prime[0].CacheStatus; !strings.Contains(cs, "; detail=storing") {
		t.Fatalf("first response: Cache-Status %q, want it being stored", cs)
	}

	// Two seconds later for the whole fleet, origin included: the entry is
	// a second past max-age, well inside stale-while-revalidate.
	const later = 2 * time.Second
	origin.SetSkew(later)
	origin.Hold()
	results := fleetproc.Results(fleetproc.Do(t, procs, fleetproc.Command{URL: url, N: 25, Skew: later}))
	// Every caller got its answer while the origin held the refresh: none
	// waited for it.
	fleetproc.CheckBodies(t, results, origin, 50)
	for _, r := range results {
		if cs := r.CacheStatus; !strings.Contains(cs, "fleetcache; hit") || !strings.Contains(cs, "detail=stale-while-revalidate") {
			t.Errorf("process %d: Cache-Status %q, want a stale-while-revalidate hit", r.Proc, cs)
		}
	}
	fleetproc.PollUntil(t, "the background refresh to reach the origin", 10*time.Second,
		func() bool { return origin.Requests() >= 2 }, nil)
	origin.Release()

	// The refresh is counted as a revalidation once it is stored, a moment
	// after the store's own count: wait for both.
	var revalidations, stale int64
	fleetproc.PollUntil(t, "the refreshed entry to be stored and counted", 10*time.Second, func() bool {
		stats := fleetproc.Do(t, procs, fleetproc.Command{})
		revalidations, stale = 0, 0
		for _, r := range stats {
			revalidations += r.Stats.Revalidations
			stale += r.Stats.StaleServed
		}
		return stats[0].Stats.Stores+stats[1].Stats.Stores == 2 && revalidations > 0
	}, nil)
	if got := origin.Requests(); got != 2 {
		t.Errorf("origin got %d requests, want 2: the first fetch and one refresh for the fleet", got)
	}
	if revalidations != 1 || stale != 50 {
		t.Errorf("fleet counted %d revalidations and %d stale responses, want 1 and 50", revalidations, stale)
	}
}
