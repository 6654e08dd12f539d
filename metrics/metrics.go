// Package metrics exports a fleetcache Transport and its store to
// Prometheus: requests by outcome, origin requests and their latency, store
// calls' latency and errors, the breaker, and the store's entries, bytes,
// evictions and capacity. It is a package of its own so that the core
// packages do not depend on client_golang.
//
//	m := metrics.New(store, metrics.Options{})
//	transport := roundtrip.New(store, roundtrip.Options{Observer: m})
//	m.Watch(transport)
//	registry.MustRegister(m)
//
// No metric has a URL or key label: their number would grow with the
// traffic. docs/operations.md lists every metric and the alerts worth
// having.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetcache/fleetcache/rediscache"
	"github.com/fleetcache/fleetcache/roundtrip"
)

// DefaultStoreInterval is how long the store's figures are reused before
// Redis is read again, unless Options.StoreInterval says otherwise.
const DefaultStoreInterval = 10 * time.Second

// storeReadTimeout bounds one read of the store's figures, so that a stuck
// Redis cannot hang a scrape.
const storeReadTimeout = time.Second

// StatsReader is the part of the store the collector reads:
// *rediscache.Store has it.
type StatsReader interface {
	Stats(ctx context.Context) (rediscache.Stats, error)
}

// Options configure a Collector. The zero value is the recommended setup.
type Options struct {
	// Cache is the value of every metric's cache label, which tells the
	// caches of one process apart; "" means roundtrip.DefaultName.
	Cache string
	// Name is the cache's name in Cache-Status (roundtrip.Options.Name),
	// by which a request's outcome is read; "" means roundtrip.DefaultName.
	Name string
	// StoreInterval is how long the store's figures are reused: a scrape
	// reads them from Redis at most once per interval (a few small
	// commands per shard), whatever the number of scrapers. 0 means
	// DefaultStoreInterval.
	StoreInterval time.Duration
	// Now is the clock that ages the store's figures; nil means time.Now.
	// Tests inject one.
	Now func() time.Time
}

// Collector is a prometheus.Collector of one Transport and its store, and
// the roundtrip.Observer that times the Transport's origin and store calls.
// It is safe for concurrent use.
type Collector struct {
	store    StatsReader
	now      func() time.Time
	interval time.Duration
	t        atomic.Pointer[roundtrip.Transport]

	cache      string // the name of its Cache-Status member
	requestDur *prometheus.HistogramVec
	originDur  prometheus.Histogram
	originReqs *prometheus.CounterVec
	storeDur   prometheus.Histogram

	mu        sync.Mutex
	last      rediscache.Stats
	lastRead  time.Time // when last was read; zero before the first success
	lastTried time.Time
	lastOK    bool

	descs descs
}

type descs struct {
	requests, notModified, stores, storeErrors, breakerOpen, breakerTrips, buffered *prometheus.Desc
	entries, bytes, evictions, expired, capEntries, capBytes, storeUp, storeAge     *prometheus.Desc
	nearLookups, nearEvictions, nearInvalidations, nearResets, nearBytes, nearLive  *prometheus.Desc
}

