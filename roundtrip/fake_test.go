package roundtrip_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/internal/poll"

	"github.com/stretchr/testify/require"

	"github.com/fleetcache/fleetcache/coalesce"
	"github.com/fleetcache/fleetcache/internal/storetest"
	"github.com/fleetcache/fleetcache/policy"
	"github.com/fleetcache/fleetcache/roundtrip"
)

// memStore is an in-memory roundtrip.Store with the semantics of the Redis
// store, which TestMemStore_Acceptance checks: entries per URL and variant,
// each its own copy, kept for their ttl by the test's clock, and the URL's
// Vary names returned on a miss.
type memStore struct {
	now     func() time.Time
	mu      sync.Mutex
	entries map[string]memEntry
	vary    map[string][]string // the URL's Vary names; empty once it stopped varying
	fail    atomic.Bool         // every call fails, as when Redis is down
	refusal atomic.Bool         // every call is refused, as by a Redis out of memory
	refuse  atomic.Bool         // Put keeps nothing, as for an entry over the budget
	gets    atomic.Int64
	puts    atomic.Int64
}

type memEntry struct {
	r       *policy.Response
	expires time.Time
}

func newMemStore(now func() time.Time) *memStore {
	return &memStore{now: now, entries: map[string]memEntry{}, vary: map[string][]string{}}
}

var errDown = errors.New("store down")

// refusedErr is what a store that is up answers to a call it refuses.
type refusedErr struct{}

func (refusedErr) Error() string   { return "OOM command not allowed" }
func (refusedErr) Refused() string { return "OOM" }

func (s *memStore) Get(ctx context.Context, url, variant string) (*policy.Response, []string, error) {
	s.gets.Add(1)
	if err := s.check(ctx); err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[url+"\x00"+variant]; ok && s.now().Before(e.expires) {
		return e.r, e.r.Vary, nil
	}
	return nil, s.vary[url], nil
}

func (s *memStore) Put(ctx context.Context, r *policy.Response, ttl time.Duration, explicit bool) (bool, error) {
	s.puts.Add(1)
	if err := s.check(ctx); err != nil {
		return false, err
	}
	if s.refuse.Load() || ttl < time.Millisecond {
		return false, nil
	}
	c := r.Clone()
	c.Body = bytes.Clone(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries[r.URL+"\x00"+policy.Variant(r.Vary, r.VaryValues)] = memEntry{r: c, expires: s.now().Add(ttl)}
	if _, varied := s.vary[r.URL]; varied || len(r.Vary) > 0 {
		s.vary[r.URL] = append([]string{}, r.Vary...)
	}
	return true, nil
}

func (s *memStore) Purge(ctx context.Context, url string) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, e := range s.entries {
		if e.r.URL == url {
			delete(s.entries, k)
		}
	}
	delete(s.vary, url)
	return nil
}

func (s *memStore) check(ctx context.Context) error {
	switch {
	case s.fail.Load():
		return errDown
	case s.refusal.Load():
		return fmt.Errorf("memstore: %w", refusedErr{})
	}
	return ctx.Err()
}

// len counts the entries not expired.
func (s *memStore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.entries {
		if s.now().Before(e.expires) {
			n++
		}
	}
	return n
}

// clock is an injectable clock that tests move by hand.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }
func (c *clock) HTTPDate() string        { return c.Now().UTC().Format(http.TimeFormat) }
func (c *clock) HTTPDateIn(d time.Duration) string {
	return c.Now().Add(d).UTC().Format(http.TimeFormat)
}

// origin is a loopback origin that counts the requests it answers.
type origin struct {
	*httptest.Server
	hits atomic.Int64
}

func newOrigin(t *testing.T, clk *clock, h http.HandlerFunc) *origin {
	o := &origin{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.hits.Add(1)
		w.Header().Set("Date", clk.HTTPDate()) // the origin shares the test's clock
		h(w, r)
	}))
	t.Cleanup(o.Close)
	return o
}

// fixture is a transport over a store (a memStore unless built by
// newFixtureOn) and an origin, on a test clock.
type fixture struct {
	t     *testing.T
	clk   *clock
	store *memStore // nil over another store
	tr    *roundtrip.Transport
	cl    *http.Client
	o     *origin
}

func newFixture(t *testing.T, h http.HandlerFunc, opts roundtrip.Options) *fixture {
	t.Helper()
	clk := newClock()
	store := newMemStore(clk.Now)
	f := newFixtureOn(t, clk, store, h, opts)
	f.store = store
	return f
}

// newFixtureOn is newFixture over any store, on clk; f.store is left nil.
func newFixtureOn(t *testing.T, clk *clock, store roundtrip.Store, h http.HandlerFunc, opts roundtrip.Options) *fixture {
	t.Helper()
	f := &fixture{t: t, clk: clk}
	f.o = newOrigin(t, f.clk, h)
	if opts.Now == nil {
		opts.Now = f.clk.Now
	}
	if opts.Transport == nil {
		tr := &http.Transport{}
		t.Cleanup(tr.CloseIdleConnections)
		opts.Transport = tr
	}
	f.tr = roundtrip.New(store, opts)
	t.Cleanup(func() { require.NoError(t, f.tr.Close()) })
	f.cl = &http.Client{Transport: f.tr}
	return f
}

