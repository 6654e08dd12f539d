package policy

import (
	"math"
	"testing"
	"time"
)

func TestFreshness_RFC9111_4_2_1_Lifetime(t *testing.T) {
	date := httpDate(t0)
	tests := []struct {
		name string
		p    *Policy
		kv   []string
		life time.Duration
		heur bool
	}{
		{"shared: s-maxage over max-age", shared, []string{"Cache-Control", "max-age=10, s-maxage=20"}, 20 * time.Second, false},
		{"private: s-maxage ignored", private, []string{"Cache-Control", "max-age=10, s-maxage=20"}, 10 * time.Second, false},
		{"max-age over Expires", shared, []string{"Cache-Control", "max-age=10", "Expires", httpDate(t0.Add(time.Hour)), "Date", date}, 10 * time.Second, false},
		{"Expires - Date", shared, []string{"Expires", httpDate(t0.Add(time.Hour)), "Date", httpDate(t0.Add(-time.Minute))}, time.Hour + time.Minute, false},
		{"Expires - response time when Date is missing", shared, []string{"Expires", httpDate(t0.Add(time.Hour))}, time.Hour, false},
		{"Expires - response time when Date is invalid", shared, []string{"Expires", httpDate(t0.Add(time.Hour)), "Date", "yesterday"}, time.Hour, false},
		{"Expires in RFC 850 format", shared, []string{"Expires", "Tuesday, 10-Mar-26 13:00:00 GMT", "Date", date}, time.Hour, false},
		{"Expires in asctime format", shared, []string{"Expires", "Tue Mar 10 13:00:00 2026", "Date", date}, time.Hour, false},
		{"Expires with sloppy letter case (RFC 9110 §5.6.7)", shared, []string{"Expires", "TUE, 10 MAR 2026 13:00:00 gmt", "Date", date}, time.Hour, false},
		{"Expires in the past", shared, []string{"Expires", httpDate(t0.Add(-time.Hour)), "Date", date}, 0, false},
		{"first Expires line used", shared, []string{"Expires", httpDate(t0.Add(time.Hour)), "Expires", httpDate(t0.Add(2 * time.Hour)), "Date", date}, time.Hour, false},
		{"nothing explicit, no Last-Modified", shared, nil, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := storedAt(tt.p, 200, tt.kv...)
			d, targeted := tt.p.control(s.Header)
			life, heur := tt.p.lifetime(s, &d, targeted)
			if life != tt.life || heur != tt.heur {
				t.Errorf("lifetime = %v %v, want %v %v", life, heur, tt.life, tt.heur)
			}
		})
	}
}

func TestFreshness_RFC9111_5_3_InvalidExpiresIsExpired(t *testing.T) {
	for _, v := range []string{"0", "-1", "soon", "", "Tue, 10 Mar 2026 13:00:00 UTC", "Tue, 10 Mar 26 13:00:00 GMT"} {
		s := storedAt(shared, 200, "Expires", v, "Last-Modified", httpDate(t0.Add(-1000*time.Hour)))
		r := reuse(shared, s, 0)
		if r.Action != Revalidate || r.TTL > 0 {
			t.Errorf("Expires %q: %+v, want stale (and no heuristic)", v, r)
		}
	}
}

func TestFreshness_RFC9111_4_2_1_InvalidMaxAgeIsStale(t *testing.T) {
	s := storedAt(shared, 200, "Cache-Control", "max-age=soon", "Expires", httpDate(t0.Add(time.Hour)))
	wantAction(t, reuse(shared, s, 0), Revalidate, "stale")
	s = storedAt(shared, 200, "Cache-Control", "max-age=60, max-age=3600")
	wantAction(t, reuse(shared, s, time.Second), Revalidate, "stale")
}

