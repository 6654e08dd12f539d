package redistest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Backend is one kind of Redis a test can run on.
type Backend struct {
	Name string
	// Start starts a fresh, empty instance that stops when the test ends.
	Start func(t testing.TB) *Redis
}

// The backends.
var (
	// RealServer is a redis-server process: the proof that a Redis path
	// works, since miniredis accepts replies and arguments Redis refuses.
	RealServer = Backend{Name: "redis-server", Start: func(t testing.TB) *Redis { return ServerWith(t) }}
	// Miniredis is the in-process fake that users' own tests and the
	// sidecar's embedded default run on: fleetcache must work there too.
	Miniredis = Backend{Name: "miniredis", Start: func(t testing.TB) *Redis {
		m, c := Mini(t)
		return &Redis{Backend: "miniredis", URL: "redis://" + m.Addr(), Client: c, mini: m}
	}}
	// RealCluster is a three-master Redis Cluster of redis-server processes.
	RealCluster = Backend{Name: "cluster", Start: func(t testing.TB) *Redis {
		c := Cluster(t)
		addrs := c.Addrs()
		return &Redis{
			Backend: "cluster",
			URL:     "redis://" + addrs[0] + "?addr=" + strings.Join(addrs[1:], "&addr="),
			Client:  c.Client(t),
			cluster: c,
		}
	}}
)

// ServerWith starts a redis-server configured as an operator might run it,
// with extra command-line arguments ("--maxmemory", "8mb", ...).
func ServerWith(t testing.TB, args ...string) *Redis {
	t.Helper()
	s := start(t, args)
	return &Redis{Backend: "redis-server", URL: "redis://" + s.Addr(), Client: s.Client(t), srv: s}
}

// Backends is what every test of a Redis path runs on: a real redis-server
// and miniredis. Tests that involve keys spread over slots or pub/sub add
// RealCluster.
var Backends = []Backend{RealServer, Miniredis}

// WithCluster is Backends and RealCluster.
var WithCluster = []Backend{RealServer, Miniredis, RealCluster}

// Real is the real deployments, for tests of what miniredis does not model
// (other processes, crashes, the cluster's routing).
var Real = []Backend{RealServer, RealCluster}

// Run runs test once on each backend, as a subtest named after it.
func Run(t *testing.T, backends []Backend, test func(t *testing.T, r *Redis)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) { test(t, b.Start(t)) })
	}
}

// Redis is one throwaway Redis of some backend, owned by a test.
type Redis struct {
	Backend string
	// URL names the instance in the forms rediscache.Open accepts.
	URL string
	// Client is a client of it, closed when the test ends.
	Client redis.UniversalClient

	srv     *Srv
	mini    *miniredis.Miniredis
	cluster *ClusterSrv
}

// Mini is the miniredis behind the instance, or nil on a real server.
func (r *Redis) Mini() *miniredis.Miniredis { return r.mini }

// Real reports whether the instance is a redis-server (alone or in a cluster).
func (r *Redis) Real() bool { return r.mini == nil }

