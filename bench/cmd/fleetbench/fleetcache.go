package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/fleetcache/fleetcache/rediscache"
	"github.com/fleetcache/fleetcache/roundtrip"
)

// openFleetcache is fleetcache as a user sets it up: a client and store from
// the Redis URL and the transport with zero Options, except the transport to
// the origin, which every implementation shares.
func openFleetcache(e env) (http.RoundTripper, func(), error) {
	return openFleetcacheWith(e, rediscache.Options{Prefix: e.prefix})
}

// nearBytes is fleetcache-near's tier: room for every hot URL of the
// scenarios.
const nearBytes = 256 << 20

// openFleetcacheNear is fleetcache with a near tier in process memory
// (rediscache.Options.NearBytes).
func openFleetcacheNear(e env) (http.RoundTripper, func(), error) {
	return openFleetcacheWith(e, rediscache.Options{Prefix: e.prefix, NearBytes: nearBytes})
}

func openFleetcacheWith(e env, opts rediscache.Options) (http.RoundTripper, func(), error) {
	rdb, err := rediscache.NewClient(e.redisURL)
	if err != nil {
		return nil, nil, err
	}
	store, err := rediscache.New(rdb, opts)
	if err != nil {
		_ = rdb.Close()
		return nil, nil, err
	}
	if opts.NearBytes > 0 {
		if err := awaitNear(store); err != nil {
			_ = store.Close()
			_ = rdb.Close()
			return nil, nil, err
		}
	}
	t := roundtrip.New(store, roundtrip.Options{Transport: e.origin})
	return t, func() { _ = t.Close(); _ = store.Close(); _ = rdb.Close() }, nil
}

// awaitNear returns once the store's near tier is subscribed, so that the
// warm-up fills it.
func awaitNear(store *rediscache.Store) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		st, err := store.Stats(ctx)
		if err == nil && st.NearLive {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("near tier not subscribed: %v", err)
		}
		time.Sleep(time.Millisecond) // polling interval
	}
}
