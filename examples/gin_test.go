package examples_test

import (
	"fmt"
	"net/http/httptest"

	"github.com/gin-gonic/gin"
)

// gin: a gin.Engine is an http.Handler; wrap it as a whole. gin's own
// middleware keeps working inside, and gin's Context.Writer flushes
// through the cache to the caller.
func Example_gin() {
	gin.SetMode(gin.ReleaseMode)
	cache, done := newCache()
	defer done()
	var p product
	engine := gin.New()
	engine.GET("/products/:id", func(c *gin.Context) {
		p.serve(c.Writer, c.Param("id"))
	})
	srv := httptest.NewServer(cache.Wrap(engine))
	defer srv.Close()

	show(srv, "/products/42")
	fmt.Println("handler runs:", p.runs)
	// Output:
	// {"id":"42"} | fleetcache; fwd=uri-miss; fwd-status=200; stored
	// {"id":"42"} | fleetcache; hit
	// handler runs: 1
}
