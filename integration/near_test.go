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

// A POST through one process of a fleet with near tiers makes the next GET
// through another miss: the invalidation reaches the other process's tier
// through the shard's announcement. Over many rounds it records how long
// that took, from the end of the POST in one process to the first GET that
// missed in the other (wall clock, one machine): a measurement for
// docs/store.md, logged, not asserted.
func TestNear_PostThroughOneProcessReachesAnother(t *testing.T) {
	redistest.Run(t, redistest.Real, func(t *testing.T, r *redistest.Redis) {
		origin := fleetproc.NewOrigin(t, "max-age=600", 1<<10)
		procs := fleetproc.Start(t, 2, func(i int) fleetproc.Config {
			return fleetproc.Config{ID: i, Redis: r.URL, Prefix: fleetPrefix, StoreTimeout: patientStoreTimeout, NearBytes: 16 << 20}
		})
		writer, reader := procs[:1], procs[1:]
		u := origin.URL + "/near"
		fleetproc.Do(t, reader, fleetproc.Command{URL: u, N: 1})
		rounds := 1000
		if testing.Short() {
			rounds = 100
		}
		var lat []time.Duration
		late := 0
		for i := range rounds {
			fleetproc.Send(t, reader, fleetproc.Command{URL: u, Watch: true})
			post := fleetproc.Results(fleetproc.Do(t, writer, fleetproc.Command{URL: u, N: 1, Method: http.MethodPost}))[0]
			watched := fleetproc.Collect(t, reader)[0]
			got := watched.Results[0]
			if post.Err != "" || post.Status != http.StatusOK {
				t.Fatalf("round %d: POST = %+v", i, post)
			}
			if got.Err != "" || got.Status != http.StatusOK || strings.Contains(got.CacheStatus, "; hit") || got.Sum != origin.Sum {
				t.Fatalf("round %d: the GET after the POST = %+v, want a miss served from the origin", i, got)
			}
			if watched.Watched.NearHits == 0 {
				late++ // the reader began watching after the invalidation: no measure
				continue
			}
			lat = append(lat, max(0, watched.Watched.MissAt.Sub(post.Done)))
		}
		if len(lat) == 0 {
			t.Fatalf("no round saw a near hit before the POST (%d rounds)", rounds)
		}
		slices.Sort(lat)
		q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
		t.Logf("%s: %d invalidations measured (%d rounds, %d began late): p50 %v, p99 %v, max %v",
			r.Backend, len(lat), rounds, late, q(0.50), q(0.99), lat[len(lat)-1])
	})
}
