package coalesce

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fleetcache/fleetcache/internal/redisfail"
)

// ErrClosed is returned by Watch.Wait once the Fleet is closed.
var ErrClosed = errors.New("coalesce: fleet closed")

// Defaults of FleetOptions.
const (
	// A waiter whose notification got lost learns that the lease is gone
	// within one poll: 100ms keeps that rare case cheap in latency while a
	// fleet of waiters costs Redis ten EXISTS a second each.
	defaultPollInterval = 100 * time.Millisecond

	// The "don't collapse" marker only has to outlive the burst that met
	// the uncacheable answer. Five seconds covers a burst and its retries;
	// it is short because a marker left on a URL that turned cacheable
	// again costs a stampede's worth of origin requests until it expires,
	// and a URL that stays uncacheable just sets it again.
	defaultMarkerTTL = 5 * time.Second
)

// FleetOptions configure a Fleet. The zero value is the recommended setup.
type FleetOptions struct {
	// PollInterval is how often a waiter checks the lease key, in case the
	// fill notification was lost or the subscription is broken. Zero or
	// negative means 100ms.
	PollInterval time.Duration

	// MarkerTTL is how long Mark's "don't collapse this key" marker lives.
	// Zero or negative means 5s.
	MarkerTTL time.Duration
}

// Fleet coordinates the processes that share a Redis so that one of them
// does a piece of work while the others wait for it: a lease decides who
// works, a notification wakes the waiters, and a marker turns coalescing
// off for a while for keys whose work cannot be shared.
//
// Fill notifications use sharded pub/sub (SSUBSCRIBE, SPUBLISH) on a
// *redis.ClusterClient, so that they route by the channel's hash slot like
// the keys next to them, and plain pub/sub on a *redis.Client. Any other
// client (a Ring) gets no notifications: its waiters rely on the poll.
//
// A Fleet keeps one pub/sub connection per Redis server (per master on a
// cluster), subscribes a channel while some Watch needs it and demultiplexes
// its messages in process. Close it to stop that connection; the client
// stays the caller's.
type Fleet struct {
	client  redis.UniversalClient
	cluster *redis.ClusterClient // nil unless sharded pub/sub is used
	poll    time.Duration
	marker  time.Duration

	life context.Context // ends with Close; bounds the pub/sub goroutines
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu     sync.Mutex
	closed bool
	conns  map[string]*subConn   // by server address
	chans  map[string]*chanState // channels some Watch listens to
}

// NewFleet returns a Fleet that coordinates through client.
func NewFleet(client redis.UniversalClient, opts FleetOptions) *Fleet {
	if opts.PollInterval <= 0 {
		opts.PollInterval = defaultPollInterval
	}
	if opts.MarkerTTL <= 0 {
		opts.MarkerTTL = defaultMarkerTTL
	}
	life, stop := context.WithCancel(context.Background())
	f := &Fleet{
		client: client,
		poll:   opts.PollInterval,
		marker: opts.MarkerTTL,
		life:   life,
		stop:   stop,
		conns:  make(map[string]*subConn),
		chans:  make(map[string]*chanState),
	}
	f.cluster, _ = client.(*redis.ClusterClient)
	return f
}

// Close stops the Fleet's pub/sub connections and goroutines. Waits in
// progress return ErrClosed. Close does not close the client.
func (f *Fleet) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	conns := f.conns
	f.conns = nil
	f.mu.Unlock()

	f.stop()
	var errs []error
	for _, sc := range conns {
		// Closing the connection is what unblocks its receive loop.
		if err := sc.ps.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	f.wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("coalesce: close: %w", err)
	}
	return nil
}

// Lease is the right to do the work for a key, held until it is released or
// its TTL runs out.
type Lease struct {
	f     *Fleet
	key   string
	token string // proves ownership: only the holder may delete the key
}

// Acquire tries to take the lease leaseKey for ttl. ok is false, with a nil
// error, when another holder has it. The TTL is what bounds everybody's wait
// if the holder dies: choose it a little above the longest the work may take.
func (f *Fleet) Acquire(ctx context.Context, leaseKey string, ttl time.Duration) (l *Lease, ok bool, err error) {
	// A lease without an expiry would block the key for good if its holder
	// died, and Redis rejects an expiry below a millisecond.
	if ttl < time.Millisecond {
		return nil, false, fmt.Errorf("coalesce: acquire %q: lease ttl %v is below 1ms", leaseKey, ttl)
	}
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand doc)
	token := hex.EncodeToString(b[:])
	ok, err = f.client.SetNX(ctx, leaseKey, token, ttl).Result()
	if err != nil {
		return nil, false, fmt.Errorf("coalesce: acquire %q: %w", leaseKey, redisfail.Classify(err))
	}
	if !ok {
		return nil, false, nil
	}
	return &Lease{f: f, key: leaseKey, token: token}, true, nil
}

// releaseScript deletes the lease only while it still holds our token: a
// holder whose lease expired must not delete its successor's.
var releaseScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0`)

// Release gives the lease up if it is still ours, and does nothing if it
// expired or passed to another holder. Releasing twice is harmless.
func (l *Lease) Release(ctx context.Context) error {
	if err := releaseScript.Run(ctx, l.f.client, []string{l.key}, l.token).Err(); err != nil {
		return fmt.Errorf("coalesce: release %q: %w", l.key, redisfail.Classify(err))
	}
	return nil
}

// Fill tells the waiters on channel that the work is done, and releases the
// lease. It releases first, so that a waiter that wakes up and still has to
// do the work itself finds the lease free. The notification is sent even if
// the lease was lost meanwhile: whoever holds it now has waiters that can
// use what this holder stored.
func (l *Lease) Fill(ctx context.Context, channel string) error {
	relErr := l.Release(ctx)
	if err := l.f.publish(ctx, channel); err != nil {
		return errors.Join(relErr, fmt.Errorf("coalesce: notify %q: %w", channel, redisfail.Classify(err)))
	}
	return relErr
}

func (f *Fleet) publish(ctx context.Context, channel string) error {
	const msg = "fill" // the waiters only look at the channel
	if f.cluster != nil {
		return f.cluster.SPublish(ctx, channel, msg).Err()
	}
	return f.client.Publish(ctx, channel, msg).Err()
}

// Mark sets the "don't collapse this key" marker (Varnish's hit-for-miss)
// for FleetOptions.MarkerTTL.
func (f *Fleet) Mark(ctx context.Context, markerKey string) error {
	if err := f.client.Set(ctx, markerKey, "1", f.marker).Err(); err != nil {
		return fmt.Errorf("coalesce: mark %q: %w", markerKey, redisfail.Classify(err))
	}
	return nil
}

// Marked reports whether the marker is set.
func (f *Fleet) Marked(ctx context.Context, markerKey string) (bool, error) {
	n, err := f.client.Exists(ctx, markerKey).Result()
	if err != nil {
		return false, fmt.Errorf("coalesce: marked %q: %w", markerKey, redisfail.Classify(err))
	}
	return n > 0, nil
}

// leaseGone reports whether the lease key no longer exists: its holder
// released it, or died and let it expire.
func (f *Fleet) leaseGone(ctx context.Context, leaseKey string) (bool, error) {
	n, err := f.client.Exists(ctx, leaseKey).Result()
	if err != nil {
		return false, fmt.Errorf("coalesce: poll lease %q: %w", leaseKey, redisfail.Classify(err))
	}
	return n == 0, nil
}
