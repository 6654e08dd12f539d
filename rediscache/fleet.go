package rediscache

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fleetcache/fleetcache/coalesce"
	"github.com/fleetcache/fleetcache/internal/redisfail"
	"github.com/fleetcache/fleetcache/policy"
	"github.com/redis/go-redis/v9"
)

// The fleet: the processes that share a prefix fetch each URL once for all
// of them. A miss claims the URL's lease in the script that reads the entry
// (Claim); the holder fetches, and its write stores the entry, announces
// the fill and ends the lease in one script (Fill), or, when there is
// nothing to store, Release ends the lease and wakes the waiters; the
// others wait (Wait) and read again. Every key and channel of a URL carries
// the hash tag of its shard, so each of these is one script in one slot.

// markerTTL is how long Release's "do not collapse" marker lives. It only has
// to outlive the burst that met the unshareable answer; it is short because
// a marker left on a URL that turned cacheable again costs a stampede's worth
// of origin requests until it expires, and a URL that stays unshareable is
// marked again by the next holder.
const markerTTL = 5 * time.Second

// pubsubKind is how fills are announced and heard, decided once per store
// from its client.
type pubsubKind uint8

const (
	// noPubSub: a client without a supported pub/sub (a Ring): waiters
	// poll the lease.
	noPubSub pubsubKind = iota
	// plainPubSub: PUBLISH and SUBSCRIBE on one server.
	plainPubSub
	// shardedPubSub: SPUBLISH and SSUBSCRIBE on a cluster, so that an
	// announcement stays on the node that owns the URL's slot, like the
	// keys beside it, instead of crossing the cluster bus.
	shardedPubSub
)

func pubsubOf(client redis.UniversalClient) pubsubKind {
	switch client.(type) {
	case *redis.ClusterClient:
		return shardedPubSub
	case *redis.Client:
		return plainPubSub
	}
	return noPubSub
}

// command is the command the scripts announce with; "" for none.
func (k pubsubKind) command() string {
	switch k {
	case shardedPubSub:
		return "SPUBLISH"
	case plainPubSub:
		return "PUBLISH"
	}
	return ""
}

// A lease's holder is named by a token unique in the fleet: a random
// process part and a counter.
var (
	processToken = func() string {
		var b [8]byte
		_, _ = rand.Read(b[:]) // never fails (crypto/rand doc)
		return hex.EncodeToString(b[:]) + ":"
	}()
	tokens atomic.Uint64
)

func newToken() string { return processToken + strconv.FormatUint(tokens.Add(1), 36) }

