package rediscache

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/fleetcache/fleetcache/internal/storetest"
	"github.com/fleetcache/fleetcache/policy"
)

func sampleResponse(body []byte) *policy.Response {
	return &policy.Response{
		Method:     "GET",
		URL:        "https://example.com/a/b?q=1",
		Status:     200,
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header: http.Header{
			"Content-Type":  {"text/html; charset=utf-8"},
			"Cache-Control": {"max-age=60", "stale-while-revalidate=30"},
			"Etag":          {`"abc"`},
			"Vary":          {"Accept-Encoding"},
		},
		Body:         body,
		RequestTime:  time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC),
		ResponseTime: time.Date(2025, 3, 1, 12, 0, 1, 5, time.UTC),
		Vary:         []string{"Accept-Encoding"},
		VaryValues:   []string{"gzip"},
	}
}

func TestEncodeDecode_RoundTrip(t *testing.T) {
	noVary := sampleResponse([]byte("hello"))
	noVary.Vary, noVary.VaryValues = nil, nil
	head := sampleResponse(nil)
	head.Method, head.Status, head.ProtoMajor, head.ProtoMinor = "HEAD", 304, 2, 0
	bare := &policy.Response{Method: "GET", URL: "http://x/", Status: 204}
	multi := sampleResponse(bytes.Repeat([]byte{0, 0xff, '\n'}, 100_000))
	multi.Vary = []string{"Accept", "Accept-Language", "X-Empty"}
	multi.VaryValues = []string{"text/html", "en, fr", ""}
	multi.Header["X-Empty"] = []string{} // decodes as empty, not nil
	multi.Header["X-Many"] = []string{"", "a", "b,c"}
	for _, tc := range []struct {
		name string
		r    *policy.Response
	}{
		{"vary", sampleResponse([]byte("<p>hi</p>"))},
		{"no vary", noVary},
		{"head 304 http2 no body", head},
		{"zero times no header", bare},
		{"binary body, several varies and values", multi},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := Encode(nil, tc.r)
			got, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			storetest.Equal(t, got, tc.r)
			got2, err := decodeString(string(b))
			if err != nil {
				t.Fatal(err)
			}
			storetest.Equal(t, got2, tc.r)
		})
	}
}

func TestEncode_AppendsToDst(t *testing.T) {
	r := sampleResponse([]byte("body"))
	b := Encode([]byte("prefix"), r)
	if !bytes.HasPrefix(b, []byte("prefix")) {
		t.Fatalf("dst prefix lost: %q", b[:10])
	}
	got, err := Decode(b[len("prefix"):])
	if err != nil {
		t.Fatal(err)
	}
	storetest.Equal(t, got, r)
}

// The body is the hit path's bulk: it must be handed out in place, not
// copied.
func TestDecode_BodyAliasesInput(t *testing.T) {
	b := Encode(nil, sampleResponse(bytes.Repeat([]byte("x"), 4096)))
	r, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if &r.Body[0] != &b[len(b)-tailLen-4096] {
		t.Error("Decode copied the body")
	}
	s := string(b)
	r, err = decodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	if unsafe.Pointer(&r.Body[0]) != unsafe.Pointer(unsafe.StringData(s[len(s)-tailLen-4096:])) {
		t.Error("decodeString copied the body")
	}
	if cap(r.Body) != len(r.Body) {
		t.Errorf("body cap %d > len %d: an append would overwrite the trailer", cap(r.Body), len(r.Body))
	}
}

// reseal recomputes the checksum of an entry changed by a test, so that the
// decoder's checks behind the checksum are reached.
func reseal(b []byte) []byte {
	sum := xxhash.Sum64
	if len(b) >= headLen+8 && b[2] == formatVersion {
		sum = checksum
	}
	binary.LittleEndian.PutUint64(b[len(b)-8:], sum(b[:len(b)-8]))
	return b
}

// encodeV1 is Encode as format version 1 wrote it: no purge time, no tags.
func encodeV1(r *policy.Response) []byte {
	c := *r
	c.Tags, c.Purged = nil, time.Time{}
	v2 := Encode(nil, &c)
	metaEnd := len(v2) - tailLen - len(r.Body)
	b := append([]byte(nil), v2[:headLenV1]...)
	b = append(b, v2[headLen:metaEnd-1]...) // the last byte is the tag count, 0
	b = append(b, v2[metaEnd:]...)
	b[2] = 1
	return reseal(b)
}

func TestDecode_Version1(t *testing.T) {
	r := sampleResponse([]byte("body"))
	got, err := Decode(encodeV1(r))
	if err != nil {
		t.Fatal(err)
	}
	if got.URL != r.URL || string(got.Body) != "body" || got.Tags != nil || !got.Purged.IsZero() {
		t.Errorf("Decode(version 1) = %+v", got)
	}
}

