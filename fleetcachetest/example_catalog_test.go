package fleetcachetest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/fleetcache/fleetcache/rediscache"
	"github.com/fleetcache/fleetcache/roundtrip"
)

// Catalog is a catalog service's client of the pricing service, as a team
// adopting fleetcache writes it: it knows nothing of the cache but the
// *http.Client it is given.
type Catalog struct {
	Pricing string // the pricing service's base URL
	Client  *http.Client
}

// Price asks the pricing service for the price of sku, in cents.
func (c *Catalog) Price(ctx context.Context, sku string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Pricing+"/prices/"+sku, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("pricing: %s", resp.Status)
	}
	var p struct{ Cents int }
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		return 0, fmt.Errorf("pricing: %w", err)
	}
	return p.Cents, nil
}

// SetPrice changes the price of sku. Through the cache, the PUT also
// invalidates the price every instance has stored.
func (c *Catalog) SetPrice(ctx context.Context, sku string, cents int) error {
	body := strings.NewReader(`{"Cents":` + strconv.Itoa(cents) + `}`)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.Pricing+"/prices/"+sku, body)
	if err != nil {
		return err
	}
	resp, err := c.Client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("pricing: %s", resp.Status)
	}
	return nil
}

// NewCatalog wires a catalog for production: one cache, in Redis, shared
// by every instance of the service. stop shuts it down, transport first.
func NewCatalog(ctx context.Context, redisURL, pricingURL string) (c *Catalog, stop func(), err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	store, err := rediscache.Open(ctx, redisURL, rediscache.Options{Prefix: "catalog:"})
	if err != nil {
		return nil, nil, err
	}
	transport := roundtrip.New(store, roundtrip.Options{})
	stop = func() {
		transport.Close()
		store.Close()
	}
	return &Catalog{Pricing: pricingURL, Client: &http.Client{Transport: transport, Timeout: 10 * time.Second}}, stop, nil
}

// Pricing stands in for the pricing service: a price may be cached for a
// minute and carries an ETag, so that a stale one is revalidated; a PUT
// changes it.
type Pricing struct {
	mu    sync.Mutex
	cents map[string]int
	gets  atomic.Int64 // GETs that reached the service, 304s included
}

func NewPricing(cents map[string]int) *Pricing { return &Pricing{cents: cents} }

func (p *Pricing) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sku := strings.TrimPrefix(r.URL.Path, "/prices/")
	p.mu.Lock()
	defer p.mu.Unlock()
	switch r.Method {
	case http.MethodGet:
		p.gets.Add(1)
		cents, ok := p.cents[sku]
		if !ok {
			http.NotFound(w, r)
			return
		}
		etag := `"` + strconv.Itoa(cents) + `"`
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"Cents":%d}`, cents)
	case http.MethodPut:
		var v struct{ Cents int }
		if err := json.NewDecoder(r.Body).Decode(&v); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		p.cents[sku] = v.Cents
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// Set changes a price behind the cache's back, as a batch job writing to
// the pricing database would.
func (p *Pricing) Set(sku string, cents int) {
	p.mu.Lock()
	p.cents[sku] = cents
	p.mu.Unlock()
}

// The newcomer's program: a catalog service reading prices from a pricing
// service through fleetcache. Its tests, with package fleetcachetest, are
// in catalog_test.go.
func Example_catalog() {
	redis, err := miniredis.Run() // in production, the Redis every instance shares
	if err != nil {
		log.Fatal(err)
	}
	defer redis.Close()
	pricing := NewPricing(map[string]int{"42": 1999})
	pricingServer := httptest.NewServer(pricing)
	defer pricingServer.Close()

	ctx := context.Background()
	catalog, closeCatalog, err := NewCatalog(ctx, "redis://"+redis.Addr(), pricingServer.URL)
	if err != nil {
		log.Fatal(err)
	}
	defer closeCatalog()

	for range 2 {
		cents, err := catalog.Price(ctx, "42")
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("42 costs", cents)
	}
	fmt.Println("pricing answered", pricing.gets.Load(), "GET")
	if err := catalog.SetPrice(ctx, "42", 2499); err != nil {
		log.Fatal(err)
	}
	cents, err := catalog.Price(ctx, "42")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("42 costs", cents)
	fmt.Println("pricing answered", pricing.gets.Load(), "GETs")
	// Output:
	// 42 costs 1999
	// 42 costs 1999
	// pricing answered 1 GET
	// 42 costs 2499
	// pricing answered 2 GETs
}
