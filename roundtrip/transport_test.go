package roundtrip_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/fleetcache/fleetcache/roundtrip"
)

func TestMain(m *testing.M) {
	code := m.Run()
	// The examples use http.DefaultTransport; its idle keep-alive
	// connections are not leaks. Anything else still running is.
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines leaked:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func TestHit_RFC9111_4_FreshResponseServedWithoutOrigin(t *testing.T) {
	f := newFixture(t, fixedBody("max-age=60", "hello"), roundtrip.Options{})
	resp, body := f.get("/a")
	assert.Equal(t, "hello", body)
	assert.Equal(t, `fleetcache; fwd=uri-miss; fwd-status=200; stored`, resp.Header.Get("Cache-Status"))

	f.clk.Advance(10 * time.Second)
	resp, body = f.get("/a")
	assert.Equal(t, "hello", body)
	assert.EqualValues(t, 1, f.o.hits.Load())
	assert.Equal(t, "10", resp.Header.Get("Age"))
	assert.Equal(t, `fleetcache; hit; ttl=50`, resp.Header.Get("Cache-Status"))
	assert.EqualValues(t, 5, resp.ContentLength)
	st := f.tr.Stats()
	assert.EqualValues(t, 1, st.Hits)
	assert.EqualValues(t, 1, st.Misses)
	assert.EqualValues(t, 1, st.Stores)
}

func TestRevalidate_RFC9111_4_3_NotModifiedFreshensStored(t *testing.T) {
	var conditional atomic.Int64
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10")
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			conditional.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprint(w, "body-v1")
	}, roundtrip.Options{})
	f.get("/r")
	f.clk.Advance(20 * time.Second)

	resp, body := f.get("/r")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "body-v1", body)
	assert.EqualValues(t, 1, conditional.Load())
	assert.Contains(t, resp.Header.Get("Cache-Status"), "fwd=stale; fwd-status=304")

	// Freshened: served without the origin again.
	resp, _ = f.get("/r")
	assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
	assert.EqualValues(t, 2, f.o.hits.Load())
	st := f.tr.Stats()
	assert.EqualValues(t, 1, st.Revalidations)
	assert.EqualValues(t, 1, st.NotModified)
}

func TestRevalidate_RFC9111_4_3_2_CallersOwnConditionalAnsweredLocally(t *testing.T) {
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("ETag", `"v1"`)
		fmt.Fprint(w, "body")
	}, roundtrip.Options{})
	f.get("/c")
	resp, body := f.get("/c", "If-None-Match", `"v1"`)
	assert.Equal(t, http.StatusNotModified, resp.StatusCode)
	assert.Empty(t, body)
	assert.Equal(t, `"v1"`, resp.Header.Get("ETag"))
	assert.EqualValues(t, 1, f.o.hits.Load())

	resp, body = f.get("/c", "If-None-Match", `"other"`)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "body", body)
}

func TestHead_RFC9111_4_StoredGetAnswersHead(t *testing.T) {
	f := newFixture(t, fixedBody("max-age=60", "0123456789"), roundtrip.Options{})
	f.get("/h")
	resp, body := f.do(http.MethodHead, "/h")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Empty(t, body)
	assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
	assert.EqualValues(t, 1, f.o.hits.Load())
}

func TestHead_RFC9111_3_HeadResponseNeverServedToGet(t *testing.T) {
	f := newFixture(t, fixedBody("max-age=60", "full body"), roundtrip.Options{})
	f.do(http.MethodHead, "/h")
	_, body := f.get("/h")
	assert.Equal(t, "full body", body)
	assert.EqualValues(t, 2, f.o.hits.Load())
}

