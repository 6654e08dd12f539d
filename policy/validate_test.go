package policy

import (
	"net/http"
	"reflect"
	"testing"
	"time"
)

func TestValidate_RFC9111_4_3_1_Conditional(t *testing.T) {
	lm, date := httpDate(t0.Add(-time.Hour)), httpDate(t0)
	tests := []struct {
		name    string
		kv      []string
		inm, ms string
		ok      bool
	}{
		{"ETag and Last-Modified", []string{"ETag", `"v1"`, "Last-Modified", lm, "Date", date}, `"v1"`, lm, true},
		{"ETag only", []string{"ETag", `W/"v1"`, "Date", date}, `W/"v1"`, "", true},
		{"Last-Modified only", []string{"Last-Modified", lm, "Date", date}, "", lm, true},
		{"Date as a last resort", []string{"Date", date}, "", date, true},
		{"no validator at all", nil, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			caller := newReq("GET", testURL, "If-None-Match", `"mine"`, "If-Modified-Since", date, "If-Match", "*",
				"If-Unmodified-Since", date, "If-Range", `"r"`, "Accept", "text/plain")
			rq := shared.ParseRequest(caller)
			s := &Response{Method: "GET", URL: testURL, Status: 200, Header: header(tt.kv...)}
			req, ok := Conditional(&rq, s)
			if ok != tt.ok || req == caller {
				t.Fatalf("Conditional ok = %v (same request: %v)", ok, req == caller)
			}
			if req.Header.Get("If-None-Match") != tt.inm || req.Header.Get("If-Modified-Since") != tt.ms ||
				req.Header.Get("If-Match") != "" || req.Header.Get("If-Unmodified-Since") != "" || req.Header.Get("If-Range") != `"r"` ||
				req.Header.Get("Accept") != "text/plain" {
				t.Errorf("conditional header = %v", req.Header)
			}
			if caller.Header.Get("If-None-Match") != `"mine"` {
				t.Error("the caller's request was changed")
			}
		})
	}
}

func TestValidate_RFC9111_4_3_2_NotModified(t *testing.T) {
	lm := t0.Add(-time.Hour)
	s := storedAt(shared, 200, "ETag", `"v1"`, "Last-Modified", httpDate(lm), "Date", httpDate(t0))
	noLM := storedAt(shared, 200, "Date", httpDate(t0))
	bare := storedAt(shared, 200)
	tests := []struct {
		name   string
		method string
		s      *Response
		kv     []string
		want   bool
	}{
		{"If-None-Match matches", "GET", s, []string{"If-None-Match", `"v1"`}, true},
		{"If-None-Match weak comparison", "GET", s, []string{"If-None-Match", `W/"v1"`}, true},
		{"If-None-Match list", "GET", s, []string{"If-None-Match", `"a", "v1"`}, true},
		{"If-None-Match list with a comma in a tag", "GET", s, []string{"If-None-Match", `"a,b", "v1"`}, true},
		{"If-None-Match several lines", "GET", s, []string{"If-None-Match", `"a"`, "If-None-Match", `"v1"`}, true},
		{"If-None-Match star", "GET", s, []string{"If-None-Match", "*"}, true},
		{"If-None-Match differs", "GET", s, []string{"If-None-Match", `"v2"`}, false},
		{"If-None-Match malformed member", "GET", s, []string{"If-None-Match", `v1, "v2`}, false},
		{"If-None-Match takes precedence over If-Modified-Since", "GET", s, []string{"If-None-Match", `"v2"`, "If-Modified-Since", httpDate(t0)}, false},
		{"If-None-Match without a stored ETag", "GET", noLM, []string{"If-None-Match", `"v1"`}, false},
		{"If-Modified-Since not modified", "GET", s, []string{"If-Modified-Since", httpDate(lm)}, true},
		{"If-Modified-Since modified", "GET", s, []string{"If-Modified-Since", httpDate(lm.Add(-time.Second))}, false},
		{"If-Modified-Since against Date", "HEAD", noLM, []string{"If-Modified-Since", httpDate(t0)}, true},
		{"If-Modified-Since against the receipt time", "GET", bare, []string{"If-Modified-Since", httpDate(t0)}, true},
		{"If-Modified-Since invalid", "GET", s, []string{"If-Modified-Since", "yesterday"}, false},
		{"If-Modified-Since twice", "GET", s, []string{"If-Modified-Since", httpDate(t0), "If-Modified-Since", httpDate(t0)}, false},
		{"no conditional", "GET", s, nil, false},
		{"not for other methods", "POST", s, []string{"If-None-Match", `"v1"`}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NotModified(newReq(tt.method, testURL, tt.kv...), tt.s); got != tt.want {
				t.Errorf("NotModified = %v, want %v", got, tt.want)
			}
		})
	}
	if NotModified(newReq("GET", testURL, "If-None-Match", "*"), storedAt(shared, 404, "Cache-Control", "max-age=60")) {
		t.Error("NotModified for a stored 404")
	}
}

