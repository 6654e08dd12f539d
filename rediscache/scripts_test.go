package rediscache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/internal/redisfail"
	"github.com/fleetcache/fleetcache/internal/redistest"
	"github.com/fleetcache/fleetcache/policy"
	"github.com/redis/go-redis/v9"
)

// Every script, on every state a shard can be in where there is nothing to
// remove: Redis refuses arguments miniredis accepts (a "-0" for a byte
// count of zero once switched the whole cache off), so these run on a real
// server too.
func TestScripts_NothingToRemove(t *testing.T) {
	const u = "https://example.com/target"
	gz := policy.Variant([]string{"Accept-Encoding"}, []string{"gzip"})
	states := []struct {
		name  string
		setup func(t *testing.T, f *fixture)
	}{
		{"empty shard", func(t *testing.T, f *fixture) {}},
		{"absent URL", func(t *testing.T, f *fixture) {
			for i := range 5 {
				f.put(t, response(fmt.Sprintf("https://example.com/other/%d", i), "b"), time.Hour, true)
			}
		}},
		{"absent member", func(t *testing.T, f *fixture) {
			f.put(t, varied(u, "br", "Accept-Encoding", "br"), time.Hour, true)
		}},
		{"expired entry", func(t *testing.T, f *fixture) {
			gz := varied(u, "gz", "Accept-Encoding", "gzip")
			gz.Tags = []string{"t"}
			f.put(t, gz, time.Second, true)
			f.put(t, tagged(u, "plain", "t"), time.Second, true)
			f.advance(2 * time.Second)
		}},
	}
	ops := []struct {
		name string
		run  func(ctx context.Context, s *Store) error
	}{
		{"Delete", func(ctx context.Context, s *Store) error { return s.Delete(ctx, u, gz) }},
		{"Delete without variant", func(ctx context.Context, s *Store) error { return s.Delete(ctx, u, "") }},
		{"Purge", func(ctx context.Context, s *Store) error { return s.Purge(ctx, u) }},
		{"soft Purge", func(ctx context.Context, s *Store) error { _, err := s.PurgeURL(ctx, u, true); return err }},
		{"PurgeTag", func(ctx context.Context, s *Store) error { _, err := s.PurgeTag(ctx, "t", "none"); return err }},
		{"SoftPurgeTag", func(ctx context.Context, s *Store) error { _, err := s.SoftPurgeTag(ctx, "t", "none"); return err }},
		{"Clear", func(ctx context.Context, s *Store) error { return s.Clear(ctx) }},
		{"trim", func(ctx context.Context, s *Store) error { return s.trim(ctx) }},
		{"corrupt delete", func(ctx context.Context, s *Store) error {
			shards, err := s.load(ctx)
			if err != nil {
				return err
			}
			return s.delete(ctx, refOf(shards, u, gz), strings.Repeat("0", 40))
		}},
		{"Get", func(ctx context.Context, s *Store) error { _, _, err := s.Get(ctx, u, gz); return err }},
		{"Put", func(ctx context.Context, s *Store) error {
			_, err := s.Put(ctx, varied(u, "new", "Accept-Encoding", "gzip"), time.Hour, true)
			return err
		}},
		{"Stats", func(ctx context.Context, s *Store) error { _, err := s.Stats(ctx); return err }},
	}
	for _, st := range states {
		t.Run(st.name, func(t *testing.T) {
			redistest.Run(t, redistest.Backends, func(t *testing.T, r *redistest.Redis) {
				for i, op := range ops {
					t.Run(op.name, func(t *testing.T) {
						f := newFixture(t, r, Options{Prefix: fmt.Sprintf("op%d:", i), Shards: 1})
						st.setup(t, f)
						before := f.stats()
						if err := op.run(context.Background(), f.s); err != nil {
							t.Fatalf("%s: %v", op.name, err)
						}
						after := f.stats()
						if after.Bytes < 0 || after.Entries > before.Entries+1 {
							t.Errorf("stats went from %+v to %+v", before, after)
						}
						f.checkIndexLive(t)
					})
				}
			})
		})
	}
}

