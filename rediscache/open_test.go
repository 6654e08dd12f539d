package rediscache

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/internal/poll"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"

	"github.com/fleetcache/fleetcache/internal/redistest"
)

// Open against a Redis that cannot answer returns by the context's
// deadline, with an error a caller can branch on.
func TestOpen_DeadRedisHonoursTheDeadlineAndIsUnavailable(t *testing.T) {
	// A listener that accepts connections and never answers: a frozen
	// Redis, or a host behind a black hole.
	frozen, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := frozen.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		frozen.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})

	check := func(t *testing.T, url string) {
		t.Helper()
		const deadline = 300 * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		start := time.Now()
		s, err := Open(ctx, url, Options{Prefix: "o:"})
		took := time.Since(start)
		if s != nil {
			s.Close()
		}
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("err = %v, want one wrapping ErrUnavailable", err)
		}
		if took > deadline+time.Second {
			t.Errorf("Open took %v with a deadline of %v", took, deadline)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("err %q shows the password", err)
		}
	}
	t.Run("frozen", func(t *testing.T) {
		check(t, "redis://u:secret@"+frozen.Addr().String())
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if _, err := Open(ctx, "redis://"+frozen.Addr().String(), Options{Prefix: "o:"}); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want it to wrap the context's error too", err)
		}
	})
	redistest.Run(t, redistest.Backends, func(t *testing.T, r *redistest.Redis) {
		r.Kill(t)
		check(t, strings.Replace(r.URL, "redis://", "redis://u:secret@", 1))
	})
	t.Run("cluster", func(t *testing.T) {
		port, err := redistest.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		check(t, "redis://"+frozen.Addr().String()+"?addr="+addr)
	})
}

// A Redis that answers with an error is up: a wrong password is not
// "unavailable", and the caller sees the refusal.
func TestOpen_RefusalIsNotUnavailable(t *testing.T) {
	r := redistest.ServerWith(t)
	if err := r.Client.ConfigSet(context.Background(), "requirepass", "right").Err(); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), "redis://:wrong@"+r.Addr(), Options{Prefix: "o:"})
	if err == nil || errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want a refusal that does not wrap ErrUnavailable", err)
	}
	if strings.Contains(err.Error(), "wrong") && !strings.Contains(err.Error(), "WRONGPASS") {
		t.Errorf("err %q shows the password", err)
	}
	s, err := Open(context.Background(), "redis://:right@"+r.Addr(), Options{Prefix: "o:"})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// The URLs people get wrong are told what is wrong and shown the form
// wanted, and no password is ever echoed.
func TestNewClient_BadURLsSayWhatIsExpected(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"127.0.0.1:6380", `"127.0.0.1:6380" has no scheme; want redis://127.0.0.1:6380`},
		{"localhost:6379/0", "want redis://localhost:6379/0"},
		{"", "no Redis URL; want redis://[user:password@]host:port[/db]"},
		{"   ", "no Redis URL; want redis://"},
		{"user:secret@10.0.0.1:6379", "Redis URL has no scheme; want redis://[user:password@]host:port"},
		{"http://127.0.0.1:6379", `scheme "http"; want redis://`},
		{"redis://127.0.0.1:63x9", `malformed Redis URL "redis://127.0.0.1:63x9": invalid port ":63x9" after host; want redis://`},
		{"redis://u:secret@%zz", "malformed Redis URL (not shown: it has a password); want redis://"},
	} {
		c, err := NewClient(tc.url)
		if c != nil {
			c.Close()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewClient(%q) err = %v, want it to contain %q", tc.url, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("NewClient(%q) err %q shows the password", tc.url, err)
		}
	}
}

// records is a slog handler that keeps what it is given, safe for the
// goroutines go-redis logs from.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *records) Enabled(context.Context, slog.Level) bool { return true }
func (h *records) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *records) WithGroup(string) slog.Handler            { return h }
func (h *records) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.recs = append(h.recs, r.Clone())
	h.mu.Unlock()
	return nil
}

// lines renders the records as a text handler would.
func (h *records) lines() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.recs {
		var b bytes.Buffer
		th := slog.NewTextHandler(&b, &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return a
		}})
		_ = th.Handle(context.Background(), r)
		out = append(out, strings.TrimSpace(b.String()))
	}
	return out
}

