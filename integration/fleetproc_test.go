package integration_test

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fleetcache/fleetcache/integration/internal/fleetproc"
	"github.com/fleetcache/fleetcache/internal/redistest"
	"github.com/fleetcache/fleetcache/policy"
	"github.com/fleetcache/fleetcache/rediscache"
)

// TestFleetProcChild is the life of a fleet member process: the fleet tests
// start this test binary again to run it. In a normal run it does nothing.
func TestFleetProcChild(t *testing.T) { fleetproc.RunChild() }

// fleetPrefix is the key prefix every fleet test's cache uses; each test has
// a Redis of its own.
const fleetPrefix = "fleet:"

// patientStoreTimeout is the store timeout of fleets whose tests count on
// every store call succeeding: exact origin request counts, stale entries
// found. A store call that times out fails open to the origin, as it should,
// and so adds a request or hides an entry; on a loaded test machine a
// loopback Redis call can stall past the 100ms default, which is not what
// these tests are about (the fault tests are).
const patientStoreTimeout = 2 * time.Second

// fleetConfig configures the i-th process of a fleet on redisURL.
func fleetConfig(redisURL string, lease, storeTimeout time.Duration) func(i int) fleetproc.Config {
	return func(i int) fleetproc.Config {
		return fleetproc.Config{ID: i, Redis: redisURL, Prefix: fleetPrefix, LeaseTimeout: lease, StoreTimeout: storeTimeout}
	}
}

// fillChannel is the channel on which the fleet announces that rawURL was
// stored, as the processes' stores name it.
func fillChannel(t *testing.T, c redis.UniversalClient, rawURL string) string {
	t.Helper()
	s, err := rediscache.New(c, rediscache.Options{Prefix: fleetPrefix})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return s.FillChannel(policy.NormalizeURL(u))
}

// awaitSubscribers waits until want connections listen on rawURL's fill
// channel: that many processes wait for a peer's fetch.
func awaitSubscribers(t *testing.T, r *redistest.Redis, rawURL string, want int64) {
	t.Helper()
	channel := fillChannel(t, r.Client, rawURL)
	var got int64
	fleetproc.PollUntil(t, "processes waiting on the fill channel", 10*time.Second, func() bool {
		got = r.Subscribers(t, channel)
		return got == want
	}, func() string { return fmt.Sprintf("%d subscribers, want %d", got, want) })
}