// A key of the wrong type where the store keeps its index (a foreign key
// under the prefix) fails the call with a refusal, before anything is
// written: a script that failed half way would leave the index wrong.
func TestScripts_ForeignKeyFailsTheCallAndChangesNothing(t *testing.T) {
	eachBackend(t, Options{Shards: 1}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		const u = "https://example.com/x"
		f.put(t, response("https://example.com/before", "b"), time.Hour, true)
		sh := (*f.s.shards.Load())[0]
		if err := f.c.Set(ctx, sh.ix, "foreign", 0).Err(); err != nil {
			t.Fatal(err)
		}
		keysBefore := len(f.r.Keys(t))
		_, err := f.s.Put(ctx, response(u, "b"), time.Hour, true)
		var refused *redisfail.Refused
		if !errors.As(err, &refused) || refused.Refused() != "WRONGTYPE" {
			t.Fatalf("Put over a foreign key: %v; want a WRONGTYPE refusal", err)
		}
		if n := len(f.r.Keys(t)); n != keysBefore {
			t.Errorf("the refused Put changed the key count from %d to %d", keysBefore, n)
		}
		if r, _ := f.get(t, u, ""); r != nil {
			t.Error("the refused Put stored its entry")
		}
		for _, op := range []func() error{
			func() error { return f.s.Purge(ctx, u) },
			func() error { return f.s.Delete(ctx, u, "") },
			func() error { return f.s.Clear(ctx) },
			func() error { _, err := f.s.PurgeURL(ctx, u, true); return err },
			func() error { _, err := f.s.PurgeTag(ctx, "t"); return err },
			func() error { _, err := f.s.SoftPurgeTag(ctx, "t"); return err },
		} {
			if err := op(); !errors.As(err, &refused) {
				t.Errorf("%v; want a refusal", err)
			}
		}
	})
}