// Claim reads url's variant as Get does and, in the same round trip (one
// script), claims url's fleet-wide lease for ttl when the variant is not
// stored, or, with stale, even when it is (its caller will revalidate it).
// An entry this process read or stored lately is read with a plain GET
// first, as by Get: a hot entry costs Redis no script, and one that has
// gone since costs a round trip more.
// The lease is taken when nobody holds it and url is not marked (see
// Release); otherwise the returned Lease says who holds it and whether url
// is marked. vary are the Vary names variant was computed with: when they are
// not url's, nothing is claimed and url's names are returned for the caller
// to ask again, as from Get. The caller of a Lease that is Mine fetches and
// ends it with Fill or Release.
func (s *Store) Claim(ctx context.Context, url string, vary []string, variant string, ttl time.Duration, stale bool) (*policy.Response, []string, coalesce.Lease, error) {
	lease := coalesce.Lease{Key: url}
	// A lease without an expiry would block the URL for good if its holder
	// died, and Redis rejects an expiry below a millisecond.
	if ttl < time.Millisecond {
		return nil, nil, lease, fmt.Errorf("rediscache: claim: lease ttl %v is below 1ms", ttl)
	}
	shards, err := s.load(ctx)
	if err != nil {
		return nil, nil, lease, err
	}
	if s.near != nil && !stale {
		if resp := s.nearGet(url, variant); resp != nil {
			return resp, resp.Vary, lease, nil
		}
	}
	r := refOf(shards, url, variant)
	if !stale && s.touched.seen(r.id) {
		// An entry this process read or stored lately is most likely
		// there: a plain GET reads it, at a fraction of a script's cost to
		// Redis, and the script runs only when it has gone since.
		if resp, err := s.read(ctx, r, url, variant); err != nil || resp != nil {
			return resp, respVary(resp), lease, err
		}
	}
	sh, uh := r.sh, r.member()[:16]
	now := s.now()
	ms := now.UnixMilli()
	mode := ""
	if stale {
		mode = "stale"
	}
	token := newToken()
	reply, err := claimScript.Run(ctx, s.client,
		[]string{r.entry, r.vary(), sh.lock + uh, sh.hfm + uh, sh.lru},
		r.member(), ms, ms+explicitScore, strings.Join(vary, ","), token, ttl.Milliseconds(), mode,
	).Slice()
	if err != nil {
		s.abandon(sh, uh, token, ttl)
		return nil, nil, lease, fmt.Errorf("rediscache: claim: %w", redisfail.Classify(err))
	}
	if len(reply) != 1 && len(reply) != 5 {
		return nil, nil, lease, redisfail.Refuse("REPLY", fmt.Errorf("rediscache: claim: a reply of %d values", len(reply)))
	}
	var resp *policy.Response
	if val, _ := reply[0].(string); val != "" {
		if resp, err = s.entryOf(ctx, r, url, variant, val); err != nil {
			return nil, nil, lease, err
		}
		s.touched.mark(r.id, now) // touched, and seen: read with a GET next time
	}
	if len(reply) == 1 {
		if resp == nil {
			// Garbage or another URL under the same hash: a miss
			// that claimed nothing.
			return nil, nil, lease, nil
		}
		return resp, resp.Vary, lease, nil
	}
	names, _ := reply[1].(string)
	known, _ := reply[2].(int64)
	holder, _ := reply[3].(string)
	marked, _ := reply[4].(int64)
	lease.Holder, lease.Mine, lease.Marked = holder, holder == token, marked == 1
	return resp, splitNames(names, known == 1), lease, nil
}

// abandon ends, in the background and within ttl, a lease that a claim
// whose answer was lost (a timeout, a broken connection) may have taken:
// nobody knows it holds it, and it would hold every peer for its whole TTL.
// Only a lease that still holds token goes.
func (s *Store) abandon(sh *shard, urlHash, token string, ttl time.Duration) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		ctx, cancel := context.WithTimeout(s.life, ttl)
		defer cancel()
		_ = releaseScript.Run(ctx, s.client, []string{sh.lock + urlHash, sh.hfm + urlHash},
			token, "", 0, s.publish.Load(), sh.fill+urlHash).Err()
	}()
}

// splitNames turns the names the v: key records back into a list: nil when
// the URL has no v: key, empty (not nil) when it varied once and no longer
// does.
func splitNames(names string, known bool) []string {
	switch {
	case !known:
		return nil
	case names == "":
		return []string{}
	}
	return strings.Split(names, ",")
}

// entryOf decodes val, read from r's key, and returns it when it is the
// response stored for url and variant: nil for another URL or variant under
// the same hashes, and nil for a corrupt value, which is deleted (only that
// value: the digest guards one written meanwhile).
func (s *Store) entryOf(ctx context.Context, r ref, url, variant, val string) (*policy.Response, error) {
	resp, err := decodeString(val)
	if err != nil {
		sum := sha1.Sum([]byte(val))
		return nil, s.delete(ctx, r, hex.EncodeToString(sum[:]))
	}
	if resp.URL != url || variantOf(resp) != variant {
		return nil, nil
	}
	return resp, nil
}

// Fill is Put by the holder of resp.URL's lease: when it keeps the entry,
// the same script ends the lease and announces the fill to the waiters.
// When it keeps nothing (kept false, or an error) the lease is left to
// Release. A lease that is no longer the holder's (it expired and passed to
// another) is left alone.
func (s *Store) Fill(ctx context.Context, lease coalesce.Lease, resp *policy.Response, ttl time.Duration, explicit bool) (kept bool, err error) {
	token := ""
	if lease.Mine {
		token = lease.Holder
	}
	return s.put(ctx, resp, ttl, explicit, token)
}

