package rediscache

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fleetcache/fleetcache/internal/redisfail"
	"github.com/fleetcache/fleetcache/internal/redistest"
	"github.com/fleetcache/fleetcache/policy"
)

var (
	soak      = flag.Duration("soak", 0, "run TestStore_Model for this long rather than its quick run (make soak)")
	modelSeed = flag.Uint64("seed", 0, "TestStore_Model's seed; 0 picks one and logs it")
)

// TestStore_Model drives two Store instances on one real redis-server with
// seeded random sequences (Put, Get, Delete, Purge, Clear, expiry, eviction
// under a small capacity, live retunes, from concurrent goroutines) and
// checks after every step that Redis agrees with a simple model: a Get
// returns the latest value written or a miss the model can explain, and the
// bookkeeping (index, sizes, byte totals, TTLs, v: records, limits) is
// exact. A failure names the seed: go test -run TestStore_Model -seed=N.
func TestStore_Model(t *testing.T) {
	seed := *modelSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("reproduce with: go test -run 'TestStore_Model$' ./rediscache/ -seed=%d", seed)
		}
	})
	m := newModel(t, redistest.RealServer.Start(t), seed, modelOpts)
	if *soak > 0 {
		for deadline := time.Now().Add(*soak); time.Now().Before(deadline); {
			m.step()
		}
	} else {
		for range 2500 {
			m.step()
		}
	}
	m.finish()
	t.Logf("seed %d: %d steps, %d puts, %d hits, %d evictions, %d expired, %d retunes",
		seed, m.steps, m.puts, m.hits, m.lastStats.Evictions, m.lastStats.Expired, m.retunes)
}

// TestStore_ModelNear runs the model with a small near tier in both stores:
// after each step, once every store has heard the announcements of the
// step's changes, a Get must still find the latest value written.
func TestStore_ModelNear(t *testing.T) {
	seed := *modelSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("reproduce with: go test -run 'TestStore_ModelNear$' ./rediscache/ -seed=%d", seed)
		}
	})
	opts := modelOpts
	opts.NearBytes = 16 << 10
	m := newModel(t, redistest.RealServer.Start(t), seed, opts)
	for range 1500 {
		m.step()
	}
	m.finish()
	var near int64
	for _, s := range m.stores {
		near += s.near.hits.Load()
	}
	if near == 0 {
		t.Error("no near hit")
	}
	t.Logf("seed %d: %d steps, %d puts, %d hits (%d from the near tiers)", seed, m.steps, m.puts, m.hits, near)
}

// settle waits until every store's near tier has heard every change
// announced so far: the step's changes have then reached them all.
func (m *model) settle() {
	ctx := context.Background()
	for i, sh := range m.shards() {
		v, err := m.r.Client.HGet(ctx, sh.st, "ver").Int64()
		if err != nil {
			continue // nothing announced yet
		}
		for _, s := range m.stores {
			deadline := time.Now().Add(10 * time.Second)
			for s.near.seen[i].Load() < v {
				if time.Now().After(deadline) {
					m.t.Fatalf("step %d: shard %d's version %d did not reach a near tier", m.steps, i, v)
				}
				time.Sleep(time.Millisecond) // polling interval
			}
		}
	}
}

// TestStore_ModelEvictingRedis runs the model on a Redis that evicts keys
// of its own accord (maxmemory with allkeys-lru), which may drop entries and
// any part of the bookkeeping at any step. Values served must still be the
// latest written; once Redis stops evicting, the writes that follow must
// heal the bookkeeping until it is exact again.
func TestStore_ModelEvictingRedis(t *testing.T) {
	seed := *modelSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("reproduce with: go test -run 'TestStore_ModelEvictingRedis$' ./rediscache/ -seed=%d", seed)
		}
	})
	r := redistest.ServerWith(t, "--maxmemory", "4mb", "--maxmemory-policy", "allkeys-lru", "--maxmemory-samples", "3")
	m := newModel(t, r, seed, Options{Prefix: "m:", MaxEntries: 100_000, MaxBytes: 1 << 30, Shards: 3, MaxVariants: 3})
	m.evicting, m.bodyMax = true, 60<<10
	steps := 600
	if *soak > 0 {
		steps = 6000
	}
	for range steps {
		m.step()
	}
	var before int64
	for _, sh := range m.shards() {
		before += r.Client.ZCard(context.Background(), sh.lru).Val()
	}
	m.heal()
	t.Logf("seed %d: %d steps, %d puts, %d hits; %d entries indexed when Redis stopped evicting, %d orphans",
		seed, m.steps, m.puts, m.hits, before, m.orphans)
}

