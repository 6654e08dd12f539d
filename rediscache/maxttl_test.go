package rediscache_test

import (
	"context"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/internal/redistest"
	"github.com/fleetcache/fleetcache/policy"
	"github.com/fleetcache/fleetcache/rediscache"
)

// RFC 9111 §1.2.2 lets a lifetime be as long as the largest Duration; the
// store keeps no key in Redis for longer than MaxTTL all the same.
func TestPut_RFC9111_1_2_2_TTLCappedAtMaxTTL(t *testing.T) {
	client := redistest.Server(t).Client(t)
	ctx := context.Background()
	store, err := rediscache.New(client, rediscache.Options{Prefix: "ttl:"})
	if err != nil {
		t.Fatal(err)
	}
	resp := &policy.Response{
		Method: "GET", URL: "http://example.com/forever", Status: 200, ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Expires": {"Fri, 31 Dec 9999 23:59:59 GMT"}, "Vary": {"Accept"}},
		Body:   []byte("forever"), Vary: []string{"Accept"}, VaryValues: []string{"text/html"},
	}
	if kept, err := store.Put(ctx, resp, math.MaxInt64, true); !kept || err != nil {
		t.Fatalf("Put: kept %v, err %v", kept, err)
	}
	got, _, err := store.Get(ctx, resp.URL, policy.Variant(resp.Vary, resp.VaryValues))
	if err != nil || got == nil || string(got.Body) != "forever" {
		t.Fatalf("Get: %v, %v", got, err)
	}
	keys, err := client.Keys(ctx, "ttl:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	withTTL := 0
	for _, k := range keys {
		ttl, err := client.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl < 0 {
			continue // config and the LRU indexes have no TTL
		}
		withTTL++
		if ttl > rediscache.MaxTTL || ttl < rediscache.MaxTTL-time.Minute {
			t.Errorf("%s: PTTL %v, want MaxTTL (%v)", k, ttl, rediscache.MaxTTL)
		}
	}
	if withTTL < 2 {
		t.Errorf("%d keys with a TTL among %q, want the entry and its URL's Vary index", withTTL, keys)
	}
}
