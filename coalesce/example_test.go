package coalesce_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/fleetcache/fleetcache/coalesce"
)

func ExampleGroup_Do() {
	var g coalesce.Group[string]
	fetch := func(ctx context.Context) (string, error) {
		return "the body", nil // one origin request for every caller that overlaps it
	}

	var wg sync.WaitGroup
	bodies := make(chan string, 10)
	for range 10 {
		wg.Go(func() {
			// Each caller waits with its own context; the fetch gets 5s of
			// its own whichever caller gives up.
			body, _, err := g.Do(context.Background(), "GET https://example.com/", 5*time.Second, fetch)
			if err != nil {
				body = err.Error()
			}
			bodies <- body
		})
	}
	wg.Wait()
	close(bodies)
	for body := range bodies {
		if body != "the body" {
			fmt.Println(body)
		}
	}
	fmt.Println("every caller got the body")
	// Output: every caller got the body
}

// The miss path of one process in a fleet: take the lease and do the work,
// or wait for the holder to store it.
func ExampleNewFleet() {
	ctx := context.Background()
	srv, _ := miniredis.Run()
	defer srv.Close()
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer client.Close()

	fleet := coalesce.NewFleet(client, coalesce.FleetOptions{})
	defer fleet.Close()

	const lease, channel, entry = "lock:{0}:u1", "fill:{0}:u1", "e:{0}:u1"
	l, ok, err := fleet.Acquire(ctx, lease, 10*time.Second)
	if err != nil {
		fmt.Println("redis trouble, go to the origin:", err)
		return
	}
	if ok {
		client.Set(ctx, entry, "the response", time.Minute) // fetched from the origin
		if err := l.Fill(ctx, channel); err != nil {
			fmt.Println(err)
		}
	}
	fmt.Println(client.Get(ctx, entry).Val())
	// Output: the response
}

func ExampleFleet_Acquire() {
	ctx := context.Background()
	srv, _ := miniredis.Run()
	defer srv.Close()
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer client.Close()
	a := coalesce.NewFleet(client, coalesce.FleetOptions{})
	defer a.Close()
	b := coalesce.NewFleet(client, coalesce.FleetOptions{})
	defer b.Close()

	l, okA, _ := a.Acquire(ctx, "lock:{0}:u1", 10*time.Second)
	_, okB, _ := b.Acquire(ctx, "lock:{0}:u1", 10*time.Second)
	fmt.Println(okA, okB)
	_ = l.Release(ctx)
	_, okB, _ = b.Acquire(ctx, "lock:{0}:u1", 10*time.Second)
	fmt.Println(okB)
	// Output:
	// true false
	// true
}

// A process that lost the race for the lease watches for the fill, re-reads
// the store, and only then waits.
func ExampleFleet_Watch() {
	ctx := context.Background()
	srv, _ := miniredis.Run()
	defer srv.Close()
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer client.Close()
	leader := coalesce.NewFleet(client, coalesce.FleetOptions{})
	defer leader.Close()
	waiter := coalesce.NewFleet(client, coalesce.FleetOptions{})
	defer waiter.Close()

	const lease, channel, entry = "lock:{0}:u1", "fill:{0}:u1", "e:{0}:u1"
	l, _, _ := leader.Acquire(ctx, lease, 10*time.Second)

	w := waiter.Watch(ctx, channel, lease) // before the re-read: no wake-up is missed
	defer w.Stop()
	if client.Exists(ctx, entry).Val() == 0 {
		filled := make(chan error)
		go func() { // the leader, elsewhere in the fleet
			client.Set(ctx, entry, "the response", time.Minute)
			filled <- l.Fill(ctx, channel)
		}()
		defer func() { <-filled }()
		wait, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := w.Wait(wait); err != nil {
			fmt.Println("go to the origin:", err)
			return
		}
	}
	fmt.Println(client.Get(ctx, entry).Val())
	// Output: the response
}

// After an answer that may not be shared, the marker sends the next burst
// straight to the origin instead of queueing it behind a lease.
func ExampleFleet_Mark() {
	ctx := context.Background()
	srv, _ := miniredis.Run()
	defer srv.Close()
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer client.Close()
	fleet := coalesce.NewFleet(client, coalesce.FleetOptions{})
	defer fleet.Close()

	_ = fleet.Mark(ctx, "hfm:{0}:u1")
	marked, _ := fleet.Marked(ctx, "hfm:{0}:u1")
	fmt.Println(marked)
	// Output: true
}