// orphaned reports whether the entry of url and variant has neither an lru
// member nor an ix record.
func (m *model) orphaned(url, variant string) bool {
	r := refOf(m.shards(), url, variant)
	_, inIx := sizes(m.r.Client, r.sh)[r.member()]
	return !inIx && m.r.Client.ZScore(context.Background(), r.sh.lru, r.member()).Err() != nil
}

// lose drops a key of the bookkeeping as an evicting Redis may (it evicts
// whole keys): its LRU order keeps the index keys hot, so the test drops
// them itself (the config, a shard's lru, ix or st, a v: key) to exercise
// the repairs.
func (m *model) lose() {
	ctx := context.Background()
	c := m.r.Client
	sh := m.shards()[m.rnd.IntN(len(m.shards()))]
	var err error
	switch m.rnd.IntN(5) {
	case 0:
		err = c.Del(ctx, "m:config").Err()
	case 1:
		err = c.Del(ctx, sh.lru).Err()
	case 2:
		err = c.Del(ctx, sh.ix).Err()
	case 3:
		err = c.Del(ctx, sh.st).Err()
	default:
		for _, k := range m.r.Keys(m.t) {
			if strings.HasPrefix(k, sh.vary) {
				err = c.Del(ctx, k).Err()
				break
			}
		}
	}
	m.check(err, "lose")
}

// heal stops Redis evicting and writes to every shard until the sweep has
// covered it three times over, and then holds the model to the exact
// bookkeeping.
func (m *model) heal() {
	ctx := context.Background()
	c := m.r.Client
	m.check(c.ConfigSet(ctx, "maxmemory", "0").Err(), "CONFIG SET maxmemory")
	// The worst Redis can leave at once: every kind of bookkeeping key
	// gone somewhere.
	sh := m.shards()
	m.check(c.Del(ctx, "m:config", sh[0].lru, sh[0].st, sh[1].ix, sh[2].lru, sh[2].ix).Err(), "drop the bookkeeping")
	var largest int64
	for _, sh := range m.shards() {
		largest = max(largest, c.ZCard(ctx, sh.lru).Val(), c.ZCard(ctx, sh.ix).Val())
	}
	want := 3*((largest+sweepBatch-1)/sweepBatch) + 3
	start := slices.Clone(m.written)
	healed := func() bool {
		for i := range start {
			if m.written[i]-start[i] < want {
				return false
			}
		}
		return true
	}
	for i := 0; !healed(); i++ {
		m.concurrently([]op{m.fillerPut(i)})
	}
	// Entries whose lru and ix records were both evicted cannot be found
	// without a scan of the keyspace, which the store never does: they are
	// left to expire by TTL. Count them before the exact checks.
	for _, k := range m.r.Keys(m.t) {
		if sh, rest, ok := m.split(k, func(sh *shard) string { return sh.entry }); ok {
			if _, inIx := sizes(c, sh)[rest]; !inIx && c.ZScore(ctx, sh.lru, rest).Err() != nil {
				m.orphans++
			}
		}
	}
	m.evicting, m.lossy = false, true
	m.lastStats.Evictions = math.MinInt64 / 2 // what vanished before is not this step's to explain
	clear(m.entries)
	m.verify()
}

// modelOpts is a cache small enough that eviction, the variant limit and
// the byte limit all come into play.
var modelOpts = Options{Prefix: "m:", MaxEntries: 24, MaxBytes: 24 << 10, Shards: 3, MaxVariants: 3}

const (
	modelURLs     = 16
	modelVariedOf = 8 // URLs 0..7 vary on Accept-Encoding
)

var modelEncodings = []string{"gzip", "br", "zstd", "identity", "deflate"}

