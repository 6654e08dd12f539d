package rediscache

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// RedisLogger sends go-redis's own log lines (a failed dial, a dropped
// pub/sub connection), which go-redis otherwise prints to stderr through
// the standard log package, to a slog.Logger. go-redis has one logger per
// process: install it once, early in main.
//
//	redis.SetLogger(rediscache.RedisLogger{Logger: logger, Level: slog.LevelDebug})
//
// A Redis that is down costs a line per failed dial (several for one failed
// Open); the transport reports the outage itself, once, when its breaker
// opens, which is why the sidecar logs go-redis's lines at Debug.
type RedisLogger struct {
	Logger *slog.Logger // nil means slog.Default()
	Level  slog.Level   // the level of every line; the zero value is Info
}

// Printf implements go-redis's logging interface (redis.SetLogger).
func (l RedisLogger) Printf(ctx context.Context, format string, args ...any) {
	log := l.Logger
	if log == nil {
		log = slog.Default()
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if !log.Enabled(ctx, l.Level) {
		return // not worth formatting
	}
	log.Log(ctx, l.Level, strings.TrimPrefix(fmt.Sprintf(format, args...), "redis: "), "logger", "go-redis")
}
