package integration_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
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

// procBackend is a real Redis deployment a fleet of processes shares.
type procBackend struct {
	name string
	// start returns the URL the processes open and a client for the test.
	start func(t *testing.T) (string, redis.UniversalClient)
	// subscribers counts the connections subscribed to a fill channel.
	subscribers func(ctx context.Context, c redis.UniversalClient, channel string) (int64, error)
}

var procServer = procBackend{
	name: "server",
	start: func(t *testing.T) (string, redis.UniversalClient) {
		s := redistest.Server(t)
		return "redis://" + s.Addr(), s.Client(t)
	},
	subscribers: func(ctx context.Context, c redis.UniversalClient, channel string) (int64, error) {
		n, err := c.PubSubNumSub(ctx, channel).Result()
		return n[channel], err
	},
}

var procCluster = procBackend{
	name: "cluster",
	start: func(t *testing.T) (string, redis.UniversalClient) {
		c := redistest.Cluster(t)
		addrs := c.Addrs()
		return "redis://" + addrs[0] + "?addr=" + strings.Join(addrs[1:], "&addr="), c.Client(t)
	},
	subscribers: func(ctx context.Context, c redis.UniversalClient, channel string) (int64, error) {
		// Sharded subscriptions live on the master of the channel's slot.
		node, err := c.(*redis.ClusterClient).MasterForKey(ctx, channel)
		if err != nil {
			return 0, err
		}
		n, err := node.PubSubShardNumSub(ctx, channel).Result()
		return n[channel], err
	},
}

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
func awaitSubscribers(t *testing.T, b procBackend, c redis.UniversalClient, rawURL string, want int64) {
	t.Helper()
	channel := fillChannel(t, c, rawURL)
	var got int64
	var err error
	fleetproc.PollUntil(t, "processes waiting on the fill channel", 10*time.Second, func() bool {
		got, err = b.subscribers(context.Background(), c, channel)
		return err == nil && got == want
	}, func() string { return fmt.Sprintf("%d subscribers, want %d (err %v)", got, want, err) })
}
