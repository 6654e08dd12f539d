package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"runtime"
	"slices"
	"sync"
	"time"

	redigo "github.com/gomodule/redigo/redis"
	"github.com/gregjones/httpcache"
	httpcacheredis "github.com/gregjones/httpcache/redis"
	"github.com/redis/go-redis/v9"
)

// env is what every implementation of a run shares: the same Redis, the same
// transport to the same origin, and a key prefix unique to the run.
type env struct {
	redisURL string
	prefix   string
	origin   http.RoundTripper
}

// impl is one HTTP client stack under test. open returns its transport and
// the function that releases what it holds. An impl that is named runs only
// in the scenarios that name it.
type impl struct {
	name  string
	open  func(e env) (http.RoundTripper, func(), error)
	named bool
}

// The implementations compared, in the order of the tables.
var impls = []impl{
	{"direct", openDirect, false},
	{"floor", openFloor, false},
	{"floor-redigo", openFloorRedigo, false},
	{"fleetcache", openFleetcache, false},
	{"fleetcache-near", openFleetcacheNear, false},
	{"httpcache-memory", openHTTPCacheMemory, true},
	{"httpcache", openHTTPCache, false},
	{"httpcache-pool", openHTTPCachePool, false},
}

func implNames() []string {
	names := make([]string, len(impls))
	for i, im := range impls {
		names[i] = im.name
	}
	return names
}

func findImpl(name string) (impl, error) {
	i := slices.IndexFunc(impls, func(im impl) bool { return im.name == name })
	if i < 0 {
		return impl{}, fmt.Errorf("unknown implementation %q (known: %v)", name, implNames())
	}
	return impls[i], nil
}

// newOriginTransport is the transport every implementation reaches the origin
// through. The default transport keeps two idle connections per host, which
// would turn every concurrent miss into a new TCP connection.
func newOriginTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 1024
	return t
}

// openDirect is no cache at all: every request goes to the origin.
func openDirect(e env) (http.RoundTripper, func(), error) {
	return e.origin, func() {}, nil
}

func newGoRedis(redisURL string) (*redis.Client, error) {
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, fmt.Errorf("redis URL: %w", err)
	}
	return redis.NewClient(opt), nil
}

// floor is the least any Redis-backed HTTP cache can do on a hit: one GET of
// a response serialised in wire format, parsed back with http.ReadResponse.
// No freshness decision, no LRU, no Age. A miss fetches from the origin and
// stores the wire form, so that the warm-up fills it like the real caches.
// It runs on two clients (go-redis and redigo: the classic cache on redigo
// ran faster than go-redis on hot hits), and the floor is the faster one.
type floor struct {
	name   string
	kv     wireStore
	prefix string
	origin http.RoundTripper
}

// wireStore is the one GET and the one SET a floor sends.
type wireStore interface {
	get(ctx context.Context, key string) (b []byte, found bool, err error)
	set(ctx context.Context, key string, b []byte) error
}

// floorTTL bounds how long the floor's keys outlive a run on a Redis given
// with -redis.
const floorTTL = time.Hour

func openFloor(e env) (http.RoundTripper, func(), error) {
	rdb, err := newGoRedis(e.redisURL)
	if err != nil {
		return nil, nil, err
	}
	return &floor{name: "floor", kv: goRedisKV{rdb}, prefix: e.prefix + "floor:", origin: e.origin}, func() { _ = rdb.Close() }, nil
}

// openFloorRedigo is the floor on a redigo.Pool sized as httpcache-pool's.
func openFloorRedigo(e env) (http.RoundTripper, func(), error) {
	pool := newRedigoPool(e.redisURL)
	return &floor{name: "floor-redigo", kv: redigoKV{pool}, prefix: e.prefix + "floor-redigo:", origin: e.origin}, func() { _ = pool.Close() }, nil
}

func (f *floor) RoundTrip(req *http.Request) (*http.Response, error) {
	key := f.prefix + req.URL.String()
	b, found, err := f.kv.get(req.Context(), key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.name, err)
	}
	if found {
		return http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), req)
	}
	resp, err := f.origin.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	wire, err := httputil.DumpResponse(resp, true)
	_ = resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: read origin response: %w", f.name, err)
	}
	if err := f.kv.set(req.Context(), key, wire); err != nil {
		return nil, fmt.Errorf("%s: %w", f.name, err)
	}
	return http.ReadResponse(bufio.NewReader(bytes.NewReader(wire)), req)
}

