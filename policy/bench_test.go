package policy

import (
	"net/http"
	"testing"
	"time"
)

// BenchmarkHit is the decision of every cache hit: parse the request, then
// decide on the stored response (a Vary'd one, as most are).
func BenchmarkHit(b *testing.B) {
	r := newReq("GET", "https://api.example.com/v1/items?id=42", "Accept-Encoding", "gzip, br", "Cache-Control", "max-age=300")
	rq := shared.ParseRequest(r)
	s := shared.NewResponse(&rq, newResp(200, "Cache-Control", "public, max-age=600, stale-while-revalidate=60",
		"Date", httpDate(t0), "ETag", `"abc"`, "Vary", "Accept-Encoding", "Content-Type", "application/json"), []byte("{}"), t0, t0)
	now := t0.Add(10 * time.Second)
	b.ReportAllocs()
	for b.Loop() {
		rq := shared.ParseRequest(r)
		if shared.Reuse(&rq, s, now).Action != Serve {
			b.Fatal("not a hit")
		}
	}
}

// BenchmarkMiss is the decision after an origin response: may it be stored,
// build the entry, and for how long to keep it.
func BenchmarkMiss(b *testing.B) {
	r := newReq("GET", "https://api.example.com/v1/items?id=42", "Accept-Encoding", "gzip, br")
	resp := newResp(200, "Cache-Control", "public, max-age=600", "Date", httpDate(t0), "ETag", `"abc"`,
		"Vary", "Accept-Encoding", "Content-Type", "application/json", "Connection", "keep-alive")
	body := []byte("{}")
	b.ReportAllocs()
	for b.Loop() {
		rq := shared.ParseRequest(r)
		if ok, _ := shared.Storable(&rq, resp); !ok {
			b.Fatal("not storable")
		}
		s := shared.NewResponse(&rq, resp, body, t0, t0)
		if ttl, _ := shared.Keep(s, t0); ttl <= 0 {
			b.Fatal("not kept")
		}
	}
}

func BenchmarkParseCacheControl(b *testing.B) {
	vs := []string{`public, max-age=600, s-maxage=60, stale-while-revalidate=30, private="x-user"`}
	b.ReportAllocs()
	for b.Loop() {
		parseCacheControl(vs, false)
	}
}

func BenchmarkNormalizeURL(b *testing.B) {
	u := newReq("GET", "https://API.example.com:443/v1/%7eitems?id=42", "").URL
	b.ReportAllocs()
	for b.Loop() {
		NormalizeURL(u)
	}
}

func BenchmarkHTTPDate(b *testing.B) {
	h := http.Header{"Date": {httpDate(t0)}}
	b.ReportAllocs()
	for b.Loop() {
		headerDate(h, "Date", t0)
	}
}
