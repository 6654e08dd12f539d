package fleetcachetest_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/fleetcachetest"
	"github.com/fleetcache/fleetcache/policy"
	"github.com/fleetcache/fleetcache/roundtrip"
)

// get sends a GET through c and returns its Cache-Status member.
func get(t *testing.T, c *fleetcachetest.Cache, url string) policy.CacheStatus {
	t.Helper()
	resp, err := c.Client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	members, err := policy.ParseCacheStatus(resp.Header)
	if err != nil || len(members) == 0 {
		t.Fatalf("Cache-Status %q: %v", resp.Header.Get("Cache-Status"), err)
	}
	return members[len(members)-1].CacheStatus
}

// The traps of testing with a clock of one's own, which one clock removes:
// an origin whose Date is the real time made every response stale on
// arrival once the cache's clock had moved, and Redis kept entries by its
// own time.
func TestAdvance_MovesTheCacheRedisAndTheOriginTogether(t *testing.T) {
	cache := fleetcachetest.New(t, fleetcachetest.Options{})
	origin := cache.Origin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=2")
		if r.URL.Path == "/etag" {
			w.Header().Set("ETag", `"v"`)
			if r.Header.Get("If-None-Match") == `"v"` {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		fmt.Fprint(w, "body")
	}))
	get(t, cache, origin.URL+"/etag")
	get(t, cache, origin.URL+"/plain")
	cache.Advance(3 * time.Second)

	// A response with a validator is kept in Redis a day past its
	// freshness for a cheap 304; once revalidated it is fresh again,
	// not revalidated forever.
	if cs := get(t, cache, origin.URL+"/etag"); cs.Fwd != "stale" || cs.FwdStatus != 304 || !cs.Stored || cs.TTL != 2*time.Second {
		t.Errorf("stale entry with an ETag: %s, want fwd=stale; fwd-status=304; ttl=2; stored", cs.String("fleetcache"))
	}
	if cs := get(t, cache, origin.URL+"/etag"); !cs.Hit {
		t.Errorf("after the 304: %s, want a hit", cs.String("fleetcache"))
	}
	// One without is gone from Redis when its freshness ends.
	if cs := get(t, cache, origin.URL+"/plain"); cs.Fwd != "uri-miss" || !cs.Stored {
		t.Errorf("stale entry without a validator: %s, want fwd=uri-miss and stored again", cs.String("fleetcache"))
	}
	// A new response after the clock moved is fresh on arrival.
	if cs := get(t, cache, origin.URL+"/new"); !cs.Stored {
		t.Errorf("a new response after Advance: %s, want stored", cs.String("fleetcache"))
	}
	if ttl := cache.Redis.TTL("test:config"); ttl != 0 {
		t.Errorf("the config got a TTL: %v", ttl)
	}
}

func TestHandler_DateFollowsTheClock(t *testing.T) {
	start := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	cache := fleetcachetest.New(t, fleetcachetest.Options{Start: start})
	origin := cache.Origin(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	cache.Advance(time.Hour)
	resp, err := http.Get(origin.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := resp.Header.Get("Date"), "Wed, 02 Jan 2030 04:04:05 GMT"; got != want || !cache.Now().Equal(start.Add(time.Hour)) {
		t.Errorf("Date %q, want %q; Now %v", got, want, cache.Now())
	}
}

// recorder is a testing.TB that keeps what a helper reports.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func TestExpectOutcomes_NamesEachRequestWhenTheyDiffer(t *testing.T) {
	cache := fleetcachetest.New(t, fleetcachetest.Options{})
	origin := cache.Origin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
	}))
	get(t, cache, origin.URL+"/a")
	get(t, cache, origin.URL+"/a")

	rec := &recorder{TB: t}
	cache.ExpectOutcomes(rec, roundtrip.OutcomeMiss, roundtrip.OutcomeMiss)
	if len(rec.errors) != 1 {
		t.Fatalf("reported %q, want one error", rec.errors)
	}
	for _, want := range []string{
		"outcomes [miss hit], want [miss miss]",
		"GET " + origin.URL + "/a: miss (fleetcache; fwd=uri-miss; fwd-status=200; stored)",
		"GET " + origin.URL + "/a: hit (fleetcache; hit; ttl=60)",
	} {
		if !strings.Contains(rec.errors[0], want) {
			t.Errorf("report %q lacks %q", rec.errors[0], want)
		}
	}

	// The next check starts after what this one saw, failed or not.
	rec.errors = nil
	cache.ExpectOutcomes(rec)
	get(t, cache, origin.URL+"/a")
	cache.ExpectOutcomes(rec, roundtrip.OutcomeHit)
	if len(rec.errors) != 0 {
		t.Errorf("reported %q", rec.errors)
	}
	if n := len(cache.Results()); n != 3 {
		t.Errorf("%d results, want 3", n)
	}
}

// The options are the production ones, with the test's clock; a hook of
// the test's own still hears every result.
func TestNew_OptionsAreKept(t *testing.T) {
	var heard []roundtrip.Outcome
	cache := fleetcachetest.New(t, fleetcachetest.Options{
		Transport: roundtrip.Options{Name: "catalog-cache", OnResult: func(_ *http.Request, r roundtrip.Result) { heard = append(heard, r.Outcome) }},
	})
	origin := cache.Origin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
	}))
	resp, err := cache.Client.Get(origin.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if cs := resp.Header.Get("Cache-Status"); !strings.HasPrefix(cs, "catalog-cache; ") {
		t.Errorf("Cache-Status %q, want the name given", cs)
	}
	if len(heard) != 1 || heard[0] != roundtrip.OutcomeMiss {
		t.Errorf("the test's own hook heard %v", heard)
	}
	if !cache.Redis.Exists("test:config") {
		t.Errorf("no test:config in Redis: %v", cache.Redis.Keys())
	}
}
