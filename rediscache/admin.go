package rediscache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fleetcache/fleetcache/internal/redisfail"
	"github.com/fleetcache/fleetcache/policy"
)

// What an operator reads and retunes (the fleetcache admin commands): a
// URL's stored variants, each shard's figures, the config.

// ErrNoCache is returned by Config and SetLimit when the prefix has no
// <prefix>config: no instance ever used it (or Redis lost it), which for an
// operator's command usually means a mistyped prefix.
var ErrNoCache = errors.New("rediscache: no cache at this prefix")

// Config is <prefix>config as Redis holds it.
type Config struct {
	MaxEntries, MaxBytes int64 // the whole cache's limits
	Shards               int
	Version              int64 // the entry format of the instance that seeded it
}

// Config reads <prefix>config without seeding it: ErrNoCache when it is
// absent, an error naming the field when a field is not what the store
// accepts.
func (s *Store) Config(ctx context.Context) (Config, error) {
	key := s.configKey()
	vals, err := s.client.HMGet(ctx, key, configFields...).Result()
	if err != nil {
		return Config{}, fmt.Errorf("rediscache: read %s: %w", key, redisfail.Classify(err))
	}
	if allNil(vals) {
		return Config{}, fmt.Errorf("%w: %s does not exist", ErrNoCache, key)
	}
	c, err := parseConfig(vals)
	if err != nil {
		return Config{}, fmt.Errorf("rediscache: %s: %w", key, err)
	}
	return Config{MaxEntries: c.maxEntries, MaxBytes: c.maxBytes, Shards: c.shards, Version: c.version}, nil
}

func allNil(vals []any) bool {
	for _, v := range vals {
		if v != nil {
			return false
		}
	}
	return true
}

// Limits that SetLimit changes.
const (
	LimitMaxEntries = "max_entries"
	LimitMaxBytes   = "max_bytes"
)

// SetLimit sets max_entries or max_bytes in <prefix>config to n, which must
// be a positive integer, as every instance requires of it. Every instance
// applies it within 5 seconds, and a lowered limit trims the whole cache.
// It refuses a prefix with no config (ErrNoCache).
func (s *Store) SetLimit(ctx context.Context, field string, n int64) error {
	if field != LimitMaxEntries && field != LimitMaxBytes {
		return fmt.Errorf("rediscache: %q is not a limit: want %s or %s (shards is fixed for the life of a prefix)", field, LimitMaxEntries, LimitMaxBytes)
	}
	if n < 1 {
		return fmt.Errorf("rediscache: %s %d: want a positive integer", field, n)
	}
	if _, err := s.Config(ctx); err != nil && errors.Is(err, ErrNoCache) {
		return err
	}
	if err := s.client.HSet(ctx, s.configKey(), field, n).Err(); err != nil {
		return fmt.Errorf("rediscache: set %s: %w", field, redisfail.Classify(err))
	}
	return nil
}

// ShardStats are one shard's figures.
type ShardStats struct {
	Entries   int64 // entries indexed (expired ones not yet swept included)
	Bytes     int64 // bytes of their encoded values
	Evictions int64 // entries evicted for capacity
	Expired   int64 // expired entries swept from the index
}

// ShardStats reads every shard's figures in one pipeline of two small
// commands per shard.
func (s *Store) ShardStats(ctx context.Context) ([]ShardStats, error) {
	shards, err := s.load(ctx)
	if err != nil {
		return nil, err
	}
	pipe := s.client.Pipeline()
	cards := make([]*redis.IntCmd, len(shards))
	counts := make([]*redis.SliceCmd, len(shards))
	for i := range shards {
		cards[i] = pipe.ZCard(ctx, shards[i].lru)
		counts[i] = pipe.HMGet(ctx, shards[i].st, "bytes", "evictions", "expired")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("rediscache: shard stats: %w", redisfail.Classify(err))
	}
	out := make([]ShardStats, len(shards))
	for i := range shards {
		v := counts[i].Val()
		out[i] = ShardStats{Entries: cards[i].Val(), Bytes: atoi(v[0]), Evictions: atoi(v[1]), Expired: atoi(v[2])}
	}
	return out, nil
}

// Stored is one variant of a URL as the store holds it.
type Stored struct {
	Response *policy.Response // nil when the value could not be decoded (Err)
	Err      error            // wraps ErrCorrupt for a damaged or foreign value
	Size     int64            // bytes of the encoded value
	TTL      time.Duration    // how long Redis keeps it yet
}

// Inspect returns every variant stored for url (policy.NormalizeURL's
// output), found in its shard's index by one ZRANGEBYLEX and read in one
// pipeline. Variants the index still lists but whose entry Redis no longer
// holds (expired, not yet swept) are left out, and so is another URL's
// entry under a colliding hash.
func (s *Store) Inspect(ctx context.Context, url string) ([]Stored, error) {
	shards, err := s.load(ctx)
	if err != nil {
		return nil, err
	}
	sh, uh := shardOf(shards, url)
	urlHash := string(hashHex(nil, uh))
	records, err := s.client.ZRangeByLex(ctx, sh.ix, &redis.ZRangeBy{Min: "[" + urlHash + ":", Max: "(" + urlHash + ";"}).Result()
	if err != nil {
		return nil, fmt.Errorf("rediscache: inspect: %w", redisfail.Classify(err))
	}
	if len(records) == 0 {
		return nil, nil
	}
	pipe := s.client.Pipeline()
	gets := make([]*redis.StringCmd, len(records))
	ttls := make([]*redis.DurationCmd, len(records))
	for i, r := range records {
		key := sh.entry + r[:strings.LastIndexByte(r, ':')]
		gets[i] = pipe.Get(ctx, key)
		ttls[i] = pipe.PTTL(ctx, key)
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, fmt.Errorf("rediscache: inspect: %w", redisfail.Classify(err))
	}
	var out []Stored
	for i := range records {
		val, err := gets[i].Result()
		if err == redis.Nil {
			continue
		}
		st := Stored{Size: int64(len(val)), TTL: ttls[i].Val()}
		if st.Response, st.Err = decodeString(val); st.Err == nil && st.Response.URL != url {
			continue
		}
		out = append(out, st)
	}
	return out, nil
}
