package coalesce

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// Bounds of the pause between attempts to receive on a broken pub/sub
// connection: long enough not to spin on a dead server, short enough that
// notifications come back soon after it returns. Waiters poll meanwhile.
const (
	minRetry = 50 * time.Millisecond
	maxRetry = 2 * time.Second
)

// Watch is one waiter's interest in a fill notification. It is created by
// Fleet.Watch, waited on with Wait, and must be stopped with Stop.
type Watch struct {
	f        *Fleet
	channel  string
	leaseKey string
	fired    chan struct{} // closed when the notification arrived
	state    *chanState    // nil when the watch relies on polling only

	stopped bool // guarded by f.mu
}

// chanState is one channel some watches listen to.
type chanState struct {
	conn     *subConn
	watchers map[*Watch]struct{}
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

	// Guarded by Fleet.mu.
	dirty   map[string]struct{}
	have    map[string]bool         // subscribed, as far as the commands sent go
	pending map[string][]*chanState // subscribe replies awaited, in the order sent
}

// Watch registers interest in the fill notification on channel for the
// lease leaseKey. Call it before re-reading what the lease holder will
// store: once Watch returns, a notification sent after that read is not
// missed. Watch waits for the subscription to be confirmed, for at most one
// poll interval and never past ctx; without it the Watch still works, by
// polling the lease.
func (f *Fleet) Watch(ctx context.Context, channel, leaseKey string) *Watch {
	w := &Watch{f: f, channel: channel, leaseKey: leaseKey, fired: make(chan struct{})}
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
func (f *Fleet) register(ctx context.Context, w *Watch) *chanState {
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
		cs = &chanState{conn: sc, watchers: make(map[*Watch]struct{}), settled: make(chan struct{})}
		f.chans[w.channel] = cs
		f.markDirty(sc, w.channel)
	}
	cs.watchers[w] = struct{}{}
	w.state = cs
	return cs
}

// join adds w to the watchers of a channel already subscribed.
func (f *Fleet) join(w *Watch) *chanState {
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

// route picks the server that carries channel's notifications: the master
// of the channel's hash slot on a cluster, the server otherwise.
func (f *Fleet) route(ctx context.Context, channel string) (addr string, newPubSub func() *redis.PubSub, sharded bool, err error) {
	switch c := f.client.(type) {
	case *redis.ClusterClient:
		node, err := c.MasterForKey(ctx, channel)
		if err != nil {
			return "", nil, false, err
		}
		return node.Options().Addr, func() *redis.PubSub { return node.SSubscribe(f.life) }, true, nil
	case *redis.Client:
		return "", func() *redis.PubSub { return c.Subscribe(f.life) }, false, nil
	default:
		return "", nil, false, errNoPubSub
	}
}

// errNoPubSub stays internal: a client without a supported pub/sub only
// makes its waiters poll.
var errNoPubSub = errors.New("coalesce: client type has no supported pub/sub")

// markDirty must be called with f.mu held.
func (f *Fleet) markDirty(sc *subConn, channel string) {
	sc.dirty[channel] = struct{}{}
	select {
	case sc.kick <- struct{}{}:
	default: // the writer has a wake-up pending already
	}
}

// Wait blocks until the fill notification arrives or the lease key is gone
// (its holder released it, or died and it expired), and then returns nil.
// It returns ctx.Err() when ctx ends, ErrClosed when the Fleet is closed,
// and the error of a failed lease poll, so that a caller never blocks on a
// Redis that is down. A wait is bounded by the lease's TTL plus one poll.
func (w *Watch) Wait(ctx context.Context) error {
	// The first poll is immediate: the holder may have finished before the
	// subscription was made.
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		if w.f.life.Err() != nil {
			return ErrClosed
		}
		select {
		case <-w.fired:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-w.f.life.Done():
			return ErrClosed
		case <-t.C:
			gone, err := w.f.leaseGone(ctx, w.leaseKey)
			if err != nil {
				return err
			}
			if gone {
				return nil
			}
			t.Reset(w.f.poll)
		}
	}
}

// Stop ends the watch; the channel is unsubscribed when its last watch
// stops. Stop may be called more than once.
func (w *Watch) Stop() {
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
func (f *Fleet) writeLoop(sc *subConn) {
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
func (f *Fleet) nextCommand(sc *subConn) (channel string, subscribe, ok bool) {
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
// until the Fleet closes.
func (f *Fleet) readLoop(sc *subConn) {
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
func (f *Fleet) confirm(sc *subConn, channel string) {
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
func (f *Fleet) settleAll(sc *subConn, channel string) {
	for _, cs := range sc.pending[channel] {
		settle(cs)
	}
	delete(sc.pending, channel)
}

// settle must be called with Fleet.mu held, which makes the check and the
// close one step.
func settle(cs *chanState) {
	select {
	case <-cs.settled:
	default:
		close(cs.settled)
	}
}

// deliver wakes every watch of channel.
func (f *Fleet) deliver(sc *subConn, channel string) {
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
