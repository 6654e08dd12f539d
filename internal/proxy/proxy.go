// Package proxy is the caching reverse proxy that cmd/fleetcache runs and
// cmd/fleetdemo starts several of: one upstream, reached through a fleetcache
// Transport whose store lives in Redis (or in an embedded, in-process Redis).
package proxy

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/fleetcache/fleetcache/metrics"
	"github.com/fleetcache/fleetcache/policy"
	"github.com/fleetcache/fleetcache/rediscache"
	"github.com/fleetcache/fleetcache/roundtrip"
	"github.com/fleetcache/fleetcache/rules"
)

// Defaults for the fields of Config left empty. cmd/fleetcache shows them as
// its flags' defaults.
const (
	DefaultListen = "127.0.0.1:8080"

	// The client side's timeouts. A sidecar's clients are services next
	// to it, and a client slower than these is gone or hostile: each one
	// it keeps waiting holds a connection, a goroutine and an upstream
	// request.
	//
	// DefaultReadHeaderTimeout bounds reading a request's header: a few
	// KB, which no live client takes seconds to send (slowloris).
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultReadTimeout bounds reading a whole request, body included;
	// services that take large uploads raise it.
	DefaultReadTimeout = time.Minute
	// DefaultIdleTimeout closes a keep-alive connection idle that long.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultWriteTimeout is the longest one write of a response may
	// wait for the client to take it. The deadline moves on with every
	// write that goes through, so a download of any length is not cut
	// while the client reads, and one that stops reading is dropped
	// (http.Server's WriteTimeout, fixed from the request's start, would
	// cut every long download instead).
	DefaultWriteTimeout = 30 * time.Second
	// DefaultResponseTimeout bounds a whole response, from its request's
	// arrival to its last byte, so that a client reading a trickle, just
	// fast enough for the write timeout, cannot keep it forever: 6 GB
	// at 10 MB/s.
	DefaultResponseTimeout = 10 * time.Minute
)

// ErrConfig is wrapped by the errors Start returns for a configuration it
// cannot run with (as opposed to a failure at run time), so that a command
// can tell the two apart.
var ErrConfig = errors.New("invalid configuration")

// Config describes one proxy. Its zero value, plus an Upstream, is the
// recommended setup: a shared cache on 127.0.0.1:8080 with an embedded Redis.
type Config struct {
	// Upstream is the origin every request is forwarded to: an http or https
	// URL with a host. A path, if any, prefixes the request's path.
	Upstream string
	// UpstreamHost sends the upstream's own host in the Host header. By
	// default the client's Host is forwarded unchanged, as a sidecar in front
	// of a virtual-hosted service needs.
	UpstreamHost bool
	// Listen is the TCP address to serve on; "" means DefaultListen.
	Listen string
	// Redis is the store's URL, in any form rediscache.Open accepts. ""
	// starts an embedded in-process Redis on a free loopback port, which
	// other proxies may share through RedisURL.
	Redis string
	// Prefix starts every Redis key of this cache; "" means DefaultPrefix
	// of the upstream.
	Prefix string
	// Private makes a private cache (one user's), which may store responses
	// marked private. A proxy in front of several users must stay shared.
	Private bool
	// MaxEntries seeds the cache's capacity in Redis when it has none yet;
	// 0 means the store's default.
	MaxEntries int64
	// NearBytes bounds the store's tier in process memory; 0 means none
	// (rediscache.Options.NearBytes).
	NearBytes int64
	// MaxEntryBytes is the largest body stored; larger ones stream through
	// uncached. 0 means the Transport's default.
	MaxEntryBytes int64
	// MaxBufferedBytes bounds the bodies held in memory, over all
	// requests, while they are read for the store; past it responses
	// stream through uncached at their client's pace. 0 means
	// roundtrip.DefaultMaxBufferedBytes.
	MaxBufferedBytes int64
	// PassOverrideHeaders forwards the fields of policy.OverrideFields
	// (X-HTTP-Method-Override, X-Original-URL, X-Forwarded-Scheme, ...),
	// which the proxy otherwise drops: an upstream that honours one would
	// answer another request than the one the cache keys on. Requests
	// that carry one then bypass the cache.
	PassOverrideHeaders bool
	// The client side's timeouts; 0 means the Default of the same name.
	ReadHeaderTimeout, ReadTimeout, IdleTimeout, WriteTimeout, ResponseTimeout time.Duration
	// AdminPath is where the proxy answers for itself; "" means
	// DefaultAdminPath. PATH/health answers 200 "ok" for load balancers,
	// PATH/stats the counters as JSON, PATH/metrics Prometheus metrics.
	// Requests for any path under it never reach the upstream.
	AdminPath string
	// AdminListen, when set, is a TCP address of their own for the admin
	// paths, which the main listener then proxies like any other: what
	// production setups want, so that the service's clients cannot reach
	// them.
	AdminListen string
	// AdminToken, when set, lets a caller that sends it as
	// "Authorization: Bearer <token>" purge: PURGE on a URL, and POST
	// PATH/purge with a PurgeRequest. Without it purging over HTTP is off.
	// Whitespace around it (a secret file's newline) is ignored.
	AdminToken string
	// TagFields names the response fields read for tags
	// (roundtrip.Options.TagFields); nil means Cache-Tag and Surrogate-Key.
	TagFields []string
	// StripTags removes the tag fields from the responses the proxy sends
	// its clients (roundtrip.Options.StripTags).
	StripTags bool
	// HealthPath, when set, is answered like PATH/health, and
	// HealthPath+"/stats" like PATH/stats, for setups written before the
	// admin path.
	HealthPath string
	// Rules adjust what the cache does with the responses of some routes
	// (package rules, rulesfile); nil means none.
	Rules *rules.Set
	// Logger receives the startup line, warnings and, at debug level, one
	// line per request; nil means slog.Default().
	Logger *slog.Logger
}

