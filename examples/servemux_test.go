package examples_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
)

// net/http's ServeMux: wrap the mux as a whole. Path values still reach
// the handler: it sees the caller's request.
func Example_serveMux() {
	cache, done := newCache()
	defer done()
	var p product
	mux := http.NewServeMux()
	mux.HandleFunc("GET /products/{id}", func(w http.ResponseWriter, r *http.Request) {
		p.serve(w, r.PathValue("id"))
	})
	srv := httptest.NewServer(cache.Wrap(mux))
	defer srv.Close()

	show(srv, "/products/42")
	fmt.Println("handler runs:", p.runs)
	// Output:
	// {"id":"42"} | fleetcache; fwd=uri-miss; fwd-status=200; stored
	// {"id":"42"} | fleetcache; hit
	// handler runs: 1
}
