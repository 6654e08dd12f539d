package policy

import (
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParse_RFC9111_5_2_CacheControl(t *testing.T) {
	type want struct {
		flags                     uint16
		maxAge, sMaxAge, swr, sie int64
	}
	tests := []struct {
		name  string
		lines []string
		want  want
	}{
		{"empty", nil, want{0, -1, -1, -1, -1}},
		{"names are case-insensitive", []string{"PUBLIC, Max-Age=60, S-MAXAGE=30"}, want{ccPublic, 60, 30, -1, -1}},
		{"quoted delta-seconds accepted", []string{`max-age="60"`}, want{0, 60, -1, -1, -1}},
		{"commas inside quotes do not split", []string{`private="a, b", max-age=5`}, want{ccPrivateFields, 5, -1, -1, -1}},
		{"escaped quote inside quoted-string", []string{`no-cache="x\"y, z", max-age=7`}, want{ccNoCacheFields, 7, -1, -1, -1}},
		{"several lines are joined", []string{"public", "max-age=10"}, want{ccPublic, 10, -1, -1, -1}},
		{"OWS and empty members", []string{" ,, no-store ,  must-revalidate , "}, want{ccNoStore | ccMustRevalidate, -1, -1, -1, -1}},
		{"token and qualified forms", []string{"no-cache, no-cache=Set-Cookie, private"}, want{ccNoCache | ccNoCacheFields | ccPrivate, -1, -1, -1, -1}},
		{"invalid delta-seconds is stale", []string{"max-age=abc"}, want{0, 0, -1, -1, -1}},
		{"negative delta-seconds is stale", []string{"max-age=-1"}, want{0, 0, -1, -1, -1}},
		{"missing value is stale", []string{"max-age"}, want{0, 0, -1, -1, -1}},
		{"overflow clamps to 2147483648", []string{"max-age=99999999999999999999999"}, want{0, 2147483648, -1, -1, -1}},
		{"equal duplicates are harmless", []string{"max-age=60", "max-age=60"}, want{0, 60, -1, -1, -1}},
		{"conflicting duplicates are stale", []string{"max-age=60, max-age=30"}, want{0, 0, -1, -1, -1}},
		{"stale windows: most restrictive", []string{"stale-while-revalidate=60, stale-while-revalidate=10, stale-if-error=5, stale-if-error=50"}, want{0, -1, -1, 10, 5}},
		{"bad stale windows are ignored", []string{"stale-while-revalidate=x, stale-if-error"}, want{0, -1, -1, -1, -1}},
		{"flags", []string{"proxy-revalidate, must-understand, immutable, only-if-cached"}, want{ccProxyRevalidate | ccMustUnderstand | ccImmutable | ccOnlyIfCached, -1, -1, -1, -1}},
		{"unknown directives ignored (§5.2.3)", []string{`foo, bar="baz, qux", max-age=1`}, want{0, 1, -1, -1, -1}},
		{"garbage after a value", []string{`max-age=5 junk, public`}, want{ccPublic, 5, -1, -1, -1}},
		{"unterminated quote", []string{`private="a, max-age=5`}, want{ccPrivateFields, -1, -1, -1, -1}},
		{"lone equals and quotes", []string{`=, "x", =5, public`}, want{ccPublic, -1, -1, -1, -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := parseCacheControl(tt.lines, false)
			got := want{d.flags, d.maxAge, d.sMaxAge, d.swr, d.sie}
			if got != tt.want {
				t.Errorf("parse %q = %+v, want %+v", tt.lines, got, tt.want)
			}
		})
	}
}

func TestParse_RFC9111_5_2_RequestDirectives(t *testing.T) {
	tests := []struct {
		name                            string
		kv                              []string
		noStore, noCache, onlyIfCached  bool
		maxAge, maxStale, minFresh, sie time.Duration
	}{
		{"none", nil, false, false, false, -1, -1, -1, -1},
		{"max-age", []string{"Cache-Control", "max-age=5"}, false, false, false, 5 * time.Second, -1, -1, -1},
		{"max-age duplicates: smallest", []string{"Cache-Control", "max-age=5, max-age=3"}, false, false, false, 3 * time.Second, -1, -1, -1},
		{"invalid max-age reads as 0", []string{"Cache-Control", "max-age=x"}, false, false, false, 0, -1, -1, -1},
		{"max-stale without value", []string{"Cache-Control", "max-stale"}, false, false, false, -1, time.Duration(math.MaxInt64), -1, -1},
		{"max-stale with value", []string{"Cache-Control", "max-stale=7, max-stale"}, false, false, false, -1, 7 * time.Second, -1, -1},
		{"invalid max-stale ignored", []string{"Cache-Control", "max-stale=x"}, false, false, false, -1, -1, -1, -1},
		{"min-fresh duplicates: largest", []string{"Cache-Control", "min-fresh=5, min-fresh=9"}, false, false, false, -1, -1, 9 * time.Second, -1},
		{"invalid min-fresh ignored", []string{"Cache-Control", "min-fresh=x"}, false, false, false, -1, -1, -1, -1},
		{"flags", []string{"Cache-Control", "no-store, no-cache, only-if-cached, stale-if-error=30"}, true, true, true, -1, -1, -1, 30 * time.Second},
		{"Pragma no-cache without Cache-Control (§5.4)", []string{"Pragma", "No-Cache"}, false, true, false, -1, -1, -1, -1},
		{"Pragma ignored with Cache-Control (§5.4)", []string{"Pragma", "no-cache", "Cache-Control", "max-age=9"}, false, false, false, 9 * time.Second, -1, -1, -1},
		{"Pragma other values", []string{"Pragma", "x-foo"}, false, false, false, -1, -1, -1, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rq := shared.ParseRequest(newReq("GET", testURL, tt.kv...))
			if rq.NoStore != tt.noStore || rq.NoCache != tt.noCache || rq.OnlyIfCached != tt.onlyIfCached ||
				rq.MaxAge != tt.maxAge || rq.MaxStale != tt.maxStale || rq.MinFresh != tt.minFresh || rq.StaleIfError != tt.sie {
				t.Errorf("ParseRequest = %+v", rq)
			}
		})
	}
}

