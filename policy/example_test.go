package policy_test

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/fleetcache/fleetcache/policy"
)

func Example() {
	p := policy.New(policy.Options{}) // a shared cache
	sent := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

	r, _ := http.NewRequest("GET", "https://example.com/items", nil)
	rq := p.ParseRequest(r)
	resp := &http.Response{StatusCode: 200, Header: http.Header{
		"Cache-Control": {"max-age=60"},
		"Date":          {sent.Format(http.TimeFormat)},
	}}
	if ok, reason := p.Storable(&rq, resp); !ok {
		fmt.Println("not stored:", reason)
		return
	}
	stored := p.NewResponse(&rq, resp, []byte("[]"), sent, sent)
	keep, _ := p.Keep(stored, sent)
	fmt.Println("keep for", keep)

	later := p.ParseRequest(r)
	d := p.Reuse(&later, stored, sent.Add(20*time.Second))
	fmt.Println(d.Action == policy.Serve, d.Age, d.TTL)
	// Output:
	// keep for 1m0s
	// true 20s 40s
}

func ExampleConditional() {
	p := policy.New(policy.Options{})
	r, _ := http.NewRequest("GET", "https://example.com/items", nil)
	rq := p.ParseRequest(r)
	stored := &policy.Response{Method: "GET", URL: rq.URL, Status: 200, Header: http.Header{
		"Etag":          {`"v7"`},
		"Last-Modified": {"Tue, 10 Mar 2026 11:00:00 GMT"},
	}}
	req, ok := policy.Conditional(&rq, stored)
	fmt.Println(ok, req.Header.Get("If-None-Match"), req.Header.Get("If-Modified-Since"))
	// Output: true "v7" Tue, 10 Mar 2026 11:00:00 GMT
}

func ExampleUnconditional() {
	p := policy.New(policy.Options{})
	r, _ := http.NewRequest("GET", "https://example.com/items", nil)
	r.Header.Set("If-None-Match", `"client-copy"`)
	rq := p.ParseRequest(r)
	fill := policy.Unconditional(&rq) // the caller's validators are answered later, by NotModified
	fmt.Println(fill.Header.Get("If-None-Match") == "", r.Header.Get("If-None-Match"))
	// Output: true "client-copy"
}

func ExamplePolicy_Freshen() {
	p := policy.New(policy.Options{})
	stored := &policy.Response{Method: "GET", Status: 200, Header: http.Header{
		"Etag":          {`"v7"`},
		"Cache-Control": {"max-age=60"},
	}}
	notModified := &http.Response{StatusCode: 304, Header: http.Header{
		"Etag":          {`"v7"`},
		"Cache-Control": {"max-age=600"},
	}}
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	fresh, ok := p.Freshen(stored, notModified, now, now)
	fmt.Println(ok, fresh.Header.Get("Cache-Control"))
	// Output: true max-age=600
}

func ExampleNotModified() {
	r, _ := http.NewRequest("GET", "https://example.com/items", nil)
	r.Header.Set("If-None-Match", `W/"v7"`)
	stored := &policy.Response{Method: "GET", Status: 200, Header: http.Header{"Etag": {`"v7"`}}}
	fmt.Println(policy.NotModified(r, stored))
	// Output: true
}

func ExampleInvalidates() {
	r, _ := http.NewRequest("POST", "https://example.com/items", nil)
	resp := &http.Response{StatusCode: 201, Header: http.Header{
		"Location":         {"/items/42"},
		"Content-Location": {"https://other.example/items/42"}, // another origin: left alone
	}}
	fmt.Println(policy.Invalidates(r, resp))
	// Output: [https://example.com/items https://example.com/items/42]
}

func ExampleNormalizeURL() {
	r, _ := http.NewRequest("GET", "HTTPS://Example.COM:443/%7euser?b=2&a=1#top", nil)
	fmt.Println(policy.NormalizeURL(r.URL))
	// Output: https://example.com/~user?b=2&a=1
}

func ExampleVariant() {
	names := []string{"Accept-Encoding"}
	r, _ := http.NewRequest("GET", "https://example.com/", nil)
	r.Header.Set("Accept-Encoding", "gzip,   br")
	fmt.Println(policy.Variant(names, policy.VaryValues(names, r.Header)))
	// Output: Accept-Encoding:7:gzip,br
}

