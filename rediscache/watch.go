package rediscache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/fleetcache/fleetcache/internal/redisfail"
	"github.com/redis/go-redis/v9"
)

// pollInterval is how often a waiter checks the lease it waits on, in case
// the fill announcement was lost or the subscription is broken: 100ms keeps
// that rare case cheap in latency while a fleet of waiters costs Redis ten
// GETs a second each.
const pollInterval = 100 * time.Millisecond

// subscriptions is the store's side of the fill announcements: one pub/sub
// connection per Redis server (per master on a cluster, with sharded
// pub/sub), a channel subscribed while some watch needs it, its messages
// demultiplexed in process. Nothing runs until the first watch; the store's
// Close stops it.
type subscriptions struct {
	client redis.UniversalClient
	kind   pubsubKind
	poll   time.Duration

	life context.Context // ends with close; bounds the pub/sub goroutines
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu     sync.Mutex
	closed bool
	conns  map[string]*subConn   // by server address
	chans  map[string]*chanState // channels some watch listens to
}

func newSubscriptions(client redis.UniversalClient, kind pubsubKind) *subscriptions {
	life, stop := context.WithCancel(context.Background())
	return &subscriptions{
		client: client, kind: kind, poll: pollInterval, life: life, stop: stop,
		conns: make(map[string]*subConn), chans: make(map[string]*chanState),
	}
}

// close stops the pub/sub connections and goroutines. Waits in progress
// return ErrClosed.
func (f *subscriptions) close() error {
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
		return fmt.Errorf("rediscache: close pub/sub: %w", err)
	}
	return nil
}

// Bounds of the pause between attempts to receive on a broken pub/sub
// connection: long enough not to spin on a dead server, short enough that
// notifications come back soon after it returns. Waiters poll meanwhile.
const (
	minRetry = 50 * time.Millisecond
	maxRetry = 2 * time.Second
)

// watch is one waiter's interest in a fill announcement: made by
// subscriptions.watch, waited on with wait, ended with stop.
type watch struct {
	f        *subscriptions
	channel  string
	leaseKey string
	holder   string        // the lease's holder when the wait began
	fired    chan struct{} // closed when the announcement arrived
	state    *chanState    // nil when the watch relies on polling only

	stopped bool // guarded by f.mu
}

// chanState is one channel some watches listen to.
type chanState struct {
	conn     *subConn
	watchers map[*watch]struct{}
	settled  chan struct{} // closed once subscribed, or once that attempt failed
}

// subConn is the pub/sub connection to one server. Watch and Stop only
// change the watcher counts and mark the channel dirty; one writer goroutine
// per connection brings the server's subscriptions in line with the counts,
// so that SUBSCRIBE and UNSUBSCRIBE reach the wire in an order that always
// ends in the right state. A reader goroutine demultiplexes what comes back.
type subConn struct {
	ps      *redis.PubSub
	sharded bool
	kick    chan struct{} // capacity 1: the writer has dirty channels to look at

	// Guarded by subscriptions.mu.
	dirty   map[string]struct{}
	have    map[string]bool         // subscribed, as far as the commands sent go
	pending map[string][]*chanState // subscribe replies awaited, in the order sent
}

// watch registers interest in the fill announcement on channel while holder
// holds the lease at leaseKey. It waits for the subscription to be
// confirmed, for at most one poll interval and never past ctx; without it
// the watch still works, by polling the lease.
func (f *subscriptions) watch(ctx context.Context, channel, leaseKey, holder string) *watch {
	w := &watch{f: f, channel: channel, leaseKey: leaseKey, holder: holder, fired: make(chan struct{})}
	cs := f.register(ctx, w)
	if cs == nil {
		return w
	}
	bound, cancel := context.WithTimeout(ctx, f.poll)
	defer cancel()
	select {
	case <-cs.settled:
	case <-bound.Done():
	}
	return w
}

