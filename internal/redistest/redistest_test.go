package redistest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/fleetcache/fleetcache/internal/redistest"
)

func TestServerAnswersPing(t *testing.T) {
	s := redistest.Server(t)
	c := s.Client(t)
	require.NoError(t, c.Ping(context.Background()).Err())
	require.NotEqual(t, "127.0.0.1:6379", s.Addr(), "tests must never use the shared Redis")
}

func TestKilledServerRefusesThenRestartAnswers(t *testing.T) {
	s := redistest.Server(t)
	c := s.Client(t)
	ctx := context.Background()
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())

	s.Kill()
	err := c.Ping(ctx).Err()
	require.Error(t, err)
	require.Contains(t, err.Error(), "connection refused")

	s.Restart(t)
	require.NoError(t, c.Ping(ctx).Err())
	require.ErrorIs(t, c.Get(ctx, "k").Err(), redis.Nil, "a restarted server starts empty: nothing is persisted")
}

func TestClusterRoutesKeysToThreeMasters(t *testing.T) {
	c := redistest.Cluster(t)
	cl := c.Client(t)
	ctx := context.Background()
	for i := range 300 {
		require.NoError(t, cl.Set(ctx, fmt.Sprintf("key-%d", i), i, time.Minute).Err())
	}
	var mu sync.Mutex
	sizes := map[string]int64{}
	require.NoError(t, cl.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		n, err := m.DBSize(ctx).Result()
		mu.Lock()
		sizes[m.Options().Addr] = n
		mu.Unlock()
		return err
	}))
	require.Len(t, sizes, 3)
	var total int64
	for addr, n := range sizes {
		require.Positive(t, n, "master %s holds no key", addr)
		total += n
	}
	require.EqualValues(t, 300, total)
}

func TestMiniAnswersPing(t *testing.T) {
	_, c := redistest.Mini(t)
	require.NoError(t, c.Ping(context.Background()).Err())
}

// Advance lets keys expire on every backend as the test's clock moves,
// without waiting.
func TestAdvanceExpiresKeysOnEveryBackend(t *testing.T) {
	redistest.Run(t, redistest.WithCluster, func(t *testing.T, r *redistest.Redis) {
		ctx := context.Background()
		for i := range 20 {
			require.NoError(t, r.Client.Set(ctx, fmt.Sprint("short-", i), "v", 10*time.Second).Err())
			require.NoError(t, r.Client.Set(ctx, fmt.Sprint("long-", i), "v", time.Hour).Err())
			require.NoError(t, r.Client.Set(ctx, fmt.Sprint("forever-", i), "v", 0).Err())
		}
		r.Advance(t, 9*time.Second)
		require.Len(t, r.Keys(t), 60, "nothing expired yet")
		r.Advance(t, time.Second)
		require.Len(t, r.Keys(t), 40, "the short keys expired")
		ttl := r.TTL(t, "long-3")
		require.True(t, ttl > 59*time.Minute+49*time.Second && ttl <= 59*time.Minute+50*time.Second, "long-3 TTL %v", ttl)
		require.EqualValues(t, -1, r.TTL(t, "forever-3"))
		require.EqualValues(t, -2, r.TTL(t, "short-3"))
	})
}
