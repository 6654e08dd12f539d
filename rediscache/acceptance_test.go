package rediscache

import (
	"fmt"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/internal/redistest"
	"github.com/fleetcache/fleetcache/internal/storetest"
	"github.com/fleetcache/fleetcache/roundtrip"
)

// The seam: the transport's interfaces, which the store satisfies without
// importing the transport.
var (
	_ roundtrip.Store      = (*Store)(nil)
	_ roundtrip.FleetStore = (*Store)(nil)
	_ roundtrip.TagStore   = (*Store)(nil)
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

// And with a near tier, which must not change what the store answers.
func TestStore_NearAcceptance(t *testing.T) {
	redistest.Run(t, redistest.Real, func(t *testing.T, r *redistest.Redis) {
		n := 0
		storetest.Run(t, func(t *testing.T) storetest.Harness {
			n++
			f := newFixture(t, r, Options{Prefix: fmt.Sprintf("nacc%d:", n), NearBytes: 1 << 20})
			return storetest.Harness{Store: f.s, Advance: func(d time.Duration) { f.advance(d) }}
		})
		storetest.RunFleet(t, func(t *testing.T) storetest.FleetHarness {
			n++
			opts := Options{Prefix: fmt.Sprintf("nfleet%d:", n), NearBytes: 1 << 20}
			a, b := newFixture(t, r, opts), newFixture(t, r, opts)
			return storetest.FleetHarness{A: a.s, B: b.s, Advance: func(d time.Duration) {
				b.clock.Add(d)
				a.advance(d)
			}}
		})
	})
}

// And that of roundtrip.FleetStore: two stores on one Redis and prefix are
// two processes of a fleet.
func TestStore_FleetAcceptance(t *testing.T) {
	redistest.Run(t, redistest.WithCluster, func(t *testing.T, r *redistest.Redis) {
		n := 0
		storetest.RunFleet(t, func(t *testing.T) storetest.FleetHarness {
			n++
			opts := Options{Prefix: fmt.Sprintf("fleet%d:", n)}
			a, b := newFixture(t, r, opts), newFixture(t, r, opts)
			return storetest.FleetHarness{A: a.s, B: b.s, Advance: func(d time.Duration) {
				b.clock.Add(d)
				a.advance(d)
			}}
		})
	})
}
