package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/internal/proxy"
	"github.com/fleetcache/fleetcache/policy"
)

// The sidecar against hostile and slow clients.

// reflector is an upstream whose cacheable answer reflects what the request
// carried: its body, the override fields, and the request target as the
// upstream saw it.
func reflector(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "%s body=%q", r.RequestURI, body)
		for _, name := range policy.OverrideFields() {
			if v := r.Header.Get(name); v != "" {
				fmt.Fprintf(w, " %s=%s", name, v)
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// RFC 9110 §9.3.1: an upstream may read content in a GET; the answer is not
// the URL's and must not be served to the next user.
func TestProxy_RFC9110_9_3_1_GetWithBodyIsNotCached(t *testing.T) {
	p := startProxy(t, proxy.Config{Upstream: reflector(t).URL})
	url := "http://" + p.Addr() + "/fat"

	req, _ := http.NewRequest(http.MethodGet, url, strings.NewReader("evil"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if cs := resp.Header.Get("Cache-Status"); cs != "fleetcache; fwd=bypass; fwd-status=200; detail=body" {
		t.Errorf("GET with a body: Cache-Status %q, want a bypass", cs)
	}
	if want := `/fat body="evil"`; string(b) != want {
		t.Errorf("GET with a body: %q, want %q", b, want)
	}
	if a := get(t, url); a.body != `/fat body=""` {
		t.Errorf("the next user got %q (%s), want the URL's own answer", a.body, a.header.Get("Cache-Status"))
	}
}

// Fields that frameworks read as another method, path, scheme or port do
// not reach the upstream by default, so that no such answer is cached for
// the URL.
func TestProxy_OverrideHeadersDroppedByDefault(t *testing.T) {
	p := startProxy(t, proxy.Config{Upstream: reflector(t).URL})
	for i, kv := range [][2]string{
		{"X-Original-URL", "/admin"},
		{"X-Rewrite-URL", "/admin"},
		{"X-HTTP-Method-Override", "DELETE"},
		{"X-Forwarded-Scheme", "http"},
		{"X-Forwarded-Port", "1"},
	} {
		url := fmt.Sprintf("http://%s/page/%d", p.Addr(), i)
		a := do(t, http.MethodGet, url, http.Header{kv[0]: {kv[1]}})
		want := fmt.Sprintf(`/page/%d body=""`, i)
		if a.body != want {
			t.Errorf("%s reached the upstream: %q", kv[0], a.body)
		}
		if next := get(t, url); next.body != want || !isHit(next) {
			t.Errorf("after %s, the next user got %q (%s), want the stored %q", kv[0], next.body, next.header.Get("Cache-Status"), want)
		}
	}
}

// With PassOverrideHeaders they reach the upstream, and a request that
// carries one bypasses the cache.
func TestProxy_PassOverrideHeadersBypassesTheCache(t *testing.T) {
	p := startProxy(t, proxy.Config{Upstream: reflector(t).URL, PassOverrideHeaders: true})
	url := "http://" + p.Addr() + "/page"
	a := do(t, http.MethodGet, url, http.Header{"X-Original-Url": {"/admin"}})
	if a.body != `/page body="" X-Original-Url=/admin` || a.header.Get("Cache-Status") != "fleetcache; fwd=bypass; fwd-status=200; detail=override" {
		t.Errorf("with the field passed: %q (%s), want it at the upstream and a bypass", a.body, a.header.Get("Cache-Status"))
	}
	if next := get(t, url); next.body != `/page body=""` || isHit(next) {
		t.Errorf("the next user got %q (%s), want a miss of its own", next.body, next.header.Get("Cache-Status"))
	}
}

// rawGet sends a request line with target as it is, bypassing any client
// normalisation, and returns the status and body.
func rawGet(t *testing.T, addr, target string) (int, string) {
	t.Helper()
	return rawDo(t, addr, http.MethodGet, target, nil)
}

// rawDo is rawGet for any method, with header.
func rawDo(t *testing.T, addr, method, target string, header http.Header) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, target, addr)
	header.Write(c)
	fmt.Fprint(c, "\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// RFC 3986 §5.2.4: dot segments are resolved before the path is joined to
// the upstream's base path, and a path that would leave it is refused,
// whatever its encoding.
func TestProxy_RFC3986_5_2_4_DotSegments(t *testing.T) {
	p := startProxy(t, proxy.Config{Upstream: reflector(t).URL + "/api"})
	tests := []struct {
		target string
		status int
		seen   string // the request target at the upstream
	}{
		{"/../admin", 400, ""},
		{"/%2e%2e/admin", 400, ""},
		{"/%2E%2e/admin", 400, ""},
		{"/..%2fadmin", 400, ""},
		{"/..%2Fadmin", 400, ""},
		{"/..%5cadmin", 400, ""},
		{`/..\admin`, 400, ""},
		{"/..;/admin", 400, ""},
		{"/%252e%252e/admin", 400, ""},
		{"/a/../../admin", 400, ""},
		{"/a/b/../c", 200, "/api/a/c"},
		{"/a/./b/.", 200, "/api/a/b/"},
		{"/a/%2e%2e/b", 200, "/api/b"},
		{"/a%2fb", 200, "/api/a%2Fb"}, // the escaping the cache keys with (RFC 3986 §6.2.2.1)
		{"/a/..", 200, "/api/"},
		{"/index.html?x=/../y", 200, "/api/index.html?x=/../y"},
	}
	for _, tt := range tests {
		status, body := rawGet(t, p.Addr(), tt.target)
		if status != tt.status {
			t.Errorf("%s: status %d (%q), want %d", tt.target, status, body, tt.status)
			continue
		}
		if tt.seen != "" && !strings.HasPrefix(body, tt.seen+" ") {
			t.Errorf("%s: the upstream saw %q, want %q", tt.target, body, tt.seen)
		}
	}
}

// endless is an upstream that streams an uncacheable body until its client
// goes, and then closes gone.
func endless(t *testing.T) (url string, gone <-chan struct{}) {
	ch := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer once.Do(func() { close(ch) })
		w.Header().Set("Cache-Control", "no-store")
		chunk := []byte(strings.Repeat("x", 32<<10))
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, ch
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal(what)
	}
}

// A client that stops reading is dropped after the write timeout, and the
// upstream request it held goes with it.
func TestProxy_ClientThatStopsReadingIsDropped(t *testing.T) {
	url, gone := endless(t)
	p := startProxy(t, proxy.Config{Upstream: url, WriteTimeout: 100 * time.Millisecond})
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n") // and read nothing
	waitClosed(t, gone, "the proxy still writes to a client that reads nothing")
}

// A client that reads, but not to the end, cannot keep a response past the
// response timeout.
func TestProxy_ResponseTimeoutBoundsAResponse(t *testing.T) {
	url, gone := endless(t)
	p := startProxy(t, proxy.Config{Upstream: url, ResponseTimeout: 300 * time.Millisecond})
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Errorf("the response did not end before the client's own deadline: %v", err)
	}
	waitClosed(t, gone, "the upstream request outlived the response timeout")
}

// A client that sends a header but not the body it announced, or not even
// the whole header, is answered or dropped once the read timeouts pass.
func TestProxy_ReadTimeoutsDropSlowSenders(t *testing.T) {
	tests := []struct {
		name   string
		cfg    proxy.Config
		send   string
		status string // the answer before the connection closes, if any
	}{
		{"body never sent", proxy.Config{ReadTimeout: 200 * time.Millisecond}, "PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n", "HTTP/1.1 408 Request Timeout"},
		{"header never finished", proxy.Config{ReadHeaderTimeout: 200 * time.Millisecond}, "GET / HTTP/1.1\r\nHost: x\r\n", ""},
		{"keep-alive connection left idle", proxy.Config{IdleTimeout: 200 * time.Millisecond}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOrigin(t)
			tt.cfg.Upstream = o.URL
			p := startProxy(t, tt.cfg)
			c, err := net.Dial("tcp", p.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			br := bufio.NewReader(c)
			if tt.send == "" {
				fmt.Fprintf(c, "GET /fresh HTTP/1.1\r\nHost: x\r\n\r\n")
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			} else {
				io.WriteString(c, tt.send)
			}
			// The proxy answers, or not, and closes the connection.
			rest, err := io.ReadAll(br)
			if err != nil {
				t.Errorf("connection still open: %v", err)
			}
			if !strings.HasPrefix(string(rest), tt.status) {
				t.Errorf("answered %q, want %q", rest, tt.status)
			}
		})
	}
}

// A body the upstream cuts short is not claimed stored.
func TestProxy_RFC9211_2_6_TruncatedBodyIsNotClaimedStored(t *testing.T) {
	cut := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		// Larger than the server's write buffer, so that the header
		// reaches the client before the connection is cut.
		w.Header().Set("Content-Length", "20000")
		io.WriteString(w, strings.Repeat("half", 2500))
		w.(http.Flusher).Flush()
		if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
			c.Close()
		}
	}))
	defer cut.Close()
	p := startProxy(t, proxy.Config{Upstream: cut.URL})
	resp, err := http.Get("http://" + p.Addr() + "/cut")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err == nil {
		t.Error("the body is short, yet it read without error")
	}
	resp.Body.Close()
	if cs := resp.Header.Get("Cache-Status"); cs != "fleetcache; fwd=uri-miss; fwd-status=200; detail=truncated" {
		t.Errorf("Cache-Status %q, want no stored claim and detail=truncated", cs)
	}
	if s := p.Stats(); s.Stores != 0 {
		t.Errorf("Stores = %d, want 0", s.Stores)
	}
}