// NewClient returns another client of the instance with opts (Addr and
// Addrs are filled in), closed when the test ends.
func (r *Redis) NewClient(t testing.TB, opts redis.UniversalOptions) redis.UniversalClient {
	t.Helper()
	switch {
	case r.cluster != nil:
		opts.Addrs = r.cluster.Addrs()
		c := redis.NewClusterClient(opts.Cluster())
		t.Cleanup(func() { _ = c.Close() })
		return c
	case r.srv != nil:
		opts.Addrs = []string{r.srv.Addr()}
	default:
		opts.Addrs = []string{r.mini.Addr()}
	}
	c := redis.NewClient(opts.Simple())
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Kill stops the instance at once (every node of a cluster), as a crash
// would.
func (r *Redis) Kill(t testing.TB) {
	t.Helper()
	switch {
	case r.srv != nil:
		r.srv.Kill()
	case r.mini != nil:
		r.mini.Close()
	default:
		for _, n := range r.cluster.Nodes {
			n.Kill()
		}
	}
}

// Restart starts a killed (or running) instance again on the same address,
// empty.
func (r *Redis) Restart(t testing.TB) {
	t.Helper()
	switch {
	case r.srv != nil:
		r.srv.Restart(t)
	case r.mini != nil:
		r.mini.Close()
		r.mini.FlushAll()
		if err := r.mini.Restart(); err != nil {
			t.Fatalf("redistest: restart miniredis: %v", err)
		}
	default:
		t.Fatal("redistest: Restart of a cluster is not supported")
	}
}

// Advance moves the instance's expiry clock forward by d, so that a test
// with an injected clock can let keys expire without waiting: miniredis
// fast-forwards; on a real server every key's TTL is shortened by d and the
// keys whose TTL runs out are deleted, as Redis would expire them. Call it
// while nothing else writes.
func (r *Redis) Advance(t testing.TB, d time.Duration) {
	t.Helper()
	if d <= 0 {
		return
	}
	if r.mini != nil {
		r.mini.FastForward(d)
		return
	}
	ctx := context.Background()
	var err error
	switch c := r.Client.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			return advanceScript.Run(ctx, m, nil, d.Milliseconds()).Err()
		})
	default:
		err = advanceScript.Run(ctx, c, nil, d.Milliseconds()).Err()
	}
	if err != nil {
		t.Fatalf("redistest: advance %v: %v", d, err)
	}
}

// advanceScript shortens every key's TTL by ARGV[1] ms in one step.
var advanceScript = redis.NewScript(`
local d = tonumber(ARGV[1])
local cursor = '0'
repeat
	local r = redis.call('SCAN', cursor, 'COUNT', 1000)
	cursor = r[1]
	for _, k in ipairs(r[2]) do
		local p = redis.call('PTTL', k)
		if p > 0 then
			if p <= d then redis.call('DEL', k) else redis.call('PEXPIRE', k, p - d) end
		end
	end
until cursor == '0'
return 0`)

// TTL is the remaining time to live of key; as go-redis's PTTL, -1 (ns)
// when it has none and -2 when it does not exist.
func (r *Redis) TTL(t testing.TB, key string) time.Duration {
	t.Helper()
	if r.mini != nil {
		if !r.mini.Exists(key) {
			return -2
		}
		if d := r.mini.TTL(key); d > 0 {
			return d
		}
		return -1
	}
	d, err := r.Client.PTTL(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("redistest: PTTL %s: %v", key, err)
	}
	return d
}

// Keys lists every key of the instance (a test's own, small data set).
func (r *Redis) Keys(t testing.TB) []string {
	t.Helper()
	ctx := context.Background()
	var mu sync.Mutex
	var keys []string
	scan := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, "*", 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			keys = append(keys, iter.Val())
			mu.Unlock()
		}
		return iter.Err()
	}
	var err error
	switch c := r.Client.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, scan)
	case *redis.Client:
		err = scan(ctx, c)
	default:
		err = fmt.Errorf("client type %T", c)
	}
	if err != nil {
		t.Fatalf("redistest: keys: %v", err)
	}
	return keys
}

// Addr is the host:port of a single server (of miniredis too).
func (r *Redis) Addr() string {
	switch {
	case r.srv != nil:
		return r.srv.Addr()
	case r.mini != nil:
		return r.mini.Addr()
	}
	return r.cluster.Addrs()[0]
}

// Subscribers counts the connections subscribed to channel: plain
// subscriptions on a single server, shard subscriptions on the master of
// the channel's slot in a cluster, where fleetcache uses sharded pub/sub.
func (r *Redis) Subscribers(t testing.TB, channel string) int64 {
	t.Helper()
	ctx := context.Background()
	var n map[string]int64
	var err error
	if c, ok := r.Client.(*redis.ClusterClient); ok {
		var node *redis.Client
		if node, err = c.MasterForKey(ctx, channel); err == nil {
			n, err = node.PubSubShardNumSub(ctx, channel).Result()
		}
	} else {
		n, err = r.Client.PubSubNumSub(ctx, channel).Result()
	}
	if err != nil {
		t.Fatalf("redistest: subscribers of %s: %v", channel, err)
	}
	return n[channel]
}