// Options only seed the config; when Redis already holds other values,
// they win, and the store says so once, with both values.
func TestStore_OptionsOverriddenByRedisAreLoggedOnce(t *testing.T) {
	redistest.Run(t, redistest.Backends, func(t *testing.T, r *redistest.Redis) {
		ctx := context.Background()
		open := func(opts Options) *records {
			h := &records{}
			opts.Prefix, opts.Logger = "ov:", slog.New(h)
			s, err := Open(ctx, r.URL, opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			for range 3 {
				if _, _, err := s.Get(ctx, "http://example.com/", ""); err != nil {
					t.Fatal(err)
				}
			}
			return h
		}
		if got := open(Options{MaxEntries: 500, Shards: 4}).lines(); len(got) != 0 {
			t.Errorf("the instance that seeded the config logged %q", got)
		}
		if got := open(Options{}).lines(); len(got) != 0 {
			t.Errorf("an instance with default options logged %q", got)
		}
		if got := open(Options{MaxEntries: 500}).lines(); len(got) != 0 {
			t.Errorf("an instance that agrees logged %q", got)
		}
		got := open(Options{MaxEntries: 1000, Shards: 8, MaxBytes: DefaultMaxBytes}).lines()
		want := `level=WARN msg="rediscache: Redis already holds this cache's config, and it wins over Options: retune with HSET ov:config (shards cannot change)" max_entries.options=1000 max_entries.redis=500 shards.options=8 shards.redis=4`
		if len(got) != 1 || got[0] != want {
			t.Errorf("logged %q\nwant one line %q", got, want)
		}
	})
}

// Close is idempotent, and a store used after Close refuses: a transport
// still holding it serves from the origin without taking Redis for down.
func TestStore_CallsAfterCloseAreRefused(t *testing.T) {
	redistest.Run(t, redistest.Backends, func(t *testing.T, r *redistest.Redis) {
		ctx := context.Background()
		opened, err := Open(ctx, r.URL, Options{Prefix: "c:"})
		if err != nil {
			t.Fatal(err)
		}
		given, err := New(r.Client, Options{Prefix: "c:"})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []*Store{opened, given} {
			for range 2 {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}
			_, _, err := s.Get(ctx, "http://example.com/", "")
			var refused interface{ Refused() string }
			if !errors.Is(err, ErrClosed) || !errors.As(err, &refused) || refused.Refused() != "CLOSED" {
				t.Errorf("Get after Close: %v, want a CLOSED refusal wrapping ErrClosed", err)
			}
			if _, err := s.Put(ctx, response("http://example.com/", "b"), time.Minute, true); !errors.Is(err, ErrClosed) {
				t.Errorf("Put after Close: %v", err)
			}
			if err := s.Purge(ctx, "http://example.com/"); !errors.Is(err, ErrClosed) {
				t.Errorf("Purge after Close: %v", err)
			}
		}
		if err := r.Client.Ping(ctx).Err(); err != nil {
			t.Errorf("Close of a store made by New closed its client: %v", err)
		}
	})
}

// go-redis prints its own lines (a failed dial) to stderr; RedisLogger
// sends them to slog instead.
func TestRedisLogger_RoutesGoRedisLinesToSlog(t *testing.T) {
	h := &records{}
	RedisLogger{Logger: slog.New(h), Level: slog.LevelDebug}.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts: %s", 5, "refused")
	want := `level=DEBUG msg="connection pool: failed to dial after 5 attempts: refused" logger=go-redis`
	if got := h.lines(); len(got) != 1 || got[0] != want {
		t.Fatalf("logged %q, want %q", got, want)
	}

	// Installed, it receives go-redis's own lines.
	installed := &records{}
	redis.SetLogger(RedisLogger{Logger: slog.New(installed)})
	t.Cleanup(logging.Enable) // go-redis's default: stderr
	port, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := Open(ctx, "redis://127.0.0.1:"+strconv.Itoa(port), Options{Prefix: "l:"}); err == nil {
		t.Fatal("Open of a closed port succeeded")
	}
	poll.Until(t, "go-redis to log through the RedisLogger", 10*time.Second, func() bool { return len(installed.lines()) > 0 })
	if line := installed.lines()[0]; !strings.Contains(line, "level=INFO") || !strings.Contains(line, "logger=go-redis") {
		t.Errorf("go-redis line %q", line)
	}
}
