package rediscache

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/fleetcache/fleetcache/internal/redisfail"
	"github.com/fleetcache/fleetcache/policy"
	"github.com/redis/go-redis/v9"
)

// ErrPrefix is wrapped in the error New and Open return for an empty or
// malformed Options.Prefix.
var ErrPrefix = errors.New("rediscache: invalid prefix")

// ErrUnavailable is wrapped in the error Open returns when Redis cannot be
// reached, or does not answer before the context's deadline, or answers
// that it cannot serve now (LOADING, MASTERDOWN, CLUSTERDOWN, ...). A
// service that can run uncached while Redis is down makes its store with
// NewClient and New instead, which connect lazily.
var ErrUnavailable = errors.New("rediscache: Redis unavailable")

// ErrClosed is wrapped in the errors of a Store's calls after Close. Such
// an error is a refusal (its Refused method says "CLOSED"), so a transport
// still using the store sends its requests to the origin uncached without
// taking the store for failing.
var ErrClosed = errors.New("rediscache: store closed")

// Options configure a Store. Only Prefix is required. MaxEntries, MaxBytes
// and Shards only seed the <prefix>config hash in Redis the first time any
// instance uses the prefix; from then on the values in Redis win, so that
// every instance of every service agrees on them.
type Options struct {
	// Prefix starts every key of this cache; caches with different
	// prefixes never see each other's entries. 1 to 64 bytes of
	// A-Z a-z 0-9 _ . : - (no braces: they would break the hash tags).
	Prefix string
	// MaxEntries is the whole cache's entry limit; 0 means
	// DefaultMaxEntries.
	MaxEntries int64
	// MaxBytes is the whole cache's limit on the bytes of its encoded
	// entries; 0 means DefaultMaxBytes.
	MaxBytes int64
	// Shards is the number of LRU index shards; 0 means DefaultShards.
	// More shards spread a cluster's load over more slots; each shard
	// holds 1/Shards of the capacity.
	Shards int
	// MaxVariants is the most variants (responses selected by Vary) kept
	// for one URL; past it the URL's least recently used variant is
	// evicted. 0 means DefaultMaxVariants. It bounds what a client that
	// chooses the values of a Vary'd header can make the cache hold for
	// one URL.
	MaxVariants int
	// NearBytes bounds a tier in process memory in front of Redis, in
	// bytes; 0 (the default) means none. It holds responses this process
	// read or wrote, serves a hit without a Redis command, and stays
	// coherent with the fleet through the announcements every change makes
	// on the shards' near channels (see docs/store.md, "The near tier"). It
	// needs pub/sub: with a Ring, or a Redis user that may not publish under
	// the prefix, it stays empty.
	NearBytes int64
	// Logger receives the few events worth logging, such as a Redis user
	// that may not publish under the prefix, or options that the config
	// already in Redis overrides; nil means slog.Default().
	Logger *slog.Logger
}

// Defaults of Options.
const (
	DefaultMaxEntries  = 100_000
	DefaultMaxBytes    = 1 << 30
	DefaultShards      = 16
	DefaultMaxVariants = 64
)

const (
	maxShards = 1024

	// configRefresh is how long an instance uses the capacity it read from
	// <prefix>config before it reads it again: an operator's retune
	// reaches every instance within this interval.
	configRefresh = 5 * time.Second

	// explicitScore is added to the LRU score of entries with explicit
	// freshness, so that every other entry scores lower and is evicted
	// first. 2^45 ms is 1100 years: larger than any Unix time in ms this
	// code will see, and the sum stays exact in a float64 score.
	explicitScore = 1 << 45
)