type model struct {
	opts   Options
	t      *testing.T
	rnd    *rand.Rand
	r      *redistest.Redis
	clk    *clock
	stores [2]*Store

	mu      sync.Mutex
	entries map[string]modelEntry // by url + "\x00" + variant
	gen     int

	steps, puts, hits, retunes int
	lastStats                  Stats
	maxEntries                 int64   // what config holds now
	written                    []int64 // per shard: write count, for the sweep bound
	dead                       map[string]deadMember
	bodyMax                    int
	// evicting: Redis evicts keys of its own accord (allkeys-lru), so
	// entries and bookkeeping may vanish at any step; only the values
	// served are checked until the end, when the bookkeeping must heal.
	evicting bool
	lossy    bool // Redis dropped keys of the bookkeeping at some point
	orphans  int  // entries whose every index record Redis evicted
}

type modelEntry struct {
	url, variant, body string
	tags               []string
	soft               bool      // a soft purge marked it stale
	expires            time.Time // model time
	wall               time.Time // wall time of the write: a real server's clock runs too
}

type deadMember struct {
	shard  int
	writes int64 // the shard's write count when the entry died
	bound  int64 // writes after which the sweep must have removed it
}

func newModel(t *testing.T, r *redistest.Redis, seed uint64, opts Options) *model {
	m := &model{
		t: t, rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), r: r, opts: opts,
		clk:        &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		entries:    map[string]modelEntry{},
		dead:       map[string]deadMember{},
		maxEntries: opts.MaxEntries,
		bodyMax:    1500,
	}
	// Two instances with clients of their own, as two processes would.
	for i := range m.stores {
		s, err := New(r.NewClient(t, redis.UniversalOptions{}), opts)
		if err != nil {
			t.Fatal(err)
		}
		s.now = m.clk.Now
		t.Cleanup(func() { _ = s.Close() })
		m.stores[i] = s
	}
	for _, s := range m.stores {
		if _, err := s.load(context.Background()); err != nil {
			t.Fatal(err)
		}
		if s.near != nil {
			eventually(t, "the near tier subscribed", s.near.live)
		}
	}
	m.written = make([]int64, opts.Shards)
	m.dead = map[string]deadMember{}
	return m
}

func (m *model) store() *Store { return m.stores[m.rnd.IntN(2)] }

func (m *model) shards() []shard { return *m.stores[0].shards.Load() }

func (m *model) url(i int) string { return fmt.Sprintf("https://example.com/item/%d", i) }

// op is one operation on one URL, for a batch of concurrent ones.
type op func(ctx context.Context) error

func (m *model) step() {
	m.steps++
	switch n := m.rnd.IntN(100); {
	case n < 80:
		// A batch of operations on distinct URLs, run concurrently: their
		// order cannot matter to the model.
		urls := m.rnd.Perm(modelURLs)[:1+m.rnd.IntN(4)]
		var ops []op
		for _, i := range urls {
			ops = append(ops, m.randomOp(i))
		}
		m.concurrently(ops)
	case n < 91:
		m.advance([]time.Duration{time.Minute, 10 * time.Minute, time.Hour, 3 * time.Hour}[m.rnd.IntN(4)])
	case n < 94 && !m.evicting: // an operator retunes a Redis that has room
		m.retune()
	case n < 97 && !m.evicting:
		m.purgeTag()
	case n < 97:
		m.lose()
	default:
		m.check(m.store().Clear(context.Background()), "Clear")
		m.mu.Lock()
		clear(m.entries)
		m.mu.Unlock()
	}
	if m.opts.NearBytes > 0 {
		m.settle()
	}
	m.verify()
}

func (m *model) concurrently(ops []op) {
	var wg sync.WaitGroup
	errs := make([]error, len(ops))
	for i, o := range ops {
		wg.Go(func() { errs[i] = o(context.Background()) })
	}
	wg.Wait()
	for _, err := range errs {
		m.check(err, "operation")
	}
}

