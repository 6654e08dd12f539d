package integration_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/fleetcache/fleetcache/coalesce"
	"github.com/fleetcache/fleetcache/internal/redistest"
)

// checkLeaks fails the test if it leaves goroutines behind. Registered
// first, its cleanup runs last: after the servers and clients are gone.
func checkLeaks(t *testing.T) {
	t.Helper()
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// fleetOf returns a Fleet closed when the test ends.
func fleetOf(t *testing.T, c redis.UniversalClient, opts coalesce.FleetOptions) *coalesce.Fleet {
	t.Helper()
	f := coalesce.NewFleet(c, opts)
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return f
}

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s within %v", what, within)
		}
		<-tick.C
	}
}

// keys of one URL, sharing a hash tag as the store lays them out.
func keys(tag string) (lease, channel string) {
	return "lock:{" + tag + "}:u", "fill:{" + tag + "}:u"
}

func TestFleet_Redis(t *testing.T) {
	for _, b := range redistest.Real {
		t.Run(b.Name, func(t *testing.T) {
			checkLeaks(t)
			r := b.Start(t)
			newClient := func() redis.UniversalClient { return r.NewClient(t, redis.UniversalOptions{}) }
			// Separate clients and Fleets stand for separate processes.
			processes := make([]redis.UniversalClient, 3)
			for i := range processes {
				processes[i] = newClient()
			}

			t.Run("only one of many concurrent Acquires wins", func(t *testing.T) {
				lease, _ := keys("acquire")
				const perProcess = 25
				var wins atomic.Int32
				start := make(chan struct{})
				var wg sync.WaitGroup
				for _, c := range processes {
					f := fleetOf(t, c, coalesce.FleetOptions{})
					for range perProcess {
						wg.Go(func() {
							<-start
							_, ok, err := f.Acquire(context.Background(), lease, time.Minute)
							if err != nil {
								t.Error(err)
							}
							if ok {
								wins.Add(1)
							}
						})
					}
				}
				close(start)
				wg.Wait()
				if n := wins.Load(); n != 1 {
					t.Fatalf("%d of %d Acquires won, want 1", n, perProcess*len(processes))
				}
			})

			t.Run("an expired lease passes to another and its old owner cannot release it", func(t *testing.T) {
				ctx := context.Background()
				lease, _ := keys("expiry")
				const ttl = 300 * time.Millisecond
				a := fleetOf(t, processes[0], coalesce.FleetOptions{})
				b := fleetOf(t, processes[1], coalesce.FleetOptions{})
				c := fleetOf(t, processes[2], coalesce.FleetOptions{})

				old, ok, err := a.Acquire(ctx, lease, ttl)
				if err != nil || !ok {
					t.Fatalf("Acquire = %v, %v", ok, err)
				}
				start := time.Now()
				var successor *coalesce.Lease
				waitUntil(t, "taken over after expiry", ttl+2*time.Second, func() bool {
					l, ok, err := b.Acquire(ctx, lease, time.Minute)
					if err != nil {
						t.Fatal(err)
					}
					successor = l
					return ok
				})
				if took := time.Since(start); took < ttl/2 {
					t.Fatalf("taken over after %v, before the %v lease could expire", took, ttl)
				}

				if err := old.Release(ctx); err != nil {
					t.Fatal(err)
				}
				if _, ok, err := c.Acquire(ctx, lease, time.Minute); err != nil || ok {
					t.Fatalf("after the old owner's Release, Acquire = %v, %v; want the successor's lease held", ok, err)
				}
				if err := successor.Release(ctx); err != nil {
					t.Fatal(err)
				}
				if _, ok, err := c.Acquire(ctx, lease, time.Minute); err != nil || !ok {
					t.Fatalf("after the owner's Release, Acquire = %v, %v; want the lease", ok, err)
				}
			})

			t.Run("Fill wakes every watcher through the notification", func(t *testing.T) {
				ctx := context.Background()
				// An hour-long poll, and the watched leases stay held: only the
				// notification can end these waits. Several hash tags spread
				// the channels over the cluster's masters.
				opts := coalesce.FleetOptions{PollInterval: time.Hour}
				tags := []string{"a", "b", "c", "d", "e", "f"}
				const watchersEach = 2
				leader := fleetOf(t, processes[0], opts)
				var waiters []*coalesce.Fleet
				for _, c := range processes {
					waiters = append(waiters, fleetOf(t, c, opts))
				}

				var watches []*coalesce.Watch
				for _, tag := range tags {
					lease, channel := keys("fill-" + tag)
					if _, ok, err := leader.Acquire(ctx, lease, time.Minute); err != nil || !ok {
						t.Fatalf("Acquire = %v, %v", ok, err)
					}
					for _, f := range waiters {
						for range watchersEach {
							watches = append(watches, f.Watch(ctx, channel, lease))
						}
					}
					if n := r.Subscribers(t, channel); n != int64(len(waiters)) {
						t.Fatalf("%s has %d subscribers, want one per process (%d)", channel, n, len(waiters))
					}
				}

				woke := make(chan error, len(watches))
				wait, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				for _, w := range watches {
					go func() { woke <- w.Wait(wait) }()
				}
				for _, tag := range tags {
					// Another lease in the same slot fills the channel.
					other, channel := keys("fill-" + tag)
					other += ":other"
					l, ok, err := leader.Acquire(ctx, other, time.Minute)
					if err != nil || !ok {
						t.Fatalf("Acquire = %v, %v", ok, err)
					}
					if err := l.Fill(ctx, channel); err != nil {
						t.Fatal(err)
					}
				}
				for range watches {
					if err := <-woke; err != nil {
						t.Fatalf("Wait: %v", err)
					}
				}

				for _, w := range watches {
					w.Stop()
				}
				for _, tag := range tags {
					_, channel := keys("fill-" + tag)
					waitUntil(t, "unsubscribed after the last Stop", 5*time.Second, func() bool {
						return r.Subscribers(t, channel) == 0
					})
				}
			})

			t.Run("a watcher whose leader died returns within the lease TTL and a poll", func(t *testing.T) {
				ctx := context.Background()
				lease, channel := keys("dead")
				const ttl, poll = 300 * time.Millisecond, 50 * time.Millisecond
				dead := fleetOf(t, processes[0], coalesce.FleetOptions{})
				waiter := fleetOf(t, processes[1], coalesce.FleetOptions{PollInterval: poll})

				if _, ok, err := dead.Acquire(ctx, lease, ttl); err != nil || !ok {
					t.Fatalf("Acquire = %v, %v", ok, err)
				}
				start := time.Now()
				w := waiter.Watch(ctx, channel, lease)
				defer w.Stop()
				wait, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				if err := w.Wait(wait); err != nil {
					t.Fatalf("Wait: %v", err)
				}
				took := time.Since(start)
				// The slack covers a loaded two-core test machine.
				if took < ttl/2 || took > ttl+poll+500*time.Millisecond {
					t.Fatalf("Wait returned after %v; want about the lease TTL %v plus at most one poll %v", took, ttl, poll)
				}
			})
		})
	}
}

