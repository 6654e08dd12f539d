// Package storetest is the acceptance suite of [roundtrip.Store] (Run) and
// of [roundtrip.FleetStore] (RunFleet): every implementation (the Redis
// store on a redis-server, on miniredis and on a cluster, and the transport
// tests' in-memory fakes) passes the same tests, so that a fake's claim to
// behave like the real store is checked, not assumed.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/coalesce"
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

// FleetHarness is one fleet store under test, as two processes of a fleet
// see it: A and B share its entries, leases and marks (a fake may give the
// same value for both).
type FleetHarness struct {
	A, B roundtrip.FleetStore
	// Advance lets d pass for the store: a lease or mark whose time has
	// run out is gone afterwards.
	Advance func(d time.Duration)
}

// RunFleet runs the suite of roundtrip.FleetStore, each test on a store
// newFleet makes for it.
func RunFleet(t *testing.T, newFleet func(t *testing.T) FleetHarness) {
	for _, tc := range fleetTests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, newFleet(t)) })
	}
}

// markerTTL is how long a mark lasts, as FleetStore.Release promises.
const markerTTL = 5 * time.Second

var fleetTests = []struct {
	name string
	run  func(t *testing.T, h FleetHarness)
}{
	{"a miss takes the lease and a peer's claim sees who holds it", func(t *testing.T, h FleetHarness) {
		l := claim(t, h.A, u, nil, "", false)
		if !l.Mine || l.Holder == "" || l.Marked || l.Key != u {
			t.Fatalf("first claim = %+v, want the lease taken", l)
		}
		if p := claim(t, h.B, u, nil, "", false); p.Mine || p.Holder != l.Holder || p.Marked {
			t.Fatalf("peer's claim = %+v, want held by %q", p, l.Holder)
		}
	}},
	{"a stored variant is returned and claims nothing, unless stale", func(t *testing.T, h FleetHarness) {
		put(t, Harness{Store: h.A}, response(u, "hello"), ttl)
		r, _, l, err := h.A.Claim(context.Background(), u, nil, "", time.Minute, false)
		if err != nil || r == nil || string(r.Body) != "hello" || l.Mine || l.Holder != "" {
			t.Fatalf("Claim = %v, %+v, %v; want the entry and no lease", r, l, err)
		}
		r, _, l, err = h.B.Claim(context.Background(), u, nil, "", time.Minute, true)
		if err != nil || r == nil || !l.Mine {
			t.Fatalf("stale Claim = %v, %+v, %v; want the entry and the lease", r, l, err)
		}
	}},
	{"a wrong guess of the Vary names claims nothing and learns them", func(t *testing.T, h FleetHarness) {
		put(t, Harness{Store: h.A}, varied(u, "gz", "gzip"), ttl)
		r, names, l, err := h.A.Claim(context.Background(), u, nil, "", time.Minute, false)
		if err != nil || r != nil || l.Mine || l.Holder != "" || !reflect.DeepEqual(names, []string{"Accept-Encoding"}) {
			t.Fatalf("Claim = %v, %v, %+v, %v; want a miss that claims nothing and names Accept-Encoding", r, names, l, err)
		}
		br := policy.Variant(names, []string{"br"})
		if l := claim(t, h.A, u, names, br, false); !l.Mine {
			t.Fatalf("Claim with the right names = %+v, want the lease", l)
		}
	}},
	{"Fill stores, ends the lease and wakes a waiting peer", func(t *testing.T, h FleetHarness) {
		l := claim(t, h.A, u, nil, "", false)
		held := claim(t, h.B, u, nil, "", false)
		woke := waitFor(h.B, held)
		kept, err := h.A.Fill(context.Background(), l, response(u, "filled"), ttl, true)
		if err != nil || !kept {
			t.Fatalf("Fill = %v, %v", kept, err)
		}
		if err := <-woke; err != nil {
			t.Fatalf("Wait: %v", err)
		}
		r, _, after, err := h.B.Claim(context.Background(), u, nil, "", time.Minute, false)
		if err != nil || r == nil || string(r.Body) != "filled" || after.Holder != "" {
			t.Fatalf("Claim after the fill = %v, %+v, %v; want the entry, no lease", r, after, err)
		}
		if p := claim(t, h.B, u, nil, "", true); !p.Mine {
			t.Fatalf("a stale claim after the fill = %+v, want the lease free", p)
		}
	}},
	{"a Fill that keeps nothing leaves the lease held", func(t *testing.T, h FleetHarness) {
		l := claim(t, h.A, u, nil, "", false)
		if kept, err := h.A.Fill(context.Background(), l, response(u, "x"), time.Microsecond, true); kept || err != nil {
			t.Fatalf("Fill = %v, %v; want not kept, no error", kept, err)
		}
		if p := claim(t, h.B, u, nil, "", false); p.Mine || p.Holder != l.Holder {
			t.Fatalf("peer's claim = %+v, want still held by %q", p, l.Holder)
		}
	}},
	{"Release frees the lease and wakes a waiting peer", func(t *testing.T, h FleetHarness) {
		l := claim(t, h.A, u, nil, "", false)
		woke := waitFor(h.B, claim(t, h.B, u, nil, "", false))
		if err := h.A.Release(context.Background(), l, false); err != nil {
			t.Fatal(err)
		}
		if err := <-woke; err != nil {
			t.Fatalf("Wait: %v", err)
		}
		if p := claim(t, h.B, u, nil, "", false); !p.Mine {
			t.Fatalf("claim after the release = %+v, want the lease", p)
		}
	}},
	{"a mark keeps the URL unleased for its time, leased or not", func(t *testing.T, h FleetHarness) {
		l := claim(t, h.A, u, nil, "", false)
		if err := h.A.Release(context.Background(), l, true); err != nil {
			t.Fatal(err)
		}
		if p := claim(t, h.B, u, nil, "", false); p.Mine || !p.Marked {
			t.Fatalf("claim of a marked URL = %+v, want marked and not leased", p)
		}
		h.Advance(markerTTL + time.Second)
		p := claim(t, h.B, u, nil, "", false)
		if !p.Mine || p.Marked {
			t.Fatalf("claim after the mark = %+v, want the lease", p)
		}
		// A mark made without the lease leaves the holder its lease.
		if err := h.A.Release(context.Background(), coalesce.Lease{Key: u}, true); err != nil {
			t.Fatal(err)
		}
		if q := claim(t, h.A, u, nil, "", false); q.Mine || !q.Marked || q.Holder != p.Holder {
			t.Fatalf("claim = %+v, want marked and still held by %q", q, p.Holder)
		}
	}},
	{"a lease outlives its ttl only in its holder's mind", func(t *testing.T, h FleetHarness) {
		old := claim(t, h.A, u, nil, "", false)
		h.Advance(2 * time.Minute)
		next := claim(t, h.B, u, nil, "", false)
		if !next.Mine {
			t.Fatalf("claim after expiry = %+v, want the lease", next)
		}
		// The old holder's release and fill end nothing of its successor's.
		if err := h.A.Release(context.Background(), old, false); err != nil {
			t.Fatal(err)
		}
		if _, err := h.A.Fill(context.Background(), old, response(u, "late"), ttl, true); err != nil {
			t.Fatal(err)
		}
		if p := claim(t, h.A, u, nil, "", true); p.Mine || p.Holder != next.Holder {
			t.Fatalf("claim = %+v, want still held by %q", p, next.Holder)
		}
	}},
	{"Wait stops with its context", func(t *testing.T, h FleetHarness) {
		claim(t, h.A, u, nil, "", false)
		held := claim(t, h.B, u, nil, "", false)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if err := h.B.Wait(ctx, held); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Wait = %v, want DeadlineExceeded", err)
		}
	}},
}

// claim claims url's lease for a minute and fails the test on an error.
func claim(t *testing.T, s roundtrip.FleetStore, url string, vary []string, variant string, stale bool) coalesce.Lease {
	t.Helper()
	_, _, l, err := s.Claim(context.Background(), url, vary, variant, time.Minute, stale)
	if err != nil {
		t.Fatalf("Claim(%s): %v", url, err)
	}
	return l
}

// waitFor starts s.Wait on l and returns where its error will be sent.
func waitFor(s roundtrip.FleetStore, l coalesce.Lease) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- s.Wait(ctx, l)
	}()
	return done
}
