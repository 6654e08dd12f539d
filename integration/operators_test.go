package integration_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/fleetcache/fleetcache/integration/internal/fleetproc"
	"github.com/fleetcache/fleetcache/internal/redistest"
	"github.com/fleetcache/fleetcache/rediscache"
	"github.com/fleetcache/fleetcache/roundtrip"
)

// operatorCache is a transport over a store on r, as a service would open
// it; all closed when the test ends.
func operatorCache(t *testing.T, r *redistest.Redis, opts rediscache.Options) (*roundtrip.Transport, *rediscache.Store, *http.Client) {
	t.Helper()
	store, err := rediscache.Open(context.Background(), r.URL, opts)
	if err != nil {
		t.Fatal(err)
	}
	next := &http.Transport{}
	tr := roundtrip.New(store, roundtrip.Options{Transport: next, StoreTimeout: patientStoreTimeout, Logger: fleetproc.Logger(t)})
	t.Cleanup(func() {
		if err := errors.Join(tr.Close(), store.Close()); err != nil {
			t.Errorf("close: %v", err)
		}
		next.CloseIdleConnections()
	})
	return tr, store, &http.Client{Transport: tr}
}

// bigOrigin serves cacheable bodies of size bytes.
func bigOrigin(t *testing.T, size int) *httptest.Server {
	body := strings.Repeat("z", size)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, r.URL.Path+" "+body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// fetch GETs url through c, reads the body whole and returns Cache-Status.
func fetch(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(b), resp.Request.URL.Path+" ") {
		t.Fatalf("GET %s: %d, %d bytes, %v", url, resp.StatusCode, len(b), err)
	}
	return resp.Header.Get("Cache-Status")
}

// Redis at maxmemory with noeviction refuses writes: the cache must not
// push it past its limit, must keep serving hits, and must not take the
// refusals for an outage.
func TestOperators_MaxmemoryNoeviction(t *testing.T) {
	const limit = 8 << 20
	r := redistest.ServerWith(t, "--maxmemory", strconv.Itoa(limit), "--maxmemory-policy", "noeviction")
	tr, _, c := operatorCache(t, r, rediscache.Options{Prefix: "oom:"})
	origin := bigOrigin(t, 256<<10)

	fetch(t, c, origin.URL+"/hot")
	if cs := fetch(t, c, origin.URL+"/hot"); !strings.Contains(cs, "hit") {
		t.Fatalf("second GET of /hot: %q, want a hit", cs)
	}
	for i := range 100 {
		fetch(t, c, fmt.Sprintf("%s/big/%d", origin.URL, i))
	}
	if used := usedMemory(t, r.Client.(*redis.Client)); used > limit+1<<20 {
		t.Errorf("Redis uses %d bytes, past its maxmemory %d by more than one entry", used, limit)
	}
	if cs := fetch(t, c, origin.URL+"/hot"); !strings.Contains(cs, "hit") {
		t.Errorf("GET of /hot with Redis full: %q, want a hit", cs)
	}
	st := tr.Stats()
	t.Logf("%+v", st)
	if st.StoreRefused == 0 || st.BreakerTrips != 0 || st.StoreErrors != 0 {
		t.Errorf("%d refused calls, %d breaker trips, %d store errors; want refusals only", st.StoreRefused, st.BreakerTrips, st.StoreErrors)
	}
}
