package coalesce

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"golang.org/x/sync/singleflight"
)

// ErrPanic is wrapped by the error every caller of Group.Do gets when the
// shared function panicked. The panic is not re-raised: it happened on a
// goroutine of its own, and crashing the process for one bad key would take
// every other request down with it.
var ErrPanic = errors.New("coalesce: shared call panicked")

// Group collapses concurrent calls with the same key into one call of a
// function; every caller gets its result. The zero value is ready to use.
//
// It is a golang.org/x/sync/singleflight.Group with what a shared fetch
// needs added: the call is detached from every caller's context (it keeps
// the first caller's values, not its cancellation, and gets a deadline of
// its own), so the caller that started it may give up without killing the
// call the others wait for; each caller stops waiting the moment its own
// context ends; and a panic in the function is recovered on its goroutine
// and handed to every caller as an error. The value is handed to every
// caller as is, so T must be safe to share (immutable, or copied by the
// callers). fn must return or panic: one that calls runtime.Goexit leaves
// its callers waiting until their contexts end.
type Group[T any] struct {
	g singleflight.Group
}

// Do calls fn once for all the concurrent callers that pass the same key,
// and returns its result to each of them. shared reports whether the result
// went to more than one caller.
//
// fn gets context.WithoutCancel(ctx) of the caller that started the call,
// ending after timeout (no deadline when timeout is zero or negative: fn
// must then bound itself). When ctx ends first, Do returns ctx.Err() at once
// while fn goes on for the others. Once fn has returned the key is
// forgotten, so the next call runs fn again.
func (g *Group[T]) Do(ctx context.Context, key string, timeout time.Duration, fn func(ctx context.Context) (T, error)) (v T, shared bool, err error) {
	if err := ctx.Err(); err != nil {
		return v, false, err
	}
	ch := g.g.DoChan(key, func() (any, error) { return run(ctx, timeout, fn) })
	select {
	case r := <-ch:
		if r.Err != nil {
			return v, r.Shared, r.Err
		}
		return r.Val.(T), r.Shared, nil
	case <-ctx.Done():
		return v, false, ctx.Err()
	}
}

// run calls fn detached from ctx and turns a panic into an error, so that
// singleflight never sees one: it would re-raise it on a goroutine nobody
// can recover.
func run[T any](ctx context.Context, timeout time.Duration, fn func(ctx context.Context) (T, error)) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("%w: %v\n%s", ErrPanic, r, debug.Stack())
		}
	}()
	ctx = context.WithoutCancel(ctx)
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	return fn(ctx)
}
