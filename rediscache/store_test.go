package rediscache

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/internal/poll"

	"github.com/fleetcache/fleetcache/internal/redistest"
	"github.com/fleetcache/fleetcache/internal/storetest"
	"github.com/fleetcache/fleetcache/policy"
	"github.com/redis/go-redis/v9"
)

// clock is the injected time of a test store.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type fixture struct {
	t     *testing.T
	s     *Store
	r     *redistest.Redis
	c     redis.UniversalClient
	clock *clock
}

// advance moves both the store's clock and Redis's expiry clock.
func (f *fixture) advance(d time.Duration) {
	f.clock.Add(d)
	f.r.Advance(f.t, d)
}

// eachBackend runs test on a store over each Redis backend.
func eachBackend(t *testing.T, opts Options, test func(t *testing.T, f *fixture)) {
	redistest.Run(t, redistest.Backends, func(t *testing.T, r *redistest.Redis) {
		test(t, newFixture(t, r, opts))
	})
}

func newFixture(t *testing.T, r *redistest.Redis, opts Options) *fixture {
	t.Helper()
	if opts.Prefix == "" {
		opts.Prefix = "t:"
	}
	s, err := New(r.Client, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	clk := &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	s.now = clk.Now
	return &fixture{t: t, s: s, r: r, c: r.Client, clock: clk}
}

// ttl is key's time to live to the second: a real server has spent a
// millisecond or so of it by the time the test asks.
func (f *fixture) ttl(key string) time.Duration {
	return (f.r.TTL(f.t, key) + 500*time.Millisecond).Truncate(time.Second)
}

func response(url, body string) *policy.Response {
	return &policy.Response{
		Method: "GET", URL: url, Status: 200, ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"text/plain"}},
		Body:   []byte(body),
	}
}

func varied(url, body, name, value string) *policy.Response {
	r := response(url, body)
	r.Vary, r.VaryValues = []string{name}, []string{value}
	return r
}

func (f *fixture) put(t *testing.T, r *policy.Response, ttl time.Duration, explicit bool) {
	t.Helper()
	if _, err := f.s.Put(context.Background(), r, ttl, explicit); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) get(t *testing.T, url, variant string) (*policy.Response, []string) {
	t.Helper()
	r, vary, err := f.s.Get(context.Background(), url, variant)
	if err != nil {
		t.Fatal(err)
	}
	return r, vary
}

// sizes reads a shard's ix records as member -> recorded size.
func sizes(c redis.UniversalClient, sh *shard) map[string]string {
	const memberLen = 16 + 1 + 16
	m := map[string]string{}
	for _, r := range c.ZRange(context.Background(), sh.ix, 0, -1).Val() {
		m[r[:memberLen]] = r[memberLen+1:]
	}
	return m
}

// checkIndex asserts checkIndexLive's invariants and that every member's
// entry exists (the tests that call it have let nothing expire unswept).
func (f *fixture) checkIndex(t *testing.T) {
	t.Helper()
	f.checkIndexLive(t)
	ctx := context.Background()
	for _, sh := range *f.s.shards.Load() {
		for _, m := range f.c.ZRange(ctx, sh.lru, 0, -1).Val() {
			if f.c.Exists(ctx, sh.entry+m).Val() == 0 {
				t.Errorf("%s: member %s has no entry", sh.lru, m)
			}
		}
	}
}

func TestNew_Prefix(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		ok     bool
	}{
		{"orders:", true},
		{"a", true},
		{"Svc_1.v-2:", true},
		{strings.Repeat("p", 64), true},
		{"", false},
		{strings.Repeat("p", 65), false},
		{"has space", false},
		{"{tag}", false},
		{"ünï", false},
		{"new\nline", false},
	} {
		_, err := New(redis.NewClient(&redis.Options{}), Options{Prefix: tc.prefix})
		if tc.ok != (err == nil) || !tc.ok && !errors.Is(err, ErrPrefix) {
			t.Errorf("prefix %q: err = %v, want ok=%v", tc.prefix, err, tc.ok)
		}
	}
}

