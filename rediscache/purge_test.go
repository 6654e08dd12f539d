package rediscache

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/internal/redistest"
	"github.com/fleetcache/fleetcache/policy"
	"github.com/redis/go-redis/v9"
)

// tagged is response(url, body) with tags.
func tagged(url, body string, tags ...string) *policy.Response {
	r := response(url, body)
	r.Tags = tags
	return r
}

// present lists which of urls have an entry (no variant).
func (f *fixture) present(t *testing.T, urls []string) []string {
	t.Helper()
	var out []string
	for _, u := range urls {
		if r, _ := f.get(t, u, ""); r != nil {
			out = append(out, u)
		}
	}
	return out
}

func TestPurgeTag_RemovesExactlyTheTaggedEntriesInEveryShard(t *testing.T) {
	redistest.Run(t, redistest.WithCluster, func(t *testing.T, r *redistest.Redis) {
		f := newFixture(t, r, Options{Shards: 8})
		ctx := context.Background()
		var all, kept []string
		for i := range 80 {
			u := fmt.Sprintf("http://example.com/products/%d", i)
			tags := []string{"all", fmt.Sprintf("p%d", i)}
			if i%2 == 0 {
				tags = append(tags, "even")
			} else {
				kept = append(kept, u)
			}
			f.put(t, tagged(u, "body", tags...), time.Hour, true)
			all = append(all, u)
		}
		// A variant of an even URL goes with it.
		v := varied("http://example.com/products/0", "fr", "Accept-Language", "fr")
		v.Tags = []string{"even"}
		f.put(t, v, time.Hour, true)
		// Another cache's entries with the same tag stay.
		other := newFixture(t, r, Options{Prefix: "other:", Shards: 8})
		other.put(t, tagged("http://example.com/products/0", "theirs", "even"), time.Hour, true)
		f.checkIndex(t)

		// The tag sets are spread over every shard (and so, on a
		// cluster, over every master).
		shards := *f.s.shards.Load()
		for _, sh := range shards {
			if n := f.c.SCard(ctx, sh.tag+tagHashes([]string{"all"})).Val(); n == 0 {
				t.Errorf("shard %s holds no entry tagged all", sh.lru)
			}
		}
		if cc, ok := f.c.(*redis.ClusterClient); ok {
			var masters atomic.Int64
			_ = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
				var n int
				for _, k := range c.Keys(ctx, "t:t:*").Val() {
					if strings.HasSuffix(k, tagHashes([]string{"all"})) {
						n++
					}
				}
				if n > 0 {
					masters.Add(1)
				}
				return nil
			})
			if m := masters.Load(); m < 3 {
				t.Errorf("the tag all is on %d masters, want 3", m)
			}
		}

		before := f.stats()
		n, err := f.s.PurgeTag(ctx, "even", "no-such-tag")
		if err != nil {
			t.Fatal(err)
		}
		if n != 41 {
			t.Errorf("PurgeTag removed %d, want 41 (40 URLs and a variant)", n)
		}
		if got := f.present(t, all); !slices.Equal(got, kept) {
			t.Errorf("after PurgeTag(even): %d entries left, want the %d odd ones", len(got), len(kept))
		}
		if after := f.stats(); after.Entries != before.Entries-41 {
			t.Errorf("Entries %d -> %d, want 41 fewer", before.Entries, after.Entries)
		}
		if r, _ := other.get(t, "http://example.com/products/0", ""); r == nil {
			t.Error("PurgeTag removed another prefix's entry")
		}
		f.checkIndex(t)

		// The rest goes with a tag they all have.
		if n, err := f.s.PurgeTag(ctx, "all"); err != nil || n != 40 {
			t.Errorf("PurgeTag(all) = %d, %v; want 40", n, err)
		}
		if st := f.stats(); st.Entries != 0 || st.Bytes != 0 {
			t.Errorf("after purging every tag: %+v", st)
		}
		f.checkIndex(t)
		for _, k := range r.Keys(t) {
			if strings.HasPrefix(k, "t:t:") || strings.HasPrefix(k, "t:tg:") {
				t.Errorf("tag index key %s outlived every entry", k)
			}
		}
	})
}

