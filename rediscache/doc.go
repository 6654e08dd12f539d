// Package rediscache stores cached HTTP responses in Redis for a whole fleet.
//
// A service opens the store once, at start, and gives it to the caching
// transport of package roundtrip:
//
//	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
//	defer cancel()
//	store, err := rediscache.Open(ctx, os.Getenv("REDIS_URL"), rediscache.Options{Prefix: "catalog:"})
//	if err != nil {
//		return err // errors.Is(err, rediscache.ErrUnavailable): Redis did not answer in time
//	}
//	defer store.Close() // after the transport's Close
//	client := &http.Client{Transport: roundtrip.New(store, roundtrip.Options{})}
//
// A service that must start while Redis is down uses NewClient and New,
// which connect lazily; go-redis's own log lines reach slog through
// RedisLogger.
//
// Entries are versioned and checksummed encodings of policy.Response, kept
// for the TTL the caller computes; a corrupt or foreign value is a miss,
// never a wrong response. A per-prefix capacity, held in Redis so that every
// instance agrees and an operator can retune it live, is enforced by
// sorted-set LRU indexes that evict entries without explicit freshness
// first. Every key of a URL carries its index shard's hash tag, so each
// operation is one script or pipeline within one hash slot and the same code
// runs on a single server and on Redis Cluster. docs/store.md describes the
// key layout, capacity tuning and the memory an entry costs.
//
// With Options.NearBytes, a store also keeps the responses it reads and
// writes in process memory, bounded in bytes: a hot hit then costs no Redis
// command. Every script that changes entries announces the change on its
// shard's channel, and each store with such a tier listens, so that a
// change made through any instance reaches every tier within milliseconds;
// one whose subscription drops empties its tier until it is back.
package rediscache