func TestNew_RejectsBadOptions(t *testing.T) {
	for _, o := range []Options{
		{Prefix: "p", MaxEntries: -1},
		{Prefix: "p", MaxBytes: -1},
		{Prefix: "p", Shards: maxShards + 1},
	} {
		if _, err := New(redis.NewClient(&redis.Options{}), o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

func TestStore_PutGet(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, f *fixture) {
		const u = "https://example.com/x"
		if r, vary := f.get(t, u, ""); r != nil || vary != nil {
			t.Fatalf("empty store: Get = %v, %v", r, vary)
		}
		want := response(u, "hello")
		f.put(t, want, time.Minute, true)
		got, _ := f.get(t, u, "")
		if got == nil {
			t.Fatal("miss after Put")
		}
		storetest.Equal(t, got, want)
		f.checkIndex(t)

		// The entry lives for the ttl Put was given.
		ttl := f.ttl(refOf(*f.s.shards.Load(), u, "").entry)
		if ttl != time.Minute {
			t.Errorf("entry TTL = %v, want 1m", ttl)
		}
		f.advance(time.Minute + time.Millisecond)
		if r, _ := f.get(t, u, ""); r != nil {
			t.Error("hit after the ttl")
		}
	})
}

// A caller that guessed the variant wrong (or knew of no Vary) learns the
// Vary names from the miss and finds the variant with them.
func TestStore_Vary(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, f *fixture) {
		const u = "https://example.com/v"
		gz := varied(u, "gzipped", "Accept-Encoding", "gzip")
		br := varied(u, "brotli", "Accept-Encoding", "br")
		f.put(t, gz, time.Minute, true)
		f.put(t, br, time.Minute, true)

		r, vary := f.get(t, u, "")
		if r != nil || len(vary) != 1 || vary[0] != "Accept-Encoding" {
			t.Fatalf("Get without variant = %v, %v; want miss, [Accept-Encoding]", r, vary)
		}
		for _, want := range []*policy.Response{gz, br} {
			got, vary := f.get(t, u, policy.Variant(want.Vary, want.VaryValues))
			if got == nil {
				t.Fatalf("variant %v missing", want.VaryValues)
			}
			storetest.Equal(t, got, want)
			if len(vary) != 1 {
				t.Errorf("hit: vary = %v", vary)
			}
		}
		if r, vary := f.get(t, u, policy.Variant([]string{"Accept-Encoding"}, []string{"zstd"})); r != nil || len(vary) != 1 {
			t.Errorf("absent variant: %v, %v", r, vary)
		}
		// The v: key lives as long as the longest variant.
		f.put(t, varied(u, "id", "Accept-Encoding", "identity"), time.Hour, true)
		f.put(t, varied(u, "x", "Accept-Encoding", "x"), time.Second, true)
		vkey := refOf(*f.s.shards.Load(), u, "").vary()
		if ttl := f.ttl(vkey); ttl != time.Hour {
			t.Errorf("v: TTL = %v, want 1h", ttl)
		}
		// Made anew after an evicting Redis dropped it, it still lives as
		// long as the variants already stored.
		if err := f.r.Client.Del(context.Background(), vkey).Err(); err != nil {
			t.Fatal(err)
		}
		f.put(t, varied(u, "y", "Accept-Encoding", "y"), time.Second, true)
		if ttl := f.ttl(vkey); ttl != time.Hour {
			t.Errorf("v: TTL after it was lost = %v, want 1h", ttl)
		}
		f.checkIndex(t)
	})
}