func TestFreshness_RFC9111_4_2_2_Heuristic(t *testing.T) {
	lm := httpDate(t0.Add(-100 * time.Hour))
	tests := []struct {
		name   string
		p      *Policy
		url    string
		status int
		kv     []string
		life   time.Duration
	}{
		{"10% of Date - Last-Modified", shared, testURL, 200, []string{"Last-Modified", lm, "Date", httpDate(t0)}, 10 * time.Hour},
		{"Date missing: response time", shared, testURL, 200, []string{"Last-Modified", lm}, 10 * time.Hour},
		{"capped at 24h by default", shared, testURL, 200, []string{"Last-Modified", httpDate(t0.Add(-1000 * time.Hour))}, 24 * time.Hour},
		{"HeuristicCap", New(Options{HeuristicCap: time.Hour}), testURL, 200, []string{"Last-Modified", lm}, time.Hour},
		{"no Last-Modified, no heuristic", shared, testURL, 200, nil, 0},
		{"Last-Modified in the future", shared, testURL, 200, []string{"Last-Modified", httpDate(t0.Add(time.Hour))}, 0},
		{"404 is heuristically cacheable", shared, testURL, 404, []string{"Last-Modified", lm}, 10 * time.Hour},
		{"308 is heuristically cacheable", shared, testURL, 308, []string{"Last-Modified", lm}, 10 * time.Hour},
		{"302 is not", shared, testURL, 302, []string{"Last-Modified", lm, "Cache-Control", "public"}, 0},
		{"a status not understood is not", shared, testURL, 299, []string{"Last-Modified", lm, "Cache-Control", "public"}, 0},
		{"explicit freshness wins", shared, testURL, 200, []string{"Last-Modified", lm, "Cache-Control", "max-age=5"}, 5 * time.Second},
		{"query allowed by default (RFC 9111)", shared, testURL + "?q=1", 200, []string{"Last-Modified", lm}, 10 * time.Hour},
		{"NoQueryHeuristic", New(Options{NoQueryHeuristic: true}), testURL + "?q=1", 200, []string{"Last-Modified", lm}, 0},
		{"NoQueryHeuristic leaves explicit freshness", New(Options{NoQueryHeuristic: true}), testURL + "?q=1", 200, []string{"Cache-Control", "max-age=5"}, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rq := tt.p.ParseRequest(newReq("GET", tt.url))
			s := tt.p.NewResponse(&rq, newResp(tt.status, tt.kv...), nil, t0, t0)
			d, targeted := tt.p.control(s.Header)
			if life, _ := tt.p.lifetime(s, &d, targeted); life != tt.life {
				t.Errorf("lifetime = %v, want %v", life, tt.life)
			}
		})
	}
}

