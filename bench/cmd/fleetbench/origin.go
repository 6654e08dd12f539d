package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// origin is the loopback HTTP server behind every cache. A request for
// /any/path?size=N&delay=D answers N bytes after D, with the configured
// Cache-Control and, when enabled, an ETag that a matching If-None-Match
// turns into a 304. It counts the requests it receives: the figure that
// shows whether a cache collapses a stampede.
type origin struct {
	srv          *http.Server
	url          string
	body         []byte
	cacheControl string
	etag         bool
	requests     atomic.Int64
}

func startOrigin(maxBody int, cacheControl string, etag bool) (*origin, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("origin: %w", err)
	}
	o := &origin{
		url:          "http://" + ln.Addr().String(),
		body:         bytes.Repeat([]byte("fleetcache-"), maxBody/11+1)[:maxBody],
		cacheControl: cacheControl,
		etag:         etag,
	}
	o.srv = &http.Server{Handler: o, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = o.srv.Serve(ln) }()
	return o, nil
}

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.requests.Add(1)
	q := r.URL.Query()
	size, err := strconv.Atoi(q.Get("size"))
	if err != nil || size < 0 || size > len(o.body) {
		http.Error(w, "bad size", http.StatusBadRequest)
		return
	}
	if d, err := time.ParseDuration(q.Get("delay")); err == nil && d > 0 {
		// The origin's own latency is what the benchmark simulates.
		time.Sleep(d)
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	if o.cacheControl != "" {
		h.Set("Cache-Control", o.cacheControl)
	}
	if o.etag {
		tag := `"` + strconv.Itoa(size) + `"`
		h.Set("ETag", tag)
		if r.Header.Get("If-None-Match") == tag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	h.Set("Content-Length", strconv.Itoa(size))
	_, _ = w.Write(o.body[:size])
}

func (o *origin) close() { _ = o.srv.Close() }

// resourceURL is the address of one resource of a run: path makes it unique
// to the run, so that no implementation serves another's entries.
func (o *origin) resourceURL(path string, size int, delay time.Duration) string {
	return fmt.Sprintf("%s/%s?size=%d&delay=%s", o.url, path, size, delay)
}
