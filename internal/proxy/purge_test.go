package proxy_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/fleetcache/fleetcache/internal/proxy"
)

// taggedOrigin serves /p/N tagged product-N and all, with an ETag, and
// counts its requests by method and its revalidations.
type taggedOrigin struct {
	*httptest.Server
	gets, others, revalidations atomic.Int64
}

func newTaggedOrigin(t *testing.T) *taggedOrigin {
	o := &taggedOrigin{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			o.others.Add(1)
			w.WriteHeader(http.StatusTeapot)
			return
		}
		o.gets.Add(1)
		n := strings.TrimPrefix(r.URL.Path, "/p/")
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Cache-Tag", "product-"+n+", all")
		w.Header().Set("Etag", `"`+n+`"`)
		if r.Header.Get("If-None-Match") == `"`+n+`"` {
			o.revalidations.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprint(w, "product ", n)
	}))
	t.Cleanup(o.Close)
	return o
}

const token = "s3cret-token"

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// post sends a purge request's JSON.
func post(t *testing.T, url, body string, header http.Header) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func TestProxy_PurgeRefusedWithoutTheAdminToken(t *testing.T) {
	eachRedis(t, func(t *testing.T, redisURL string) {
		o := newTaggedOrigin(t)
		p := startProxy(t, proxy.Config{Upstream: o.URL, Redis: redisURL, AdminToken: token})
		base := "http://" + p.Addr()
		get(t, base+"/p/1")
		for name, h := range map[string]http.Header{
			"none":      nil,
			"wrong":     bearer("s3cret-tokeN"),
			"prefix":    bearer("s3cret"),
			"longer":    bearer(token + "x"),
			"no scheme": {"Authorization": {token}},
			"basic":     {"Authorization": {"Basic " + token}},
		} {
			if a := do(t, proxy.MethodPurge, base+"/p/1", h); a.status != http.StatusUnauthorized {
				t.Errorf("PURGE with %s token: %d, want 401", name, a.status)
			}
			if a := post(t, base+"/.fleetcache/purge", `{"tags":["all"]}`, h); a.status != http.StatusUnauthorized || a.header.Get("WWW-Authenticate") == "" {
				t.Errorf("POST purge with %s token: %d %v, want 401 with WWW-Authenticate", name, a.status, a.header)
			}
		}
		if a := get(t, base+"/p/1"); !isHit(a) {
			t.Errorf("refused purges removed the entry: %s", a.header.Get("Cache-Status"))
		}
		if n := o.others.Load(); n != 0 {
			t.Errorf("the upstream saw %d purge requests", n)
		}
	})
}

func TestProxy_PurgeOffWithoutAToken(t *testing.T) {
	o := newTaggedOrigin(t)
	p := startProxy(t, proxy.Config{Upstream: o.URL, Prefix: "off:"})
	base := "http://" + p.Addr()
	if a := do(t, proxy.MethodPurge, base+"/p/1", bearer("")); a.status != http.StatusForbidden || !strings.Contains(a.body, "off") {
		t.Errorf("PURGE: %d %q, want 403 saying purging is off", a.status, a.body)
	}
	if a := post(t, base+"/.fleetcache/purge", `{"tags":["all"]}`, bearer("")); a.status != http.StatusForbidden {
		t.Errorf("POST purge: %d, want 403", a.status)
	}
	if a := get(t, base+"/.fleetcache/health"); a.status != http.StatusOK {
		t.Errorf("health: %d", a.status)
	}
	if n := o.others.Load(); n != 0 {
		t.Errorf("the upstream saw %d purge requests", n)
	}
}

