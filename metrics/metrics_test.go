package metrics_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetcache/fleetcache/internal/redistest"
	"github.com/fleetcache/fleetcache/metrics"
	"github.com/fleetcache/fleetcache/rediscache"
	"github.com/fleetcache/fleetcache/roundtrip"
)

// scrape gathers c through a pedantic registry (which checks every metric
// against its description) and returns each sample by name and labels
// other than cache, histograms by their count.
func scrape(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := make(map[string]float64)
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			out[sampleName(mf.GetName(), m)] = value(m)
		}
	}
	return out
}

func sampleName(name string, m *dto.Metric) string {
	var labels []string
	for _, l := range m.GetLabel() {
		if l.GetName() != "cache" {
			labels = append(labels, l.GetName()+"="+l.GetValue())
		}
	}
	sort.Strings(labels)
	if len(labels) == 0 {
		return name
	}
	return name + "{" + strings.Join(labels, ",") + "}"
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return -1
}

// origin answers the scripted run: /fresh is fresh for a minute, /etag must
// be revalidated and answers 304 to its ETag, /slow waits for release.
type origin struct {
	*httptest.Server
	release chan struct{}
	slowIn  atomic.Int64
}

func newOrigin(t *testing.T) *origin {
	o := &origin{release: make(chan struct{})}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/fresh":
			w.Header().Set("Cache-Control", "max-age=60")
		case "/etag":
			w.Header().Set("Cache-Control", "no-cache")
			w.Header().Set("ETag", `"v1"`)
			if r.Header.Get("If-None-Match") == `"v1"` {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		case "/slow":
			o.slowIn.Add(1)
			<-o.release
			w.Header().Set("Cache-Control", "max-age=60")
		case "/gone":
			w.WriteHeader(http.StatusNotFound)
			return
		}
		fmt.Fprint(w, "body of "+r.URL.Path)
	}))
	t.Cleanup(o.Close)
	return o
}

