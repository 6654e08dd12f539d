package fleetcachetest_test

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/internal/poll"

	"github.com/fleetcache/fleetcache/fleetcachetest"
	"github.com/fleetcache/fleetcache/roundtrip"
)

// The catalog service's tests, written as its team would write them: with
// the catalog of example_catalog_test.go, the test kit, and nothing else.

// newTestCatalog returns a catalog of a fresh cache in front of a pricing
// service that prices sku 42 at 1999.
func newTestCatalog(t *testing.T) (*Catalog, *fleetcachetest.Cache, *Pricing) {
	cache := fleetcachetest.New(t, fleetcachetest.Options{})
	pricing := NewPricing(map[string]int{"42": 1999})
	server := cache.Origin(t, pricing)
	return &Catalog{Pricing: server.URL, Client: cache.Client}, cache, pricing
}

func price(t *testing.T, c *Catalog, sku string) int {
	t.Helper()
	cents, err := c.Price(context.Background(), sku)
	if err != nil {
		t.Fatal(err)
	}
	return cents
}

func expectPrice(t *testing.T, c *Catalog, sku string, want int) {
	t.Helper()
	if got := price(t, c, sku); got != want {
		t.Errorf("price of %s is %d, want %d", sku, got, want)
	}
}

func TestCatalog_PriceIsCachedForAMinuteThenRevalidated(t *testing.T) {
	catalog, cache, pricing := newTestCatalog(t)
	expectPrice(t, catalog, "42", 1999)
	cache.Advance(59 * time.Second)
	expectPrice(t, catalog, "42", 1999)
	cache.ExpectOutcomes(t, roundtrip.OutcomeMiss, roundtrip.OutcomeHit)

	cache.Advance(2 * time.Second) // past max-age=60: the ETag is checked
	expectPrice(t, catalog, "42", 1999)
	expectPrice(t, catalog, "42", 1999) // and the price is fresh again
	cache.ExpectOutcomes(t, roundtrip.OutcomeRevalidated, roundtrip.OutcomeHit)
	if n := pricing.gets.Load(); n != 2 {
		t.Errorf("pricing answered %d GETs, want 2 (the second a 304)", n)
	}
}

func TestCatalog_NewPriceIsSeenAtOnce(t *testing.T) {
	catalog, cache, _ := newTestCatalog(t)
	expectPrice(t, catalog, "42", 1999)
	if err := catalog.SetPrice(context.Background(), "42", 2499); err != nil {
		t.Fatal(err)
	}
	expectPrice(t, catalog, "42", 2499)
	cache.ExpectOutcomes(t, roundtrip.OutcomeMiss, roundtrip.OutcomeBypass, roundtrip.OutcomeMiss)
}

// A price changed behind the cache's back (a batch job) is served from the
// cache until it expires, unless the job purges it.
func TestCatalog_PurgeAfterABatchChange(t *testing.T) {
	catalog, cache, pricing := newTestCatalog(t)
	expectPrice(t, catalog, "42", 1999)
	pricing.Set("42", 1499)
	expectPrice(t, catalog, "42", 1999)
	if err := cache.Transport.Purge(context.Background(), catalog.Pricing+"/prices/42"); err != nil {
		t.Fatal(err)
	}
	expectPrice(t, catalog, "42", 1499)
	cache.ExpectOutcomes(t, roundtrip.OutcomeMiss, roundtrip.OutcomeHit, roundtrip.OutcomeMiss)
}

// Two instances of the service share one cache: what one fetched, the
// other serves, and what one changed, the other sees.
func TestCatalog_InstancesShareTheCache(t *testing.T) {
	catalog, cache, pricing := newTestCatalog(t)
	other := cache.Peer(t)
	otherCatalog := &Catalog{Pricing: catalog.Pricing, Client: other.Client}

	expectPrice(t, catalog, "42", 1999)
	expectPrice(t, otherCatalog, "42", 1999)
	other.ExpectOutcomes(t, roundtrip.OutcomeHit)

	if err := otherCatalog.SetPrice(context.Background(), "42", 2499); err != nil {
		t.Fatal(err)
	}
	expectPrice(t, catalog, "42", 2499)
	cache.ExpectOutcomes(t, roundtrip.OutcomeMiss, roundtrip.OutcomeMiss)
	if n := pricing.gets.Load(); n != 2 {
		t.Errorf("pricing answered %d GETs, want 2", n)
	}
}

// Twenty requests for one price at once, through two instances, reach the
// pricing service once.
func TestCatalog_ABurstReachesPricingOnce(t *testing.T) {
	cache := fleetcachetest.New(t, fleetcachetest.Options{})
	pricing := NewPricing(map[string]int{"42": 1999})
	var arrived atomic.Int64
	release := make(chan struct{})
	server := cache.Origin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		<-release // slow: the burst arrives while the first request is out
		pricing.ServeHTTP(w, r)
	}))
	instances := []*Catalog{
		{Pricing: server.URL, Client: cache.Client},
		{Pricing: server.URL, Client: cache.Peer(t).Client},
	}

	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if cents, err := instances[i%2].Price(context.Background(), "42"); err != nil || cents != 1999 {
				t.Errorf("price %d, %v", cents, err)
			}
		}()
	}
	poll.Wait(10*time.Second, func() bool { return arrived.Load() > 0 })
	close(release)
	wg.Wait()
	if n := pricing.gets.Load(); n != 1 {
		t.Errorf("pricing answered %d GETs, want 1", n)
	}
}

// With Redis gone, every price is still answered, from the pricing
// service; once it is back (and a second has passed for the breaker's
// probe), the cache serves again what it held.
func TestCatalog_RedisDownIsNoOutage(t *testing.T) {
	catalog, cache, _ := newTestCatalog(t)
	expectPrice(t, catalog, "42", 1999)
	cache.Redis.Close()
	for range 6 {
		expectPrice(t, catalog, "42", 1999)
	}
	for _, r := range cache.Results()[1:] {
		if r.StoreReachable || r.Outcome != roundtrip.OutcomeMiss {
			t.Errorf("with Redis down: %s, store reachable %t", r.Outcome, r.StoreReachable)
		}
	}
	if err := cache.Redis.Restart(); err != nil {
		t.Fatal(err)
	}
	cache.Advance(time.Second)
	expectPrice(t, catalog, "42", 1999)
	res := cache.Results()
	if last := res[len(res)-1]; last.Outcome != roundtrip.OutcomeHit {
		t.Errorf("after Redis came back: %s (%s), want a hit", last.Outcome, last.CacheStatus.String("fleetcache"))
	}
}

// An operator who must see the pricing service's own answer asks for a
// refresh; the refreshed price is what everyone is served next.
func TestCatalog_RefreshFetchesAgain(t *testing.T) {
	catalog, cache, pricing := newTestCatalog(t)
	expectPrice(t, catalog, "42", 1999)
	pricing.Set("42", 1499)
	if cents, err := catalog.Price(roundtrip.WithRefresh(context.Background()), "42"); err != nil || cents != 1499 {
		t.Fatalf("refreshed price %d, %v", cents, err)
	}
	expectPrice(t, catalog, "42", 1499)
	cache.ExpectOutcomes(t, roundtrip.OutcomeMiss, roundtrip.OutcomeMiss, roundtrip.OutcomeHit)
}