func (o Options) withDefaults() (Options, error) {
	if err := checkPrefix(o.Prefix); err != nil {
		return o, err
	}
	if o.MaxEntries < 0 || o.MaxBytes < 0 || o.MaxVariants < 0 || o.NearBytes < 0 || o.Shards < 0 || o.Shards > maxShards {
		return o, fmt.Errorf("rediscache: negative capacity or shards outside 1..%d in options", maxShards)
	}
	if o.MaxEntries == 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.Shards == 0 {
		o.Shards = DefaultShards
	}
	if o.MaxVariants == 0 {
		o.MaxVariants = DefaultMaxVariants
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

func checkPrefix(p string) error {
	if p == "" || len(p) > 64 {
		return fmt.Errorf("%w: %q must be 1 to 64 bytes long", ErrPrefix, p)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '_' || c == '.' || c == ':' || c == '-'
		if !ok {
			return fmt.Errorf("%w: %q has %q; use only A-Z a-z 0-9 _ . : -", ErrPrefix, p, c)
		}
	}
	return nil
}

// Store keeps cached responses in Redis. It is safe for concurrent use.
type Store struct {
	client  redis.UniversalClient
	owned   bool // Open made the client, so Close closes it
	opts    Options
	given   Options // opts as New was given them, before the defaults
	closed  atomic.Bool
	pubsub  pubsubKind   // how fills are announced and heard, decided once from the client
	publish atomic.Value // string: pubsub's announcing command, "" when the user may not publish
	subs    *subscriptions
	now     func() time.Time
	touched touchSet
	near    *near // nil without Options.NearBytes

	loadMu sync.Mutex
	shards atomic.Pointer[[]shard] // fixed once read: the key layout
	seed   []shard                 // the layout Options.Shards names, until then
	limits atomic.Pointer[limits]

	// Trimming after a lowered capacity runs in the background; Close
	// ends it and waits.
	life     context.Context
	stop     context.CancelFunc
	trimming atomic.Bool
	bg       sync.WaitGroup
}

// limits is the capacity read from <prefix>config, divided among shards.
type limits struct {
	maxEntries, maxBytes int64 // per shard
	read                 time.Time
}

// shard holds the key names of one index shard, built once.
type shard struct {
	entry, vary, lock, hfm, fill string // prefixes, followed by the URL hash
	tag                          string // prefix of the tag sets, followed by the tag hash
	lru, ix, st, tg              string
	near                         string // the channel announcing its changes
	idx                          int
}

// layout returns the key names of n shards.
func layout(prefix string, n int) []shard {
	shards := make([]shard, n)
	for i := range shards {
		shards[i] = newShard(prefix, i)
	}
	return shards
}

func newShard(prefix string, s int) shard {
	tag := "{" + prefix + strconv.Itoa(s) + "}"
	return shard{
		entry: prefix + "e:" + tag + ":",
		vary:  prefix + "v:" + tag + ":",
		lock:  prefix + "lock:" + tag + ":",
		hfm:   prefix + "hfm:" + tag + ":",
		fill:  prefix + "fill:" + tag + ":",
		tag:   prefix + "t:" + tag + ":", // scripts.go's tagKeys names it too
		lru:   prefix + "lru:" + tag,
		ix:    prefix + "ix:" + tag,
		st:    prefix + "st:" + tag,
		tg:    prefix + "tg:" + tag,
		near:  prefix + "near:" + tag,
		idx:   s,
	}
}

// New returns a Store using client, which stays the caller's to close. It
// does no I/O: the first Get or Put reads <prefix>config, seeding it from
// opts when absent.
func New(client redis.UniversalClient, opts Options) (*Store, error) {
	given := opts
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Store{client: client, opts: opts, given: given, pubsub: pubsubOf(client), now: time.Now, seed: layout(opts.Prefix, opts.Shards)}
	s.publish.Store(s.pubsub.command())
	s.subs = newSubscriptions(client, s.pubsub)
	s.life, s.stop = context.WithCancel(context.Background())
	if opts.NearBytes > 0 {
		if s.near, err = newNear(opts.NearBytes); err != nil {
			return nil, fmt.Errorf("rediscache: near tier: %w", err)
		}
	}
	return s, nil
}

// Open connects to the Redis that rawURL names and returns a Store using
// that connection; Close closes it. It reads (and if needed seeds)
// <prefix>config with ctx, so that a wrong address, password or prefix is
// reported at start-up. The forms are those of go-redis:
//
//	redis://[user:password@]host:port[/db][?options]
//	rediss://...                      the same over TLS
//	unix://[user:password@]/path/to/redis.sock[?db=N]
//	redis://host1:port1?addr=host2:port2&addr=host3:port3
//	                                  Redis Cluster: any addr parameter makes
//	                                  the URL a cluster's list of seed nodes
//
// Give ctx a deadline: Open returns when it passes, with an error that
// wraps ErrUnavailable and ctx's error. Without one, Open waits for
// go-redis to give up: its dial retries against a refused port (about 2 s),
// its dial and read timeouts against a host that does not answer (5 s and
// 3 s by default). A Redis that answers with an error (a wrong password, a
// user without the rights fleetcache needs) is not unavailable: that error
// is returned as it is.
func Open(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	client, err := NewClient(rawURL)
	if err != nil {
		return nil, err
	}
	s, err := New(client, opts)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	if _, err := s.load(ctx); err != nil {
		_ = client.Close()
		var refused *redisfail.Refused
		if !errors.As(err, &refused) {
			err = &unavailableError{where: redactURL(rawURL), err: err}
		}
		return nil, err
	}
	s.owned = true
	return s, nil
}

// unavailableError is Open's error for a Redis it could not get an answer
// from: it wraps both ErrUnavailable and the cause.
type unavailableError struct {
	where string
	err   error
}

func (e *unavailableError) Error() string {
	return ErrUnavailable.Error() + " at " + e.where + ": " + strings.TrimPrefix(e.err.Error(), "rediscache: ")
}

func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.err} }

