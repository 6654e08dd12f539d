// Package storetest is the acceptance suite of [roundtrip.Store]: every
// implementation (the Redis store on a redis-server, on miniredis and on a
// cluster, and the transport tests' in-memory fake) passes the same tests,
// so that a fake's claim to behave like the real store is checked, not
// assumed.
package storetest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/policy"
	"github.com/fleetcache/fleetcache/roundtrip"
)

// Harness is one store under test.
type Harness struct {
	Store roundtrip.Store
	// Advance lets d pass for the store: an entry whose ttl has run out is
	// gone afterwards.
	Advance func(d time.Duration)
}

// Run runs the suite, each test on a store newStore makes for it.
func Run(t *testing.T, newStore func(t *testing.T) Harness) {
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, newStore(t)) })
	}
}

const (
	u   = "http://example.com/item"
	ttl = time.Hour
)

var tests = []struct {
	name string
	run  func(t *testing.T, h Harness)
}{
	{"an empty store misses with no Vary names", func(t *testing.T, h Harness) {
		wantMiss(t, h, u, "", nil)
	}},
	{"Put then Get returns what was put", func(t *testing.T, h Harness) {
		want := response(u, "hello")
		put(t, h, want, ttl)
		Equal(t, get(t, h, u, ""), want)
	}},
	{"the stored copy is the store's own", func(t *testing.T, h Harness) {
		r := response(u, "hello")
		put(t, h, r, ttl)
		r.Body[0] = 'j'
		r.Header.Set("Content-Type", "changed")
		got := get(t, h, u, "")
		if string(got.Body) != "hello" || got.Header.Get("Content-Type") != "text/plain" {
			t.Errorf("a change to the response after Put reached the store: %q %v", got.Body, got.Header)
		}
	}},
	{"a later Put replaces the entry", func(t *testing.T, h Harness) {
		put(t, h, response(u, "one"), ttl)
		put(t, h, response(u, "two"), ttl)
		if got := get(t, h, u, ""); string(got.Body) != "two" {
			t.Errorf("Get = %q, want the second Put's", got.Body)
		}
	}},
	{"variants are stored side by side and a wrong guess learns the Vary names", func(t *testing.T, h Harness) {
		gz, br := varied(u, "gz", "gzip"), varied(u, "br", "br")
		put(t, h, gz, ttl)
		put(t, h, br, ttl)
		for _, want := range []*policy.Response{gz, br} {
			Equal(t, get(t, h, u, variantOf(want)), want)
		}
		wantMiss(t, h, u, "", []string{"Accept-Encoding"})
		wantMiss(t, h, u, policy.Variant([]string{"Accept-Encoding"}, []string{"zstd"}), []string{"Accept-Encoding"})
	}},
	{"a URL that stopped varying tells a caller asking for a variant", func(t *testing.T, h Harness) {
		put(t, h, varied(u, "gz", "gzip"), ttl)
		put(t, h, response(u, "plain"), ttl)
		if got := get(t, h, u, ""); string(got.Body) != "plain" {
			t.Errorf("Get = %q, want plain", got.Body)
		}
		wantMiss(t, h, u, policy.Variant([]string{"Accept-Encoding"}, []string{"br"}), []string{})
	}},
	{"Purge removes every variant and nothing else", func(t *testing.T, h Harness) {
		const other = "http://example.com/other"
		put(t, h, varied(u, "gz", "gzip"), ttl)
		put(t, h, varied(u, "br", "br"), ttl)
		put(t, h, response(u, "plain"), ttl)
		put(t, h, response(other, "other"), ttl)
		if err := h.Store.Purge(context.Background(), u); err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{"", variantOf(varied(u, "", "gzip")), variantOf(varied(u, "", "br"))} {
			wantMiss(t, h, u, v, nil)
		}
		if got := get(t, h, other, ""); string(got.Body) != "other" {
			t.Errorf("Purge removed another URL")
		}
	}},
	{"Purge of a URL never stored is no error", func(t *testing.T, h Harness) {
		for range 2 {
			if err := h.Store.Purge(context.Background(), "http://example.com/never"); err != nil {
				t.Fatalf("Purge: %v", err)
			}
		}
		put(t, h, response(u, "after"), ttl)
		if got := get(t, h, u, ""); string(got.Body) != "after" {
			t.Error("the store stopped storing after a Purge of nothing")
		}
	}},
	{"an entry lives for its ttl", func(t *testing.T, h Harness) {
		put(t, h, response(u, "short"), 10*time.Second)
		put(t, h, response("http://example.com/long", "long"), ttl)
		h.Advance(9 * time.Second)
		get(t, h, u, "")
		h.Advance(2 * time.Second)
		wantMiss(t, h, u, "", nil)
		get(t, h, "http://example.com/long", "")
	}},
	{"a ttl under a millisecond is not kept and is no error", func(t *testing.T, h Harness) {
		kept, err := h.Store.Put(context.Background(), response(u, "x"), time.Microsecond, true)
		if kept || err != nil {
			t.Fatalf("Put = %v, %v; want not kept, no error", kept, err)
		}
		wantMiss(t, h, u, "", nil)
	}},
	{"concurrent Puts of variants lose none", func(t *testing.T, h Harness) {
		const n = 20
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				if _, err := h.Store.Put(context.Background(), varied(u, "b", fmt.Sprint(i)), ttl, true); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		for i := range n {
			get(t, h, u, variantOf(varied(u, "", fmt.Sprint(i))))
		}
		if err := h.Store.Purge(context.Background(), u); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			wantMiss(t, h, u, variantOf(varied(u, "", fmt.Sprint(i))), nil)
		}
	}},
	{"a cancelled context fails the call", func(t *testing.T, h Harness) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, _, err := h.Store.Get(ctx, u, ""); err == nil {
			t.Error("Get with a cancelled context: no error")
		}
		if _, err := h.Store.Put(ctx, response(u, "x"), ttl, true); err == nil {
			t.Error("Put with a cancelled context: no error")
		}
		if err := h.Store.Purge(ctx, u); err == nil {
			t.Error("Purge with a cancelled context: no error")
		}
	}},
}