func TestFreshness_RFC9111_4_2_3_Age(t *testing.T) {
	tests := []struct {
		name      string
		kv        []string
		sent, got time.Time // request and response times
		after     time.Duration
		want      time.Duration
	}{
		{"resident time only", []string{"Date", httpDate(t0)}, t0, t0, 30 * time.Second, 30 * time.Second},
		{"apparent age", []string{"Date", httpDate(t0.Add(-10 * time.Second))}, t0, t0, 0, 10 * time.Second},
		{"clock skew: apparent age not negative", []string{"Date", httpDate(t0.Add(time.Hour))}, t0, t0, 0, 0},
		{"corrected age value = Age + response delay", []string{"Date", httpDate(t0), "Age", "100"}, t0.Add(-2 * time.Second), t0, 0, 102 * time.Second},
		{"corrected initial age is the larger", []string{"Date", httpDate(t0.Add(-500 * time.Second)), "Age", "100"}, t0, t0, 0, 500 * time.Second},
		{"bad Age ignored", []string{"Date", httpDate(t0), "Age", "abc"}, t0.Add(-time.Second), t0, 0, time.Second},
		{"negative Age ignored", []string{"Date", httpDate(t0), "Age", "-50"}, t0, t0, 5 * time.Second, 5 * time.Second},
		{"first of several Age values", []string{"Date", httpDate(t0), "Age", "7, 9"}, t0, t0, 0, 7 * time.Second},
		{"no Date", []string{"Age", "3"}, t0, t0, time.Second, 4 * time.Second},
		{"now before response time", nil, t0, t0, -time.Minute, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Response{Header: header(tt.kv...), RequestTime: tt.sent, ResponseTime: tt.got}
			if got := currentAge(s, t0.Add(tt.after)); got != tt.want {
				t.Errorf("currentAge = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestReuse_RFC9111_4_Fresh(t *testing.T) {
	s := storedAt(shared, 200, "Cache-Control", "max-age=60", "Date", httpDate(t0))
	r := reuse(shared, s, 20*time.Second)
	if r.Action != Serve || r.Age != 20*time.Second || r.TTL != 40*time.Second || r.Detail != "" {
		t.Errorf("Reuse = %+v", r)
	}
	wantAction(t, reuse(shared, s, 60*time.Second), Revalidate, "stale")
}

func TestReuse_RFC9111_5_2_1_RequestDirectives(t *testing.T) {
	s := storedAt(shared, 200, "Cache-Control", "max-age=60", "Date", httpDate(t0))
	tests := []struct {
		name   string
		after  time.Duration
		kv     []string
		action Action
		detail string
	}{
		{"max-age met", 20 * time.Second, []string{"Cache-Control", "max-age=30"}, Serve, ""},
		{"max-age exceeded", 20 * time.Second, []string{"Cache-Control", "max-age=10"}, Revalidate, "max-age"},
		{"max-age=0", time.Second, []string{"Cache-Control", "max-age=0"}, Revalidate, "max-age"},
		{"min-fresh met", 20 * time.Second, []string{"Cache-Control", "min-fresh=40"}, Serve, ""},
		{"min-fresh not met", 20 * time.Second, []string{"Cache-Control", "min-fresh=41"}, Revalidate, "min-fresh"},
		{"no-cache", time.Second, []string{"Cache-Control", "no-cache"}, Revalidate, "request-no-cache"},
		{"Pragma no-cache", time.Second, []string{"Pragma", "no-cache"}, Revalidate, "request-no-cache"},
		{"no-store does not prevent reuse (§5.2.1.5)", time.Second, []string{"Cache-Control", "no-store"}, Serve, ""},
		{"max-stale allows stale", 90 * time.Second, []string{"Cache-Control", "max-stale=30"}, Serve, "max-stale"},
		{"max-stale exceeded", 91 * time.Second, []string{"Cache-Control", "max-stale=30"}, Revalidate, "stale"},
		{"max-stale without value", 1000 * time.Hour, []string{"Cache-Control", "max-stale"}, Serve, "max-stale"},
		{"max-age limits max-stale", 90 * time.Second, []string{"Cache-Control", "max-stale, max-age=70"}, Revalidate, "max-age"},
		{"only-if-cached is reported, decision unchanged", 90 * time.Second, []string{"Cache-Control", "only-if-cached"}, Revalidate, "stale"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantAction(t, reuse(shared, s, tt.after, tt.kv...), tt.action, tt.detail)
		})
	}
}

func TestReuse_RFC9111_4_2_4_ServingStale(t *testing.T) {
	tests := []struct {
		name   string
		p      *Policy
		cc     string
		after  time.Duration
		reqKV  []string
		action Action
		detail string
	}{
		{"stale", shared, "max-age=10", 20 * time.Second, nil, Revalidate, "stale"},
		{"stale-while-revalidate window", shared, "max-age=10, stale-while-revalidate=30", 40 * time.Second, nil, ServeStale, "stale-while-revalidate"},
		{"past the stale-while-revalidate window", shared, "max-age=10, stale-while-revalidate=30", 41 * time.Second, nil, Revalidate, "stale"},
		{"must-revalidate forbids max-stale", shared, "max-age=10, must-revalidate", 20 * time.Second, []string{"Cache-Control", "max-stale"}, Revalidate, "must-revalidate"},
		{"must-revalidate forbids stale-while-revalidate", shared, "max-age=10, must-revalidate, stale-while-revalidate=60", 20 * time.Second, nil, Revalidate, "must-revalidate"},
		{"shared: proxy-revalidate forbids", shared, "max-age=10, proxy-revalidate", 20 * time.Second, []string{"Cache-Control", "max-stale"}, Revalidate, "must-revalidate"},
		{"private: proxy-revalidate does not", private, "max-age=10, proxy-revalidate", 20 * time.Second, []string{"Cache-Control", "max-stale"}, Serve, "max-stale"},
		{"shared: s-maxage forbids", shared, "s-maxage=10, stale-while-revalidate=60", 20 * time.Second, nil, Revalidate, "must-revalidate"},
		{"private: s-maxage does not", private, "max-age=10, s-maxage=10, stale-while-revalidate=60", 20 * time.Second, nil, ServeStale, "stale-while-revalidate"},
		{"no-cache: revalidate even when fresh", shared, "max-age=60, no-cache", time.Second, nil, Revalidate, "no-cache"},
		{"no-cache beats max-stale", shared, "no-cache", time.Second, []string{"Cache-Control", "max-stale"}, Revalidate, "no-cache"},
		{"request max-age beats stale-while-revalidate", shared, "max-age=10, stale-while-revalidate=60", 20 * time.Second, []string{"Cache-Control", "max-age=15"}, Revalidate, "max-age"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := storedAt(tt.p, 200, "Cache-Control", tt.cc, "Date", httpDate(t0))
			wantAction(t, reuse(tt.p, s, tt.after, tt.reqKV...), tt.action, tt.detail)
		})
	}
}

func TestReuse_RFC8246_Immutable(t *testing.T) {
	s := storedAt(shared, 200, "Cache-Control", "max-age=60, immutable", "Date", httpDate(t0))
	wantAction(t, reuse(shared, s, 10*time.Second, "Cache-Control", "max-age=0"), Serve, "")
	wantAction(t, reuse(shared, s, 10*time.Second, "Cache-Control", "no-cache"), Revalidate, "request-no-cache")
	wantAction(t, reuse(shared, s, 61*time.Second, "Cache-Control", "max-age=0"), Revalidate, "max-age")
	wantAction(t, reuse(shared, s, 61*time.Second), Revalidate, "stale")
}

func TestReuse_RFC9111_4_1_Vary(t *testing.T) {
	rq := shared.ParseRequest(newReq("GET", testURL, "Accept-Encoding", "gzip, br", "Accept-Language", "en"))
	s := shared.NewResponse(&rq, newResp(200, "Cache-Control", "max-age=60", "Vary", "Accept-Encoding, accept-language, X-Absent"), nil, t0, t0)
	tests := []struct {
		name string
		kv   []string
		ok   bool
	}{
		{"same values", []string{"Accept-Encoding", "gzip, br", "Accept-Language", "en"}, true},
		{"whitespace normalised", []string{"Accept-Encoding", "  gzip,br ", "Accept-Language", "en"}, true},
		{"lines joined", []string{"Accept-Encoding", "gzip", "Accept-Encoding", "br", "Accept-Language", "en"}, true},
		{"letter case of codings and tags", []string{"Accept-Encoding", "GZIP, Br", "Accept-Language", "EN"}, true},
		{"different value", []string{"Accept-Encoding", "gzip", "Accept-Language", "en"}, false},
		{"absent on one side", []string{"Accept-Encoding", "gzip, br"}, false},
		{"present where stored had none", []string{"Accept-Encoding", "gzip, br", "Accept-Language", "en", "X-Absent", "1"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := reuse(shared, s, time.Second, tt.kv...)
			if (r.Action == Serve) != tt.ok || (!tt.ok && r.Detail != "vary-miss") {
				t.Errorf("Reuse = %+v, want match %v", r, tt.ok)
			}
		})
	}
	star := &Response{Method: "GET", URL: testURL, Status: 200, Header: header("Cache-Control", "max-age=60"), Vary: []string{"*"}, VaryValues: []string{""}, ResponseTime: t0}
	wantAction(t, reuse(shared, star, 0), Unusable, "vary-miss")
	damaged := &Response{Method: "GET", URL: testURL, Header: header(), Vary: []string{"Accept"}, ResponseTime: t0}
	wantAction(t, reuse(shared, damaged, 0), Unusable, "vary-miss")
}

func TestReuse_RFC9111_3_5_Authorization(t *testing.T) {
	auth := []string{"Authorization", "Bearer t"}
	tests := []struct {
		p      *Policy
		cc     string
		action Action
	}{
		{shared, "max-age=60", Unusable},
		{shared, "max-age=60, public", Serve},
		{shared, "s-maxage=60", Serve},
		{shared, "max-age=60, must-revalidate", Serve},
		{private, "max-age=60", Serve},
	}
	for _, tt := range tests {
		s := storedAt(tt.p, 200, "Cache-Control", tt.cc)
		if r := reuse(tt.p, s, time.Second, auth...); r.Action != tt.action {
			t.Errorf("%q: Reuse = %+v, want %d", tt.cc, r, tt.action)
		}
	}
}

func TestReuse_RFC9111_4_MethodAndKey(t *testing.T) {
	get := storedAt(shared, 200, "Cache-Control", "max-age=60")
	head := &Response{Method: "HEAD", URL: testURL, Status: 200, Header: header("Cache-Control", "max-age=60"), ResponseTime: t0}
	tests := []struct {
		name   string
		method string
		target string
		s      *Response
		action Action
		detail string
	}{
		{"stored GET answers HEAD", "HEAD", testURL, get, Serve, ""},
		{"HEAD entry never answers GET", "GET", testURL, head, Unusable, "method"},
		{"HEAD entry answers HEAD", "HEAD", testURL, head, Serve, ""},
		{"other URL", "GET", "http://example.com/b", get, Unusable, "uri-miss"},
		{"equivalent URL", "GET", "HTTP://Example.COM:80/%61", get, Serve, ""},
		{"nothing stored", "GET", testURL, nil, Unusable, "uri-miss"},
		{"bypass", "DELETE", testURL, get, Unusable, "method"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rq := shared.ParseRequest(newReq(tt.method, tt.target))
			wantAction(t, shared.Reuse(&rq, tt.s, t0.Add(time.Second)), tt.action, tt.detail)
		})
	}
}

func TestStaleIfError_RFC5861_4(t *testing.T) {
	tests := []struct {
		name  string
		p     *Policy
		cc    string
		after time.Duration
		reqKV []string
		want  bool
	}{
		{"within response stale-if-error", shared, "max-age=10, stale-if-error=60", 70 * time.Second, nil, true},
		{"past response stale-if-error", shared, "max-age=10, stale-if-error=60", 71 * time.Second, nil, false},
		{"no stale-if-error", shared, "max-age=10", 11 * time.Second, nil, false},
		{"request stale-if-error", shared, "max-age=10", 20 * time.Second, []string{"Cache-Control", "stale-if-error=10"}, true},
		{"most restrictive of both wins", shared, "max-age=10, stale-if-error=60", 30 * time.Second, []string{"Cache-Control", "stale-if-error=10"}, false},
		{"request max-stale allows", shared, "max-age=10", 30 * time.Second, []string{"Cache-Control", "max-stale=30"}, true},
		{"must-revalidate forbids", shared, "max-age=10, stale-if-error=60, must-revalidate", 20 * time.Second, nil, false},
		{"shared: proxy-revalidate forbids", shared, "max-age=10, stale-if-error=60, proxy-revalidate", 20 * time.Second, nil, false},
		{"shared: s-maxage forbids", shared, "s-maxage=10, stale-if-error=60", 20 * time.Second, nil, false},
		{"private: s-maxage does not", private, "max-age=10, s-maxage=10, stale-if-error=60", 20 * time.Second, nil, true},
		{"no-cache forbids", shared, "no-cache, stale-if-error=60", 20 * time.Second, nil, false},
		{"request no-cache forbids the response's permission", shared, "max-age=10, stale-if-error=60", 20 * time.Second, []string{"Cache-Control", "no-cache"}, false},
		{"request no-cache with its own stale-if-error", shared, "max-age=10", 20 * time.Second, []string{"Cache-Control", "no-cache, stale-if-error=60"}, true},
		{"Authorization not allowed", shared, "max-age=10, stale-if-error=60", 20 * time.Second, []string{"Authorization", "x"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := storedAt(tt.p, 200, "Cache-Control", tt.cc, "Date", httpDate(t0))
			rq := tt.p.ParseRequest(newReq("GET", testURL, tt.reqKV...))
			if got := tt.p.StaleIfError(&rq, s, t0.Add(tt.after)); got != tt.want {
				t.Errorf("StaleIfError = %v, want %v", got, tt.want)
			}
		})
	}
	rq := shared.ParseRequest(newReq("GET", "http://example.com/other"))
	if shared.StaleIfError(&rq, storedAt(shared, 200, "Cache-Control", "stale-if-error=60"), t0) {
		t.Error("StaleIfError for another URL")
	}
}

func TestKeep_RFC9111_1_2_2(t *testing.T) {
	day := 24 * time.Hour
	tests := []struct {
		name     string
		p        *Policy
		kv       []string
		after    time.Duration
		ttl      time.Duration
		explicit bool
	}{
		{"remaining freshness", shared, []string{"Cache-Control", "max-age=60"}, 10 * time.Second, 50 * time.Second, true},
		{"plus the longest stale window", shared, []string{"Cache-Control", "max-age=60, stale-while-revalidate=30, stale-if-error=100"}, 0, 160 * time.Second, true},
		{"stale windows not when forbidden", shared, []string{"Cache-Control", "max-age=60, stale-if-error=100, must-revalidate"}, 0, 60 * time.Second, true},
		{"plus a revalidation window with validators", shared, []string{"Cache-Control", "max-age=60", "ETag", `"x"`}, 0, 60*time.Second + day, true},
		{"stale with validators: revalidation only", shared, []string{"Cache-Control", "max-age=60", "ETag", `"x"`}, time.Hour, day, false},
		{"stale without validators: not worth keeping", shared, []string{"Cache-Control", "max-age=60"}, time.Hour, -time.Hour + 60*time.Second, false},
		{"heuristic is not explicit", shared, []string{"Last-Modified", httpDate(t0.Add(-100 * time.Hour))}, 0, 10*time.Hour + day, false},
		{"no-cache: revalidation only", shared, []string{"Cache-Control", "max-age=60, no-cache", "ETag", `"x"`}, 0, day, false},
		{"no-cache without validators", shared, []string{"Cache-Control", "no-cache"}, 0, 0, false},
		{"no-store (a 304 may bring it)", shared, []string{"Cache-Control", "max-age=60, no-store", "ETag", `"x"`}, 0, 0, false},
		{"shared: private (a 304 may bring it)", shared, []string{"Cache-Control", "max-age=60, private"}, 0, 0, false},
		{"private cache: private", private, []string{"Cache-Control", "max-age=60, private"}, 0, 60 * time.Second, true},
		// §1.2.2: a calculation that overflows saturates.
		{"far Expires with a validator saturates", shared, []string{"Date", httpDate(t0), "Expires", "Fri, 31 Dec 9999 23:59:59 GMT", "ETag", `"x"`}, 0, math.MaxInt64, true},
		{"far Expires with a stale window saturates", shared, []string{"Date", httpDate(t0), "Expires", "Fri, 31 Dec 9999 23:59:59 GMT", "Cache-Control", "stale-while-revalidate=60"}, 0, math.MaxInt64, true},
		{"far Expires with both saturates", shared, []string{"Date", httpDate(t0), "Expires", "Fri, 31 Dec 9999 23:59:59 GMT", "Cache-Control", "stale-if-error=60", "Last-Modified", httpDate(t0)}, time.Hour, math.MaxInt64, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Response{Method: "GET", URL: testURL, Status: 200, Header: header(tt.kv...), RequestTime: t0, ResponseTime: t0}
			ttl, explicit := tt.p.Keep(s, t0.Add(tt.after))
			if ttl != tt.ttl || explicit != tt.explicit {
				t.Errorf("Keep = %v %v, want %v %v", ttl, explicit, tt.ttl, tt.explicit)
			}
		})
	}
}

