package integration_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

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

// Sixteen clients reading one cached 6 MiB object at once move 96 MiB out of
// Redis: the store timeout must allow for the size, and a slow large read
// must not be taken for an outage.
func TestOperators_LargeEntriesUnderConcurrency(t *testing.T) {
	r := redistest.RealServer.Start(t)
	store, err := rediscache.Open(context.Background(), r.URL, rediscache.Options{Prefix: "large:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	origin := bigOrigin(t, 6<<20)
	client := func() (*roundtrip.Transport, *http.Client) {
		next := &http.Transport{}
		// The default StoreTimeout: the point is that it stretches.
		tr := roundtrip.New(store, roundtrip.Options{Transport: next, MaxEntryBytes: 8 << 20, Logger: fleetproc.Logger(t)})
		t.Cleanup(func() { _ = tr.Close(); next.CloseIdleConnections() })
		return tr, &http.Client{Transport: tr}
	}
	// The entry is written by a patient instance: this test is about
	// reading it.
	next := &http.Transport{}
	writer := roundtrip.New(store, roundtrip.Options{Transport: next, MaxEntryBytes: 8 << 20, StoreTimeout: 10 * time.Second, Logger: fleetproc.Logger(t)})
	t.Cleanup(func() { _ = writer.Close(); next.CloseIdleConnections() })
	fetch(t, &http.Client{Transport: writer}, origin.URL+"/big")
	if writer.Stats().Stores != 1 {
		t.Fatalf("the 6 MiB entry was not stored: %+v", writer.Stats())
	}
	// A second process, which has never seen the URL, reads it with 16
	// clients, three times over, with the default StoreTimeout.
	reader, rc := client()
	for range 3 {
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() { fetch(t, rc, origin.URL+"/big") })
		}
		wg.Wait()
	}
	st := reader.Stats()
	t.Logf("%+v", st)
	// However loaded the machine, slow reads of a large entry are no
	// outage; and the stretched timeout lets the entry be read. (How many
	// of the 48 reads finish in time depends on the machine: on an idle
	// one, all of them.)
	if st.BreakerTrips != 0 {
		t.Errorf("%d breaker trips reading a large entry", st.BreakerTrips)
	}
	if st.Hits == 0 {
		t.Errorf("no read of the large entry was served from the store: %+v", st)
	}
}

// aclUser creates a Redis 7 ACL user and returns the URL to connect as it.
func aclUser(t *testing.T, r *redistest.Redis, name string, rules ...string) string {
	t.Helper()
	args := []any{"ACL", "SETUSER", name, "on", ">secret-" + name}
	for _, rule := range rules {
		args = append(args, rule)
	}
	if err := r.Client.Do(context.Background(), args...).Err(); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	return "redis://" + name + ":secret-" + name + "@" + r.Addr()
}

