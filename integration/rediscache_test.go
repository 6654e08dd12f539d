package integration_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/internal/poll"

	"github.com/fleetcache/fleetcache/internal/redistest"
	"github.com/fleetcache/fleetcache/policy"
	"github.com/fleetcache/fleetcache/rediscache"
	"github.com/redis/go-redis/v9"
)

func cacheResponse(url string, body []byte) *policy.Response {
	now := time.Now()
	return &policy.Response{
		Method: "GET", URL: url, Status: 200, ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{
			"Content-Type":  {"text/plain"},
			"Cache-Control": {"max-age=3600"},
			"Date":          {now.UTC().Format(http.TimeFormat)},
		},
		Body:        body,
		RequestTime: now, ResponseTime: now,
	}
}

// scanKeys lists the keys matching pattern on every master: test-only (the
// store itself never scans), to find entries the index does not know of.
func scanKeys(t *testing.T, c redis.UniversalClient, pattern string) []string {
	t.Helper()
	ctx := context.Background()
	var (
		mu   sync.Mutex
		keys []string
	)
	scan := func(ctx context.Context, n *redis.Client) error {
		it := n.Scan(ctx, 0, pattern, 1000).Iterator()
		for it.Next(ctx) {
			mu.Lock()
			keys = append(keys, it.Val())
			mu.Unlock()
		}
		return it.Err()
	}
	var err error
	switch c := c.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, scan)
	case *redis.Client:
		err = scan(ctx, c)
	default:
		t.Fatalf("unexpected client %T", c)
	}
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// checkIndex asserts the store's invariants from outside, through the key
// layout docs/store.md describes: every index member's entry exists and has
// a recorded size, the byte total is the sum of the sizes, and every entry
// is indexed. Entries must not expire while it runs.
func checkIndex(t *testing.T, c redis.UniversalClient, prefix string, shards int) (entries int) {
	t.Helper()
	ctx := context.Background()
	indexed := map[string]bool{}
	for s := range shards {
		tag := "{" + prefix + strconv.Itoa(s) + "}"
		lru, ix, st := prefix+"lru:"+tag, prefix+"ix:"+tag, prefix+"st:"+tag
		members, err := c.ZRange(ctx, lru, 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		// ix records are "<member>:<size>", where a member is
		// "<url-hash>:<variant-hash>".
		sizes := map[string]string{}
		for _, r := range c.ZRange(ctx, ix, 0, -1).Val() {
			sizes[r[:33]] = r[34:]
		}
		if len(sizes) != len(members) {
			t.Errorf("shard %d: %d members, %d sizes", s, len(members), len(sizes))
		}
		var sum int64
		for _, m := range members {
			key := prefix + "e:" + tag + ":" + m
			indexed[key] = true
			n := c.StrLen(ctx, key).Val()
			if n == 0 {
				t.Errorf("shard %d: member %s points at no entry", s, m)
			}
			if sizes[m] != strconv.FormatInt(n, 10) {
				t.Errorf("shard %d: member %s size %q, entry holds %d bytes", s, m, sizes[m], n)
			}
			sum += n
		}
		total, _ := strconv.ParseInt(c.HGet(ctx, st, "bytes").Val(), 10, 64)
		if total != sum {
			t.Errorf("shard %d: byte total %d, entries hold %d", s, total, sum)
		}
	}
	for _, k := range scanKeys(t, c, prefix+"e:*") {
		if !indexed[k] {
			t.Errorf("entry %s is not indexed", k)
		}
	}
	return len(indexed)
}

func TestRedisCache_RealServer(t *testing.T) {
	srv := redistest.Server(t)
	ctx := context.Background()
	s, err := rediscache.Open(ctx, "redis://"+srv.Addr()+"/0", rediscache.Options{Prefix: "real:", MaxEntries: 100, Shards: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	want := cacheResponse("https://example.com/a", []byte("hello"))
	if _, err := s.Put(ctx, want, time.Minute, true); err != nil {
		t.Fatal(err)
	}
	got, _, err := s.Get(ctx, want.URL, "")
	if err != nil || got == nil || string(got.Body) != "hello" || got.Header.Get("Cache-Control") != "max-age=3600" {
		t.Fatalf("Get = %+v, %v", got, err)
	}

	// A value somebody else wrote under the key is a miss, and removed.
	key := scanKeys(t, s.Client(), "real:e:*")[0]
	s.Client().Set(ctx, key, "{\"not\":\"ours\"}", time.Minute)
	if got, _, err := s.Get(ctx, want.URL, ""); got != nil || err != nil {
		t.Fatalf("foreign value: Get = %v, %v", got, err)
	}
	if s.Client().Exists(ctx, key).Val() != 0 {
		t.Error("foreign value kept")
	}

	for i := range 150 {
		if _, err := s.Put(ctx, cacheResponse(fmt.Sprintf("https://example.com/%d", i), []byte("b")), time.Hour, i%2 == 0); err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Entries > 100 || st.Evictions < 50 {
		t.Errorf("stats %+v: want at most 100 entries, 50 evictions or more", st)
	}
	checkIndex(t, s.Client(), "real:", 4)
}

// Several instances (own clients) and goroutines write at once: once the
// writes stop, no shard is above its share, no index member points at an
// evicted entry and no entry is unindexed.
func TestRedisCache_ConcurrentWritersKeepTheLimit(t *testing.T) {
	srv := redistest.Server(t)
	const (
		instances  = 3
		goroutines = 4
		writes     = 150
		limit      = 64
		shards     = 4
	)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, instances*goroutines)
	for i := range instances {
		s, err := rediscache.New(srv.Client(t), rediscache.Options{Prefix: "cw:", MaxEntries: limit, Shards: shards})
		if err != nil {
			t.Fatal(err)
		}
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for w := range writes {
					// Overlapping URLs, so that writers replace each
					// other's entries as well as evict them.
					u := fmt.Sprintf("https://example.com/%d", (i*goroutines*writes+g*writes+w)%400)
					body := bytes.Repeat([]byte("x"), 100+w%7*50)
					if _, err := s.Put(ctx, cacheResponse(u, body), time.Hour, w%3 != 0); err != nil {
						errs <- err
						return
					}
					if _, _, err := s.Get(ctx, fmt.Sprintf("https://example.com/%d", w%400), ""); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	n := checkIndex(t, srv.Client(t), "cw:", shards)
	if n > limit {
		t.Errorf("%d entries, limit %d", n, limit)
	}
	t.Logf("%d entries after %d writes", n, instances*goroutines*writes)
}

// The same code, unchanged, on a three-master cluster: hundreds of entries
// spread over every master, eviction, purge and clear working, every script
// within one slot.
func TestRedisCache_Cluster(t *testing.T) {
	cluster := redistest.Cluster(t)
	cc := cluster.Client(t) // waits until a client sees every slot
	ctx := context.Background()
	a := cluster.Addrs()
	url := "redis://" + a[0] + "?addr=" + a[1] + "&addr=" + a[2]
	s, err := rediscache.Open(ctx, url, rediscache.Options{Prefix: "cl:", MaxEntries: 480, Shards: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, ok := s.Client().(*redis.ClusterClient); !ok {
		t.Fatalf("Open made a %T from a cluster URL", s.Client())
	}

	sub := cc.SSubscribe(ctx, s.FillChannel("https://example.com/0"))
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}

	const n = 600
	for i := range n {
		if _, err := s.Put(ctx, cacheResponse(fmt.Sprintf("https://example.com/%d", i), []byte("body")), time.Hour, true); err != nil {
			t.Fatal(err)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := sub.ReceiveMessage(rctx); err != nil {
		t.Errorf("no fill announcement on the shard channel: %v", err)
	}

	perMaster := map[string]int{}
	var mu sync.Mutex
	err = cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		keys, err := m.Keys(ctx, "cl:e:*").Result() // test-only, on a throwaway cluster
		mu.Lock()
		perMaster[m.Options().Addr] = len(keys)
		mu.Unlock()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(perMaster) != 3 {
		t.Fatalf("entries on %d masters, want 3: %v", len(perMaster), perMaster)
	}
	for addr, k := range perMaster {
		if k == 0 {
			t.Errorf("no entries on master %s: %v", addr, perMaster)
		}
	}
	t.Logf("entries per master: %v", perMaster)

	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Entries > 480 || st.Evictions < n-480 {
		t.Errorf("stats %+v: want at most 480 entries, %d evictions or more", st, n-480)
	}
	if got := checkIndex(t, cc, "cl:", 16); int64(got) != st.Entries {
		t.Errorf("index holds %d entries, stats say %d", got, st.Entries)
	}

	// Variants of one URL, purged together.
	const u = "https://example.com/varied"
	for _, enc := range []string{"gzip", "br", "identity"} {
		r := cacheResponse(u, []byte(enc))
		r.Vary, r.VaryValues = []string{"Accept-Encoding"}, []string{enc}
		if _, err := s.Put(ctx, r, time.Hour, true); err != nil {
			t.Fatal(err)
		}
	}
	gz := policy.Variant([]string{"Accept-Encoding"}, []string{"gzip"})
	if r, _, err := s.Get(ctx, u, gz); err != nil || r == nil || string(r.Body) != "gzip" {
		t.Fatalf("Get variant = %v, %v", r, err)
	}
	if err := s.Purge(ctx, u); err != nil {
		t.Fatal(err)
	}
	if r, vary, err := s.Get(ctx, u, gz); err != nil || r != nil || vary != nil {
		t.Errorf("after Purge: %v, %v, %v", r, vary, err)
	}
	checkIndex(t, cc, "cl:", 16)

	if err := s.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Stats(ctx); st.Entries != 0 || st.Bytes != 0 {
		t.Errorf("after Clear: %+v", st)
	}
	if left := scanKeys(t, cc, "cl:e:*"); len(left) != 0 {
		t.Errorf("after Clear: %d entries left", len(left))
	}
}

// Entries that expire by TTL leave the index as writes go on.
func TestRedisCache_ExpiredLeaveTheIndex(t *testing.T) {
	srv := redistest.Server(t)
	ctx := context.Background()
	s, err := rediscache.New(srv.Client(t), rediscache.Options{Prefix: "ex:", Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if _, err := s.Put(ctx, cacheResponse(fmt.Sprintf("https://example.com/%d", i), []byte("b")), 50*time.Millisecond, true); err != nil {
			t.Fatal(err)
		}
	}
	// Wait, by polling, until Redis has expired them.
	poll.Until(t, "Redis to expire the entries", 10*time.Second, func() bool { return len(scanKeys(t, s.Client(), "ex:e:*")) == 0 })
	for i := range 10 {
		if _, err := s.Put(ctx, cacheResponse(fmt.Sprintf("https://example.com/new/%d", i), []byte("b")), time.Hour, true); err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Entries != 10 || st.Expired != 50 {
		t.Errorf("stats %+v, want 10 entries and 50 expired swept", st)
	}
	checkIndex(t, s.Client(), "ex:", 1)
}

// The Redis memory an entry costs beyond its body, on a real server. The
// figures in docs/store.md come from:
//
//	go test -run TestRedisCache_MemoryPerEntry -v ./integration/
//
// Two shards of 1000 entries each: past 128 members Redis stores a shard's
// sorted set and size hash in their large encodings (skiplist, hashtable),
// which is where every real cache lives.
func TestRedisCache_MemoryPerEntry(t *testing.T) {
	for _, size := range []int{1 << 10, 64 << 10} {
		t.Run(fmt.Sprintf("%dKiB", size>>10), func(t *testing.T) {
			srv := redistest.Server(t)
			c := srv.Client(t)
			ctx := context.Background()
			const n, shards = 2000, 2
			s, err := rediscache.New(c, rediscache.Options{Prefix: "mem:", Shards: shards, MaxBytes: 1 << 40})
			if err != nil {
				t.Fatal(err)
			}
			// Load the config first, so that the delta below is the entries'.
			if _, err := s.Stats(ctx); err != nil {
				t.Fatal(err)
			}
			before := usedMemory(t, c)
			body := bytes.Repeat([]byte("x"), size)
			for i := range n {
				if _, err := s.Put(ctx, cacheResponse(fmt.Sprintf("https://service.example.com/items/%d?view=full", i), body), time.Hour, true); err != nil {
					t.Fatal(err)
				}
			}
			delta := usedMemory(t, c) - before

			var usage, values, index int64
			for _, k := range scanKeys(t, c, "mem:e:*") {
				usage += c.MemoryUsage(ctx, k, 0).Val()
				values += c.StrLen(ctx, k).Val()
			}
			for i := range shards {
				tag := "{mem:" + strconv.Itoa(i) + "}"
				for _, k := range []string{"mem:lru:" + tag, "mem:ix:" + tag, "mem:st:" + tag} {
					index += c.MemoryUsage(ctx, k, 0).Val()
				}
			}
			per := func(x int64) float64 { return float64(x) / n }
			encoding := per(values) - float64(size)
			key := per(usage - values)
			t.Logf("body %d B: encoding (header, URL, times, framing) %.0f B + entry key %.0f B + index share %.0f B = %.0f B beyond the body (MEMORY USAGE); used_memory grew %.0f B per entry beyond the body",
				size, encoding, key, per(index), encoding+key+per(index), per(delta)-float64(size))
			// Generous bounds: the key's share includes the allocator's
			// rounding up to its size class, up to a quarter of the value.
			if per(index) > 300 || key > 300+per(values)/4 {
				t.Errorf("an entry costs %.0f B (key) + %.0f B (index) beyond its value", key, per(index))
			}
		})
	}
}

func usedMemory(t *testing.T, c *redis.Client) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "used_memory:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no used_memory in INFO memory")
	return 0
}

// BenchmarkRedisCache_Get measures a hit against its yardstick, one plain
// GET of the raw response and http.ReadResponse:
//
//	go test -run '^$' -bench RedisCache_Get -benchmem ./integration/
func BenchmarkRedisCache_Get(b *testing.B) {
	srv := redistest.Server(b)
	c := srv.Client(b)
	ctx := context.Background()
	for _, size := range []int{1 << 10, 16 << 10} {
		resp := cacheResponse("https://example.com/bench", bytes.Repeat([]byte("x"), size))
		b.Run(fmt.Sprintf("store/%dKiB", size>>10), func(b *testing.B) {
			s, err := rediscache.New(c, rediscache.Options{Prefix: "bench:"})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.Put(ctx, resp, time.Hour, true); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				r, _, err := s.Get(ctx, resp.URL, "")
				if err != nil || r == nil {
					b.Fatal(r, err)
				}
			}
		})
		b.Run(fmt.Sprintf("plain-GET/%dKiB", size>>10), func(b *testing.B) {
			raw := http.Response{StatusCode: 200, ProtoMajor: 1, ProtoMinor: 1, Header: resp.Header,
				ContentLength: int64(size), Body: nopCloser{bytes.NewReader(resp.Body)}}
			var buf bytes.Buffer
			if err := raw.Write(&buf); err != nil {
				b.Fatal(err)
			}
			c.Set(ctx, "plain", buf.Bytes(), time.Hour)
			b.ReportAllocs()
			for b.Loop() {
				v, err := c.Get(ctx, "plain").Bytes()
				if err != nil {
					b.Fatal(err)
				}
				r, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(v)), nil)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, r.Body)
				r.Body.Close()
			}
		})
	}
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }
