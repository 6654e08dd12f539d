package rediscache_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fleetcache/fleetcache/rediscache"
)

func ExampleStore_Inspect() {
	m := exampleRedis()
	defer m.Close()
	ctx := context.Background()
	store, _ := rediscache.Open(ctx, "redis://"+m.Addr(), rediscache.Options{Prefix: "orders:"})
	defer store.Close()

	const url = "https://api.example.com/orders/42"
	for _, lang := range []string{"en", "fr"} {
		r := exampleResponse(url, "order in "+lang)
		r.Vary, r.VaryValues = []string{"Accept-Language"}, []string{lang}
		_, _ = store.Put(ctx, r, time.Hour, true)
	}
	variants, err := store.Inspect(ctx, url)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, v := range variants {
		fmt.Println(v.Response.VaryValues, string(v.Response.Body), v.TTL)
	}
	// Unordered output:
	// [en] order in en 1h0m0s
	// [fr] order in fr 1h0m0s
}

func ExampleStore_SetLimit() {
	m := exampleRedis()
	defer m.Close()
	ctx := context.Background()
	store, _ := rediscache.Open(ctx, "redis://"+m.Addr(), rediscache.Options{Prefix: "orders:"})
	defer store.Close()

	// Every instance of every service applies it within 5 seconds.
	if err := store.SetLimit(ctx, rediscache.LimitMaxEntries, 50_000); err != nil {
		fmt.Println(err)
		return
	}
	c, _ := store.Config(ctx)
	fmt.Println(c.MaxEntries, c.Shards)

	fmt.Println(store.SetLimit(ctx, "shards", 4))
	other, _ := rediscache.New(store.Client(), rediscache.Options{Prefix: "typo:"})
	_, err := other.Config(ctx)
	fmt.Println(errors.Is(err, rediscache.ErrNoCache))
	// Output:
	// 50000 16
	// rediscache: "shards" is not a limit: want max_entries or max_bytes (shards is fixed for the life of a prefix)
	// true
}
