package proxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/internal/poll"

	"go.uber.org/goleak"

	"github.com/fleetcache/fleetcache/internal/proxy"
	"github.com/fleetcache/fleetcache/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// origin is a small upstream whose answers each test can count.
type origin struct {
	*httptest.Server
	requests    atomic.Int64
	notModified atomic.Int64
	version     atomic.Int64 // bumped by a POST to /item

	mu   sync.Mutex
	last *http.Request // the last request received, as the upstream saw it
}

func newOrigin(t *testing.T) *origin {
	o := &origin{}
	mux := http.NewServeMux()
	mux.HandleFunc("/fresh", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "fresh #%d", o.requests.Load())
	})
	mux.HandleFunc("/etag", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			o.notModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, "validated body")
	})
	mux.HandleFunc("GET /item", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "item v%d", o.version.Load())
	})
	mux.HandleFunc("POST /item", func(w http.ResponseWriter, r *http.Request) {
		o.version.Add(1)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Origin", "yes")
		w.WriteHeader(http.StatusTeapot)
		fmt.Fprintf(w, "%s %s host=%s xff=%s hop=%q via=%q", r.Method, r.URL.RequestURI(), r.Host,
			r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Hop"), r.Header.Values("Via"))
	})
	mux.HandleFunc("/vhost", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "vhost %s", r.Host)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write(bigBody)
	})
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.requests.Add(1)
		o.mu.Lock()
		o.last = r.Clone(context.Background())
		o.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(o.Close)
	return o
}

var bigBody = bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB

func testLogger(t *testing.T) *slog.Logger {
	// Debug level, so the per-request log line is exercised too.
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// eachRedis runs test once with the sidecar's embedded Redis (redisURL "",
// the default) and once with a real redis-server.
func eachRedis(t *testing.T, test func(t *testing.T, redisURL string)) {
	t.Run("embedded", func(t *testing.T) { test(t, "") })
	t.Run("redis-server", func(t *testing.T) { test(t, redistest.RealServer.Start(t).URL) })
}

// startProxy starts a proxy on a free loopback port, stopped at cleanup.
func startProxy(t *testing.T, cfg proxy.Config) *proxy.Server {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	s, err := proxy.Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return s
}

type answer struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, method, url string, header http.Header) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if h := header.Get("Host"); h != "" {
		req.Host = h // net/http sends req.Host, not a Host field of req.Header
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return answer{resp.StatusCode, resp.Header, string(body)}
}

func get(t *testing.T, url string) answer { return do(t, http.MethodGet, url, nil) }

func isHit(a answer) bool { return strings.Contains(a.header.Get("Cache-Status"), "; hit") }

func TestProxy_RFC9111_4_FreshResponseServedFromCache(t *testing.T) {
	eachRedis(t, func(t *testing.T, redisURL string) {
		o := newOrigin(t)
		p := startProxy(t, proxy.Config{Upstream: o.URL, Redis: redisURL})

		first := get(t, "http://"+p.Addr()+"/fresh")
		if first.status != http.StatusOK || isHit(first) {
			t.Fatalf("first GET: status %d, Cache-Status %q; want 200 and a miss", first.status, first.header.Get("Cache-Status"))
		}
		second := get(t, "http://"+p.Addr()+"/fresh")
		if !isHit(second) {
			t.Errorf("second GET: Cache-Status %q, want a hit", second.header.Get("Cache-Status"))
		}
		if second.header.Get("Age") == "" {
			t.Error("second GET: no Age header on a response served from the cache")
		}
		if second.body != first.body {
			t.Errorf("second GET body %q, want the stored %q", second.body, first.body)
		}
		if n := o.requests.Load(); n != 1 {
			t.Errorf("origin saw %d requests, want 1", n)
		}
		if s := p.Stats(); s.Hits != 1 {
			t.Errorf("Stats().Hits = %d, want 1", s.Hits)
		}
	})
}