func TestReuse_RFC9211_2_4_FwdReportsWhyTheRequestWentForward(t *testing.T) {
	fresh := storedAt(shared, 200, "Cache-Control", "max-age=60")
	noCache := storedAt(shared, 200, "Cache-Control", "no-cache", "ETag", `"a"`)
	varies := storedAt(shared, 200, "Cache-Control", "max-age=60", "Vary", "Accept-Language")
	tests := []struct {
		name  string
		s     *Response
		after time.Duration
		kv    []string
		want  string
	}{
		{"fresh and served", fresh, time.Second, nil, ""},
		{"stale", fresh, 2 * time.Minute, nil, "stale"},
		{"fresh, but the request said no-cache", fresh, time.Second, []string{"Cache-Control", "no-cache"}, "request"},
		{"fresh, but older than the request's max-age", fresh, 20 * time.Second, []string{"Cache-Control", "max-age=10"}, "request"},
		{"stale and the request said max-age=0", fresh, 2 * time.Minute, []string{"Cache-Control", "max-age=0"}, "stale"},
		{"no-cache response: revalidated every time", noCache, time.Second, nil, "stale"},
		{"another variant", varies, time.Second, []string{"Accept-Language", "fr"}, "vary-miss"},
		{"authorization not allowed", fresh, time.Second, []string{"Authorization", "x"}, "miss"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := reuse(shared, tt.s, tt.after, tt.kv...).Fwd; got != tt.want {
				t.Errorf("Fwd = %q, want %q", got, tt.want)
			}
		})
	}
}

