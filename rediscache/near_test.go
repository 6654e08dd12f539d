package rediscache

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/internal/redistest"
	"github.com/fleetcache/fleetcache/policy"
	"github.com/redis/go-redis/v9"
)

// peer is a store with its own client, as another process would have, and
// a clock of its own that only the test moves.
func peer(t *testing.T, r *redistest.Redis, opts Options) *fixture {
	t.Helper()
	c := r.NewClient(t, redis.UniversalOptions{})
	s, err := New(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	clk := &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	s.now = clk.Now
	if _, err := s.load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.near != nil {
		eventually(t, "the near tier subscribed", s.near.live)
	}
	return &fixture{t: t, s: s, r: r, c: c, clock: clk}
}

// fresh is a response fresh for an hour from the fixture's clock.
func fresh(f *fixture, url, body string) *policy.Response {
	r := response(url, body)
	now := f.clock.Now()
	r.Header.Set("Cache-Control", "max-age=3600")
	r.Header.Set("Date", now.Format(http.TimeFormat))
	r.RequestTime, r.ResponseTime = now, now
	return r
}

// body is what Get finds for url and variant: "" for nothing.
func (f *fixture) body(url, variant string) string {
	f.t.Helper()
	resp, _, err := f.s.Get(context.Background(), url, variant)
	if err != nil {
		f.t.Fatal(err)
	}
	if resp == nil {
		return ""
	}
	return string(resp.Body)
}

// counting counts the commands a client sends.
type counting struct{ n atomic.Int64 }

func (c *counting) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *counting) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.n.Add(1); return next(ctx, cmd) }
}
func (c *counting) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

func TestNear_HitCostsNoRedisCommandAndIsToldApart(t *testing.T) {
	redistest.Run(t, redistest.WithCluster, func(t *testing.T, r *redistest.Redis) {
		ctx := context.Background()
		f := peer(t, r, Options{Prefix: "nh:", NearBytes: 1 << 20})
		var cmds counting
		f.c.AddHook(&cmds)
		const u = "https://example.com/hot"
		if kept, err := f.s.Put(ctx, fresh(f, u, "hot"), time.Hour, true); err != nil || !kept {
			t.Fatalf("Put = %v, %v", kept, err)
		}
		before := cmds.n.Load()
		for range 3 {
			resp, _, err := f.s.Get(ctx, u, "")
			if err != nil || resp == nil || string(resp.Body) != "hot" {
				t.Fatalf("Get = %v, %v", resp, err)
			}
			if !f.s.Near(resp) {
				t.Error("Near(a near hit) = false")
			}
		}
		if n := cmds.n.Load() - before; n != 0 {
			t.Errorf("three near hits sent %d commands, want 0", n)
		}
		// Claim answers from the tier too.
		resp, _, l, err := f.s.Claim(ctx, u, nil, "", time.Minute, false)
		if err != nil || resp == nil || l.Mine || cmds.n.Load() != before {
			t.Errorf("Claim = %v, %+v, %v after %d commands", resp, l, err, cmds.n.Load()-before)
		}
		// A hit read from Redis is not near, though the tier keeps it.
		g := peer(t, r, Options{Prefix: "nh:", NearBytes: 1 << 20})
		fromRedis, _, err := g.s.Get(ctx, u, "")
		if err != nil || fromRedis == nil || g.s.Near(fromRedis) {
			t.Errorf("Get from Redis = %v, %v; Near = true", fromRedis, err)
		}
		if again, _, _ := g.s.Get(ctx, u, ""); again == nil || !g.s.Near(again) {
			t.Error("the next Get did not come from the tier")
		}
		// A response the tier does not hold is not near.
		if f.s.Near(fresh(f, u, "hot")) {
			t.Error("Near(another response) = true")
		}
		if st := f.stats(); st.NearHits != 4 || !st.NearLive || st.NearBytes == 0 {
			t.Errorf("Stats = %+v", st)
		}
	})
}