// A URL that stops varying: the entry without variant is found, and a
// caller still asking for a variant learns that there are no Vary names.
func TestStore_VaryDropped(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, f *fixture) {
		const u = "https://example.com/v"
		f.put(t, varied(u, "gz", "Accept-Encoding", "gzip"), time.Minute, true)
		f.put(t, response(u, "plain"), time.Minute, true)
		if r, _ := f.get(t, u, ""); r == nil || string(r.Body) != "plain" {
			t.Fatalf("Get = %v", r)
		}
		r, vary := f.get(t, u, policy.Variant([]string{"Accept-Encoding"}, []string{"br"}))
		if r != nil || vary == nil || len(vary) != 0 {
			t.Errorf("Get old variant = %v, %#v; want miss, empty non-nil Vary", r, vary)
		}
	})
}

// Two URLs whose hashes collide share a key: the full URL inside the entry
// tells them apart, so the wrong one is a miss, never served.
func TestStore_URLHashCollisionIsAMiss(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		f.put(t, response("https://example.com/other", "other"), time.Minute, true)
		shards := *f.s.shards.Load()
		// Plant the other URL's entry under this URL's key.
		val := f.c.Get(ctx, refOf(shards, "https://example.com/other", "").entry).Val()
		mine := refOf(shards, "https://example.com/mine", "")
		f.c.Set(ctx, mine.entry, val, time.Minute)
		if r, _ := f.get(t, "https://example.com/mine", ""); r != nil {
			t.Fatalf("served %s for another URL", r.URL)
		}
		if f.c.Exists(ctx, mine.entry).Val() != 1 {
			t.Error("a colliding (valid) entry was deleted")
		}
	})
}

func TestStore_CorruptIsAMissAndDeleted(t *testing.T) {
	for _, tc := range []struct {
		name  string
		value func(good string) string
	}{
		{"truncated", func(g string) string { return g[:len(g)/2] }},
		{"foreign", func(string) string { return "OK" }},
		{"flipped byte", func(g string) string { b := []byte(g); b[len(b)/2] ^= 0xff; return string(b) }},
		{"future version", func(g string) string {
			b := []byte(g)
			b[2] = formatVersion + 1
			return string(reseal(b))
		}},
	} {
		eachBackend(t, Options{}, func(t *testing.T, f *fixture) {
			t.Run(tc.name, func(t *testing.T) {
				ctx := context.Background()
				const u = "https://example.com/c"
				f.put(t, response(u, "good"), time.Minute, true)
				key := refOf(*f.s.shards.Load(), u, "").entry
				f.c.Set(ctx, key, tc.value(f.c.Get(ctx, key).Val()), time.Minute)
				r, _, err := f.s.Get(ctx, u, "")
				if r != nil || err != nil {
					t.Fatalf("Get = %v, %v; want miss", r, err)
				}
				if f.c.Exists(ctx, key).Val() != 0 {
					t.Error("corrupt value kept")
				}
				f.checkIndex(t)
			})
		})
	}
}

// The reader deletes the corrupt value it read, not a good one a writer put
// there since.
func TestStore_CorruptDeleteSparesNewValue(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		const u = "https://example.com/c"
		f.put(t, response(u, "good"), time.Minute, true)
		r := refOf(*f.s.shards.Load(), u, "")
		if err := f.s.delete(ctx, r, "0000000000000000000000000000000000000000"); err != nil {
			t.Fatal(err)
		}
		if got, _ := f.get(t, u, ""); got == nil {
			t.Fatal("a value with another digest was deleted")
		}
	})
}

func TestStore_PutTTL(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, f *fixture) {
		kept, err := f.s.Put(context.Background(), response("http://x/", ""), 0, true)
		if kept || err != nil {
			t.Fatalf("Put with ttl 0: kept %v, err %v; want not kept, no error", kept, err)
		}
	})
}

func TestStore_TooLarge(t *testing.T) {
	eachBackend(t, Options{MaxBytes: 4 << 10, Shards: 2}, func(t *testing.T, f *fixture) { // 2 KiB a shard
		const u = "https://example.com/big"
		f.put(t, response(u, "small"), time.Minute, true)
		// Not an error: errors mean the store failed, and callers stop using a
		// failing store.
		if kept, err := f.s.Put(context.Background(), response(u, strings.Repeat("x", 3<<10)), time.Minute, true); kept || err != nil {
			t.Fatalf("Put of an entry over the shard's budget: kept %v, err %v; want not kept, no error", kept, err)
		}
		if r, _ := f.get(t, u, ""); r != nil {
			t.Error("the entry a too large one replaces is still served")
		}
		f.checkIndex(t)
	})
}

