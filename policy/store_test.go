package policy

import (
	"net/http"
	"reflect"
	"testing"
	"time"
)

func TestStore_RFC9111_3_Storable(t *testing.T) {
	tests := []struct {
		name   string
		p      *Policy
		method string
		reqKV  []string
		status int
		kv     []string
		ok     bool
		reason Reason
	}{
		{"GET 200 heuristically cacheable", shared, "GET", nil, 200, nil, true, ""},
		{"HEAD responses are not entries", shared, "HEAD", nil, 200, []string{"Cache-Control", "max-age=60"}, false, "method"},
		{"POST bypasses", shared, "POST", nil, 200, []string{"Cache-Control", "max-age=60"}, false, "method"},
		{"several ranges bypass", shared, "GET", []string{"Range", "bytes=0-1,3-4"}, 200, nil, false, "range"},
		{"a 200 to a Range request is the whole representation", shared, "GET", []string{"Range", "bytes=0-1"}, 200, []string{"Cache-Control", "max-age=60"}, true, ""},
		{"request no-store", shared, "GET", []string{"Cache-Control", "no-store"}, 200, nil, false, "no-store"},
		{"response no-store", shared, "GET", nil, 200, []string{"Cache-Control", "max-age=60, no-store"}, false, "no-store"},
		{"must-understand overrides no-store for an understood status", shared, "GET", nil, 200, []string{"Cache-Control", "max-age=60, no-store, must-understand"}, true, ""},
		{"must-understand with a status not understood", shared, "GET", nil, 299, []string{"Cache-Control", "max-age=60, no-store, must-understand"}, false, "must-understand"},
		{"must-understand with a status not understood, without no-store", shared, "GET", nil, 499, []string{"Cache-Control", "max-age=60, must-understand"}, false, "must-understand"},
		{"status not understood, with max-age", shared, "GET", nil, 299, []string{"Cache-Control", "max-age=60"}, true, ""},
		{"status not understood, with s-maxage", shared, "GET", nil, 499, []string{"Cache-Control", "s-maxage=60"}, true, ""},
		{"status not understood, with Expires", shared, "GET", nil, 599, []string{"Expires", httpDate(t0.Add(time.Hour))}, true, ""},
		{"status not understood, without explicit freshness", shared, "GET", nil, 299, []string{"Last-Modified", httpDate(t0.Add(-time.Hour))}, false, "uncacheable"},
		{"beyond 599 is no status", shared, "GET", nil, 600, []string{"Cache-Control", "max-age=60"}, false, "status"},
		{"1xx is not final", shared, "GET", nil, 103, []string{"Cache-Control", "max-age=60"}, false, "status"},
		{"206 with one range of a known length", shared, "GET", []string{"Range", "bytes=0-3"}, 206, []string{"Cache-Control", "max-age=60", "Content-Range", "bytes 0-3/10"}, true, ""},
		{"206 heuristically cacheable", shared, "GET", []string{"Range", "bytes=0-3"}, 206, []string{"Last-Modified", httpDate(t0.Add(-time.Hour)), "Content-Range", "bytes 0-3/10"}, true, ""},
		{"206 of an unknown length", shared, "GET", []string{"Range", "bytes=0-3"}, 206, []string{"Cache-Control", "max-age=60", "Content-Range", "bytes 0-3/*"}, false, "partial"},
		{"206 with several parts", shared, "GET", []string{"Range", "bytes=0-3"}, 206, []string{"Cache-Control", "max-age=60", "Content-Type", "multipart/byteranges; boundary=x"}, false, "partial"},
		{"416 answers one request alone", shared, "GET", []string{"Range", "bytes=20-"}, 416, []string{"Cache-Control", "max-age=60", "Content-Range", "bytes */10"}, false, "status"},
		{"304 never stored as an entry", shared, "GET", nil, 304, []string{"Cache-Control", "max-age=60"}, false, "status"},
		{"500 with max-age", shared, "GET", nil, 500, []string{"Cache-Control", "max-age=60"}, true, ""},
		{"302 with public", shared, "GET", nil, 302, []string{"Cache-Control", "public"}, true, ""},
		{"302 with Expires", shared, "GET", nil, 302, []string{"Expires", "Thu, 01 Jan 2099 00:00:00 GMT"}, true, ""},
		{"302 without explicit freshness", shared, "GET", nil, 302, nil, false, "uncacheable"},
		{"500 without explicit freshness", shared, "GET", nil, 500, []string{"Last-Modified", httpDate(t0)}, false, "uncacheable"},
		{"404 heuristically cacheable", shared, "GET", nil, 404, nil, true, ""},
		{"shared: unqualified private", shared, "GET", nil, 200, []string{"Cache-Control", "private, max-age=60"}, false, "private"},
		{"shared: private=fields is stored", shared, "GET", nil, 200, []string{"Cache-Control", `private="X-User", max-age=60`}, true, ""},
		{"private cache: private", private, "GET", nil, 302, []string{"Cache-Control", "private"}, true, ""},
		{"shared: s-maxage makes it cacheable", shared, "GET", nil, 302, []string{"Cache-Control", "s-maxage=60"}, true, ""},
		{"private cache: s-maxage does not", private, "GET", nil, 302, []string{"Cache-Control", "s-maxage=60"}, false, "uncacheable"},
		{"shared: Set-Cookie", shared, "GET", nil, 200, []string{"Cache-Control", "public, max-age=60", "Set-Cookie", "s=1"}, false, "set-cookie"},
		{"private cache: Set-Cookie", private, "GET", nil, 200, []string{"Cache-Control", "max-age=60", "Set-Cookie", "s=1"}, true, ""},
		{"Authorization without permission", shared, "GET", []string{"Authorization", "Bearer x"}, 200, []string{"Cache-Control", "max-age=60"}, false, "authorization"},
		{"Authorization with public", shared, "GET", []string{"Authorization", "Bearer x"}, 200, []string{"Cache-Control", "public, max-age=60"}, true, ""},
		{"Authorization with s-maxage", shared, "GET", []string{"Authorization", "Bearer x"}, 200, []string{"Cache-Control", "s-maxage=60"}, true, ""},
		{"Authorization with must-revalidate", shared, "GET", []string{"Authorization", "Bearer x"}, 200, []string{"Cache-Control", "must-revalidate, max-age=60"}, true, ""},
		{"private cache: Authorization", private, "GET", []string{"Authorization", "Bearer x"}, 200, []string{"Cache-Control", "max-age=60"}, true, ""},
		{"Vary: * is never worth storing", shared, "GET", nil, 200, []string{"Cache-Control", "max-age=60", "Vary", "Accept, *"}, false, "vary"},
		{"no-cache is stored", shared, "GET", nil, 200, []string{"Cache-Control", "no-cache", "ETag", `"x"`}, true, ""},
		{"stale on arrival with validators", shared, "GET", nil, 200, []string{"Cache-Control", "max-age=0", "ETag", `"x"`}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rq := tt.p.ParseRequest(newReq(tt.method, testURL, tt.reqKV...))
			ok, reason := tt.p.Storable(&rq, newResp(tt.status, tt.kv...))
			if ok != tt.ok || reason != tt.reason {
				t.Errorf("Storable = %v %q, want %v %q", ok, reason, tt.ok, tt.reason)
			}
		})
	}
}

