package roundtrip_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/roundtrip"
)

// originTransport answers in process, so that the benchmarks measure the
// cache and not the loopback network.
type originTransport struct {
	body  string
	cc    string
	calls atomic.Int64
}

func (o *originTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	o.calls.Add(1)
	h := http.Header{}
	h.Set("Cache-Control", o.cc)
	h.Set("Content-Type", "application/json")
	h.Set("ETag", `"v1"`)
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(strings.NewReader(o.body)), ContentLength: int64(len(o.body)), Request: r,
	}, nil
}

// BenchmarkHit is the transport's share of a hit: lookup in an in-memory
// store, the policy decision, and building the caller's response.
func BenchmarkHit(b *testing.B) {
	for _, size := range []int{1 << 10, 16 << 10, 256 << 10} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			o := &originTransport{body: strings.Repeat("x", size), cc: "max-age=3600"}
			tr := roundtrip.New(newMemStore(time.Now), roundtrip.Options{Transport: o})
			defer tr.Close()
			req, _ := http.NewRequest(http.MethodGet, "http://origin.test/item", nil)
			drain(b, tr, req)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					drain(b, tr, req)
				}
			})
			if o.calls.Load() != 1 {
				b.Fatalf("origin called %d times, want 1", o.calls.Load())
			}
		})
	}
}

// BenchmarkMiss is the transport's share of a miss that is stored: the
// decision to store, buffering the body, building and storing the entry.
func BenchmarkMiss(b *testing.B) {
	o := &originTransport{body: strings.Repeat("x", 1<<10), cc: "max-age=3600"}
	tr := roundtrip.New(newMemStore(time.Now), roundtrip.Options{Transport: o})
	defer tr.Close()
	b.ReportAllocs()
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://origin.test/item/%d", n.Add(1)), nil)
			drain(b, tr, req)
		}
	})
}

func drain(b *testing.B, tr http.RoundTripper, req *http.Request) {
	resp, err := tr.RoundTrip(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}
