package policy

import (
	"errors"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The fuzz targets prove the parsers never panic on hostile input and keep
// their invariants.

func FuzzCacheControl(f *testing.F) {
	for _, s := range []string{"max-age=60, public", `private="a, b", no-cache=x`, `max-age="5`, "=,=\"\\", "s-maxage=99999999999999999999", "max-stale, min-fresh=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, req := range []bool{false, true} {
			d := parseCacheControl(strings.Split(s, "\n"), req)
			for _, v := range []int64{d.maxAge, d.sMaxAge, d.minFresh, d.swr, d.sie} {
				if v < absent || v > maxDelta {
					t.Fatalf("%q: value %d out of range", s, v)
				}
			}
		}
		fieldNames([]string{s}, "private", func(name string) {
			if name == "" || strings.Contains(name, ",") {
				t.Fatalf("%q: bad field name %q", s, name)
			}
		})
		r := &http.Request{Method: "GET", Header: http.Header{"Cache-Control": {s}}}
		shared.ParseRequest(r)
	})
}

func FuzzTargeted(f *testing.F) {
	for _, s := range []string{"max-age=60", `private="x", a=(1 "b");p=?0, c=:AA==:`, "a=1.5;q, b", "max-age=60,", `a="\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := parseTargeted([]string{s})
		if !ok && d.flags != 0 && strings.TrimSpace(s) == "" {
			t.Fatalf("%q: empty field set flags", s)
		}
		if d.maxAge > maxDelta {
			t.Fatalf("%q: max-age %d", s, d.maxAge)
		}
		targetedFieldNames([]string{s}, "private", func(string) {})
		storedAt(shared, 200, "Fleetcache-Cache-Control", s, "Cache-Control", "max-age=1")
	})
}

// FuzzGroups: any field parses without a panic, and a list of the groups
// parsed, written again, parses to the same groups.
func FuzzGroups(f *testing.F) {
	for _, s := range []string{`"a", "b"`, `"a";p=1, tok, 1.5, ("b" "c"), :AA==:, ?1`, `"a",`, `"a\"b"`, `("x"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		groups := Groups([]string{s})
		var b strings.Builder
		for i, g := range groups {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strconv.Quote(g))
		}
		if again := Groups([]string{b.String()}); strings.Join(again, "\x00") != strings.Join(groups, "\x00") && isPrintableASCII(groups) {
			t.Fatalf("%q: groups %q, written again %q", s, groups, again)
		}
	})
}

func isPrintableASCII(ss []string) bool {
	for _, s := range ss {
		for i := 0; i < len(s); i++ {
			if s[i] < 0x20 || s[i] > 0x7e {
				return false
			}
		}
	}
	return true
}

func FuzzHTTPDate(f *testing.F) {
	for _, s := range []string{"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "0", "Sun, 99 Nov 9999 99:99:99 GMT"} {
		f.Add(s)
	}
	ref := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseHTTPDate(s, ref)
		if !ok {
			return
		}
		// A parsed date must agree with the standard library when it can read it.
		for _, layout := range []string{http.TimeFormat, time.ANSIC} {
			if want, err := time.Parse(layout, strings.Trim(s, " \t")); err == nil && !want.Equal(got) {
				t.Fatalf("%q: got %v, time.Parse %v", s, got, want)
			}
		}
	})
}

func FuzzAge(f *testing.F) {
	for _, s := range []string{"30", "-1", "1, 2", "99999999999999999999", " 7 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := parseAge([]string{s})
		if d < 0 || d > maxDelta*time.Second || (!ok && d != 0) {
			t.Fatalf("%q: %v %v", s, d, ok)
		}
		st := &Response{Header: http.Header{"Age": {s}, "Date": {s}}, ResponseTime: time.Unix(0, 0)}
		if age := currentAge(st, time.Unix(1, 0)); age < 0 {
			t.Fatalf("%q: negative age %v", s, age)
		}
	})
}

func FuzzVaryNormalise(f *testing.F) {
	for _, s := range []string{"en, de", " EN ; q=0.5 ,de", `text/html;p="a , \"B"`, `"unterminated , x`, "a\t\tb,,c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, name := range []string{"Accept-Language", "Accept", "Foo"} {
			once := VaryValues([]string{name}, http.Header{name: strings.Split(s, "\n")})[0]
			// Normalising is idempotent: a stored value and a request's
			// value that normalise alike keep doing so.
			if twice := VaryValues([]string{name}, http.Header{name: {once}})[0]; twice != once {
				t.Fatalf("%s: %q -> %q -> %q", name, s, once, twice)
			}
		}
	})
}