// B9/B14 of RFC-NOTES: least recently used first, and entries without
// explicit freshness before all others.
func TestStore_EvictsLRU(t *testing.T) {
	eachBackend(t, Options{MaxEntries: 3, Shards: 1}, func(t *testing.T, f *fixture) {
		url := func(i int) string { return fmt.Sprintf("https://example.com/%d", i) }
		for i := range 3 {
			f.put(t, response(url(i), "b"), time.Hour, true)
			f.advance(2 * time.Second)
		}
		f.get(t, url(0), "") // 0 is now the most recently used
		f.advance(2 * time.Second)
		f.put(t, response(url(3), "b"), time.Hour, true)
		for i, want := range []bool{true, false, true, true} {
			if r, _ := f.get(t, url(i), ""); (r != nil) != want {
				t.Errorf("%s present = %v, want %v", url(i), r != nil, want)
			}
		}
		st, err := f.s.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Entries != 3 || st.Evictions != 1 {
			t.Errorf("stats = %+v, want 3 entries, 1 eviction", st)
		}
		f.checkIndex(t)
	})
}

func TestStore_EvictsHeuristicFirst(t *testing.T) {
	eachBackend(t, Options{MaxEntries: 3, Shards: 1}, func(t *testing.T, f *fixture) {
		f.put(t, response("https://example.com/heuristic", "b"), time.Hour, false)
		f.advance(2 * time.Second)
		f.put(t, response("https://example.com/old-explicit", "b"), time.Hour, true)
		f.advance(2 * time.Second)
		f.get(t, "https://example.com/heuristic", "") // recently used, still first to go
		f.advance(2 * time.Second)
		f.put(t, response("https://example.com/e2", "b"), time.Hour, true)
		f.put(t, response("https://example.com/e3", "b"), time.Hour, true)
		if r, _ := f.get(t, "https://example.com/heuristic", ""); r != nil {
			t.Error("heuristic entry survived an explicit one")
		}
		if r, _ := f.get(t, "https://example.com/old-explicit", ""); r == nil {
			t.Error("explicit entry evicted before the heuristic one")
		}
		// A new heuristic entry in a shard full of explicit ones yields at once.
		f.put(t, response("https://example.com/h2", "b"), time.Hour, false)
		if r, _ := f.get(t, "https://example.com/h2", ""); r != nil {
			t.Error("heuristic entry displaced an explicit one")
		}
		f.checkIndex(t)
	})
}

func TestStore_EvictsOverMaxBytes(t *testing.T) {
	eachBackend(t, Options{MaxBytes: 4000, Shards: 1}, func(t *testing.T, f *fixture) {
		for i := range 10 {
			f.put(t, response(fmt.Sprintf("https://example.com/%d", i), strings.Repeat("x", 900)), time.Hour, true)
		}
		st, err := f.s.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Bytes > 4000 || st.Entries < 3 {
			t.Errorf("stats = %+v, want at most 4000 bytes and 3 entries or more", st)
		}
		f.checkIndex(t)
	})
}

