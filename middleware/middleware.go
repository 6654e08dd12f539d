// Package middleware caches a service's own responses for all its replicas:
// an http.Handler middleware that puts the fleet's shared cache in front of
// the handler it wraps.
//
// It is package roundtrip's transport with the handler as its origin: the
// same policy, store, coalescing and fleet lease decide and do everything,
// so what docs/transport.md says of the transport holds here too. A burst of
// identical requests runs the handler once for the whole fleet; a stale
// entry is revalidated by calling the handler with the cache's conditional
// request (a handler that answers If-None-Match, as http.ServeContent does,
// answers 304 cheaply); a POST, PUT, PATCH or DELETE through any replica
// invalidates the URL for all of them; stale-while-revalidate and
// stale-if-error apply, a handler that panics counting as a failed origin.
//
// The cache is a shared one, and the handler's users are told apart by their
// cookies: a response that sets a cookie, one marked private, and one to a
// request with Authorization or a Cookie is never shared unless it says
// public or s-maxage (Options.SharedCookies names cookies that do not count).
package middleware

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/fleetcache/fleetcache/roundtrip"
)

// Options configure a Cache. The zero value is the recommended setup.
type Options struct {
	// Cache configures the cache as for roundtrip.New, whose zero value is
	// the recommended setup. Its Transport is not used: the wrapped handler
	// is the origin. CookieAuth is always on (see SharedCookies).
	Cache roundtrip.Options
	// SharedCookies names the cookies that never change what the handler
	// answers, such as analytics or consent cookies. A request whose
	// cookies are all named here is cached as if it had none; the handler
	// still gets them. A response to a request with any other cookie is
	// shared only when it says public or s-maxage.
	SharedCookies []string
}

// Cache is the shared cache a middleware puts in front of handlers. It is
// safe for concurrent use.
type Cache struct {
	t      *roundtrip.Transport
	log    *slog.Logger
	shared map[string]bool // Options.SharedCookies
}

// NewCache returns a Cache that keeps responses in store, the store
// roundtrip.New takes (a *rediscache.Store shares them, and the work of
// filling them, with every process on the same Redis and prefix).
func NewCache(store roundtrip.Store, opts Options) *Cache {
	c := &Cache{log: opts.Cache.Logger}
	if c.log == nil {
		c.log = slog.Default()
	}
	if len(opts.SharedCookies) > 0 {
		c.shared = make(map[string]bool, len(opts.SharedCookies))
		for _, name := range opts.SharedCookies {
			c.shared[name] = true
		}
	}
	o := opts.Cache
	o.Transport = origin{log: c.log}
	o.CookieAuth = true
	c.t = roundtrip.New(store, o)
	return c
}

// New returns a middleware that caches the responses of the handlers it
// wraps in store: NewCache(store, opts).Wrap, for a program whose cache
// lives as long as the process. Wrap the whole router (see Cache.Wrap).
func New(store roundtrip.Store, opts Options) func(http.Handler) http.Handler {
	return NewCache(store, opts).Wrap
}

// Wrap returns next with the cache in front of it. Every handler wrapped by
// one Cache shares its entries, its coalescing and its background work, so
// calling Wrap once per request, as some frameworks' adapters do, costs
// nothing.
//
// The handler may be called after the request that caused the call was
// answered: to refresh an entry served under stale-while-revalidate, or to
// finish a fill that other callers wait for when the first caller gave up.
// Such a call gets the first caller's request (URL, Host, RemoteAddr, TLS,
// header, context values) with a context of its own, so next must not rely
// on per-request state that a framework recycles once its ServeHTTP
// returns: wrap the router as a whole (an http.ServeMux, chi.Mux,
// gin.Engine or echo.Echo), not a handler inside it.
func (c *Cache) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { c.serve(w, r, next) })
}

// Close waits for the background work (refreshes, fills that callers gave
// up on) and stops the fleet subscription. Call it once the server has shut
// down. The store is the caller's to close.
func (c *Cache) Close() error { return c.t.Close() }

// Stats returns the cache's counters.
func (c *Cache) Stats() roundtrip.Stats { return c.t.Stats() }