// redisStartTimeout bounds the first exchange with Redis, which checks its
// address, password and the cache's configuration.
const redisStartTimeout = 5 * time.Second

// statsTimeout bounds the store's part of the stats path, so that a stuck
// Redis cannot hang a monitoring probe.
const statsTimeout = 2 * time.Second

// Server is a running proxy.
type Server struct {
	log      *slog.Logger
	ln       net.Listener
	srv      *http.Server
	adminLn  net.Listener // nil when the admin paths are on ln
	adminSrv *http.Server
	rt       *roundtrip.Transport
	upstream *http.Transport
	client   redis.UniversalClient
	store    *rediscache.Store
	embedded *miniredis.Miniredis // nil when Config.Redis was set
	redisURL string
	prefix   string
	failed   chan error
}

// Start validates cfg, opens the store (starting an embedded Redis when
// cfg.Redis is empty), listens on cfg.Listen and serves in the background
// until Shutdown. A Redis that does not answer at start is logged and the
// proxy serves uncached from the upstream until it answers, as it does
// whenever Redis fails later.
func Start(ctx context.Context, cfg Config) (_ *Server, err error) {
	upstream, err := parseUpstream(cfg.Upstream)
	if err != nil {
		return nil, err
	}
	if cfg.MaxEntries < 0 {
		return nil, fmt.Errorf("%w: max entries %d is negative", ErrConfig, cfg.MaxEntries)
	}
	if cfg.NearBytes < 0 {
		return nil, fmt.Errorf("%w: near bytes %d is negative", ErrConfig, cfg.NearBytes)
	}
	if cfg.MaxEntryBytes < 0 {
		return nil, fmt.Errorf("%w: max entry bytes %d is negative", ErrConfig, cfg.MaxEntryBytes)
	}
	if cfg.MaxBufferedBytes < 0 {
		return nil, fmt.Errorf("%w: max buffered bytes %d is negative", ErrConfig, cfg.MaxBufferedBytes)
	}
	for _, d := range []time.Duration{cfg.ReadHeaderTimeout, cfg.ReadTimeout, cfg.IdleTimeout, cfg.WriteTimeout, cfg.ResponseTimeout} {
		if d < 0 {
			return nil, fmt.Errorf("%w: timeout %v is negative", ErrConfig, d)
		}
	}
	root, err := checkAdminPath(cmp.Or(cfg.AdminPath, DefaultAdminPath))
	if err != nil {
		return nil, err
	}
	if cfg.HealthPath != "" && !strings.HasPrefix(cfg.HealthPath, "/") {
		return nil, fmt.Errorf("%w: health path %q does not start with /", ErrConfig, cfg.HealthPath)
	}
	s := &Server{log: cfg.Logger, failed: make(chan error, 2)}
	if s.log == nil {
		s.log = slog.Default()
	}
	// Release whatever was acquired when a later step fails.
	defer func() {
		if err != nil {
			if s.ln != nil {
				s.ln.Close()
			}
			if s.adminLn != nil {
				s.adminLn.Close()
			}
			s.closeStore()
		}
	}()

	s.redisURL = cfg.Redis
	if s.redisURL == "" {
		s.embedded = miniredis.NewMiniRedis()
		// Without ClockTTL miniredis never expires a key on its own, and
		// entries and fill leases would outlive their TTLs.
		s.embedded.ClockTTL(true)
		if err := s.embedded.Start(); err != nil {
			return nil, fmt.Errorf("starting the embedded redis: %w", err)
		}
		s.redisURL = "redis://" + s.embedded.Addr()
	}
	client, err := rediscache.NewClient(s.redisURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	s.client = client
	s.prefix = cmp.Or(cfg.Prefix, DefaultPrefix(upstream))
	s.store, err = rediscache.New(client, rediscache.Options{
		Prefix:     s.prefix,
		MaxEntries: cfg.MaxEntries,
		NearBytes:  cfg.NearBytes,
		Logger:     s.log,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	// A Redis that does not answer at start is reported, not fatal: the
	// cache fails open, and a sidecar that refused to start during a Redis
	// outage would turn it into an outage of the service behind it.
	pingCtx, cancel := context.WithTimeout(ctx, redisStartTimeout)
	if err := client.Ping(pingCtx).Err(); err != nil {
		s.log.Warn("redis does not answer: serving uncached until it does", "redis", redact(s.redisURL), "err", err)
	}
	cancel()

	listen := cmp.Or(cfg.Listen, DefaultListen)
	s.ln, err = net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", listen, err)
	}
	// One upstream takes every request, so keep as many idle connections to
	// it as http.Transport keeps in total, not the default two. Compression
	// is left to the client: the upstream sees the Accept-Encoding it sent.
	s.upstream = http.DefaultTransport.(*http.Transport).Clone()
	s.upstream.MaxIdleConnsPerHost = s.upstream.MaxIdleConns
	s.upstream.DisableCompression = true
	m := metrics.New(s.store, metrics.Options{Cache: s.prefix})
	s.rt = roundtrip.New(s.store, roundtrip.Options{
		Transport:        toUpstream{addr: upstream.Host, next: s.upstream},
		Private:          cfg.Private,
		MaxEntryBytes:    cfg.MaxEntryBytes,
		MaxBufferedBytes: cfg.MaxBufferedBytes,
		Logger:           slog.New(infoAndAbove{s.log.Handler()}),
		Observer:         m,
		Rules:            cfg.Rules,
		TagFields:        cfg.TagFields,
		StripTags:        cfg.StripTags,
	})
	m.Watch(s.rt)
	adm := s.newAdmin(root, cfg.HealthPath, m)
	// A field value loses its surrounding whitespace (RFC 9110 §5.5), so a
	// token read with a file's newline could never match: it goes too.
	token := strings.TrimSpace(cfg.AdminToken)
	adm.purge = &purger{s: s, token: sha256.Sum256([]byte(token)), on: token != "", upstream: upstream, upstreamHost: cfg.UpstreamHost}

	writes := writeLimits{
		perWrite: cmp.Or(cfg.WriteTimeout, DefaultWriteTimeout),
		response: cmp.Or(cfg.ResponseTimeout, DefaultResponseTimeout),
	}
	mainAdmin := adm // the admin paths, on the main listener unless they have their own
	if cfg.AdminListen != "" {
		mainAdmin = nil
		s.adminLn, err = net.Listen("tcp", cfg.AdminListen)
		if err != nil {
			return nil, fmt.Errorf("listening on %s for the admin paths: %w", cfg.AdminListen, err)
		}
		s.adminSrv = s.serve(s.adminLn, writes.apply(s.adminOnly(adm)), cfg)
	}
	s.srv = s.serve(s.ln, writes.apply(s.handler(upstream, cfg.UpstreamHost, cfg.PassOverrideHeaders, mainAdmin, root+"/purge")), cfg)
	s.log.Info("fleetcache proxy listening", "listen", s.Addr(), "upstream", upstream.String(),
		"redis", redact(s.redisURL), "embedded_redis", s.embedded != nil, "prefix", s.prefix,
		"admin", s.AdminAddr()+root)
	return s, nil
}

// serve serves h on ln in the background with cfg's timeouts, reporting a
// failure on s.failed.
func (s *Server) serve(ln net.Listener, h http.Handler, cfg Config) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cmp.Or(cfg.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		ReadTimeout:       cmp.Or(cfg.ReadTimeout, DefaultReadTimeout),
		IdleTimeout:       cmp.Or(cfg.IdleTimeout, DefaultIdleTimeout),
		// No WriteTimeout: writeLimits sets a deadline per write. An idle
		// connection keeps none, so that the next request's first write
		// does not meet the last one's.
		ConnState: func(c net.Conn, state http.ConnState) {
			if state == http.StateIdle {
				c.SetWriteDeadline(time.Time{})
			}
		},
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.failed <- err
		}
	}()
	return srv
}

