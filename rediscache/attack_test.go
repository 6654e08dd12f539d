package rediscache

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/internal/redistest"
	"github.com/fleetcache/fleetcache/policy"
)

// Tests found by an adversarial pass over the store: what an evicting
// Redis, a rolling change of options and a restart do to the bookkeeping
// and to the time scripts hold Redis.

// fill puts n entries of distinct URLs, each with a body of size bytes.
func (f *fixture) fill(t *testing.T, n, size int) {
	t.Helper()
	for i := range n {
		f.put(t, response(fmt.Sprintf("https://example.com/fill/%d", i), strings.Repeat("b", size)), time.Hour, true)
	}
}

// bytesAgree asserts that every shard's byte total is the sum of the sizes
// its ix records, and that Stats says so.
func (f *fixture) bytesAgree(t *testing.T, when string) {
	t.Helper()
	ctx := context.Background()
	var want int64
	for _, sh := range *f.s.shards.Load() {
		var sum int64
		for _, n := range sizes(f.c, &sh) {
			sum += atoi(n)
		}
		if total := atoi(f.c.HGet(ctx, sh.st, "bytes").Val()); total != sum {
			t.Errorf("%s: %s byte total %d, its ix records sum to %d", when, sh.st, total, sum)
		}
		want += sum
	}
	if st := f.stats(); st.Bytes != want {
		t.Errorf("%s: Stats.Bytes = %d, the index holds %d", when, st.Bytes, want)
	}
}

// An evicting Redis (allkeys-random evicts the bookkeeping keys as readily
// as any other) may drop ix again while the writes are still putting its
// records back from lru. The byte total must not count the records put back
// before the second loss twice: once the repair is over it must equal the
// sum of the sizes ix records, or the shard evicts for bytes it does not
// hold, for good.
func TestStore_IndexLostAgainDuringRepairKeepsBytesExact(t *testing.T) {
	f := newFixture(t, redistest.RealServer.Start(t), Options{Shards: 1})
	ctx := context.Background()
	f.fill(t, 64, 100)
	sh := (*f.s.shards.Load())[0]

	f.c.Del(ctx, sh.ix)
	f.put(t, response("https://example.com/after/1", "x"), time.Hour, true) // sums ix again; the sweep puts 8 records back
	f.c.Del(ctx, sh.ix)
	for i := range 40 { // enough writes for the sweep to put every record back
		f.put(t, response("https://example.com/after/more/"+strconv.Itoa(i), "y"), time.Hour, true)
	}
	if n, m := f.c.ZCard(ctx, sh.ix).Val(), f.c.ZCard(ctx, sh.lru).Val(); n != m {
		t.Fatalf("repair unfinished: ix %d, lru %d", n, m)
	}
	f.bytesAgree(t, "after the repair")
}

// When Redis drops lru and ix together, nothing is counted any more and the
// byte total must start again from zero (docs/store.md), also when the loss
// comes right after a write that summed the total again for an earlier
// loss of ix.
func TestStore_IndexAndLRULostAfterARepairResetBytes(t *testing.T) {
	f := newFixture(t, redistest.RealServer.Start(t), Options{Shards: 1})
	ctx := context.Background()
	f.fill(t, 4, 1000)
	sh := (*f.s.shards.Load())[0]

	f.c.Del(ctx, sh.ix)
	f.put(t, response("https://example.com/after/1", "x"), time.Hour, true) // sums again, puts the 4 records back
	f.c.Del(ctx, sh.ix, sh.lru)
	f.put(t, response("https://example.com/after/2", "y"), time.Hour, true)
	f.bytesAgree(t, "after lru and ix were lost")
	for i := range 20 {
		f.put(t, response("https://example.com/after/more/"+strconv.Itoa(i), "z"), time.Hour, true)
	}
	f.bytesAgree(t, "20 writes later")
}

