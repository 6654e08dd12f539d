// Package rediscache stores cached HTTP responses in Redis for a whole fleet.
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
package rediscache
