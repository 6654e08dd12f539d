package fleetproc

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Origin is a loopback HTTP server standing for the service behind the
// cache. It counts the requests it gets, answers every path with the same
// body, and can be held (requests wait until the test releases them), made
// to fail, or closed.
type Origin struct {
	URL  string // base URL, no trailing slash
	Body []byte
	Sum  string // SHA-256 of Body, hex, as Result.Sum reports it

	srv       *httptest.Server
	closeOnce sync.Once
	requests  atomic.Int64
	arrivals  chan string // the ProcHeader of each request, while there is room

	mu           sync.Mutex
	cacheControl string
	status       int
	skew         time.Duration
	groups       string        // RFC 9875: Cache-Groups of GETs, Cache-Group-Invalidation of others
	gate         chan struct{} // non-nil: requests wait until it is closed
}

// NewOrigin starts an origin whose 200 answers carry cacheControl and a
// body of size pseudo-random bytes. It is closed when the test ends.
func NewOrigin(t testing.TB, cacheControl string, size int) *Origin {
	t.Helper()
	o := &Origin{
		Body:         make([]byte, size),
		cacheControl: cacheControl,
		status:       http.StatusOK,
		arrivals:     make(chan string, 1024),
	}
	_, _ = rand.NewChaCha8([32]byte{}).Read(o.Body) // never fails
	sum := sha256.Sum256(o.Body)
	o.Sum = hex.EncodeToString(sum[:])
	o.srv = httptest.NewServer(o)
	o.URL = o.srv.URL
	t.Cleanup(o.Close)
	return o
}

// ServeHTTP answers a request as the origin is currently set up.
func (o *Origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.requests.Add(1)
	select {
	case o.arrivals <- r.Header.Get(ProcHeader):
	default:
	}
	o.mu.Lock()
	gate, status, cc, skew, groups := o.gate, o.status, o.cacheControl, o.skew, o.groups
	o.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done(): // the client went away, or died
			return
		}
	}
	if status != http.StatusOK {
		http.Error(w, http.StatusText(status), status)
		return
	}
	h := w.Header()
	h.Set("Cache-Control", cc)
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(len(o.Body)))
	h.Set("Date", time.Now().Add(skew).UTC().Format(http.TimeFormat))
	switch {
	case groups == "":
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		h.Set("Cache-Groups", groups)
	default:
		h.Set("Cache-Group-Invalidation", groups)
	}
	_, _ = w.Write(o.Body)
}

// SetGroups makes the origin's answers to GET and HEAD name the RFC 9875
// cache groups of groups (a Cache-Groups value, such as `"products"`), and
// its answers to other methods invalidate them.
func (o *Origin) SetGroups(groups string) {
	o.mu.Lock()
	o.groups = groups
	o.mu.Unlock()
}

// Requests is the number of requests the origin has received.
func (o *Origin) Requests() int64 { return o.requests.Load() }

// Arrived returns the ProcHeader of the next request to arrive (since the
// origin started, in order), waiting at most within.
func (o *Origin) Arrived(t testing.TB, within time.Duration) string {
	t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case id := <-o.arrivals:
		return id
	case <-timer.C:
		t.Fatalf("origin: no request arrived within %v", within)
		return ""
	}
}

// Hold makes requests wait, from now on, until Release (or until their
// client goes away): an origin as slow as the test needs, and no slower.
func (o *Origin) Hold() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.gate == nil {
		o.gate = make(chan struct{})
	}
}

// Release lets the held requests, and all later ones, through.
func (o *Origin) Release() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.gate != nil {
		close(o.gate)
		o.gate = nil
	}
}

// Fail makes the origin answer every request with status (a 5xx).
func (o *Origin) Fail(status int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.status = status
}

// SetSkew moves the origin's clock (its Date field) by d, as Command.Skew
// moves the children's.
func (o *Origin) SetSkew(d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.skew = d
}

// Close shuts the origin down: from then on its URL refuses connections.
func (o *Origin) Close() {
	o.closeOnce.Do(func() {
		o.Release()
		o.srv.Close()
	})
}