func TestParse_RequestBypass(t *testing.T) {
	tests := []struct {
		method, target string
		kv             []string
		want           Reason
	}{
		{"GET", testURL, nil, ""},
		{"HEAD", testURL, nil, ""},
		{"POST", testURL, nil, "method"},
		{"OPTIONS", testURL, nil, "method"},
		{"GET", testURL, []string{"Range", "bytes=0-10"}, ""},
		{"GET", testURL, []string{"Range", "bytes=0-1, 5-6"}, "range"},
		{"GET", testURL, []string{"Range", "items=0-1"}, "range"},
		{"GET", testURL, []string{"Range", "bytes=5-1"}, "range"},
		{"GET", testURL, []string{"Range", "bytes=0-1", "Range", "bytes=2-3"}, "range"},
		{"HEAD", testURL, []string{"Range", "bytes=x"}, ""},
		{"GET", testURL, []string{"If-Match", `"a"`}, "precondition"},
		{"GET", testURL, []string{"If-Unmodified-Since", "Sun, 06 Nov 1994 08:49:37 GMT"}, "precondition"},
		{"GET", "/relative", nil, "url"},
		{"GET", testURL, []string{"X-HTTP-Method-Override", "DELETE"}, "override"},
		{"HEAD", testURL, []string{"X-Original-URL", "/admin"}, "override"},
		{"GET", testURL, []string{"X-Rewrite-URL", "/admin"}, "override"},
		{"GET", testURL, []string{"X-Forwarded-Scheme", "http"}, "override"},
		{"GET", testURL, []string{"X-Forwarded-Port", "1"}, "override"},
		{"GET", testURL, []string{"X-Forwarded-Host", "a.test", "X-Forwarded-Proto", "https", "X-Forwarded-For", "192.0.2.1"}, ""},
	}
	for _, tt := range tests {
		if got := shared.ParseRequest(newReq(tt.method, tt.target, tt.kv...)).Bypass; got != tt.want {
			t.Errorf("%s %s %v: Bypass = %q, want %q", tt.method, tt.target, tt.kv, got, tt.want)
		}
	}
	for _, name := range OverrideFields() {
		if got := shared.ParseRequest(newReq("GET", testURL, name, "x")).Bypass; got != ReasonOverride {
			t.Errorf("GET with %s: Bypass = %q, want override", name, got)
		}
	}
}