func TestEncodeDecode_TagsAndPurgeTime(t *testing.T) {
	r := sampleResponse([]byte("body"))
	r.Tags = []string{"product-42", "http://example.com listing"}
	r.Purged = time.Date(2026, 3, 10, 12, 0, 0, 5e6, time.UTC)
	got, err := Decode(Encode(nil, r))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Tags, r.Tags) || !got.Purged.Equal(r.Purged) {
		t.Errorf("Tags %q Purged %v, want %q %v", got.Tags, got.Purged, r.Tags, r.Purged)
	}
}

func TestDecode_Corrupt(t *testing.T) {
	good := Encode(nil, sampleResponse([]byte("body")))
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"truncated header", good[:3]},
		{"truncated tail", good[:len(good)-1]},
		{"foreign: plain text", []byte("hello, this is not a cache entry at all")},
		{"foreign: JSON", []byte(`{"status":200,"body":"aGVsbG8="}`)},
		{"future version", edit(func(b []byte) []byte { b[2] = formatVersion + 1; return reseal(b) })},
		{"unknown flags", edit(func(b []byte) []byte { b[3] = 1; return reseal(b) })},
		{"purge time without its check", edit(func(b []byte) []byte { b[4] = 1; return reseal(b) })},
		{"flipped body bit", edit(func(b []byte) []byte { b[len(b)-tailLen-1] ^= 1; return b })},
		{"body length beyond value", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[len(b)-tailLen:], uint32(len(b)))
			return reseal(b)
		})},
		{"body length eats meta", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[len(b)-tailLen:], uint32(len(b)-headLen-tailLen))
			return reseal(b)
		})},
		{"status zero", reseal(Encode(nil, &policy.Response{Method: "GET", URL: "http://x/"}))},
		{"status above 999", reseal(Encode(nil, &policy.Response{Method: "GET", URL: "http://x/", Status: 1000}))},
		{"no URL", reseal(Encode(nil, &policy.Response{Method: "GET", Status: 200}))},
		{"meta with trailing byte", edit(func(b []byte) []byte {
			// Move the body length by one so that the meta part ends with
			// the body's first byte.
			n := binary.LittleEndian.Uint32(b[len(b)-tailLen:])
			binary.LittleEndian.PutUint32(b[len(b)-tailLen:], n-1)
			return reseal(b)
		})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Decode(tc.b)
			if !errors.Is(err, ErrCorrupt) || r != nil {
				t.Fatalf("Decode = %v, %v; want nil, ErrCorrupt", r, err)
			}
			if _, err := decodeString(string(tc.b)); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeString err = %v, want ErrCorrupt", err)
			}
		})
	}
}

// Every truncation and every single-bit flip of an entry is detected.
func TestDecode_EveryTruncationAndBitFlip(t *testing.T) {
	good := Encode(nil, sampleResponse([]byte("a short body")))
	for n := range len(good) {
		if _, err := Decode(good[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d: err = %v", n, err)
		}
	}
	for i := range len(good) * 8 {
		b := bytes.Clone(good)
		b[i/8] ^= 1 << (i % 8)
		if _, err := Decode(b); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("bit %d flipped: err = %v", i, err)
		}
	}
}

// FuzzDecode: no input panics or allocates out of proportion; whatever
// decodes re-encodes to the same response, and both decoders agree.
//
//	go test -run='^$' -fuzz=FuzzDecode -fuzztime=60s ./rediscache/
func FuzzDecode(f *testing.F) {
	f.Add(Encode(nil, sampleResponse([]byte("hello"))))
	f.Add(Encode(nil, &policy.Response{Method: "HEAD", URL: "http://x/", Status: 204}))
	f.Add([]byte{magic0, magic1, formatVersion, 0})
	f.Add([]byte("not an entry"))
	f.Fuzz(func(t *testing.T, b []byte) {
		// The fuzzer rarely forges a checksum; seal half of its inputs
		// so that the parser behind the checksum is explored too.
		if len(b) >= headLen+tailLen && b[0]&1 == 1 {
			b[0], b[1], b[2], b[3] = magic0, magic1, formatVersion, 0
			reseal(b)
		}
		r, err := Decode(b)
		r2, err2 := decodeString(string(b))
		if (err == nil) != (err2 == nil) {
			t.Fatalf("Decode err %v, decodeString err %v", err, err2)
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) || !errors.Is(err2, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		storetest.Equal(t, r2, r)
		again, err := Decode(Encode(nil, r))
		if err != nil {
			t.Fatalf("re-encoded entry does not decode: %v", err)
		}
		storetest.Equal(t, again, r)
	})
}

var benchSizes = []int{1 << 10, 16 << 10, 256 << 10}

// reportPerKiB adds ns/KiB, the figure docs/store.md quotes.
func reportPerKiB(b *testing.B, size int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(float64(size)/1024), "ns/KiB")
}

func BenchmarkEncode(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			r := sampleResponse(bytes.Repeat([]byte("x"), size))
			buf := Encode(nil, r)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				buf = Encode(buf[:0], r)
			}
			reportPerKiB(b, size)
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			s := string(Encode(nil, sampleResponse(bytes.Repeat([]byte("x"), size))))
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decodeString(s); err != nil {
					b.Fatal(err)
				}
			}
			reportPerKiB(b, size)
		})
	}
}