func TestProxy_RFC9111_4_3_NoCacheRevalidatedWith304(t *testing.T) {
	eachRedis(t, func(t *testing.T, redisURL string) {
		o := newOrigin(t)
		p := startProxy(t, proxy.Config{Upstream: o.URL, Redis: redisURL})

		for i := range 3 {
			a := get(t, "http://"+p.Addr()+"/etag")
			if a.status != http.StatusOK || a.body != "validated body" {
				t.Fatalf("GET #%d: %d %q, want 200 with the stored body", i+1, a.status, a.body)
			}
		}
		if n := o.notModified.Load(); n != 2 {
			t.Errorf("origin answered %d revalidations with 304, want 2", n)
		}
		if s := p.Stats(); s.Revalidations != 2 || s.NotModified != 2 {
			t.Errorf("Stats() revalidations %d, not modified %d; want 2 and 2", s.Revalidations, s.NotModified)
		}
	})
}

func TestProxy_RFC9111_4_3_2_ClientConditionalGets304(t *testing.T) {
	eachRedis(t, func(t *testing.T, redisURL string) {
		o := newOrigin(t)
		p := startProxy(t, proxy.Config{Upstream: o.URL, Redis: redisURL})

		get(t, "http://"+p.Addr()+"/etag")
		a := do(t, http.MethodGet, "http://"+p.Addr()+"/etag", http.Header{"If-None-Match": {`"v1"`}})
		if a.status != http.StatusNotModified || a.body != "" {
			t.Errorf("conditional GET: %d %q, want 304 with no body", a.status, a.body)
		}
	})
}

func TestProxy_RFC9111_4_4_UnsafeMethodInvalidates(t *testing.T) {
	eachRedis(t, func(t *testing.T, redisURL string) {
		o := newOrigin(t)
		p := startProxy(t, proxy.Config{Upstream: o.URL, Redis: redisURL})
		url := "http://" + p.Addr() + "/item"

		get(t, url)
		if a := get(t, url); !isHit(a) || a.body != "item v0" {
			t.Fatalf("second GET: %q, Cache-Status %q; want the cached v0", a.body, a.header.Get("Cache-Status"))
		}
		if a := do(t, http.MethodPost, url, nil); a.status != http.StatusNoContent {
			t.Fatalf("POST: status %d, want 204", a.status)
		}
		a := get(t, url)
		if isHit(a) || a.body != "item v1" {
			t.Errorf("GET after POST: %q, Cache-Status %q; want a miss returning v1", a.body, a.header.Get("Cache-Status"))
		}
	})
}

func TestProxy_TwoProxiesShareOneRedis(t *testing.T) {
	eachRedis(t, func(t *testing.T, redisURL string) {
		o := newOrigin(t)
		a := startProxy(t, proxy.Config{Upstream: o.URL, Redis: redisURL}) // starts the embedded Redis
		b := startProxy(t, proxy.Config{Upstream: o.URL, Redis: a.RedisURL()})

		// Each client reaches its own sidecar under the same name, as in a
		// fleet whose sidecars all listen on the same port.
		host := http.Header{"Host": {"localhost:8080"}}
		if r := do(t, http.MethodGet, "http://"+a.Addr()+"/fresh", host); isHit(r) {
			t.Fatalf("GET through the first proxy: Cache-Status %q, want a miss", r.header.Get("Cache-Status"))
		}
		r := do(t, http.MethodGet, "http://"+b.Addr()+"/fresh", host)
		if !isHit(r) {
			t.Errorf("GET through the second proxy: Cache-Status %q, want a hit on the first one's entry", r.header.Get("Cache-Status"))
		}
		if n := o.requests.Load(); n != 1 {
			t.Errorf("origin saw %d requests, want 1", n)
		}
	})
}