func (m *model) randomOp(i int) op {
	u := m.url(i)
	variant, names, values := "", []string(nil), []string(nil)
	if i < modelVariedOf {
		names, values = []string{"Accept-Encoding"}, []string{modelEncodings[m.rnd.IntN(len(modelEncodings))]}
		variant = policy.Variant(names, values)
	}
	s := m.store()
	switch n := m.rnd.IntN(100); {
	case n < 55:
		m.gen++
		body := fmt.Sprintf("%s %s #%d ", u, variant, m.gen) + strings.Repeat("x", m.rnd.IntN(m.bodyMax))
		ttl := []time.Duration{10 * time.Minute, time.Hour, 6 * time.Hour, 48 * time.Hour}[m.rnd.IntN(4)]
		explicit := m.rnd.IntN(2) == 0
		sh := m.shardOf(u)
		var tags []string
		for _, t := range modelTags {
			if m.rnd.IntN(3) == 0 {
				tags = append(tags, t)
			}
		}
		return func(ctx context.Context) error {
			r := response(u, body)
			r.Vary, r.VaryValues, r.Tags = names, values, tags
			if m.opts.NearBytes > 0 {
				// Fresh for longer than any entry lives: the near tier
				// keeps it.
				now := m.clk.Now()
				r.Header.Set("Cache-Control", "max-age=864000")
				r.Header.Set("Date", now.Format(http.TimeFormat))
				r.RequestTime, r.ResponseTime = now, now
			}
			m.mu.Lock()
			m.puts++
			m.written[sh]++
			m.mu.Unlock()
			kept, err := s.Put(ctx, r, ttl, explicit)
			m.mu.Lock()
			defer m.mu.Unlock()
			key := u + "\x00" + variant
			if m.refusedForMemory(err) {
				return nil // refused whole: the entry is as it was
			}
			if kept {
				m.entries[key] = modelEntry{url: u, variant: variant, body: body, tags: tags, expires: m.clk.Now().Add(ttl), wall: time.Now()}
			} else {
				delete(m.entries, key)
			}
			return err
		}
	case n < 85:
		return func(ctx context.Context) error {
			got, _, err := s.Get(ctx, u, variant)
			if err != nil {
				return err
			}
			m.mu.Lock()
			defer m.mu.Unlock()
			want, ok := m.entries[u+"\x00"+variant]
			switch {
			case got == nil:
				// Checked by verify: a miss the model cannot explain shows
				// as an entry the model holds and Redis does not.
			case !ok && m.evicting && m.orphaned(u, variant):
				// Redis dropped both of its index records: no purge can
				// find it until it expires (docs/store.md).
			case !ok:
				m.t.Errorf("step %d: Get(%s, %q) = %.40q, the model holds nothing", m.steps, u, variant, got.Body)
			case string(got.Body) != want.body:
				m.t.Errorf("step %d: Get(%s, %q) = %.40q, want the latest %.40q", m.steps, u, variant, got.Body, want.body)
			case want.soft == got.Purged.IsZero() && !(m.evicting && want.soft && m.orphaned(u, variant)):
				// An evicting Redis may have dropped both index records a
				// soft purge finds a variant by: it stays as it was.
				m.t.Errorf("step %d: Get(%s, %q) purged at %v, the model says soft-purged %v", m.steps, u, variant, got.Purged, want.soft)
			default:
				m.hits++
			}
			return nil
		}
	case n < 92:
		return func(ctx context.Context) error {
			err := s.Delete(ctx, u, variant)
			m.mu.Lock()
			delete(m.entries, u+"\x00"+variant)
			m.mu.Unlock()
			return err
		}
	case n < 96:
		return func(ctx context.Context) error {
			err := s.Purge(ctx, u)
			m.mu.Lock()
			for k, e := range m.entries {
				if e.url == u {
					delete(m.entries, k)
				}
			}
			m.mu.Unlock()
			return err
		}
	default:
		return func(ctx context.Context) error {
			_, err := s.PurgeURL(ctx, u, true)
			m.mu.Lock()
			for k, e := range m.entries {
				if e.url == u {
					e.soft = true
					m.entries[k] = e
				}
			}
			m.mu.Unlock()
			return err
		}
	}
}

// modelTags are the tags a Put picks from.
var modelTags = []string{"red", "green", "blue", "http://example.com group"}

// purgeTag purges, hard or soft, one tag of the model's: it reaches every
// shard, so it runs alone.
func (m *model) purgeTag() {
	tag := modelTags[m.rnd.IntN(len(modelTags))]
	soft := m.rnd.IntN(2) == 0
	var want int64
	for k, e := range m.entries {
		if !slices.Contains(e.tags, tag) || !m.clk.Now().Before(e.expires) {
			continue
		}
		want++
		if soft {
			e.soft = true
			m.entries[k] = e
		} else {
			delete(m.entries, k)
		}
	}
	var n int64
	var err error
	if soft {
		n, err = m.store().SoftPurgeTag(context.Background(), tag)
	} else {
		n, err = m.store().PurgeTag(context.Background(), tag)
	}
	m.check(err, "PurgeTag")
	// Entries expired unswept are still in the sets: a purge removes them
	// uncounted.
	if n != want {
		m.t.Fatalf("step %d: PurgeTag(%q, soft %v) = %d, the model holds %d with the tag", m.steps, tag, soft, n, want)
	}
}