// urlForms is the expected form of a Redis URL, as NewClient's errors show it.
const urlForms = "redis://[user:password@]host:port[/db], rediss://... (TLS), unix:///path/to/redis.sock, " +
	"or redis://host1:port1?addr=host2:port2 (a cluster)"

// redactURL is rawURL with its password hidden, for messages.
func redactURL(rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil {
		return u.Redacted()
	}
	return "the Redis URL"
}

// NewClient makes a client for a Redis URL in any form Open accepts,
// without connecting: for a process that must start, and serve uncached,
// while Redis is unreachable (pass the client to New, which does no I/O
// either). The caller closes the client.
//
// The client honours context deadlines (ContextTimeoutEnabled): the
// transport bounds every store call with a short deadline, and without it
// go-redis would wait for its own read timeout (seconds) on a Redis that
// stopped answering. A client made elsewhere and given to New should set it
// too.
func NewClient(rawURL string) (redis.UniversalClient, error) {
	// The messages quote the URL only where it cannot hold a password.
	hidden := strings.Contains(rawURL, "@")
	switch {
	case strings.TrimSpace(rawURL) == "":
		return nil, fmt.Errorf("rediscache: no Redis URL; want %s", urlForms)
	case !strings.Contains(rawURL, "://") && !hidden:
		return nil, fmt.Errorf("rediscache: Redis URL %q has no scheme; want redis://%s, or one of %s", rawURL, rawURL, urlForms)
	case !strings.Contains(rawURL, "://"):
		return nil, fmt.Errorf("rediscache: Redis URL has no scheme; want %s", urlForms)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		var uerr *url.Error
		if !hidden && errors.As(err, &uerr) {
			return nil, fmt.Errorf("rediscache: malformed Redis URL %q: %w; want %s", rawURL, uerr.Err, urlForms)
		}
		// url.Parse quotes the URL, password included; say less.
		return nil, fmt.Errorf("rediscache: malformed Redis URL (not shown: it has a password); want %s", urlForms)
	}
	switch u.Scheme {
	case "redis", "rediss", "unix":
	default:
		return nil, fmt.Errorf("rediscache: Redis URL scheme %q; want %s", u.Scheme, urlForms)
	}
	if u.Query().Has("addr") {
		o, err := redis.ParseClusterURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("rediscache: cluster URL %s: %w", u.Redacted(), err)
		}
		o.ContextTimeoutEnabled = true
		return redis.NewClusterClient(o), nil
	}
	o, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("rediscache: Redis URL %s: %w", u.Redacted(), err)
	}
	o.ContextTimeoutEnabled = true
	return redis.NewClient(o), nil
}

// Close stops the store's background work (a trim after a lowered
// capacity, the pub/sub connections of Wait) and closes the client if Open
// made it; a client given to New is left open. Calls made after Close fail
// with an error wrapping ErrClosed; calls after the first return nil.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.stop()
	if s.near != nil {
		s.closeNear() // ends the receive loops that bg waits for
	}
	s.bg.Wait()
	if s.near != nil {
		s.near.cache.StopAllGoroutines()
	}
	err := s.subs.close()
	if s.owned {
		err = errors.Join(err, s.client.Close())
	}
	return err
}

// Client returns the Redis client the store uses.
func (s *Store) Client() redis.UniversalClient { return s.client }

// configKey is the hash holding the capacity every instance reads.
func (s *Store) configKey() string { return s.opts.Prefix + "config" }

var configFields = []string{"max_entries", "max_bytes", "shards", "version"}

// errClosed is the error of every call after Close: every call starts with
// load.
var errClosed = redisfail.Refuse("CLOSED", ErrClosed)

// load returns the shard layout, reading <prefix>config on first use.
func (s *Store) load(ctx context.Context) ([]shard, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	if p := s.shards.Load(); p != nil {
		return *p, nil
	}
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	if p := s.shards.Load(); p != nil {
		return *p, nil
	}
	c, err := s.readConfig(ctx)
	if err != nil {
		return nil, err
	}
	s.noteOverridden(c)
	s.checkPublish(ctx)
	shards := s.seed
	if c.shards != len(shards) {
		shards = layout(s.opts.Prefix, c.shards)
	}
	switch {
	case s.near != nil && s.publish.Load() != "":
		s.subscribeNear(shards)
	case s.near != nil:
		s.opts.Logger.Warn("rediscache: the near tier stays empty: it needs pub/sub (a Client or ClusterClient, and a user that may publish under the prefix)",
			"prefix", s.opts.Prefix)
	}
	s.limits.Store(c.perShard(s.now()))
	s.shards.Store(&shards)
	return shards, nil
}

