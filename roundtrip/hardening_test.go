package roundtrip_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetcache/fleetcache/internal/redistest"
	"github.com/fleetcache/fleetcache/policy"
	"github.com/fleetcache/fleetcache/roundtrip"
)

// Behaviours against hostile clients, slow clients and odd origins.

// RFC 9110 §9.3.1: content in a GET has no defined meaning, but an origin
// may reflect it; the answer must neither be stored under the plain URL
// nor be collapsed with other callers'.
func TestBypass_RFC9110_9_3_1_GetWithContentIsNeitherStoredNorShared(t *testing.T) {
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "reflected:%s", b)
	}, roundtrip.Options{})
	for _, tc := range []struct {
		name  string
		build func() *http.Request
	}{
		{"Content-Length", func() *http.Request {
			req, _ := http.NewRequest(http.MethodGet, f.o.URL+"/fat", strings.NewReader("evil"))
			return req
		}},
		{"chunked", func() *http.Request {
			req, _ := http.NewRequest(http.MethodGet, f.o.URL+"/fat", io.MultiReader(strings.NewReader("evil")))
			return req
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := f.cl.Do(tc.build())
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Equal(t, "reflected:evil", string(body))
			assert.Equal(t, "fleetcache; fwd=bypass; fwd-status=200; detail=body", resp.Header.Get("Cache-Status"))

			resp, plain := f.get("/fat")
			assert.Equal(t, "reflected:", plain, "the next caller got the attacker's reflected body")
			_ = resp
		})
	}
	assert.Equal(t, 1, f.store.len(), "only the answer to a GET without content was stored")
}

// RFC 9111 §4.3.3: a response that cannot be stored removes the stored one
// only when it speaks for every request of the URL. Here the reason comes
// from the request: its negotiation, its cookie, its credentials.
func TestRevalidate_RFC9111_4_3_3_RequestsOwnRefusalLeavesStoredAlone(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header []string
	}{
		{"406 to the request's Accept", []string{"Accept", "application/xml"}},
		{"Set-Cookie to a request with a cookie", []string{"Cookie", "session=attacker"}},
		{"private to a request with Authorization", []string{"Authorization", "Bearer attacker"}},
		{"429 to this client", []string{"X-Rate", "exceeded"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, negotiatingOrigin, roundtrip.Options{})
			_, body := f.get("/n")
			require.Equal(t, "shared json", body)
			require.Equal(t, 1, f.store.len())

			f.get("/n", append([]string{"Cache-Control", "no-cache"}, tc.header...)...)
			assert.Equal(t, 1, f.store.len(), "one request purged the entry every user gets")
			resp, body := f.get("/n")
			assert.Equal(t, "shared json", body)
			assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
		})
	}
}

// negotiatingOrigin answers JSON to everyone, and something only the asker
// may have to a request that negotiates otherwise, carries credentials or
// is over its rate.
func negotiatingOrigin(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Header.Get("Accept") == "application/xml":
		w.WriteHeader(http.StatusNotAcceptable) // no cache headers at all
	case r.Header.Get("Cookie") != "":
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Set-Cookie", "session=refreshed")
		fmt.Fprint(w, "json for the cookie")
	case r.Header.Get("Authorization") != "":
		w.Header().Set("Cache-Control", "private")
		fmt.Fprint(w, "json for the user")
	case r.Header.Get("X-Rate") != "":
		w.WriteHeader(http.StatusTooManyRequests)
	default:
		w.Header().Set("Cache-Control", "public, max-age=60")
		fmt.Fprint(w, "shared json")
	}
}

// The same in a fleet: nor may such a request mark the URL as not worth
// collapsing for every process.
func TestRedisStore_RFC9111_4_3_3_RequestsOwnRefusalDoesNotMarkTheURL(t *testing.T) {
	redistest.Run(t, redistest.Backends, func(t *testing.T, r *redistest.Redis) {
		origin, _ := countingOrigin(t, negotiatingOrigin)
		clients, store := redisTransports(t, r, 1)
		u, err := url.Parse(origin.URL + "/n")
		require.NoError(t, err)
		key := policy.NormalizeURL(u)
		get := func(kv ...string) (*http.Response, string) {
			req, _ := http.NewRequest(http.MethodGet, u.String(), nil)
			for i := 0; i+1 < len(kv); i += 2 {
				req.Header.Set(kv[i], kv[i+1])
			}
			return readAll(t, clients[0], req)
		}
		get()
		get("Cache-Control", "no-cache", "Accept", "application/xml")
		get("Cache-Control", "no-cache", "Cookie", "session=attacker")
		// A peer's claim sees whether the URL is marked.
		_, _, lease, err := store.Claim(context.Background(), key, nil, "", time.Minute, true)
		require.NoError(t, err)
		assert.False(t, lease.Marked, "the URL was marked for the fleet")
		require.NoError(t, store.Release(context.Background(), lease, false))
		resp, body := get()
		assert.Equal(t, "shared json", body)
		assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
	})
}