// RFC 9110 §9.3.1: content in a GET has no defined semantics, yet an origin
// may read it; the answer is not the URL's, and must not be stored or
// shared with callers that sent none.
func TestParse_RFC9110_9_3_1_RequestContentBypasses(t *testing.T) {
	withBody := func(method string, body io.Reader, edit func(*http.Request)) *http.Request {
		r, err := http.NewRequest(method, testURL, body)
		if err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			edit(r)
		}
		return r
	}
	tests := []struct {
		name string
		r    *http.Request
		want Reason
	}{
		{"GET without content", withBody("GET", nil, nil), ""},
		{"GET with an empty body", withBody("GET", strings.NewReader(""), nil), ""},
		{"GET with Content-Length", withBody("GET", strings.NewReader("q=1"), nil), ReasonBody},
		{"HEAD with Content-Length", withBody("HEAD", strings.NewReader("q=1"), nil), ReasonBody},
		{"GET with a body of unknown length", withBody("GET", io.MultiReader(strings.NewReader("q")), nil), ReasonBody},
		{"GET chunked, as a server reads it", withBody("GET", nil, func(r *http.Request) {
			r.ContentLength, r.TransferEncoding, r.Body = -1, []string{"chunked"}, http.NoBody
		}), ReasonBody},
		{"GET with a Transfer-Encoding field", withBody("GET", nil, func(r *http.Request) {
			r.Header.Set("Transfer-Encoding", "chunked")
		}), ReasonBody},
		{"POST stays a method bypass", withBody("POST", strings.NewReader("q=1"), nil), ReasonMethod},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rq := shared.ParseRequest(tt.r)
			if rq.Bypass != tt.want {
				t.Errorf("Bypass = %q, want %q", rq.Bypass, tt.want)
			}
			if ok, why := shared.Storable(&rq, newResp(200, "Cache-Control", "max-age=60")); tt.want != "" && (ok || why != tt.want) {
				t.Errorf("Storable = %v %q, want false %q", ok, why, tt.want)
			}
		})
	}
}