func (m *model) shardOf(u string) int {
	sh, _ := shardOf(m.shards(), u)
	for i := range m.shards() {
		if &m.shards()[i] == sh {
			return i
		}
	}
	return -1
}

// advance moves the model's clock and the server's expiry clock together.
func (m *model) advance(d time.Duration) {
	m.clk.Add(d)
	m.r.Advance(m.t, d)
}

// retune sets a new entry limit as an operator would, and lets the stores
// see it: a lower one must shrink every shard, not only those written next.
func (m *model) retune() {
	m.retunes++
	ctx := context.Background()
	n := int64(6 + m.rnd.IntN(30))
	m.check(m.r.Client.HSet(ctx, "m:config", "max_entries", n).Err(), "retune")
	m.maxEntries = n
	m.advance(configRefresh)
	for _, s := range m.stores {
		_, err := s.currentLimits(ctx)
		m.check(err, "read limits")
	}
	perShard := max(n/int64(m.opts.Shards), 1)
	deadline := time.Now().Add(10 * time.Second)
	for {
		over := false
		for _, sh := range m.shards() {
			if m.r.Client.ZCard(ctx, sh.lru).Val() > perShard {
				over = true
			}
		}
		trimming := m.stores[0].trimming.Load() || m.stores[1].trimming.Load()
		if !over && !trimming {
			return
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("step %d: the cache was not trimmed to %d entries a shard after max_entries %d", m.steps, perShard, n)
		}
		time.Sleep(time.Millisecond) // polling the trim, not waiting for state we control
	}
}

// refusedForMemory reports whether err is Redis refusing a write for want
// of memory, which an evicting Redis does when eviction cannot keep up.
func (m *model) refusedForMemory(err error) bool {
	var r *redisfail.Refused
	return m.evicting && errors.As(err, &r) && r.Refused() == "OOM"
}

func (m *model) check(err error, what string) {
	m.t.Helper()
	if err != nil && !m.refusedForMemory(err) {
		m.t.Fatalf("step %d: %s: %v", m.steps, what, err)
	}
}