// checkPublish finds out whether the Redis user may publish under the
// prefix (an ACL may grant its keys but not its channels). If not, fills
// are not announced, rather than every write failing at its announcement:
// waiters in other processes then notice a fill by polling the lease, a
// little later. It says so once in the log; Stats.FillNotices says it too.
func (s *Store) checkPublish(ctx context.Context) {
	cmd, channel := s.publish.Load().(string), s.opts.Prefix+"fill:probe"
	if cmd == "" {
		return // a client that announces nothing: its waiters poll
	}
	var err error
	if cmd == "SPUBLISH" {
		err = s.client.SPublish(ctx, channel, "").Err()
	} else {
		err = s.client.Publish(ctx, channel, "").Err()
	}
	if !redis.HasErrorPrefix(err, "NOPERM") {
		return // allowed, or unknown: a real failure shows at the first write
	}
	s.publish.Store("")
	s.opts.Logger.Warn("rediscache: the Redis user may not publish under the prefix; fills are not announced and waiting processes poll instead",
		"prefix", s.opts.Prefix, "command", cmd, "err", err, "acl", "grant &"+s.opts.Prefix+"*")
}

// readConfig reads <prefix>config, seeding from the options every field
// that is absent: the first instance of a prefix seeds it, and a config that
// Redis lost (a restart without persistence, an eviction) is seeded again by
// the next instance that reads it, so that an operator's later retune is
// applied rather than refused. Only the seeding writes: a Redis that refuses
// writes (out of memory) still lets the config be read.
func (s *Store) readConfig(ctx context.Context) (config, error) {
	key := s.configKey()
	vals, err := s.client.HMGet(ctx, key, configFields...).Result()
	if err != nil {
		return config{}, fmt.Errorf("rediscache: read %s: %w", key, redisfail.Classify(err))
	}
	if slices.Contains(vals, nil) {
		pipe := s.client.Pipeline()
		// An instance that runs seeds the shard count it keys with, not
		// its option: instances started later must key alike.
		shards := int64(s.opts.Shards)
		if p := s.shards.Load(); p != nil {
			shards = int64(len(*p))
		}
		seeds := []int64{s.opts.MaxEntries, s.opts.MaxBytes, shards, formatVersion}
		for i, f := range configFields {
			pipe.HSetNX(ctx, key, f, seeds[i])
		}
		get := pipe.HMGet(ctx, key, configFields...)
		if _, err := pipe.Exec(ctx); err != nil {
			return config{}, fmt.Errorf("rediscache: seed %s: %w", key, redisfail.Classify(err))
		}
		vals = get.Val()
	}
	c, err := parseConfig(vals)
	if err != nil {
		return config{}, redisfail.Refuse("CONFIG", fmt.Errorf("rediscache: %s: %w", key, err))
	}
	return c, nil
}

// noteOverridden logs, once per Store, the options that the config already
// in Redis overrides: options only seed it, so that every instance of every
// service agrees on one capacity and one key layout.
func (s *Store) noteOverridden(c config) {
	var args []any
	for _, f := range []struct {
		name        string
		given, used int64
	}{
		{"max_entries", s.given.MaxEntries, c.maxEntries},
		{"max_bytes", s.given.MaxBytes, c.maxBytes},
		{"shards", int64(s.given.Shards), int64(c.shards)},
	} {
		if f.given != 0 && f.given != f.used {
			args = append(args, slog.Group(f.name, "options", f.given, "redis", f.used))
		}
	}
	if len(args) > 0 {
		s.opts.Logger.Warn("rediscache: Redis already holds this cache's config, and it wins over Options: retune with HSET "+
			s.configKey()+" (shards cannot change)", args...)
	}
}

// currentLimits returns the per-shard capacity, read again from Redis when
// the copy in hand is older than configRefresh. A failed or invalid read
// keeps the old values until the next interval: a typo in an operator's
// HSET must not stop the cache. A lowered capacity starts a trim of every
// shard, so that the whole cache shrinks, not only the shards written next.
func (s *Store) currentLimits(ctx context.Context) (*limits, error) {
	if _, err := s.load(ctx); err != nil {
		return nil, err
	}
	l := s.limits.Load()
	now := s.now()
	if now.Sub(l.read) < configRefresh {
		return l, nil
	}
	next := &limits{maxEntries: l.maxEntries, maxBytes: l.maxBytes, read: now}
	if !s.limits.CompareAndSwap(l, next) {
		return s.limits.Load(), nil // another goroutine is refreshing
	}
	if c, err := s.readConfig(ctx); err == nil {
		// The shard count is not retunable live: it decides where
		// every key lives. Only the limits are taken.
		c.shards = len(*s.shards.Load())
		fresh := c.perShard(now)
		if s.limits.CompareAndSwap(next, fresh) && (fresh.maxEntries < l.maxEntries || fresh.maxBytes < l.maxBytes) {
			s.trimInBackground()
		}
	}
	return s.limits.Load(), nil
}

// trimTimeout bounds one trim of the whole cache; a trim cut short is
// finished by the writes that follow, as before trims existed.
const trimTimeout = time.Minute