func TestProxy_PurgeMethodRemovesTheURL(t *testing.T) {
	eachRedis(t, func(t *testing.T, redisURL string) {
		o := newTaggedOrigin(t)
		p := startProxy(t, proxy.Config{Upstream: o.URL, Redis: redisURL, AdminToken: token})
		base := "http://" + p.Addr()
		get(t, base+"/p/1")
		get(t, base+"/p/2")
		a := do(t, proxy.MethodPurge, base+"/p/./1", bearer(token))
		var res proxy.PurgeResult
		if err := json.Unmarshal([]byte(a.body), &res); err != nil || a.status != http.StatusOK || res.Entries != 1 || res.URLs[base+"/p/1"] != 1 {
			t.Fatalf("PURGE: %d %q (%v)", a.status, a.body, err)
		}
		if a := get(t, base+"/p/1"); isHit(a) {
			t.Error("/p/1 still a hit after PURGE")
		}
		if a := get(t, base+"/p/2"); !isHit(a) {
			t.Error("PURGE /p/1 removed /p/2")
		}
		if n, g := o.others.Load(), o.gets.Load(); n != 0 || g != 3 {
			t.Errorf("the upstream saw %d other requests and %d GETs, want 0 and 3", n, g)
		}
	})
}

func TestProxy_PurgeAPI(t *testing.T) {
	eachRedis(t, func(t *testing.T, redisURL string) {
		o := newTaggedOrigin(t)
		p := startProxy(t, proxy.Config{Upstream: o.URL, Redis: redisURL, AdminToken: token})
		base := "http://" + p.Addr()
		for i := range 5 {
			get(t, fmt.Sprintf("%s/p/%d", base, i))
		}
		api := base + "/.fleetcache/purge"
		tooMany := `{"urls":["/p/1"], "tags":["a"` + strings.Repeat(`, "a"`, proxy.MaxPurgeItems-1) + `]}`
		for _, bad := range []string{``, `{`, `{"url":["/p/1"]}`, `{}`, `{"urls":["p/1"]}`, `{"tags":[""]}`, `{"urls":"/p/1"}`, tooMany} {
			if a := post(t, api, bad, bearer(token)); a.status != http.StatusBadRequest {
				t.Errorf("POST %q: %d %q, want 400", bad, a.status, a.body)
			}
		}
		if a := do(t, http.MethodGet, api, bearer(token)); a.status != http.StatusMethodNotAllowed {
			t.Errorf("GET purge: %d, want 405", a.status)
		}

		// Soft: marked stale, then revalidated with a 304.
		a := post(t, api, `{"tags":["product-3"], "soft": true}`, bearer(token))
		if a.status != http.StatusOK || !strings.Contains(a.body, `"product-3": 1`) || !strings.Contains(a.body, `"soft": true`) {
			t.Fatalf("soft purge: %d %q", a.status, a.body)
		}
		if a := get(t, base+"/p/3"); a.body != "product 3" || o.revalidations.Load() != 1 {
			t.Errorf("after a soft purge: %q, %d revalidations", a.body, o.revalidations.Load())
		}

		// Hard: a path, an absolute URL and a tag.
		a = post(t, api, `{"urls":["/p/0", "`+base+`/p/1"], "tags":["product-2"]}`, bearer(token))
		var res proxy.PurgeResult
		if err := json.Unmarshal([]byte(a.body), &res); err != nil || a.status != http.StatusOK || res.Entries != 3 || res.Tags["product-2"] != 1 || res.URLs[base+"/p/0"] != 1 {
			t.Fatalf("purge: %d %q (%v)", a.status, a.body, err)
		}
		for i, hit := range []bool{false, false, false, true, true} {
			if a := get(t, fmt.Sprintf("%s/p/%d", base, i)); isHit(a) != hit {
				t.Errorf("/p/%d: %s, want hit %v", i, a.header.Get("Cache-Status"), hit)
			}
		}
		if n := o.others.Load(); n != 0 {
			t.Errorf("the upstream saw %d purge requests", n)
		}
		st := get(t, base+"/.fleetcache/stats")
		if !strings.Contains(st.body, `"Entries": 5`) {
			t.Errorf("stats after the purges: %s", st.body)
		}
	})
}