func TestPurgeTag_ManyMembersInBatches(t *testing.T) {
	redistest.Run(t, redistest.Backends, func(t *testing.T, r *redistest.Redis) {
		f := newFixture(t, r, Options{Shards: 1})
		n := 3*purgeBatch + 7
		for i := range n {
			f.put(t, tagged(fmt.Sprintf("http://example.com/%d", i), "b", "big"), time.Hour, true)
		}
		got, err := f.s.PurgeTag(context.Background(), "big")
		if err != nil || got != int64(n) {
			t.Errorf("PurgeTag = %d, %v; want %d", got, err, n)
		}
		f.checkIndex(t)
	})
}

func TestPut_ReplacesTheEntrysTags(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		u := "http://example.com/a"
		f.put(t, tagged(u, "v1", "old", "both"), time.Hour, true)
		f.put(t, tagged(u, "v2", "new", "both"), 2*time.Hour, true)
		f.checkIndex(t)
		if n, err := f.s.PurgeTag(ctx, "old"); err != nil || n != 0 {
			t.Errorf("PurgeTag(old) = %d, %v; want 0: the entry no longer has it", n, err)
		}
		f.put(t, response(u, "v3"), time.Hour, true) // no tags at all
		f.checkIndex(t)
		if n, err := f.s.PurgeTag(ctx, "new", "both"); err != nil || n != 0 {
			t.Errorf("PurgeTag(new, both) = %d, %v; want 0", n, err)
		}
		if r, _ := f.get(t, u, ""); r == nil || string(r.Body) != "v3" {
			t.Errorf("entry = %v", r)
		}
	})
}

func TestTags_ExpireWithTheirEntries(t *testing.T) {
	eachBackend(t, Options{Shards: 1}, func(t *testing.T, f *fixture) {
		f.put(t, tagged("http://example.com/short", "b", "t"), time.Minute, true)
		f.put(t, tagged("http://example.com/long", "b", "t"), time.Hour, true)
		sh := (*f.s.shards.Load())[0]
		if ttl := f.ttl(sh.tag + tagHashes([]string{"t"})); ttl != time.Hour {
			t.Errorf("tag set TTL %v, want its longest member's, 1h", ttl)
		}
		f.advance(2 * time.Minute)
		f.put(t, response("http://example.com/other", "b"), time.Hour, true) // sweeps
		f.checkIndex(t)
		f.advance(time.Hour)
		for range 3 {
			f.put(t, response("http://example.com/other", "b"), time.Hour, true)
		}
		f.checkIndex(t)
		if n := f.c.HLen(context.Background(), sh.tg).Val(); n != 0 {
			t.Errorf("%d tag records left after their entries expired", n)
		}
	})
}

func TestPut_BoundsTheTagsOfOneEntry(t *testing.T) {
	eachBackend(t, Options{Shards: 1}, func(t *testing.T, f *fixture) {
		var tags []string
		for i := range 3 * policy.MaxTags {
			tags = append(tags, fmt.Sprint("t", i), fmt.Sprint("t", i)) // and each twice
		}
		f.put(t, tagged("http://example.com/a", "b", tags...), time.Hour, true)
		sh := (*f.s.shards.Load())[0]
		rec := f.c.HGet(context.Background(), sh.tg, refOf(*f.s.shards.Load(), "http://example.com/a", "").member()).Val()
		if len(rec) != 16*policy.MaxTags {
			t.Errorf("tag record of %d bytes, want %d tags", len(rec), policy.MaxTags)
		}
		f.checkIndex(t)
	})
}