func (c *Cache) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	if r.Method == http.MethodConnect || len(r.Header["Upgrade"]) > 0 {
		// A tunnel or a protocol switch: nothing to cache, and it must not
		// queue behind another caller's request for the URL.
		next.ServeHTTP(w, r)
		return
	}
	cl := &call{w: w, r: r, next: next}
	cl.req = c.cacheRequest(r, cl)
	defer cl.end() // last: the body is closed first, which stops a handler streaming into it
	resp, err := c.t.RoundTrip(cl.req)
	if resp != nil {
		defer resp.Body.Close()
	}
	if cl.respond() {
		return // the handler answered the caller itself
	}
	var panicked *panicError
	switch {
	case err == nil:
		c.write(w, resp, cl)
	case errors.As(err, &panicked):
		panic(panicked.value) // the caller gets what net/http does of a panicking handler
	case errors.Is(err, errPassThrough):
		// The handler took over another caller's response (a 1xx, a
		// hijack): this one is answered by the handler, uncached, too.
		next.ServeHTTP(w, r)
	case r.Context().Err() != nil:
		// The caller is gone.
	case errors.Is(err, context.DeadlineExceeded):
		c.log.Warn("fleetcache middleware: handler too slow", "url", cl.req.URL.String(), "err", err)
		http.Error(w, "504 Gateway Timeout", http.StatusGatewayTimeout)
	default:
		c.log.Warn("fleetcache middleware: no response", "url", cl.req.URL.String(), "err", err)
		http.Error(w, "502 Bad Gateway", http.StatusBadGateway)
	}
}

// cacheRequest is r as the cache sees it: an absolute URL (the scheme from
// the connection, the host from Host), and no Cookie field when every
// cookie is shared. It carries cl to the origin.
func (c *Cache) cacheRequest(r *http.Request, cl *call) *http.Request {
	req := r.WithContext(context.WithValue(r.Context(), callKey{}, cl))
	u := *r.URL
	u.Scheme, u.Host = "http", r.Host
	if r.TLS != nil {
		u.Scheme = "https"
	}
	req.URL = &u
	if c.shared != nil && len(r.Header["Cookie"]) > 0 && c.allShared(r.Header["Cookie"]) {
		req.Header = r.Header.Clone()
		delete(req.Header, "Cookie")
	}
	return req
}

// allShared reports whether every cookie of the Cookie lines is named in
// SharedCookies. A part without a name is one the handler may read some
// other way: not shared.
func (c *Cache) allShared(lines []string) bool {
	for _, line := range lines {
		for part := range strings.SplitSeq(line, ";") {
			name, _, _ := strings.Cut(part, "=")
			if !c.shared[strings.TrimSpace(name)] {
				return false
			}
		}
	}
	return true
}

// write sends the cache's response to the caller, flushing where the
// handler flushed when the body is the handler's own stream.
func (c *Cache) write(w http.ResponseWriter, resp *http.Response, cl *call) {
	h := w.Header()
	for k, v := range resp.Header {
		h[k] = v
	}
	if resp.ContentLength >= 0 && len(h["Content-Length"]) == 0 && bodyAllowed(resp.StatusCode) {
		h["Content-Length"] = []string{strconv.FormatInt(resp.ContentLength, 10)}
	}
	w.WriteHeader(resp.StatusCode)
	mark := cl.flushMark.Load()
	if mark > 0 {
		flush(w)
	}
	bufp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bufp)
	buf := *bufp
	var copied int64
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return // the caller is gone
			}
			if mark = cl.flushMark.Load(); mark-1 > copied {
				flush(w) // the handler flushed bytes just written
			}
			copied += int64(n)
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			return
		default:
			var panicked *panicError
			if errors.As(err, &panicked) {
				panic(panicked.value)
			}
			// The body broke off: abort the response, so that the
			// caller cannot take what it got for the whole.
			panic(http.ErrAbortHandler)
		}
	}
}

var copyBuffers = sync.Pool{New: func() any {
	b := make([]byte, 32<<10)
	return &b
}}

func flush(w http.ResponseWriter) {
	_ = http.NewResponseController(w).Flush()
}

// bodyAllowed reports whether a response with status may have content
// (RFC 9110 §6.4.1).
func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}
