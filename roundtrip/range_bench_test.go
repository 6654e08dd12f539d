package roundtrip_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetcache/fleetcache/policy"
	"github.com/fleetcache/fleetcache/roundtrip"
)

// rangeTransport is an in-process origin that serves ranges of body (with
// http.ServeContent) and counts the body bytes it sends.
type rangeTransport struct {
	body        []byte
	calls, sent atomic.Int64
}

func (o *rangeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	o.calls.Add(1)
	rec := httptest.NewRecorder()
	rec.Header().Set("Cache-Control", "max-age=3600")
	rec.Header().Set("ETag", `"v1"`)
	http.ServeContent(rec, r, "", time.Time{}, bytes.NewReader(o.body))
	o.sent.Add(int64(rec.Body.Len()))
	resp := rec.Result()
	resp.Request = r
	return resp, nil
}

// countingStore counts the reads of a store and the body bytes written.
type countingStore struct {
	roundtrip.Store
	gets, bytes atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, url, variant string) (*policy.Response, []string, error) {
	c.gets.Add(1)
	return c.Store.Get(ctx, url, variant)
}

func (c *countingStore) Put(ctx context.Context, r *policy.Response, ttl time.Duration, explicit bool) (bool, error) {
	c.bytes.Add(int64(len(r.Body)))
	return c.Store.Put(ctx, r, ttl, explicit)
}

func rangeGet(t testing.TB, tr http.RoundTripper, rng string) (*http.Response, []byte) {
	req, _ := http.NewRequest(http.MethodGet, "http://origin.test/media", nil)
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := tr.RoundTrip(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	require.NoError(t, err)
	return resp, b.Bytes()
}

func TestRange_HitIsOneStoreReadOfTheSharedBody(t *testing.T) {
	forEachStore(t, func(t *testing.T, clk *clock, s roundtrip.Store) {
		o := &rangeTransport{body: bytes.Repeat([]byte("0123456789abcdef"), 1<<16)} // 1 MiB
		store := &countingStore{Store: s}
		tr := roundtrip.New(store, roundtrip.Options{Transport: o, Now: clk.Now, StoreTimeout: roundtripStoreTimeout})
		defer tr.Close()
		rangeGet(t, tr, "")
		before := store.gets.Load()
		var allocated uint64
		for range 100 {
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			resp, body := rangeGet(t, tr, "bytes=1000-1063")
			runtime.ReadMemStats(&m1)
			allocated += m1.TotalAlloc - m0.TotalAlloc
			require.Equal(t, http.StatusPartialContent, resp.StatusCode)
			require.Equal(t, []byte("89abcdef0123456789abcdef0123456789abcdef0123456789abcdef01234567"), body)
		}
		assert.EqualValues(t, 100, store.gets.Load()-before, "one store read per range hit")
		if _, ok := s.(*memStore); ok {
			// Over Redis the read itself brings the entry into memory; from
			// the fake, what a hit allocates is the response alone.
			assert.Less(t, allocated/100, uint64(16<<10), "a range hit copies no body")
		}
		assert.EqualValues(t, 1, o.calls.Load())
	})
}

// TestRange_SequentialChunksGrowOneEntry measures the chosen design, a
// range miss forwarded and its parts combined, on the pattern it is worst
// at: a 1 MiB object read front to back in 64 KiB chunks from a cold cache.
func TestRange_SequentialChunksGrowOneEntry(t *testing.T) {
	forEachStore(t, func(t *testing.T, clk *clock, s roundtrip.Store) {
		const size, chunk = 1 << 20, 64 << 10
		o := &rangeTransport{body: bytes.Repeat([]byte("x"), size)}
		store := &countingStore{Store: s}
		tr := roundtrip.New(store, roundtrip.Options{Transport: o, Now: clk.Now, StoreTimeout: roundtripStoreTimeout})
		defer tr.Close()
		for first := 0; first < size; first += chunk {
			resp, body := rangeGet(t, tr, fmt.Sprintf("bytes=%d-%d", first, first+chunk-1))
			require.Equal(t, http.StatusPartialContent, resp.StatusCode)
			require.Len(t, body, chunk)
		}
		assert.EqualValues(t, size/chunk, o.calls.Load(), "one origin request per chunk")
		assert.EqualValues(t, size, o.sent.Load(), "each byte fetched from the origin once")
		resp, body := rangeGet(t, tr, "")
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Len(t, body, size)
		assert.Contains(t, resp.Header.Get("Cache-Status"), "hit", "the parts were combined into the whole")
		// Each combination stores the joined part again: the store receives
		// (n+1)/2 times the object for n chunks.
		t.Logf("origin: %d requests, %d bytes; store: %d bytes written", o.calls.Load(), o.sent.Load(), store.bytes.Load())
		assert.EqualValues(t, size*(size/chunk+1)/2, store.bytes.Load())
	})
}

// BenchmarkRangeHit serves 64 bytes from a stored response of each size,
// as BenchmarkHit serves whole ones: the cost does not grow with the stored
// body, which is sliced, not copied.
func BenchmarkRangeHit(b *testing.B) {
	for _, size := range []int{16 << 10, 1 << 20, 8 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			o := &rangeTransport{body: bytes.Repeat([]byte("x"), size)}
			tr := roundtrip.New(newMemStore(time.Now), roundtrip.Options{Transport: o, MaxEntryBytes: 16 << 20})
			defer tr.Close()
			rangeGet(b, tr, "")
			req, _ := http.NewRequest(http.MethodGet, "http://origin.test/media", nil)
			req.Header.Set("Range", "bytes=1000-1063")
			b.ReportAllocs()
			b.SetBytes(64)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					drain(b, tr, req)
				}
			})
			if o.calls.Load() != 1 {
				b.Fatalf("origin called %d times", o.calls.Load())
			}
		})
	}
}

// BenchmarkRangeMiss answers a cold 64 KiB range of an 8 MiB object two
// ways: forwarded (what the transport does) and by fetching the whole
// object first and serving the range from it (the alternative it does not
// take). origin-bytes/op is what the origin sent for it.
func BenchmarkRangeMiss(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 8<<20)
	for _, mode := range []string{"forward", "whole-then-range"} {
		b.Run(mode, func(b *testing.B) {
			o := &rangeTransport{body: body}
			b.ReportAllocs()
			for range b.N {
				tr := roundtrip.New(newMemStore(time.Now), roundtrip.Options{Transport: o, MaxEntryBytes: 16 << 20})
				if mode == "whole-then-range" {
					rangeGet(b, tr, "")
				}
				resp, got := rangeGet(b, tr, "bytes=0-65535")
				if resp.StatusCode != http.StatusPartialContent || len(got) != 64<<10 {
					b.Fatalf("%d %d", resp.StatusCode, len(got))
				}
				tr.Close()
			}
			b.ReportMetric(float64(o.sent.Load())/float64(b.N), "origin-bytes/op")
		})
	}
}