// AdminAddr returns the address the admin paths are served on: the admin
// listener's, or the main one's.
func (s *Server) AdminAddr() string {
	if s.adminLn != nil {
		return s.adminLn.Addr().String()
	}
	return s.Addr()
}

// infoAndAbove passes on a handler's records at Info and above: the proxy
// writes its own debug line per request, with what the client was sent, and
// the Transport's would only repeat it.
type infoAndAbove struct{ slog.Handler }

func (h infoAndAbove) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo && h.Handler.Enabled(ctx, l)
}

func (h infoAndAbove) WithAttrs(attrs []slog.Attr) slog.Handler {
	return infoAndAbove{h.Handler.WithAttrs(attrs)}
}

func (h infoAndAbove) WithGroup(name string) slog.Handler {
	return infoAndAbove{h.Handler.WithGroup(name)}
}

// Addr returns the address the proxy listens on, with the port chosen when
// Config.Listen asked for port 0.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// RedisURL returns the URL of the store: Config.Redis, or the embedded
// Redis's redis://127.0.0.1:PORT, which another proxy may be given to share
// this one's cache.
func (s *Server) RedisURL() string { return s.redisURL }

// Stats returns the Transport's counters.
func (s *Server) Stats() roundtrip.Stats { return s.rt.Stats() }