// trimInBackground evicts, shard by shard and a batch per script, until
// every shard is within the current limits. One trim runs at a time per
// Store; several instances trimming at once only find less to do.
func (s *Store) trimInBackground() {
	if !s.trimming.CompareAndSwap(false, true) {
		return
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		defer s.trimming.Store(false)
		ctx, cancel := context.WithTimeout(s.life, trimTimeout)
		defer cancel()
		_ = s.trim(ctx) // best effort: a failure leaves it to the writes
	}()
}

// trim brings every shard within the current limits.
func (s *Store) trim(ctx context.Context) error {
	shards, err := s.load(ctx)
	if err != nil {
		return err
	}
	lim := s.limits.Load()
	for i := range shards {
		sh := &shards[i]
		for {
			over, err := trimScript.Run(ctx, s.client, []string{sh.lru, sh.ix, sh.st},
				lim.maxEntries, lim.maxBytes, sh.entry, sh.vary, s.publish.Load(), sh.near).Int64()
			if err != nil {
				return fmt.Errorf("rediscache: trim: %w", redisfail.Classify(err))
			}
			if over == 0 {
				break
			}
		}
	}
	return nil
}

// config is <prefix>config as read from Redis.
type config struct {
	maxEntries, maxBytes int64
	shards               int
	version              int64
}

func parseConfig(vals []any) (config, error) {
	var n [4]int64
	for i, v := range vals {
		str, _ := v.(string)
		x, err := strconv.ParseInt(str, 10, 64)
		if err != nil || x < 1 {
			return config{}, fmt.Errorf("field %s is %q, want a positive integer", configFields[i], str)
		}
		n[i] = x
	}
	if n[2] > maxShards {
		return config{}, fmt.Errorf("shards is %d, at most %d", n[2], maxShards)
	}
	return config{maxEntries: n[0], maxBytes: n[1], shards: int(n[2]), version: n[3]}, nil
}

// perShard divides the capacity among the shards: a write script sees only
// its own shard (a script may touch one hash slot only), so each shard
// enforces its share.
func (c config) perShard(now time.Time) *limits {
	n := int64(c.shards)
	return &limits{maxEntries: max(c.maxEntries/n, 1), maxBytes: max(c.maxBytes/n, 1), read: now}
}

// ref names one entry: its shard, the hashes and the key.
type ref struct {
	sh    *shard
	id    uint64 // identifies the entry in the touched set
	entry string // <prefix>e:{<prefix><s>}:<url-hash>:<variant-hash>
}

// member is the entry's LRU index member, "<url-hash>:<variant-hash>".
func (r ref) member() string { return r.entry[len(r.sh.entry):] }

func (r ref) vary() string { return r.sh.vary + r.entry[len(r.sh.entry):][:16] }

// A URL hash is 16 hex digits of the URL's xxhash64; a variant hash the same
// of the variant string. See docs/store.md for why 64 bits are enough: a
// collision costs a miss, never a wrong response, because Get compares the
// full URL and variant stored inside the entry.
func hashHex(dst []byte, h uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], h)
	return hex.AppendEncode(dst, b[:])
}

// shardOf picks the URL's shard and returns its URL hash.
func shardOf(shards []shard, url string) (*shard, uint64) {
	h := xxhash.Sum64String(url)
	return &shards[h%uint64(len(shards))], h
}

func refOf(shards []shard, url, variant string) ref {
	sh, uh := shardOf(shards, url)
	vh := xxhash.Sum64String(variant)
	var buf [128]byte
	b := append(buf[:0], sh.entry...)
	b = hashHex(b, uh)
	b = append(b, ':')
	b = hashHex(b, vh)
	return ref{sh: sh, id: uh ^ bits.RotateLeft64(vh, 32), entry: string(b)}
}

// urlKey returns prefix + the URL's hash, for the per-URL keys.
func (s *Store) urlKey(url string, prefix func(*shard) string) string {
	shards := s.layoutOrSeed()
	sh, uh := shardOf(shards, url)
	return string(hashHex([]byte(prefix(sh)), uh))
}

// layoutOrSeed returns the shard layout, or the one the options seed when
// no Get or Put has read <prefix>config yet (these key functions do no I/O).
func (s *Store) layoutOrSeed() []shard {
	if p := s.shards.Load(); p != nil {
		return *p
	}
	return s.seed
}

// FillChannel is the pub/sub channel on which Put and Fill announce that
// they stored a response for url (the message is the variant's hash), and
// Release that url's lease ended without one (an empty message): what Wait
// listens to. On Redis Cluster it is a shard channel (SPUBLISH, subscribe
// with SSUBSCRIBE); elsewhere a plain one (PUBLISH, SUBSCRIBE). Before the
// first call has read the shard count from Redis it uses Options.Shards.
func (s *Store) FillChannel(url string) string {
	return s.urlKey(url, func(sh *shard) string { return sh.fill })
}

