package middleware_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/alicebob/miniredis/v2"

	"github.com/fleetcache/fleetcache/middleware"
	"github.com/fleetcache/fleetcache/rediscache"
)

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

// Put the fleet's shared cache in front of a service's own handler: the
// first request runs it, and the next, on this replica or any other that
// shares the Redis and prefix, is served from the cache.
func ExampleNew() {
	redis := miniredis.NewMiniRedis() // in production: your Redis URL
	if err := redis.Start(); err != nil {
		log.Fatal(err)
	}
	defer redis.Close()
	store, err := rediscache.Open(context.Background(), "redis://"+redis.Addr(), rediscache.Options{Prefix: "catalog:"})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	report := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "an expensive report")
	})
	cached := middleware.New(store, middleware.Options{})
	srv := httptest.NewServer(cached(report))
	defer srv.Close()

	for range 2 {
		resp, err := http.Get(srv.URL + "/report")
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%s: %s\n", body, withoutTTL(resp.Header.Get("Cache-Status")))
	}
	// Output:
	// an expensive report: fleetcache; fwd=uri-miss; fwd-status=200; stored
	// an expensive report: fleetcache; hit
}

// A Cache that the program closes when its server has shut down, and whose
// counters it reads.
func ExampleNewCache() {
	redis := miniredis.NewMiniRedis()
	if err := redis.Start(); err != nil {
		log.Fatal(err)
	}
	defer redis.Close()
	store, err := rediscache.Open(context.Background(), "redis://"+redis.Addr(), rediscache.Options{Prefix: "catalog:"})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	cache := middleware.NewCache(store, middleware.Options{
		SharedCookies: []string{"_ga"}, // analytics: never changes the page
	})
	defer cache.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /home", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "home")
	})
	srv := httptest.NewServer(cache.Wrap(mux))
	defer srv.Close()

	for _, cookie := range []string{"_ga=GA1.2.3", "_ga=GA1.4.5", "session=ann"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/home", nil)
		req.Header.Set("Cookie", cookie)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Printf("%s: %s\n", cookie, withoutTTL(resp.Header.Get("Cache-Status")))
	}
	fmt.Println("hits:", cache.Stats().Hits)
	// Output:
	// _ga=GA1.2.3: fleetcache; fwd=uri-miss; fwd-status=200; stored
	// _ga=GA1.4.5: fleetcache; hit
	// session=ann: fleetcache; fwd=miss; fwd-status=200; detail=cookie
	// hits: 1
}
