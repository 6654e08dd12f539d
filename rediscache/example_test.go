package rediscache_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
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

// A service that cannot run without its cache fails at start; one that can
// serves uncached until Redis answers.
func ExampleOpen_unavailable() {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	deadRedis := "redis://" + ln.Addr().String()
	ln.Close() // nothing listens there any more

	ctx, cancel := context.WithTimeout(context.Background(), time.Second) // Open returns by then
	defer cancel()
	store, err := rediscache.Open(ctx, deadRedis, rediscache.Options{Prefix: "orders:"})
	if errors.Is(err, rediscache.ErrUnavailable) {
		fmt.Println("Redis unavailable: starting uncached")
		client, _ := rediscache.NewClient(deadRedis) // connects lazily
		defer client.Close()
		store, err = rediscache.New(client, rediscache.Options{Prefix: "orders:"})
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()
	// Output: Redis unavailable: starting uncached
}

// A Redis URL without its scheme is the commonest slip; the error shows the
// form wanted.
func ExampleNewClient() {
	_, err := rediscache.NewClient("127.0.0.1:6380")
	fmt.Println(err)
	// Output: rediscache: Redis URL "127.0.0.1:6380" has no scheme; want redis://127.0.0.1:6380, or one of redis://[user:password@]host:port[/db], rediss://... (TLS), unix:///path/to/redis.sock, or redis://host1:port1?addr=host2:port2 (a cluster)
}

// go-redis prints its own lines (a failed dial) to stderr; a service that
// logs with slog sends them there instead, once, early in main:
//
//	redis.SetLogger(rediscache.RedisLogger{Logger: logger, Level: slog.LevelDebug})
func ExampleRedisLogger() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		Level:       slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr { return withoutTime(a) },
	}))
	l := rediscache.RedisLogger{Logger: logger, Level: slog.LevelDebug}
	// What go-redis does with it on a failed dial:
	l.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts: %s", 5, "connection refused")
	// Output: level=DEBUG msg="connection pool: failed to dial after 5 attempts: connection refused" logger=go-redis
}

// withoutTime drops the time from the examples' log lines.
func withoutTime(a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// Close is safe to call twice, and a store used after it refuses.
func ExampleStore_Close() {
	m := exampleRedis()
	defer m.Close()
	store, _ := rediscache.Open(context.Background(), "redis://"+m.Addr(), rediscache.Options{Prefix: "orders:"})
	fmt.Println(store.Close(), store.Close())
	_, _, err := store.Get(context.Background(), "https://api.example.com/orders/42", "")
	fmt.Println(errors.Is(err, rediscache.ErrClosed))
	// Output:
	// <nil> <nil>
	// true
}

func ExampleStore_Clear() {
	m := exampleRedis()
	defer m.Close()
	ctx := context.Background()
	store, _ := rediscache.Open(ctx, "redis://"+m.Addr(), rediscache.Options{Prefix: "orders:"})
	defer store.Close()
	for _, id := range []string{"1", "2"} {
		_, _ = store.Put(ctx, exampleResponse("https://api.example.com/orders/"+id, "{}"), time.Minute, true)
	}
	// Every entry of the prefix goes, walking its own indexes (never KEYS).
	if err := store.Clear(ctx); err != nil {
		fmt.Println(err)
		return
	}
	st, _ := store.Stats(ctx)
	fmt.Println(st.Entries)
	// Output: 0
}

// An entry read back is checked: bytes that are not one decode to an error
// wrapping ErrCorrupt, never to a response.
func ExampleDecode() {
	b := rediscache.Encode(nil, exampleResponse("https://api.example.com/orders/42", `{"id":42}`))
	r, err := rediscache.Decode(b)
	fmt.Println(r.URL, string(r.Body), err)
	b[len(b)/2] ^= 1
	_, err = rediscache.Decode(b)
	fmt.Println(errors.Is(err, rediscache.ErrCorrupt))
	// Output:
	// https://api.example.com/orders/42 {"id":42} <nil>
	// true
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

// Delete removes one variant of a URL; Purge removes them all.
func ExampleStore_Delete() {
	m := exampleRedis()
	defer m.Close()
	ctx := context.Background()
	store, _ := rediscache.Open(ctx, "redis://"+m.Addr(), rediscache.Options{Prefix: "orders:"})
	defer store.Close()

	const url = "https://api.example.com/orders/42"
	vary := []string{"Accept-Language"}
	for _, lang := range []string{"en", "fr"} {
		r := exampleResponse(url, lang)
		r.Vary, r.VaryValues = vary, []string{lang}
		_, _ = store.Put(ctx, r, time.Minute, true)
	}
	if err := store.Delete(ctx, url, policy.Variant(vary, []string{"en"})); err != nil {
		fmt.Println(err)
		return
	}
	for _, lang := range []string{"en", "fr"} {
		got, _, _ := store.Get(ctx, url, policy.Variant(vary, []string{lang}))
		fmt.Println(lang, got != nil)
	}
	// Output:
	// en false
	// fr true
}

// The miss path of two processes of a fleet: the first claim takes the
// URL's lease, the second finds it held and waits for the fill, which
// stores the entry and ends the lease in one round trip.
func ExampleStore_Claim() {
	m := exampleRedis()
	defer m.Close()
	ctx := context.Background()
	process := func() *rediscache.Store {
		s, err := rediscache.Open(ctx, "redis://"+m.Addr(), rediscache.Options{Prefix: "orders:"})
		if err != nil {
			panic(err)
		}
		return s
	}
	a, b := process(), process()
	defer a.Close()
	defer b.Close()
	const url = "https://api.example.com/orders/42"

	_, _, lease, _ := a.Claim(ctx, url, nil, "", 5*time.Second, false)
	fmt.Println("a fetches:", lease.Mine)
	_, _, held, _ := b.Claim(ctx, url, nil, "", 5*time.Second, false)
	fmt.Println("b waits for a:", held.Holder == lease.Holder)

	filled := make(chan error)
	go func() { filled <- b.Wait(ctx, held) }()
	if _, err := a.Fill(ctx, lease, exampleResponse(url, `{"id":42}`), time.Minute, true); err != nil {
		fmt.Println(err)
	}
	if err := <-filled; err != nil {
		fmt.Println(err)
	}
	resp, _, _, _ := b.Claim(ctx, url, nil, "", 5*time.Second, false)
	fmt.Println("b reads:", string(resp.Body))
	// Output:
	// a fetches: true
	// b waits for a: true
	// b reads: {"id":42}
}

// After an answer that nobody else may be served (private, no-store, a
// server error), the holder marks the URL: for a few seconds its misses
// neither take the lease nor wait for one.
func ExampleStore_Release() {
	m := exampleRedis()
	defer m.Close()
	ctx := context.Background()
	s, err := rediscache.Open(ctx, "redis://"+m.Addr(), rediscache.Options{Prefix: "orders:"})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	const url = "https://api.example.com/me"
	_, _, lease, _ := s.Claim(ctx, url, nil, "", 5*time.Second, false)
	if err := s.Release(ctx, lease, true); err != nil {
		fmt.Println(err)
	}
	_, _, next, _ := s.Claim(ctx, url, nil, "", 5*time.Second, false)
	fmt.Println("leased:", next.Mine, "marked:", next.Marked)
	// Output: leased: false marked: true
}

// Every representation of a product, whatever its URL, goes with one call.
func ExampleStore_PurgeTag() {
	m := exampleRedis()
	defer m.Close()
	ctx := context.Background()
	store, _ := rediscache.Open(ctx, "redis://"+m.Addr(), rediscache.Options{Prefix: "shop:"})
	defer store.Close()

	for _, u := range []string{"https://shop.example/products/42", "https://shop.example/search?q=42", "https://shop.example/products/7"} {
		r := exampleResponse(u, "page")
		if u != "https://shop.example/products/7" {
			r.Tags = []string{"product-42"}
		}
		_, _ = store.Put(ctx, r, time.Minute, true)
	}
	n, err := store.PurgeTag(ctx, "product-42")
	st, _ := store.Stats(ctx)
	fmt.Println(n, err, st.Entries)
	// Output: 2 <nil> 1
}

// A soft purge leaves the entry in place, stale from now on: it is
// revalidated with its validators, and still served on an origin error
// within its stale-if-error window.
func ExampleStore_SoftPurgeTag() {
	m := exampleRedis()
	defer m.Close()
	ctx := context.Background()
	store, _ := rediscache.Open(ctx, "redis://"+m.Addr(), rediscache.Options{Prefix: "shop:"})
	defer store.Close()

	r := exampleResponse("https://shop.example/products/42", "page")
	r.Tags = []string{"product-42"}
	_, _ = store.Put(ctx, r, time.Minute, true)
	n, _ := store.SoftPurgeTag(ctx, "product-42")
	got, _, _ := store.Get(ctx, r.URL, "")
	fmt.Println(n, got != nil, !got.Purged.IsZero())
	// Output: 1 true true
}

// PurgeURL is Purge with a count, and with the choice of a soft purge.
func ExampleStore_PurgeURL() {
	m := exampleRedis()
	defer m.Close()
	ctx := context.Background()
	store, _ := rediscache.Open(ctx, "redis://"+m.Addr(), rediscache.Options{Prefix: "shop:"})
	defer store.Close()

	const url = "https://shop.example/products/42"
	for _, lang := range []string{"en", "fr"} {
		r := exampleResponse(url, lang)
		r.Vary, r.VaryValues = []string{"Accept-Language"}, []string{lang}
		_, _ = store.Put(ctx, r, time.Minute, true)
	}
	soft, _ := store.PurgeURL(ctx, url, true)
	hard, _ := store.PurgeURL(ctx, url, false)
	fmt.Println(soft, hard)
	// Output: 2 2
}

// With NearBytes, a store keeps the responses it reads and writes in
// process memory too: a hot hit costs no Redis command, and every change
// made through any store of the prefix reaches the tier through Redis
// pub/sub. Near tells a hit from memory from one from Redis.
func ExampleOptions_nearBytes() {
	m := exampleRedis()
	defer m.Close()
	ctx := context.Background()
	store, err := rediscache.Open(ctx, "redis://"+m.Addr(), rediscache.Options{Prefix: "orders:", NearBytes: 64 << 20})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()
	// The tier is used once its subscriptions are up (Stats.NearLive).
	for st, _ := store.Stats(ctx); !st.NearLive; st, _ = store.Stats(ctx) {
		time.Sleep(time.Millisecond)
	}

	resp := exampleResponse("https://api.example.com/orders/42", `{"id":42}`)
	resp.RequestTime, resp.ResponseTime = time.Now(), time.Now()
	if _, err := store.Put(ctx, resp, 10*time.Minute, true); err != nil {
		fmt.Println(err)
		return
	}
	got, _, _ := store.Get(ctx, resp.URL, "")
	fmt.Println(string(got.Body), store.Near(got))

	// A purge (through this store or any other) reaches the tier.
	_ = store.Purge(ctx, resp.URL)
	got, _, _ = store.Get(ctx, resp.URL, "")
	fmt.Println(got == nil)
	// Output:
	// {"id":42} true
	// true
}