// verify compares Redis with the model once the step's operations are over.
func (m *model) verify() {
	t := m.t
	t.Helper()
	ctx := context.Background()
	c := m.r.Client
	st, err := m.stores[0].Stats(ctx)
	m.check(err, "Stats")
	if err != nil {
		st = m.lastStats
	}
	evicted := st.Evictions - m.lastStats.Evictions

	// Entries the model holds: present with the latest value, or gone for
	// a reason the model can name (expiry, or one of this step's
	// evictions).
	shards := m.shards()
	gone := int64(0)
	now := m.clk.Now()
	for k, e := range m.entries {
		ref := refOf(shards, e.url, e.variant)
		val, err := c.Get(ctx, ref.entry).Result()
		if err == nil {
			r, derr := decodeString(val)
			if derr != nil || string(r.Body) != e.body {
				t.Fatalf("step %d: %s holds another value than the latest written", m.steps, ref.entry)
			}
			if !now.Before(e.expires) {
				t.Fatalf("step %d: %s outlived its ttl", m.steps, ref.entry)
			}
			continue
		}
		delete(m.entries, k)
		if now.Before(e.expires) && e.expires.Sub(now) > time.Since(e.wall)+time.Second {
			gone++
		}
	}
	if m.evicting {
		m.lastStats = st
		return
	}
	if gone > evicted {
		t.Fatalf("step %d: %d entries gone that neither expired nor were evicted (%d evictions)", m.steps, gone, evicted)
	}

	// The bookkeeping: index and sizes agree, byte totals are exact, every
	// entry is indexed, and Stats says so.
	var members, bytes int64
	live := map[string]bool{}
	for _, k := range m.r.Keys(t) {
		if sh, rest, ok := m.split(k, func(sh *shard) string { return sh.entry }); ok {
			if c.ZScore(ctx, sh.lru, rest).Err() != nil {
				if _, inIx := sizes(c, sh)[rest]; !inIx && m.orphans > 0 {
					continue // Redis evicted its records: it expires by its TTL
				}
				t.Fatalf("step %d: entry %s is not indexed", m.steps, k)
			}
			live[k] = true
		}
	}
	perShard := m.stores[0].limits.Load().maxEntries
	for i, sh := range shards {
		ms := c.ZRange(ctx, sh.lru, 0, -1).Val()
		sizes := sizes(c, &sh)
		if len(ms) != len(sizes) {
			t.Fatalf("step %d: shard %d indexes %d members and %d sizes", m.steps, i, len(ms), len(sizes))
		}
		if int64(len(ms)) > perShard {
			t.Fatalf("step %d: shard %d holds %d entries, over its limit %d", m.steps, i, len(ms), perShard)
		}
		var sum int64
		for _, mem := range ms {
			n, ok := sizes[mem]
			if !ok {
				t.Fatalf("step %d: shard %d member %s has no size", m.steps, i, mem)
			}
			sum += atoi(n)
			key := sh.entry + mem
			if live[key] {
				if l := c.StrLen(ctx, key).Val(); l != atoi(n) {
					t.Fatalf("step %d: %s is %d bytes, recorded %s", m.steps, key, l, n)
				}
				delete(m.dead, key)
				continue
			}
			// Expired, not yet swept: it must go within two passes of the
			// sweep over the shard (eviction at the head of the index can
			// make one pass skip a member).
			d, seen := m.dead[key]
			if !seen {
				d = deadMember{shard: i, writes: m.written[i], bound: 3*((int64(len(ms))+sweepBatch-1)/sweepBatch) + 3}
				m.dead[key] = d
			}
			if m.written[i]-d.writes > d.bound {
				t.Fatalf("step %d: %s expired %d writes ago and is still indexed (bound %d)", m.steps, key, m.written[i]-d.writes, d.bound)
			}
		}
		if total := atoi(c.HGet(ctx, sh.st, "bytes").Val()); total != sum {
			t.Fatalf("step %d: shard %d byte total %d, sizes sum to %d", m.steps, i, total, sum)
		}
		members += int64(len(ms))
		bytes += sum
	}
	for key := range m.dead {
		if _, _, ok := m.split(key, func(sh *shard) string { return sh.entry }); ok && !m.indexed(key) {
			delete(m.dead, key)
		}
	}
	if st.Entries != members || st.Bytes != bytes {
		t.Fatalf("step %d: Stats says %d entries, %d bytes; the index holds %d, %d", m.steps, st.Entries, st.Bytes, members, bytes)
	}

	// TTLs: every key but config and the shards' bookkeeping has one, and a
	// v: key lives as long as its longest variant and lists only variants
	// that are indexed or expired unswept.
	for _, k := range m.r.Keys(t) {
		if m.bookkeeping(k) {
			continue
		}
		ttl := c.PTTL(ctx, k).Val()
		if ttl < 0 {
			t.Fatalf("step %d: key %s has no TTL", m.steps, k)
		}
		sh, urlHash, ok := m.split(k, func(sh *shard) string { return sh.vary })
		if !ok {
			continue
		}
		records := c.ZRangeByLex(ctx, sh.ix, &redis.ZRangeBy{Min: "[" + urlHash + ":", Max: "(" + urlHash + ";"}).Val()
		if len(records) == 0 && !m.lossy {
			// Once Redis dropped a shard's ix, a v: key may outlive its
			// variants, until its own TTL.
			t.Fatalf("step %d: %s outlived every variant of its URL", m.steps, k)
		}
		for _, r := range records {
			if et := c.PTTL(ctx, sh.entry+r[:33]).Val(); et > ttl+time.Second {
				t.Fatalf("step %d: %s expires in %v, before its variant %s (%v)", m.steps, k, ttl, r[:33], et)
			}
		}
	}
	m.verifyTags()
	// No URL keeps more variants than its limit.
	for _, sh := range shards {
		perURL := map[string]int{}
		for _, r := range c.ZRange(ctx, sh.ix, 0, -1).Val() {
			if perURL[r[:16]]++; perURL[r[:16]] > m.opts.MaxVariants {
				t.Fatalf("step %d: URL %s has more than %d variants", m.steps, r[:16], m.opts.MaxVariants)
			}
		}
	}
	m.lastStats = st
}