func FuzzRange(f *testing.F) {
	for _, s := range []string{"bytes=0-1", "bytes=-5", "bytes=9-", "bytes=0-1,2-3", "BYTES = 3-3", "bytes=99999999999999999999-"} {
		f.Add(s, "bytes 2-5/10", int64(10))
	}
	f.Fuzz(func(t *testing.T, rng, contentRange string, n int64) {
		if r, ok := parseRange(rng); ok && n >= 0 && n < maxPos {
			// A resolved range lies inside the representation.
			if first, last, ok := r.resolve(n); ok && (first < 0 || last < first || last >= n) {
				t.Fatalf("%q in %d: %d-%d", rng, n, first, last)
			}
		}
		// Whatever the stored part says and holds, answering from it never
		// reads outside its body.
		for _, body := range []string{"2345", "", "0123456789"} {
			s := &Response{Method: "GET", URL: testURL, Status: 206, Header: http.Header{"Content-Range": {contentRange}, "Etag": {`"e"`}}, Body: []byte(body)}
			rq := shared.ParseRequest(&http.Request{Method: "GET", URL: mustURL(testURL), Header: http.Header{"Range": {rng}}})
			p := shared.Part(&rq, s)
			if p.Status == 206 && len(p.Body) == 0 {
				t.Fatalf("%q of %q: empty 206", rng, contentRange)
			}
			shared.Complete(&rq, s, 1<<20)
			shared.Combine(s, &http.Response{StatusCode: 206, Header: s.Header}, s.Body, time.Time{}, time.Time{})
		}
	})
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// FuzzVary: whatever a Vary field and the request's values are, the names
// recorded are distinct, canonical list members; the request that was
// stored selects its own response (unless Vary: *); the values recorded
// are already normal; and a request whose values differ after
// normalisation names another variant.
func FuzzVary(f *testing.F) {
	for _, s := range [][2]string{
		{"Accept-Encoding", "gzip"},
		{"accept-language, Accept-Language ,, ", "en , \tfr"},
		{"Accept, *", ""},
		{`X-A,"X-B"`, "a,,b"},
		{"x-a\tx-b", " "},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, vary, value string) {
		h := http.Header{}
		fieldNamesEach(vary, func(name string) { h[textproto.CanonicalMIMEHeaderKey(name)] = []string{value} })
		rq := shared.ParseRequest(&http.Request{Method: "GET", URL: &url.URL{Scheme: "http", Host: "example.com", Path: "/v"}, Header: h})
		s := shared.NewResponse(&rq, newResp(200, "Cache-Control", "max-age=60", "Vary", vary), nil, t0, t0)
		seen := map[string]bool{}
		for i, name := range s.Vary {
			if name == "" || strings.ContainsAny(name, ", \t") || seen[name] || textproto.CanonicalMIMEHeaderKey(name) != name {
				t.Fatalf("Vary %q: bad or repeated name %q in %q", vary, name, s.Vary)
			}
			seen[name] = true
			if v := s.VaryValues[i]; string(appendNormalized(nil, []string{v}, caseOf(name))) != v {
				t.Fatalf("Vary %q: value %q is not normal", vary, v)
			}
		}
		if star := varyStar(s.Header); varyMatches(s, h) == star {
			t.Fatalf("Vary %q, value %q: the stored request selects its response: %v, Vary: * %v", vary, value, !star, star)
		}
		if len(s.Vary) == 0 {
			return
		}
		other := h.Clone()
		other[s.Vary[0]] = []string{value + "x"}
		if Variant(s.Vary, VaryValues(s.Vary, other)) == Variant(s.Vary, s.VaryValues) {
			t.Fatalf("Vary %q: values %q and %q name one variant", vary, value, value+"x")
		}
	})
}

func FuzzCacheStatus(f *testing.F) {
	for _, s := range []string{
		"fleetcache; hit; ttl=42",
		`Origin; fwd=uri-miss; fwd-status=200; stored, "CDN x"; hit; key="a,b"; detail="a \"q\"", fleetcache; collapsed`,
		"a; ttl=-999999999999999\nb; x=1.5; y=:AA==:; z=?0",
		`(a b), 1; hit, e ;hit, "open`,
		",,;=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		members, err := ParseCacheStatus(http.Header{"Cache-Status": strings.Split(s, "\n")})
		if err != nil && !errors.Is(err, ErrCacheStatus) {
			t.Fatalf("%q: error %v does not wrap ErrCacheStatus", s, err)
		}
		// What was read renders to a field that reads back the same.
		render := func(ms []CacheStatusMember) string {
			h := http.Header{}
			for _, m := range ms {
				m.AppendTo(h, m.Cache)
			}
			return h.Get("Cache-Status")
		}
		once := render(members)
		again, err := ParseCacheStatus(http.Header{"Cache-Status": {once}})
		if err != nil || len(again) != len(members) || render(again) != once {
			t.Fatalf("%q: rendered %q, read back %+v, %v", s, once, again, err)
		}
	})
}
