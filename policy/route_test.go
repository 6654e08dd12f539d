package policy

import (
	"strings"
	"testing"
	"time"
)

// routed is a Policy whose every URL gets rt.
func routed(rt Route) *Policy {
	return New(Options{Routes: func(string) *Route { return &rt }})
}

func TestRoute_TTLBounds(t *testing.T) {
	tests := []struct {
		name     string
		rt       Route
		kv       []string
		after    time.Duration
		action   Action
		ttl      time.Duration
		keep     time.Duration
		explicit bool
	}{
		{"max_ttl caps max-age", Route{MaxTTL: time.Minute}, []string{"Cache-Control", "max-age=3600"}, 30 * time.Second, Serve, 30 * time.Second, 30 * time.Second, true},
		{"max_ttl: stale once the cap has passed", Route{MaxTTL: time.Minute}, []string{"Cache-Control", "max-age=3600"}, 2 * time.Minute, Revalidate, -time.Minute, -time.Minute, false},
		{"max_ttl caps s-maxage", Route{MaxTTL: time.Minute}, []string{"Cache-Control", "s-maxage=3600"}, 0, Serve, time.Minute, time.Minute, true},
		{"max_ttl leaves a shorter lifetime alone", Route{MaxTTL: time.Hour}, []string{"Cache-Control", "max-age=60"}, 0, Serve, time.Minute, time.Minute, true},
		{"min_ttl floors max-age=0", Route{MinTTL: time.Minute}, []string{"Cache-Control", "max-age=0"}, 10 * time.Second, Serve, 50 * time.Second, 50 * time.Second, true},
		{"min_ttl makes a response without freshness fresh", Route{MinTTL: time.Minute}, nil, 0, Serve, time.Minute, time.Minute, true},
		{"min_ttl floors an expired Expires", Route{MinTTL: time.Minute}, []string{"Expires", "0"}, 0, Serve, time.Minute, time.Minute, true},
		{"min_ttl turns a heuristic lifetime explicit", Route{MinTTL: time.Hour}, []string{"Last-Modified", httpDate(t0.Add(-time.Hour))}, 0, Serve, time.Hour, 25 * time.Hour, true}, // Last-Modified adds the revalidation window
		{"min_ttl leaves a longer lifetime alone", Route{MinTTL: time.Minute}, []string{"Cache-Control", "max-age=600"}, 0, Serve, 10 * time.Minute, 10 * time.Minute, true},
		{"min_ttl does not lift no-cache", Route{MinTTL: time.Minute}, []string{"Cache-Control", "no-cache", "ETag", `"a"`}, 0, Revalidate, time.Minute, 24 * time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := routed(tt.rt)
			s := storedAt(p, 200, tt.kv...)
			got := reuse(p, s, tt.after)
			if got.Action != tt.action || got.TTL != tt.ttl {
				t.Errorf("Reuse = %+v, want action %d ttl %v", got, tt.action, tt.ttl)
			}
			keep, explicit := p.Keep(s, t0.Add(tt.after))
			if keep != tt.keep || explicit != tt.explicit {
				t.Errorf("Keep = %v, %v; want %v, %v", keep, explicit, tt.keep, tt.explicit)
			}
		})
	}
}

func TestRoute_StaleWindows(t *testing.T) {
	tests := []struct {
		name     string
		rt       Route
		kv       []string
		after    time.Duration
		action   Action
		sieAfter bool // StaleIfError at t0+after
	}{
		{"default stale-while-revalidate", Route{StaleWhileRevalidate: time.Minute}, []string{"Cache-Control", "max-age=10"}, 30 * time.Second, ServeStale, false},
		{"past the default window", Route{StaleWhileRevalidate: time.Minute}, []string{"Cache-Control", "max-age=10"}, 2 * time.Minute, Revalidate, false},
		{"the response's own window wins", Route{StaleWhileRevalidate: time.Hour}, []string{"Cache-Control", "max-age=10, stale-while-revalidate=5"}, 30 * time.Second, Revalidate, false},
		{"must-revalidate still forbids it", Route{StaleWhileRevalidate: time.Hour, StaleIfError: time.Hour}, []string{"Cache-Control", "max-age=10, must-revalidate"}, 30 * time.Second, Revalidate, false},
		{"default stale-if-error", Route{StaleIfError: time.Hour}, []string{"Cache-Control", "max-age=10"}, 30 * time.Minute, Revalidate, true},
		{"the response's own stale-if-error wins", Route{StaleIfError: time.Hour}, []string{"Cache-Control", "max-age=10, stale-if-error=60"}, 30 * time.Minute, Revalidate, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := routed(tt.rt)
			s := storedAt(p, 200, tt.kv...)
			if got := reuse(p, s, tt.after); got.Action != tt.action {
				t.Errorf("Reuse = %+v, want action %d", got, tt.action)
			}
			rq := p.ParseRequest(newReq("GET", testURL))
			if got := p.StaleIfError(&rq, s, t0.Add(tt.after)); got != tt.sieAfter {
				t.Errorf("StaleIfError = %v, want %v", got, tt.sieAfter)
			}
		})
	}
	t.Run("the windows lengthen how long the store keeps it", func(t *testing.T) {
		p := routed(Route{StaleIfError: time.Hour})
		s := storedAt(p, 200, "Cache-Control", "max-age=10")
		if keep, _ := p.Keep(s, t0); keep != time.Hour+10*time.Second {
			t.Errorf("Keep = %v, want 1h0m10s", keep)
		}
	})
}

