package roundtrip_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/alicebob/miniredis/v2"

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

// withoutTTL drops the ttl parameter from a Cache-Status value: it counts
// down with the wall clock, which would make the examples' output vary.
func withoutTTL(cacheStatus string) string {
	var kept []string
	for _, p := range strings.Split(cacheStatus, "; ") {
		if !strings.HasPrefix(p, "ttl=") {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, "; ")
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
		fmt.Println(string(body), withoutTTL(resp.Header.Get("Cache-Status")))
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
		fmt.Println(resp.StatusCode, string(body), withoutTTL(resp.Header.Get("Cache-Status")))
	}
	get("")
	get("no-cache")
	fmt.Println("revalidated with 304:", transport.Stats().NotModified)
	// Output:
	// 200 {"id":42} fleetcache; fwd=uri-miss; fwd-status=200; stored
	// 200 {"id":42} fleetcache; fwd=request; fwd-status=304; stored
	// revalidated with 304: 1
}