func TestValidate_RFC9111_4_3_4_Selection(t *testing.T) {
	lm := httpDate(t0.Add(-time.Hour))
	tests := []struct {
		name   string
		stored []string
		got    []string
		want   bool
	}{
		{"strong ETag matches", []string{"ETag", `"a"`}, []string{"ETag", `"a"`}, true},
		{"strong ETag differs", []string{"ETag", `"a"`}, []string{"ETag", `"b"`}, false},
		{"strong ETag against a weak stored one", []string{"ETag", `W/"a"`}, []string{"ETag", `"a"`}, false},
		{"strong ETag against none", []string{"Last-Modified", lm}, []string{"ETag", `"a"`}, false},
		{"weak ETag matches", []string{"ETag", `"a"`}, []string{"ETag", `W/"a"`}, true},
		{"weak ETag differs", []string{"ETag", `W/"a"`}, []string{"ETag", `W/"b"`}, false},
		{"weak ETag and Last-Modified", []string{"ETag", `W/"a"`, "Last-Modified", lm}, []string{"ETag", `W/"a"`, "Last-Modified", lm}, true},
		{"weak ETag matches, Last-Modified differs", []string{"ETag", `W/"a"`, "Last-Modified", lm}, []string{"ETag", `W/"a"`, "Last-Modified", httpDate(t0)}, false},
		{"Last-Modified matches", []string{"Last-Modified", lm}, []string{"Last-Modified", lm}, true},
		{"Last-Modified differs", []string{"Last-Modified", lm}, []string{"Last-Modified", httpDate(t0)}, false},
		{"no validator on either side", nil, nil, true},
		{"304 without validator answering our conditional selects the stored one it came from", []string{"ETag", `"a"`}, nil, true},
		{"304 without validator, stored with Last-Modified", []string{"Last-Modified", lm}, nil, true},
		{"304 with Last-Modified only, stored with a different one", []string{"ETag", `"a"`, "Last-Modified", lm}, []string{"Last-Modified", httpDate(t0)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := storedAt(shared, 200, tt.stored...)
			fresh, ok := shared.Freshen(s, newResp(304, tt.got...), t0, t0)
			if ok != tt.want || (ok && fresh == nil) {
				t.Errorf("Freshen ok = %v, want %v", ok, tt.want)
			}
		})
	}
	if _, ok := shared.Freshen(storedAt(shared, 200), newResp(200), t0, t0); ok {
		t.Error("Freshen accepted a 200")
	}
}

func TestValidate_RFC9111_3_2_FreshenUpdatesHeader(t *testing.T) {
	s := storedAt(shared, 200, "Cache-Control", "max-age=10", "ETag", `"a"`, "Content-Length", "4",
		"Content-Type", "text/plain", "X-Old", "1", "Date", httpDate(t0))
	nm := newResp(304, "Cache-Control", "max-age=600", "ETag", `"a"`, "Content-Length", "0",
		"Content-Encoding", "gzip", "Date", httpDate(t0.Add(time.Hour)), "Connection", "X-Hop", "X-Hop", "1",
		"Set-Cookie", "s=1", "Transfer-Encoding", "chunked", "X-New", "2")
	fresh, ok := shared.Freshen(s, nm, t0.Add(time.Hour), t0.Add(time.Hour))
	if !ok {
		t.Fatal("Freshen did not select the stored response")
	}
	want := header("Cache-Control", "max-age=600", "ETag", `"a"`, "Content-Length", "4", "Content-Type", "text/plain",
		"X-Old", "1", "Date", httpDate(t0.Add(time.Hour)), "X-New", "2")
	if !reflect.DeepEqual(fresh.Header, want) {
		t.Errorf("freshened header = %v\nwant %v", fresh.Header, want)
	}
	if s.Header.Get("Cache-Control") != "max-age=10" {
		t.Error("Freshen changed the stored response")
	}
	if !fresh.ResponseTime.Equal(t0.Add(time.Hour)) || string(fresh.Body) != "body" || fresh.Status != 200 {
		t.Errorf("fresh = %+v", fresh)
	}
	wantAction(t, reuse(shared, fresh, time.Hour+time.Second), Serve, "")
	// The 304's own private="..." list applies to the merged header.
	fresh, _ = shared.Freshen(s, newResp(304, "ETag", `"a"`, "Cache-Control", `max-age=60, private="X-Old"`), t0, t0)
	if fresh.Header.Get("X-Old") != "" {
		t.Errorf("private field kept after freshening: %v", fresh.Header)
	}
}