func TestRoute_NoStoreBypasses(t *testing.T) {
	p := routed(Route{NoStore: true})
	rq := p.ParseRequest(newReq("GET", testURL))
	if rq.Bypass != ReasonRule {
		t.Fatalf("Bypass = %q, want %q", rq.Bypass, ReasonRule)
	}
	if ok, why := p.Storable(&rq, newResp(200, "Cache-Control", "max-age=60")); ok || why != ReasonRule {
		t.Errorf("Storable = %v, %q; want false, rule", ok, why)
	}
	// An unsafe method keeps its own reason: it still invalidates.
	if rq := p.ParseRequest(newReq("POST", testURL)); rq.Bypass != ReasonMethod {
		t.Errorf("POST Bypass = %q, want method", rq.Bypass)
	}
}

func TestRoute_Key(t *testing.T) {
	tests := []struct {
		name string
		rt   Route
		in   string
		want string
	}{
		{"no query", Route{IgnoreQuery: []string{"utm_*"}}, "http://a/p", "http://a/p"},
		{"ignored by prefix", Route{IgnoreQuery: []string{"utm_*"}}, "http://a/p?utm_source=x&id=1&utm_medium=y", "http://a/p?id=1"},
		{"ignored by name", Route{IgnoreQuery: []string{"fbclid"}}, "http://a/p?fbclid=1&fbclidx=2", "http://a/p?fbclidx=2"},
		{"every parameter ignored drops the ?", Route{IgnoreQuery: []string{"*"}}, "http://a/p?a=1&b=2", "http://a/p"},
		{"an encoded name is matched decoded", Route{IgnoreQuery: []string{"utm_*"}}, "http://a/p?utm%5Fsource=x&id=1", "http://a/p?id=1"},
		{"sorted by name", Route{SortQuery: true}, "http://a/p?b=2&a=1&c=3", "http://a/p?a=1&b=2&c=3"},
		{"one name's values keep their order", Route{SortQuery: true}, "http://a/p?b=1&a=2&a=1", "http://a/p?a=2&a=1&b=1"},
		{"empty parameters dropped", Route{SortQuery: true}, "http://a/p?&b=1&&a=2", "http://a/p?a=2&b=1"},
		{"nothing asked: unchanged", Route{MaxTTL: time.Minute}, "http://a/p?b=1&a=2", "http://a/p?b=1&a=2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.rt.Key(tt.in); got != tt.want {
				t.Errorf("Key(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	t.Run("the request is keyed by it, and the origin still asked with every parameter", func(t *testing.T) {
		p := routed(Route{IgnoreQuery: []string{"utm_*"}})
		rq := p.ParseRequest(newReq("GET", testURL+"?utm_source=x"))
		if rq.URL != testURL || rq.R.URL.RawQuery != "utm_source=x" {
			t.Errorf("URL = %q, request query %q", rq.URL, rq.R.URL.RawQuery)
		}
	})
	t.Run("an unsafe method invalidates the key", func(t *testing.T) {
		p := routed(Route{IgnoreQuery: []string{"utm_*"}})
		got := p.Invalidates(newReq("POST", testURL+"?utm_source=x"), newResp(200))
		if len(got) != 1 || got[0] != testURL {
			t.Errorf("Invalidates = %q, want [%s]", got, testURL)
		}
	})
}

func TestRoute_IgnoreVary(t *testing.T) {
	p := routed(Route{IgnoreVary: []string{"user-agent"}})
	rq := p.ParseRequest(newReq("GET", testURL, "User-Agent", "a", "Accept-Language", "fr"))
	s := p.NewResponse(&rq, newResp(200, "Cache-Control", "max-age=60", "Vary", "User-Agent, Accept-Language"), nil, t0, t0)
	if len(s.Vary) != 1 || s.Vary[0] != "Accept-Language" {
		t.Fatalf("Vary = %q, want [Accept-Language]", s.Vary)
	}
	if got := s.Header.Get("Vary"); got != "User-Agent, Accept-Language" {
		t.Errorf("stored Vary field = %q: the client must see the origin's", got)
	}
	wantAction(t, reuse(p, s, 0, "User-Agent", "b", "Accept-Language", "fr"), Serve, "")
	wantAction(t, reuse(p, s, 0, "User-Agent", "b", "Accept-Language", "de"), Unusable, "vary-miss")
}

func TestRoute_Normalize(t *testing.T) {
	rt := Route{Normalize: map[string][]string{"Accept-Encoding": {"br", "gzip"}}}
	tests := []struct {
		in   []string // the request's lines; nil: absent
		want string   // "" : removed
	}{
		{[]string{"gzip, deflate, br"}, "br"},
		{[]string{"GZIP"}, "gzip"},
		{[]string{"deflate", "gzip;q=0.5"}, "gzip"},
		{[]string{"br;q=0, gzip"}, "gzip"},
		{[]string{"br;q=0.000"}, ""},
		{[]string{"deflate"}, ""},
		{nil, ""},
		{[]string{"br"}, "br"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.in, "|"), func(t *testing.T) {
			r := newReq("GET", testURL)
			if tt.in != nil {
				r.Header["Accept-Encoding"] = tt.in
			}
			before := r.Header.Clone()
			rq := routed(rt).ParseRequest(r)
			if got := rq.R.Header.Get("Accept-Encoding"); got != tt.want || len(rq.R.Header["Accept-Encoding"]) > 1 {
				t.Errorf("Accept-Encoding = %q, want %q", rq.R.Header["Accept-Encoding"], tt.want)
			}
			if len(r.Header) != len(before) || r.Header.Get("Accept-Encoding") != before.Get("Accept-Encoding") {
				t.Error("the caller's request was changed")
			}
			if (rq.R == r) != (len(tt.in) == 1 && tt.in[0] == tt.want || tt.in == nil) {
				t.Errorf("copied = %v: a request is copied only when its field changes", rq.R != r)
			}
		})
	}
}