// do sends a request through the cache and reads the whole body.
func (f *fixture) do(method, path string, header ...string) (*http.Response, string) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.o.URL+path, nil)
	require.NoError(f.t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := f.cl.Do(req)
	require.NoError(f.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(f.t, err)
	return resp, string(b)
}

func (f *fixture) get(path string, header ...string) (*http.Response, string) {
	f.t.Helper()
	return f.do(http.MethodGet, path, header...)
}

// eventually waits for cond with a deadline instead of sleeping.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, what, 10*time.Second, cond)
}

// stampede starts n callers of get at once; wait returns their bodies once
// all have answered. The test releases the origin in between.
func stampede(n int, get func(i int) string) (wait func() []string) {
	var wg sync.WaitGroup
	bodies := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bodies[i] = get(i)
		}()
	}
	return func() []string {
		wg.Wait()
		return bodies
	}
}

// fixedBody answers with cache-control cc and body, and counts nothing more.
func fixedBody(cc, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if cc != "" {
			w.Header().Set("Cache-Control", cc)
		}
		fmt.Fprint(w, body)
	}
}

// The fake passes the same acceptance suite as the Redis store.
func TestMemStore_Acceptance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		clk := newClock()
		return storetest.Harness{Store: newMemStore(clk.Now), Advance: clk.Advance}
	})
}

// memFleet is a memStore that a fleet shares: leases, marks and the waits
// for fills kept in process, with the semantics of rediscache's, which
// TestMemFleet_Acceptance checks. It counts the calls of each kind, so that
// a test can say what a miss costs.
type memFleet struct {
	*memStore
	mu      sync.Mutex
	leases  map[string]memLease  // by URL
	marks   map[string]time.Time // by URL: marked until
	changed chan struct{}        // closed and replaced whenever a lease ends
	seq     int
	claims  atomic.Int64
	fills   atomic.Int64
	waits   atomic.Int64
}

type memLease struct {
	holder  string
	expires time.Time
}

// fleetMarkTTL is rediscache's mark time, which FleetStore promises.
const fleetMarkTTL = 5 * time.Second

func newMemFleet(now func() time.Time) *memFleet {
	return &memFleet{memStore: newMemStore(now), leases: map[string]memLease{}, marks: map[string]time.Time{}, changed: make(chan struct{})}
}

var _ roundtrip.FleetStore = (*memFleet)(nil)

func (f *memFleet) Claim(ctx context.Context, url string, vary []string, variant string, ttl time.Duration, stale bool) (*policy.Response, []string, coalesce.Lease, error) {
	f.claims.Add(1)
	lease := coalesce.Lease{Key: url}
	resp, names, err := f.memStore.Get(ctx, url, variant)
	if err != nil || resp != nil && !stale {
		return resp, names, lease, err
	}
	if resp != nil {
		names = resp.Vary
	} else if strings.Join(names, ",") != strings.Join(vary, ",") {
		return nil, names, lease, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	lease.Marked = now.Before(f.marks[url])
	if l, ok := f.leases[url]; ok && now.Before(l.expires) {
		lease.Holder = l.holder
	} else if !lease.Marked {
		f.seq++
		lease.Holder, lease.Mine = fmt.Sprint("holder-", f.seq), true
		f.leases[url] = memLease{holder: lease.Holder, expires: now.Add(ttl)}
	}
	return resp, names, lease, nil
}

func (f *memFleet) Wait(ctx context.Context, lease coalesce.Lease) error {
	f.waits.Add(1)
	for {
		f.mu.Lock()
		l, ok := f.leases[lease.Key]
		changed := f.changed
		f.mu.Unlock()
		if !ok || l.holder != lease.Holder || !f.now().Before(l.expires) {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (f *memFleet) Fill(ctx context.Context, lease coalesce.Lease, resp *policy.Response, ttl time.Duration, explicit bool) (bool, error) {
	f.fills.Add(1)
	kept, err := f.memStore.Put(ctx, resp, ttl, explicit)
	if kept && lease.Mine {
		f.end(lease)
	}
	return kept, err
}

func (f *memFleet) Release(ctx context.Context, lease coalesce.Lease, unshareable bool) error {
	if err := f.check(ctx); err != nil {
		return err
	}
	if lease.Mine {
		f.end(lease)
	}
	if unshareable {
		f.mu.Lock()
		f.marks[lease.Key] = f.now().Add(fleetMarkTTL)
		f.mu.Unlock()
	}
	return nil
}

// end ends lease if it is still its holder's, and wakes the waiters.
func (f *memFleet) end(lease coalesce.Lease) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.leases[lease.Key].holder == lease.Holder {
		delete(f.leases, lease.Key)
	}
	f.poke()
}

// poke wakes the waiters, to look at the leases again; f.mu must be held.
func (f *memFleet) poke() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// The fake fleet passes the same acceptance suite as the Redis one.
func TestMemFleet_Acceptance(t *testing.T) {
	storetest.RunFleet(t, func(t *testing.T) storetest.FleetHarness {
		clk := newClock()
		f := newMemFleet(clk.Now)
		return storetest.FleetHarness{A: f, B: f, Advance: func(d time.Duration) {
			clk.Advance(d)
			f.mu.Lock()
			f.poke()
			f.mu.Unlock()
		}}
	})
}