// MaxVariants is an instance's option, not part of <prefix>config: in a
// rolling deploy that lowers it, or with two services on one prefix, a URL
// may hold far more variants than a writer's limit. Each write then evicts
// the excess in batches, and a batch must stay a bounded amount of work:
// no write script may look the same records up again and again. Measured
// with Redis's own command counters (real server only: miniredis keeps
// none).
func TestStore_LoweredVariantLimitBoundsEachWrite(t *testing.T) {
	r := redistest.RealServer.Start(t)
	wide := newFixture(t, r, Options{Shards: 1, MaxVariants: 1200})
	narrow := newFixture(t, r, Options{Shards: 1, MaxVariants: 10})
	const u = "https://example.com/varies"
	for i := range 1200 {
		wide.put(t, varied(u, "b", "X-Tenant", strconv.Itoa(i)), time.Hour, true)
	}
	ctx := context.Background()
	before := commandCalls(t, r, "zscore")
	t0 := time.Now()
	narrow.put(t, varied(u, "b", "X-Tenant", "new"), time.Hour, true)
	took := time.Since(t0)
	// One write evicts at most putEvictions variants; finding them needs a
	// look at each of the URL's records, not one look per eviction.
	if n := commandCalls(t, r, "zscore") - before; n > 2*1200+putEvictions {
		t.Errorf("one write ran ZSCORE %d times in Redis (took %v); want a bounded scan of the URL's 1201 variants", n, took)
	}
	variants := r.Client.ZLexCount(ctx, (*narrow.s.shards.Load())[0].ix, "[", "+").Val()
	t.Logf("one write took %v and left %d variants", took, variants)
	// Served what it wrote, and still evicting toward its limit.
	if got, _ := narrow.get(t, u, policy.Variant([]string{"X-Tenant"}, []string{"new"})); got == nil {
		t.Error("the new variant is not stored")
	}
}

