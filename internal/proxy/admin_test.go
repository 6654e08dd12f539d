package proxy_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/internal/proxy"
	"github.com/fleetcache/fleetcache/policy"
	"github.com/fleetcache/fleetcache/rules"
)

func TestProxy_AdminPathAnswersHealthStatsAndMetrics(t *testing.T) {
	o := newOrigin(t)
	p := startProxy(t, proxy.Config{Upstream: o.URL, Prefix: "adm:"})
	base := "http://" + p.Addr()
	get(t, base+"/fresh")
	get(t, base+"/fresh")

	if a := get(t, base+"/.fleetcache/health"); a.status != http.StatusOK || a.body != "ok\n" {
		t.Errorf("health: %d %q", a.status, a.body)
	}
	for _, path := range []string{"/.fleetcache/stats", "/.fleetcache/health/stats"} {
		a := get(t, base+path)
		var doc struct{ Transport struct{ Hits, Misses int64 } }
		if err := json.Unmarshal([]byte(a.body), &doc); err != nil || doc.Transport.Hits != 1 || doc.Transport.Misses != 1 {
			t.Errorf("%s: %d %q (%v), want hits 1 and misses 1", path, a.status, a.body, err)
		}
	}
	a := get(t, base+"/.fleetcache/metrics")
	for _, want := range []string{
		`fleetcache_requests_total{cache="adm:",outcome="hit"} 1`,
		`fleetcache_requests_total{cache="adm:",outcome="miss"} 1`,
		`fleetcache_origin_requests_total{cache="adm:",code="2xx"} 1`,
		`fleetcache_store_entries{cache="adm:"} 1`,
		`fleetcache_store_call_duration_seconds_count{cache="adm:"}`,
		"go_goroutines ",
	} {
		if !strings.Contains(a.body, want) {
			t.Errorf("metrics lack %q:\n%s", want, a.body)
		}
	}
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("metrics Content-Type %q", ct)
	}
	if a := get(t, base+"/.fleetcache/nothing"); a.status != http.StatusNotFound {
		t.Errorf("an admin path that does not exist: %d, want 404", a.status)
	}
	if a := do(t, http.MethodPost, base+"/.fleetcache/stats", nil); a.status != http.StatusMethodNotAllowed {
		t.Errorf("POST stats: %d, want 405", a.status)
	}
	if n := o.requests.Load(); n != 1 {
		t.Errorf("origin saw %d requests, want only the first /fresh: admin paths never reach it", n)
	}
}

func TestProxy_AdminListenMovesTheAdminPaths(t *testing.T) {
	o := newOrigin(t)
	p := startProxy(t, proxy.Config{Upstream: o.URL, AdminListen: "127.0.0.1:0", AdminPath: "/_ops/"})
	if p.AdminAddr() == p.Addr() {
		t.Fatal("no listener of their own")
	}
	admin := "http://" + p.AdminAddr()
	if a := get(t, admin+"/_ops/health"); a.status != http.StatusOK || a.body != "ok\n" {
		t.Errorf("health on the admin listener: %d %q", a.status, a.body)
	}
	if a := get(t, admin+"/_ops/metrics"); !strings.Contains(a.body, "fleetcache_breaker_open") {
		t.Errorf("metrics on the admin listener: %d", a.status)
	}
	if a := get(t, admin+"/fresh"); a.status != http.StatusNotFound {
		t.Errorf("the admin listener proxied /fresh: %d", a.status)
	}
	if n := o.requests.Load(); n != 0 {
		t.Fatalf("origin saw %d requests", n)
	}
	// The main listener proxies the admin path like any other.
	get(t, "http://"+p.Addr()+"/_ops/health")
	if n := o.requests.Load(); n != 1 {
		t.Errorf("origin saw %d requests, want the main listener's /_ops/health", n)
	}
}

func TestProxy_RulesApply(t *testing.T) {
	set, err := rules.New(rules.Rule{Path: "/fresh", Route: policy.Route{MaxTTL: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	o := newOrigin(t)
	p := startProxy(t, proxy.Config{Upstream: o.URL, Rules: set})
	get(t, "http://"+p.Addr()+"/fresh")
	a := get(t, "http://"+p.Addr()+"/fresh")
	if cs := a.header.Get("Cache-Status"); !strings.Contains(cs, "hit; ttl=10") && !strings.Contains(cs, "hit; ttl=9") {
		t.Errorf("Cache-Status %q, want a hit capped at 10s", cs)
	}
	if cc := a.header.Get("Cache-Control"); cc != "max-age=60" {
		t.Errorf("Cache-Control %q: the client sees the origin's", cc)
	}
}

func TestProxy_BadAdminConfig(t *testing.T) {
	for _, cfg := range []proxy.Config{
		{Upstream: "http://example.com", AdminPath: "/"},
		{Upstream: "http://example.com", AdminPath: "ops"},
	} {
		_, err := proxy.Start(t.Context(), cfg)
		if !errors.Is(err, proxy.ErrConfig) || !strings.Contains(err.Error(), "admin path") {
			t.Errorf("Start(%+v) = %v, want a config error about the admin path", cfg.AdminPath, err)
		}
	}
	_, err := proxy.Start(t.Context(), proxy.Config{Upstream: "http://example.com", Listen: "127.0.0.1:0", AdminListen: "256.0.0.1:1"})
	if err == nil || !strings.Contains(err.Error(), "admin paths") {
		t.Errorf("an admin address that cannot be listened on: %v", err)
	}
}