// A near hit owes Redis the LRU touch a Redis hit makes, at most once a
// second per entry, sent in the background.
func TestNear_HitsStillTouchTheLRU(t *testing.T) {
	redistest.Run(t, redistest.WithCluster, func(t *testing.T, r *redistest.Redis) {
		ctx := context.Background()
		f := peer(t, r, Options{Prefix: "nt:", NearBytes: 1 << 20, Shards: 1})
		const u = "https://example.com/touched"
		f.clock.Add(500 * time.Millisecond)
		f.put(t, fresh(f, u, "x"), time.Hour, false)
		lru := (*f.s.shards.Load())[0].lru
		score := func() float64 {
			v, err := r.Client.ZScore(ctx, lru, refOf(*f.s.shards.Load(), u, "").member()).Result()
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		was := score()
		f.clock.Add(700 * time.Millisecond) // within the confirm bound, in the next second
		if f.body(u, "") != "x" || f.stats().NearHits != 1 {
			t.Fatal("no near hit")
		}
		eventually(t, "the touch", func() bool { return score() > was })
	})
}

// Every change made through one store reaches another's near tier: the
// next Get there finds what Redis holds. The stores' clocks stand still,
// so only an announcement can end a near entry here.
func TestNear_ChangesThroughAnotherStoreReachTheTier(t *testing.T) {
	redistest.Run(t, redistest.WithCluster, func(t *testing.T, r *redistest.Redis) {
		ctx := context.Background()
		for _, c := range []struct {
			name   string
			opts   Options
			change func(t *testing.T, b *fixture, u string)
			want   string
		}{
			{"fill", Options{}, func(t *testing.T, b *fixture, u string) { b.put(t, fresh(b, u, "new"), time.Hour, true) }, "new"},
			{"purge", Options{}, func(t *testing.T, b *fixture, u string) {
				if err := b.s.Purge(ctx, u); err != nil {
					t.Fatal(err)
				}
			}, ""},
			{"delete", Options{}, func(t *testing.T, b *fixture, u string) {
				if err := b.s.Delete(ctx, u, ""); err != nil {
					t.Fatal(err)
				}
			}, ""},
			{"clear", Options{}, func(t *testing.T, b *fixture, u string) {
				if err := b.s.Clear(ctx); err != nil {
					t.Fatal(err)
				}
			}, ""},
			{"eviction", Options{MaxEntries: 1, Shards: 1}, func(t *testing.T, b *fixture, u string) {
				b.clock.Add(time.Minute) // the other entry is the more recent
				b.put(t, fresh(b, u+"/other", "other"), time.Hour, true)
			}, ""},
			{"purge-by-tag", Options{}, func(t *testing.T, b *fixture, u string) {
				if _, err := b.s.PurgeTag(ctx, "product"); err != nil {
					t.Fatal(err)
				}
			}, ""},
			// A soft purge leaves the entry in Redis, stale: the tier must
			// give way to it.
			{"soft-purge", Options{}, func(t *testing.T, b *fixture, u string) {
				if _, err := b.s.PurgeURL(ctx, u, true); err != nil {
					t.Fatal(err)
				}
			}, "old, soft-purged"},
			{"soft-purge-by-tag", Options{}, func(t *testing.T, b *fixture, u string) {
				if _, err := b.s.SoftPurgeTag(ctx, "product"); err != nil {
					t.Fatal(err)
				}
			}, "old, soft-purged"},
			{"trim", Options{Shards: 1}, func(t *testing.T, b *fixture, u string) {
				b.clock.Add(time.Minute)
				b.put(t, fresh(b, u+"/other", "other"), time.Hour, true)
				if err := b.s.SetLimit(ctx, LimitMaxEntries, 1); err != nil {
					t.Fatal(err)
				}
				b.clock.Add(configRefresh) // read again: the lowered limit starts a trim
				if _, err := b.s.currentLimits(ctx); err != nil {
					t.Fatal(err)
				}
			}, ""},
		} {
			t.Run(c.name, func(t *testing.T) {
				opts := c.opts
				opts.Prefix, opts.NearBytes = "nc"+c.name+":", 1<<20
				a, b := peer(t, r, opts), peer(t, r, opts)
				u := "https://example.com/" + c.name
				old := fresh(a, u, "old")
				old.Tags = []string{"product"}
				a.put(t, old, time.Hour, true)
				if a.body(u, "") != "old" || a.stats().NearHits != 1 {
					t.Fatal("no near hit before the change")
				}
				c.change(t, b, u)
				eventually(t, "the change to reach the tier", func() bool {
					resp, _, err := a.s.Get(ctx, u, "")
					if err != nil {
						t.Fatal(err)
					}
					switch {
					case resp == nil:
						return c.want == ""
					case !resp.Purged.IsZero():
						return c.want == string(resp.Body)+", soft-purged"
					}
					return c.want == string(resp.Body)
				})
				// Counted just after the drop, by the goroutine that heard it.
				eventually(t, "an invalidation counted", func() bool { return a.stats().NearInvalidations > 0 })
			})
		}
	})
}

// A URL over its variant limit loses its least recently used variant in
// Redis, and in every near tier.
func TestNear_VariantLimitEvictionReachesTheTier(t *testing.T) {
	redistest.Run(t, redistest.WithCluster, func(t *testing.T, r *redistest.Redis) {
		opts := Options{Prefix: "nv:", NearBytes: 1 << 20, MaxVariants: 1}
		a, b := peer(t, r, opts), peer(t, r, opts)
		const u = "https://example.com/varied"
		en := fresh(a, u, "english")
		en.Vary, en.VaryValues = []string{"Accept-Language"}, []string{"en"}
		a.put(t, en, time.Hour, true)
		enVariant := variantOf(en)
		if a.body(u, enVariant) != "english" || a.stats().NearHits != 1 {
			t.Fatal("no near hit")
		}
		fr := fresh(b, u, "french")
		fr.Vary, fr.VaryValues = []string{"Accept-Language"}, []string{"fr"}
		b.put(t, fr, time.Hour, true)
		eventually(t, "the variant's eviction to reach the tier", func() bool { return a.body(u, enVariant) == "" })
	})
}

// A purge through the same store is seen by its next Get at once, before
// its own announcement comes back.
func TestNear_OwnPurgeIsSeenAtOnce(t *testing.T) {
	redistest.Run(t, redistest.WithCluster, func(t *testing.T, r *redistest.Redis) {
		ctx := context.Background()
		a := peer(t, r, Options{Prefix: "np:", NearBytes: 1 << 20})
		const u = "https://example.com/own"
		for i := range 50 {
			a.put(t, fresh(a, u, "x"), time.Hour, true)
			if a.body(u, "") != "x" {
				t.Fatal("no hit")
			}
			if err := a.s.Purge(ctx, u); err != nil {
				t.Fatal(err)
			}
			if got := a.body(u, ""); got != "" {
				t.Fatalf("round %d: Get after Purge = %q", i, got)
			}
		}
	})
}

// What no announcement tells (an operator's DEL in Redis) is served from
// the tier for at most nearConfirm since Redis last confirmed the entry.
func TestNear_UnannouncedDeleteEndsWithTheConfirmBound(t *testing.T) {
	redistest.Run(t, redistest.WithCluster, func(t *testing.T, r *redistest.Redis) {
		ctx := context.Background()
		a := peer(t, r, Options{Prefix: "nd:", NearBytes: 1 << 20})
		const u = "https://example.com/deleted"
		a.put(t, fresh(a, u, "x"), time.Hour, true)
		if err := r.Client.Del(ctx, refOf(*a.s.shards.Load(), u, "").entry).Err(); err != nil {
			t.Fatal(err)
		}
		if a.body(u, "") != "x" {
			t.Fatal("the tier lost the entry before the bound")
		}
		a.clock.Add(nearConfirm)
		if got := a.body(u, ""); got != "" {
			t.Errorf("Get after the confirm bound = %q, want a miss", got)
		}
	})
}

// A stale response is left to Redis (and the transport's revalidation).
func TestNear_StaleResponsesAreNotKept(t *testing.T) {
	redistest.Run(t, redistest.WithCluster, func(t *testing.T, r *redistest.Redis) {
		a := peer(t, r, Options{Prefix: "ns:", NearBytes: 1 << 20})
		const u = "https://example.com/stale"
		a.put(t, response(u, "x"), time.Hour, true) // no freshness at all
		// Read from Redis, and then again from Redis.
		for range 2 {
			if a.body(u, "") != "x" {
				t.Fatal("no hit")
			}
		}
		if st := a.stats(); st.NearHits != 0 {
			t.Errorf("Stats = %+v, want no near hit", st)
		}
	})
}

// When its subscription drops, the tier empties at once and stays unused
// until subscribed again: an entry removed without an announcement while
// the subscription was away (as a restart without persistence loses
// everything) is never served after it. drop breaks the subscription.
func testSubscriptionDrop(t *testing.T, r *redistest.Redis, prefix string, drop func(a *fixture)) {
	ctx := context.Background()
	a := peer(t, r, Options{Prefix: prefix, NearBytes: 1 << 20})
	// A purge no tier hears of: a store whose user may not publish.
	mute := peer(t, r, Options{Prefix: prefix})
	mute.s.publish.Store("")
	const u = "https://example.com/restart"
	a.put(t, fresh(a, u, "x"), time.Hour, true)
	if a.body(u, "") != "x" {
		t.Fatal("no hit")
	}
	if err := mute.s.Purge(ctx, u); err != nil {
		t.Fatal(err)
	}
	if a.body(u, "") != "x" {
		t.Fatal("the tier lost the entry unannounced")
	}
	drop(a)
	eventually(t, "the tier to subscribe again", a.s.near.live)
	if a.s.near.resets.Load() == 0 {
		t.Error("no reset counted")
	}
	if got := a.body(u, ""); got != "" {
		t.Errorf("Get after the drop = %q, want a miss", got)
	}
	// And it works again.
	a.put(t, fresh(a, u, "y"), time.Hour, true)
	if a.body(u, "") != "y" || a.stats().NearHits < 3 {
		t.Errorf("no near hit after the drop: %+v", a.stats())
	}
}

func TestNear_RestartEmptiesTheTier(t *testing.T) {
	redistest.Run(t, []redistest.Backend{redistest.RealServer}, func(t *testing.T, r *redistest.Redis) {
		testSubscriptionDrop(t, r, "nk:", func(a *fixture) {
			r.Kill(t)
			eventually(t, "the tier to reset", func() bool { return a.s.near.resets.Load() > 0 && !a.s.near.live() })
			if _, _, err := a.s.Get(context.Background(), "https://example.com/restart", ""); err == nil {
				t.Error("Get with Redis down answered")
			}
			r.Restart(t)
		})
	})
}

// The same when Redis closes the pub/sub connections (on a cluster: every
// master's), as a failover or a proxy would.
func TestNear_ClosedSubscriptionEmptiesTheTier(t *testing.T) {
	redistest.Run(t, redistest.Real, func(t *testing.T, r *redistest.Redis) {
		testSubscriptionDrop(t, r, "nq:", func(a *fixture) {
			ctx := context.Background()
			kill := func(ctx context.Context, c *redis.Client) error {
				return c.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err()
			}
			var err error
			if cc, ok := r.Client.(*redis.ClusterClient); ok {
				err = cc.ForEachMaster(ctx, kill)
			} else {
				err = kill(ctx, r.Client.(*redis.Client))
			}
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, "the tier to reset", func() bool { return a.s.near.resets.Load() > 0 })
		})
	})
}

