package rediscache

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// hourPoll makes the waits of f's store poll once an hour: only an
// announcement can end them.
func hourPoll(f *fixture) { f.s.subs.poll = time.Hour }

func TestFleet_FillAndReleaseAreAnnounced(t *testing.T) {
	redistest.Run(t, redistest.WithCluster, func(t *testing.T, r *redistest.Redis) {
		ctx := context.Background()
		opts := Options{Prefix: "ann:"}
		holder, waiter := newFixture(t, r, opts), newFixture(t, r, opts)
		hourPoll(waiter)
		for _, end := range []string{"fill", "release"} {
			u := "https://example.com/" + end
			_, _, l, err := holder.s.Claim(ctx, u, nil, "", time.Minute, false)
			if err != nil || !l.Mine {
				t.Fatalf("Claim = %+v, %v", l, err)
			}
			held := l
			held.Mine = false
			woke := make(chan error, 1)
			wait, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			go func() { woke <- waiter.s.Wait(wait, held) }()
			eventually(t, "the waiter subscribed", func() bool { return r.Subscribers(t, waiter.s.FillChannel(u)) == 1 })
			if end == "fill" {
				if kept, err := holder.s.Fill(ctx, l, response(u, "b"), time.Minute, true); err != nil || !kept {
					t.Fatalf("Fill = %v, %v", kept, err)
				}
			} else if err := holder.s.Release(ctx, l, false); err != nil {
				t.Fatal(err)
			}
			if err := <-woke; err != nil {
				t.Fatalf("%s: Wait = %v", end, err)
			}
		}
	})
}

// A claim whose answer is lost (a timeout) may have taken the lease without
// its caller knowing: the store ends it by its token, and wakes the peers
// that found it held, rather than let it hold them for its TTL.
func TestFleet_LeaseOfALostClaimIsEnded(t *testing.T) {
	redistest.Run(t, redistest.WithCluster, func(t *testing.T, r *redistest.Redis) {
		ctx := context.Background()
		opts := Options{Prefix: "lost:"}
		lost, peer := newFixture(t, r, opts), newFixture(t, r, opts)
		hourPoll(peer)
		const u = "https://example.com/lost"
		_, _, l, err := lost.s.Claim(ctx, u, nil, "", time.Minute, false)
		if err != nil || !l.Mine {
			t.Fatalf("Claim = %+v, %v", l, err)
		}
		_, _, held, err := peer.s.Claim(ctx, u, nil, "", time.Minute, false)
		if err != nil || held.Holder != l.Holder {
			t.Fatalf("peer's Claim = %+v, %v", held, err)
		}
		woke := make(chan error, 1)
		wait, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		go func() { woke <- peer.s.Wait(wait, held) }()
		eventually(t, "the peer subscribed", func() bool { return r.Subscribers(t, peer.s.FillChannel(u)) == 1 })

		// As Claim does when its call fails: the answer with the token is lost.
		sh, uh := shardOf(*lost.s.shards.Load(), u)
		lost.s.abandon(sh, string(hashHex(nil, uh)), l.Holder, time.Minute)
		if err := <-woke; err != nil {
			t.Fatalf("Wait = %v", err)
		}
		if _, _, next, err := peer.s.Claim(ctx, u, nil, "", time.Minute, false); err != nil || !next.Mine {
			t.Fatalf("claim after the lost one = %+v, %v; want the lease free", next, err)
		}
	})
}

func TestFleet_AnnouncementsResumeAfterRedisRestarts(t *testing.T) {
	ctx := context.Background()
	r := redistest.RealServer.Start(t)
	f := newFixture(t, r, Options{})
	hourPoll(f)
	const u = "https://example.com/restart"
	channel := f.s.FillChannel(u)
	// A watch made before the restart, whose lease nobody ends.
	before := f.s.subs.watch(ctx, channel, "t:nolease", "nobody")
	defer before.stop()
	r.Restart(t)
	// The store subscribes again by itself; until it has, a fill goes unheard.
	eventually(t, "resubscribed after the restart", func() bool { return r.Subscribers(t, channel) == 1 })
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	woke := make(chan error, 1)
	go func() { woke <- before.wait(wait) }()
	f.put(t, response(u, "b"), time.Minute, true) // announces the fill
	if err := <-woke; err != nil {
		t.Fatalf("Wait on the watch made before the restart: %v", err)
	}
}

