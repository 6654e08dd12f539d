package integration_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/integration/internal/fleetproc"
	"github.com/fleetcache/fleetcache/internal/redistest"
	"github.com/fleetcache/fleetcache/rediscache"
	"github.com/fleetcache/fleetcache/roundtrip"
)

// trafficOrigin answers the paths an ordinary service calls: cacheable
// items with validators, pages that vary on the language, pages that
// must not be stored, pages revalidated on every use, and writes.
func trafficOrigin(t *testing.T) *httptest.Server {
	var version atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) {
		etag := fmt.Sprintf(`"%s-%d"`, r.PathValue("id"), version.Load())
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("ETag", etag)
		fmt.Fprintf(w, "item %s %s", r.PathValue("id"), strings.Repeat("x", 200+len(r.PathValue("id"))*100))
	})
	mux.HandleFunc("GET /pages/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprintf(w, "page %s in %s", r.PathValue("id"), r.Header.Get("Accept-Language"))
	})
	mux.HandleFunc("GET /live/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, "live %d", time.Now().UnixNano())
	})
	mux.HandleFunc("GET /checked/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("ETag", `"c"`)
		if r.Header.Get("If-None-Match") == `"c"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, "checked")
	})
	write := func(w http.ResponseWriter, r *http.Request) {
		version.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		mux.HandleFunc(m+" /", write)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// An ordinary service's traffic through two transports sharing one real
// redis-server, for a few seconds: cached and uncacheable GETs, Vary'd GETs,
// HEADs, revalidations, and writes to cached URLs and to URLs never cached.
// The store must never fail nor refuse a call, the breaker never open, the
// store's bookkeeping must be exact, and caching must work afterwards.
func TestTraffic_OrdinaryServiceMixOnARealRedis(t *testing.T) {
	srv := redistest.Server(t)
	origin := trafficOrigin(t)
	const prefix = "traffic:"
	var transports []*roundtrip.Transport
	var clients []*http.Client
	var store *rediscache.Store
	for range 2 {
		s, err := rediscache.Open(context.Background(), "redis://"+srv.Addr(), rediscache.Options{Prefix: prefix, Shards: 4})
		if err != nil {
			t.Fatal(err)
		}
		next := &http.Transport{MaxIdleConnsPerHost: 16}
		tr := roundtrip.New(s, roundtrip.Options{
			Transport: next,
			// Generous: a store call that times out on a loaded test
			// machine fails open by design and would count as an error;
			// this test is about the calls Redis answers.
			StoreTimeout: patientStoreTimeout,
			Logger:       fleetproc.Logger(t),
		})
		t.Cleanup(func() {
			if err := errors.Join(tr.Close(), s.Close()); err != nil {
				t.Errorf("close: %v", err)
			}
			next.CloseIdleConnections()
		})
		transports, clients, store = append(transports, tr), append(clients, &http.Client{Transport: tr}), s
	}

	var requests atomic.Int64
	send := func(rnd *rand.Rand, c *http.Client) error {
		method, path, lang := http.MethodGet, "", ""
		switch n := rnd.IntN(100); {
		case n < 40:
			path = fmt.Sprintf("/items/%d", rnd.IntN(40))
		case n < 55:
			path, lang = fmt.Sprintf("/pages/%d", rnd.IntN(10)), []string{"en", "fr", "de"}[rnd.IntN(3)]
		case n < 62:
			path = fmt.Sprintf("/live/%d", rnd.IntN(10))
		case n < 72:
			path = fmt.Sprintf("/checked/%d", rnd.IntN(5))
		case n < 80:
			method, path = http.MethodHead, fmt.Sprintf("/items/%d", rnd.IntN(40))
		case n < 90:
			method, path = []string{"POST", "PUT", "DELETE"}[rnd.IntN(3)], fmt.Sprintf("/items/%d", rnd.IntN(40))
		default:
			method, path = []string{"POST", "PUT", "DELETE"}[rnd.IntN(3)], fmt.Sprintf("/never/%d", rnd.Int())
		}
		req, err := http.NewRequest(method, origin.URL+path, nil)
		if err != nil {
			return err
		}
		if lang != "" {
			req.Header.Set("Accept-Language", lang)
		}
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return err
		}
		requests.Add(1)
		if resp.StatusCode >= 300 && resp.StatusCode != http.StatusNotModified {
			return fmt.Errorf("%s %s: %s", method, path, resp.Status)
		}
		return nil
	}
	var wg sync.WaitGroup
	stop := time.Now().Add(3 * time.Second)
	for w := range 8 {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(w), 42))
			for time.Now().Before(stop) {
				if err := send(rnd, clients[w%2]); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()

	var hits, stores int64
	for i, tr := range transports {
		st := tr.Stats()
		t.Logf("transport %d: %+v", i, st)
		if st.StoreErrors != 0 || st.StoreRefused != 0 || st.BreakerTrips != 0 || st.BreakerOpen {
			t.Errorf("transport %d: %d store errors, %d refused calls, %d breaker trips; want none", i, st.StoreErrors, st.StoreRefused, st.BreakerTrips)
		}
		hits, stores = hits+st.Hits, stores+st.Stores
	}
	if hits == 0 || stores == 0 {
		t.Errorf("%d requests: %d hits, %d stores; the cache did not work", requests.Load(), hits, stores)
	}
	st, err := store.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if entries := checkIndex(t, srv.Client(t), prefix, 4); int64(entries) != st.Entries {
		t.Errorf("Stats says %d entries, Redis holds %d", st.Entries, entries)
	}

	// Caching goes on: a new URL is stored by one transport and served to
	// the other.
	for i, want := range []string{"fwd=uri-miss", "hit"} {
		resp, err := clients[i].Get(origin.URL + "/items/after")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body) // stored once read whole
		resp.Body.Close()
		if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, want) {
			t.Errorf("after the traffic, GET %d: Cache-Status %q, want %s", i+1, cs, want)
		}
	}
}
