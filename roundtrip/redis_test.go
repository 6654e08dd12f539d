package roundtrip_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetcache/fleetcache/coalesce"
	"github.com/fleetcache/fleetcache/internal/redistest"
	"github.com/fleetcache/fleetcache/policy"
	"github.com/fleetcache/fleetcache/rediscache"
	"github.com/fleetcache/fleetcache/roundtrip"
)

// The same behaviours over the real store, on a redis-server, on miniredis
// and on a three-master cluster: the store is a FleetStore, so misses also go
// through the fleet lease and fill channel.

// redisTransports returns n transports sharing one rediscache store on r,
// as n services of a fleet would.
func redisTransports(t *testing.T, r *redistest.Redis, n int) ([]*http.Client, *rediscache.Store) {
	t.Helper()
	return redisTransportsWith(t, r, n, roundtrip.Options{})
}

// redisTransportsWith is redisTransports with options; Transport and a
// generous StoreTimeout are filled in.
func redisTransportsWith(t *testing.T, r *redistest.Redis, n int, opts roundtrip.Options) ([]*http.Client, *rediscache.Store) {
	t.Helper()
	store, err := rediscache.Open(context.Background(), r.URL, rediscache.Options{Prefix: "rt:"})
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	var clients []*http.Client
	for range n {
		origin := &http.Transport{}
		// A generous store timeout: 200 goroutines on one Redis under the
		// race detector are slow, and a timed-out call fails open to the
		// origin by design, which would spoil the exact counts.
		o := opts
		o.Transport, o.StoreTimeout = origin, 5*time.Second
		tr := roundtrip.New(store, o)
		t.Cleanup(func() {
			require.NoError(t, tr.Close())
			origin.CloseIdleConnections()
		})
		clients = append(clients, &http.Client{Transport: tr})
	}
	return clients, store
}

func countingOrigin(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func readAll(t *testing.T, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func TestRedisStore_ConcurrentColdMissesSendOneRequest(t *testing.T) {
	redistest.Run(t, redistest.WithCluster, func(t *testing.T, r *redistest.Redis) {
		release := make(chan struct{})
		origin, hits := countingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
			<-release
			w.Header().Set("Cache-Control", "max-age=60")
			fmt.Fprint(w, strings.Repeat("y", 8192))
		})
		clients, _ := redisTransports(t, r, 2)
		wait := stampede(200, func(i int) string {
			req, _ := http.NewRequest(http.MethodGet, origin.URL+"/cold", nil)
			_, body := readAll(t, clients[i%2], req)
			return body
		})
		eventually(t, "the first request at the origin", func() bool { return hits.Load() == 1 })
		close(release)
		bodies := wait()
		assert.EqualValues(t, 1, hits.Load(), "two transports on one store: one origin request")
		for _, b := range bodies {
			require.Len(t, b, 8192)
		}
	})
}

func TestRedisStore_RFC9111_4_4_PostThroughOneTransportInvalidatesForAnother(t *testing.T) {
	redistest.Run(t, redistest.WithCluster, func(t *testing.T, r *redistest.Redis) {
		origin, hits := countingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost {
				w.WriteHeader(http.StatusNoContent)
				return
			}
			w.Header().Set("Cache-Control", "max-age=60")
			fmt.Fprint(w, "item")
		})
		clients, store := redisTransports(t, r, 2)
		get := func(c *http.Client) string {
			req, _ := http.NewRequest(http.MethodGet, origin.URL+"/item", nil)
			resp, _ := readAll(t, c, req)
			return resp.Header.Get("Cache-Status")
		}
		get(clients[0])
		assert.Contains(t, get(clients[1]), "hit", "the second service sees the first one's entry")

		req, _ := http.NewRequest(http.MethodPost, origin.URL+"/item", strings.NewReader("change"))
		readAll(t, clients[1], req)
		st, err := store.Stats(context.Background())
		require.NoError(t, err)
		assert.EqualValues(t, 0, st.Entries)
		assert.Contains(t, get(clients[0]), "fwd=uri-miss", "the first service no longer serves it")
		assert.EqualValues(t, 3, hits.Load())
	})
}

func TestRedisStore_RFC9111_3_PrivateAndAuthorizedNeverServedToOthers(t *testing.T) {
	redistest.Run(t, redistest.WithCluster, func(t *testing.T, r *redistest.Redis) {
		origin, _ := countingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/private" {
				w.Header().Set("Cache-Control", "private, max-age=60")
			} else {
				w.Header().Set("Cache-Control", "max-age=60")
			}
			fmt.Fprint(w, "for "+r.Header.Get("Authorization"))
		})
		clients, store := redisTransports(t, r, 2)
		for _, path := range []string{"/private", "/authorized"} {
			for i, user := range []string{"alice", "bob", "carol"} {
				req, _ := http.NewRequest(http.MethodGet, origin.URL+path, nil)
				req.Header.Set("Authorization", user)
				_, body := readAll(t, clients[i%2], req)
				assert.Equal(t, "for "+user, body, path)
			}
		}
		st, err := store.Stats(context.Background())
		require.NoError(t, err)
		assert.EqualValues(t, 0, st.Entries, "nothing a user's request produced was stored")
	})
}

func TestRedisStore_MarkedURLIsNotQueuedBehindAPeersLease(t *testing.T) {
	redistest.Run(t, redistest.WithCluster, func(t *testing.T, r *redistest.Redis) {
		origin, hits := countingOrigin(t, fixedBody("max-age=60", "fresh"))
		// A lease wait far longer than the request may take: queueing behind
		// the peer would make the request time out.
		clients, store := redisTransportsWith(t, r, 1, roundtrip.Options{LeaseTimeout: time.Minute})
		ctx := context.Background()
		u, err := url.Parse(origin.URL + "/marked")
		require.NoError(t, err)
		key := policy.NormalizeURL(u)

		// A fleet peer holds the lease, and the URL's last answer could not be
		// shared.
		_, _, lease, err := store.Claim(ctx, key, nil, "", time.Minute, false)
		require.NoError(t, err)
		require.True(t, lease.Mine)
		defer store.Release(ctx, lease, false)
		require.NoError(t, store.Release(ctx, coalesce.Lease{Key: key}, true))

		rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(rctx, http.MethodGet, u.String(), nil)
		_, body := readAll(t, clients[0], req)
		assert.Equal(t, "fresh", body)
		assert.EqualValues(t, 1, hits.Load(), "fetched at once, not after the peer's lease")
	})
}