// RFC 9111 §1.2.2: an Expires in the year 9999 is a very long lifetime, not
// an overflow: the response is stored and served.
func TestStore_RFC9111_1_2_2_FarFutureExpiresIsStored(t *testing.T) {
	for _, extra := range [][]string{
		{"ETag", `"far"`},
		{"Cache-Control", "stale-while-revalidate=60"},
	} {
		t.Run(extra[0], func(t *testing.T) {
			f := newFixture(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Expires", "Fri, 31 Dec 9999 23:59:59 GMT")
				w.Header().Set(extra[0], extra[1])
				fmt.Fprint(w, "forever")
			}, roundtrip.Options{})
			resp, _ := f.get("/forever")
			assert.Contains(t, resp.Header.Get("Cache-Status"), "stored")
			f.clk.Advance(time.Hour)
			resp, body := f.get("/forever")
			assert.Equal(t, "forever", body)
			assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
			assert.EqualValues(t, 1, f.o.hits.Load())
		})
	}
}

// putFails is a store that reads but whose writes fail with err.
type putFails struct {
	*memStore
	err error
}

func (s putFails) Put(context.Context, *policy.Response, time.Duration, bool) (bool, error) {
	return false, fmt.Errorf("rediscache: put: %w", s.err)
}

// RFC 9211 §2.6: stored says the cache stored the response; it must not be
// claimed for a write the store failed, refused (a Redis that answers reads
// but not writes: OOM under maxmemory with noeviction, NOAUTH) or declined.
func TestCacheStatus_RFC9211_2_6_StoredOnlyWhenStored(t *testing.T) {
	for _, tc := range []struct {
		name   string
		store  func(*memStore) roundtrip.Store
		detail string
	}{
		{"store write fails", func(s *memStore) roundtrip.Store { return putFails{s, errDown} }, "store-error"},
		{"store refuses the write", func(s *memStore) roundtrip.Store { return putFails{s, refusedErr{}} }, "store-refused"},
		{"store declines the entry", func(s *memStore) roundtrip.Store { s.refuse.Store(true); return s }, "too-large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			o := newOrigin(t, clk, fixedBody("max-age=60", "not kept"))
			tr := roundtrip.New(tc.store(newMemStore(clk.Now)), roundtrip.Options{Now: clk.Now})
			t.Cleanup(func() { require.NoError(t, tr.Close()) })
			cl := &http.Client{Transport: tr}
			resp, err := cl.Get(o.URL + "/x")
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Equal(t, "not kept", string(body))
			cs := resp.Header.Get("Cache-Status")
			assert.NotContains(t, cs, "stored")
			assert.Equal(t, "fleetcache; fwd=uri-miss; fwd-status=200; detail="+tc.detail, cs)
		})
	}
}

// A body the origin cut short is not stored, and its Cache-Status says so
// instead of claiming it was.
func TestCacheStatus_RFC9211_2_6_TruncatedBodyIsNotClaimedStored(t *testing.T) {
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", "100")
		fmt.Fprint(w, "only ten b")
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close()
		}
	}, roundtrip.Options{})
	resp, err := f.cl.Get(f.o.URL + "/cut")
	require.NoError(t, err)
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Error(t, err, "the body is short")
	cs := resp.Header.Get("Cache-Status")
	assert.NotContains(t, cs, "stored")
	assert.Equal(t, "fleetcache; fwd=uri-miss; fwd-status=200; detail=truncated", cs)
	assert.Equal(t, 0, f.store.len())
}