// Failed receives the error that stopped the server from serving on its own
// (its listener failed). It receives nothing after Shutdown.
func (s *Server) Failed() <-chan error { return s.failed }

// Shutdown stops accepting connections, lets in-flight requests finish until
// ctx is done (then closes their connections), and releases the Transport,
// the connections to the upstream, the store and the embedded Redis, in
// that order. Proxies sharing this one's embedded Redis lose their cache
// when it stops.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	for _, srv := range []*http.Server{s.adminSrv, s.srv} {
		if srv == nil {
			continue
		}
		if e := srv.Shutdown(ctx); e != nil {
			// In-flight requests overran ctx: cut them off rather than hang.
			err = errors.Join(err, e, srv.Close())
		}
	}
	err = errors.Join(err, s.rt.Close())
	s.upstream.CloseIdleConnections()
	return errors.Join(err, s.closeStore())
}

func (s *Server) closeStore() error {
	var err error
	if s.store != nil {
		err = s.store.Close() // its pub/sub connections; the client is ours
	}
	if s.client != nil {
		err = errors.Join(err, s.client.Close())
	}
	if s.embedded != nil {
		s.embedded.Close()
	}
	return err
}

// parseUpstream accepts an absolute http or https URL with a host and no
// query or fragment, which would have no meaning for a prefix.
func parseUpstream(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, fmt.Errorf("%w: no upstream (an http:// or https:// URL)", ErrConfig)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: upstream: %w", ErrConfig, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("%w: upstream %q is not an http:// or https:// URL of the form scheme://host[:port][/path]", ErrConfig, raw)
	}
	return u, nil
}

// redact hides the password of a Redis URL that goes into a message.
func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return "URL"
}

// DefaultPrefix is the key prefix of the proxies in front of upstream when
// none is given: "fleetcache:" and a short hash of the upstream's URL. Every
// proxy of one upstream shares a cache by default, and proxies of different
// upstreams sharing one Redis never serve each other's responses, even when
// their clients use the same Host (every sidecar on localhost:8080).
func DefaultPrefix(upstream *url.URL) string {
	sum := sha256.Sum256([]byte(strings.ToLower(upstream.Scheme+"://"+upstream.Host) + upstream.Path))
	return "fleetcache:" + hex.EncodeToString(sum[:4]) + ":"
}