// A Redis that restarts empty loses <prefix>config, and the next instance
// that reads it seeds it again. Every running instance keeps the shard
// count it read at start (it decides where every key lives), so the seed
// must be that count, not the instance's own Options.Shards: otherwise an
// instance started after the restart reads another count, keys the same URL
// in another shard, and a purge it sends never reaches what the others
// store (nor theirs what it stores).
func TestStore_RestartEmptySeedsTheShardCountInUse(t *testing.T) {
	r := redistest.RealServer.Start(t)
	first := newFixture(t, r, Options{Shards: 4})
	other := newFixture(t, r, Options{Shards: 16}) // reads 4 from config
	const u = "https://example.com/split"
	first.put(t, response(u, "v1"), time.Hour, true)
	other.put(t, response(u, "v1"), time.Hour, true)

	r.Restart(t)
	other.advance(configRefresh + time.Second)
	other.put(t, response(u, "v2"), time.Hour, true) // reads the lost config: seeds it again
	if got := r.Client.HGet(context.Background(), "t:config", "shards").Val(); got != "4" {
		t.Errorf("config seeded again with shards=%s; the running instances use 4", got)
	}

	late := newFixture(t, r, Options{Shards: 16})
	if err := late.s.Purge(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	if got, _ := other.get(t, u, ""); got != nil {
		t.Errorf("an instance started after the restart purged %s, and the running ones still serve %q", u, got.Body)
	}
}

// A script's arguments are copied into Lua and back out (a plain SET takes
// its argument from the socket without a copy): an EVALSHA that carries an
// 8 MiB value held a redis-server 7.0 for 110-400 ms on a 2-core machine,
// against 1-3 ms for a SET of the same value, and every other client of
// that Redis (every instance of the fleet, whose calls have a 100 ms store
// timeout) waits that long. A write of a large entry must hand the value to
// Redis outside a script. SLOWLOG shows each command's arguments, so the
// test checks that no script was given the value (real server only:
// miniredis has no SLOWLOG).
func TestStore_LargeValueNeverPassesThroughAScript(t *testing.T) {
	r := redistest.RealServer.Start(t)
	f := newFixture(t, r, Options{})
	ctx := context.Background()
	f.put(t, response("https://example.com/warm", "w"), time.Hour, true) // loads config and scripts
	r.Client.ConfigSet(ctx, "slowlog-log-slower-than", "0")
	r.Client.Do(ctx, "SLOWLOG", "RESET")

	f.put(t, response("https://example.com/large", strings.Repeat("b", 8<<20)), time.Hour, true)

	log, err := r.Client.SlowLogGet(ctx, 128).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range log {
		cmd := strings.ToLower(e.Args[0])
		if cmd != "eval" && cmd != "evalsha" && cmd != "fcall" {
			continue
		}
		for _, a := range e.Args {
			// Redis keeps 128 bytes of a long argument and says how many
			// more it had.
			i := strings.LastIndex(a, "... (")
			if i < 0 {
				continue
			}
			var more int
			if _, err := fmt.Sscanf(a[i:], "... (%d more bytes)", &more); err == nil && more > 64<<10 {
				t.Errorf("%s was given a %d-byte argument and held Redis for %v", cmd, len(a[:i])+more, e.Duration)
			}
		}
	}
}

// commandCalls returns how many times Redis has run cmd (lower case), in
// scripts too, from INFO commandstats.
func commandCalls(t *testing.T, r *redistest.Redis, cmd string) int64 {
	t.Helper()
	info := r.Client.Info(context.Background(), "commandstats").Val()
	_, rest, ok := strings.Cut(info, "cmdstat_"+cmd+":calls=")
	if !ok {
		return 0
	}
	n, _ := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
	return n
}

// After an evicting Redis dropped a shard's lru, the writes put its members
// back at score 0, all of them at the same score. The expiry sweep takes
// the members of equal score together, so the write whose batch ends at
// score 0 checked every one of them, the whole shard, in one script. A
// write's sweep must stay a bounded amount of work (real server only: it
// counts commands with INFO commandstats).
func TestStore_SweepAfterLRULostIsBoundedPerWrite(t *testing.T) {
	r := redistest.RealServer.Start(t)
	f := newFixture(t, r, Options{Shards: 1})
	ctx := context.Background()
	const n = 800
	f.fill(t, n, 10)
	sh := (*f.s.shards.Load())[0]
	f.c.Del(ctx, sh.lru)
	// The repair puts sweepBatch members back per write.
	for i := 0; f.c.ZCard(ctx, sh.lru).Val() < n; i++ {
		if i > n {
			t.Fatal("lru not repaired")
		}
		f.put(t, response("https://example.com/repair", strconv.Itoa(i)), time.Hour, true)
	}
	worst := int64(0)
	for i := range 3 * n / sweepBatch { // more than a pass of the sweep over the shard
		f.clock.Add(time.Millisecond) // writes a millisecond apart, each its own LRU score
		before := commandCalls(t, r, "exists")
		f.put(t, response("https://example.com/after/"+strconv.Itoa(i), "x"), time.Hour, true)
		worst = max(worst, commandCalls(t, r, "exists")-before)
	}
	if worst > 10*sweepBatch {
		t.Errorf("one write checked %d entries for expiry; its sweep should check about %d", worst, sweepBatch)
	}
}

// A trim after a lowered capacity runs trim scripts until every shard is
// within its limits. A shard whose lru Redis dropped (an evicting policy)
// still counts the bytes ix records, but offers trim nothing to evict: the
// script says "still over" every time, and the trim must then stop rather
// than call Redis back to back until its one-minute timeout.
func TestStore_TrimEndsWhenNothingIsLeftToEvict(t *testing.T) {
	r := redistest.RealServer.Start(t)
	f := newFixture(t, r, Options{Shards: 1})
	ctx := context.Background()
	f.fill(t, 20, 1000)
	sh := (*f.s.shards.Load())[0]
	f.c.Del(ctx, sh.lru)
	f.s.limits.Store(&limits{maxEntries: 100, maxBytes: 1000, read: f.clock.Now()}) // a lowered limit
	before := commandCalls(t, r, "evalsha")
	tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	err := f.s.trim(tctx)
	if n := commandCalls(t, r, "evalsha") - before; n > 10 {
		t.Errorf("trim ran %d scripts (err %v) on a shard with nothing to evict", n, err)
	}
}

// Put reports kept when the store keeps the entry: the transport then says
// "stored" in Cache-Status and a fill announcement wakes the peers waiting
// for it. A heuristic entry (explicit=false) written to a shard full of
// explicit ones is the least valuable entry there, and the write's own
// eviction removes it at once: Put must not report it kept.
func TestStore_PutEvictingItsOwnEntryIsNotKept(t *testing.T) {
	eachBackend(t, Options{Shards: 1, MaxEntries: 3}, func(t *testing.T, f *fixture) {
		for i := range 3 {
			f.put(t, response(fmt.Sprintf("https://example.com/explicit/%d", i), "e"), time.Hour, true)
			f.clock.Add(time.Millisecond)
		}
		const u = "https://example.com/heuristic"
		kept, err := f.s.Put(context.Background(), response(u, "h"), time.Hour, false)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := f.get(t, u, "")
		if kept && got == nil {
			t.Errorf("Put reported the entry kept, and it is not stored")
		}
	})
}