func ExamplePolicy_StaleIfError() {
	p := policy.New(policy.Options{})
	at := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	r, _ := http.NewRequest("GET", "https://example.com/items", nil)
	rq := p.ParseRequest(r)
	stored := &policy.Response{Method: "GET", URL: rq.URL, Status: 200, RequestTime: at, ResponseTime: at,
		Header: http.Header{"Cache-Control": {"max-age=60, stale-if-error=300"}}}
	// The origin answered 503 two minutes after the entry went stale.
	fmt.Println(p.StaleIfError(&rq, stored, at.Add(3*time.Minute)))
	// Output: true
}

func ExampleCacheStatus() {
	h := http.Header{}
	policy.CacheStatus{Fwd: "uri-miss", FwdStatus: 200, Stored: true}.AppendTo(h, "fleetcache")
	fmt.Println(h.Get("Cache-Status"))
	fmt.Println(policy.CacheStatus{Hit: true, TTL: 42 * time.Second, HasTTL: true}.String("fleetcache"))
	// Output:
	// fleetcache; fwd=uri-miss; fwd-status=200; stored
	// fleetcache; hit; ttl=42
}

// A response that came through a CDN and fleetcache carries a member of
// each; fleetcache's is the last one that names it.
func ExampleParseCacheStatus() {
	h := http.Header{"Cache-Status": {`ExampleCDN; fwd=uri-miss; key="GET /a", fleetcache; hit; ttl=42`}}
	members, err := policy.ParseCacheStatus(h)
	if err != nil {
		fmt.Println(err) // a member it could not read was skipped
	}
	for _, m := range members {
		fmt.Printf("%s: hit=%t fwd=%q ttl=%v\n", m.Cache, m.Hit, m.Fwd, m.TTL)
	}
	// Output:
	// ExampleCDN: hit=false fwd="uri-miss" ttl=0s
	// fleetcache: hit=true fwd="" ttl=42s
}

func ExamplePolicy_Part() {
	p := policy.New(policy.Options{})
	r, _ := http.NewRequest("GET", "https://example.com/video", nil)
	r.Header.Set("Range", "bytes=-4")
	rq := p.ParseRequest(r)
	stored := &policy.Response{Method: "GET", URL: rq.URL, Status: 200, Header: http.Header{}, Body: []byte("0123456789")}
	part := p.Part(&rq, stored) // Part.Body is a slice of stored.Body
	fmt.Println(part.Status, part.ContentRange, string(part.Body))
	// Output: 206 bytes 6-9/10 6789
}

func ExamplePolicy_Complete() {
	p := policy.New(policy.Options{})
	r, _ := http.NewRequest("GET", "https://example.com/video", nil)
	rq := p.ParseRequest(r) // the whole representation
	stored := &policy.Response{Method: "GET", URL: rq.URL, Status: 206, Header: http.Header{
		"Content-Range": {"bytes 0-3/10"},
		"Etag":          {`"v1"`},
	}, Body: []byte("0123")}
	req, ok := p.Complete(&rq, stored, 8<<20)
	fmt.Println(ok, req.Header.Get("Range"), req.Header.Get("If-Range"))
	// The origin's 206 for bytes 4-9 is then joined to the stored part.
	resp := &http.Response{StatusCode: 206, Header: http.Header{"Content-Range": {"bytes 4-9/10"}, "Etag": {`"v1"`}}}
	whole, ok := p.Combine(stored, resp, []byte("456789"), time.Time{}, time.Time{})
	fmt.Println(ok, whole.Status, string(whole.Body))
	// Output:
	// true bytes=4- "v1"
	// true 200 0123456789
}

func ExamplePolicy_ForEveryone() {
	p := policy.New(policy.Options{})
	r, _ := http.NewRequest("GET", "https://example.com/items", nil)
	stored := &policy.Response{Method: "GET", URL: "https://example.com/items", Status: 200, Header: http.Header{"Etag": {`"v1"`}}}

	// A revalidation answered "private" for a caller with a cookie: the
	// answer may be that caller's own, and the stored response stays.
	r.Header.Set("Cookie", "session=1")
	rq := p.ParseRequest(r)
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Cache-Control": {"private"}}}
	_, why := p.Storable(&rq, resp)
	fmt.Println(why, p.ForEveryone(&rq, resp, stored, why))

	// The same answer to a caller without one speaks for everyone.
	r.Header.Del("Cookie")
	rq = p.ParseRequest(r)
	fmt.Println(why, p.ForEveryone(&rq, resp, stored, why))
	// Output:
	// private false
	// private true
}

