package rediscache_test

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/fleetcache/fleetcache/policy"
	"github.com/fleetcache/fleetcache/rediscache"
	"github.com/redis/go-redis/v9"
)

// exampleRedis stands in for a real Redis in the examples.
func exampleRedis() *miniredis.Miniredis {
	m, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	return m
}

func exampleResponse(url, body string) *policy.Response {
	return &policy.Response{
		Method: "GET", URL: url, Status: 200, ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Cache-Control": {"max-age=60"}},
		Body:   []byte(body),
	}
}

func ExampleNew() {
	m := exampleRedis()
	defer m.Close()
	client := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer client.Close()

	// The options only seed orders:config; whatever it already holds wins.
	store, err := rediscache.New(client, rediscache.Options{Prefix: "orders:", MaxEntries: 50_000})
	if err != nil {
		fmt.Println(err)
		return
	}
	st, err := store.Stats(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(st.MaxEntries, st.Shards)

	_, err = rediscache.New(client, rediscache.Options{Prefix: "{orders}"})
	fmt.Println(err)
	// Output:
	// 50000 16
	// rediscache: invalid prefix: "{orders}" has '{'; use only A-Z a-z 0-9 _ . : -
}

func ExampleOpen() {
	m := exampleRedis()
	defer m.Close()

	// The URL every service is configured with. A cluster is given as
	// redis://host1:port1?addr=host2:port2&addr=host3:port3.
	store, err := rediscache.Open(context.Background(), "redis://"+m.Addr()+"/0", rediscache.Options{Prefix: "orders:"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()
	fmt.Println(m.HGet("orders:config", "max_entries"))
	// Output: 100000
}

func ExampleStore_Put() {
	m := exampleRedis()
	defer m.Close()
	ctx := context.Background()
	store, _ := rediscache.Open(ctx, "redis://"+m.Addr(), rediscache.Options{Prefix: "orders:"})
	defer store.Close()

	// A response that varies on Accept-Encoding.
	resp := exampleResponse("https://api.example.com/orders/42", `{"id":42}`)
	resp.Vary, resp.VaryValues = []string{"Accept-Encoding"}, []string{"gzip"}
	if _, err := store.Put(ctx, resp, 10*time.Minute, true); err != nil {
		fmt.Println(err)
		return
	}

	// A caller that does not know the URL varies learns the Vary names...
	got, vary, _ := store.Get(ctx, resp.URL, "")
	fmt.Println(got == nil, vary)
	// ... and asks again for its variant.
	got, _, _ = store.Get(ctx, resp.URL, policy.Variant(vary, []string{"gzip"}))
	fmt.Println(got.Status, string(got.Body))
	// Output:
	// true [Accept-Encoding]
	// 200 {"id":42}
}

func ExampleStore_Purge() {
	m := exampleRedis()
	defer m.Close()
	ctx := context.Background()
	store, _ := rediscache.Open(ctx, "redis://"+m.Addr(), rediscache.Options{Prefix: "orders:"})
	defer store.Close()

	const url = "https://api.example.com/orders/42"
	for _, lang := range []string{"en", "fr"} {
		r := exampleResponse(url, lang)
		r.Vary, r.VaryValues = []string{"Accept-Language"}, []string{lang}
		_, _ = store.Put(ctx, r, time.Minute, true)
	}
	// A PUT to the URL invalidates every variant at once.
	if err := store.Purge(ctx, url); err != nil {
		fmt.Println(err)
		return
	}
	got, vary, _ := store.Get(ctx, url, policy.Variant([]string{"Accept-Language"}, []string{"en"}))
	fmt.Println(got == nil, vary == nil)
	// Output: true true
}

func ExampleStore_Stats() {
	m := exampleRedis()
	defer m.Close()
	ctx := context.Background()
	store, _ := rediscache.Open(ctx, "redis://"+m.Addr(), rediscache.Options{Prefix: "orders:", MaxEntries: 2, Shards: 1})
	defer store.Close()

	for _, id := range []string{"1", "2", "3"} {
		_, _ = store.Put(ctx, exampleResponse("https://api.example.com/orders/"+id, "{}"), time.Minute, true)
	}
	st, err := store.Stats(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("entries=%d evictions=%d max_entries=%d\n", st.Entries, st.Evictions, st.MaxEntries)
	// An operator retunes every instance at once (within 5 s):
	//	redis-cli HSET orders:config max_entries 50000
	// Output: entries=2 evictions=1 max_entries=2
}