// Release ends lease without a fill when it is the caller's (Mine), and
// wakes the peers waiting for it, which then read again and find the lease
// free. With unshareable it also marks lease's URL for five seconds, leased
// or not, so that for that long its misses neither take the lease nor wait
// for a holder (Varnish's hit-for-miss): a URL whose answers cannot be
// shared would otherwise have its bursts served one request at a time.
func (s *Store) Release(ctx context.Context, lease coalesce.Lease, unshareable bool) error {
	token, mark := "", ""
	if lease.Mine {
		token = lease.Holder
	}
	if unshareable {
		mark = "1"
	}
	if token == "" && mark == "" {
		return nil
	}
	shards, err := s.load(ctx)
	if err != nil {
		return err
	}
	sh, uh := shardOf(shards, lease.Key)
	url := string(hashHex(nil, uh))
	err = releaseScript.Run(ctx, s.client, []string{sh.lock + url, sh.hfm + url},
		token, mark, markerTTL.Milliseconds(), s.publish.Load(), sh.fill+url).Err()
	if err != nil {
		return fmt.Errorf("rediscache: release: %w", redisfail.Classify(err))
	}
	return nil
}

// Wait returns nil once lease's holder no longer holds it: it announced its
// fill, released the lease, or died and let it expire. The caller then reads
// again (Claim), and takes the lease itself when it is free. Wait returns
// ctx.Err() when ctx ends first, an error wrapping ErrClosed once the store
// is closed, and
// the error of a failed poll, so that a waiter never blocks on a Redis that
// is down. Fills are announced on url's channel (FillChannel); the lease is
// polled every 100ms as well, and once as soon as the channel is
// subscribed, so that an announcement made before the subscription, or
// lost, costs a poll at most.
func (s *Store) Wait(ctx context.Context, lease coalesce.Lease) error {
	shards, err := s.load(ctx)
	if err != nil {
		return err
	}
	sh, uh := shardOf(shards, lease.Key)
	url := string(hashHex(nil, uh))
	w := s.subs.watch(ctx, sh.fill+url, sh.lock+url, lease.Holder)
	defer w.stop()
	return w.wait(ctx)
}

// claimScript reads an entry and, on a miss, claims its URL's lease.
//
//	KEYS: entry, vary (v:), lease, marker, lru
//	ARGV: member, touch score of a non-explicit entry, touch score of an
//	      explicit one, the caller's Vary names (comma separated), lease
//	      token, lease ttl ms, "stale" to claim even when the entry exists
//
// It returns {value} for a stored entry, and otherwise {value or "",
// Vary names or "", 1 when the v: key exists, holder or "", 1 when marked}.
// Its writes (the touch, the lease) go through pcall: a Redis out of memory
// refuses them, and a read must not fail with them.
var claimScript = redis.NewScript(`
local entry, vary, lease, marker, lru = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local v = redis.call('GET', entry)
if v and ARGV[7] == '' then
	local s = redis.call('ZSCORE', lru, ARGV[1])
	if s then
		local score = ARGV[2]
		if tonumber(s) >= ` + strconv.FormatInt(explicitScore, 10) + ` then score = ARGV[3] end
		redis.pcall('ZADD', lru, 'XX', score, ARGV[1])
	end
	return {v}
end
local names, known = redis.call('HGET', vary, 'vary'), 1
if not names then names, known = '', 0 end
if names ~= ARGV[4] then return {v or '', names, known, '', 0} end
local marked = redis.call('EXISTS', marker)
local holder = redis.call('GET', lease)
if not holder and marked == 0 then
	local ok = redis.pcall('SET', lease, ARGV[5], 'PX', ARGV[6], 'NX')
	if type(ok) == 'table' and ok['ok'] then holder = ARGV[5] end
end
return {v or '', names, known, holder or '', marked}
`)

// releaseScript ends a lease that still holds the caller's token, and wakes
// its waiters; with a mark, it marks the URL. The delete comes first: Redis
// out of memory refuses the mark but never a delete.
//
//	KEYS: lease, marker
//	ARGV: token or "", "1" to mark, marker ttl ms, publish command or "",
//	      fill channel
var releaseScript = redis.NewScript(`
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) == ARGV[1] then
	redis.call('DEL', KEYS[1])
	if ARGV[4] ~= '' then redis.call(ARGV[4], ARGV[5], '') end
end
if ARGV[2] ~= '' then redis.call('SET', KEYS[2], '1', 'PX', ARGV[3]) end
return 0
`)
