package integration_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/fleetcache/fleetcache/integration/internal/fleetproc"
	"github.com/fleetcache/fleetcache/internal/redistest"
)

// A POST through one OS process whose answer names a cache group in
// Cache-Group-Invalidation (RFC 9875 §3) removes every response of that
// group for every process: the next GET of each, in another process, is a
// miss.
func TestFleetProcs_RFC9875_3_CacheGroupInvalidationAcrossProcesses(t *testing.T) {
	redistest.Run(t, redistest.Real, func(t *testing.T, r *redistest.Redis) {
		fleetproc.NoLeaks(t)
		origin := fleetproc.NewOrigin(t, "max-age=600", 4<<10)
		origin.SetGroups(`"products"`)
		procs := fleetproc.Start(t, 2, fleetConfig(r.URL, 0, patientStoreTimeout))
		urls := []string{origin.URL + "/products/1", origin.URL + "/products/2?lang=fr", origin.URL + "/search?q=1"}
		for _, u := range urls {
			fleetproc.CheckBodies(t, fleetproc.Results(fleetproc.Do(t, procs[:1], fleetproc.Command{URL: u, N: 1})), origin, 1)
			for _, res := range fleetproc.Results(fleetproc.Do(t, procs[1:], fleetproc.Command{URL: u, N: 1})) {
				if !strings.Contains(res.CacheStatus, "hit") {
					t.Fatalf("%s in process 1 before the POST: Cache-Status %q, want a hit", u, res.CacheStatus)
				}
			}
		}
		post := fleetproc.Results(fleetproc.Do(t, procs[:1], fleetproc.Command{URL: origin.URL + "/cart", N: 1, Method: http.MethodPost}))
		if cs := post[0].CacheStatus; !strings.Contains(cs, "fwd=method") || !strings.Contains(cs, "1 groups") {
			t.Fatalf("POST: Cache-Status %q, want the group invalidated", cs)
		}
		before := origin.Requests()
		for _, u := range urls {
			for _, res := range fleetproc.Results(fleetproc.Do(t, procs[1:], fleetproc.Command{URL: u, N: 1})) {
				if !strings.Contains(res.CacheStatus, "fwd=uri-miss") {
					t.Errorf("%s in process 1 after the POST: Cache-Status %q, want a miss", u, res.CacheStatus)
				}
			}
		}
		if got := origin.Requests() - before; got != int64(len(urls)) {
			t.Errorf("the origin got %d requests after the POST, want %d", got, len(urls))
		}
	})
}
