package examples_test

import (
	"fmt"
	"net/http/httptest"

	"github.com/labstack/echo/v4"
)

// echo: an echo.Echo is an http.Handler; wrap it as a whole. (Through
// echo.WrapMiddleware the handler would run on echo's pooled Context, which
// echo reuses once the request is answered.)
func Example_echo() {
	cache, done := newCache()
	defer done()
	var p product
	e := echo.New()
	e.HideBanner = true
	e.GET("/products/:id", func(c echo.Context) error {
		p.serve(c.Response(), c.Param("id"))
		return nil
	})
	srv := httptest.NewServer(cache.Wrap(e))
	defer srv.Close()

	show(srv, "/products/42")
	fmt.Println("handler runs:", p.runs)
	// Output:
	// {"id":"42"} | fleetcache; fwd=uri-miss; fwd-status=200; stored
	// {"id":"42"} | fleetcache; hit
	// handler runs: 1
}