// Touching refreshes the score at most once a second per entry and process,
// and never brings back an entry that eviction removed.
func TestStore_TouchOncePerSecond(t *testing.T) {
	eachBackend(t, Options{Shards: 1}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		const u = "https://example.com/t"
		f.put(t, response(u, "b"), time.Hour, false)
		r := refOf(*f.s.shards.Load(), u, "")
		score := func() float64 { return f.c.ZScore(ctx, r.sh.lru, r.member()).Val() }
		put := score()
		f.advance(300 * time.Millisecond)
		f.get(t, u, "")
		if score() != put {
			t.Error("touched within the second of the write")
		}
		f.advance(time.Second)
		f.get(t, u, "")
		touched := score()
		if touched != put+1300 {
			t.Errorf("score %v after 1.3s, want %v", touched, put+1300)
		}
		f.advance(500 * time.Millisecond)
		f.get(t, u, "")
		if score() != touched {
			t.Error("touched twice within a second")
		}
		// Gone from the index: a touch must not re-add it.
		f.c.ZRem(ctx, r.sh.lru, r.member())
		f.advance(2 * time.Second)
		f.get(t, u, "")
		if f.c.ZScore(ctx, r.sh.lru, r.member()).Err() != redis.Nil {
			t.Error("touch re-indexed an evicted entry")
		}
	})
}

// Entries that expired by TTL leave the index as writes go on: the sweep
// walks the whole index, a few members per write, and keeps the byte total
// right.
func TestStore_SweepsExpired(t *testing.T) {
	eachBackend(t, Options{Shards: 1}, func(t *testing.T, f *fixture) {
		for i := range 40 {
			f.put(t, response(fmt.Sprintf("https://example.com/short/%d", i), "b"), time.Second, true)
		}
		f.put(t, response("https://example.com/long", "b"), time.Hour, true)
		f.advance(2 * time.Second)
		for i := range 10 {
			f.put(t, response(fmt.Sprintf("https://example.com/new/%d", i), "b"), time.Hour, true)
		}
		st, err := f.s.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Entries != 11 || st.Expired != 40 {
			t.Errorf("stats = %+v, want 11 entries, 40 expired", st)
		}
		f.checkIndex(t)
	})
}

func TestStore_DeletePurgeClear(t *testing.T) {
	eachBackend(t, Options{Shards: 4}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		const u = "https://example.com/p"
		f.put(t, varied(u, "gz", "Accept-Encoding", "gzip"), time.Minute, true)
		f.put(t, varied(u, "br", "Accept-Encoding", "br"), time.Minute, true)
		f.put(t, response("https://example.com/q", "q"), time.Minute, true)
		for i := range 30 {
			f.put(t, response(fmt.Sprintf("https://example.com/n/%d", i), "n"), time.Minute, true)
		}

		gz := policy.Variant([]string{"Accept-Encoding"}, []string{"gzip"})
		if err := f.s.Delete(ctx, u, gz); err != nil {
			t.Fatal(err)
		}
		if r, _ := f.get(t, u, gz); r != nil {
			t.Error("deleted variant served")
		}
		if r, _ := f.get(t, u, policy.Variant([]string{"Accept-Encoding"}, []string{"br"})); r == nil {
			t.Error("Delete removed another variant")
		}
		f.checkIndex(t)

		f.put(t, response(u, "plain"), time.Minute, true) // the variant without Vary
		if err := f.s.Purge(ctx, u); err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{"", gz, policy.Variant([]string{"Accept-Encoding"}, []string{"br"})} {
			if r, vary := f.get(t, u, v); r != nil || vary != nil {
				t.Errorf("after Purge, variant %q: %v, %v", v, r, vary)
			}
		}
		if r, _ := f.get(t, "https://example.com/q", ""); r == nil {
			t.Error("Purge removed another URL")
		}
		f.checkIndex(t)

		if err := f.s.Clear(ctx); err != nil {
			t.Fatal(err)
		}
		st, err := f.s.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Entries != 0 || st.Bytes != 0 {
			t.Errorf("after Clear: %+v", st)
		}
		keys := f.r.Keys(t)
		for _, k := range keys {
			if strings.Contains(k, ":e:") || strings.Contains(k, ":v:") {
				t.Errorf("after Clear: key %s left", k)
			}
		}
	})
}

