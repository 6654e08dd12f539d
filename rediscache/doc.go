// Package rediscache stores cached HTTP responses in Redis for a whole fleet:
// versioned, checksummed entries whose TTL follows their freshness, with a
// per-prefix capacity enforced by a sorted-set LRU index and keys laid out so
// that the same code runs on a single server and on Redis Cluster.
package rediscache
