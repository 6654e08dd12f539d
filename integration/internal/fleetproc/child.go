package fleetproc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetcache/fleetcache/rediscache"
	"github.com/fleetcache/fleetcache/roundtrip"
)

// envConfig holds a child's Config, as JSON; its presence makes the process
// a child.
const envConfig = "FLEETPROC_CONFIG"

// RunChild serves commands on stdin and replies on stdout when the process
// was started by Start, then exits; in any other process it returns at once.
func RunChild() {
	raw, ok := os.LookupEnv(envConfig)
	if !ok {
		return
	}
	var cfg Config
	err := json.Unmarshal([]byte(raw), &cfg)
	if err == nil {
		err = Serve(cfg, os.Stdin, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleetproc child:", err)
		os.Exit(1)
	}
	// Exit here, before the testing package prints its verdict on stdout.
	os.Exit(0)
}

// Serve is a child's life: connect to Redis, say Ready, then run each
// Command read from in and write its Reply to out, until in ends. It closes
// the transport or the middleware's cache (which stops its background
// work) before returning.
func Serve(cfg Config, in io.Reader, out io.Writer) (err error) {
	ctx := context.Background()
	store, err := rediscache.Open(ctx, cfg.Redis, rediscache.Options{Prefix: cfg.Prefix, NearBytes: cfg.NearBytes})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, store.Close()) }()
	if cfg.NearBytes > 0 {
		if err := awaitNear(ctx, store); err != nil {
			return err
		}
	}

	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	var panicking atomic.Bool
	var client *http.Client
	var stats func() roundtrip.Stats
	var stop func() error
	if cfg.Middleware {
		if client, stats, stop, err = middlewareMember(cfg, store, now, &panicking); err != nil {
			return err
		}
	} else {
		client, stats, stop = transportMember(cfg, store, now)
	}
	defer func() { err = errors.Join(err, stop()) }()

	enc, dec := json.NewEncoder(out), json.NewDecoder(in)
	if err := enc.Encode(Reply{Ready: true}); err != nil {
		return err
	}
	for {
		var c Command
		if err := dec.Decode(&c); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read command: %w", err)
		}
		skew.Store(int64(c.Skew))
		panicking.Store(c.Panic)
		var r Reply
		if c.Watch {
			var res Result
			res, r.Watched = watch(client, cfg.ID, c.URL)
			r.Results = []Result{res}
		} else {
			r.Results = burst(client, cfg.ID, c)
		}
		r.Stats = stats()
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
}

// awaitNear returns once the store's near tier is subscribed.
func awaitNear(ctx context.Context, store *rediscache.Store) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := store.Stats(ctx)
		if err == nil && st.NearLive {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("near tier not subscribed after 10s (stats %+v, %v)", st, err)
		}
		time.Sleep(time.Millisecond) // polling interval
	}
}

// watch GETs url until a response is not a hit from the near tier, for at
// most WatchLimit.
func watch(client *http.Client, id int, url string) (Result, Watched) {
	var w Watched
	deadline := time.Now().Add(WatchLimit)
	for {
		w.MissAt = time.Now()
		r := send(client, id, http.MethodGet, url)
		if !strings.Contains(r.CacheStatus, "detail=near") || r.Err != "" || time.Now().After(deadline) {
			return r, w
		}
		w.NearHits++
		// A polling interval: a loop without one would take a core from
		// the processes whose speed it measures.
		time.Sleep(50 * time.Microsecond)
	}
}

// burst runs c.N callers at once and returns what each got.
func burst(client *http.Client, id int, c Command) []Result {
	results := make([]Result, c.N)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			<-start
			results[i] = send(client, id, c.Method, c.URL)
		})
	}
	close(start)
	wg.Wait()
	return results
}

// transportMember is a member that puts a roundtrip.Transport in front of
// the origin.
func transportMember(cfg Config, store *rediscache.Store, now func() time.Time) (*http.Client, func() roundtrip.Stats, func() error) {
	origin := &http.Transport{MaxIdleConnsPerHost: 64}
	tr := roundtrip.New(store, roundtrip.Options{
		Transport:    origin,
		LeaseTimeout: cfg.LeaseTimeout,
		StoreTimeout: cfg.StoreTimeout,
		Now:          now,
	})
	return &http.Client{Transport: tr}, tr.Stats, func() error {
		err := tr.Close()
		origin.CloseIdleConnections()
		return err
	}
}

// Get sends one GET for url through client, as process id, and reads the
// whole body.
func Get(client *http.Client, id int, url string) Result {
	return send(client, id, http.MethodGet, url)
}

// send sends one request ("" is GET) for url through client, as process
// id, and reads the whole body.
func send(client *http.Client, id int, method, url string) (r Result) {
	r.Proc = id
	begin := time.Now()
	defer func() { r.Latency, r.Done = time.Since(begin), time.Now() }()
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	req.Header.Set(ProcHeader, strconv.Itoa(id))
	resp, err := client.Do(req)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer resp.Body.Close()
	r.Status, r.CacheStatus = resp.StatusCode, resp.Header.Get("Cache-Status")
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	r.Len, r.Sum = int(n), hex.EncodeToString(h.Sum(nil))
	if err != nil {
		r.Err = "body: " + err.Error()
	}
	return r
}
