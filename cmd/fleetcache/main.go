// Command fleetcache is a caching reverse proxy (a sidecar) in front of one
// upstream: every instance pointed at the same Redis and prefix shares one
// HTTP cache, whatever language the service behind it is written in.
//
// Usage:
//
//	fleetcache -upstream http://127.0.0.1:9000 [flags]
//	fleetcache stats|inspect|config|clear|purge -redis URL -prefix P [-json] ...
//
// The second form runs one administrative command against a cache (see
// commands.go and docs/operations.md).
//
// Every flag may also be set by an environment variable named after it,
// FLEETCACHE_ followed by the flag's name in upper case with - as _ (for
// example FLEETCACHE_MAX_ENTRY_BYTES); a flag on the command line wins. With
// no -redis, fleetcache starts an embedded Redis on a loopback port and logs
// its address, so that a second instance can share it. See docs/sidecar.md.
//
// Exit status: 0 after a clean shutdown (SIGINT or SIGTERM), 1 when the
// proxy fails at run time, 2 for a configuration it cannot run with.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fleetcache/fleetcache/internal/proxy"
	"github.com/fleetcache/fleetcache/rediscache"
	"github.com/fleetcache/fleetcache/roundtrip"
	"github.com/fleetcache/fleetcache/rules/rulesfile"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise it comes from the module's build information.
var version string

// shutdownGrace bounds how long in-flight requests may run after SIGINT or
// SIGTERM before their connections are closed.
const shutdownGrace = 10 * time.Second

const (
	exitOK      = 0
	exitFailure = 1
	exitConfig  = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var code int
	if len(os.Args) > 1 && isCommand(os.Args[1]) {
		code = runCommand(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	} else {
		code = run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	}
	stop()
	os.Exit(code)
}

// run is the whole command, with its environment passed in so that tests
// can run it in process. It serves until ctx is done, then shuts down.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, logLevel, showVersion, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "fleetcache: %v (see fleetcache -h)\n", err)
		return exitConfig
	}
	if showVersion {
		fmt.Fprintln(stdout, "fleetcache", buildVersion())
		return exitOK
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel}))
	// go-redis logs every failed dial, to stderr unless told otherwise; the
	// proxy reports a Redis outage itself, once (at start, or when the
	// Transport's breaker opens), so go-redis's lines are for debugging.
	// Its logger is the process's: once run returns, stderr is no longer
	// this run's to write to.
	redis.SetLogger(rediscache.RedisLogger{Logger: cfg.Logger, Level: slog.LevelDebug})
	defer redis.SetLogger(rediscache.RedisLogger{Logger: slog.New(slog.DiscardHandler)})

	srv, err := proxy.Start(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "fleetcache: %v\n", err)
		if errors.Is(err, proxy.ErrConfig) {
			return exitConfig
		}
		return exitFailure
	}
	code := exitOK
	select {
	case <-ctx.Done():
		cfg.Logger.Info("shutting down", "grace", shutdownGrace)
	case err := <-srv.Failed():
		cfg.Logger.Error("serving failed", "err", err)
		code = exitFailure
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		cfg.Logger.Error("shutdown", "err", err)
		code = exitFailure
	}
	return code
}

