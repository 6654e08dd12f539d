package rediscache

import (
	"context"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/fleetcache/fleetcache/policy"
	"github.com/maypok86/otter/v2"
	"github.com/redis/go-redis/v9"
)

// nearConfirm is the longest a near entry is served since Redis last
// confirmed it (this process read or wrote it there): the bound on how long
// a change whose announcement was lost (a subscription that broke without
// the connection failing, an operator's DEL) can go unseen.
const nearConfirm = time.Second

// nearOverhead is what a near entry costs in memory beyond its encoded
// value: the decoded response's header map and strings, the entry and the
// cache's own record of it. It is a rough figure; the bound it serves is
// the total's, which NearBytes sets.
const nearOverhead = 512

// nearPolicy decides how long a response stays in the near tier: a
// default shared cache's freshness. The transport's own policy still
// decides every hit; an entry that this one finds stale is left to Redis,
// where the transport's revalidation goes through the fleet's lease.
var nearPolicy = policy.New(policy.Options{})

// nearEntry is a response held in process memory, with what makes it safe
// to serve.
type nearEntry struct {
	resp    *policy.Response // shared, read-only
	variant string
	lru     string // the shard's LRU key and the entry's member in it,
	member  string // for touches
	ver     int64  // the shard's version when Redis confirmed it
	until   time.Time
	size    uint32
}

// near is the tier in process memory in front of Redis. An entry goes in
// only while the tier is subscribed to every shard's near channel, and with
// the shard's version at the time Redis gave it: a message about a change
// drops the entries older than the change, and a read that began before a
// change it has heard of is not kept.
type near struct {
	cache *otter.Cache[uint64, *nearEntry]
	// gen grows at every reset, so that a read begun before one keeps
	// nothing; down counts the pub/sub connections not subscribed to all
	// their channels: the tier is used only while it is 0.
	gen  atomic.Uint64
	down atomic.Int64
	seen []atomic.Int64 // per shard, the highest version announced

	hits, misses, evictions, invalidations, resets atomic.Int64

	touches chan touch

	mu   sync.Mutex
	subs []*redis.PubSub // the connections listen uses; closeNear closes them
}

// touch is an LRU refresh owed to Redis for a near hit.
type touch struct{ lru, member string }