func TestSoftPurge_StaleInPlaceKeepingValidatorsAndTTL(t *testing.T) {
	redistest.Run(t, redistest.WithCluster, func(t *testing.T, r *redistest.Redis) {
		f := newFixture(t, r, Options{})
		ctx := context.Background()
		u := "http://example.com/a"
		e := tagged(u, "v1", "t")
		e.Header.Set("Etag", `"v1"`)
		f.put(t, e, time.Hour, true)
		f.put(t, varied(u, "fr", "Accept-Language", "fr"), time.Hour, true)
		f.put(t, tagged("http://example.com/b", "b", "t"), time.Hour, true)
		f.put(t, tagged("http://example.com/c", "c", "other"), time.Hour, true)
		f.clock.Add(time.Minute)
		purgedAt := f.clock.Now()

		n, err := f.s.PurgeURL(ctx, u, true)
		if err != nil || n != 2 {
			t.Fatalf("PurgeURL(soft) = %d, %v; want 2 variants", n, err)
		}
		got, _ := f.get(t, u, "")
		if got == nil || !got.Purged.Equal(purgedAt.Truncate(time.Millisecond)) || got.Header.Get("Etag") != `"v1"` {
			t.Fatalf("after a soft purge: %+v", got)
		}
		if ttl := f.ttl(refOf(*f.s.shards.Load(), u, "").entry); ttl != time.Hour {
			t.Errorf("TTL %v after a soft purge, want the hour it had", ttl)
		}
		// A second soft purge keeps the first's time: staleness is not
		// postponed.
		f.clock.Add(time.Minute)
		if _, err := f.s.PurgeURL(ctx, u, true); err != nil {
			t.Fatal(err)
		}
		if got, _ := f.get(t, u, ""); !got.Purged.Equal(purgedAt.Truncate(time.Millisecond)) {
			t.Errorf("Purged moved to %v", got.Purged)
		}

		if n, err := f.s.SoftPurgeTag(ctx, "t"); err != nil || n != 2 {
			t.Errorf("SoftPurgeTag(t) = %d, %v; want 2", n, err)
		}
		if got, _ := f.get(t, "http://example.com/b", ""); got == nil || got.Purged.IsZero() {
			t.Errorf("b after SoftPurgeTag: %+v", got)
		}
		if got, _ := f.get(t, "http://example.com/c", ""); got == nil || !got.Purged.IsZero() {
			t.Errorf("c, not tagged, after SoftPurgeTag: %+v", got)
		}
		// A write (a revalidation's) replaces the soft-purged entry.
		f.put(t, tagged(u, "v2", "t"), time.Hour, true)
		if got, _ := f.get(t, u, ""); got == nil || !got.Purged.IsZero() {
			t.Errorf("after a new write: %+v", got)
		}
		if st := f.stats(); st.Entries != 4 {
			t.Errorf("Entries = %d after soft purges, want 4", st.Entries)
		}
		f.checkIndex(t)
	})
}

func TestSoftPurge_AnEntryOfVersion1IsRemoved(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		u := "http://example.com/old"
		f.put(t, tagged(u, "b", "t"), time.Hour, true)
		key := refOf(*f.s.shards.Load(), u, "").entry
		old := encodeV1(response(u, "b"))
		if err := f.c.Set(ctx, key, old, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
		if err := f.c.HSet(ctx, (*f.s.shards.Load())[0].st, "bytes", 0).Err(); err != nil {
			t.Fatal(err)
		}
		n, err := f.s.SoftPurgeTag(ctx, "t")
		if err != nil || n != 0 {
			t.Errorf("SoftPurgeTag = %d, %v; want 0 marked", n, err)
		}
		if got, _ := f.get(t, u, ""); got != nil {
			t.Errorf("a version 1 entry survived a soft purge: %+v", got)
		}
	})
}

func TestPurgeTag_ForeignKeyFailsLoudlyChangingNothing(t *testing.T) {
	eachBackend(t, Options{Shards: 1}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		f.put(t, tagged("http://example.com/a", "b", "t", "u"), time.Hour, true)
		sh := (*f.s.shards.Load())[0]
		if err := f.c.Set(ctx, sh.tag+tagHashes([]string{"u"}), "x", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.PurgeTag(ctx, "t", "u"); err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
			t.Errorf("PurgeTag over a foreign key: %v, want WRONGTYPE", err)
		}
		if r, _ := f.get(t, "http://example.com/a", ""); r == nil {
			t.Error("the failed call removed the entry")
		}
		if _, err := f.s.PurgeTag(ctx, "t"); err != nil {
			t.Errorf("PurgeTag(t) = %v", err)
		}
		if r, _ := f.get(t, "http://example.com/a", ""); r != nil {
			t.Error("PurgeTag(t) left the entry")
		}
	})
}