func TestFleet_RedisKilled(t *testing.T) {
	for _, b := range redistest.Real {
		t.Run(b.Name, func(t *testing.T) {
			checkLeaks(t)
			ctx := context.Background()
			r := b.Start(t)
			kill := func() { r.Kill(t) }
			f := fleetOf(t, r.NewClient(t, redis.UniversalOptions{}), coalesce.FleetOptions{})
			lease, channel := keys("killed")
			if _, ok, err := f.Acquire(ctx, lease, time.Minute); err != nil || !ok {
				t.Fatalf("Acquire = %v, %v", ok, err)
			}

			const budget = 2 * time.Second
			wait, cancel := context.WithTimeout(ctx, budget)
			defer cancel()
			watching := f.Watch(wait, channel, lease)
			defer watching.Stop()
			waited := make(chan error, 1)
			go func() { waited <- watching.Wait(wait) }()

			kill()
			start := time.Now()
			tests := []struct {
				name string
				call func(ctx context.Context) error
			}{
				{"a Wait in progress", func(context.Context) error { return <-waited }},
				{"Watch and Wait", func(ctx context.Context) error {
					w := f.Watch(ctx, channel, lease)
					defer w.Stop()
					return w.Wait(ctx)
				}},
				{"Acquire", func(ctx context.Context) error {
					_, _, err := f.Acquire(ctx, lease+"2", time.Minute)
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

func TestFleet_NotificationsResumeAfterRedisRestarts(t *testing.T) {
	checkLeaks(t)
	ctx := context.Background()
	s := redistest.Server(t)
	client := s.Client(t)
	opts := coalesce.FleetOptions{PollInterval: time.Hour} // only a notification ends the wait
	waiter := fleetOf(t, client, opts)
	leader := fleetOf(t, client, opts)
	lease, channel := keys("restart")

	// A subscription made before the restart.
	before := waiter.Watch(ctx, channel, lease)
	defer before.Stop()
	s.Restart(t)

	if _, ok, err := leader.Acquire(ctx, lease, time.Minute); err != nil || !ok {
		t.Fatalf("Acquire after restart = %v, %v", ok, err)
	}
	// The Fleet resubscribes by itself; until it has, a Fill goes unheard.
	waitUntil(t, "resubscribed after the restart", 10*time.Second, func() bool {
		n, err := client.PubSubNumSub(ctx, channel).Result()
		return err == nil && n[channel] == 1
	})
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	w := waiter.Watch(wait, channel, lease)
	defer w.Stop()
	woke := make(chan error, 1)
	go func() { woke <- w.Wait(wait) }()

	other, _, err := leader.Acquire(ctx, lease+":other", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Fill(ctx, channel); err != nil {
		t.Fatal(err)
	}
	if err := <-woke; err != nil {
		t.Fatalf("Wait after restart: %v", err)
	}
	if err := before.Wait(wait); err != nil {
		t.Fatalf("Wait on the watch made before the restart: %v", err)
	}
}