// The capacity in Redis wins over the options, and an operator's HSET
// reaches every instance within configRefresh.
func TestStore_ConfigInRedis(t *testing.T) {
	eachBackend(t, Options{MaxEntries: 1000, Shards: 2}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		f.put(t, response("https://example.com/0", "b"), time.Hour, true)
		cfg := fmt.Sprint(f.c.HMGet(ctx, "t:config", "max_entries", "shards", "version").Val())
		if cfg != fmt.Sprintf("[1000 2 %d]", formatVersion) {
			t.Fatalf("seeded config = %q", cfg)
		}

		// A second instance with other options agrees with the first.
		other, err := New(f.c, Options{Prefix: "t:", MaxEntries: 5, Shards: 8})
		if err != nil {
			t.Fatal(err)
		}
		st, err := other.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.MaxEntries != 1000 || st.Shards != 2 {
			t.Errorf("second instance uses %+v, want the stored config", st)
		}

		// Retune live: HSET t:config max_entries 4 (2 a shard).
		f.c.HSet(ctx, "t:config", "max_entries", "4")
		for i := range 10 {
			f.put(t, response(fmt.Sprintf("https://example.com/%d", i), "b"), time.Hour, true)
		}
		if st, _ := f.s.Stats(ctx); st.Entries != 10 {
			t.Errorf("retune applied before the refresh interval: %d entries", st.Entries)
		}
		f.advance(configRefresh)
		f.put(t, response("https://example.com/last", "b"), time.Hour, true)
		f.put(t, response("https://example.com/last2", "b"), time.Hour, true)
		// Each shard's writes enforce the new limit; write to every shard.
		for i := range 10 {
			f.put(t, response(fmt.Sprintf("https://example.com/%d", i), "b"), time.Hour, true)
		}
		if st, _ := f.s.Stats(ctx); st.Entries > 4 || st.MaxEntries != 4 {
			t.Errorf("after retune: %+v, want at most 4 entries", st)
		}

		// A typo does not stop the cache: the last good limits stay.
		f.c.HSet(ctx, "t:config", "max_entries", "lots")
		f.advance(configRefresh)
		f.put(t, response("https://example.com/after-typo", "b"), time.Hour, true)
		if _, err := f.s.Stats(ctx); err == nil {
			t.Error("Stats hides an invalid config")
		}
		f.checkIndex(t)
	})
}

func TestStore_KeysShareTheURLSlot(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, f *fixture) {
		const u = "https://example.com/k"
		f.put(t, response(u, "b"), time.Minute, true)
		entry := refOf(*f.s.shards.Load(), u, "").entry
		tag := entry[strings.IndexByte(entry, '{') : strings.IndexByte(entry, '}')+1]
		lease := f.s.urlKey(u, func(sh *shard) string { return sh.lock })
		marker := f.s.urlKey(u, func(sh *shard) string { return sh.hfm })
		for _, k := range []string{lease, marker, f.s.FillChannel(u)} {
			if !strings.Contains(k, tag) || !strings.HasPrefix(k, "t:") {
				t.Errorf("key %s lacks the tag %s of %s", k, tag, entry)
			}
		}
		if lease == marker {
			t.Error("lease and marker share a key")
		}
	})
}

func TestStore_PutAnnouncesFill(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		const u = "https://example.com/f"
		f.put(t, response("https://example.com/warm", "b"), time.Minute, true) // load the layout
		sub := f.c.Subscribe(ctx, f.s.FillChannel(u))
		defer sub.Close()
		if _, err := sub.Receive(ctx); err != nil { // the subscription confirmation
			t.Fatal(err)
		}
		f.put(t, response(u, "b"), time.Minute, true)
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		msg, err := sub.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if msg.Channel != f.s.FillChannel(u) {
			t.Errorf("message on %s", msg.Channel)
		}
	})
}

func TestStore_ContextCanceled(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, f *fixture) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, _, err := f.s.Get(ctx, "http://x/", ""); !errors.Is(err, context.Canceled) {
			t.Errorf("Get err = %v", err)
		}
		if _, err := f.s.Put(ctx, response("http://x/", ""), time.Minute, true); !errors.Is(err, context.Canceled) {
			t.Errorf("Put err = %v", err)
		}
	})
}