// New returns a Collector of store's figures; store may be nil (a store
// that is not a rediscache.Store). Give the Collector to roundtrip.New as
// its Observer, then Watch the Transport.
func New(store StatsReader, opts Options) *Collector {
	cache := opts.Cache
	if cache == "" {
		cache = roundtrip.DefaultName
	}
	c := &Collector{store: store, now: opts.Now, interval: opts.StoreInterval, cache: roundtrip.DefaultName}
	if opts.Name != "" {
		c.cache = opts.Name
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.interval <= 0 {
		c.interval = DefaultStoreInterval
	}
	labels := prometheus.Labels{"cache": cache}
	c.requestDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:        "fleetcache_request_duration_seconds",
		Help:        "Time from a request's arrival at the transport to its response header, by outcome: hit, stale, miss, revalidated, coalesced, bypass, other (answered by the cache itself), error.",
		ConstLabels: labels,
		Buckets:     []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"outcome"})
	c.originDur = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:        "fleetcache_origin_request_duration_seconds",
		Help:        "Time from sending a request to the origin to its response header (or failure).",
		ConstLabels: labels,
		Buckets:     []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
	c.originReqs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "fleetcache_origin_requests_total",
		Help:        "Requests sent to the origin, by the class of its status (2xx ... 5xx) or error when it gave none.",
		ConstLabels: labels,
	}, []string{"code"})
	c.storeDur = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:        "fleetcache_store_call_duration_seconds",
		Help:        "Duration of each call to the store (Redis), failed ones included; calls the breaker skipped are not made.",
		ConstLabels: labels,
		Buckets:     []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	})
	d := func(name, help string, variable ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, variable, labels)
	}
	c.descs = descs{
		requests:     d("fleetcache_requests_total", "Requests by outcome: hit, miss, revalidated and bypass count each request once; stale (also a hit or a revalidation) and coalesced (also a miss or a revalidation) count some of them again.", "outcome"),
		notModified:  d("fleetcache_revalidations_not_modified_total", "Revalidations the origin answered with 304 Not Modified."),
		stores:       d("fleetcache_stores_total", "Entries written to the store."),
		storeErrors:  d("fleetcache_store_errors_total", "Store calls that failed, by kind: failure (down, stuck, overloaded: feeds the breaker) or refused (an error reply such as OOM; never opens the breaker).", "kind"),
		breakerOpen:  d("fleetcache_breaker_open", "1 while the breaker is open and the store is not called, else 0."),
		breakerTrips: d("fleetcache_breaker_trips_total", "Times the breaker opened."),
		buffered:     d("fleetcache_buffered_bytes", "Bytes of response bodies held now while read for the store."),
		entries:      d("fleetcache_store_entries", "Entries in the store, for the whole prefix (expired ones not yet swept included)."),
		bytes:        d("fleetcache_store_bytes", "Bytes of the encoded entries in the store, for the whole prefix."),
		evictions:    d("fleetcache_store_evictions_total", "Entries evicted for capacity since the prefix was created."),
		expired:      d("fleetcache_store_expired_total", "Expired entries swept from the index since the prefix was created."),
		capEntries:   d("fleetcache_store_capacity_entries", "The cache's capacity in entries (max_entries in <prefix>config)."),
		capBytes:     d("fleetcache_store_capacity_bytes", "The cache's capacity in bytes (max_bytes in <prefix>config)."),
		storeUp:      d("fleetcache_store_stats_up", "1 when the last read of the store's figures succeeded, else 0."),
		storeAge:     d("fleetcache_store_stats_age_seconds", "Age of the store's figures exported."),

		nearLookups:       d("fleetcache_near_lookups_total", "Lookups in this process's near tier (rediscache Options.NearBytes), by result: hit, or miss (gone on to Redis).", "result"),
		nearEvictions:     d("fleetcache_near_evictions_total", "Entries the near tier let go for its byte bound."),
		nearInvalidations: d("fleetcache_near_invalidations_total", "Near entries dropped by announcements of changes made through any instance."),
		nearResets:        d("fleetcache_near_resets_total", "Times the near tier was emptied because its subscription dropped."),
		nearBytes:         d("fleetcache_near_bytes", "Bytes the near tier holds, weighed as for its bound."),
		nearLive:          d("fleetcache_near_live", "1 while the near tier is subscribed and in use, else 0 (and 0 without one)."),
	}
	return c
}

// Watch makes the Collector export t's counters (roundtrip.Stats). Call it
// once, with the Transport the Collector observes.
func (c *Collector) Watch(t *roundtrip.Transport) { c.t.Store(t) }

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	d := c.descs
	for _, desc := range []*prometheus.Desc{d.requests, d.notModified, d.stores, d.storeErrors, d.breakerOpen, d.breakerTrips,
		d.buffered, d.entries, d.bytes, d.evictions, d.expired, d.capEntries, d.capBytes, d.storeUp, d.storeAge,
		d.nearLookups, d.nearEvictions, d.nearInvalidations, d.nearResets, d.nearBytes, d.nearLive} {
		ch <- desc
	}
	c.requestDur.Describe(ch)
	c.originDur.Describe(ch)
	c.originReqs.Describe(ch)
	c.storeDur.Describe(ch)
}