// verifyTags checks that the tag index never outgrows the entries: every
// tg record is an indexed member's and lists the tags the model wrote, and
// every member of a tag set has that tag in its record. Once Redis dropped
// bookkeeping (lossy), records of members it dropped from both lru and ix
// may stay until Clear.
func (m *model) verifyTags() {
	ctx := context.Background()
	c := m.r.Client
	shards := m.shards()
	records := map[string]string{} // entry key -> tag record
	for _, sh := range shards {
		for mem, hs := range c.HGetAll(ctx, sh.tg).Val() {
			if c.ZScore(ctx, sh.lru, mem).Err() != nil && !m.lossy {
				m.t.Fatalf("step %d: %s holds a record of %s, which is not indexed", m.steps, sh.tg, mem)
			}
			records[sh.entry+mem] = hs
		}
	}
	for _, e := range m.entries {
		ref := refOf(shards, e.url, e.variant)
		if got, want := records[ref.entry], tagHashes(e.tags); got != want {
			m.t.Fatalf("step %d: %s has tag record %q, want %q", m.steps, ref.entry, got, want)
		}
	}
	for _, k := range m.r.Keys(m.t) {
		sh, h, ok := m.split(k, func(sh *shard) string { return sh.tag })
		if !ok {
			continue
		}
		for _, mem := range c.SMembers(ctx, k).Val() {
			if !strings.Contains(records[sh.entry+mem], h) {
				if !m.lossy {
					m.t.Fatalf("step %d: tag set %s holds %s, whose record lacks it", m.steps, k, mem)
				}
				// Redis dropped the member's record, so a write that took
				// the tag away could not find this set: the member no
				// longer has the tag, and how long the set lives is no
				// longer its business.
				continue
			}
			if et, ttl := c.PTTL(ctx, sh.entry+mem).Val(), c.PTTL(ctx, k).Val(); et > ttl+time.Second {
				m.t.Fatalf("step %d: tag set %s expires in %v, before its member %s (%v)", m.steps, k, ttl, mem, et)
			}
		}
	}
}

func (m *model) indexed(key string) bool {
	sh, rest, _ := m.split(key, func(sh *shard) string { return sh.entry })
	return m.r.Client.ZScore(context.Background(), sh.lru, rest).Err() == nil
}

func (m *model) bookkeeping(k string) bool {
	if k == "m:config" {
		return true
	}
	for _, sh := range m.shards() {
		if k == sh.lru || k == sh.ix || k == sh.st || k == sh.tg {
			return true
		}
	}
	return false
}

func (m *model) split(k string, pick func(*shard) string) (*shard, string, bool) {
	shards := m.shards()
	for i := range shards {
		if p := pick(&shards[i]); strings.HasPrefix(k, p) {
			return &shards[i], k[len(p):], true
		}
	}
	return nil, "", false
}

// finish writes until the sweep has removed every expired member, and then
// the counts are exact: Stats' entries are the entries that exist.
func (m *model) finish() {
	ctx := context.Background()
	for i := 0; len(m.dead) > 0; i++ {
		if i > 1000 {
			m.t.Fatalf("%d expired members still indexed after %d writes", len(m.dead), i)
		}
		m.concurrently([]op{m.fillerPut(i)})
		m.verify()
	}
	st, err := m.stores[0].Stats(ctx)
	m.check(err, "Stats")
	n := 0
	for _, k := range m.r.Keys(m.t) {
		if _, _, ok := m.split(k, func(sh *shard) string { return sh.entry }); ok {
			n++
		}
	}
	if st.Entries != int64(n) {
		m.t.Fatalf("after the sweep: Stats says %d entries, Redis holds %d", st.Entries, n)
	}
}

// fillerPut writes a small entry of a URL of its own, to drive the sweep.
func (m *model) fillerPut(i int) op {
	u := fmt.Sprintf("https://example.com/filler/%d", i)
	sh := m.shardOf(u)
	s := m.store()
	return func(ctx context.Context) error {
		m.mu.Lock()
		m.written[sh]++
		m.mu.Unlock()
		kept, err := s.Put(ctx, response(u, "f"), time.Hour, false)
		if kept {
			m.mu.Lock()
			m.entries[u+"\x00"] = modelEntry{url: u, body: "f", expires: m.clk.Now().Add(time.Hour), wall: time.Now()}
			m.mu.Unlock()
		}
		return err
	}
}