func TestProxy_ForwardsFaithfully(t *testing.T) {
	eachRedis(t, func(t *testing.T, redisURL string) {
		o := newOrigin(t)
		tests := []struct {
			name         string
			upstreamHost bool
			wantHost     func(proxyAddr string) string
		}{
			{"client Host by default", false, func(addr string) string { return addr }},
			{"upstream Host when asked", true, func(string) string { return strings.TrimPrefix(o.URL, "http://") }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				p := startProxy(t, proxy.Config{Upstream: o.URL, Redis: redisURL, UpstreamHost: tt.upstreamHost})
				// X-Hop is named in Connection, so it is hop-by-hop (RFC 9110
				// §7.6.1) and must not reach the upstream.
				// A load balancer in front started the X-Forwarded-For chain
				// and named itself in Via: both are kept and extended.
				a := do(t, http.MethodPut, "http://"+p.Addr()+"/echo?q=1&q=2", http.Header{
					"Connection": {"X-Hop"}, "X-Hop": {"secret"},
					"X-Forwarded-For": {"203.0.113.7"}, "Via": {"1.1 lb"},
				})
				want := fmt.Sprintf(`PUT /echo?q=1&q=2 host=%s xff=203.0.113.7, 127.0.0.1 hop="" via=["1.1 lb" "1.1 fleetcache"]`, tt.wantHost(p.Addr()))
				if a.status != http.StatusTeapot || a.body != want || a.header.Get("X-Origin") != "yes" {
					t.Errorf("got %d %q (X-Origin %q), want 418 %q (yes)", a.status, a.body, a.header.Get("X-Origin"), want)
				}
			})
		}
	})
}

func TestProxy_UpstreamsSharingARedisNeverServeEachOther(t *testing.T) {
	redistest.Run(t, redistest.Backends, func(t *testing.T, r *redistest.Redis) {
		redisURL := r.URL
		upstream := func(name string) *httptest.Server {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=60")
				fmt.Fprint(w, "I am "+name)
			}))
			t.Cleanup(srv.Close)
			return srv
		}
		upA, upB := upstream("A"), upstream("B")
		a := startProxy(t, proxy.Config{Upstream: upA.URL, Redis: redisURL})
		b := startProxy(t, proxy.Config{Upstream: upB.URL, Redis: redisURL})
		a2 := startProxy(t, proxy.Config{Upstream: upA.URL, Redis: redisURL})
		// Every client calls its sidecar by the same name, as in a fleet.
		get := func(p *proxy.Server) answer {
			return do(t, http.MethodGet, "http://"+p.Addr()+"/item", http.Header{"Host": {"localhost:8080"}})
		}
		if got := get(a); got.body != "I am A" {
			t.Fatalf("A: %q", got.body)
		}
		if got := get(b); got.body != "I am B" || isHit(got) {
			t.Errorf("B got %q (%s): another upstream's response", got.body, got.header.Get("Cache-Status"))
		}
		if got := get(a2); got.body != "I am A" || !isHit(got) {
			t.Errorf("a second proxy of A got %q (%s), want A's entry from the shared cache", got.body, got.header.Get("Cache-Status"))
		}
	})
}

func TestProxy_RFC9111_2_VirtualHostsCachedApart(t *testing.T) {
	eachRedis(t, func(t *testing.T, redisURL string) {
		o := newOrigin(t)
		tests := []struct {
			name         string
			upstreamHost bool
			wantB        string // what a client asking for b.test gets after one asked for a.test
		}{
			// The client's Host reaches the upstream, and is part of the key.
			{"client Host", false, "vhost b.test"},
			// Every request names the upstream's host: one resource, one entry.
			{"upstream Host", true, "vhost " + strings.TrimPrefix(o.URL, "http://")},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				p := startProxy(t, proxy.Config{Upstream: o.URL, Redis: redisURL, UpstreamHost: tt.upstreamHost})
				vhost := func(host string) answer {
					return do(t, http.MethodGet, "http://"+p.Addr()+"/vhost", http.Header{"Host": {host}})
				}
				a := vhost("a.test")
				if b := vhost("b.test"); b.body != tt.wantB {
					t.Errorf("b.test after a.test: %q, want %q", b.body, tt.wantB)
				}
				if again := vhost("a.test"); !isHit(again) || again.body != a.body {
					t.Errorf("a.test again: %q (Cache-Status %q), want the stored %q", again.body, again.header.Get("Cache-Status"), a.body)
				}
			})
		}
	})
}

