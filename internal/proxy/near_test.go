package proxy_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/internal/proxy"
	"github.com/fleetcache/fleetcache/internal/redistest"
)

// Two sidecars with -near-bytes on one Redis: hits come from process
// memory (detail=near), and a POST through one reaches the other's
// (RFC 9111 §4.4).
func TestProxy_NearBytes_RFC9111_4_4_PostThroughOneSidecarReachesAnother(t *testing.T) {
	redisURL := redistest.RealServer.Start(t).URL
	o := newOrigin(t)
	a := startProxy(t, proxy.Config{Upstream: o.URL, Redis: redisURL, NearBytes: 1 << 20})
	b := startProxy(t, proxy.Config{Upstream: o.URL, Redis: redisURL, NearBytes: 1 << 20})
	until := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	// The cache keys on the client's Host: the callers of both name one.
	host := http.Header{"Host": {"svc.test"}}
	until("a near hit", func() bool {
		got := do(t, http.MethodGet, "http://"+a.Addr()+"/item", host)
		return got.body == "item v0" && strings.Contains(got.header.Get("Cache-Status"), "detail=near")
	})
	if got := do(t, http.MethodPost, "http://"+b.Addr()+"/item", host); got.status != http.StatusNoContent {
		t.Fatalf("POST: %d", got.status)
	}
	until("the POST to reach the other sidecar", func() bool {
		return do(t, http.MethodGet, "http://"+a.Addr()+"/item", host).body == "item v1"
	})
}