func TestStore_RFC9111_3_1_FieldsNotStored(t *testing.T) {
	resp := newResp(200,
		"Cache-Control", "max-age=60",
		"Connection", "close, X-Hop",
		"X-Hop", "1",
		"Keep-Alive", "timeout=5",
		"Proxy-Connection", "keep-alive",
		"TE", "trailers",
		"Transfer-Encoding", "chunked",
		"Upgrade", "h2c",
		"Trailer", "X-T",
		"Proxy-Authenticate", "Basic",
		"Proxy-Authorization", "Basic x",
		"Proxy-Authentication-Info", "x",
		"Content-Type", "text/plain",
		"ETag", `"v1"`,
	)
	resp.Header["x-lower"] = []string{"kept, canonicalised"}
	resp.Trailer = header("X-Checksum", "abc") // never combined with the header (§3.1)
	rq := shared.ParseRequest(newReq("GET", testURL))
	s := shared.NewResponse(&rq, resp, []byte("hi"), t0, t0)
	want := header("Cache-Control", "max-age=60", "Content-Type", "text/plain", "ETag", `"v1"`, "X-Lower", "kept, canonicalised", "Date", httpDate(t0))
	if !reflect.DeepEqual(s.Header, want) {
		t.Errorf("stored header = %v, want %v", s.Header, want)
	}
	if s.Method != "GET" || s.URL != testURL || s.Status != 200 || string(s.Body) != "hi" || s.ProtoMajor != 1 || !s.RequestTime.Equal(t0) {
		t.Errorf("stored = %+v", s)
	}
}

