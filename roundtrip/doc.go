// Package roundtrip provides the caching http.RoundTripper: it asks package
// policy what to do, reads and writes the shared store, collapses identical
// misses, and talks to the origin through the wrapped transport.
//
// Wrap a service's http.Client once; every instance that uses the same
// Redis and prefix shares one cache:
//
//	store, err := rediscache.Open(ctx, os.Getenv("REDIS_URL"), rediscache.Options{Prefix: "catalog:"})
//	if err != nil {
//		return err
//	}
//	transport := roundtrip.New(store, roundtrip.Options{})
//	defer store.Close()
//	defer transport.Close() // first: it waits for what is being stored
//	client := &http.Client{Transport: transport}
//
//	resp, err := client.Get("https://pricing.internal/prices/42")
//	// resp.Header.Get("Cache-Status"): fleetcache; fwd=uri-miss; fwd-status=200; stored
//	// and on the next request, from any instance:      fleetcache; hit; ttl=59
//
// Day to day: Transport.Purge removes a URL for every instance;
// WithBypass and WithRefresh change what the cache does for one request;
// Options.OnResult hears what it did for each one (and Options.Logger, at
// Debug level, writes a line per request). policy.ParseCacheStatus reads
// the Cache-Status field. Package fleetcachetest runs the transport over
// an in-memory Redis on a clock a test moves, for a service's own tests.
package roundtrip