// Collect implements prometheus.Collector. The Transport's counters are
// read as they are; the store's are those read last, read again when older
// than the StoreInterval.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	d := c.descs
	counter := func(desc *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	if t := c.t.Load(); t != nil {
		s := t.Stats()
		counter(d.requests, s.Hits, "hit")
		counter(d.requests, s.Misses, "miss")
		counter(d.requests, s.Revalidations, "revalidated")
		counter(d.requests, s.StaleServed, "stale")
		counter(d.requests, s.Bypasses, "bypass")
		counter(d.requests, s.Coalesced, "coalesced")
		counter(d.notModified, s.NotModified)
		counter(d.stores, s.Stores)
		counter(d.storeErrors, s.StoreErrors, "failure")
		counter(d.storeErrors, s.StoreRefused, "refused")
		gauge(d.breakerOpen, boolGauge(s.BreakerOpen))
		counter(d.breakerTrips, s.BreakerTrips)
		gauge(d.buffered, float64(s.BufferedBytes))
	}
	c.requestDur.Collect(ch)
	c.originDur.Collect(ch)
	c.originReqs.Collect(ch)
	c.storeDur.Collect(ch)
	if c.store == nil {
		return
	}
	st, read, ok := c.storeStats()
	gauge(d.storeUp, boolGauge(ok))
	if read.IsZero() {
		return // never read: no figures to give
	}
	gauge(d.storeAge, c.now().Sub(read).Seconds())
	gauge(d.entries, float64(st.Entries))
	gauge(d.bytes, float64(st.Bytes))
	counter(d.evictions, st.Evictions)
	counter(d.expired, st.Expired)
	gauge(d.capEntries, float64(st.MaxEntries))
	gauge(d.capBytes, float64(st.MaxBytes))
	counter(d.nearLookups, st.NearHits, "hit")
	counter(d.nearLookups, st.NearMisses, "miss")
	counter(d.nearEvictions, st.NearEvictions)
	counter(d.nearInvalidations, st.NearInvalidations)
	counter(d.nearResets, st.NearResets)
	gauge(d.nearBytes, float64(st.NearBytes))
	gauge(d.nearLive, boolGauge(st.NearLive))
}

// storeStats returns the store's figures, read again when the last attempt
// is older than the interval; a failed read keeps the last good figures,
// and is not tried again before the interval either.
func (c *Collector) storeStats() (st rediscache.Stats, read time.Time, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.lastTried.IsZero() || now.Sub(c.lastTried) >= c.interval {
		c.lastTried = now
		ctx, cancel := context.WithTimeout(context.Background(), storeReadTimeout)
		fresh, err := c.store.Stats(ctx)
		cancel()
		if c.lastOK = err == nil; c.lastOK {
			c.last, c.lastRead = fresh, now
		}
	}
	return c.last, c.lastRead, c.lastOK
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Result implements roundtrip.Observer: it times the request by its
// outcome. (The outcomes are counted by the Transport itself, in Stats.)
func (c *Collector) Result(_ *http.Request, r roundtrip.Result) {
	c.requestDur.WithLabelValues(r.Outcome.String()).Observe(r.Duration.Seconds())
}

// Origin implements roundtrip.Observer: it times the request and counts it
// by the class of its status.
func (c *Collector) Origin(req *http.Request) (*http.Request, func(*http.Response, error)) {
	start := time.Now()
	return req, func(resp *http.Response, err error) {
		c.originDur.Observe(time.Since(start).Seconds())
		code := "error"
		if err == nil {
			code = statusClass(resp.StatusCode)
		}
		c.originReqs.WithLabelValues(code).Inc()
	}
}

func statusClass(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return strconv.Itoa(code/100) + "xx"
}

// Store implements roundtrip.Observer: it times the call.
func (c *Collector) Store(_ context.Context, start time.Time, _ error) {
	c.storeDur.Observe(time.Since(start).Seconds())
}

var (
	_ prometheus.Collector = (*Collector)(nil)
	_ roundtrip.Observer   = (*Collector)(nil)
	_ StatsReader          = (*rediscache.Store)(nil)
)