func TestRequestDirectives_RFC9111_5_2_1(t *testing.T) {
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10")
		w.Header().Set("ETag", `"e"`)
		if r.Header.Get("If-None-Match") == `"e"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprint(w, "x")
	}, roundtrip.Options{})

	resp, _ := f.get("/d", "Cache-Control", "only-if-cached")
	assert.Equal(t, http.StatusGatewayTimeout, resp.StatusCode, "only-if-cached with nothing stored")
	assert.EqualValues(t, 0, f.o.hits.Load())

	f.get("/d")
	resp, _ = f.get("/d", "Cache-Control", "no-cache")
	assert.Contains(t, resp.Header.Get("Cache-Status"), "fwd=request", "no-cache forces validation")
	assert.EqualValues(t, 2, f.o.hits.Load())

	f.clk.Advance(15 * time.Second)
	resp, _ = f.get("/d", "Cache-Control", "max-stale=10")
	assert.Contains(t, resp.Header.Get("Cache-Status"), "hit", "max-stale accepts 5s of staleness")
	resp, _ = f.get("/d", "Cache-Control", "only-if-cached")
	assert.Equal(t, http.StatusGatewayTimeout, resp.StatusCode, "only-if-cached with only a stale response")
	assert.EqualValues(t, 2, f.o.hits.Load())
}

func TestVary_RFC9111_4_1_VariantsStoredSideBySide(t *testing.T) {
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprint(w, "lang="+r.Header.Get("Accept-Language"))
	}, roundtrip.Options{})
	for range 3 {
		for _, lang := range []string{"en", "fr"} {
			_, body := f.get("/v", "Accept-Language", lang)
			assert.Equal(t, "lang="+lang, body)
		}
	}
	assert.EqualValues(t, 2, f.o.hits.Load(), "one fetch per variant, then hits")
	assert.Equal(t, 2, f.store.len())
}

func TestInvalidate_RFC9111_4_4_UnsafeMethodPurgesForEveryTransport(t *testing.T) {
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.Header().Set("Location", "/other")
			w.WriteHeader(http.StatusCreated)
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, r.URL.Path)
	}, roundtrip.Options{})
	other := &http.Client{Transport: roundtrip.New(f.store, roundtrip.Options{Now: f.clk.Now})}
	t.Cleanup(func() { other.Transport.(*roundtrip.Transport).Close() })

	f.get("/items")
	f.get("/other")
	require.Equal(t, 2, f.store.len())

	resp, err := other.Post(f.o.URL+"/items", "text/plain", strings.NewReader("new"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Contains(t, resp.Header.Get("Cache-Status"), "fwd=method")
	assert.Equal(t, 0, f.store.len(), "target and same-origin Location purged")

	resp, _ = f.get("/items")
	assert.Contains(t, resp.Header.Get("Cache-Status"), "fwd=uri-miss")
}

func TestShared_RFC9111_3_PrivateAndAuthorizedNeverServedToOthers(t *testing.T) {
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/private":
			w.Header().Set("Cache-Control", "private, max-age=60")
		default:
			w.Header().Set("Cache-Control", "max-age=60")
		}
		fmt.Fprint(w, "for "+r.Header.Get("Authorization"))
	}, roundtrip.Options{})

	_, body := f.get("/private", "Authorization", "alice")
	assert.Equal(t, "for alice", body)
	_, body = f.get("/private", "Authorization", "bob")
	assert.Equal(t, "for bob", body)

	_, body = f.get("/authz", "Authorization", "alice")
	assert.Equal(t, "for alice", body)
	_, body = f.get("/authz", "Authorization", "bob")
	assert.Equal(t, "for bob", body)
	_, body = f.get("/authz")
	assert.Equal(t, "for ", body)
	assert.Equal(t, 1, f.store.len(), "only the anonymous response was stored")
}

func TestPrivateMode_StoresPrivateResponses(t *testing.T) {
	f := newFixture(t, fixedBody("private, max-age=60", "mine"), roundtrip.Options{Private: true})
	f.get("/p")
	resp, _ := f.get("/p")
	assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
}

func TestCoalesce_ConcurrentColdMissesSendOneRequest(t *testing.T) {
	release := make(chan struct{})
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, strings.Repeat("x", 4096))
	}, roundtrip.Options{})

	const n = 200
	wait := stampede(n, func(int) string {
		_, body := f.get("/cold")
		return body
	})
	eventually(t, "the first request at the origin", func() bool { return f.o.hits.Load() == 1 })
	close(release)
	bodies := wait()
	assert.EqualValues(t, 1, f.o.hits.Load())
	for _, b := range bodies {
		require.Len(t, b, 4096)
	}
	assert.EqualValues(t, n-1, f.tr.Stats().Coalesced+f.tr.Stats().Hits)
}

func TestCoalesce_UnshareableResponseNotHandedToWaiters(t *testing.T) {
	release := make(chan struct{})
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Cache-Control", "private")
		fmt.Fprint(w, "for "+r.Header.Get("X-User"))
	}, roundtrip.Options{})

	const n = 20
	wait := stampede(n, func(i int) string {
		_, body := f.get("/me", "X-User", fmt.Sprint("u", i))
		return body
	})
	eventually(t, "a request at the origin", func() bool { return f.o.hits.Load() >= 1 })
	close(release)
	for i, body := range wait() {
		assert.Equal(t, fmt.Sprint("for u", i), body, "caller %d", i)
	}
	assert.EqualValues(t, n, f.o.hits.Load(), "every caller got its own response")
}

func TestCoalesce_WaiterContextEndsWaitAtOnce(t *testing.T) {
	release := make(chan struct{})
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		fmt.Fprint(w, "late")
	}, roundtrip.Options{})
	leaderDone := make(chan struct{})
	go func() {
		defer close(leaderDone)
		f.get("/slow")
	}()
	defer func() {
		close(release)
		<-leaderDone
	}()
	eventually(t, "the leader at the origin", func() bool { return f.o.hits.Load() == 1 })

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.o.URL+"/slow", nil)
	done := make(chan error, 1)
	go func() {
		_, err := f.cl.Do(req)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("waiter did not return when its context ended")
	}
}

func TestStreaming_CallerReadsBeforeBodyEnds(t *testing.T) {
	more := make(chan struct{})
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "first;")
		w.(http.Flusher).Flush()
		<-more
		fmt.Fprint(w, "second")
	}, roundtrip.Options{})
	resp, err := f.cl.Get(f.o.URL + "/s")
	require.NoError(t, err)
	defer resp.Body.Close()
	buf := make([]byte, 6)
	_, err = io.ReadFull(resp.Body, buf)
	require.NoError(t, err)
	assert.Equal(t, "first;", string(buf))
	close(more)
	rest, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, "second", string(rest))
	eventually(t, "the entry stored", func() bool { return f.store.len() == 1 })
}

func TestStreaming_LargeBodyStreamsUncachedInBoundedMemory(t *testing.T) {
	const size = 64 << 20
	chunk := []byte(strings.Repeat("z", 64<<10))
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		for written := 0; written < size; written += len(chunk) {
			w.Write(chunk)
		}
	}, roundtrip.Options{MaxEntryBytes: 1 << 20})

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	resp, err := f.cl.Get(f.o.URL + "/big")
	require.NoError(t, err)
	n, err := io.Copy(io.Discard, resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	runtime.ReadMemStats(&after)

	assert.EqualValues(t, size, n)
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(16<<20), "the body was never held whole")
	assert.Equal(t, 0, f.store.len())
}

func TestStreaming_CallerClosingEarlyStoresNothing(t *testing.T) {
	more := make(chan struct{})
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "part")
		w.(http.Flusher).Flush()
		select {
		case <-more:
		case <-r.Context().Done():
		}
	}, roundtrip.Options{})
	defer close(more)
	resp, err := f.cl.Get(f.o.URL + "/early")
	require.NoError(t, err)
	buf := make([]byte, 4)
	_, err = io.ReadFull(resp.Body, buf)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	_, err = resp.Body.Read(buf)
	assert.Error(t, err)
	assert.Equal(t, 0, f.store.len())
}

func TestFailOpen_StoreDownRequestsStillSucceed(t *testing.T) {
	f := newFixture(t, fixedBody("max-age=60", "ok"), roundtrip.Options{})
	f.store.fail.Store(true)
	for range 20 {
		resp, body := f.get("/x")
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "ok", body)
	}
	st := f.tr.Stats()
	assert.True(t, st.BreakerOpen)
	assert.EqualValues(t, 1, st.BreakerTrips)
	gets := f.store.gets.Load()
	assert.Less(t, gets, int64(10), "the breaker stopped calling the store")

	// Recovery: after the cooldown one probe succeeds and caching resumes.
	f.store.fail.Store(false)
	f.clk.Advance(10 * time.Second)
	f.get("/x")
	f.get("/x")
	assert.False(t, f.tr.Stats().BreakerOpen)
	resp, _ := f.get("/x")
	assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
}

// A store that answers with an error is up: each refused call goes to the
// origin and is counted, the log says so once a minute per kind, and the
// breaker, which is for a store that is down, never opens.
func TestFailOpen_RefusedCallsNeverOpenTheBreaker(t *testing.T) {
	var logs bytes.Buffer
	f := newFixture(t, fixedBody("max-age=60", "ok"), roundtrip.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	f.store.refusal.Store(true)
	for range 20 {
		resp, body := f.get("/x")
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "ok", body)
	}
	st := f.tr.Stats()
	assert.False(t, st.BreakerOpen)
	assert.Zero(t, st.BreakerTrips)
	assert.Zero(t, st.StoreErrors)
	assert.GreaterOrEqual(t, st.StoreRefused, int64(20))
	assert.Equal(t, 1, strings.Count(logs.String(), "refused a call"), logs.String())

	f.clk.Advance(61 * time.Second)
	f.get("/x")
	assert.Equal(t, 2, strings.Count(logs.String(), "refused a call"), "a minute later the kind is logged again")
	assert.Contains(t, logs.String(), "kind=OOM")

	// Once the store accepts calls again, caching goes on at once.
	f.store.refusal.Store(false)
	f.get("/y")
	resp, _ := f.get("/y")
	assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
}

func TestStaleIfError_RFC5861_4_ServesStaleWhenOriginFails(t *testing.T) {
	var fail atomic.Bool
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Cache-Control", "max-age=10, stale-if-error=60")
		fmt.Fprint(w, "good")
	}, roundtrip.Options{})
	f.get("/e")
	fail.Store(true)

	f.clk.Advance(30 * time.Second)
	resp, body := f.get("/e")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "good", body)
	assert.Contains(t, resp.Header.Get("Cache-Status"), "fwd=stale; fwd-status=503")

	f.clk.Advance(60 * time.Second)
	resp, _ = f.get("/e")
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "outside the window the origin's error")
}

func TestStaleWhileRevalidate_RFC5861_3_ServesStaleAndRefreshesOnce(t *testing.T) {
	var version atomic.Int64
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10, stale-while-revalidate=60")
		fmt.Fprint(w, "v", version.Add(1))
	}, roundtrip.Options{})
	_, body := f.get("/swr")
	assert.Equal(t, "v1", body)
	f.clk.Advance(20 * time.Second)
	resp, body := f.get("/swr")
	assert.Equal(t, "v1", body, "stale served at once")
	assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
	eventually(t, "the background refresh", func() bool { return f.o.hits.Load() == 2 })
	eventually(t, "the refreshed entry", func() bool {
		_, body := f.get("/swr")
		return body == "v2"
	})
	assert.EqualValues(t, 2, f.o.hits.Load())
}

func TestContract_RequestNotModified(t *testing.T) {
	f := newFixture(t, fixedBody("max-age=0", "x"), roundtrip.Options{})
	req, _ := http.NewRequest(http.MethodGet, f.o.URL+"/m", nil)
	req.Header.Set("If-None-Match", `"a"`)
	before := req.Header.Clone()
	resp, err := f.tr.RoundTrip(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, before, req.Header, "the caller's request is never modified")
}

func TestRevalidate_RFC9111_4_3_4_NotModifiedSelectingNothingRetriesUnconditionally(t *testing.T) {
	var n atomic.Int64
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10")
		if n.Add(1) == 1 {
			w.Header().Set("ETag", `"a"`)
			fmt.Fprint(w, "first")
			return
		}
		// A broken origin: 304s whatever it is asked, with a validator
		// that selects nothing stored.
		w.Header().Set("ETag", `"b"`)
		w.WriteHeader(http.StatusNotModified)
	}, roundtrip.Options{})
	f.get("/broken")
	f.clk.Advance(20 * time.Second)
	resp, body := f.get("/broken")
	assert.Equal(t, http.StatusNotModified, resp.StatusCode, "the origin's answer, passed on")
	assert.Empty(t, body)
	assert.EqualValues(t, 3, n.Load(), "the conditional request, then one unconditional retry")
}

func TestKey_RFC9111_2_HostSelectsTheStoredResponse(t *testing.T) {
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "host="+r.Host)
	}, roundtrip.Options{})
	for _, host := range []string{"a.example", "b.example", "a.example", "b.example"} {
		req, _ := http.NewRequest(http.MethodGet, f.o.URL+"/page", nil)
		req.Host = host
		resp, err := f.cl.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, "host="+host, string(body))
	}
	assert.EqualValues(t, 2, f.o.hits.Load())
}

func TestRevalidate_RFC9111_3_ResponseNoLongerShareablePurgesStored(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer func(w http.ResponseWriter)
	}{
		{"304 adds private", func(w http.ResponseWriter) {
			w.Header().Set("Cache-Control", "private, max-age=60")
			w.Header().Set("ETag", `"a"`)
			w.WriteHeader(http.StatusNotModified)
		}},
		{"200 with no-store", func(w http.ResponseWriter) {
			w.Header().Set("Cache-Control", "no-store")
			fmt.Fprint(w, "now personal")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var changed atomic.Bool
			f := newFixture(t, func(w http.ResponseWriter, r *http.Request) {
				if changed.Load() {
					tc.answer(w)
					return
				}
				w.Header().Set("Cache-Control", "max-age=10, stale-while-revalidate=600")
				w.Header().Set("ETag", `"a"`)
				fmt.Fprint(w, "shared")
			}, roundtrip.Options{})
			f.get("/s")
			require.Equal(t, 1, f.store.len())
			changed.Store(true)
			f.clk.Advance(20 * time.Second)
			f.get("/s", "Cache-Control", "no-cache")
			assert.Equal(t, 0, f.store.len(), "the stored response may no longer be shared")
			resp, _ := f.get("/s")
			assert.NotContains(t, resp.Header.Get("Cache-Status"), "hit")
		})
	}
}

func TestContract_NilHeaderFromWrappedTransport(t *testing.T) {
	o := &originTransport{body: "x", cc: "max-age=60"}
	nilHeader := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := o.RoundTrip(r)
		resp.Header = nil
		return resp, err
	})
	tr := roundtrip.New(newMemStore(time.Now), roundtrip.Options{Transport: nilHeader})
	defer tr.Close()
	for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodPost} {
		req, _ := http.NewRequest(method, "http://origin.test/nil", nil)
		resp, err := tr.RoundTrip(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.NotEmpty(t, resp.Header.Get("Cache-Status"))
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestOriginDown_ErrorWithoutStoredResponse(t *testing.T) {
	f := newFixture(t, fixedBody("max-age=60", "x"), roundtrip.Options{})
	f.o.Close()
	_, err := f.cl.Get(f.o.URL + "/gone")
	require.Error(t, err)
	assert.EqualValues(t, 0, f.store.len())
}

func TestStaleIfError_RFC5861_4_ServesStaleWhenOriginUnreachable(t *testing.T) {
	f := newFixture(t, fixedBody("max-age=10, stale-if-error=60", "kept"), roundtrip.Options{})
	f.get("/down")
	f.o.Close()
	f.clk.Advance(30 * time.Second)
	resp, body := f.get("/down")
	assert.Equal(t, "kept", body)
	assert.Contains(t, resp.Header.Get("Cache-Status"), "fwd=stale; ttl=-20; detail=stale-if-error")
	assert.EqualValues(t, 1, f.tr.Stats().StaleServed)
}

func TestCoalesce_LeaderGivingUpLeavesTheFetchToWaiters(t *testing.T) {
	release := make(chan struct{})
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "for the waiters")
	}, roundtrip.Options{})

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.o.URL+"/l", nil)
	leader := make(chan error, 1)
	go func() {
		_, err := f.cl.Do(req)
		leader <- err
	}()
	eventually(t, "the leader at the origin", func() bool { return f.o.hits.Load() == 1 })
	waiter := make(chan string, 1)
	go func() {
		_, body := f.get("/l")
		waiter <- body
	}()
	cancel()
	assert.ErrorIs(t, <-leader, context.Canceled)
	close(release)
	assert.Equal(t, "for the waiters", <-waiter)
	assert.EqualValues(t, 1, f.o.hits.Load(), "the shared fetch outlived its first caller")
	eventually(t, "the entry stored", func() bool { return f.store.len() == 1 })
}

func TestStore_RFC9111_3_NothingToKeepIsNotStoredNorShared(t *testing.T) {
	f := newFixture(t, fixedBody("", "no cache headers at all"), roundtrip.Options{})
	resp, body := f.get("/plain")
	assert.Equal(t, "no cache headers at all", body)
	assert.Equal(t, "fleetcache; fwd=uri-miss; fwd-status=200; detail=uncacheable", resp.Header.Get("Cache-Status"))
	assert.Equal(t, 0, f.store.len())
}

func TestRevalidate_RFC9111_4_3_2_CallersConditionalOnAMissGetsLocal304(t *testing.T) {
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("ETag", `"z"`)
		fmt.Fprint(w, "the body")
	}, roundtrip.Options{})
	resp, body := f.get("/cold", "If-None-Match", `"z"`)
	assert.Equal(t, http.StatusNotModified, resp.StatusCode)
	assert.Empty(t, body)
	assert.Equal(t, `"z"`, resp.Header.Get("ETag"))
	eventually(t, "the entry stored all the same", func() bool { return f.store.len() == 1 })
	resp, body = f.get("/cold")
	assert.Equal(t, "the body", body)
	assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
	assert.EqualValues(t, 1, f.o.hits.Load())
}

func TestStore_EntryRefusedByTheStoreIsNotCountedAndDoesNotTripTheBreaker(t *testing.T) {
	f := newFixture(t, fixedBody("max-age=60", "too big for the store"), roundtrip.Options{})
	f.store.refuse.Store(true)
	for range 10 {
		_, body := f.get("/big")
		assert.Equal(t, "too big for the store", body)
	}
	st := f.tr.Stats()
	assert.EqualValues(t, 0, st.Stores)
	assert.False(t, st.BreakerOpen, "a refusal is not an outage")
	assert.EqualValues(t, 0, st.StoreErrors)
	assert.EqualValues(t, 10, f.o.hits.Load())
}
