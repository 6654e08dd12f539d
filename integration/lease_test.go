package integration_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/internal/poll"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/fleetcache/fleetcache/coalesce"
	"github.com/fleetcache/fleetcache/internal/redistest"
	"github.com/fleetcache/fleetcache/rediscache"
)

// The fleet lease of rediscache on real servers: separate stores on
// separate clients stand for separate processes.

// checkLeaks fails the test if it leaves goroutines behind. Registered
// first, its cleanup runs last: after the servers and clients are gone.
func checkLeaks(t *testing.T) {
	t.Helper()
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// processStore returns a store of its own on client, closed when the test
// ends, as one process of a fleet has.
func processStore(t *testing.T, c redis.UniversalClient) *rediscache.Store {
	t.Helper()
	s, err := rediscache.New(c, rediscache.Options{Prefix: "lease:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// claim claims url's lease for ttl and fails the test on an error.
func claim(t *testing.T, s *rediscache.Store, url string, ttl time.Duration) coalesce.Lease {
	t.Helper()
	_, _, l, err := s.Claim(context.Background(), url, nil, "", ttl, false)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLease_Redis(t *testing.T) {
	for _, b := range redistest.Real {
		t.Run(b.Name, func(t *testing.T) {
			checkLeaks(t)
			r := b.Start(t)
			processes := make([]*rediscache.Store, 3)
			for i := range processes {
				processes[i] = processStore(t, r.NewClient(t, redis.UniversalOptions{}))
			}

			t.Run("only one of many concurrent claims takes the lease", func(t *testing.T) {
				const url, perProcess = "https://example.com/acquire", 25
				var wins atomic.Int32
				start := make(chan struct{})
				var wg sync.WaitGroup
				for _, s := range processes {
					for range perProcess {
						wg.Go(func() {
							<-start
							if claim(t, s, url, time.Minute).Mine {
								wins.Add(1)
							}
						})
					}
				}
				close(start)
				wg.Wait()
				if n := wins.Load(); n != 1 {
					t.Fatalf("%d of %d claims took the lease, want 1", n, perProcess*len(processes))
				}
			})

			t.Run("an expired lease passes to another and its old holder cannot end it", func(t *testing.T) {
				ctx := context.Background()
				const url, ttl = "https://example.com/expiry", 300 * time.Millisecond
				a, b, c := processes[0], processes[1], processes[2]
				old := claim(t, a, url, ttl)
				if !old.Mine {
					t.Fatalf("first claim = %+v, want the lease", old)
				}
				start := time.Now()
				var successor coalesce.Lease
				poll.Until(t, "taken over after expiry", ttl+2*time.Second, func() bool {
					successor = claim(t, b, url, time.Minute)
					return successor.Mine
				})
				if took := time.Since(start); took < ttl/2 {
					t.Fatalf("taken over after %v, before the %v lease could expire", took, ttl)
				}
				if err := a.Release(ctx, old, false); err != nil {
					t.Fatal(err)
				}
				if l := claim(t, c, url, time.Minute); l.Mine || l.Holder != successor.Holder {
					t.Fatalf("after the old holder's Release, claim = %+v; want the successor's lease held", l)
				}
				if err := b.Release(ctx, successor, false); err != nil {
					t.Fatal(err)
				}
				if l := claim(t, c, url, time.Minute); !l.Mine {
					t.Fatalf("after the holder's Release, claim = %+v; want the lease", l)
				}
			})

			t.Run("a fill wakes every waiter through one subscription per process", func(t *testing.T) {
				ctx := context.Background()
				// Several URLs spread the channels over the cluster's
				// masters, and every waiter must be woken.
				urls := []string{"https://example.com/a", "https://example.com/b", "https://example.com/c", "https://example.com/d"}
				const waitersEach = 2
				leader, waiters := processes[0], processes
				leases := make([]coalesce.Lease, len(urls))
				woke := make(chan error, len(urls)*len(waiters)*waitersEach)
				wait, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				for i, url := range urls {
					leases[i] = claim(t, leader, url, time.Minute)
					if !leases[i].Mine {
						t.Fatalf("claim of %s = %+v", url, leases[i])
					}
					held := leases[i]
					held.Mine = false
					for _, s := range waiters {
						for range waitersEach {
							go func() { woke <- s.Wait(wait, held) }()
						}
					}
				}
				for _, url := range urls {
					channel := leader.FillChannel(url)
					poll.Until(t, "one subscription per process on "+channel, 5*time.Second, func() bool {
						return r.Subscribers(t, channel) == int64(len(waiters))
					})
				}
				for i, url := range urls {
					if kept, err := leader.Fill(ctx, leases[i], cacheResponse(url, []byte("body")), time.Minute, true); err != nil || !kept {
						t.Fatalf("Fill = %v, %v", kept, err)
					}
				}
				for range cap(woke) {
					if err := <-woke; err != nil {
						t.Fatalf("Wait: %v", err)
					}
				}
				for _, url := range urls {
					channel := leader.FillChannel(url)
					poll.Until(t, "unsubscribed after the last wait", 5*time.Second, func() bool {
						return r.Subscribers(t, channel) == 0
					})
				}
			})

			t.Run("a waiter whose holder died returns within the lease TTL and a poll", func(t *testing.T) {
				ctx := context.Background()
				const url, ttl = "https://example.com/dead", 300 * time.Millisecond
				held := claim(t, processes[0], url, ttl)
				if !held.Mine {
					t.Fatalf("claim = %+v", held)
				}
				held.Mine = false
				start := time.Now()
				wait, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				if err := processes[1].Wait(wait, held); err != nil {
					t.Fatalf("Wait: %v", err)
				}
				took := time.Since(start)
				// The slack covers a loaded two-core test machine.
				if took < ttl/2 || took > ttl+100*time.Millisecond+500*time.Millisecond {
					t.Fatalf("Wait returned after %v; want about the lease TTL %v plus at most one poll", took, ttl)
				}
			})
		})
	}
}

func TestLease_RedisKilled(t *testing.T) {
	for _, b := range redistest.Real {
		t.Run(b.Name, func(t *testing.T) {
			checkLeaks(t)
			ctx := context.Background()
			r := b.Start(t)
			s := processStore(t, r.NewClient(t, redis.UniversalOptions{}))
			const url = "https://example.com/killed"
			held := claim(t, s, url, time.Minute)
			held.Mine = false // as a peer sees it

			const budget = 2 * time.Second
			wait, cancel := context.WithTimeout(ctx, budget)
			defer cancel()
			waited := make(chan error, 1)
			go func() { waited <- s.Wait(wait, held) }()
			poll.Until(t, "the waiter subscribed", 5*time.Second, func() bool {
				return r.Subscribers(t, s.FillChannel(url)) == 1
			})

			r.Kill(t)
			start := time.Now()
			tests := []struct {
				name string
				call func(ctx context.Context) error
			}{
				{"a Wait in progress", func(context.Context) error { return <-waited }},
				{"a new Wait", func(ctx context.Context) error { return s.Wait(ctx, held) }},
				{"Claim", func(ctx context.Context) error {
					_, _, _, err := s.Claim(ctx, url+"2", nil, "", time.Minute, false)
					return err
				}},
			}
			for _, tt := range tests {
				err := tt.call(wait)
				t.Logf("%s: %v after the kill: %v", tt.name, time.Since(start), err)
				if err == nil {
					t.Errorf("%s: no error with Redis killed", tt.name)
				}
				if took := time.Since(start); took > budget+500*time.Millisecond {
					t.Errorf("%s: returned %v after the kill, past its context (%v): %v", tt.name, took, budget, err)
				}
			}
		})
	}
}