// Redis users as operators set them up: the ACL docs/store.md documents
// serves every store path without a refusal; one that may use the prefix's
// keys but not its channels still caches, says at start that fills are not
// announced, and never fails a write on it.
func TestOperators_ACLUsers(t *testing.T) {
	r := redistest.RealServer.Start(t)
	origin := trafficOrigin(t)
	for _, tc := range []struct {
		name        string
		rules       []string
		fillNotices bool
	}{
		{"documented ACL", []string{"~acl1:*", "&acl1:*", "+@read", "+@write", "+@scripting", "+@transaction", "+@pubsub", "+ping", "+info"}, true},
		{"keys but no channels", []string{"~acl2:*", "resetchannels", "+@all"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := strings.Split(strings.TrimPrefix(tc.rules[0], "~"), "*")[0]
			url := aclUser(t, r, strings.TrimSuffix(prefix, ":"), tc.rules...)
			var logs fleetproc.SyncBuffer
			logger := slog.New(slog.NewTextHandler(&logs, nil))
			var transports []*roundtrip.Transport
			var store *rediscache.Store
			for range 2 {
				s, err := rediscache.Open(context.Background(), url, rediscache.Options{Prefix: prefix, Logger: logger})
				if err != nil {
					t.Fatal(err)
				}
				next := &http.Transport{}
				tr := roundtrip.New(s, roundtrip.Options{Transport: next, StoreTimeout: patientStoreTimeout, LeaseTimeout: time.Second, Logger: logger})
				t.Cleanup(func() { _ = tr.Close(); _ = s.Close(); next.CloseIdleConnections() })
				transports, store = append(transports, tr), s
			}
			var wg sync.WaitGroup
			for i := range 40 {
				wg.Go(func() {
					c := &http.Client{Transport: transports[i%2]}
					for _, path := range []string{"/items/1", fmt.Sprintf("/items/%d", i%7), "/pages/1", "/checked/1"} {
						fetchStatus(t, c, http.MethodGet, origin.URL+path)
					}
					fetchStatus(t, c, http.MethodPost, origin.URL+fmt.Sprintf("/never/%d", i))
				})
			}
			wg.Wait()
			for i, tr := range transports {
				if st := tr.Stats(); st.StoreErrors != 0 || st.StoreRefused != 0 || st.BreakerTrips != 0 || st.Stores == 0 {
					t.Errorf("transport %d: %+v; want stores, and no store errors, refusals or trips", i, st)
				}
			}
			st, err := store.Stats(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if st.FillNotices != tc.fillNotices || st.Entries == 0 {
				t.Errorf("store stats %+v, want FillNotices %v and entries", st, tc.fillNotices)
			}
			warned := strings.Count(logs.String(), "may not publish")
			if want := map[bool]int{true: 0, false: 2}[tc.fillNotices]; warned != want {
				t.Errorf("%d warnings about publishing (one per store expected when denied), want %d:\n%s", warned, want, logs.String())
			}
		})
	}
}

// fetchStatus sends method to url through c, reads the body and wants no
// error status.
func fetchStatus(t *testing.T, c *http.Client, method, url string) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Error(err)
		return
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Error(err)
		return
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil || resp.StatusCode >= 400 {
		t.Errorf("%s %s: %d, %v", method, url, resp.StatusCode, err)
	}
}

// A Redis that restarts empty (no persistence) loses the config with the
// entries: the next read of the config seeds it again, and an operator's
// retune after the restart is applied, not refused.
func TestOperators_RestartWithoutPersistence(t *testing.T) {
	r := redistest.RealServer.Start(t)
	tr, store, c := operatorCache(t, r, rediscache.Options{Prefix: "restart:", MaxEntries: 1000, Shards: 2})
	origin := trafficOrigin(t)
	for i := range 20 {
		fetchStatus(t, c, http.MethodGet, fmt.Sprintf("%s/items/%d", origin.URL, i))
	}
	r.Restart(t)
	// The first calls after the restart may find the old connections gone.
	for i := range 20 {
		fetchStatus(t, c, http.MethodGet, fmt.Sprintf("%s/items/%d", origin.URL, i))
	}
	ctx := context.Background()
	// Writes read the config again every 5 seconds; the next read seeds it.
	n := 0
	write := func() {
		n++
		fetchStatus(t, c, http.MethodGet, fmt.Sprintf("%s/items/poll-%d", origin.URL, n))
	}
	fleetproc.PollUntil(t, "the config seeded again", 20*time.Second, func() bool {
		write()
		return r.Client.HGet(ctx, "restart:config", "max_entries").Val() == "1000"
	}, func() string { return fmt.Sprint(r.Client.HGetAll(ctx, "restart:config").Val()) })
	if err := r.Client.HSet(ctx, "restart:config", "max_entries", "4").Err(); err != nil {
		t.Fatal(err)
	}
	fleetproc.PollUntil(t, "the retune applied after the restart", 20*time.Second, func() bool {
		write()
		st, err := store.Stats(ctx)
		return err == nil && st.MaxEntries == 4 && st.Entries <= 4
	}, func() string { st, err := store.Stats(ctx); return fmt.Sprintf("%+v %v", st, err) })
	if st := tr.Stats(); st.BreakerTrips > 1 {
		t.Errorf("%d breaker trips across one restart", st.BreakerTrips)
	}
}
