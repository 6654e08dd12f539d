package fleetproc

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/internal/poll"

	"go.uber.org/goleak"
)

// CheckBodies fails the test unless there are want results and every one
// is a 200 carrying the origin's whole body.
func CheckBodies(t testing.TB, results []Result, o *Origin, want int) {
	t.Helper()
	if len(results) != want {
		t.Errorf("%d results, want %d", len(results), want)
	}
	const shown = 3
	bad := 0
	for _, r := range results {
		if r.Err == "" && r.Status == 200 && r.Len == len(o.Body) && r.Sum == o.Sum {
			continue
		}
		if bad++; bad <= shown {
			t.Errorf("process %d: status %d, %d bytes, err %q, Cache-Status %q; want 200 and the origin's %d bytes",
				r.Proc, r.Status, r.Len, r.Err, r.CacheStatus, len(o.Body))
		}
	}
	if bad > shown {
		t.Errorf("%d bad results in all", bad)
	}
}

// PollUntil checks cond until it holds, and fails the test when it still
// does not after within; detail, when not nil, says what was seen last.
func PollUntil(t testing.TB, what string, within time.Duration, cond func() bool, detail func() string) {
	t.Helper()
	if !poll.Wait(within, cond) {
		msg := ""
		if detail != nil {
			msg = ": " + detail()
		}
		t.Fatalf("waited %v for %s%s", within, what, msg)
	}
}

// NoLeaks fails the test if it leaves goroutines behind. Call it first: its
// cleanup then runs last, after servers, children and clients are gone.
func NoLeaks(t testing.TB) {
	t.Helper()
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// Logger returns a logger writing to the test's log, so that what the cache
// logs shows up with the test that caused it.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, nil))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