// Get returns the stored response for url (policy.NormalizeURL's output) and
// variant (policy.Variant's output, "" when the caller knows of no Vary),
// in one round trip that also refreshes the entry's LRU position (at most
// once a second per entry and process: finer resolution would only cost
// writes). On a miss, vary lists the Vary names recorded for url, so that a
// caller that guessed the variant wrong can compute the right one and ask
// again: nil when the URL has no variants, empty (not nil) when it varied once
// and no longer does. On a hit, vary is resp.Vary. A corrupt value is a miss
// and is deleted.
func (s *Store) Get(ctx context.Context, url, variant string) (resp *policy.Response, vary []string, err error) {
	shards, err := s.load(ctx)
	if err != nil {
		return nil, nil, err
	}
	if s.near != nil {
		if resp := s.nearGet(url, variant); resp != nil {
			return resp, resp.Vary, nil
		}
	}
	r := refOf(shards, url, variant)
	resp, err = s.read(ctx, r, url, variant)
	if err != nil || resp != nil {
		return resp, respVary(resp), err
	}
	names, err := s.client.HGet(ctx, r.vary(), "vary").Result()
	switch {
	case err == redis.Nil:
		return nil, nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("rediscache: get: %w", redisfail.Classify(err))
	}
	return nil, splitNames(names, true), nil
}

// read returns the response stored for url and variant under r, or nil. A
// hit costs one GET. The LRU touch rides along in a pipeline at most once a
// second per entry (EVALSHA: the script is loaded once). With a near tier,
// the shard's version is read first in the same pipeline and the response
// kept in the tier with it.
func (s *Store) read(ctx context.Context, r ref, url, variant string) (*policy.Response, error) {
	now := s.now()
	touch := s.touched.due(r.id, now)
	keep := s.near != nil && s.near.live()
	var gen uint64
	if keep {
		gen = s.near.gen.Load()
	}
	var get, ver *redis.StringCmd
	var pttl *redis.DurationCmd
	if touch || keep {
		pipe := s.client.Pipeline()
		if keep {
			// Before the GET: a change between the two makes the entry
			// look older than it is, never newer.
			ver = pipe.HGet(ctx, r.sh.st, "ver")
		}
		get = pipe.Get(ctx, r.entry)
		if keep {
			pttl = pipe.PTTL(ctx, r.entry)
		}
		var t *redis.Cmd
		ms := now.UnixMilli()
		keys := []string{r.sh.lru}
		if touch {
			t = touchScript.EvalSha(ctx, pipe, keys, r.member(), ms, ms+explicitScore)
		}
		_, _ = pipe.Exec(ctx) // the GET's error is checked below; the rest is best effort
		if t != nil && redis.HasErrorPrefix(t.Err(), "NOSCRIPT") {
			// Once per server: Run loads the script.
			_ = touchScript.Run(ctx, s.client, keys, r.member(), ms, ms+explicitScore).Err()
		}
	} else {
		get = s.client.Get(ctx, r.entry)
	}
	switch err := get.Err(); {
	case err == redis.Nil:
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("rediscache: get: %w", redisfail.Classify(err))
	}
	resp, err := s.entryOf(ctx, r, url, variant, get.Val())
	if keep && resp != nil {
		v, _ := strconv.ParseInt(ver.Val(), 10, 64) // none (or garbage): 0, kept nowhere
		// The tier holds a copy (sharing header and body, which nobody
		// changes): Near tells the one the caller got, read from Redis,
		// from those the tier serves.
		kept := *resp
		s.near.keep(r.id, r.sh.idx, gen, v, s.nearEntryOf(r, &kept, variant, len(get.Val())), now, pttl.Val())
	}
	return resp, err
}

func respVary(r *policy.Response) []string {
	if r == nil {
		return nil
	}
	return r.Vary
}

// Size returns the size in bytes of the entry stored for url and variant,
// 0 when there is none, without reading it: one STRLEN. A caller whose read
// of the entry timed out learns from it whether the entry's size explains
// the wait.
func (s *Store) Size(ctx context.Context, url, variant string) (int64, error) {
	shards, err := s.load(ctx)
	if err != nil {
		return 0, err
	}
	n, err := s.client.StrLen(ctx, refOf(shards, url, variant).entry).Result()
	if err != nil {
		return 0, fmt.Errorf("rediscache: size: %w", redisfail.Classify(err))
	}
	return n, nil
}

// variantOf is the variant a stored response was selected on; "" when it
// does not vary, without calling policy.Variant on the hot path.
func variantOf(r *policy.Response) string {
	if len(r.Vary) == 0 {
		return ""
	}
	return policy.Variant(r.Vary, r.VaryValues)
}