func response(url, body string) *policy.Response {
	return &policy.Response{
		Method: http.MethodGet, URL: url, Status: http.StatusOK, ProtoMajor: 1, ProtoMinor: 1,
		Header:       http.Header{"Content-Type": {"text/plain"}, "Cache-Control": {"max-age=60"}},
		Body:         []byte(body),
		RequestTime:  time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
		ResponseTime: time.Date(2026, 1, 2, 3, 4, 6, 7, time.UTC),
	}
}

func varied(url, body, encoding string) *policy.Response {
	r := response(url, body)
	r.Header.Set("Vary", "Accept-Encoding")
	r.Vary, r.VaryValues = []string{"Accept-Encoding"}, []string{encoding}
	return r
}

func variantOf(r *policy.Response) string { return policy.Variant(r.Vary, r.VaryValues) }

func put(t *testing.T, h Harness, r *policy.Response, ttl time.Duration) {
	t.Helper()
	kept, err := h.Store.Put(context.Background(), r, ttl, true)
	if err != nil || !kept {
		t.Fatalf("Put = %v, %v; want kept", kept, err)
	}
}

func get(t *testing.T, h Harness, url, variant string) *policy.Response {
	t.Helper()
	r, _, err := h.Store.Get(context.Background(), url, variant)
	if err != nil {
		t.Fatalf("Get(%s, %q): %v", url, variant, err)
	}
	if r == nil {
		t.Fatalf("Get(%s, %q): miss", url, variant)
	}
	return r
}

// wantMiss asserts a miss whose Vary names are vary: nil for a URL with no
// variants, empty and not nil for one that stopped varying.
func wantMiss(t *testing.T, h Harness, url, variant string, vary []string) {
	t.Helper()
	r, names, err := h.Store.Get(context.Background(), url, variant)
	if err != nil {
		t.Fatalf("Get(%s, %q): %v", url, variant, err)
	}
	if r != nil {
		t.Fatalf("Get(%s, %q) = %q, want a miss", url, variant, r.Body)
	}
	if (names == nil) != (vary == nil) || !reflect.DeepEqual(append([]string{}, names...), append([]string{}, vary...)) {
		t.Errorf("Get(%s, %q): Vary names %#v, want %#v", url, variant, names, vary)
	}
}

// Equal fails the test unless got holds what a store must keep of want:
// every field, times compared with time.Time.Equal (the location is not
// kept), an empty body equal to a nil one.
func Equal(t testing.TB, got, want *policy.Response) {
	t.Helper()
	if !got.RequestTime.Equal(want.RequestTime) || !got.ResponseTime.Equal(want.ResponseTime) {
		t.Errorf("times = %v, %v; want %v, %v", got.RequestTime, got.ResponseTime, want.RequestTime, want.ResponseTime)
	}
	if !bytes.Equal(got.Body, want.Body) {
		t.Errorf("body = %q, want %q", got.Body, want.Body)
	}
	g, w := *got, *want
	g.RequestTime, g.ResponseTime, g.Body = time.Time{}, time.Time{}, nil
	w.RequestTime, w.ResponseTime, w.Body = time.Time{}, time.Time{}, nil
	if w.Header == nil {
		w.Header = http.Header{}
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("got\n%+v\nwant\n%+v", g, w)
	}
}
