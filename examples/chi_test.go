package examples_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/go-chi/chi/v5"
)

// chi: wrap the router as a whole, rather than r.Use: chi recycles its
// route context once its ServeHTTP returns, and the cache may call the
// handler after that (a stale-while-revalidate refresh). Wrapped whole,
// chi routes each call afresh.
func Example_chi() {
	cache, done := newCache()
	defer done()
	var p product
	r := chi.NewRouter()
	r.Get("/products/{id}", func(w http.ResponseWriter, r *http.Request) {
		p.serve(w, chi.URLParam(r, "id"))
	})
	srv := httptest.NewServer(cache.Wrap(r))
	defer srv.Close()

	show(srv, "/products/42")
	fmt.Println("handler runs:", p.runs)
	// Output:
	// {"id":"42"} | fleetcache; fwd=uri-miss; fwd-status=200; stored
	// {"id":"42"} | fleetcache; hit
	// handler runs: 1
}
