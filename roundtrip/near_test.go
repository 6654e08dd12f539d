package roundtrip_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetcache/fleetcache/internal/redistest"
	"github.com/fleetcache/fleetcache/policy"
	"github.com/fleetcache/fleetcache/rediscache"
	"github.com/fleetcache/fleetcache/roundtrip"
)

// nearClient is a transport over a store of its own with a near tier, as
// one process of a fleet has.
func nearClient(t *testing.T, r *redistest.Redis) *http.Client {
	t.Helper()
	store, err := rediscache.Open(context.Background(), r.URL, rediscache.Options{Prefix: "near:", NearBytes: 1 << 20})
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	eventually(t, "the near tier subscribed", func() bool {
		st, err := store.Stats(context.Background())
		return err == nil && st.NearLive
	})
	origin := &http.Transport{}
	tr := roundtrip.New(store, roundtrip.Options{Transport: origin, StoreTimeout: 5 * time.Second})
	t.Cleanup(func() {
		require.NoError(t, tr.Close())
		origin.CloseIdleConnections()
	})
	return &http.Client{Transport: tr}
}

// detail is the Cache-Status detail of the transport's member.
func detail(t *testing.T, resp *http.Response) string {
	t.Helper()
	ms, err := policy.ParseCacheStatus(resp.Header)
	require.NoError(t, err)
	require.NotEmpty(t, ms)
	return ms[len(ms)-1].Detail
}

// A hit from the near tier says so in Cache-Status (RFC 9211 §2.8 detail),
// and a POST through another process reaches it (RFC 9111 §4.4).
func TestNear_RFC9211_2_8_NearHitIsToldApartAndInvalidatedByAnotherProcess(t *testing.T) {
	redistest.Run(t, redistest.Real, func(t *testing.T, r *redistest.Redis) {
		origin, hits := countingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost {
				w.WriteHeader(http.StatusNoContent)
				return
			}
			w.Header().Set("Cache-Control", "max-age=60")
			fmt.Fprint(w, "version ", time.Now().UnixNano())
		})
		a, b := nearClient(t, r), nearClient(t, r)
		get := func(c *http.Client) (*http.Response, string) {
			req, _ := http.NewRequest(http.MethodGet, origin.URL+"/page", nil)
			return readAll(t, c, req)
		}
		_, first := get(a)
		resp, again := get(a)
		assert.Equal(t, first, again)
		assert.Equal(t, "near", detail(t, resp), "a hit from the near tier")
		// B reads it from Redis first: a Redis hit, which says no detail.
		resp, fromRedis := get(b)
		assert.Equal(t, first, fromRedis)
		assert.Equal(t, "", detail(t, resp), "a hit from Redis")

		req, _ := http.NewRequest(http.MethodPost, origin.URL+"/page", nil)
		readAll(t, b, req)
		eventually(t, "A to miss", func() bool { _, body := get(a); return body != first })
		assert.EqualValues(t, 3, hits.Load(), "GET, POST, GET at the origin")
	})
}