func TestStore_RedisDown(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, f *fixture) {
		f.put(t, response("http://x/", "b"), time.Minute, true)
		// The same store with a client that does not retry, as roundtrip's
		// fail-open setup would have.
		f.s.client = f.r.NewClient(t, redis.UniversalOptions{MaxRetries: -1})
		f.r.Kill(t)
		ctx := context.Background()
		if _, _, err := f.s.Get(ctx, "http://x/", ""); err == nil {
			t.Error("Get without Redis: no error")
		}
		if _, err := f.s.Put(ctx, response("http://x/", ""), time.Minute, true); err == nil {
			t.Error("Put without Redis: no error")
		}
	})
}

func TestOpen(t *testing.T) {
	redistest.Run(t, redistest.Backends, func(t *testing.T, r *redistest.Redis) {
		ctx := context.Background()
		s, err := Open(ctx, r.URL+"/0", Options{Prefix: "o:"})
		if err != nil {
			t.Fatal(err)
		}
		if r.Client.HGet(ctx, "o:config", "shards").Val() != "16" {
			t.Error("Open did not seed the config")
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Client().Ping(ctx).Err(); err == nil {
			t.Error("Close left Open's client open")
		}

		for _, tc := range []struct{ url, want string }{
			{"redis://u:secret@" + strings.TrimPrefix(r.URL, "redis://") + "/0?bogus=1", "bogus"},
			{"http" + strings.TrimPrefix(r.URL, "redis"), "scheme"},
			{"redis://u:secret@%zz", "malformed"},
			{"redis://u:secret@h:1?addr=nohostport", "addr"},
		} {
			_, err := Open(ctx, tc.url, Options{Prefix: "o:"})
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "secret") {
				t.Errorf("Open(%q) err = %v, want one about %q without the password", tc.url, err, tc.want)
			}
		}
		if _, err := Open(ctx, r.URL, Options{}); !errors.Is(err, ErrPrefix) {
			t.Errorf("Open without prefix: %v", err)
		}
	})
}

func TestOpen_ClusterForm(t *testing.T) {
	c, err := NewClient("redis://127.0.0.1:7000?addr=127.0.0.1:7001&addr=127.0.0.1:7002")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		t.Fatalf("client is %T, want a cluster client", c)
	}
	if got := len(cc.Options().Addrs); got != 3 {
		t.Errorf("%d seed addresses, want 3", got)
	}
}

func TestStore_KeyNamesBeforeTheConfigIsReadBuildNoLayout(t *testing.T) {
	// Redis unreachable: the config is never read, and the key functions
	// fall back to the layout the options name, built once.
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	s, err := New(client, Options{Prefix: "p:"})
	if err != nil {
		t.Fatal(err)
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = s.FillChannel("http://example.com/a") }); allocs > 2 {
		t.Errorf("FillChannel makes %v allocations, want at most 2", allocs)
	}
}

// An operator who lowers the capacity (HSET <prefix>config max_entries N)
// expects the whole cache to shrink, not only the shards written next: the
// first instance to see the lower limit trims every shard.
func TestStore_LoweredCapacityTrimsEveryShard(t *testing.T) {
	eachBackend(t, Options{MaxEntries: 400, Shards: 4}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		for i := range 200 {
			f.put(t, response(fmt.Sprintf("https://example.com/%d", i), "b"), time.Hour, true)
		}
		if st := f.stats(); st.Entries != 200 {
			t.Fatalf("%d entries before the retune, want 200", st.Entries)
		}
		f.c.HSet(ctx, "t:config", "max_entries", "40")
		f.advance(configRefresh)
		// One read of the limits, by any call, is all it takes; no write.
		if _, err := f.s.currentLimits(ctx); err != nil {
			t.Fatal(err)
		}
		eventually(t, "every shard trimmed to 10 entries", func() bool {
			for _, sh := range *f.s.shards.Load() {
				if f.c.ZCard(ctx, sh.lru).Val() > 10 {
					return false
				}
			}
			return !f.s.trimming.Load()
		})
		st := f.stats()
		if st.Entries != 40 || st.Evictions != 160 {
			t.Errorf("after the trim: %+v, want 40 entries and 160 evictions", st)
		}
		f.checkIndex(t)
	})
}