func TestStore_RFC9111_5_2_2_7_PrivateFields(t *testing.T) {
	kv := []string{"Cache-Control", `private="X-User, x-session", max-age=60`, "X-User", "alice", "X-Session", "s", "X-Other", "1"}
	s := storedAt(shared, 200, kv...)
	if s.Header.Get("X-User") != "" || s.Header.Get("X-Session") != "" || s.Header.Get("X-Other") != "1" {
		t.Errorf("shared cache kept private fields: %v", s.Header)
	}
	s = storedAt(private, 200, kv...)
	if s.Header.Get("X-User") != "alice" {
		t.Errorf("private cache dropped private fields: %v", s.Header)
	}
}

func TestStore_RFC9111_5_2_2_4_NoCacheFields(t *testing.T) {
	for _, p := range []*Policy{shared, private} {
		s := storedAt(p, 200, "Cache-Control", "max-age=60, no-cache=X-Token", "X-Token", "t", "X-Other", "1")
		if s.Header.Get("X-Token") != "" || s.Header.Get("X-Other") != "1" {
			t.Errorf("no-cache field kept: %v", s.Header)
		}
		// The rest is reused without revalidation.
		wantAction(t, reuse(p, s, time.Second), Serve, "")
	}
}

func TestStore_ResponseTimesAndVaryRecorded(t *testing.T) {
	rq := shared.ParseRequest(newReq("GET", testURL, "Accept-Encoding", "gzip,  br", "accept-language", "en"))
	// Members that are no field name (RFC 9110 §5.1) name no request field.
	s := shared.NewResponse(&rq, newResp(200, "Vary", "accept-encoding, Accept-Language, x-a\tx-b", "Vary", `Accept-Encoding, "X-Q", `), nil, t0, t0.Add(time.Second))
	if !reflect.DeepEqual(s.Vary, []string{"Accept-Encoding", "Accept-Language"}) || !reflect.DeepEqual(s.VaryValues, []string{"gzip,br", "en"}) {
		t.Errorf("Vary = %q %q", s.Vary, s.VaryValues)
	}
	if !s.ResponseTime.Equal(t0.Add(time.Second)) {
		t.Errorf("ResponseTime = %v", s.ResponseTime)
	}
}

func TestStore_RFC9111_5_5_NoWarningGenerated(t *testing.T) {
	s := storedAt(shared, 200, "Cache-Control", "max-age=1", "ETag", `"a"`)
	f, _ := shared.Freshen(s, newResp(304, "ETag", `"a"`), t0, t0.Add(time.Hour))
	h, _ := shared.FreshenHead(s, newResp(200, "ETag", `"a"`), t0, t0.Add(time.Hour))
	for _, got := range []http.Header{s.Header, f.Header, h.Header} {
		if _, ok := got["Warning"]; ok {
			t.Errorf("Warning generated: %v", got)
		}
	}
}

func TestStore_RFC9110_6_6_1_DateAdded(t *testing.T) {
	s := storedAt(shared, 200, "Cache-Control", "max-age=60", "ETag", `"a"`)
	if got := s.Header.Get("Date"); got != httpDate(t0) {
		t.Errorf("Date = %q, want the receipt time", got)
	}
	kept := storedAt(shared, 200, "Date", httpDate(t0.Add(-time.Minute)))
	if got := kept.Header.Get("Date"); got != httpDate(t0.Add(-time.Minute)) {
		t.Errorf("Date replaced: %q", got)
	}
	later := t0.Add(time.Hour)
	for _, fresh := range []*Response{
		must(shared.Freshen(s, newResp(304, "ETag", `"a"`), later, later)),
		must(shared.FreshenHead(s, newResp(200, "ETag", `"a"`), later, later)),
	} {
		if got := fresh.Header.Get("Date"); got != httpDate(later) {
			t.Errorf("freshened Date = %q, want %q", got, httpDate(later))
		}
		wantAction(t, reuse(shared, fresh, time.Hour+time.Second), Serve, "")
	}
}

