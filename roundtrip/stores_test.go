package roundtrip_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fleetcache/fleetcache/internal/redistest"
	"github.com/fleetcache/fleetcache/rediscache"
	"github.com/fleetcache/fleetcache/roundtrip"
)

// onEachStore runs test over the in-memory fake and over rediscache on
// each backend of redistest.Backends (a real redis-server, miniredis), so
// that a behaviour is proven on the store the fleet runs as well as on the
// fake that claims to behave like it.
func onEachStore(t *testing.T, h http.HandlerFunc, opts roundtrip.Options, test func(t *testing.T, f *fixture)) {
	t.Helper()
	forEachStore(t, func(t *testing.T, clk *clock, store roundtrip.Store) {
		o := opts
		if o.StoreTimeout == 0 {
			o.StoreTimeout = roundtripStoreTimeout
		}
		f := newFixtureOn(t, clk, store, h, o)
		f.store, _ = store.(*memStore)
		test(t, f)
	})
}

// forEachStore runs test over a fresh memStore and over a fresh rediscache
// store on each backend of redistest.Backends, each with a fresh test clock
// (the memStore keeps time by it).
func forEachStore(t *testing.T, test func(t *testing.T, clk *clock, store roundtrip.Store)) {
	t.Helper()
	t.Run("memstore", func(t *testing.T) {
		clk := newClock()
		test(t, clk, newMemStore(clk.Now))
	})
	redistest.Run(t, redistest.Backends, func(t *testing.T, r *redistest.Redis) {
		store, err := rediscache.Open(context.Background(), r.URL, rediscache.Options{Prefix: "rt:"})
		require.NoError(t, err)
		t.Cleanup(func() { store.Close() })
		test(t, newClock(), store)
	})
}

// roundtripStoreTimeout is generous: under the race detector a loaded
// machine can be slow, and a timed-out store call fails open to the origin
// by design, which would spoil exact origin counts.
const roundtripStoreTimeout = 5 * time.Second
