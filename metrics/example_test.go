package metrics_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetcache/fleetcache/metrics"
	"github.com/fleetcache/fleetcache/rediscache"
	"github.com/fleetcache/fleetcache/roundtrip"
)

func ExampleNew() {
	mr, err := miniredis.Run() // your Redis
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "hello")
	}))
	defer origin.Close()
	store, err := rediscache.Open(context.Background(), "redis://"+mr.Addr(), rediscache.Options{Prefix: "example:"})
	if err != nil {
		panic(err)
	}
	defer store.Close()

	m := metrics.New(store, metrics.Options{})
	transport := roundtrip.New(store, roundtrip.Options{Observer: m})
	defer transport.Close()
	m.Watch(transport)
	registry := prometheus.NewRegistry() // or prometheus.DefaultRegisterer
	registry.MustRegister(m)
	// http.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))

	client := &http.Client{Transport: transport}
	for range 3 {
		resp, err := client.Get(origin.URL)
		if err != nil {
			panic(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	families, _ := registry.Gather()
	for _, f := range families {
		if f.GetName() == "fleetcache_requests_total" {
			for _, s := range f.GetMetric() {
				fmt.Println(f.GetName(), s.GetLabel()[1].GetValue(), s.GetCounter().GetValue())
			}
		}
	}
	// Output:
	// fleetcache_requests_total bypass 0
	// fleetcache_requests_total coalesced 0
	// fleetcache_requests_total hit 2
	// fleetcache_requests_total miss 1
	// fleetcache_requests_total revalidated 0
	// fleetcache_requests_total stale 0
}
