package roundtrip_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"

	"github.com/alicebob/miniredis/v2"

	"github.com/fleetcache/fleetcache/policy"
	"github.com/fleetcache/fleetcache/rediscache"
	"github.com/fleetcache/fleetcache/roundtrip"
)

// exampleOrigin stands in for a real API: a product that may be cached for
// a minute, with a validator for revalidation.
func exampleOrigin() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprint(w, `{"id":42}`)
	}))
}

// withoutTTL is the cache's Cache-Status member without its ttl: the ttl
// counts down with the wall clock, which would make the examples' output
// vary.
func withoutTTL(h http.Header) string {
	members, _ := policy.ParseCacheStatus(h)
	for _, m := range members {
		if m.Cache == roundtrip.DefaultName {
			m.HasTTL = false
			return m.String(m.Cache)
		}
	}
	return ""
}

// The quick start: wrap an http.Client once; a miss fills the shared cache
// and the next request, from this or any other instance, is a hit.
func ExampleNew() {
	redis := miniredis.NewMiniRedis() // in production: your Redis URL
	if err := redis.Start(); err != nil {
		log.Fatal(err)
	}
	defer redis.Close()
	api := exampleOrigin()
	defer api.Close()
	ctx := context.Background()

	store, err := rediscache.Open(ctx, "redis://"+redis.Addr(), rediscache.Options{Prefix: "catalog:"})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	transport := roundtrip.New(store, roundtrip.Options{})
	defer transport.Close()
	client := &http.Client{Transport: transport}

	for range 2 {
		resp, err := client.Get(api.URL + "/products/42")
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(string(body), withoutTTL(resp.Header))
	}
	// Output:
	// {"id":42} fleetcache; fwd=uri-miss; fwd-status=200; stored
	// {"id":42} fleetcache; hit
}

// A request with no-cache makes the cache revalidate its entry: the origin
// answers 304, the cache freshens what it stores and serves it whole.
func ExampleTransport_RoundTrip_revalidation() {
	redis := miniredis.NewMiniRedis()
	if err := redis.Start(); err != nil {
		log.Fatal(err)
	}
	defer redis.Close()
	api := exampleOrigin()
	defer api.Close()

	store, err := rediscache.Open(context.Background(), "redis://"+redis.Addr(), rediscache.Options{Prefix: "catalog:"})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	transport := roundtrip.New(store, roundtrip.Options{})
	defer transport.Close()
	client := &http.Client{Transport: transport}

	get := func(cacheControl string) {
		req, _ := http.NewRequest(http.MethodGet, api.URL+"/products/42", nil)
		if cacheControl != "" {
			req.Header.Set("Cache-Control", cacheControl)
		}
		resp, err := client.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, string(body), withoutTTL(resp.Header))
	}
	get("")
	get("no-cache")
	fmt.Println("revalidated with 304:", transport.Stats().NotModified)
	// Output:
	// 200 {"id":42} fleetcache; fwd=uri-miss; fwd-status=200; stored
	// 200 {"id":42} fleetcache; fwd=request; fwd-status=304; stored
	// revalidated with 304: 1
}

// exampleCache is the examples' setup: a transport over a fresh store in
// miniredis, and what to call when done.
func exampleCache(opts roundtrip.Options) (*roundtrip.Transport, func()) {
	redis := miniredis.NewMiniRedis()
	if err := redis.Start(); err != nil {
		log.Fatal(err)
	}
	store, err := rediscache.Open(context.Background(), "redis://"+redis.Addr(), rediscache.Options{Prefix: "catalog:"})
	if err != nil {
		log.Fatal(err)
	}
	transport := roundtrip.New(store, opts)
	return transport, func() {
		transport.Close() // first: it waits for the entries being stored
		store.Close()
		redis.Close()
	}
}

// get sends a GET with ctx and prints the body and what the cache did.
func get(ctx context.Context, client *http.Client, url string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := client.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(body), withoutTTL(resp.Header))
}

// After the origin changed a product, one call removes it for every
// instance; the URL is keyed as requests are, so any spelling of it works.
func ExampleTransport_Purge() {
	api := exampleOrigin()
	defer api.Close()
	transport, done := exampleCache(roundtrip.Options{})
	defer done()
	client := &http.Client{Transport: transport}
	ctx := context.Background()

	get(ctx, client, api.URL+"/products/42")
	if err := transport.Purge(ctx, api.URL+"/products/%34%32"); err != nil {
		log.Fatal(err)
	}
	get(ctx, client, api.URL+"/products/42")
	// Output:
	// {"id":42} fleetcache; fwd=uri-miss; fwd-status=200; stored
	// {"id":42} fleetcache; fwd=uri-miss; fwd-status=200; stored
}

// A write through the cache invalidates what it changed for every
// instance, and its Cache-Status says which stored URLs that was.
func ExampleTransport_RoundTrip_invalidation() {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, `{"id":42}`)
	}))
	defer api.Close()
	transport, done := exampleCache(roundtrip.Options{})
	defer done()
	client := &http.Client{Transport: transport}

	get(context.Background(), client, api.URL+"/products/42")
	req, _ := http.NewRequest(http.MethodPut, api.URL+"/products/42", strings.NewReader(`{"id":42,"price":7}`))
	resp, err := client.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(strings.Replace(resp.Header.Get("Cache-Status"), api.URL, "http://api", 1))
	// Output:
	// {"id":42} fleetcache; fwd=uri-miss; fwd-status=200; stored
	// fleetcache; fwd=method; fwd-status=204; detail="invalidated http://api/products/42"
}