func TestRoute_NoneCostsNothing(t *testing.T) {
	p := New(Options{Routes: func(string) *Route { return nil }})
	r := newReq("GET", testURL+"?b=1&a=2", "Accept-Encoding", "gzip")
	rq := p.ParseRequest(r)
	if rq.R != r || rq.URL != testURL+"?b=1&a=2" {
		t.Errorf("without a route: request %p (want %p), URL %q", rq.R, r, rq.URL)
	}
}

func FuzzRouteKey(f *testing.F) {
	for _, s := range []string{"http://a/p?utm_source=x&id=1", "http://a/p?&&=&a", "http://a/p?%zz=1&b", "http://a/p?"} {
		f.Add(s, "gzip;q=0, br")
	}
	rt := Route{IgnoreQuery: []string{"utm_*", "x"}, SortQuery: true, Normalize: map[string][]string{"Accept-Encoding": {"br", "gzip"}}}
	f.Fuzz(func(t *testing.T, url, accept string) {
		key := rt.Key(url)
		if again := rt.Key(key); again != key {
			t.Errorf("Key(%q) = %q, but Key of that is %q", url, key, again)
		}
		base, _, _ := strings.Cut(url, "?")
		if !strings.HasPrefix(key, base) {
			t.Errorf("Key(%q) = %q lost the URL before its query", url, key)
		}
		if v := reduce([]string{accept}, rt.Normalize["Accept-Encoding"]); v != "" && v != "br" && v != "gzip" {
			t.Errorf("reduce(%q) = %q, not a listed value", accept, v)
		}
	})
}

func TestFreshness_AgeAndWhatIsLeft(t *testing.T) {
	s := storedAt(shared, 200, "Cache-Control", "max-age=60", "Age", "10")
	age, ttl := shared.Freshness(s, t0.Add(20*time.Second))
	if age != 30*time.Second || ttl != 30*time.Second {
		t.Errorf("Freshness = %v, %v; want 30s, 30s", age, ttl)
	}
	if _, ttl := routed(Route{MaxTTL: 20 * time.Second}).Freshness(s, t0.Add(20*time.Second)); ttl != -10*time.Second {
		t.Errorf("Freshness under a 20s cap: ttl %v, want -10s", ttl)
	}
}
