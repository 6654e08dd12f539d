package coalesce

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// newFleet returns a Fleet closed when the test ends.
func newFleet(t *testing.T, f *Fleet) *Fleet {
	t.Helper()
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return f
}

func TestNewFleet_ZeroOptionsAreTheDefaults(t *testing.T) {
	tests := []struct {
		name       string
		opts       FleetOptions
		wantPoll   time.Duration
		wantMarker time.Duration
	}{
		{"zero value", FleetOptions{}, defaultPollInterval, defaultMarkerTTL},
		{"negative means default", FleetOptions{PollInterval: -1, MarkerTTL: -1}, defaultPollInterval, defaultMarkerTTL},
		{"set values are kept", FleetOptions{PollInterval: time.Second, MarkerTTL: time.Minute}, time.Second, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, client := redistest.Mini(t)
			f := NewFleet(client, tt.opts)
			defer f.Close()
			if f.poll != tt.wantPoll || f.marker != tt.wantMarker {
				t.Fatalf("poll %v, marker %v; want %v, %v", f.poll, f.marker, tt.wantPoll, tt.wantMarker)
			}
		})
	}
}

func TestFleet_OnlyOneConcurrentAcquireWins(t *testing.T) {
	redistest.Run(t, redistest.WithCluster, func(t *testing.T, r *redistest.Redis) {
		client := r.Client
		const processes = 50
		var wins atomic.Int32
		var wg sync.WaitGroup
		for range processes {
			f := NewFleet(client, FleetOptions{})
			defer f.Close()
			wg.Go(func() {
				_, ok, err := f.Acquire(context.Background(), "lock", time.Minute)
				if err != nil {
					t.Error(err)
				}
				if ok {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Fatalf("%d processes took the lease, want 1", n)
		}
	})
}

func TestFleet_LeaseOwnership(t *testing.T) {
	redistest.Run(t, redistest.WithCluster, func(t *testing.T, r *redistest.Redis) {
		ctx := context.Background()
		client := r.Client
		f := newFleet(t, NewFleet(client, FleetOptions{}))

		first, ok, err := f.Acquire(ctx, "lock", time.Second)
		if err != nil || !ok {
			t.Fatalf("first Acquire = %v, %v", ok, err)
		}
		if _, ok, err := f.Acquire(ctx, "lock", time.Second); err != nil || ok {
			t.Fatalf("Acquire of a held lease = %v, %v; want false, nil", ok, err)
		}

		r.Advance(t, time.Second)
		second, ok, err := f.Acquire(ctx, "lock", time.Second)
		if err != nil || !ok {
			t.Fatalf("Acquire after expiry = %v, %v; want the lease", ok, err)
		}

		if err := first.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if got, _ := client.Get(ctx, "lock").Result(); got != second.token {
			t.Fatalf("release by the expired holder deleted its successor's lease (key %q)", got)
		}

		for range 2 { // releasing twice is harmless
			if err := second.Release(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if client.Exists(ctx, "lock").Val() != 0 {
			t.Fatal("owner's Release left the lease")
		}
	})
}

func TestFleet_AcquireRejectsALeaseWithoutExpiry(t *testing.T) {
	redistest.Run(t, redistest.Backends, func(t *testing.T, r *redistest.Redis) {
		client := r.Client
		f := newFleet(t, NewFleet(client, FleetOptions{}))
		for _, ttl := range []time.Duration{0, -time.Second, time.Microsecond} {
			if _, ok, err := f.Acquire(context.Background(), "lock", ttl); err == nil || ok {
				t.Errorf("Acquire with ttl %v = %v, %v; want an error", ttl, ok, err)
			}
		}
	})
}

func TestFleet_FillWakesEveryWatcherThroughOneSubscriptionPerProcess(t *testing.T) {
	redistest.Run(t, redistest.WithCluster, func(t *testing.T, r *redistest.Redis) {
		ctx := context.Background()
		client := r.Client
		const processes, watchersEach = 3, 4
		// An hour-long poll: only the notification can wake the watchers.
		opts := FleetOptions{PollInterval: time.Hour}

		leader := newFleet(t, NewFleet(client, opts))
		held, ok, err := leader.Acquire(ctx, "lock", time.Minute)
		if err != nil || !ok {
			t.Fatalf("Acquire = %v, %v", ok, err)
		}
		defer held.Release(ctx)

		var watches []*Watch
		for range processes {
			f := newFleet(t, NewFleet(client, opts))
			for range watchersEach {
				watches = append(watches, f.Watch(ctx, "fill", "lock"))
			}
		}
		if n := r.Subscribers(t, "fill"); n != processes {
			t.Fatalf("%d subscriptions to the channel, want one per process (%d)", n, processes)
		}

		woke := make(chan error, len(watches))
		for _, w := range watches {
			go func() { woke <- w.Wait(ctx) }()
		}
		// Another lease fills the channel: "lock" stays held, so a poll could not
		// have ended the waits.
		other, _, err := leader.Acquire(ctx, "other", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Fill(ctx, "fill"); err != nil {
			t.Fatal(err)
		}
		for range watches {
			if err := <-woke; err != nil {
				t.Fatalf("Wait: %v", err)
			}
		}

		for _, w := range watches {
			w.Stop()
			w.Stop()
		}
		eventually(t, "the last Stop unsubscribed the channel", func() bool {
			return r.Subscribers(t, "fill") == 0
		})
	})
}

func TestFleet_WaitEndsWhenTheLeaseIsGone(t *testing.T) {
	tests := []struct {
		name string
		end  func(t *testing.T, r *redistest.Redis, l *Lease) error
	}{
		{"holder released without filling", func(_ *testing.T, _ *redistest.Redis, l *Lease) error {
			return l.Release(context.Background())
		}},
		{"holder died and the lease expired", func(t *testing.T, r *redistest.Redis, _ *Lease) error {
			r.Advance(t, time.Second)
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			redistest.Run(t, redistest.WithCluster, func(t *testing.T, r *redistest.Redis) {
				ctx := context.Background()
				client := r.Client
				f := newFleet(t, NewFleet(client, FleetOptions{PollInterval: time.Millisecond}))
				l, _, err := f.Acquire(ctx, "lock", time.Second)
				if err != nil {
					t.Fatal(err)
				}
				w := f.Watch(ctx, "fill", "lock")
				defer w.Stop()
				done := make(chan error, 1)
				go func() { done <- w.Wait(ctx) }()
				if err := tt.end(t, r, l); err != nil {
					t.Fatal(err)
				}
				if err := <-done; err != nil {
					t.Fatalf("Wait: %v", err)
				}
			})
		})
	}
}

func TestFleet_WaitStopsWithItsContext(t *testing.T) {
	redistest.Run(t, redistest.Backends, func(t *testing.T, r *redistest.Redis) {
		ctx := context.Background()
		client := r.Client
		f := newFleet(t, NewFleet(client, FleetOptions{PollInterval: time.Hour}))
		if _, _, err := f.Acquire(ctx, "lock", time.Minute); err != nil {
			t.Fatal(err)
		}
		w := f.Watch(ctx, "fill", "lock")
		defer w.Stop()
		short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		if err := w.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Wait: %v, want DeadlineExceeded", err)
		}
	})
}

func TestFleet_CloseEndsWaits(t *testing.T) {
	redistest.Run(t, redistest.Backends, func(t *testing.T, r *redistest.Redis) {
		ctx := context.Background()
		client := r.Client
		f := NewFleet(client, FleetOptions{PollInterval: time.Hour})
		if _, _, err := f.Acquire(ctx, "lock", time.Minute); err != nil {
			t.Fatal(err)
		}
		w := f.Watch(ctx, "fill", "lock")
		defer w.Stop()
		done := make(chan error, 1)
		go func() { done <- w.Wait(ctx) }()
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Fatalf("Wait during Close: %v, want ErrClosed", err)
		}
		late := f.Watch(ctx, "fill", "lock")
		defer late.Stop()
		if err := late.Wait(ctx); !errors.Is(err, ErrClosed) {
			t.Fatalf("Wait after Close: %v, want ErrClosed", err)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
}

func TestFleet_RedisDownFailsEveryCallWithinItsContext(t *testing.T) {
	tests := []struct {
		name string
		call func(ctx context.Context, f *Fleet) error
	}{
		{"Acquire", func(ctx context.Context, f *Fleet) error {
			_, _, err := f.Acquire(ctx, "lock", time.Second)
			return err
		}},
		{"Release", func(ctx context.Context, f *Fleet) error {
			return (&Lease{f: f, key: "lock", token: "t"}).Release(ctx)
		}},
		{"Fill", func(ctx context.Context, f *Fleet) error {
			return (&Lease{f: f, key: "lock", token: "t"}).Fill(ctx, "fill")
		}},
		{"Mark", func(ctx context.Context, f *Fleet) error { return f.Mark(ctx, "hfm") }},
		{"Marked", func(ctx context.Context, f *Fleet) error {
			_, err := f.Marked(ctx, "hfm")
			return err
		}},
		{"Watch and Wait", func(ctx context.Context, f *Fleet) error {
			w := f.Watch(ctx, "fill", "lock")
			defer w.Stop()
			return w.Wait(ctx)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			redistest.Run(t, redistest.Backends, func(t *testing.T, r *redistest.Redis) {
				f := newFleet(t, NewFleet(r.Client, FleetOptions{PollInterval: time.Hour}))
				r.Kill(t)
				const budget = 300 * time.Millisecond
				ctx, cancel := context.WithTimeout(context.Background(), budget)
				defer cancel()
				start := time.Now()
				err := tt.call(ctx, f)
				if err == nil {
					t.Fatal("no error with Redis down")
				}
				t.Logf("after %v: %v", time.Since(start), err)
				if took := time.Since(start); took > budget+500*time.Millisecond {
					t.Fatalf("returned after %v, past its context (%v): %v", took, budget, err)
				}
			})
		})
	}
}

func TestFleet_MarkerLivesForMarkerTTL(t *testing.T) {
	tests := []struct {
		name string
		opts FleetOptions
		ttl  time.Duration
	}{
		{"default", FleetOptions{}, defaultMarkerTTL},
		{"MarkerTTL", FleetOptions{MarkerTTL: time.Minute}, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			redistest.Run(t, redistest.Backends, func(t *testing.T, r *redistest.Redis) {
				ctx := context.Background()
				client := r.Client
				f := newFleet(t, NewFleet(client, tt.opts))
				marked := func() bool {
					t.Helper()
					ok, err := f.Marked(ctx, "hfm")
					if err != nil {
						t.Fatal(err)
					}
					return ok
				}
				if marked() {
					t.Fatal("marked before Mark")
				}
				if err := f.Mark(ctx, "hfm"); err != nil {
					t.Fatal(err)
				}
				// A second's margin: a real server's clock runs while the test does.
				r.Advance(t, tt.ttl-time.Second)
				if !marked() {
					t.Fatal("marker gone before its TTL")
				}
				r.Advance(t, time.Second)
				if marked() {
					t.Fatal("marker outlived its TTL")
				}
			})
		})
	}
}

func TestFleet_ResubscribingAfterStopStillGetsTheNotification(t *testing.T) {
	redistest.Run(t, redistest.WithCluster, func(t *testing.T, r *redistest.Redis) {
		ctx := context.Background()
		client := r.Client
		f := newFleet(t, NewFleet(client, FleetOptions{PollInterval: time.Hour}))
		if _, _, err := f.Acquire(ctx, "lock", time.Minute); err != nil {
			t.Fatal(err)
		}
		// Churn leaves SUBSCRIBE and UNSUBSCRIBE commands in flight; the last
		// state must win.
		for range 50 {
			f.Watch(ctx, "fill", "lock").Stop()
		}
		w := f.Watch(ctx, "fill", "lock")
		defer w.Stop()
		eventually(t, "exactly one subscription remains", func() bool {
			return r.Subscribers(t, "fill") == 1
		})

		other, _, err := f.Acquire(ctx, "other", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Fill(ctx, "fill"); err != nil {
			t.Fatal(err)
		}
		wait, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := w.Wait(wait); err != nil {
			t.Fatalf("Wait: %v", err)
		}
	})
}

func TestFleet_ClientWithoutPubSubFallsBackToPolling(t *testing.T) {
	redistest.Run(t, redistest.Backends, func(t *testing.T, r *redistest.Redis) {
		ctx := context.Background()
		ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"only": r.Addr()}})
		defer ring.Close()
		f := newFleet(t, NewFleet(ring, FleetOptions{PollInterval: time.Millisecond}))

		l, ok, err := f.Acquire(ctx, "lock", time.Minute)
		if err != nil || !ok {
			t.Fatalf("Acquire = %v, %v", ok, err)
		}
		w := f.Watch(ctx, "fill", "lock")
		defer w.Stop()
		done := make(chan error, 1)
		go func() { done <- w.Wait(ctx) }()
		if err := l.Fill(ctx, "fill"); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("Wait: %v", err)
		}
	})
}
