package proxy_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/fleetcache/fleetcache/internal/proxy"
)

// Two proxies in front of one origin share a cache: the first starts an
// embedded Redis, the second is pointed at it, and what one fetched the
// other serves. They listen on different ports, so clients name them by
// different hosts: UpstreamHost makes both key entries (and address the
// upstream) by the upstream's host instead.
func ExampleStart() {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "hello")
	}))
	defer origin.Close()

	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	first, err := proxy.Start(ctx, proxy.Config{Upstream: origin.URL, UpstreamHost: true, Listen: "127.0.0.1:0", Logger: quiet})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer first.Shutdown(ctx) // deferred first, so it runs last: it owns the embedded Redis
	second, err := proxy.Start(ctx, proxy.Config{Upstream: origin.URL, UpstreamHost: true, Listen: "127.0.0.1:0", Redis: first.RedisURL(), Logger: quiet})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer second.Shutdown(ctx)

	for _, p := range []*proxy.Server{first, second} {
		resp, err := http.Get("http://" + p.Addr() + "/greeting")
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// The ttl parameter counts down; leave it out of the output.
		status, _, _ := strings.Cut(resp.Header.Get("Cache-Status"), "; ttl=")
		fmt.Printf("%s  Cache-Status: %s\n", body, status)
	}
	// Output:
	// hello  Cache-Status: fleetcache; fwd=uri-miss; fwd-status=200; stored
	// hello  Cache-Status: fleetcache; hit
}
