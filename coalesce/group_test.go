package coalesce

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/internal/poll"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// eventually polls cond until it holds, failing the test after a deadline.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, what, 10*time.Second, cond)
}

// waiting is a context that counts the callers of Do that wait on it: Do
// asks for Done only once it has joined or started the call.
type waiting struct {
	context.Context
	n *atomic.Int32
}

func (w waiting) Done() <-chan struct{} {
	w.n.Add(1)
	return w.Context.Done()
}

func TestGroup_ConcurrentCallsCollapseIntoOne(t *testing.T) {
	const callers = 200
	var g Group[string]
	var calls atomic.Int32
	release := make(chan struct{})
	fn := func(context.Context) (string, error) {
		calls.Add(1)
		<-release
		return "body", nil
	}

	type result struct {
		v      string
		shared bool
		err    error
	}
	results := make(chan result, callers)
	var joined atomic.Int32
	ctx := waiting{context.Background(), &joined}
	for range callers {
		go func() {
			v, shared, err := g.Do(ctx, "k", time.Minute, fn)
			results <- result{v, shared, err}
		}()
	}
	eventually(t, "every caller joined the call", func() bool { return joined.Load() == callers })
	close(release)

	for range callers {
		r := <-results
		if r.err != nil || r.v != "body" || !r.shared {
			t.Fatalf("Do = %q, shared %v, %v; want body, shared, nil", r.v, r.shared, r.err)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("fn ran %d times, want 1", n)
	}
}

func TestGroup_OutcomeOfFnReachesEveryCaller(t *testing.T) {
	errOrigin := errors.New("origin down")
	tests := []struct {
		name    string
		fn      func(context.Context) (int, error)
		want    int
		wantErr error
	}{
		{"value", func(context.Context) (int, error) { return 42, nil }, 42, nil},
		{"error", func(context.Context) (int, error) { return 0, errOrigin }, 0, errOrigin},
		{"panic becomes an error", func(context.Context) (int, error) { panic("boom") }, 0, ErrPanic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const callers = 5
			var g Group[int]
			release := make(chan struct{})
			fn := func(ctx context.Context) (int, error) {
				<-release
				return tt.fn(ctx)
			}
			var joined atomic.Int32
			ctx := waiting{context.Background(), &joined}
			var wg sync.WaitGroup
			for range callers {
				wg.Go(func() {
					v, _, err := g.Do(ctx, "k", time.Minute, fn)
					if v != tt.want || !errors.Is(err, tt.wantErr) {
						t.Errorf("Do = %d, %v; want %d, %v", v, err, tt.want, tt.wantErr)
					}
				})
			}
			eventually(t, "every caller joined the call", func() bool { return joined.Load() == callers })
			close(release)
			wg.Wait()
		})
	}
}

func TestGroup_CancelledFirstCallerDoesNotCancelFn(t *testing.T) {
	var g Group[string]
	release, started := make(chan struct{}), make(chan struct{})
	fnErr := make(chan error, 1)
	fn := func(ctx context.Context) (string, error) {
		close(started)
		<-release
		fnErr <- ctx.Err()
		return "body", nil
	}

	first, cancel := context.WithCancel(context.Background())
	firstDone := make(chan error, 1)
	go func() {
		_, _, err := g.Do(first, "k", time.Minute, fn)
		firstDone <- err
	}()
	<-started

	second := make(chan string, 1)
	var joined atomic.Int32
	go func() {
		v, _, _ := g.Do(waiting{context.Background(), &joined}, "k", time.Minute, fn)
		second <- v
	}()
	eventually(t, "the second caller joined", func() bool { return joined.Load() == 1 })

	cancel()
	if err := <-firstDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("first caller: %v, want context.Canceled", err)
	}
	close(release)
	if err := <-fnErr; err != nil {
		t.Fatalf("fn's context ended with the first caller: %v", err)
	}
	if v := <-second; v != "body" {
		t.Fatalf("second caller got %q, want body", v)
	}
}

func TestGroup_WaiterWhoseContextEndsReturnsAtOnce(t *testing.T) {
	var g Group[int]
	release, started := make(chan struct{}), make(chan struct{})
	defer close(release)
	fn := func(context.Context) (int, error) { close(started); <-release; return 1, nil }

	go func() { _, _, _ = g.Do(context.Background(), "k", time.Minute, fn) }()
	<-started

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, shared, err := g.Do(ctx, "k", time.Minute, fn)
	if !errors.Is(err, context.DeadlineExceeded) || shared {
		t.Fatalf("Do = shared %v, %v; want not shared, DeadlineExceeded", shared, err)
	}
}

func TestGroup_DoneContextDoesNotStartFn(t *testing.T) {
	var g Group[int]
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := g.Do(ctx, "k", time.Minute, func(context.Context) (int, error) {
		t.Error("fn ran for a caller whose context had ended")
		return 0, nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Do: %v, want context.Canceled", err)
	}
}

func TestGroup_TimeoutBoundsFn(t *testing.T) {
	tests := []struct {
		name         string
		timeout      time.Duration
		wantDeadline bool
	}{
		{"positive timeout sets a deadline", time.Minute, true},
		{"zero timeout sets none", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var g Group[bool]
			got, _, err := g.Do(context.Background(), "k", tt.timeout, func(ctx context.Context) (bool, error) {
				_, ok := ctx.Deadline()
				return ok, nil
			})
			if err != nil || got != tt.wantDeadline {
				t.Fatalf("fn saw a deadline: %v (err %v), want %v", got, err, tt.wantDeadline)
			}
		})
	}
}

func TestGroup_KeyIsForgottenAfterFnReturns(t *testing.T) {
	var g Group[int]
	var calls int
	for i := 1; i <= 3; i++ {
		v, shared, err := g.Do(context.Background(), "k", time.Minute, func(context.Context) (int, error) {
			calls++
			return calls, nil
		})
		if err != nil || v != i || shared {
			t.Fatalf("call %d: Do = %d, shared %v, %v; want %d, not shared", i, v, shared, err, i)
		}
	}
}

func TestGroup_DistinctKeysDoNotCollapse(t *testing.T) {
	var g Group[string]
	release := make(chan struct{})
	var running atomic.Int32
	var wg sync.WaitGroup
	for i := range 3 {
		key := fmt.Sprint("k", i)
		wg.Go(func() {
			v, _, err := g.Do(context.Background(), key, time.Minute, func(context.Context) (string, error) {
				running.Add(1)
				<-release
				return key, nil
			})
			if err != nil || v != key {
				t.Errorf("Do(%s) = %q, %v", key, v, err)
			}
		})
	}
	eventually(t, "each key runs on its own", func() bool { return running.Load() == 3 })
	close(release)
	wg.Wait()
}

func BenchmarkGroup_Do(b *testing.B) {
	fn := func(context.Context) (int, error) { return 1, nil }
	b.Run("uncontended", func(b *testing.B) {
		b.ReportAllocs()
		var g Group[int]
		ctx := context.Background()
		for b.Loop() {
			if _, _, err := g.Do(ctx, "k", time.Second, fn); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("contended", func(b *testing.B) {
		b.ReportAllocs()
		var g Group[int]
		ctx := context.Background()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, _, err := g.Do(ctx, "k", time.Second, fn); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
