package examples_test

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

// newCache returns a middleware cache over an in-process Redis, and a
// function that ends both. In production: rediscache.Open with your Redis
// URL, and one prefix per service.
func newCache() (*middleware.Cache, func()) {
	redis := miniredis.NewMiniRedis()
	if err := redis.Start(); err != nil {
		log.Fatal(err)
	}
	store, err := rediscache.Open(context.Background(), "redis://"+redis.Addr(), rediscache.Options{Prefix: "catalog:"})
	if err != nil {
		log.Fatal(err)
	}
	cache := middleware.NewCache(store, middleware.Options{})
	return cache, func() {
		cache.Close()
		store.Close()
		redis.Close()
	}
}

// show sends GET path to the server twice and prints what came back each
// time: the body and what the cache did (Cache-Status without its ttl,
// which counts down with the clock).
func show(srv *httptest.Server, path string) {
	for range 2 {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%s | %s\n", body, withoutTTL(resp.Header.Get("Cache-Status")))
	}
}

func withoutTTL(cacheStatus string) string {
	var kept []string
	for _, p := range strings.Split(cacheStatus, "; ") {
		if !strings.HasPrefix(p, "ttl=") {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, "; ")
}

// product is the expensive handler every example serves: it counts its
// runs.
type product struct{ runs int }

func (p *product) serve(w http.ResponseWriter, id string) {
	p.runs++
	w.Header().Set("Cache-Control", "max-age=60")
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"id":%q}`, id)
}