// register adds w to the watchers of its channel, subscribing the channel if
// w is the first. It returns nil when w has to rely on polling.
func (f *subscriptions) register(ctx context.Context, w *watch) *chanState {
	if cs := f.join(w); cs != nil {
		return cs
	}
	addr, newPubSub, sharded, err := f.route(ctx, w.channel)
	if err != nil {
		return nil // no subscription: the poll covers it
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	cs := f.chans[w.channel]
	if cs == nil {
		sc := f.conns[addr]
		if sc == nil {
			sc = &subConn{
				ps:      newPubSub(),
				sharded: sharded,
				kick:    make(chan struct{}, 1),
				dirty:   make(map[string]struct{}),
				have:    make(map[string]bool),
				pending: make(map[string][]*chanState),
			}
			f.conns[addr] = sc
			f.wg.Add(2)
			go f.writeLoop(sc)
			go f.readLoop(sc)
		}
		cs = &chanState{conn: sc, watchers: make(map[*watch]struct{}), settled: make(chan struct{})}
		f.chans[w.channel] = cs
		f.markDirty(sc, w.channel)
	}
	cs.watchers[w] = struct{}{}
	w.state = cs
	return cs
}

// join adds w to the watchers of a channel already subscribed.
func (f *subscriptions) join(w *watch) *chanState {
	f.mu.Lock()
	defer f.mu.Unlock()
	cs := f.chans[w.channel]
	if cs == nil || f.closed {
		return nil
	}
	cs.watchers[w] = struct{}{}
	w.state = cs
	return cs
}

// route picks the server that carries channel's announcements: the master
// of the channel's hash slot with sharded pub/sub, the server otherwise.
func (f *subscriptions) route(ctx context.Context, channel string) (addr string, newPubSub func() *redis.PubSub, sharded bool, err error) {
	switch f.kind {
	case shardedPubSub:
		node, err := f.client.(*redis.ClusterClient).MasterForKey(ctx, channel)
		if err != nil {
			return "", nil, false, err
		}
		return node.Options().Addr, func() *redis.PubSub { return node.SSubscribe(f.life) }, true, nil
	case plainPubSub:
		return "", func() *redis.PubSub { return f.client.Subscribe(f.life) }, false, nil
	default:
		return "", nil, false, errNoPubSub
	}
}

// errNoPubSub stays internal: a client without a supported pub/sub only
// makes its waiters poll.
var errNoPubSub = errors.New("rediscache: client type has no supported pub/sub")

// markDirty must be called with f.mu held.
func (f *subscriptions) markDirty(sc *subConn, channel string) {
	sc.dirty[channel] = struct{}{}
	select {
	case sc.kick <- struct{}{}:
	default: // the writer has a wake-up pending already
	}
}

// wait blocks until the fill announcement arrives or the holder no longer
// holds the lease (it released it, or died and it expired), and then
// returns nil. It returns ctx.Err() when ctx ends, ErrClosed when the store
// is closed, and the error of a failed lease poll, so that a caller never
// blocks on a Redis that is down. A wait is bounded by the lease's TTL plus
// one poll.
func (w *watch) wait(ctx context.Context) error {
	// The first poll is immediate: the holder may have finished before the
	// subscription was made.
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		if w.f.life.Err() != nil {
			return errClosed
		}
		select {
		case <-w.fired:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-w.f.life.Done():
			return errClosed
		case <-t.C:
			holder, err := w.f.client.Get(ctx, w.leaseKey).Result()
			if err != nil && err != redis.Nil {
				return fmt.Errorf("rediscache: poll lease %q: %w", w.leaseKey, redisfail.Classify(err))
			}
			if holder != w.holder {
				return nil
			}
			t.Reset(w.f.poll)
		}
	}
}

// stop ends the watch; the channel is unsubscribed when its last watch
// stops. stop may be called more than once.
func (w *watch) stop() {
	f := w.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if w.stopped || w.state == nil {
		w.stopped = true
		return
	}
	w.stopped = true
	cs := w.state
	delete(cs.watchers, w)
	if len(cs.watchers) == 0 && f.chans[w.channel] == cs {
		delete(f.chans, w.channel)
		f.markDirty(cs.conn, w.channel)
	}
}