// Put stores resp under (resp.URL, policy.Variant(resp.Vary, resp.VaryValues))
// for ttl (at most MaxTTL), indexes it in its shard's LRU sorted set, records the URL's Vary
// names and variants, evicts least-recently-used entries of that shard while
// it is over capacity — entries with explicit=false (only a heuristic made
// them fresh, or they are kept only for revalidation) before all others —
// and announces the fill on FillChannel(resp.URL). One script.
//
// kept is false, with no error, for an entry the store will not keep: one
// larger than a shard's byte budget (the entry it would have replaced is
// deleted), one with a ttl under a millisecond, or one that the write's
// own eviction removed at once (a heuristic entry in a shard full of
// explicit ones). An error means Redis failed.
func (s *Store) Put(ctx context.Context, resp *policy.Response, ttl time.Duration, explicit bool) (kept bool, err error) {
	return s.put(ctx, resp, ttl, explicit, "")
}

// put is Put that also ends resp.URL's lease when it holds token.
func (s *Store) put(ctx context.Context, resp *policy.Response, ttl time.Duration, explicit bool, token string) (kept bool, err error) {
	if ttl < time.Millisecond {
		return false, nil // gone before Redis could expire it
	}
	ttl = min(ttl, MaxTTL)
	lim, err := s.currentLimits(ctx)
	if err != nil {
		return false, err
	}
	r := refOf(*s.shards.Load(), resp.URL, variantOf(resp))
	val := Encode(nil, resp)
	if int64(len(val)) > lim.maxBytes {
		// It could never be kept; the entry it would have replaced is
		// out of date and goes.
		return false, s.delete(ctx, r, "")
	}
	now := s.now()
	score := now.UnixMilli()
	if explicit {
		score += explicitScore
	}
	var names string
	if len(resp.Vary) > 0 {
		names = strings.Join(resp.Vary, ",")
	}
	sh, uh := r.sh, r.member()[:16]
	keys := []string{r.entry, r.vary(), sh.lru, sh.ix, sh.st, sh.lock + uh, sh.tg}
	args := []any{r.member(), len(val), ttl.Milliseconds(), score, lim.maxEntries, lim.maxBytes,
		names, sh.entry, sh.vary, s.publish.Load(), sh.fill + uh, s.opts.MaxVariants, token, tagHashes(resp.Tags), sh.near}
	var gen uint64
	if s.near != nil {
		gen = s.near.gen.Load()
	}
	// The value goes by a plain SET, and the script that indexes it runs
	// in the same transaction (putScript says why). A Redis that lost its
	// scripts (a restart) answers NOSCRIPT to the first attempt: the
	// second sends the script itself.
	var reply []any
	for _, eval := range []func(ctx context.Context, c redis.Scripter, keys []string, args ...any) *redis.Cmd{putScript.EvalSha, putScript.Eval} {
		var index *redis.Cmd
		_, err = s.client.TxPipelined(ctx, func(tx redis.Pipeliner) error {
			tx.Set(ctx, r.entry, val, ttl)
			index = eval(ctx, tx, keys, args...)
			return nil
		})
		if !redis.HasErrorPrefix(err, "NOSCRIPT") {
			reply, _ = index.Slice()
			break
		}
	}
	if err != nil {
		return false, fmt.Errorf("rediscache: put: %w", redisfail.Classify(err))
	}
	s.touched.mark(r.id, now) // the write set the score just now
	if len(reply) != 2 {
		return false, redisfail.Refuse("REPLY", fmt.Errorf("rediscache: put: a reply of %d values", len(reply)))
	}
	n, _ := reply[0].(int64)
	if ver, _ := reply[1].(int64); n == 1 && s.near != nil {
		// The caller keeps resp, and may change it: the tier holds a copy
		// of its own, body included.
		own := resp.Clone()
		own.Body = bytes.Clone(resp.Body)
		s.near.keep(r.id, sh.idx, gen, ver, s.nearEntryOf(r, own, variantOf(resp), len(val)), now, ttl)
	}
	return n == 1, nil
}

// Delete removes one entry.
func (s *Store) Delete(ctx context.Context, url, variant string) error {
	shards, err := s.load(ctx)
	if err != nil {
		return err
	}
	return s.delete(ctx, refOf(shards, url, variant), "")
}

// delete removes r's entry; with a non-empty digest, only if the stored value
// still has that SHA-1.
func (s *Store) delete(ctx context.Context, r ref, digest string) error {
	sh := r.sh
	err := deleteScript.Run(ctx, s.client,
		[]string{r.entry, sh.lru, sh.ix, sh.st}, r.member(), sh.entry, sh.vary, digest, s.publish.Load(), sh.near).Err()
	if err != nil {
		return fmt.Errorf("rediscache: delete: %w", redisfail.Classify(err))
	}
	if s.near != nil && digest == "" {
		// The announcement reaches this process too, a little later.
		s.near.cache.Invalidate(r.id)
	}
	return nil
}