// One request goes around the cache; the stored response stays for the
// others.
func ExampleWithBypass() {
	api := exampleOrigin()
	defer api.Close()
	transport, done := exampleCache(roundtrip.Options{})
	defer done()
	client := &http.Client{Transport: transport}
	ctx := context.Background()

	get(ctx, client, api.URL+"/products/42")
	get(roundtrip.WithBypass(ctx), client, api.URL+"/products/42")
	get(ctx, client, api.URL+"/products/42")
	// Output:
	// {"id":42} fleetcache; fwd=uri-miss; fwd-status=200; stored
	// {"id":42} fleetcache; fwd=bypass; fwd-status=200; detail=requested
	// {"id":42} fleetcache; hit
}

// A refresh fetches the resource again, without the stored validators,
// and stores the answer for everyone; a no-cache request would only have
// revalidated it (a 304).
func ExampleWithRefresh() {
	api := exampleOrigin()
	defer api.Close()
	transport, done := exampleCache(roundtrip.Options{})
	defer done()
	client := &http.Client{Transport: transport}
	ctx := context.Background()

	get(ctx, client, api.URL+"/products/42")
	get(roundtrip.WithRefresh(ctx), client, api.URL+"/products/42")
	// Output:
	// {"id":42} fleetcache; fwd=uri-miss; fwd-status=200; stored
	// {"id":42} fleetcache; fwd=request; fwd-status=200; stored
}

// OnResult hears what the cache did for each request: here, counted per
// outcome, as a metrics library would.
func ExampleOptions_onResult() {
	api := exampleOrigin()
	defer api.Close()
	counts := map[roundtrip.Outcome]int{}
	var mu sync.Mutex
	transport, done := exampleCache(roundtrip.Options{
		OnResult: func(req *http.Request, r roundtrip.Result) {
			mu.Lock()
			defer mu.Unlock()
			counts[r.Outcome]++
			if !r.StoreReachable {
				log.Printf("%s %s served uncached: the store did not answer", req.Method, req.URL)
			}
		},
	})
	defer done()
	client := &http.Client{Transport: transport}

	for range 3 {
		resp, err := client.Get(api.URL + "/products/42")
		if err != nil {
			log.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	fmt.Println(roundtrip.OutcomeMiss, counts[roundtrip.OutcomeMiss], roundtrip.OutcomeHit, counts[roundtrip.OutcomeHit])
	// Output: miss 1 hit 2
}

// Shutting down: the transport first (it waits for what is being stored
// and closes the wrapped transport's idle connections), then the store.
// A request that arrives after Close still gets an answer, uncached.
func ExampleTransport_Close() {
	api := exampleOrigin()
	defer api.Close()
	redis, err := miniredis.Run()
	if err != nil {
		log.Fatal(err)
	}
	defer redis.Close()
	store, err := rediscache.Open(context.Background(), "redis://"+redis.Addr(), rediscache.Options{Prefix: "catalog:"})
	if err != nil {
		log.Fatal(err)
	}
	transport := roundtrip.New(store, roundtrip.Options{})
	client := &http.Client{Transport: transport}

	fmt.Println(transport.Close(), store.Close())
	fmt.Println(transport.Close(), store.Close()) // idempotent
	get(context.Background(), client, api.URL+"/products/42")
	// Output:
	// <nil> <nil>
	// <nil> <nil>
	// {"id":42} fleetcache; fwd=bypass; fwd-status=200; detail=closed
}

// Stats are the transport's counters since New, for a stats page or a
// metrics exporter.
func ExampleTransport_Stats() {
	api := exampleOrigin()
	defer api.Close()
	transport, done := exampleCache(roundtrip.Options{})
	defer done()
	client := &http.Client{Transport: transport}
	for range 3 {
		resp, err := client.Get(api.URL + "/products/42")
		if err != nil {
			log.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	st := transport.Stats()
	fmt.Printf("hits=%d misses=%d stores=%d breaker_open=%t\n", st.Hits, st.Misses, st.Stores, st.BreakerOpen)
	// Output: hits=2 misses=1 stores=1 breaker_open=false
}

// A write that names the cache groups it changed (RFC 9875) invalidates
// them for every instance: here the product pages, whatever their URLs.
func ExampleTransport_RoundTrip_cacheGroups() {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.Header().Set("Cache-Group-Invalidation", `"products"`)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Cache-Groups", `"products"`)
		fmt.Fprint(w, `{"id":42}`)
	}))
	defer api.Close()
	transport, done := exampleCache(roundtrip.Options{})
	defer done()
	client := &http.Client{Transport: transport}
	ctx := context.Background()

	get(ctx, client, api.URL+"/products/42")
	get(ctx, client, api.URL+"/products/42")
	req, _ := http.NewRequest(http.MethodPost, api.URL+"/orders", strings.NewReader(`{"id":42}`))
	resp, err := client.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	get(ctx, client, api.URL+"/products/42")
	// Output:
	// {"id":42} fleetcache; fwd=uri-miss; fwd-status=200; stored
	// {"id":42} fleetcache; hit
	// {"id":42} fleetcache; fwd=uri-miss; fwd-status=200; stored
}

// Key is the store's name for a URL, for calls the transport does not
// make itself, such as a soft purge.
func ExampleTransport_Key() {
	transport, done := exampleCache(roundtrip.Options{})
	defer done()
	key, err := transport.Key("HTTP://Shop.Example:80/products/%34%32")
	fmt.Println(key, err)
	// Output: http://shop.example/products/42 <nil>
}
