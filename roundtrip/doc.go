// Package roundtrip provides the caching http.RoundTripper: it asks package
// policy what to do, reads and writes the shared store, collapses identical
// misses, and talks to the origin through the wrapped transport.
package roundtrip
