package rediscache

import (
	"fmt"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/internal/redistest"
	"github.com/fleetcache/fleetcache/internal/storetest"
)

// The store passes the acceptance suite of roundtrip.Store on every Redis it
// runs on.
func TestStore_Acceptance(t *testing.T) {
	redistest.Run(t, redistest.WithCluster, func(t *testing.T, r *redistest.Redis) {
		n := 0
		storetest.Run(t, func(t *testing.T) storetest.Harness {
			n++ // each test its own prefix on the one Redis
			f := newFixture(t, r, Options{Prefix: fmt.Sprintf("acc%d:", n)})
			return storetest.Harness{Store: f.s, Advance: func(d time.Duration) { f.advance(d) }}
		})
	})
}