func TestProxy_LargeBodyStreamsThroughUncached(t *testing.T) {
	eachRedis(t, func(t *testing.T, redisURL string) {
		o := newOrigin(t)
		p := startProxy(t, proxy.Config{Upstream: o.URL, Redis: redisURL, MaxEntryBytes: 64 << 10})

		for i := range 2 {
			a := get(t, "http://"+p.Addr()+"/big")
			if a.body != string(bigBody) {
				t.Fatalf("GET #%d: body of %d bytes differs from the origin's %d", i+1, len(a.body), len(bigBody))
			}
			if isHit(a) {
				t.Errorf("GET #%d: a body larger than MaxEntryBytes was served from the cache", i+1)
			}
		}
	})
}

func TestProxy_UpstreamUnreachableIs502(t *testing.T) {
	p := startProxy(t, proxy.Config{Upstream: "http://" + closedAddr(t)})

	a := get(t, "http://"+p.Addr()+"/anything")
	if a.status != http.StatusBadGateway || a.body != "fleetcache: upstream unreachable\n" ||
		a.header.Get("Cache-Status") != "fleetcache; detail=upstream-unreachable" ||
		!strings.HasPrefix(a.header.Get("Content-Type"), "text/plain") {
		t.Errorf("got %d %q (%s), want 502 with a short text body", a.status, a.body, a.header.Get("Content-Type"))
	}
}

func TestProxy_RedisFailureServesUncached(t *testing.T) {
	redistest.Run(t, redistest.Backends, func(t *testing.T, r *redistest.Redis) {
		o := newOrigin(t)
		p := startProxy(t, proxy.Config{Upstream: o.URL, Redis: r.URL})

		get(t, "http://"+p.Addr()+"/fresh")
		if a := get(t, "http://"+p.Addr()+"/fresh"); !isHit(a) {
			t.Fatalf("second GET: Cache-Status %q, want a hit", a.header.Get("Cache-Status"))
		}
		r.Kill(t)
		for i := range 3 {
			a := get(t, "http://"+p.Addr()+"/fresh")
			if a.status != http.StatusOK || isHit(a) {
				t.Errorf("GET #%d with Redis down: %d, Cache-Status %q; want 200 from the origin", i+1, a.status, a.header.Get("Cache-Status"))
			}
		}
		if n := o.requests.Load(); n != 4 {
			t.Errorf("origin saw %d requests, want 4", n)
		}
	})
}

func TestProxy_HealthAndStats(t *testing.T) {
	eachRedis(t, func(t *testing.T, redisURL string) {
		o := newOrigin(t)
		p := startProxy(t, proxy.Config{Upstream: o.URL, Redis: redisURL, HealthPath: "/_health"})

		if a := get(t, "http://"+p.Addr()+"/_health"); a.status != http.StatusOK || a.body != "ok\n" {
			t.Errorf("health: %d %q, want 200 \"ok\\n\"", a.status, a.body)
		}
		if a := do(t, http.MethodPost, "http://"+p.Addr()+"/_health", nil); a.status != http.StatusMethodNotAllowed {
			t.Errorf("POST to health: %d, want 405", a.status)
		}
		get(t, "http://"+p.Addr()+"/fresh")
		get(t, "http://"+p.Addr()+"/fresh")
		a := get(t, "http://"+p.Addr()+"/_health/stats")
		var doc struct {
			Transport struct{ Hits, Misses int64 }
		}
		if err := json.Unmarshal([]byte(a.body), &doc); err != nil {
			t.Fatalf("stats: %v in %q", err, a.body)
		}
		if doc.Transport.Hits != 1 || doc.Transport.Misses != 1 {
			t.Errorf("stats: hits %d, misses %d; want 1 and 1 in %s", doc.Transport.Hits, doc.Transport.Misses, a.body)
		}
		if n := o.requests.Load(); n != 1 {
			t.Errorf("origin saw %d requests, want only the one for /fresh", n)
		}
	})
}

