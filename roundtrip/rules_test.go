package roundtrip_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetcache/fleetcache/policy"
	"github.com/fleetcache/fleetcache/roundtrip"
	"github.com/fleetcache/fleetcache/rules"
)

// withRules returns Options whose only rule gives every URL rt.
func withRules(t *testing.T, rt policy.Route) roundtrip.Options {
	t.Helper()
	set, err := rules.New(rules.Rule{Path: "/r/**", Route: rt})
	require.NoError(t, err)
	return roundtrip.Options{Rules: set}
}

// The client sees the origin's fields, whatever a rule made the cache do
// with them: a rule changes what is kept, never what is served.
func assertOriginFields(t *testing.T, resp *http.Response, cc string) {
	t.Helper()
	assert.Equal(t, cc, resp.Header.Get("Cache-Control"), "the origin's Cache-Control reaches the client unchanged")
}

func TestRules_MaxTTLCapsFreshness(t *testing.T) {
	onEachStore(t, fixedBody("max-age=3600", "capped"), withRules(t, policy.Route{MaxTTL: time.Minute}), func(t *testing.T, f *fixture) {
		f.get("/r/a")
		resp, _ := f.get("/r/a")
		assert.Equal(t, "fleetcache; hit; ttl=60", resp.Header.Get("Cache-Status"))
		assertOriginFields(t, resp, "max-age=3600")
		f.clk.Advance(61 * time.Second)
		resp, _ = f.get("/r/a")
		assert.Contains(t, resp.Header.Get("Cache-Status"), "fwd=")
		assert.EqualValues(t, 2, f.o.hits.Load(), "past the cap the origin is asked again")
	})
}

func TestRules_MinTTLFloorsFreshness(t *testing.T) {
	onEachStore(t, fixedBody("max-age=0", "floored"), withRules(t, policy.Route{MinTTL: time.Minute}), func(t *testing.T, f *fixture) {
		f.get("/r/a")
		f.clk.Advance(30 * time.Second)
		resp, body := f.get("/r/a")
		assert.Equal(t, "floored", body)
		assert.Equal(t, "fleetcache; hit; ttl=30", resp.Header.Get("Cache-Status"))
		assert.Equal(t, "30", resp.Header.Get("Age"))
		assertOriginFields(t, resp, "max-age=0")
		assert.EqualValues(t, 1, f.o.hits.Load())
	})
}

func TestRules_NoStoreKeepsTheCacheOut(t *testing.T) {
	onEachStore(t, fixedBody("max-age=3600", "never"), withRules(t, policy.Route{NoStore: true}), func(t *testing.T, f *fixture) {
		f.get("/r/a")
		resp, _ := f.get("/r/a")
		assert.Equal(t, "fleetcache; fwd=bypass; fwd-status=200; detail=rule", resp.Header.Get("Cache-Status"))
		f.get("/other") // no rule: cached
		f.get("/other")
		assert.EqualValues(t, 3, f.o.hits.Load())
	})
}

func TestRules_DefaultStaleWindows(t *testing.T) {
	var mu sync.Mutex
	fail := false
	h := func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Cache-Control", "max-age=10")
		fmt.Fprint(w, "good")
	}
	onEachStore(t, h, withRules(t, policy.Route{StaleIfError: time.Hour}), func(t *testing.T, f *fixture) {
		mu.Lock()
		fail = false
		mu.Unlock()
		f.get("/r/a")
		f.clk.Advance(time.Minute)
		mu.Lock()
		fail = true
		mu.Unlock()
		resp, body := f.get("/r/a")
		assert.Equal(t, "good", body)
		assert.Contains(t, resp.Header.Get("Cache-Status"), "detail=stale-if-error")
		assertOriginFields(t, resp, "max-age=10")
	})
}

func TestRules_IgnoredQueryParametersShareAnEntry(t *testing.T) {
	h := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, r.URL.RawQuery) // the origin sees every parameter
	}
	onEachStore(t, h, withRules(t, policy.Route{IgnoreQuery: []string{"utm_*"}, SortQuery: true}), func(t *testing.T, f *fixture) {
		_, body := f.get("/r/a?utm_source=x&b=2&a=1")
		assert.Equal(t, "utm_source=x&b=2&a=1", body)
		resp, body := f.get("/r/a?a=1&b=2&utm_medium=y")
		assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
		assert.Equal(t, "utm_source=x&b=2&a=1", body)
		f.get("/r/a?a=1&b=3")
		assert.EqualValues(t, 2, f.o.hits.Load())
		// An unsafe method invalidates the entry its URL is keyed to.
		f.do(http.MethodPost, "/r/a?b=2&a=1&utm_campaign=z")
		f.get("/r/a?a=1&b=2")
		assert.EqualValues(t, 4, f.o.hits.Load())
	})
}

func TestRules_IgnoredVaryFieldSharesAVariant(t *testing.T) {
	h := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "User-Agent")
		fmt.Fprint(w, "for "+r.Header.Get("User-Agent"))
	}
	onEachStore(t, h, withRules(t, policy.Route{IgnoreVary: []string{"User-Agent"}}), func(t *testing.T, f *fixture) {
		f.get("/r/a", "User-Agent", "one")
		resp, body := f.get("/r/a", "User-Agent", "two")
		assert.Equal(t, "for one", body)
		assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
		assert.Equal(t, "User-Agent", resp.Header.Get("Vary"), "the client sees the origin's Vary")
		assert.EqualValues(t, 1, f.o.hits.Load())
	})
}

func TestRules_NormalisedFieldAsksTheOriginWithItsValue(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	h := func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Accept-Encoding"))
		mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Encoding")
		fmt.Fprint(w, "encoded as "+r.Header.Get("Accept-Encoding"))
	}
	rt := policy.Route{Normalize: map[string][]string{"Accept-Encoding": {"br", "gzip"}}}
	opts := withRules(t, rt)
	// Go's transport would ask for gzip itself when the field is absent.
	plain := &http.Transport{DisableCompression: true}
	t.Cleanup(plain.CloseIdleConnections)
	opts.Transport = plain
	onEachStore(t, h, opts, func(t *testing.T, f *fixture) {
		mu.Lock()
		seen = nil
		mu.Unlock()
		_, body := f.get("/r/a", "Accept-Encoding", "gzip, deflate")
		assert.Equal(t, "encoded as gzip", body)
		resp, body := f.get("/r/a", "Accept-Encoding", "deflate, GZIP")
		assert.Equal(t, "encoded as gzip", body)
		assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
		_, body = f.get("/r/a", "Accept-Encoding", "deflate")
		assert.Equal(t, "encoded as ", body, "a request listing no normalised value is sent without the field")
		_, body = f.get("/r/a", "Accept-Encoding", "br, gzip")
		assert.Equal(t, "encoded as br", body)
		mu.Lock()
		defer mu.Unlock()
		assert.Equal(t, []string{"gzip", "", "br"}, seen)
	})
}

func TestRules_URLsWithoutARuleAreUntouched(t *testing.T) {
	onEachStore(t, fixedBody("max-age=3600", "x"), withRules(t, policy.Route{MaxTTL: time.Minute}), func(t *testing.T, f *fixture) {
		f.get("/plain")
		resp, _ := f.get("/plain")
		assert.True(t, strings.HasPrefix(resp.Header.Get("Cache-Status"), "fleetcache; hit; ttl=3600"), resp.Header.Get("Cache-Status"))
	})
}