func newNear(bytes int64) (*near, error) {
	n := &near{touches: make(chan touch, 4096)}
	n.down.Store(1) // until subscribeNear
	c, err := otter.New(&otter.Options[uint64, *nearEntry]{
		MaximumWeight: uint64(bytes),
		Weigher:       func(_ uint64, e *nearEntry) uint32 { return e.size },
		OnAtomicDeletion: func(e otter.DeletionEvent[uint64, *nearEntry]) {
			if e.WasEvicted() {
				n.evictions.Add(1)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	n.cache = c
	return n, nil
}

// nearID is an entry's key in the near tier: the same as in the touched set.
func nearID(uh, vh uint64) uint64 { return uh ^ bits.RotateLeft64(vh, 32) }

// live reports whether the tier may be used: subscribed everywhere.
func (n *near) live() bool { return n.down.Load() == 0 }

// get returns the entry for url and variant while it may be served.
func (n *near) get(id uint64, url, variant string, now time.Time) *nearEntry {
	if !n.live() {
		return nil
	}
	e, ok := n.cache.GetIfPresent(id)
	if !ok || e.resp.URL != url || e.variant != variant || !now.Before(e.until) {
		n.misses.Add(1)
		return nil
	}
	n.hits.Add(1)
	return e
}

// keep adds e, which Redis gave (or took) at shard version ver, read when
// the tier's generation was gen, and which Redis keeps for ttl from now. It
// keeps nothing when the tier was reset since, when a change in the shard
// was announced since ver (the read may predate it), or when the response
// is not fresh. The entry is served until the first of: nearConfirm from
// now, the end of its freshness, the end of its time in Redis.
func (n *near) keep(id uint64, shard int, gen uint64, ver int64, e *nearEntry, now time.Time, ttl time.Duration) {
	if ver <= 0 || n.gen.Load() != gen || !n.live() || n.seen[shard].Load() > ver {
		return
	}
	_, fresh := nearPolicy.Freshness(e.resp, now)
	if ttl = min(ttl, fresh, nearConfirm); ttl <= 0 {
		return
	}
	e.ver, e.until = ver, now.Add(ttl)
	n.cache.Set(id, e)
	// A reset or an announcement that came between the checks and the Set
	// may have missed the entry: take it out again.
	if n.gen.Load() != gen || n.seen[shard].Load() > ver {
		n.drop(id, ver+1)
	}
}

// drop removes id's entry when it is older than ver.
func (n *near) drop(id uint64, ver int64) bool {
	dropped := false
	n.cache.ComputeIfPresent(id, func(e *nearEntry) (*nearEntry, otter.ComputeOp) {
		if e.ver >= ver {
			return e, otter.CancelOp
		}
		dropped = true
		return nil, otter.InvalidateOp
	})
	return dropped
}

// apply acts on an announcement heard on shard's channel: "<version>
// <member> ...", each member "<url-hash>:<variant-hash>" in hex. A
// malformed message empties the tier: it cannot say which entries changed.
// So does a version lower than one heard before on the channel, which
// comes in order: Redis lost the shard's st, and its versions started
// again. A message that this process's own script returned (local) only
// drops entries: it may arrive before messages of earlier versions.
func (n *near) apply(shard int, msg string, local bool) {
	head, rest, _ := strings.Cut(msg, " ")
	ver, err := strconv.ParseInt(head, 10, 64)
	if err != nil || ver <= 0 {
		n.reset()
		return
	}
	for !local {
		cur := n.seen[shard].Load()
		if ver < cur {
			n.reset()
			return
		}
		if cur == ver || n.seen[shard].CompareAndSwap(cur, ver) {
			break
		}
	}
	for rest != "" {
		var m string
		m, rest, _ = strings.Cut(rest, " ")
		uh, err1 := strconv.ParseUint(m[:min(16, len(m))], 16, 64)
		vh, err2 := strconv.ParseUint(m[min(17, len(m)):], 16, 64)
		if len(m) != 33 || m[16] != ':' || err1 != nil || err2 != nil {
			n.reset()
			return
		}
		if n.drop(nearID(uh, vh), ver) {
			n.invalidations.Add(1)
		}
	}
}

// empty drops every entry, and keeps none from a read begun before.
func (n *near) empty() {
	n.gen.Add(1)
	n.cache.InvalidateAll()
}

// reset empties the tier: its view of Redis can no longer be trusted. The
// versions heard are forgotten too (a failover may bring a server whose
// clock is behind): every read begun before the reset keeps nothing anyway.
func (n *near) reset() {
	n.gen.Add(1)
	for i := range n.seen {
		n.seen[i].Store(0)
	}
	n.cache.InvalidateAll()
	n.resets.Add(1)
}

// subscribe starts the pub/sub connections that carry every shard's
// announcements: one for all of them on a single server, one per shard on
// a cluster (each shard's channel lives in its own slot, and a connection
// follows one slot's master). The tier is down until each has confirmed all
// its channels, and again from the moment one fails until it has
// resubscribed; each of those moments empties it.
func (s *Store) subscribeNear(shards []shard) {
	n := s.near
	n.seen = make([]atomic.Int64, len(shards))
	var groups [][]string
	switch s.pubsub {
	case shardedPubSub:
		for i := range shards {
			groups = append(groups, []string{shards[i].near})
		}
	case plainPubSub:
		var all []string
		for i := range shards {
			all = append(all, shards[i].near)
		}
		groups = [][]string{all}
	}
	index := make(map[string]int, len(shards))
	for i := range shards {
		index[shards[i].near] = i
	}
	n.down.Store(int64(len(groups)))
	for _, g := range groups {
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			s.listen(g, index)
		}()
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		s.touchLoop()
	}()
}

// listen keeps one pub/sub connection subscribed to channels until the
// store closes. The connection counts as down (in near.down) from the
// start and whenever it fails, until every channel is confirmed again. A
// connection that fails, or that Redis unsubscribes (its slot moved), is
// replaced by a new one, which finds the slot's master afresh.
func (s *Store) listen(channels []string, index map[string]int) {
	n := s.near
	up := false
	var retry time.Duration
	for {
		ps := s.newNearPubSub(channels, retry > 0)
		if ps == nil {
			return // closed
		}
		if s.receive(ps, channels, index, &up) {
			retry = 0 // it was up: the next failure starts the backoff again
		}
		s.dropNearPubSub(ps)
		if s.life.Err() != nil {
			return
		}
		// Nothing said from now until the new connection is subscribed is
		// known: the tier empties, and stays unused until then. (A
		// connection that fails while down has nothing to answer for: the
		// tier kept nothing since it went down.)
		if up {
			up = false
			n.down.Add(1)
			n.reset()
		}
		retry = min(max(2*retry, minRetry), maxRetry)
		if !s.pause(retry) {
			return
		}
	}
}

// receive reads ps until it fails or Redis unsubscribes one of its
// channels, applying the announcements, and reports whether it was up
// (every channel confirmed) at some point.
func (s *Store) receive(ps *redis.PubSub, channels []string, index map[string]int, up *bool) (wasUp bool) {
	n := s.near
	confirmed := make(map[string]bool, len(channels))
	for {
		msg, err := ps.Receive(s.life)
		if err != nil {
			return wasUp
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			switch m.Kind {
			case "subscribe", "ssubscribe":
				confirmed[m.Channel] = true
				if !*up && len(confirmed) == len(channels) {
					*up, wasUp = true, true
					n.down.Add(-1)
				}
			case "unsubscribe", "sunsubscribe":
				return wasUp // Redis let go of the channel: its slot moved
			}
		case *redis.Message:
			if i, ok := index[m.Channel]; ok && *up {
				n.apply(i, m.Payload, false)
			}
		}
	}
}

// pause waits d, and reports false when the store closed meanwhile.
func (s *Store) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.life.Done():
		return false
	case <-t.C:
		return true
	}
}

// newNearPubSub subscribes a new connection to channels; nil once the
// store is closed. On a cluster, after a failure, it has the client read
// the cluster's slots again: the channel's slot may have a new master.
func (s *Store) newNearPubSub(channels []string, failed bool) *redis.PubSub {
	if cc, ok := s.client.(*redis.ClusterClient); ok && failed {
		cc.ReloadState(s.life) // in the background: a later attempt finds it
	}
	n := s.near
	n.mu.Lock()
	defer n.mu.Unlock()
	if s.life.Err() != nil {
		return nil
	}
	var ps *redis.PubSub
	if s.pubsub == shardedPubSub {
		ps = s.client.(*redis.ClusterClient).SSubscribe(s.life, channels...)
	} else {
		ps = s.client.Subscribe(s.life, channels...)
	}
	n.subs = append(n.subs, ps)
	return ps
}

func (s *Store) dropNearPubSub(ps *redis.PubSub) {
	n := s.near
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, p := range n.subs {
		if p == ps {
			n.subs = append(n.subs[:i], n.subs[i+1:]...)
			break
		}
	}
	_ = ps.Close()
}

// closeNear closes the pub/sub connections, which ends their receive
// loops; the store's life has ended.
func (s *Store) closeNear() {
	n := s.near
	n.mu.Lock()
	subs := n.subs
	n.subs = nil
	n.mu.Unlock()
	for _, ps := range subs {
		_ = ps.Close()
	}
}

// touchBatch is the most LRU touches one pipeline carries.
const touchBatch = 256

// touchLoop sends the LRU touches owed for near hits, a pipeline at a
// time: a near hit costs Redis nothing at the moment, and a hot entry still
// one touch a second per process, as a Redis hit does.
func (s *Store) touchLoop() {
	batch := make([]touch, 0, touchBatch)
	for {
		select {
		case <-s.life.Done():
			return
		case t := <-s.near.touches:
			batch = append(batch[:0], t)
		}
	more:
		for len(batch) < touchBatch {
			select {
			case t := <-s.near.touches:
				batch = append(batch, t)
			default:
				break more
			}
		}
		s.sendTouches(batch)
	}
}

func (s *Store) sendTouches(batch []touch) {
	ctx, cancel := context.WithTimeout(s.life, time.Second)
	defer cancel()
	ms := s.now().UnixMilli()
	pipe := s.client.Pipeline()
	cmds := make([]*redis.Cmd, len(batch))
	for i, t := range batch {
		cmds[i] = touchScript.EvalSha(ctx, pipe, []string{t.lru}, t.member, ms, ms+explicitScore)
	}
	_, _ = pipe.Exec(ctx) // best effort, as for Get
	for i, c := range cmds {
		if redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			// Once per server: Run loads the script.
			_ = touchScript.Run(ctx, s.client, []string{batch[i].lru}, batch[i].member, ms, ms+explicitScore).Err()
		}
	}
}