// BenchmarkPut_Tags is a write with no tags and with eight, on a
// redis-server: what indexing the tags costs.
//
//	go test -run='^$' -bench=BenchmarkPut_Tags ./rediscache/
func BenchmarkPut_Tags(b *testing.B) {
	r := redistest.RealServer.Start(b)
	for _, n := range []int{0, 8} {
		b.Run(fmt.Sprint(n, "-tags"), func(b *testing.B) {
			s, err := New(r.Client, Options{Prefix: fmt.Sprintf("b%d:", n)})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var tags []string
			for i := range n {
				tags = append(tags, fmt.Sprint("tag-", i))
			}
			ctx := context.Background()
			b.ResetTimer()
			for i := range b.N {
				if _, err := s.Put(ctx, tagged(fmt.Sprintf("http://example.com/%d", i%1000), "body", tags...), time.Hour, true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPurgeTag removes a tag of 10,000 entries over 16 shards on a
// redis-server, and reports the longest single script Redis ran meanwhile
// (SLOWLOG): the work per script is bounded, so that Redis keeps serving.
//
//	go test -run='^$' -bench=BenchmarkPurgeTag -benchtime=3x ./rediscache/
func BenchmarkPurgeTag(b *testing.B) {
	r := redistest.RealServer.Start(b)
	ctx := context.Background()
	s, err := New(r.Client, Options{Prefix: "pt:"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const n = 10_000
	var longest time.Duration
	for range b.N {
		b.StopTimer()
		for i := range n {
			if _, err := s.Put(ctx, tagged(fmt.Sprintf("http://example.com/%d", i), "body", "all"), time.Hour, true); err != nil {
				b.Fatal(err)
			}
		}
		r.Client.ConfigSet(ctx, "slowlog-log-slower-than", "0")
		r.Client.SlowLogReset(ctx)
		b.StartTimer()
		got, err := s.PurgeTag(ctx, "all")
		b.StopTimer()
		if err != nil || got != n {
			b.Fatalf("PurgeTag = %d, %v", got, err)
		}
		logs, _ := r.Client.SlowLogGet(ctx, -1).Result()
		for _, l := range logs {
			if len(l.Args) > 0 && strings.EqualFold(l.Args[0], "evalsha") {
				longest = max(longest, l.Duration)
			}
		}
		r.Client.ConfigSet(ctx, "slowlog-log-slower-than", "10000")
		b.StartTimer()
	}
	b.ReportMetric(float64(longest.Microseconds()), "max-script-µs")
}

// A variant whose ix record Redis dropped (an evicting Redis) is still
// found by a soft purge, through lru.
func TestSoftPurge_FindsAVariantThatLostItsIxRecord(t *testing.T) {
	eachBackend(t, Options{Shards: 1}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		const u = "http://example.com/a"
		f.put(t, varied(u, "en", "Accept-Language", "en"), time.Hour, true)
		f.put(t, varied(u, "fr", "Accept-Language", "fr"), time.Hour, true)
		sh := (*f.s.shards.Load())[0]
		fr := refOf(*f.s.shards.Load(), u, policy.Variant([]string{"Accept-Language"}, []string{"fr"}))
		rec, _ := f.c.ZRangeByLex(ctx, sh.ix, &redis.ZRangeBy{Min: "[" + fr.member() + ":", Max: "(" + fr.member() + ";"}).Result()
		if len(rec) != 1 || f.c.ZRem(ctx, sh.ix, rec[0]).Err() != nil {
			t.Fatalf("ix record of fr: %q", rec)
		}
		n, err := f.s.PurgeURL(ctx, u, true)
		if err != nil || n != 2 {
			t.Errorf("PurgeURL(soft) = %d, %v; want both variants", n, err)
		}
		got, _, _ := f.s.Get(ctx, u, policy.Variant([]string{"Accept-Language"}, []string{"fr"}))
		if got == nil || got.Purged.IsZero() {
			t.Errorf("the variant without its ix record: %+v", got)
		}
	})
}