// writeLoop sends the SUBSCRIBE and UNSUBSCRIBE commands that bring the
// connection's subscriptions in line with the watchers.
func (f *subscriptions) writeLoop(sc *subConn) {
	defer f.wg.Done()
	for {
		select {
		case <-f.life.Done():
			return
		case <-sc.kick:
		}
		for {
			channel, subscribe, ok := f.nextCommand(sc)
			if !ok {
				break
			}
			var err error
			switch {
			case subscribe && sc.sharded:
				err = sc.ps.SSubscribe(f.life, channel)
			case subscribe:
				err = sc.ps.Subscribe(f.life, channel)
			case sc.sharded:
				err = sc.ps.SUnsubscribe(f.life, channel)
			default:
				err = sc.ps.Unsubscribe(f.life, channel)
			}
			// go-redis keeps the channel in its set either way and
			// subscribes it again when it reconnects; the watches waiting
			// for this reply go on polling rather than wait for that.
			if err != nil && subscribe {
				f.mu.Lock()
				f.settleAll(sc, channel)
				f.mu.Unlock()
			}
		}
	}
}

// nextCommand pops a dirty channel whose subscription differs from what its
// watchers need, and records the command as sent.
func (f *subscriptions) nextCommand(sc *subConn) (channel string, subscribe, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for channel := range sc.dirty {
		delete(sc.dirty, channel)
		cs := f.chans[channel]
		want := cs != nil && cs.conn == sc
		if want && sc.have[channel] {
			// Stop and Watch again before the UNSUBSCRIBE went out: the
			// subscription on the wire serves the new state. Whoever waited
			// on the state it was sent for has stopped, so the new state
			// takes its place in the queue.
			if q := sc.pending[channel]; len(q) > 0 {
				q[len(q)-1] = cs
			} else {
				settle(cs)
			}
			continue
		}
		if want == sc.have[channel] {
			continue
		}
		if want {
			sc.have[channel] = true
			// Queued before the command is written, so that the reply
			// cannot arrive first.
			sc.pending[channel] = append(sc.pending[channel], cs)
		} else {
			delete(sc.have, channel)
		}
		return channel, want, true
	}
	return "", false, false
}

// readLoop receives the subscription replies and messages of one connection
// until the store closes.
func (f *subscriptions) readLoop(sc *subConn) {
	defer f.wg.Done()
	var retry time.Duration
	for {
		msg, err := sc.ps.Receive(f.life)
		if err != nil {
			if f.life.Err() != nil {
				return
			}
			// Replies in flight are lost with the connection: release the
			// watches waiting for them rather than let them match later
			// replies. go-redis reconnects and subscribes again on the
			// next Receive.
			f.mu.Lock()
			for channel := range sc.pending {
				f.settleAll(sc, channel)
			}
			f.mu.Unlock()
			retry = min(max(2*retry, minRetry), maxRetry)
			t := time.NewTimer(retry)
			select {
			case <-f.life.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		retry = 0
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" || m.Kind == "ssubscribe" {
				f.confirm(sc, m.Channel)
			}
		case *redis.Message:
			f.deliver(sc, m.Channel)
		}
	}
}

// confirm settles the oldest watch state waiting for a subscribe reply on
// channel; Redis answers the commands of one connection in order.
func (f *subscriptions) confirm(sc *subConn, channel string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := sc.pending[channel]
	if len(q) == 0 {
		return // a resubscription after a reconnect
	}
	settle(q[0])
	if len(q) == 1 {
		delete(sc.pending, channel)
	} else {
		sc.pending[channel] = q[1:]
	}
}

// settleAll must be called with f.mu held.
func (f *subscriptions) settleAll(sc *subConn, channel string) {
	for _, cs := range sc.pending[channel] {
		settle(cs)
	}
	delete(sc.pending, channel)
}

// settle must be called with subscriptions.mu held, which makes the check and the
// close one step.
func settle(cs *chanState) {
	select {
	case <-cs.settled:
	default:
		close(cs.settled)
	}
}

// deliver wakes every watch of channel.
func (f *subscriptions) deliver(sc *subConn, channel string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cs := f.chans[channel]
	if cs == nil || cs.conn != sc {
		return
	}
	for w := range cs.watchers {
		select {
		case <-w.fired:
		default:
			close(w.fired)
		}
	}
}
