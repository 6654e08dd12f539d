package coalesce

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"
)

// ErrPanic is wrapped by the error every caller of Group.Do gets when the
// shared function panicked. The panic is not re-raised: it happened on a
// goroutine of its own, and crashing the process for one bad key would take
// every other request down with it.
var ErrPanic = errors.New("coalesce: shared call panicked")

// errGoexit is what the callers get when fn called runtime.Goexit (for
// example t.FailNow in a test): fn neither returned nor panicked.
var errGoexit = errors.New("coalesce: shared call exited without returning")

// Group collapses concurrent calls with the same key into one call of a
// function; every caller gets its result. The zero value is ready to use.
//
// The shared call runs on a goroutine of its own, detached from every
// caller's context: the caller that started it may give up without killing
// the call the others are waiting for. Each caller stops waiting the moment
// its own context ends. The value is handed to every caller as is, so T must
// be safe to share (immutable, or copied by the callers).
type Group[T any] struct {
	mu    sync.Mutex
	calls map[string]*call[T] // in flight, by key
}

type call[T any] struct {
	done chan struct{} // closed once val and err are set
	val  T
	err  error
	dups int // callers that joined; final once done is closed
}

// Do calls fn once for all the concurrent callers that pass the same key,
// and returns its result to each of them. shared reports whether the result
// went to more than one caller.
//
// fn gets a context derived from context.Background() that ends after
// timeout (no deadline when timeout is zero or negative: fn must then bound
// itself). When ctx ends first, Do returns ctx.Err() at once while fn goes on
// for the others. Once fn has returned the key is forgotten, so the next call
// runs fn again.
func (g *Group[T]) Do(ctx context.Context, key string, timeout time.Duration, fn func(ctx context.Context) (T, error)) (v T, shared bool, err error) {
	if err := ctx.Err(); err != nil {
		return v, false, err
	}
	g.mu.Lock()
	if g.calls == nil {
		g.calls = make(map[string]*call[T])
	}
	c, joined := g.calls[key]
	if joined {
		c.dups++
	} else {
		c = &call[T]{done: make(chan struct{})}
		g.calls[key] = c
	}
	g.mu.Unlock()

	if !joined {
		go g.run(key, c, timeout, fn)
	}
	select {
	case <-c.done:
		return c.val, joined || c.dups > 0, c.err
	case <-ctx.Done():
		return v, false, ctx.Err()
	}
}

// run calls fn and publishes its outcome, whatever way fn ends: a panic or a
// Goexit must not leave the waiters blocked.
func (g *Group[T]) run(key string, c *call[T], timeout time.Duration, fn func(ctx context.Context) (T, error)) {
	returned := false
	defer func() {
		if r := recover(); r != nil {
			c.err = fmt.Errorf("%w: %v\n%s", ErrPanic, r, debug.Stack())
		} else if !returned {
			c.err = errGoexit
		}
		g.mu.Lock()
		delete(g.calls, key)
		g.mu.Unlock()
		close(c.done)
	}()

	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()
	c.val, c.err = fn(ctx)
	returned = true
}