// nearGet returns the near tier's response for url and variant, or nil. A
// hit owes Redis an LRU touch at most once a second per entry, sent in the
// background.
func (s *Store) nearGet(url, variant string) *policy.Response {
	uh := xxhash.Sum64String(url)
	id := nearID(uh, xxhash.Sum64String(variant))
	now := s.now()
	e := s.near.get(id, url, variant, now)
	if e == nil {
		return nil
	}
	if s.touched.due(id, now) {
		select {
		case s.near.touches <- touch{e.lru, e.member}:
		default: // the queue is full: Redis is slow; the touch can wait
		}
	}
	return e.resp
}

// Near reports whether resp is the response the near tier holds for its
// URL and variant: whether a Get or Claim that just returned it answered
// from process memory. The transport says so in Cache-Status
// (detail=near).
func (s *Store) Near(resp *policy.Response) bool {
	if s.near == nil || resp == nil {
		return false
	}
	e, ok := s.near.cache.GetIfPresent(nearID(xxhash.Sum64String(resp.URL), xxhash.Sum64String(variantOf(resp))))
	return ok && e.resp == resp
}

// nearEntryOf makes r's near entry for resp, whose encoded value is size
// bytes long.
func (s *Store) nearEntryOf(r ref, resp *policy.Response, variant string, size int) *nearEntry {
	return &nearEntry{resp: resp, variant: variant, lru: r.sh.lru, member: r.member(),
		size: uint32(min(size+nearOverhead, math.MaxUint32))}
}