// Purge removes every variant of url, a batch of variants per script.
func (s *Store) Purge(ctx context.Context, url string) error {
	_, err := s.PurgeURL(ctx, url, false)
	return err
}

// clearBatch bounds the work of one clear script, so that Redis serves
// other clients between batches.
const clearBatch = 500

// Clear removes every entry of the prefix by walking the shards' LRU indexes
// (never KEYS, SCAN or FLUSHDB), batch by batch. Entries written while it
// runs may survive it. Leases and markers are left to their short TTLs.
func (s *Store) Clear(ctx context.Context) error {
	shards, err := s.load(ctx)
	if err != nil {
		return err
	}
	for i := range shards {
		sh := &shards[i]
		for {
			left, err := clearScript.Run(ctx, s.client,
				[]string{sh.lru, sh.ix, sh.st}, sh.entry, sh.vary, clearBatch, s.publish.Load(), sh.near).Int64()
			if err != nil {
				return fmt.Errorf("rediscache: clear: %w", redisfail.Classify(err))
			}
			if left == 0 {
				break
			}
		}
	}
	if s.near != nil {
		s.near.empty() // the announcements reach this process too, a little later
	}
	return nil
}

// Stats are a cache's figures for operators, summed over its shards.
type Stats struct {
	Entries   int64 // entries indexed (including expired ones not yet swept)
	Bytes     int64 // bytes of their encoded values
	Evictions int64 // entries evicted for capacity, since the prefix was created
	Expired   int64 // expired entries swept from the index
	// The capacity in <prefix>config (whole cache) and the shard count this
	// instance uses.
	MaxEntries, MaxBytes int64
	Shards               int
	// FillNotices is false when this instance does not announce its fills
	// because the Redis user may not publish under the prefix (an ACL
	// without &<prefix>*): other processes waiting on its fetches then
	// poll for them.
	FillNotices bool
	// The near tier's figures in this process (Options.NearBytes); zero
	// without one. NearHits and NearMisses count the lookups it answered
	// and those that went on to Redis; NearEvictions the entries it let go
	// for its byte bound; NearInvalidations the entries announcements of
	// changes dropped; NearResets the times it was emptied because its
	// subscription dropped (or a message made no sense); NearBytes what
	// it holds now (weighed as for the bound), and NearLive whether it is
	// subscribed and in use.
	NearHits, NearMisses, NearEvictions, NearInvalidations, NearResets int64
	NearBytes                                                          int64
	NearLive                                                           bool
}

// Stats reads the figures: the shards' (ShardStats), then the config.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	shards, err := s.ShardStats(ctx)
	if err != nil {
		return Stats{}, err
	}
	c, err := s.readConfig(ctx)
	if err != nil {
		return Stats{}, fmt.Errorf("rediscache: stats: %w", err)
	}
	st := Stats{MaxEntries: c.maxEntries, MaxBytes: c.maxBytes, Shards: len(shards), FillNotices: s.publish.Load() != ""}
	if n := s.near; n != nil {
		st.NearHits, st.NearMisses, st.NearEvictions = n.hits.Load(), n.misses.Load(), n.evictions.Load()
		st.NearInvalidations, st.NearResets = n.invalidations.Load(), n.resets.Load()
		st.NearBytes, st.NearLive = int64(n.cache.WeightedSize()), n.live()
	}
	for _, sh := range shards {
		st.Entries += sh.Entries
		st.Bytes += sh.Bytes
		st.Evictions += sh.Evictions
		st.Expired += sh.Expired
	}
	return st, nil
}

func atoi(v any) int64 {
	s, _ := v.(string)
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// touchSet remembers, per entry and process, the second in which the entry's
// LRU score was last refreshed, so that a hot entry costs one score write per
// second rather than one per hit. It is a fixed table of 4096 slots (32 KiB),
// lock-free: two entries sharing a slot cost an extra touch now and then,
// never a wrong answer.
type touchSet struct {
	slots [4096]atomic.Uint64
}

func (t *touchSet) stamp(id uint64, now time.Time) (*atomic.Uint64, uint64) {
	return &t.slots[id%uint64(len(t.slots))], id&^0xffffffff | uint64(uint32(now.Unix()))
}

// due reports whether the entry should be touched now, and records that it
// is.
func (t *touchSet) due(id uint64, now time.Time) bool {
	slot, want := t.stamp(id, now)
	old := slot.Load()
	return old != want && slot.CompareAndSwap(old, want)
}

// seen reports whether the entry was the last this process touched or
// stored in its slot: recently read or written here, so most likely stored.
func (t *touchSet) seen(id uint64) bool {
	slot, _ := t.stamp(id, time.Time{})
	return slot.Load()>>32 == id>>32
}

// mark records that the entry's score was set now.
func (t *touchSet) mark(id uint64, now time.Time) {
	slot, want := t.stamp(id, now)
	slot.Store(want)
}
