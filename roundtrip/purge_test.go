package roundtrip_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetcache/fleetcache/internal/redistest"
	"github.com/fleetcache/fleetcache/rediscache"
	"github.com/fleetcache/fleetcache/roundtrip"
)

// process is one OS process of a fleet, as far as the cache goes: a store
// over a client of its own, and a transport over it.
func process(t *testing.T, r *redistest.Redis, opts roundtrip.Options) (*http.Client, *rediscache.Store) {
	t.Helper()
	store, err := rediscache.Open(context.Background(), r.URL, rediscache.Options{Prefix: "rt:"})
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	origin := &http.Transport{}
	opts.Transport, opts.StoreTimeout = origin, 5*time.Second
	tr := roundtrip.New(store, opts)
	t.Cleanup(func() {
		require.NoError(t, tr.Close())
		origin.CloseIdleConnections()
	})
	return &http.Client{Transport: tr}, store
}

// groupedOrigin serves GET /products/* in the group "products", other GETs
// in no group, and answers POST with Cache-Group-Invalidation: "products".
func groupedOrigin(t *testing.T) (*httptest.Server, *atomic.Int64) {
	return countingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.Header().Set("Cache-Group-Invalidation", `"products"`)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/products/") {
			w.Header().Set("Cache-Groups", `"products", "catalog"`)
		}
		w.Header().Set("Cache-Control", "max-age=600")
		if r.URL.Path == "/weird" {
			w.Header().Set("Cache-Group-Invalidation", `"products"`) // on a GET: ignored
		}
		fmt.Fprint(w, r.URL.Path)
	})
}

func TestCacheGroups_RFC9875_3_InvalidationFromAPostReachesAnotherProcess(t *testing.T) {
	redistest.Run(t, redistest.WithCluster, func(t *testing.T, r *redistest.Redis) {
		origin, hits := groupedOrigin(t)
		elsewhere, _ := groupedOrigin(t) // another origin (port), same group name
		a, _ := process(t, r, roundtrip.Options{})
		b, _ := process(t, r, roundtrip.Options{})
		get := func(c *http.Client, path string) {
			t.Helper()
			req, _ := http.NewRequest(http.MethodGet, origin.URL+path, nil)
			readAll(t, c, req)
		}
		paths := []string{"/products/1", "/products/2", "/other", "/weird"}
		for _, p := range paths {
			get(b, p)
		}
		require.EqualValues(t, 4, hits.Load())
		for _, p := range paths {
			get(a, p) // all hits, and the GET with Cache-Group-Invalidation invalidated nothing
		}
		require.EqualValues(t, 4, hits.Load())

		// Another origin's invalidation of a group of the same name
		// reaches none of this origin's responses (RFC 9875 §2).
		req, _ := http.NewRequest(http.MethodPost, elsewhere.URL+"/cart", strings.NewReader("x"))
		readAll(t, a, req)
		for _, p := range paths {
			get(b, p)
		}
		require.EqualValues(t, 4, hits.Load())

		req, _ = http.NewRequest(http.MethodPost, origin.URL+"/cart", strings.NewReader("x"))
		resp, _ := readAll(t, a, req)
		assert.Contains(t, resp.Header.Get("Cache-Status"), "invalidated")
		require.EqualValues(t, 5, hits.Load())
		for _, p := range paths {
			get(b, p)
		}
		assert.EqualValues(t, 7, hits.Load(), "the two products refetched by the other process, nothing else")
	})
}

func TestSoftPurge_RevalidatesWith304AndServesStaleIfError(t *testing.T) {
	redistest.Run(t, redistest.WithCluster, func(t *testing.T, r *redistest.Redis) {
		var failing atomic.Bool
		var conditional atomic.Int64
		origin, hits := countingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
			if failing.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Cache-Control", "max-age=600, stale-if-error=300")
			w.Header().Set("Etag", `"v1"`)
			w.Header().Set("Cache-Tag", "product-42")
			if r.Header.Get("If-None-Match") == `"v1"` {
				conditional.Add(1)
				w.WriteHeader(http.StatusNotModified)
				return
			}
			fmt.Fprint(w, "product 42")
		})
		c, store := process(t, r, roundtrip.Options{})
		ctx := context.Background()
		get := func() (*http.Response, string) {
			req, _ := http.NewRequest(http.MethodGet, origin.URL+"/p/42", nil)
			return readAll(t, c, req)
		}
		get()
		get()
		require.EqualValues(t, 1, hits.Load())

		n, err := store.SoftPurgeTag(ctx, "product-42")
		require.NoError(t, err)
		require.EqualValues(t, 1, n)
		resp, body := get()
		assert.Equal(t, "product 42", body)
		assert.EqualValues(t, 1, conditional.Load(), "a soft-purged entry is revalidated with its ETag")
		assert.Contains(t, resp.Header.Get("Cache-Status"), "fwd=stale")
		assert.Contains(t, resp.Header.Get("Cache-Status"), "fwd-status=304")
		get()
		assert.EqualValues(t, 2, hits.Load(), "fresh again after the 304")

		n, err = store.PurgeURL(ctx, origin.URL+"/p/42", true)
		require.NoError(t, err)
		require.EqualValues(t, 1, n)
		failing.Store(true)
		resp, body = get()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "product 42", body, "served stale within stale-if-error")

		// A hard purge removes it: the origin's error goes through.
		n, err = store.PurgeTag(ctx, "product-42")
		require.NoError(t, err)
		require.EqualValues(t, 1, n)
		resp, _ = get()
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	})
}

func TestStripTags_KeepsThemStoredButNotForwarded(t *testing.T) {
	redistest.Run(t, redistest.Backends, func(t *testing.T, r *redistest.Redis) {
		origin, hits := countingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=600")
			w.Header().Set("Surrogate-Key", "a b")
			w.Header().Set("Cache-Groups", `"g"`)
		})
		stripping, store := process(t, r, roundtrip.Options{StripTags: true})
		keeping, _ := process(t, r, roundtrip.Options{})
		for range 2 {
			req, _ := http.NewRequest(http.MethodGet, origin.URL+"/", nil)
			resp, _ := readAll(t, stripping, req)
			assert.Empty(t, resp.Header.Values("Surrogate-Key"))
			assert.Equal(t, `"g"`, resp.Header.Get("Cache-Groups"), "Cache-Groups is for every cache on the way")
		}
		req, _ := http.NewRequest(http.MethodGet, origin.URL+"/", nil)
		resp, _ := readAll(t, keeping, req)
		assert.Equal(t, "a b", resp.Header.Get("Surrogate-Key"), "kept by default")
		assert.EqualValues(t, 1, hits.Load())
		n, err := store.PurgeTag(context.Background(), "b")
		require.NoError(t, err)
		assert.EqualValues(t, 1, n)
	})
}