// A late message cannot drop a newer entry, and a read that an announced
// change may have overtaken is not kept.
func TestNear_VersionsOrderMessagesAndReads(t *testing.T) {
	n, err := newNear(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer n.cache.StopAllGoroutines()
	n.seen = make([]atomic.Int64, 1)
	n.down.Store(0)
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	const u = "https://example.com/v"
	resp := response(u, "x")
	resp.Header.Set("Cache-Control", "max-age=60")
	resp.RequestTime, resp.ResponseTime = now, now
	const member = "0000000000000001:0000000000000002"
	id := nearID(1, 2)
	entry := func() *nearEntry { return &nearEntry{resp: resp, size: 100} }
	has := func() bool { _, ok := n.cache.GetIfPresent(id); return ok }

	n.keep(id, 0, n.gen.Load(), 10, entry(), now, time.Hour)
	if !has() {
		t.Fatal("entry at version 10 not kept")
	}
	n.apply(0, "10 "+member, true) // this process's own purge, returned by its script
	if !has() {
		t.Error("a message of version 10 dropped the entry read at 10")
	}
	n.apply(0, "11 "+member, false)
	if has() {
		t.Error("a message of version 11 left the entry read at 10")
	}
	n.keep(id, 0, n.gen.Load(), 10, entry(), now, time.Hour)
	if has() {
		t.Error("a read at version 10 was kept after a change at 11 was heard")
	}
	n.keep(id, 0, n.gen.Load(), 12, entry(), now, time.Hour)
	if !has() {
		t.Error("a read at version 12 was not kept")
	}
	gen := n.gen.Load()
	n.reset()
	n.keep(id, 0, gen, 13, entry(), now, time.Hour)
	if has() {
		t.Error("a read begun before a reset was kept")
	}
	// Versions going back mean Redis lost st: start over.
	n.apply(0, "20 0000000000000009:0000000000000009", false)
	n.keep(id, 0, n.gen.Load(), 20, entry(), now, time.Hour)
	resets := n.resets.Load()
	n.apply(0, "3 0000000000000009:0000000000000009", false)
	if has() || n.resets.Load() != resets+1 || n.seen[0].Load() != 0 {
		t.Error("a version lower than one heard left the tier as it was")
	}
	for _, bad := range []string{"", "x " + member, "14 nothex", "15 " + member + "0"} {
		n.keep(id, 0, n.gen.Load(), 20, entry(), now, time.Hour)
		resets := n.resets.Load()
		n.apply(0, bad, false)
		if has() || n.resets.Load() != resets+1 {
			t.Errorf("message %q left the tier as it was", bad)
		}
	}
}

// The tier holds to its byte bound under a skewed load of many more bytes.
func TestNear_MemoryHeldToTheBound(t *testing.T) {
	redistest.Run(t, []redistest.Backend{redistest.RealServer}, func(t *testing.T, r *redistest.Redis) {
		const bound = 256 << 10
		a := peer(t, r, Options{Prefix: "nm:", NearBytes: bound})
		zipf := rand.NewZipf(rand.New(rand.NewPCG(1, 2)), 1.1, 1, 1999)
		body := strings.Repeat("x", 4<<10)
		for i := range 2000 {
			a.put(t, fresh(a, fmt.Sprint("https://example.com/z/", i), body), time.Hour, true)
		}
		for range 20000 {
			u := fmt.Sprint("https://example.com/z/", zipf.Uint64())
			if a.body(u, "") != body {
				t.Fatalf("%s: no hit", u)
			}
		}
		a.s.near.cache.CleanUp()
		st := a.stats()
		if st.NearBytes > bound || st.NearEvictions == 0 || st.NearHits == 0 {
			t.Errorf("Stats = %+v; want at most %d bytes held, evictions and hits", st, bound)
		}
	})
}

// Without pub/sub (a Ring) the tier stays empty, and the log says why.
func TestNear_WithoutPubSubStaysEmpty(t *testing.T) {
	r := redistest.Miniredis.Start(t)
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": r.Mini().Addr()}})
	t.Cleanup(func() { _ = ring.Close() })
	var log strings.Builder
	s, err := New(ring, Options{Prefix: "nr:", NearBytes: 1 << 20, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	f := &fixture{t: t, s: s, r: r, c: ring, clock: &clock{t: time.Now()}}
	s.now = f.clock.Now
	f.put(t, fresh(f, "https://example.com/ring", "x"), time.Hour, true)
	for range 2 {
		if f.body("https://example.com/ring", "") != "x" {
			t.Fatal("no hit")
		}
	}
	if st, err := s.Stats(ctx); err != nil || st.NearLive || st.NearHits != 0 {
		t.Errorf("Stats = %+v, %v; want the tier unused", st, err)
	}
	if !strings.Contains(log.String(), "near tier stays empty") {
		t.Errorf("log: %s", log.String())
	}
}

// When a shard's slot moves to another master, Redis unsubscribes the
// tier's connection (sunsubscribe): the tier empties, and subscribes again
// on the slot's new master.
func TestNear_SlotMoveEmptiesTheTierAndFollowsTheSlot(t *testing.T) {
	redistest.Run(t, []redistest.Backend{redistest.RealCluster}, func(t *testing.T, r *redistest.Redis) {
		ctx := context.Background()
		a := peer(t, r, Options{Prefix: "nmv:", NearBytes: 1 << 20, Shards: 2})
		shards := *a.s.shards.Load()
		// An entry in shard 1; shard 0's slot holds no key, so that it can
		// move without a migration of keys.
		var u string
		for i := 0; ; i++ {
			if u = fmt.Sprint("https://example.com/moved/", i); refOf(shards, u, "").sh.idx == 1 {
				break
			}
		}
		a.put(t, fresh(a, u, "x"), time.Hour, true)
		if a.body(u, "") != "x" || a.stats().NearHits != 1 {
			t.Fatal("no near hit")
		}

		cc := r.Client.(*redis.ClusterClient)
		channel := shards[0].near
		slot, err := cc.ClusterKeySlot(ctx, channel).Result()
		if err != nil {
			t.Fatal(err)
		}
		from, err := cc.MasterForKey(ctx, channel)
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		ids := map[string]string{} // addr -> node ID
		if err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			id, err := m.Do(ctx, "CLUSTER", "MYID").Text()
			mu.Lock()
			ids[m.Options().Addr] = id
			mu.Unlock()
			return err
		}); err != nil {
			t.Fatal(err)
		}
		var to string
		for addr, id := range ids {
			if addr != from.Options().Addr {
				to = id
			}
		}
		if err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			return m.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", to).Err()
		}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the tier to reset", func() bool { return a.s.near.resets.Load() > 0 })
		if a.body(u, "") != "x" {
			t.Fatal("Redis lost the entry")
		}
		subscribed := func() map[string]int64 {
			got := map[string]int64{}
			_ = cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
				n, err := m.PubSubShardNumSub(ctx, channel).Result()
				mu.Lock()
				got[ids[m.Options().Addr]] = n[channel]
				mu.Unlock()
				return err
			})
			return got
		}
		eventually(t, "the tier to subscribe on the new master", func() bool {
			got := subscribed()
			return a.s.near.live() && got[to] == 1
		})
		// Read from Redis and kept, then served from the tier.
		for range 2 {
			if a.body(u, "") != "x" {
				t.Fatal("no hit after the move")
			}
		}
		if st := a.stats(); st.NearHits < 2 {
			t.Errorf("no near hit after the move: %+v", st)
		}
	})
}