// A client that picks the value of a header the response varies on cannot
// make the cache keep more than MaxVariants of one URL: past it the least
// recently used variant goes, with its v: record, and a purge of the URL
// stays a bounded amount of work.
func TestStore_VariantsPerURLAreBounded(t *testing.T) {
	eachBackend(t, Options{MaxVariants: 5, Shards: 1}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		const u = "https://example.com/v"
		variant := func(i int) *policy.Response { return varied(u, "b", "X-Tenant", fmt.Sprint("tenant-", i)) }
		for i := range 60 {
			f.put(t, variant(i), time.Hour, true)
			f.clock.Add(time.Second)
			f.get(t, u, variantOf(variant(0))) // used all along: kept
		}
		r := refOf(*f.s.shards.Load(), u, "")
		if n := f.c.ZLexCount(ctx, r.sh.ix, "["+r.member()[:16]+":", "("+r.member()[:16]+";").Val(); n != 5 {
			t.Errorf("the index holds %d variants of the URL, want 5", n)
		}
		if st := f.stats(); st.Entries != 5 || st.Evictions != 55 {
			t.Errorf("stats %+v, want 5 entries and 55 evictions", st)
		}
		if got, _ := f.get(t, u, variantOf(variant(59))); got == nil {
			t.Error("the newest variant is missing")
		}
		if got, _ := f.get(t, u, variantOf(variant(0))); got == nil {
			t.Error("the variant used all along was evicted")
		}
		if got, _ := f.get(t, u, variantOf(variant(1))); got != nil {
			t.Error("the least recently used variant survived")
		}
		if err := f.s.Purge(ctx, u); err != nil {
			t.Fatal(err)
		}
		if st := f.stats(); st.Entries != 0 || st.Bytes != 0 {
			t.Errorf("after Purge: %+v", st)
		}
		if f.c.Exists(ctx, r.vary()).Val() != 0 {
			t.Error("Purge left the v: key")
		}
		f.checkIndex(t)
	})
}

// A URL whose v: record grew large (written before the limit existed, or
// with a large MaxVariants) is purged in batches, all of it.
func TestStore_PurgeOfManyVariantsTakesBatches(t *testing.T) {
	eachBackend(t, Options{MaxVariants: 1000, Shards: 1}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		const u = "https://example.com/many"
		for i := range 3 * purgeBatch {
			f.put(t, varied(u, "b", "X-Tenant", fmt.Sprint(i)), time.Hour, true)
		}
		if err := f.s.Purge(ctx, u); err != nil {
			t.Fatal(err)
		}
		if st := f.stats(); st.Entries != 0 || st.Bytes != 0 {
			t.Errorf("after Purge: %+v", st)
		}
		for _, k := range f.r.Keys(t) {
			if strings.Contains(k, ":e:") || strings.Contains(k, ":v:") {
				t.Errorf("Purge left %s", k)
			}
		}
	})
}

// eventually waits for cond with a deadline instead of sleeping.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, what, 10*time.Second, cond)
}

// Size tells an entry's size without reading it, 0 when there is none.
func TestStore_Size(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		const u = "https://example.com/sized"
		f.put(t, response(u, strings.Repeat("x", 5000)), time.Hour, true)
		n, err := f.s.Size(ctx, u, "")
		if err != nil || n != int64(len(Encode(nil, response(u, strings.Repeat("x", 5000))))) {
			t.Errorf("Size = %d, %v; want the encoded entry's length", n, err)
		}
		if n, err := f.s.Size(ctx, "https://example.com/none", ""); n != 0 || err != nil {
			t.Errorf("Size of nothing = %d, %v", n, err)
		}
	})
}
