package policy

import (
	"testing"
	"time"
)

// TestSeed_Httpcache013 carries the behaviours of the Python httpcache 0.1.3
// seed (RFC-NOTES.md, table B1-B16). Rows that still hold under RFC 9111
// check the same behaviour; inverted rows check the opposite and say why.
// B14 (LRU order refreshed on read and write) and B15 (capacity) are store
// behaviours: package rediscache proves them.
func TestSeed_Httpcache013(t *testing.T) {
	storable := func(p *Policy, method string, status int, kv ...string) bool {
		rq := p.ParseRequest(newReq(method, testURL))
		ok, _ := p.Storable(&rq, newResp(status, kv...))
		return ok
	}
	tests := []struct {
		id, behaviour string
		inverted      string // why RFC 9111 says otherwise; "" when it still holds
		check         func(t *testing.T)
	}{
		{"B1", "stores 200, 203, 300, 301, 410", "", func(t *testing.T) {
			for _, code := range []int{200, 203, 300, 301, 410} {
				if !storable(shared, "GET", code) {
					t.Errorf("%d not storable", code)
				}
			}
		}},
		{"B1", "stores nothing else", "RFC 9110 §15.1 made 204, 308, 404, 405, 414, 501 heuristically cacheable, and any understood status is storable with explicit freshness", func(t *testing.T) {
			for _, code := range []int{204, 308, 404, 405, 414, 501} {
				if !storable(shared, "GET", code) {
					t.Errorf("%d not storable", code)
				}
			}
			if !storable(shared, "GET", 500, "Cache-Control", "max-age=60") || storable(shared, "GET", 500) {
				t.Error("500: want storable only with explicit freshness")
			}
			if storable(shared, "GET", 206, "Cache-Control", "max-age=60") {
				t.Error("206 stored without range support")
			}
		}},
		{"B2", "caches OPTIONS", "RFC 9111 §3: only methods the cache understands as cacheable; OPTIONS responses are not", func(t *testing.T) {
			if storable(shared, "OPTIONS", 200, "Cache-Control", "max-age=60") {
				t.Error("OPTIONS stored")
			}
		}},
		{"B2", "HEAD and GET share one entry", "RFC 9111 §4: a stored GET may answer a HEAD, but a HEAD response is never served to a GET", func(t *testing.T) {
			get := storedAt(shared, 200, "Cache-Control", "max-age=60")
			rq := shared.ParseRequest(newReq("HEAD", testURL))
			wantAction(t, shared.Reuse(&rq, get, t0), Serve, "")
			head := &Response{Method: "HEAD", URL: testURL, Status: 200, Header: header("Cache-Control", "max-age=60"), ResponseTime: t0}
			wantAction(t, reuse(shared, head, 0), Unusable, "method")
		}},
		{"B3", "age from Date or now", "RFC 9111 §4.2.3: age also counts the Age header, the response delay and the resident time", func(t *testing.T) {
			s := &Response{Header: header("Date", httpDate(t0), "Age", "30"), RequestTime: t0.Add(-time.Second), ResponseTime: t0}
			if got := currentAge(s, t0.Add(time.Minute)); got != 91*time.Second {
				t.Errorf("age = %v", got)
			}
		}},
		{"B4", "Cache-Control split on comma-space, crashes on public and s-maxage", "RFC 9111 §5.2: a real parser (case, quotes, tokens, any whitespace)", func(t *testing.T) {
			d := parseCacheControl([]string{`Public,S-MAXAGE=30,private="a, b"`}, false)
			if !d.has(ccPublic|ccPrivateFields) || d.sMaxAge != 30 {
				t.Errorf("parsed %+v", d)
			}
		}},
		{"B4", "refuses no-cache", "RFC 9111 §5.2.2.4: a no-cache response is stored and revalidated before every use", func(t *testing.T) {
			if !storable(shared, "GET", 200, "Cache-Control", "no-cache", "ETag", `"x"`) {
				t.Fatal("no-cache response not stored")
			}
			wantAction(t, reuse(shared, storedAt(shared, 200, "Cache-Control", "no-cache", "ETag", `"x"`), 0), Revalidate, "no-cache")
		}},
		{"B5", "expiry from Expires when there is no Cache-Control", "", func(t *testing.T) {
			s := storedAt(shared, 200, "Expires", httpDate(t0.Add(time.Hour)), "Date", httpDate(t0))
			wantAction(t, reuse(shared, s, 59*time.Minute), Serve, "")
			wantAction(t, reuse(shared, s, time.Hour), Revalidate, "stale")
		}},
		{"B5", "Expires used alongside max-age", "RFC 9111 §5.3: max-age (and s-maxage, shared) override Expires; an invalid Expires is already expired", func(t *testing.T) {
			s := storedAt(shared, 200, "Expires", httpDate(t0.Add(time.Hour)), "Cache-Control", "max-age=10", "Date", httpDate(t0))
			wantAction(t, reuse(shared, s, 11*time.Second), Revalidate, "stale")
			wantAction(t, reuse(shared, storedAt(shared, 200, "Expires", "0"), 0), Revalidate, "stale")
		}},
		{"B6", "refuses responses stale on arrival", "RFC 9111 §4.3: with validators they are worth a 304 later", func(t *testing.T) {
			if !storable(shared, "GET", 200, "Cache-Control", "max-age=0", "ETag", `"x"`) {
				t.Fatal("stale-on-arrival response not stored")
			}
			if ttl, _ := shared.Keep(storedAt(shared, 200, "Cache-Control", "max-age=0", "ETag", `"x"`), t0); ttl <= 0 {
				t.Errorf("Keep = %v", ttl)
			}
		}},
		{"B7", "no heuristic freshness for a URL with a query", "RFC 9111 dropped RFC 2616 §13.9's rule; Options.NoQueryHeuristic keeps it", func(t *testing.T) {
			lm := httpDate(t0.Add(-100 * time.Hour))
			for _, c := range []struct {
				p     *Policy
				fresh bool
			}{{shared, true}, {New(Options{NoQueryHeuristic: true}), false}} {
				rq := c.p.ParseRequest(newReq("GET", testURL+"?q=1"))
				s := c.p.NewResponse(&rq, newResp(200, "Last-Modified", lm), nil, t0, t0)
				if got := c.p.Reuse(&rq, s, t0.Add(time.Second)).Action == Serve; got != c.fresh {
					t.Errorf("heuristically fresh = %v, want %v", got, c.fresh)
				}
			}
		}},
		{"B8", "the key is the URL", "RFC 9111 §4.1: the URL is normalised and Vary selects among variants", func(t *testing.T) {
			rq := shared.ParseRequest(newReq("GET", "HTTP://EXAMPLE.com:80/a"))
			if rq.URL != testURL {
				t.Errorf("URL = %q", rq.URL)
			}
			if Variant([]string{"Accept"}, []string{"a"}) == Variant([]string{"Accept"}, []string{"b"}) {
				t.Error("variants collide")
			}
		}},
		{"B9", "evicts speculative (no explicit expiry) entries first", "", func(t *testing.T) {
			_, explicit := shared.Keep(storedAt(shared, 200, "Last-Modified", httpDate(t0.Add(-100*time.Hour))), t0)
			_, explicitMaxAge := shared.Keep(storedAt(shared, 200, "Cache-Control", "max-age=60"), t0)
			if explicit || !explicitMaxAge {
				t.Errorf("explicit: heuristic %v, max-age %v", explicit, explicitMaxAge)
			}
		}},
		{"B10", "any other method deletes the entry before sending", "RFC 9111 §4.4: only unsafe or unknown methods, after a 2xx/3xx, plus same-origin Location and Content-Location", func(t *testing.T) {
			if Invalidates(newReq("OPTIONS", testURL), newResp(200)) != nil || Invalidates(newReq("POST", testURL), newResp(500)) != nil {
				t.Error("invalidated on a safe method or an error")
			}
			if got := Invalidates(newReq("POST", testURL), newResp(201, "Location", "/b")); len(got) != 2 {
				t.Errorf("Invalidates = %q", got)
			}
		}},
		{"B11", "If-Modified-Since = stored Date", "RFC 9111 §4.3.1: If-None-Match from ETag (MUST), If-Modified-Since from Last-Modified; Date only as a fallback", func(t *testing.T) {
			rq := shared.ParseRequest(newReq("GET", testURL))
			req, _ := Conditional(&rq, storedAt(shared, 200, "ETag", `"x"`, "Date", httpDate(t0)))
			if req.Header.Get("If-None-Match") != `"x"` || req.Header.Get("If-Modified-Since") != "" {
				t.Errorf("conditional = %v", req.Header)
			}
		}},
		{"B12", "a stale explicit entry is deleted, never revalidated", "RFC 9111 §4.3: it is revalidated, and kept for stale-while-revalidate / stale-if-error", func(t *testing.T) {
			s := storedAt(shared, 200, "Cache-Control", "max-age=10, stale-if-error=60", "ETag", `"x"`)
			wantAction(t, reuse(shared, s, time.Minute), Revalidate, "stale")
			if ttl, _ := shared.Keep(s, t0.Add(time.Minute)); ttl <= 0 {
				t.Errorf("Keep = %v", ttl)
			}
		}},
		{"B13", "a 304 returns the stored response unchanged, unconditionally", "RFC 9111 §4.3.4: the 304 freshens the response its validators select, else nothing", func(t *testing.T) {
			s := storedAt(shared, 200, "Cache-Control", "max-age=10", "ETag", `"x"`)
			if _, ok := shared.Freshen(s, newResp(304, "ETag", `"y"`), t0, t0); ok {
				t.Error("304 for another validator accepted")
			}
			fresh, ok := shared.Freshen(s, newResp(304, "ETag", `"x"`, "Cache-Control", "max-age=99"), t0, t0)
			if !ok || fresh.Header.Get("Cache-Control") != "max-age=99" {
				t.Errorf("freshened = %v %v", fresh, ok)
			}
		}},
		{"B16", "every non-304 response replaces the entry", "", func(t *testing.T) {
			if !storable(shared, "GET", 200, "Cache-Control", "max-age=60") || storable(shared, "GET", 304, "ETag", `"x"`) {
				t.Error("want a storable 200 to be stored and a 304 never as an entry")
			}
		}},
	}
	for _, tt := range tests {
		name := tt.id + " " + tt.behaviour
		if tt.inverted != "" {
			name += " (inverted)"
		}
		t.Run(name, tt.check)
	}
}