func get(t *testing.T, cl *http.Client, method, url string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	resp, err := cl.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// After a scripted run, a scrape says what Stats says, figure for figure.
func TestCollector_ScrapeMatchesStats(t *testing.T) {
	redistest.Run(t, redistest.Backends, func(t *testing.T, r *redistest.Redis) {
		ctx := context.Background()
		store, err := rediscache.Open(ctx, r.URL, rediscache.Options{Prefix: "m:", MaxEntries: 1000, Shards: 4})
		require.NoError(t, err)
		defer store.Close()
		o := newOrigin(t)
		c := metrics.New(store, metrics.Options{Cache: "catalog"})
		tr := roundtrip.New(store, roundtrip.Options{Observer: c, StoreTimeout: 5 * time.Second})
		defer tr.Close()
		c.Watch(tr)
		cl := &http.Client{Transport: tr}

		get(t, cl, "GET", o.URL+"/fresh")  // miss, stored
		get(t, cl, "GET", o.URL+"/fresh")  // hit
		get(t, cl, "GET", o.URL+"/etag")   // miss, stored
		get(t, cl, "GET", o.URL+"/etag")   // revalidated, 304
		get(t, cl, "GET", o.URL+"/gone")   // miss, 404
		get(t, cl, "POST", o.URL+"/fresh") // bypass, invalidates
		var wg sync.WaitGroup
		for range 3 { // one origin request, the others coalesced
			wg.Add(1)
			go func() {
				defer wg.Done()
				get(t, cl, "GET", o.URL+"/slow")
			}()
		}
		for o.slowIn.Load() == 0 || tr.Stats().Misses < 6 {
			time.Sleep(time.Millisecond) // polling for all three to be on their way
		}
		close(o.release)
		wg.Wait()

		s := tr.Stats()
		st, err := store.Stats(ctx)
		require.NoError(t, err)
		got := scrape(t, c)
		want := map[string]float64{
			"fleetcache_requests_total{outcome=hit}":         float64(s.Hits),
			"fleetcache_requests_total{outcome=miss}":        float64(s.Misses),
			"fleetcache_requests_total{outcome=revalidated}": float64(s.Revalidations),
			"fleetcache_requests_total{outcome=stale}":       float64(s.StaleServed),
			"fleetcache_requests_total{outcome=bypass}":      float64(s.Bypasses),
			"fleetcache_requests_total{outcome=coalesced}":   float64(s.Coalesced),
			"fleetcache_revalidations_not_modified_total":    float64(s.NotModified),
			"fleetcache_stores_total":                        float64(s.Stores),
			"fleetcache_store_errors_total{kind=failure}":    float64(s.StoreErrors),
			"fleetcache_store_errors_total{kind=refused}":    float64(s.StoreRefused),
			"fleetcache_breaker_open":                        0,
			"fleetcache_breaker_trips_total":                 float64(s.BreakerTrips),
			"fleetcache_buffered_bytes":                      float64(s.BufferedBytes),
			"fleetcache_store_entries":                       float64(st.Entries),
			"fleetcache_store_bytes":                         float64(st.Bytes),
			"fleetcache_store_evictions_total":               float64(st.Evictions),
			"fleetcache_store_expired_total":                 float64(st.Expired),
			"fleetcache_store_capacity_entries":              1000,
			"fleetcache_store_capacity_bytes":                float64(rediscache.DefaultMaxBytes),
			"fleetcache_store_stats_up":                      1,
			"fleetcache_near_lookups_total{result=hit}":      0, // no near tier
			"fleetcache_near_lookups_total{result=miss}":     0,
			"fleetcache_near_evictions_total":                0,
			"fleetcache_near_invalidations_total":            0,
			"fleetcache_near_resets_total":                   0,
			"fleetcache_near_bytes":                          0,
			"fleetcache_near_live":                           0,
			"fleetcache_store_stats_age_seconds":             got["fleetcache_store_stats_age_seconds"],
			"fleetcache_origin_requests_total{code=2xx}":     3 + 1, // fresh, etag, slow; POST
			"fleetcache_origin_requests_total{code=3xx}":     1,     // the 304
			"fleetcache_origin_requests_total{code=4xx}":     1,
			"fleetcache_origin_request_duration_seconds":     6,
			// Each request timed once, by its outcome: the histogram
			// partitions what the counters count (a coalesced request is
			// a miss there).
			"fleetcache_request_duration_seconds{outcome=hit}":         float64(s.Hits),
			"fleetcache_request_duration_seconds{outcome=miss}":        float64(s.Misses - s.Coalesced),
			"fleetcache_request_duration_seconds{outcome=coalesced}":   float64(s.Coalesced),
			"fleetcache_request_duration_seconds{outcome=revalidated}": float64(s.Revalidations),
			"fleetcache_request_duration_seconds{outcome=bypass}":      float64(s.Bypasses),
			"fleetcache_store_call_duration_seconds":                   got["fleetcache_store_call_duration_seconds"],
		}
		assert.Equal(t, want, got)
		// The run did what the script says, so the comparison above is
		// not of zeros.
		assert.Equal(t, roundtrip.Stats{Hits: 1, Misses: 6, Revalidations: 1, NotModified: 1, Stores: 4, Coalesced: 2, Bypasses: 1},
			roundtrip.Stats{Hits: s.Hits, Misses: s.Misses, Revalidations: s.Revalidations, NotModified: s.NotModified, Stores: s.Stores, Coalesced: s.Coalesced, Bypasses: s.Bypasses})
		assert.EqualValues(t, 2, st.Entries, "/etag and /slow; the POST purged /fresh")
		assert.Greater(t, got["fleetcache_store_call_duration_seconds"], 10.0)
	})
}

type countingStats struct {
	calls atomic.Int64
	err   atomic.Bool
}

func (s *countingStats) Stats(context.Context) (rediscache.Stats, error) {
	n := s.calls.Add(1)
	if s.err.Load() {
		return rediscache.Stats{}, fmt.Errorf("redis down")
	}
	return rediscache.Stats{Entries: n, MaxEntries: 10, MaxBytes: 100}, nil
}

// The store's figures are read at most once per interval, however often
// the collector is scraped; a failed read keeps the last figures and says so.
func TestCollector_StoreFiguresAreCached(t *testing.T) {
	now := time.Unix(1000, 0)
	store := &countingStats{}
	c := metrics.New(store, metrics.Options{StoreInterval: 10 * time.Second, Now: func() time.Time { return now }})
	for range 5 {
		got := scrape(t, c)
		assert.EqualValues(t, 1, got["fleetcache_store_entries"])
	}
	assert.EqualValues(t, 1, store.calls.Load())
	now = now.Add(10 * time.Second)
	assert.EqualValues(t, 2, scrape(t, c)["fleetcache_store_entries"])

	store.err.Store(true)
	now = now.Add(15 * time.Second)
	got := scrape(t, c)
	assert.EqualValues(t, 2, got["fleetcache_store_entries"], "the last good figures")
	assert.EqualValues(t, 0, got["fleetcache_store_stats_up"])
	assert.EqualValues(t, 15, got["fleetcache_store_stats_age_seconds"])
	scrape(t, c)
	assert.EqualValues(t, 3, store.calls.Load(), "a failure is not retried before the interval either")
}

func TestCollector_NoStoreFiguresBeforeAFirstRead(t *testing.T) {
	store := &countingStats{}
	store.err.Store(true)
	got := scrape(t, metrics.New(store, metrics.Options{}))
	assert.EqualValues(t, 0, got["fleetcache_store_stats_up"])
	_, ok := got["fleetcache_store_entries"]
	assert.False(t, ok, "no figures to give")
	got = scrape(t, metrics.New(nil, metrics.Options{}))
	_, ok = got["fleetcache_store_stats_up"]
	assert.False(t, ok, "no store, no store metrics")
}