// handler answers the admin paths itself, unless adm is nil, and proxies
// everything else to upstream, once the path's dot segments are resolved,
// except purge requests (PURGE, and purgePath when adm is nil), which it
// refuses rather than hand the admin token to the upstream.
func (s *Server) handler(upstream *url.URL, upstreamHost, passOverrides bool, adm *admin, purgePath string) http.Handler {
	overrides := policy.OverrideFields()
	rp := &httputil.ReverseProxy{
		// Rewrite, unlike Director, runs after the hop-by-hop fields
		// (RFC 9110 §7.6.1) and any client-sent X-Forwarded-For, -Host,
		// -Proto and Forwarded are removed.
		Rewrite: func(pr *httputil.ProxyRequest) {
			if !passOverrides {
				for _, name := range overrides {
					delete(pr.Out.Header, name)
				}
			}
			pr.SetURL(upstream)
			if !upstreamHost && pr.In.Host != "" {
				// The URL names the client's host too, so that the cache
				// keys entries by the URI the client asked for and keeps
				// the upstream's virtual hosts apart; toUpstream still
				// sends the request to the upstream's address.
				pr.Out.Host = pr.In.Host
				pr.Out.URL.Host = pr.In.Host
			}
			// Append to the chain a load balancer in front may have
			// started, as nginx's $proxy_add_x_forwarded_for does.
			if prior := pr.In.Header["X-Forwarded-For"]; len(prior) > 0 {
				pr.Out.Header["X-Forwarded-For"] = append([]string(nil), prior...)
			}
			pr.SetXForwarded()
			// A gateway names itself in Via (RFC 9110 §7.6.3).
			pr.Out.Header.Add("Via", via(pr.In))
		},
		Transport:    s.rt,
		ErrorHandler: s.upstreamError,
		ErrorLog:     slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, ok := s.resolved(w, r)
		switch {
		case !ok:
		case adm != nil && (adm.owns(r.URL.Path) || r.Method == MethodPurge):
			adm.ServeHTTP(w, r)
		case r.Method == MethodPurge || r.URL.Path == purgePath:
			// Never the upstream's to see: it may carry the admin token.
			w.Header().Set("Cache-Control", "no-store")
			status := http.StatusNotFound
			if r.Method == MethodPurge {
				status = http.StatusMethodNotAllowed
			}
			http.Error(w, "fleetcache: send purge requests to the admin listener", status)
		default:
			rp.ServeHTTP(w, withClientBody(r))
		}
	})
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		h = s.logRequests(h)
	}
	return h
}

// adminOnly serves the admin paths on a listener of their own.
func (s *Server) adminOnly(adm *admin) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, ok := s.resolved(w, r)
		switch {
		case !ok:
		case adm.owns(r.URL.Path) || r.Method == MethodPurge:
			adm.ServeHTTP(w, r)
		default:
			w.Header().Set("Cache-Control", "no-store")
			http.NotFound(w, r)
		}
	})
}

// resolved returns r with the dot segments of its path resolved, or answers
// 400 and returns false for a path the proxy refuses.
func (s *Server) resolved(w http.ResponseWriter, r *http.Request) (*http.Request, bool) {
	r, ok := resolved(r)
	if !ok {
		s.log.Debug("bad path", "method", r.Method, "uri", r.RequestURI)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		policy.CacheStatus{Detail: "bad-path"}.AppendTo(w.Header(), roundtrip.DefaultName)
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintln(w, "fleetcache: bad path")
	}
	return r, ok
}

// resolved returns r with the dot segments of its path resolved
// (resolvePath) and its escaping normalised as the cache keys it
// (policy.NormalizePath), so that the upstream is asked for the path the
// answer is stored under; and false for a path the proxy refuses.
func resolved(r *http.Request) (*http.Request, bool) {
	escaped := r.URL.EscapedPath()
	clean, err := resolvePath(escaped)
	if err != nil {
		return r, false
	}
	clean = policy.NormalizePath(clean)
	if clean == escaped {
		return r, true
	}
	path, err := url.PathUnescape(clean)
	if err != nil {
		return r, false
	}
	// A shallow copy, as http.StripPrefix makes: the handler must not
	// change the request it was given.
	r2 := new(http.Request)
	*r2 = *r
	r2.URL = new(url.URL)
	*r2.URL = *r.URL
	r2.URL.Path, r2.URL.RawPath = path, clean
	return r2, true
}

// writeLimits bounds how long a response may wait for its client:
// perWrite for each write, response for the whole of it.
type writeLimits struct{ perWrite, response time.Duration }

func (l writeLimits) apply(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&deadlineWriter{
			ResponseWriter: w,
			rc:             http.NewResponseController(w),
			perWrite:       l.perWrite,
			end:            time.Now().Add(l.response),
		}, r)
	})
}

// deadlineWriter sets the connection's write deadline before each write: a
// write has perWrite to go through, and none may end after end. What the
// handler flushes goes out right after a write, under its deadline.
type deadlineWriter struct {
	http.ResponseWriter
	rc       *http.ResponseController
	perWrite time.Duration
	end      time.Time
}