func ExamplePolicy_ParseRequest_bypass() {
	p := policy.New(policy.Options{})
	withBody, _ := http.NewRequest("GET", "https://example.com/search", strings.NewReader(`{"q":"x"}`))
	override, _ := http.NewRequest("GET", "https://example.com/items", nil)
	override.Header.Set("X-HTTP-Method-Override", "DELETE")
	for _, r := range []*http.Request{withBody, override} {
		rq := p.ParseRequest(r)
		fmt.Println(rq.Bypass)
	}
	// Output:
	// body
	// override
}

// A request with a field that frameworks read as another method or target
// is not the request the cache keys on: it bypasses the cache.
func ExampleOverrideFields() {
	p := policy.New(policy.Options{})
	r, _ := http.NewRequest("GET", "https://example.com/items", nil)
	r.Header.Set("X-HTTP-Method-Override", "DELETE")
	rq := p.ParseRequest(r)
	fmt.Println(rq.Bypass, len(policy.OverrideFields()) > 0)
	// Output: override true
}

// A 200 to a HEAD freshens the stored GET response when it still
// describes it (RFC 9111 §4.3.5); when its validator differs, it does not,
// and the stored response should be revalidated.
func ExamplePolicy_FreshenHead() {
	p := policy.New(policy.Options{})
	stored := &policy.Response{Method: "GET", Status: 200, Header: http.Header{
		"Etag":          {`"v7"`},
		"Cache-Control": {"max-age=60"},
	}, Body: []byte("body")}
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	head := &http.Response{StatusCode: 200, Header: http.Header{"Etag": {`"v7"`}, "Cache-Control": {"max-age=600"}}}
	fresh, ok := p.FreshenHead(stored, head, now, now)
	fmt.Println(ok, fresh.Header.Get("Cache-Control"), string(fresh.Body))
	head.Header.Set("Etag", `"v8"`)
	_, ok = p.FreshenHead(stored, head, now, now)
	fmt.Println(ok)
	// Output:
	// true max-age=600 body
	// false
}

// Covers says whether a stored response holds what a request asks for: a
// stored part of a representation answers only the ranges inside it.
func ExamplePolicy_Covers() {
	p := policy.New(policy.Options{})
	part := &policy.Response{Method: "GET", Status: 206, Header: http.Header{
		"Content-Range": {"bytes 0-3/10"},
		"Etag":          {`"v1"`},
	}, Body: []byte("0123")}
	for _, rng := range []string{"bytes=0-1", "bytes=2-7", ""} {
		r, _ := http.NewRequest("GET", "https://example.com/video", nil)
		if rng != "" {
			r.Header.Set("Range", rng)
		}
		rq := p.ParseRequest(r)
		fmt.Printf("%q %t\n", rng, p.Covers(&rq, part))
	}
	// Output:
	// "bytes=0-1" true
	// "bytes=2-7" false
	// "" false
}

// Cache groups are a Structured Fields list of strings (RFC 9875 §2);
// members of other types are ignored.
func ExampleGroups() {
	fmt.Printf("%q\n", policy.Groups([]string{`"products", "eu";region, 42, "a\"b"`}))
	// Output: ["products" "eu" "a\"b"]
}

// A response to an unsafe method invalidates the groups it names, of the
// request's origin only (RFC 9875 §3); on a safe method it is ignored.
func ExampleInvalidatedGroups() {
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Cache-Group-Invalidation": {`"products"`}}}
	post, _ := http.NewRequest("POST", "https://Shop.example/cart", nil)
	get, _ := http.NewRequest("GET", "https://shop.example/cart", nil)
	fmt.Printf("%q %q\n", policy.InvalidatedGroups(post, resp), policy.InvalidatedGroups(get, resp))
	// Output: ["https://shop.example products"] []
}

// A stored response's tags come from its tag fields and its Cache-Groups.
func ExamplePolicy_TagFields() {
	p := policy.New(policy.Options{TagFields: []string{"Surrogate-Key"}})
	req, _ := http.NewRequest("GET", "https://shop.example/products/42", nil)
	rq := p.ParseRequest(req)
	resp := &http.Response{StatusCode: 200, Header: http.Header{
		"Surrogate-Key": {"product-42 listing"},
		"Cache-Groups":  {`"catalog"`},
	}}
	stored := p.NewResponse(&rq, resp, nil, time.Now(), time.Now())
	fmt.Printf("%q %q\n", p.TagFields(), stored.Tags)
	// Output: ["Surrogate-Key"] ["https://shop.example catalog" "product-42" "listing"]
}
