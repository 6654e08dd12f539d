// Package coalesce collapses identical concurrent work into one call: in one
// process with a singleflight group, and across processes with a lease held
// in Redis, so that a burst of misses reaches the origin once for the fleet.
package coalesce
