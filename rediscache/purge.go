package rediscache

import (
	"context"
	"fmt"

	"github.com/cespare/xxhash/v2"
	"github.com/fleetcache/fleetcache/internal/redisfail"
	"github.com/fleetcache/fleetcache/policy"
)

// tagHashes returns the hashes of tags (16 hex digits each, run together),
// each once and at most policy.MaxTags of them: what putScript records. A
// tag is known in Redis by its hash alone, so that no tag (a brace, a
// newline, 4 KiB of it) can break a key name; two tags of equal hash
// purge each other's entries, which costs misses, never wrong responses.
func tagHashes(tags []string) string {
	b := make([]byte, 0, 16*min(len(tags), policy.MaxTags))
	for _, t := range tags {
		if len(b) == cap(b) {
			break
		}
		h := hashHex(nil, xxhash.Sum64String(t))
		if !containsHash(b, h) {
			b = append(b, h...)
		}
	}
	return string(b)
}

func containsHash(run, h []byte) bool {
	for i := 0; i+16 <= len(run); i += 16 {
		if string(run[i:i+16]) == string(h) {
			return true
		}
	}
	return false
}

// PurgeURL is Purge that reports how many entries (variants of url) it
// removed, or with soft, how many it marked stale: a soft purge leaves
// every variant in place, stale at once for every reader (see
// policy.Response.Purged), so that it is revalidated with its validators
// and still served within its stale-while-revalidate and stale-if-error
// windows, which count from the purge. A variant that cannot be marked in
// place (written by an older version) is removed and counted in neither.
func (s *Store) PurgeURL(ctx context.Context, url string, soft bool) (int64, error) {
	shards, err := s.load(ctx)
	if err != nil {
		return 0, err
	}
	sh, uh := shardOf(shards, url)
	urlHash := string(hashHex(nil, uh))
	keys := []string{sh.lru, sh.ix, sh.st}
	var n int64
	if soft {
		at := s.now().UnixMilli()
		for cursor := ""; ; {
			reply, err := softPurgeScript.Run(ctx, s.client, keys, urlHash, sh.entry, sh.vary, cursor, at,
				s.publish.Load(), sh.near).Slice()
			if err != nil {
				return n, fmt.Errorf("rediscache: soft purge: %w", redisfail.Classify(err))
			}
			s.heard(sh, atString(reply, 3))
			cursor = atString(reply, 0)
			n += atInt(reply, 1)
			if cursor == "" {
				return n, nil
			}
		}
	}
	for {
		reply, err := purgeScript.Run(ctx, s.client, keys, urlHash, sh.entry, sh.vary,
			s.publish.Load(), sh.near).Slice()
		if err != nil {
			return n, fmt.Errorf("rediscache: purge: %w", redisfail.Classify(err))
		}
		s.heard(sh, atString(reply, 2))
		n += atInt(reply, 1)
		if atInt(reply, 0) == 0 {
			return n, nil
		}
	}
}

// tagBatch bounds the tags one purgeTagScript is given.
const tagBatch = 64

// PurgeTag removes every entry tagged with any of tags (policy.Response.Tags:
// its Cache-Tag or Surrogate-Key tags, its Cache-Groups as
// policy.GroupTag), in every shard, and returns how many it removed. Each
// script removes at most a batch, so that Redis keeps serving while a tag
// of many entries goes; on Redis Cluster the shards, and so the work, are
// spread over the masters. Entries written while it runs may survive it.
func (s *Store) PurgeTag(ctx context.Context, tags ...string) (int64, error) {
	shards, err := s.load(ctx)
	if err != nil {
		return 0, err
	}
	hashes := tagHashes(tags)
	var n int64
	for i := range shards {
		sh := &shards[i]
		for from := 0; from < len(hashes); from += 16 * tagBatch {
			keys := []string{sh.lru, sh.ix, sh.st, sh.tg}
			for j := from; j < min(len(hashes), from+16*tagBatch); j += 16 {
				keys = append(keys, sh.tag+hashes[j:j+16])
			}
			// As many batches as the sets held after the first, and no
			// more: writers tagging entries meanwhile cannot keep it going.
			for calls, limit := int64(0), int64(1); calls < limit; calls++ {
				reply, err := purgeTagScript.Run(ctx, s.client, keys, sh.entry, sh.vary,
					s.publish.Load(), sh.near).Slice()
				if err != nil {
					return n, fmt.Errorf("rediscache: purge tag: %w", redisfail.Classify(err))
				}
				s.heard(sh, atString(reply, 2))
				n += atInt(reply, 1)
				if calls == 0 {
					limit += (atInt(reply, 0) + purgeBatch - 1) / purgeBatch
				}
			}
		}
	}
	return n, nil
}

// SoftPurgeTag marks stale every entry tagged with any of tags, as PurgeURL
// with soft does, in every shard, and returns how many it marked. An entry
// with two of the tags is counted twice.
func (s *Store) SoftPurgeTag(ctx context.Context, tags ...string) (int64, error) {
	shards, err := s.load(ctx)
	if err != nil {
		return 0, err
	}
	hashes := tagHashes(tags)
	at := s.now().UnixMilli()
	var n int64
	for i := range shards {
		sh := &shards[i]
		for j := 0; j < len(hashes); j += 16 {
			keys := []string{sh.lru, sh.ix, sh.st, sh.tg, sh.tag + hashes[j:j+16]}
			for cursor := "0"; ; {
				reply, err := softTagScript.Run(ctx, s.client, keys, sh.entry, sh.vary, cursor, at,
					s.publish.Load(), sh.near).Slice()
				if err != nil {
					return n, fmt.Errorf("rediscache: soft purge tag: %w", redisfail.Classify(err))
				}
				s.heard(sh, atString(reply, 3))
				cursor = atString(reply, 0)
				n += atInt(reply, 1)
				if cursor == "0" {
					break
				}
			}
		}
	}
	return n, nil
}

// heard applies a purge's announcement to this process's near tier at
// once: the message reaches it through pub/sub too, a little later, and a
// Get right after the purge must not find the entry here.
func (s *Store) heard(sh *shard, msg string) {
	if msg != "" && s.near != nil {
		s.near.apply(sh.idx, msg, true)
	}
}

// atInt and atString read a script's reply, a foreign one included,
// without a panic.
func atInt(reply []any, i int) int64 {
	if i < len(reply) {
		n, _ := reply[i].(int64)
		return n
	}
	return 0
}

func atString(reply []any, i int) string {
	if i < len(reply) {
		s, _ := reply[i].(string)
		return s
	}
	return ""
}