// genBody is an origin body of n bytes, made as it is read; whole counts
// the bodies read to their end.
type genBody struct {
	left  int
	whole *atomic.Int64
}

func (b *genBody) Read(p []byte) (int, error) {
	if b.left == 0 {
		return 0, io.EOF
	}
	n := min(len(p), b.left)
	for i := range p[:n] {
		p[i] = 'x'
	}
	if b.left -= n; b.left == 0 {
		b.whole.Add(1)
	}
	return n, nil
}

func (b *genBody) Close() error { return nil }

// Callers that ask for many large cacheable URLs and do not read make the
// transport hold no more than MaxBufferedBytes of their bodies: past it,
// each body streams to its caller uncached, read only as fast as the caller
// reads it.
func TestBudget_SlowReadersHoldAtMostTheBudget(t *testing.T) {
	const n, size, limit = 64, 1 << 20, 8 << 20
	var whole atomic.Int64
	origin := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{
			StatusCode: http.StatusOK, ProtoMajor: 1, ProtoMinor: 1, Request: r,
			Header:        http.Header{"Cache-Control": {"max-age=60"}},
			ContentLength: size, Body: &genBody{left: size, whole: &whole},
		}, nil
	})
	store := newMemStore(time.Now)
	tr := roundtrip.New(store, roundtrip.Options{Transport: origin, MaxBufferedBytes: limit})
	t.Cleanup(func() { require.NoError(t, tr.Close()) })

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var resps []*http.Response
	streamed := 0
	for i := range n {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://origin.test/big/%d", i), nil)
		resp, err := tr.RoundTrip(req)
		require.NoError(t, err)
		if strings.HasSuffix(resp.Header.Get("Cache-Status"), "detail=buffer-full") {
			streamed++
		}
		resps = append(resps, resp)
	}
	// The bodies taken for the store are read whole; the others not at all.
	eventually(t, "the bodies taken for the store read whole", func() bool { return whole.Load() == int64(n-streamed) })
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	// Held: the budget, the store's own copies of what it stored (as much
	// again), and some slack; without a budget every body is held twice.
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	assert.Less(t, held, int64(3*limit), "bodies held for %d callers that read nothing", n)
	assert.LessOrEqual(t, tr.Stats().BufferedBytes, int64(limit))
	assert.Equal(t, n-limit/size, streamed)

	// Every caller still gets its whole body, at its own pace.
	for _, resp := range resps {
		got, err := io.Copy(io.Discard, resp.Body)
		require.NoError(t, err)
		assert.EqualValues(t, size, got)
		resp.Body.Close()
	}
	assert.Zero(t, tr.Stats().BufferedBytes, "every buffer given back")
	assert.Equal(t, limit/size, store.len())
}

// A body of unknown length is held only up to the budget; the rest reaches
// its caller straight from the origin, and nothing is stored.
func TestBudget_UnknownLengthPastTheBudgetStreams(t *testing.T) {
	const size, limit = 4 << 20, 1 << 20
	var whole atomic.Int64
	body := &genBody{left: size, whole: &whole}
	var read atomic.Int64
	origin := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{
			StatusCode: http.StatusOK, ProtoMajor: 1, ProtoMinor: 1, Request: r,
			Header:        http.Header{"Cache-Control": {"max-age=60"}},
			ContentLength: -1, Body: countingReader{body, &read},
		}, nil
	})
	store := newMemStore(time.Now)
	tr := roundtrip.New(store, roundtrip.Options{Transport: origin, MaxBufferedBytes: limit})
	t.Cleanup(func() { require.NoError(t, tr.Close()) })
	req, _ := http.NewRequest(http.MethodGet, "http://origin.test/chunked", nil)
	resp, err := tr.RoundTrip(req)
	require.NoError(t, err)
	assert.Equal(t, "fleetcache; fwd=uri-miss; fwd-status=200; detail=storing", resp.Header.Get("Cache-Status"))
	eventually(t, "the pump at the budget", func() bool { return read.Load() >= limit })
	assert.LessOrEqual(t, tr.Stats().BufferedBytes, int64(limit))
	got, err := io.Copy(io.Discard, resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	assert.EqualValues(t, size, got)
	assert.Zero(t, tr.Stats().BufferedBytes)
	assert.Equal(t, 0, store.len())
}

// countingReader counts the bytes read from a body.
type countingReader struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}