// parseConfig reads the flags, each defaulting to its FLEETCACHE_*
// environment variable when that is set. It prints nothing but the usage
// for -h: the caller reports errors in one line.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (cfg proxy.Config, level slog.Level, showVersion bool, err error) {
	fs := flag.NewFlagSet("fleetcache", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.Listen, "listen", proxy.DefaultListen, "TCP `address` to serve on")
	fs.StringVar(&cfg.Upstream, "upstream", "", "the origin's `URL`, http:// or https:// (required)")
	fs.BoolVar(&cfg.UpstreamHost, "upstream-host", false, "send the upstream's host in Host, and key the cache by it, instead of the client's Host")
	fs.StringVar(&cfg.Redis, "redis", "", "Redis `URL`: redis://, rediss://, unix://, or redis://h1:p1?addr=h2:p2 for a cluster; empty starts an embedded Redis on a loopback port")
	fs.StringVar(&cfg.Prefix, "prefix", "", "`prefix` of every Redis key of this cache; instances sharing it share the cache (default: fleetcache:<hash of the upstream URL>:)")
	fs.BoolVar(&cfg.Private, "private", false, "be a private (single-user) cache, which may store responses marked private")
	fs.Int64Var(&cfg.MaxEntries, "max-entries", 0, "cache capacity in `entries`, seeded in Redis when the prefix has none yet (0: "+fmt.Sprint(rediscache.DefaultMaxEntries)+")")
	fs.Int64Var(&cfg.NearBytes, "near-bytes", 0, "`bytes` of responses this process keeps in its own memory in front of Redis, kept coherent with the fleet through Redis pub/sub (0: none; see docs/store.md)")
	fs.Int64Var(&cfg.MaxEntryBytes, "max-entry-bytes", 0, "largest body stored, in `bytes`; larger ones stream through uncached (0: 8 MiB)")
	fs.Int64Var(&cfg.MaxBufferedBytes, "max-buffered-bytes", 0, fmt.Sprintf("most `bytes` of bodies held in memory at once, over all requests, while read for the store; past it responses stream through uncached (0: %d MiB)", roundtrip.DefaultMaxBufferedBytes>>20))
	fs.BoolVar(&cfg.PassOverrideHeaders, "pass-override-headers", false, "forward X-HTTP-Method-Override, X-Original-URL, X-Forwarded-Scheme and the like (dropped by default); requests carrying one bypass the cache")
	fs.DurationVar(&cfg.ReadHeaderTimeout, "read-header-timeout", proxy.DefaultReadHeaderTimeout, "longest a client may take to send a request's header")
	fs.DurationVar(&cfg.ReadTimeout, "read-timeout", proxy.DefaultReadTimeout, "longest a client may take to send a whole request, body included")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", proxy.DefaultIdleTimeout, "longest a keep-alive connection stays open idle")
	fs.DurationVar(&cfg.WriteTimeout, "write-timeout", proxy.DefaultWriteTimeout, "longest one write of a response waits for the client to take it; each write that goes through starts it again")
	fs.DurationVar(&cfg.ResponseTimeout, "response-timeout", proxy.DefaultResponseTimeout, "longest a whole response may take, from the request's arrival to its last byte")
	fs.StringVar(&cfg.AdminPath, "admin-path", proxy.DefaultAdminPath, "`path` under which the proxy answers for itself: PATH/health, PATH/stats (JSON), PATH/metrics (Prometheus)")
	fs.StringVar(&cfg.AdminListen, "admin-listen", "", "TCP `address` of a listener of their own for the admin paths (recommended in production); empty: the main listener")
	fs.StringVar(&cfg.AdminToken, "admin-token", "", "bearer `token` that lets a caller purge: PURGE on a URL, POST ADMIN-PATH/purge (see docs/purge.md); empty: purging over HTTP is off. Prefer FLEETCACHE_ADMIN_TOKEN: a flag shows in ps")
	tagFields := fs.String("tag-fields", "", "comma-separated response `fields` whose tags a purge by tag finds (default Cache-Tag,Surrogate-Key; RFC 9875 Cache-Groups are always read)")
	fs.BoolVar(&cfg.StripTags, "strip-tags", false, "remove the tag fields from the responses sent to clients (they are stored either way)")
	fs.StringVar(&cfg.HealthPath, "health-path", "", "an extra `path` answered like ADMIN-PATH/health, and PATH/stats like ADMIN-PATH/stats (for setups older than -admin-path)")
	rulesFile := fs.String("rules", "", "YAML `file` of per-route rules (see docs/operations.md)")
	logLevel := fs.String("log-level", "info", "`level`: debug, info, warn or error; debug logs one line per request")
	fs.BoolVar(&showVersion, "version", false, "print the version and exit")

	// The environment first, so that the command line overrides it.
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || f.Name == "version" {
			return // FLEETCACHE_VERSION is too likely to be set by a build system to mean something else
		}
		name := "FLEETCACHE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" {
			if setErr := f.Value.Set(v); setErr != nil {
				err = fmt.Errorf("invalid value %q for %s: %w", v, name, setErr)
			}
		}
	})
	if err != nil {
		return cfg, level, false, err
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprintln(stderr, "usage: fleetcache -upstream URL [flags]\n       fleetcache stats|inspect|config|clear|purge -redis URL -prefix P ... (fleetcache COMMAND -h)\n\nA caching reverse proxy in front of one upstream. Every flag may be set by FLEETCACHE_<NAME> (e.g. FLEETCACHE_MAX_ENTRY_BYTES); the flag wins.")
			fs.PrintDefaults()
		}
		return cfg, level, false, err
	}
	if fs.NArg() > 0 {
		return cfg, level, false, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if showVersion {
		return cfg, level, true, nil
	}
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return cfg, level, false, fmt.Errorf("unknown log level %q (want debug, info, warn or error)", *logLevel)
	}
	if *tagFields != "" {
		for f := range strings.SplitSeq(*tagFields, ",") {
			if f = strings.TrimSpace(f); f != "" {
				cfg.TagFields = append(cfg.TagFields, f)
			}
		}
	}
	if *rulesFile != "" {
		if cfg.Rules, err = rulesfile.Load(*rulesFile); err != nil {
			return cfg, level, false, fmt.Errorf("rules: %w", err)
		}
	}
	return cfg, level, false, nil
}

// buildVersion is the version set at link time, else the main module's
// version and VCS revision as the go command recorded them.
func buildVersion() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v
}