func (w *deadlineWriter) extend() {
	d := time.Now().Add(w.perWrite)
	if d.After(w.end) {
		d = w.end
	}
	_ = w.rc.SetWriteDeadline(d) // fails only for a writer without deadlines, which has nothing to bound
}

func (w *deadlineWriter) WriteHeader(code int) {
	w.extend()
	w.ResponseWriter.WriteHeader(code)
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.extend()
	return w.ResponseWriter.Write(p)
}

func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// toUpstream sends every request to the upstream's address, whatever host
// its URL names.
type toUpstream struct {
	addr string
	next http.RoundTripper
}

func (t toUpstream) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != t.addr {
		req = req.Clone(req.Context()) // a RoundTripper must not change its request
		req.URL.Host = t.addr
	}
	return t.next.RoundTrip(req)
}

func allowRead(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

// via is this proxy's Via member for a request: the protocol it came in
// with, and a pseudonym for the proxy.
func via(r *http.Request) string {
	proto := strconv.Itoa(r.ProtoMajor) + "." + strconv.Itoa(r.ProtoMinor)
	if r.ProtoMajor >= 2 {
		proto = strconv.Itoa(r.ProtoMajor)
	}
	return proto + " fleetcache"
}

// upstreamError answers when the upstream gave no answer (and the cache had
// nothing it could serve instead): 504 when it did not answer in time, 502
// when it could not be reached, as nginx and other gateways do.
func (s *Server) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	status, what := http.StatusBadGateway, "upstream unreachable"
	var nerr net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &nerr) && nerr.Timeout() {
		status, what = http.StatusGatewayTimeout, "upstream timed out"
	}
	if b, ok := r.Context().Value(clientBodyKey{}).(*clientBody); ok && b.failed() != nil {
		// The client did not send the body it announced in time (the
		// read timeout) or went away while sending it.
		status, what = http.StatusRequestTimeout, "request body incomplete"
		s.log.Debug(what, "method", r.Method, "uri", r.URL.RequestURI(), "err", b.failed())
	} else if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		// The client went away; nobody reads the answer.
		s.log.Debug("client gone", "method", r.Method, "uri", r.URL.RequestURI(), "err", err)
	} else {
		s.log.Warn(what, "method", r.Method, "uri", r.URL.RequestURI(), "err", err)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	policy.CacheStatus{Detail: strings.ReplaceAll(what, " ", "-")}.AppendTo(w.Header(), roundtrip.DefaultName)
	w.WriteHeader(status)
	fmt.Fprintln(w, "fleetcache: "+what)
}

// clientBody is a request's body that remembers why reading it failed, so
// that a client too slow to send it is not reported as the upstream's
// failure.
type clientBody struct {
	io.ReadCloser
	mu  sync.Mutex // the upstream transport reads the body on a goroutine of its own
	err error
}

// clientBodyKey finds a request's clientBody in its context, which the
// ReverseProxy passes on to its error handler (the body it wraps).
type clientBodyKey struct{}

// withClientBody returns r with its body, if any, wrapped in a clientBody.
func withClientBody(r *http.Request) *http.Request {
	if r.Body == nil || r.Body == http.NoBody {
		return r
	}
	b := &clientBody{ReadCloser: r.Body}
	r = r.WithContext(context.WithValue(r.Context(), clientBodyKey{}, b))
	r.Body = b
	return r
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.mu.Lock()
		b.err = err
		b.mu.Unlock()
	}
	return n, err
}

func (b *clientBody) failed() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// logRequests writes one debug line per request once it is answered, or
// aborted: ReverseProxy panics with http.ErrAbortHandler when the client
// stops taking the body (the write timeout) or the upstream's breaks off.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := &recorder{ResponseWriter: w, status: http.StatusOK}
		aborted := true
		defer func() {
			s.log.Debug("request", "method", r.Method, "uri", r.URL.RequestURI(), "host", r.Host,
				"status", rw.status, "bytes", rw.bytes, "cache_status", w.Header().Get("Cache-Status"),
				"duration", time.Since(start), "aborted", aborted)
		}()
		next.ServeHTTP(rw, r)
		aborted = false
	})
}

// recorder notes the status and size of a response. Unwrap lets
// http.ResponseController (which ReverseProxy uses to flush streamed
// bodies) reach the underlying writer.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote && code >= 200 {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	r.wrote = true
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