// stats reads the store's Stats or fails the test.
func (f *fixture) stats() Stats {
	f.t.Helper()
	st, err := f.s.Stats(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

// checkIndexLive asserts what holds whether or not entries have expired
// unswept: the LRU set and the size hash list the same members, the byte
// total is their sum, every entry that exists is indexed with its size, and
// every v: field names an indexed member or one whose entry expired.
func (f *fixture) checkIndexLive(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for _, sh := range *f.s.shards.Load() {
		members := f.c.ZRange(ctx, sh.lru, 0, -1).Val()
		sizes := sizes(f.c, &sh)
		if len(members) != len(sizes) {
			t.Errorf("%s: %d members, %d sizes", sh.lru, len(members), len(sizes))
		}
		var sum int64
		for _, m := range members {
			n, ok := sizes[m]
			if !ok {
				t.Errorf("%s: member %s has no size", sh.lru, m)
			}
			sum += atoi(n)
			if l := f.c.StrLen(ctx, sh.entry+m).Val(); l != 0 && l != atoi(n) {
				t.Errorf("%s: member %s is %d bytes, recorded %s", sh.lru, m, l, n)
			}
		}
		if total := atoi(f.c.HGet(ctx, sh.st, "bytes").Val()); total != sum {
			t.Errorf("%s: byte total %d, sizes sum to %d", sh.st, total, sum)
		}
	}
	for _, k := range f.r.Keys(t) {
		sh, rest, ok := f.splitKey(k, func(sh *shard) string { return sh.entry })
		if ok && f.c.ZScore(ctx, sh.lru, rest).Err() != nil {
			t.Errorf("entry %s is not indexed", k)
		}
	}
	checkTags(t, f.c, f.r, *f.s.shards.Load())
}

// checkTags asserts that the tag index never outgrows the entries: every
// tg record is an indexed member's, every member of a tag set has that tag
// in its tg record and the record's every tag lists it, and a tag set lives
// at least as long as its members' entries.
func checkTags(t *testing.T, c redis.UniversalClient, r *redistest.Redis, shards []shard) {
	t.Helper()
	ctx := context.Background()
	for _, sh := range shards {
		for m, hs := range c.HGetAll(ctx, sh.tg).Val() {
			if c.ZScore(ctx, sh.lru, m).Err() != nil {
				t.Errorf("%s: tag record of %s, which is not indexed", sh.tg, m)
			}
			// A set expires with its last member's entry, which the
			// sweep forgets later.
			for i := 0; i+16 <= len(hs) && c.Exists(ctx, sh.entry+m).Val() == 1; i += 16 {
				if !c.SIsMember(ctx, sh.tag+hs[i:i+16], m).Val() {
					t.Errorf("%s: %s is not in its tag set %s", sh.tg, m, hs[i:i+16])
				}
			}
		}
	}
	for _, k := range r.Keys(t) {
		for i := range shards {
			sh := &shards[i]
			h, ok := strings.CutPrefix(k, sh.tag)
			if !ok {
				continue
			}
			ttl := r.TTL(t, k)
			if ttl <= 0 {
				t.Errorf("tag set %s has no TTL", k)
			}
			for _, m := range c.SMembers(ctx, k).Val() {
				if !strings.Contains(c.HGet(ctx, sh.tg, m).Val(), h) {
					t.Errorf("tag set %s holds %s, whose record lacks it", k, m)
				}
				if et := r.TTL(t, sh.entry+m); et > ttl+time.Second {
					t.Errorf("tag set %s expires in %v, before its member %s (%v)", k, ttl, m, et)
				}
			}
		}
	}
}

// splitKey finds the shard whose key prefix (as pick names it) starts k, and
// returns the rest of k.
func (f *fixture) splitKey(k string, pick func(*shard) string) (*shard, string, bool) {
	shards := *f.s.shards.Load()
	for i := range shards {
		if p := pick(&shards[i]); strings.HasPrefix(k, p) {
			return &shards[i], k[len(p):], true
		}
	}
	return nil, "", false
}

// A foreign key where the store keeps its tag records fails every call
// that would write them, before anything is written.
func TestScripts_ForeignTagKeyFailsTheCallAndChangesNothing(t *testing.T) {
	eachBackend(t, Options{Shards: 1}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		const u = "https://example.com/x"
		f.put(t, tagged(u, "b", "t"), time.Hour, true)
		sh := (*f.s.shards.Load())[0]
		if err := f.c.Del(ctx, sh.tg).Err(); err != nil {
			t.Fatal(err)
		}
		if err := f.c.Set(ctx, sh.tg, "foreign", 0).Err(); err != nil {
			t.Fatal(err)
		}
		keysBefore := f.r.Keys(t)
		slices.Sort(keysBefore)
		var refused *redisfail.Refused
		for name, op := range map[string]func() error{
			"Purge":        func() error { return f.s.Purge(ctx, u) },
			"soft Purge":   func() error { _, err := f.s.PurgeURL(ctx, u, true); return err },
			"PurgeTag":     func() error { _, err := f.s.PurgeTag(ctx, "t"); return err },
			"SoftPurgeTag": func() error { _, err := f.s.SoftPurgeTag(ctx, "t"); return err },
		} {
			if err := op(); !errors.As(err, &refused) || refused.Refused() != "WRONGTYPE" {
				t.Errorf("%s: %v; want a WRONGTYPE refusal", name, err)
			}
		}
		got := f.r.Keys(t)
		slices.Sort(got)
		if !slices.Equal(got, keysBefore) {
			t.Errorf("the refused calls changed the keys from %q to %q", keysBefore, got)
		}
		if r, _ := f.get(t, u, ""); r == nil || string(r.Body) != "b" || !r.Purged.IsZero() {
			t.Errorf("the refused calls changed the entry: %+v", r)
		}
		// A refused write removes the value it sent, and nothing else.
		if _, err := f.s.Put(ctx, tagged(u, "c", "t"), time.Hour, true); !errors.As(err, &refused) || refused.Refused() != "WRONGTYPE" {
			t.Errorf("Put: %v; want a WRONGTYPE refusal", err)
		}
	})
}