func TestProxy_ShutdownLetsInFlightRequestsFinish(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
		io.WriteString(w, "finished")
	}))
	defer slow.Close()
	s, err := proxy.Start(t.Context(), proxy.Config{Upstream: slow.URL, Listen: "127.0.0.1:0", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := http.Get("http://" + s.Addr() + "/slow")
		if err != nil {
			got <- answer{body: err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- answer{status: resp.StatusCode, body: string(b)}
	}()
	<-arrived
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	// New connections are refused once Shutdown has closed the listener.
	poll.Until(t, "the listener to refuse connections after Shutdown", 5*time.Second, func() bool {
		c, err := net.Dial("tcp", s.Addr())
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	close(release)
	if a := <-got; a.status != http.StatusOK || a.body != "finished" {
		t.Errorf("in-flight request: %d %q, want 200 \"finished\"", a.status, a.body)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

func TestStart_RejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  proxy.Config
		want string
	}{
		{"no upstream", proxy.Config{}, "no upstream"},
		{"upstream without scheme", proxy.Config{Upstream: "example.com"}, "not an http:// or https:// URL"},
		{"upstream with another scheme", proxy.Config{Upstream: "ftp://example.com"}, "not an http:// or https:// URL"},
		{"upstream without host", proxy.Config{Upstream: "http:///path"}, "not an http:// or https:// URL"},
		{"upstream with query", proxy.Config{Upstream: "http://example.com/?a=b"}, "not an http:// or https:// URL"},
		{"unparsable upstream", proxy.Config{Upstream: "http://[::1"}, "upstream"},
		{"negative max entries", proxy.Config{Upstream: "http://example.com", MaxEntries: -1}, "max entries -1"},
		{"negative max entry bytes", proxy.Config{Upstream: "http://example.com", MaxEntryBytes: -1}, "max entry bytes -1"},
		{"relative health path", proxy.Config{Upstream: "http://example.com", HealthPath: "health"}, "health path"},
		{"unparsable redis url", proxy.Config{Upstream: "http://example.com", Redis: "postgres://db"}, "redis"},
		{"bad prefix", proxy.Config{Upstream: "http://example.com", Prefix: "has space"}, "prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Listen = "127.0.0.1:0"
			tt.cfg.Logger = testLogger(t)
			s, err := proxy.Start(t.Context(), tt.cfg)
			if err == nil {
				s.Shutdown(context.Background())
				t.Fatal("Start accepted the configuration")
			}
			if !errors.Is(err, proxy.ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Start: %v; want an ErrConfig mentioning %q", err, tt.want)
			}
		})
	}
}

func TestStart_UnreachableRedisServesUncached(t *testing.T) {
	o := newOrigin(t)
	var logs bytes.Buffer
	p := startProxy(t, proxy.Config{
		Upstream: o.URL,
		Redis:    "redis://:secret@" + closedAddr(t),
		Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
	})
	for range 2 {
		if a := get(t, "http://"+p.Addr()+"/fresh"); a.status != http.StatusOK || isHit(a) {
			t.Fatalf("got %d, Cache-Status %q; want 200 from the upstream", a.status, a.header.Get("Cache-Status"))
		}
	}
	if got := o.requests.Load(); got != 2 {
		t.Errorf("upstream saw %d requests, want 2 (nothing cached)", got)
	}
	if !strings.Contains(logs.String(), "redis does not answer") || strings.Contains(logs.String(), "secret") {
		t.Errorf("want one warning naming Redis without its password; logs:\n%s", logs.String())
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
