package roundtrip_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetcache/fleetcache/roundtrip"
)

// The fleet seam with no Redis: transports on one memFleet are the
// processes of a fleet.

// fleetOf returns n clients whose transports share fleet, as n processes
// would, on the origin h.
func fleetOf(t *testing.T, fleet *memFleet, clk *clock, n int, h http.HandlerFunc) ([]*http.Client, *origin) {
	t.Helper()
	o := newOrigin(t, clk, h)
	var clients []*http.Client
	for range n {
		tr := roundtrip.New(fleet, roundtrip.Options{Now: clk.Now, Transport: &http.Transport{}})
		t.Cleanup(func() { require.NoError(t, tr.Close()) })
		clients = append(clients, &http.Client{Transport: tr})
	}
	return clients, o
}

// A miss claims the lease with its lookup and ends it with the write: two
// store calls, the two round trips of rediscache.
func TestFleet_MissIsOneClaimAndOneFill(t *testing.T) {
	clk := newClock()
	fleet := newMemFleet(clk.Now)
	clients, o := fleetOf(t, fleet, clk, 1, fixedBody("max-age=60", "body"))
	resp, err := clients[0].Get(o.URL + "/one")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, "fleetcache; fwd=uri-miss; fwd-status=200; stored", resp.Header.Get("Cache-Status"))
	assert.EqualValues(t, 1, fleet.claims.Load(), "claims")
	assert.EqualValues(t, 1, fleet.fills.Load(), "fills")
	// The fake's Claim reads and its Fill writes through the memStore.
	assert.Zero(t, fleet.gets.Load()-fleet.claims.Load()+fleet.puts.Load()-fleet.fills.Load(), "no other store call")
	assert.Zero(t, fleet.waits.Load())
}

// A burst on every process of a fleet reaches the origin once: one process
// holds the lease, and the others, and the holder's own process, wait for
// its fill.
func TestFleet_BurstOverTheFakeFleetSendsOneRequest(t *testing.T) {
	clk := newClock()
	fleet := newMemFleet(clk.Now)
	release := make(chan struct{})
	clients, o := fleetOf(t, fleet, clk, 3, func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, strings.Repeat("f", 4096))
	})
	wait := stampede(60, func(i int) string {
		req, _ := http.NewRequest(http.MethodGet, o.URL+"/burst", nil)
		_, body := readAll(t, clients[i%3], req)
		return body
	})
	eventually(t, "the holder at the origin", func() bool { return o.hits.Load() == 1 })
	close(release)
	for _, b := range wait() {
		require.Len(t, b, 4096)
	}
	assert.EqualValues(t, 1, o.hits.Load())
	assert.EqualValues(t, 1, fleet.fills.Load())
}