func TestValidate_RFC9111_5_1_FreshenDropsAgeNotSentAgain(t *testing.T) {
	s := storedAt(shared, 200, "Cache-Control", "max-age=100", "Age", "90", "ETag", `"a"`)
	fresh, ok := shared.Freshen(s, newResp(304, "ETag", `"a"`), t0.Add(time.Minute), t0.Add(time.Minute))
	if !ok {
		t.Fatal("Freshen did not select the stored response")
	}
	if got := fresh.Header.Get("Age"); got != "" {
		t.Errorf("Age %q kept: it counts from the validation just done", got)
	}
	wantAction(t, reuse(shared, fresh, time.Minute+20*time.Second), Serve, "")
}

func TestValidate_RFC9111_4_3_5_FreshenHead(t *testing.T) {
	s := storedAt(shared, 200, "Cache-Control", "max-age=10", "ETag", `"a"`, "Last-Modified", httpDate(t0), "Content-Length", "4")
	noCL := storedAt(shared, 200, "Cache-Control", "max-age=10")
	tests := []struct {
		name   string
		s      *Response
		status int
		kv     []string
		want   bool
	}{
		{"validators and length match", s, 200, []string{"ETag", `"a"`, "Content-Length", "4", "Cache-Control", "max-age=99"}, true},
		{"Last-Modified only", s, 200, []string{"Last-Modified", httpDate(t0)}, true},
		{"ETag differs", s, 200, []string{"ETag", `"b"`}, false},
		{"Last-Modified differs", s, 200, []string{"ETag", `"a"`, "Last-Modified", httpDate(t0.Add(time.Second))}, false},
		{"Content-Length differs", s, 200, []string{"ETag", `"a"`, "Content-Length", "5"}, false},
		{"no validator in HEAD, stored has one", s, 200, nil, false},
		{"no validators anywhere, body length matches", noCL, 200, []string{"Content-Length", "4"}, true},
		{"no validators anywhere, body length differs", noCL, 200, []string{"Content-Length", "3"}, false},
		{"not a 200", s, 404, []string{"ETag", `"a"`}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fresh, ok := shared.FreshenHead(tt.s, newResp(tt.status, tt.kv...), t0, t0.Add(time.Minute))
			if ok != tt.want {
				t.Fatalf("FreshenHead ok = %v, want %v", ok, tt.want)
			}
			if ok && (!fresh.ResponseTime.Equal(t0.Add(time.Minute)) || string(fresh.Body) != "body") {
				t.Errorf("fresh = %+v", fresh)
			}
		})
	}
	fresh, _ := shared.FreshenHead(s, newResp(200, "ETag", `"a"`, "Cache-Control", "max-age=99"), t0, t0)
	if fresh.Header.Get("Cache-Control") != "max-age=99" {
		t.Errorf("HEAD fields not applied: %v", fresh.Header)
	}
}

func TestInvalidate_RFC9111_4_4(t *testing.T) {
	tests := []struct {
		name   string
		method string
		status int
		kv     []string
		want   []string
	}{
		{"GET is safe", "GET", 200, nil, nil},
		{"HEAD is safe", "HEAD", 200, nil, nil},
		{"OPTIONS is safe", "OPTIONS", 200, nil, nil},
		{"TRACE is safe", "TRACE", 200, nil, nil},
		{"POST 2xx", "POST", 201, nil, []string{testURL}},
		{"PUT 3xx", "PUT", 303, nil, []string{testURL}},
		{"unknown method", "PURGE", 200, nil, []string{testURL}},
		{"error response invalidates nothing", "DELETE", 500, nil, nil},
		{"4xx invalidates nothing", "DELETE", 404, nil, nil},
		{"same-origin Location and Content-Location", "POST", 201, []string{"Location", "/b?x=1", "Content-Location", "HTTP://EXAMPLE.com:80/c"},
			[]string{testURL, "http://example.com/b?x=1", "http://example.com/c"}},
		{"each once", "POST", 201, []string{"Location", "/a", "Content-Location", "http://example.com/a"}, []string{testURL}},
		{"other host", "POST", 201, []string{"Location", "http://other.example/b"}, []string{testURL}},
		{"other scheme", "POST", 201, []string{"Location", "https://example.com/b"}, []string{testURL}},
		{"other port", "POST", 201, []string{"Location", "http://example.com:8080/b"}, []string{testURL}},
		{"unparsable Location", "POST", 201, []string{"Location", "http://[::1"}, []string{testURL}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Invalidates(newReq(tt.method, testURL), newResp(tt.status, tt.kv...))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Invalidates = %q, want %q", got, tt.want)
			}
		})
	}
	if req, ok := Conditional(&Request{R: &http.Request{Method: "GET"}}, storedAt(shared, 200, "ETag", `"a"`)); !ok || req.Header.Get("If-None-Match") != `"a"` {
		t.Error("Conditional on a request without a header")
	}
	if got := Invalidates(&http.Request{Method: "POST"}, newResp(200)); got != nil {
		t.Errorf("Invalidates without a URL = %q", got)
	}
}