func must(s *Response, ok bool) *Response {
	if !ok {
		panic("not selected")
	}
	return s
}

// RFC 9111 §4.3.3: a full response to a validation may replace what is
// stored; one that may not be stored removes it only when the refusal
// speaks for the URL's other requests too, not when it may come from this
// request's credentials, cookies, negotiation or conditions.
func TestForEveryone_RFC9111_4_3_3_OnlyTheResponseSpeaksForEveryone(t *testing.T) {
	stored := storedAt(shared, 200, "Cache-Control", "max-age=60", "ETag", `"v1"`)
	tests := []struct {
		name   string
		p      *Policy
		reqKV  []string
		status int
		kv     []string
		stored *Response
		want   bool
	}{
		{"no-store", shared, nil, 200, []string{"Cache-Control", "no-store"}, stored, true},
		{"private", shared, nil, 200, []string{"Cache-Control", "private"}, stored, true},
		{"private to a request with Authorization", shared, []string{"Authorization", "Bearer x"}, 200, []string{"Cache-Control", "private"}, stored, false},
		{"no-store to a request with a cookie", shared, []string{"Cookie", "s=1"}, 200, []string{"Cache-Control", "no-store"}, stored, false},
		{"no-store to a request with a cookie, private cache", private, []string{"Cookie", "s=1"}, 200, []string{"Cache-Control", "no-store"}, stored, true},
		{"Set-Cookie to a request with a cookie", shared, []string{"Cookie", "s=1"}, 200, []string{"Set-Cookie", "s=2", "Cache-Control", "max-age=60", "ETag", `"v2"`}, stored, false},
		{"Set-Cookie with a new validator", shared, nil, 200, []string{"Set-Cookie", "s=2", "Cache-Control", "max-age=60", "ETag", `"v2"`}, stored, true},
		{"Set-Cookie, same validator", shared, nil, 200, []string{"Set-Cookie", "s=2", "Cache-Control", "max-age=60", "ETag", `"v1"`}, stored, false},
		{"Set-Cookie on a plain miss", shared, nil, 200, []string{"Set-Cookie", "s=2"}, nil, true},
		{"406 to the request's Accept", shared, []string{"Accept", "application/xml"}, 406, nil, stored, false},
		{"406 with no-store", shared, []string{"Accept", "application/xml"}, 406, []string{"Cache-Control", "no-store"}, stored, false},
		{"429 on a plain miss", shared, nil, 429, nil, nil, false},
		{"404: the resource is gone", shared, nil, 404, []string{"ETag", `"gone"`}, stored, true},
		{"304 to the caller's own conditions", shared, nil, 304, nil, nil, false},
		{"200 without cache headers, no new validator", shared, nil, 200, nil, stored, false},
		{"too large, new Last-Modified", shared, nil, 200, []string{"Last-Modified", httpDate(t0)}, storedAt(shared, 200, "Last-Modified", httpDate(t0.Add(-time.Hour))), true},
		{"request no-store", shared, []string{"Cache-Control", "no-store"}, 200, []string{"Cache-Control", "max-age=60"}, stored, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rq := tt.p.ParseRequest(newReq("GET", testURL, tt.reqKV...))
			resp := newResp(tt.status, tt.kv...)
			ok, why := tt.p.Storable(&rq, resp)
			if ok {
				why = ReasonTooLarge // stored by policy, refused by the cache's size limit
			}
			if got := tt.p.ForEveryone(&rq, resp, tt.stored, why); got != tt.want {
				t.Errorf("ForEveryone(%q) = %v, want %v", why, got, tt.want)
			}
		})
	}
	for _, why := range []Reason{ReasonURL, ReasonMethod, ReasonBody, ReasonOverride, ReasonRange, ReasonPrecondition, ReasonAuthorization} {
		rq := shared.ParseRequest(newReq("GET", testURL))
		if shared.ForEveryone(&rq, newResp(200, "Cache-Control", "no-store"), stored, why) {
			t.Errorf("ForEveryone(%q) = true: a reason of the request's own", why)
		}
	}
}