func TestParse_RFC9111_5_1_Age(t *testing.T) {
	tests := []struct {
		lines []string
		want  time.Duration
		ok    bool
	}{
		{nil, 0, false},
		{[]string{"30"}, 30 * time.Second, true},
		{[]string{" 30 "}, 30 * time.Second, true},
		{[]string{"30, 60"}, 30 * time.Second, true}, // first member of a list
		{[]string{"30", "60"}, 30 * time.Second, true},
		{[]string{"abc"}, 0, false},
		{[]string{"-5"}, 0, false},
		{[]string{"1.5"}, 0, false},
		{[]string{""}, 0, false},
		{[]string{"99999999999999999999"}, 2147483648 * time.Second, true},
	}
	for _, tt := range tests {
		got, ok := parseAge(tt.lines)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseAge(%q) = %v, %v; want %v, %v", tt.lines, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParse_RFC9110_5_6_7_HTTPDate(t *testing.T) {
	want := time.Date(1994, time.November, 6, 8, 49, 37, 0, time.UTC)
	ref := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		ref  time.Time
		want time.Time
		ok   bool
	}{
		{"Sun, 06 Nov 1994 08:49:37 GMT", ref, want, true},
		{" Sun, 06 Nov 1994 08:49:37 GMT ", ref, want, true},
		{"Sunday, 06-Nov-94 08:49:37 GMT", ref, want, true},
		{"Sun Nov  6 08:49:37 1994", ref, want, true},
		{"Sun Nov 06 08:49:37 1994", ref, want, true},
		// RFC 850: a year more than 50 years ahead is in the past.
		{"Friday, 06-Nov-76 08:49:37 GMT", ref, time.Date(2076, 11, 6, 8, 49, 37, 0, time.UTC), true},
		{"Saturday, 06-Nov-77 08:49:37 GMT", ref, time.Date(1977, 11, 6, 8, 49, 37, 0, time.UTC), true},
		{"Thursday, 06-Nov-30 08:49:37 GMT", time.Time{}, time.Date(2030, 11, 6, 8, 49, 37, 0, time.UTC), true},
		{"Sunday, 06-Nov-94 08:49:37 GMT", time.Time{}, want, true},
		{"Sun, 31 Dec 2023 23:59:60 GMT", ref, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), true}, // leap second
		// Robust to letter case in names (§5.6.7), as sloppy origins send them.
		{"SUN, 06 Nov 1994 08:49:37 GMT", ref, want, true},
		{"Sun, 06 NOV 1994 08:49:37 GMT", ref, want, true},
		{"Sun, 06 Nov 1994 08:49:37 gMT", ref, want, true},
		{"sunday, 06-nOV-94 08:49:37 gmt", ref, want, true},
		{"sUN nov  6 08:49:37 1994", ref, want, true},
		// ... but not to anything else.
		{"Thu, 18 Aug 2050 02:01:18 AEST", ref, time.Time{}, false},
		{"Thu, 18 Aug 50 02:01:18 GMT", ref, time.Time{}, false},
		{"Thu 18 Aug 2050 02:01:18 GMT", ref, time.Time{}, false},
		{"Thu, 18  Aug  2050 02:01:18 GMT", ref, time.Time{}, false},
		{"Thu, 18-Aug-2050 02:01:18 GMT", ref, time.Time{}, false},
		{"Thu, 18 Aug 2050 02.01.18 GMT", ref, time.Time{}, false},
		{"Thu, 18 Aug 2050 2:01:18 GMT", ref, time.Time{}, false},
		{"Sun, 06 Nov 1994 08:49:37 GMTX", ref, time.Time{}, false},
		{"0", ref, time.Time{}, false},
		{"", ref, time.Time{}, false},
		{"-1", ref, time.Time{}, false},
		{"Sun, 06 Nov 1994 08:49:37 UTC", ref, time.Time{}, false},
		{"Sun, 30 Feb 1994 08:49:37 GMT", ref, time.Time{}, false},
		{"Sun, 06 Foo 1994 08:49:37 GMT", ref, time.Time{}, false},
		{"Sun, 06 Nov 1994 24:49:37 GMT", ref, time.Time{}, false},
		{"Xyz, 06 Nov 1994 08:49:37 GMT", ref, time.Time{}, false},
		{"Sun, 06 Nov 1994 08-49-37 GMT", ref, time.Time{}, false},
		{"Sun, 00 Nov 1994 08:49:37 GMT", ref, time.Time{}, false},
		{"Sun, 06 ovN 1994 08:49:37 GMT", ref, time.Time{}, false},
		{"Sun, 06 Nov 19x4 08:49:37 GMT", ref, time.Time{}, false},
		{"Sun Nov  6 08:49:37 19 4", ref, time.Time{}, false},
		{"Xyz Nov  6 08:49:37 1994", ref, time.Time{}, false},
		{"Sunday, 06-Nov-9x 08:49:37 GMT", ref, time.Time{}, false},
		{"Sunday, 06 Nov 94 08:49:37 GMT", ref, time.Time{}, false},
		{"Sun, 06-Nov-94 08:49:37 GMT", ref, time.Time{}, false},
	}
	for _, tt := range tests {
		got, ok := parseHTTPDate(tt.in, tt.ref)
		if ok != tt.ok || !got.Equal(tt.want) {
			t.Errorf("parseHTTPDate(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
