package main

import (
	"net/http"

	"github.com/fleetcache/fleetcache/rediscache"
	"github.com/fleetcache/fleetcache/roundtrip"
)

// openFleetcache is fleetcache as a user sets it up: a client and store from
// the Redis URL and the transport with zero Options, except the transport to
// the origin, which every implementation shares.
func openFleetcache(e env) (http.RoundTripper, func(), error) {
	rdb, err := rediscache.NewClient(e.redisURL)
	if err != nil {
		return nil, nil, err
	}
	store, err := rediscache.New(rdb, rediscache.Options{Prefix: e.prefix})
	if err != nil {
		_ = rdb.Close()
		return nil, nil, err
	}
	t := roundtrip.New(store, roundtrip.Options{Transport: e.origin})
	return t, func() { _ = t.Close(); _ = store.Close(); _ = rdb.Close() }, nil
}