func TestProxy_PurgeOnTheAdminListener(t *testing.T) {
	o := newTaggedOrigin(t)
	p := startProxy(t, proxy.Config{Upstream: o.URL, AdminListen: "127.0.0.1:0", AdminToken: token})
	get(t, "http://"+p.Addr()+"/p/1")
	if a := do(t, proxy.MethodPurge, "http://"+p.Addr()+"/p/1", bearer(token)); a.status != http.StatusMethodNotAllowed {
		t.Errorf("PURGE on the main listener: %d, want 405", a.status)
	}
	if a := post(t, "http://"+p.Addr()+"/.fleetcache/purge", `{"tags":["all"]}`, bearer(token)); a.status != http.StatusNotFound {
		t.Errorf("POST purge on the main listener: %d, want 404", a.status)
	}
	a := post(t, "http://"+p.AdminAddr()+"/.fleetcache/purge", `{"tags":["all"]}`, bearer(token))
	if a.status != http.StatusOK || !strings.Contains(a.body, `"entries": 1`) {
		t.Errorf("purge on the admin listener: %d %q", a.status, a.body)
	}
	if n := o.others.Load(); n != 0 {
		t.Errorf("the upstream saw %d purge requests", n)
	}
}

func TestProxy_RFC9110_11_1_AuthSchemeIsCaseInsensitive(t *testing.T) {
	o := newTaggedOrigin(t)
	p := startProxy(t, proxy.Config{Upstream: o.URL, AdminToken: token})
	base := "http://" + p.Addr()
	for _, auth := range []string{"Bearer " + token, "bearer " + token, "BEARER " + token, "Bearer   " + token} {
		get(t, base+"/p/1")
		a := do(t, proxy.MethodPurge, base+"/p/1", http.Header{"Authorization": {auth}})
		if a.status != http.StatusOK || !strings.Contains(a.body, `"entries": 1`) {
			t.Errorf("PURGE with Authorization %q: %d %q, want 200 and 1 entry", auth, a.status, a.body)
		}
	}
}

func TestProxy_RFC9110_5_5_AdminTokenWithoutItsNewline(t *testing.T) {
	o := newTaggedOrigin(t)
	p := startProxy(t, proxy.Config{Upstream: o.URL, AdminToken: token + "\n"})
	get(t, "http://"+p.Addr()+"/p/1")
	if a := do(t, proxy.MethodPurge, "http://"+p.Addr()+"/p/1", bearer(token)); a.status != http.StatusOK {
		t.Errorf("PURGE with the token a secret file ended with a newline: %d %q, want 200", a.status, a.body)
	}
	p = startProxy(t, proxy.Config{Upstream: o.URL, AdminToken: " \n"})
	if a := do(t, proxy.MethodPurge, "http://"+p.Addr()+"/p/1", bearer("")); a.status != http.StatusForbidden {
		t.Errorf("PURGE with a blank token configured: %d, want 403: purging off", a.status)
	}
}

// PURGE purges the URL a GET of the same request target is stored under:
// a path that starts with // is a path, not a host (RFC 9112 §3.2.1), and
// an empty query is kept (RFC 3986 §6.2.3); the answer names it as it is,
// an & not escaped for HTML.
func TestProxy_RFC9112_3_2_1_PurgeOfTheRequestTargetAsIs(t *testing.T) {
	o := newTaggedOrigin(t)
	p := startProxy(t, proxy.Config{Upstream: o.URL, AdminToken: token})
	for _, target := range []string{"//p/1", "/p/2?", "/p/3?a=1&b=2"} {
		if _, body := rawGet(t, p.Addr(), target); !strings.Contains(body, "product") {
			t.Fatalf("GET %s: %q", target, body)
		}
		_, a := rawDo(t, p.Addr(), proxy.MethodPurge, target, bearer(token))
		if want := `"http://` + p.Addr() + target + `": 1`; !strings.Contains(a, want) {
			t.Errorf("PURGE %s answered %q, want %s", target, a, want)
		}
	}
}
