package rediscache

import (
	"context"
	"errors"
	"sort"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/internal/redistest"
)

// eachBackendAndCluster runs test on a store over a real redis-server,
// miniredis and a real three-master cluster.
func eachBackendAndCluster(t *testing.T, opts Options, test func(t *testing.T, f *fixture)) {
	redistest.Run(t, redistest.WithCluster, func(t *testing.T, r *redistest.Redis) {
		test(t, newFixture(t, r, opts))
	})
}

func TestInspect_EveryVariantOfTheURLWithItsTTLAndSize(t *testing.T) {
	eachBackendAndCluster(t, Options{Shards: 4}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		const url = "http://h/page"
		f.put(t, varied(url, "english", "Accept-Language", "en"), time.Hour, true)
		f.put(t, varied(url, "french", "Accept-Language", "fr"), 2*time.Hour, true)
		f.put(t, response("http://h/other", "other"), time.Hour, true)
		got, err := f.s.Inspect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Fatalf("Inspect found %d variants, want 2", len(got))
		}
		sort.Slice(got, func(i, j int) bool { return got[i].TTL < got[j].TTL })
		for i, want := range []struct {
			body string
			ttl  time.Duration
		}{{"english", time.Hour}, {"french", 2 * time.Hour}} {
			st := got[i]
			if st.Err != nil || string(st.Response.Body) != want.body || st.Response.URL != url {
				t.Errorf("variant %d = %+v, want body %q", i, st, want.body)
				continue
			}
			if st.TTL <= want.ttl-time.Minute || st.TTL > want.ttl {
				t.Errorf("variant %d: TTL %v, want about %v", i, st.TTL, want.ttl)
			}
			if st.Size != int64(len(Encode(nil, st.Response))) {
				t.Errorf("variant %d: size %d, want its encoding's %d", i, st.Size, len(Encode(nil, st.Response)))
			}
		}
		none, err := f.s.Inspect(ctx, "http://h/never")
		if err != nil || len(none) != 0 {
			t.Errorf("Inspect of an unknown URL = %v, %v; want nothing", none, err)
		}
	})
}

func TestInspect_LeavesOutExpiredAndReportsCorrupt(t *testing.T) {
	eachBackend(t, Options{Shards: 2}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		const url = "http://h/page"
		f.put(t, varied(url, "short", "X", "1"), time.Second, true)
		f.put(t, varied(url, "long", "X", "2"), time.Hour, true)
		f.put(t, varied(url, "broken", "X", "3"), time.Hour, true)
		r := refOf(*f.s.shards.Load(), url, variantOf(varied(url, "", "X", "3")))
		if err := f.c.Set(ctx, r.entry, "garbage", time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
		f.advance(2 * time.Second)
		got, err := f.s.Inspect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		var bodies []string
		corrupt := 0
		for _, st := range got {
			switch {
			case errors.Is(st.Err, ErrCorrupt):
				corrupt++
			case st.Err == nil:
				bodies = append(bodies, string(st.Response.Body))
			}
		}
		if len(bodies) != 1 || bodies[0] != "long" || corrupt != 1 {
			t.Errorf("Inspect = %q and %d corrupt; want [long] and 1", bodies, corrupt)
		}
	})
}

func TestShardStats_AddUpToStats(t *testing.T) {
	eachBackendAndCluster(t, Options{Shards: 8}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		for i := range 40 {
			f.put(t, response("http://h/"+string(rune('a'+i%26))+string(rune('a'+i/26)), "body"), time.Hour, true)
		}
		shards, err := f.s.ShardStats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st, err := f.s.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(shards) != 8 || st.Shards != 8 {
			t.Fatalf("%d shards, Stats says %d; want 8", len(shards), st.Shards)
		}
		var entries, bytes int64
		spread := 0
		for _, sh := range shards {
			entries += sh.Entries
			bytes += sh.Bytes
			if sh.Entries > 0 {
				spread++
			}
		}
		if entries != 40 || entries != st.Entries || bytes != st.Bytes {
			t.Errorf("shards hold %d entries, %d bytes; Stats says %d, %d; want 40", entries, bytes, st.Entries, st.Bytes)
		}
		if spread < 4 {
			t.Errorf("40 URLs landed in %d of 8 shards", spread)
		}
	})
}

func TestConfig_ReadsWithoutSeeding(t *testing.T) {
	eachBackend(t, Options{MaxEntries: 500, Shards: 4}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		if _, err := f.s.Config(ctx); !errors.Is(err, ErrNoCache) {
			t.Fatalf("Config of an unused prefix = %v, want ErrNoCache", err)
		}
		if n := f.c.Exists(ctx, f.s.configKey()).Val(); n != 0 {
			t.Fatal("Config seeded the prefix")
		}
		if err := f.s.SetLimit(ctx, LimitMaxEntries, 10); !errors.Is(err, ErrNoCache) {
			t.Fatalf("SetLimit on an unused prefix = %v, want ErrNoCache", err)
		}
		f.put(t, response("http://h/a", "a"), time.Hour, true) // seeds it
		c, err := f.s.Config(ctx)
		if err != nil || c != (Config{MaxEntries: 500, MaxBytes: DefaultMaxBytes, Shards: 4, Version: formatVersion}) {
			t.Fatalf("Config = %+v, %v", c, err)
		}
		f.c.HSet(ctx, f.s.configKey(), "max_bytes", "lots")
		if _, err := f.s.Config(ctx); err == nil {
			t.Error("Config accepted max_bytes=lots")
		}
	})
}

func TestSetLimit_TheStoresRules(t *testing.T) {
	eachBackend(t, Options{Shards: 2}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		f.put(t, response("http://h/a", "a"), time.Hour, true)
		for _, bad := range []struct {
			field string
			n     int64
		}{{"max_entries", 0}, {"max_bytes", -5}, {"shards", 4}, {"version", 2}, {"max_entrie", 5}} {
			if err := f.s.SetLimit(ctx, bad.field, bad.n); err == nil {
				t.Errorf("SetLimit(%s, %d) accepted", bad.field, bad.n)
			}
		}
		if err := f.s.SetLimit(ctx, LimitMaxEntries, 1234); err != nil {
			t.Fatal(err)
		}
		if err := f.s.SetLimit(ctx, LimitMaxBytes, 1<<20); err != nil {
			t.Fatal(err)
		}
		c, err := f.s.Config(ctx)
		if err != nil || c.MaxEntries != 1234 || c.MaxBytes != 1<<20 || c.Shards != 2 {
			t.Errorf("Config after SetLimit = %+v, %v", c, err)
		}
		// The store takes it as every instance does: at its next read.
		f.clock.Add(configRefresh)
		f.put(t, response("http://h/b", "b"), time.Hour, true)
		if l := f.s.limits.Load(); l.maxEntries != 617 || l.maxBytes != 1<<19 {
			t.Errorf("per-shard limits %+v, want 617 entries and %d bytes", l, 1<<19)
		}
	})
}