// TestFleet_CommandsPerMiss counts what a miss costs Redis, on a real
// redis-server: the commands the store's client sends (a hook on it; one
// command or pipeline is one round trip) and the scripts the server ran
// (INFO commandstats, which also counts the commands run inside scripts).
// A miss that leads is one claim and one fill: two scripts, two round
// trips (the fill is a transaction: MULTI, the SET of the value, the
// script that indexes it, EXEC, sent at once). A miss that waits for a peer adds a subscription, one poll of the
// lease as soon as it is subscribed, and the claim that reads the fill.
func TestFleet_CommandsPerMiss(t *testing.T) {
	ctx := context.Background()
	r := redistest.RealServer.Start(t)
	opts := Options{Prefix: "cpm:"}
	var sent sentCommands
	store := func() *Store {
		c := r.NewClient(t, redis.UniversalOptions{})
		c.AddHook(&sent)
		s, err := New(c, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	leader, waiter := store(), store()
	miss := func(s *Store, u string) {
		t.Helper()
		_, _, l, err := s.Claim(ctx, u, nil, "", time.Minute, false)
		if err != nil || !l.Mine {
			t.Fatalf("Claim = %+v, %v", l, err)
		}
		if kept, err := s.Fill(ctx, l, response(u, "b"), time.Minute, true); err != nil || !kept {
			t.Fatalf("Fill = %v, %v", kept, err)
		}
	}
	// The first calls read the config and load the scripts.
	miss(leader, "https://example.com/warm")
	miss(waiter, "https://example.com/warm2")

	sent.reset()
	before := commandStats(t, r)
	miss(leader, "https://example.com/cold")
	scripts := commandStats(t, r).minus(before).scripts()
	t.Logf("a leading miss: sent %v; scripts run %d", sent.names(), scripts)
	if got := sent.names(); len(got) != 2 || got[0] != "evalsha" || got[1] != "pipeline" || scripts != 2 {
		t.Errorf("a leading miss sent %v and ran %d scripts; want two scripts in two round trips", got, scripts)
	}

	const u = "https://example.com/waited"
	_, _, l, err := leader.Claim(ctx, u, nil, "", time.Minute, false)
	if err != nil || !l.Mine {
		t.Fatalf("Claim = %+v, %v", l, err)
	}
	sent.reset()
	before = commandStats(t, r)
	_, _, held, err := waiter.Claim(ctx, u, nil, "", time.Minute, false)
	if err != nil || held.Mine || held.Holder != l.Holder {
		t.Fatalf("waiter's Claim = %+v, %v", held, err)
	}
	woke := make(chan error, 1)
	go func() { woke <- waiter.Wait(ctx, held) }()
	eventually(t, "the waiter subscribed", func() bool { return r.Subscribers(t, waiter.FillChannel(u)) == 1 })
	if kept, err := leader.Fill(ctx, l, response(u, "b"), time.Minute, true); err != nil || !kept {
		t.Fatalf("Fill = %v, %v", kept, err)
	}
	if err := <-woke; err != nil {
		t.Fatal(err)
	}
	if resp, _, _, err := waiter.Claim(ctx, u, nil, "", time.Minute, false); err != nil || resp == nil {
		t.Fatalf("Claim after the fill = %v, %v", resp, err)
	}
	stats := commandStats(t, r).minus(before)
	t.Logf("a waiting miss and its peer's fill: sent %v; server ran %v", sent.names(), stats)
	// The poll races the fill: it may find the lease held (then the
	// announcement wakes the waiter) or already ended.
	want := []string{"evalsha", "get", "pipeline", "evalsha"}
	if got := sent.names(); strings.Join(got, " ") != strings.Join(want, " ") && strings.Join(got, " ") != "evalsha pipeline get evalsha" {
		t.Errorf("sent %v; want the claim, one poll, the peer's fill and the claim that reads it", got)
	}
	if stats["subscribe"] != 1 || stats.scripts() != 3 {
		t.Errorf("server ran %v; want one subscription and three scripts", stats)
	}
}

// sentCommands records the commands a client sends, a pipeline as one.
type sentCommands struct {
	mu   sync.Mutex
	sent []string
}

func (s *sentCommands) record(name string) {
	s.mu.Lock()
	s.sent = append(s.sent, name)
	s.mu.Unlock()
}

func (s *sentCommands) reset() {
	s.mu.Lock()
	s.sent = nil
	s.mu.Unlock()
}

func (s *sentCommands) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.sent...)
}

func (s *sentCommands) DialHook(next redis.DialHook) redis.DialHook { return next }

func (s *sentCommands) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if name := cmd.Name(); name != "hello" && name != "client" {
			s.record(name)
		}
		return next(ctx, cmd)
	}
}

func (s *sentCommands) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		// A new connection's handshake (HELLO, CLIENT SETINFO) is no
		// command of the store's.
		if name := cmds[0].Name(); name != "hello" && name != "client" {
			s.record("pipeline")
		}
		return next(ctx, cmds)
	}
}

// calls are the calls per command of INFO commandstats.
type calls map[string]int64

func commandStats(t *testing.T, r *redistest.Redis) calls {
	t.Helper()
	info, err := r.Client.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	c := calls{}
	for _, line := range strings.Split(info, "\r\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":calls=")
		if !ok {
			continue
		}
		n, _, _ := strings.Cut(rest, ",")
		c[name], _ = strconv.ParseInt(n, 10, 64)
	}
	return c
}

func (c calls) minus(before calls) calls {
	d := calls{}
	for k, v := range c {
		if n := v - before[k]; n != 0 && k != "info" {
			d[k] = n
		}
	}
	return d
}

func (c calls) scripts() int64 { return c["evalsha"] + c["eval"] }
