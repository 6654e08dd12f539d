package integration_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/integration/internal/fleetproc"
	"github.com/fleetcache/fleetcache/internal/redistest"
)

// A POST through one process of a fleet with near tiers reaches every
// other: the invalidation drops the entry from their near tiers through the
// shard's announcement, and their next GET goes to Redis (a miss, or a hit
// on the entry another reader stored since). Over many rounds it records
// how long that took, from the end of the POST in one process to the first
// GET in another that the near tier did not answer (wall clock, one
// machine): a measurement for docs/store.md, logged, not asserted.
func TestNear_PostThroughOneProcessReachesAnother(t *testing.T) {
	redistest.Run(t, redistest.Real, func(t *testing.T, r *redistest.Redis) {
		origin := fleetproc.NewOrigin(t, "max-age=600", 1<<10)
		procs := fleetproc.Start(t, 3, func(i int) fleetproc.Config {
			return fleetproc.Config{ID: i, Redis: r.URL, Prefix: fleetPrefix, StoreTimeout: patientStoreTimeout, NearBytes: 16 << 20}
		})
		writer, readers := procs[:1], procs[1:]
		u := origin.URL + "/near"
		fleetproc.Do(t, readers, fleetproc.Command{URL: u, N: 1})
		rounds := 1000
		if testing.Short() {
			rounds = 100
		}
		var lat []time.Duration
		late := 0
		for i := range rounds {
			// Each reader holds the entry: one reader's refill in the last
			// round dropped the other's copy.
			fleetproc.Do(t, readers, fleetproc.Command{URL: u, N: 1})
			fleetproc.Send(t, readers, fleetproc.Command{URL: u, Watch: true})
			post := fleetproc.Results(fleetproc.Do(t, writer, fleetproc.Command{URL: u, N: 1, Method: http.MethodPost}))[0]
			if post.Err != "" || post.Status != http.StatusOK {
				t.Fatalf("round %d: POST = %+v", i, post)
			}
			for _, watched := range fleetproc.Collect(t, readers) {
				got := watched.Results[0]
				if got.Err != "" || got.Status != http.StatusOK || strings.Contains(got.CacheStatus, "detail=near") || got.Sum != origin.Sum {
					t.Fatalf("round %d: the GET after the POST = %+v, want one the near tier did not answer", i, got)
				}
				if watched.Watched.NearHits == 0 {
					late++ // the invalidation came before the reader's first GET: no measure
					continue
				}
				lat = append(lat, max(0, watched.Watched.MissAt.Sub(post.Done)))
			}
		}
		if len(lat) == 0 {
			t.Fatalf("no round saw a near hit before the POST (%d rounds)", rounds)
		}
		slices.Sort(lat)
		q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
		t.Logf("%s: %d invalidations measured (%d rounds, 2 readers, %d began late): p50 %v, p99 %v, max %v",
			r.Backend, len(lat), rounds, late, q(0.50), q(0.99), lat[len(lat)-1])
	})
}

// A Redis restarted under load: an entry removed before the restart by a
// change no near tier heard of (an operator's DEL here; a purge whose
// announcement the restart cut off is the same case) is never served from
// a near tier after it. Each process empties its tier when its subscription
// drops, and keeps nothing until it is subscribed again (rediscache's
// TestNear_RestartEmptiesTheTier shows that it is the drop that empties
// it, not the one-second bound on an unconfirmed copy).
func TestNear_RedisRestartMidLoadServesNothingRemovedBefore(t *testing.T) {
	redistest.Run(t, []redistest.Backend{redistest.RealServer}, func(t *testing.T, r *redistest.Redis) {
		origin := fleetproc.NewOrigin(t, "max-age=600", 1<<10)
		procs := fleetproc.Start(t, 2, func(i int) fleetproc.Config {
			return fleetproc.Config{ID: i, Redis: r.URL, Prefix: fleetPrefix, StoreTimeout: patientStoreTimeout, NearBytes: 16 << 20}
		})
		reader, load := procs[:1], procs[1:]
		u := origin.URL + "/restart"
		fleetproc.Do(t, reader, fleetproc.Command{URL: u, N: 1})
		if got := fleetproc.Results(fleetproc.Do(t, reader, fleetproc.Command{URL: u, N: 1}))[0]; !strings.Contains(got.CacheStatus, "detail=near") {
			t.Fatalf("before the restart: Cache-Status %q, want a near hit", got.CacheStatus)
		}
		// Removed behind every tier's back.
		for _, k := range r.Keys(t) {
			if err := r.Client.Del(t.Context(), k).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if got := fleetproc.Results(fleetproc.Do(t, reader, fleetproc.Command{URL: u, N: 1}))[0]; !strings.Contains(got.CacheStatus, "detail=near") {
			t.Fatalf("after the DEL: Cache-Status %q, want the near hit an unannounced DEL leaves", got.CacheStatus)
		}
		// The other process keeps the fleet busy through the restart.
		fleetproc.Send(t, load, fleetproc.Command{URL: origin.URL + "/busy", N: 200})
		r.Kill(t)
		// The reader's tier empties when its subscription drops: from then
		// on its GETs go past it (to the origin, Redis being down).
		watched := fleetproc.Results(fleetproc.Do(t, reader, fleetproc.Command{URL: u, Watch: true}))[0]
		if strings.Contains(watched.CacheStatus, "detail=near") || watched.Status != http.StatusOK || watched.Sum != origin.Sum {
			t.Fatalf("with Redis down: %+v, want the origin's answer", watched)
		}
		r.Restart(t)
		fleetproc.Collect(t, load)
		for i := range 20 {
			got := fleetproc.Results(fleetproc.Do(t, reader, fleetproc.Command{URL: u, N: 4}))
			for _, g := range got {
				if g.Err != "" || g.Status != http.StatusOK || g.Sum != origin.Sum {
					t.Fatalf("round %d after the restart: %+v", i, g)
				}
			}
			if i == 0 && strings.Contains(got[0].CacheStatus, "detail=near") {
				t.Fatalf("the first GET after the restart was a near hit: %q", got[0].CacheStatus)
			}
		}
	})
}