type goRedisKV struct{ rdb *redis.Client }

func (k goRedisKV) get(ctx context.Context, key string) ([]byte, bool, error) {
	b, err := k.rdb.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	return b, err == nil, err
}

func (k goRedisKV) set(ctx context.Context, key string, b []byte) error {
	return k.rdb.Set(ctx, key, b, floorTTL).Err()
}

type redigoKV struct{ pool *redigo.Pool }

func (k redigoKV) get(_ context.Context, key string) ([]byte, bool, error) {
	c := k.pool.Get()
	defer c.Close()
	b, err := redigo.Bytes(c.Do("GET", key))
	if errors.Is(err, redigo.ErrNil) {
		return nil, false, nil
	}
	return b, err == nil, err
}

func (k redigoKV) set(_ context.Context, key string, b []byte) error {
	c := k.pool.Get()
	defer c.Close()
	_, err := c.Do("SET", key, b, "EX", int(floorTTL/time.Second))
	return err
}

// newRedigoPool is the pool of floor-redigo and httpcache-pool: as many
// idle connections as go-redis keeps by default, so that neither client
// wins by keeping more.
func newRedigoPool(redisURL string) *redigo.Pool {
	return &redigo.Pool{
		MaxIdle:     10 * runtime.GOMAXPROCS(0),
		IdleTimeout: time.Minute,
		DialContext: func(ctx context.Context) (redigo.Conn, error) {
			return redigo.DialURLContext(ctx, redisURL)
		},
	}
}

// openHTTPCacheMemory is github.com/gregjones/httpcache in process memory
// (NewMemoryCacheTransport): what a service without a shared cache has,
// one cache per process.
func openHTTPCacheMemory(e env) (http.RoundTripper, func(), error) {
	t := httpcache.NewMemoryCacheTransport()
	t.Transport = e.origin
	return t, func() {}, nil
}

// openHTTPCache is github.com/gregjones/httpcache with its Redis backend as
// it ships: the backend wraps one redigo connection, which is not safe for
// concurrent use, so every cache operation holds a mutex.
func openHTTPCache(e env) (http.RoundTripper, func(), error) {
	conn, err := redigo.DialURL(e.redisURL)
	if err != nil {
		return nil, nil, fmt.Errorf("httpcache: %w", err)
	}
	t := httpcache.NewTransport(&lockedCache{c: httpcacheredis.NewWithClient(conn)})
	t.Transport = e.origin
	return t, func() { _ = conn.Close() }, nil
}

// lockedCache serialises the calls to a cache that is not safe for
// concurrent use.
type lockedCache struct {
	mu sync.Mutex
	c  httpcache.Cache
}

func (l *lockedCache) Get(key string) ([]byte, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.c.Get(key)
}

func (l *lockedCache) Set(key string, b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.c.Set(key, b)
}

func (l *lockedCache) Delete(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.c.Delete(key)
}

// openHTTPCachePool is github.com/gregjones/httpcache with the Redis backend
// rewritten to take a connection from a redigo.Pool for every call: what a
// careful user of the classic cache does under concurrency.
func openHTTPCachePool(e env) (http.RoundTripper, func(), error) {
	pool := newRedigoPool(e.redisURL)
	t := httpcache.NewTransport(poolCache{pool})
	t.Transport = e.origin
	return t, func() { _ = pool.Close() }, nil
}

// poolCache is httpcache/redis with a pool: the same commands and keys.
type poolCache struct{ pool *redigo.Pool }

// httpcacheKey is the key layout of httpcache/redis.
func httpcacheKey(key string) string { return "rediscache:" + key }

func (p poolCache) Get(key string) ([]byte, bool) {
	c := p.pool.Get()
	defer c.Close()
	b, err := redigo.Bytes(c.Do("GET", httpcacheKey(key)))
	return b, err == nil
}

func (p poolCache) Set(key string, b []byte) {
	c := p.pool.Get()
	defer c.Close()
	_, _ = c.Do("SET", httpcacheKey(key), b)
}

func (p poolCache) Delete(key string) {
	c := p.pool.Get()
	defer c.Close()
	_, _ = c.Do("DEL", httpcacheKey(key))
}