// With CookieAuth a request's Cookie is a credential as RFC 9111
// §3.5 makes Authorization one, allowing public and s-maxage only: what a
// cookie may personalise is neither stored nor served to it otherwise.
func TestCookieAuth_RFC9111_3_5_CookieLikeAuthorization(t *testing.T) {
	cookies := New(Options{CookieAuth: true})
	cookie := []string{"Cookie", "session=1"}
	tests := []struct {
		p      *Policy
		cc     string
		stored bool
		reason Reason
	}{
		{cookies, "max-age=60", false, ReasonCookie},
		{cookies, "max-age=60, must-revalidate", false, ReasonCookie},
		{cookies, "max-age=60, public", true, ""},
		{cookies, "s-maxage=60", true, ""},
		{shared, "max-age=60", true, ""}, // off by default: a client cache's cookies are its own
	}
	for _, tt := range tests {
		rq := tt.p.ParseRequest(newReq("GET", testURL, cookie...))
		ok, why := tt.p.Storable(&rq, newResp(200, "Cache-Control", tt.cc))
		if ok != tt.stored || why != tt.reason {
			t.Errorf("%q: Storable = %v, %q; want %v, %q", tt.cc, ok, why, tt.stored, tt.reason)
		}
		if tt.p.ForEveryone(&rq, newResp(200, "Cache-Control", tt.cc), nil, why) && why != "" {
			t.Errorf("%q: a refusal for the request's cookie spoke for everyone", tt.cc)
		}
		// A response stored from a request without cookies serves one
		// with cookies only when it says so too.
		s := storedAt(tt.p, 200, "Cache-Control", tt.cc)
		want := Serve
		if !tt.stored {
			want = Unusable
		}
		if r := reuse(tt.p, s, time.Second, cookie...); r.Action != want || r.Detail != string(tt.reason) {
			t.Errorf("%q: Reuse = %+v, want %d %q", tt.cc, r, want, tt.reason)
		}
		if r := reuse(tt.p, s, time.Second); r.Action != Serve {
			t.Errorf("%q: Reuse without cookies = %+v, want Serve", tt.cc, r)
		}
	}
	// Authorization keeps its own rule, must-revalidate included.
	rq := cookies.ParseRequest(newReq("GET", testURL, "Authorization", "Bearer t", "Cookie", "a=1"))
	if ok, why := cookies.Storable(&rq, newResp(200, "Cache-Control", "max-age=60")); ok || why != ReasonAuthorization {
		t.Errorf("Authorization and Cookie: Storable = %v, %q; want false, authorization", ok, why)
	}
}
