package middleware_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fleetcache/fleetcache/internal/redistest"
	"github.com/fleetcache/fleetcache/middleware"
	"github.com/fleetcache/fleetcache/roundtrip"
)

// The first caller reads what the handler flushed while the handler is
// still running, and the whole body is stored for the next caller.
func TestMiddleware_StreamsToFirstCallerWhileStoring(t *testing.T) {
	onEachRedis(t, func(t *testing.T, r *redistest.Redis) {
		read := make(chan struct{})
		f := newFixture(t, r, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=60")
			fmt.Fprint(w, "first part;")
			require.NoError(t, http.NewResponseController(w).Flush())
			<-read // the caller has the first part before the second exists
			fmt.Fprint(w, "second part")
		}, middleware.Options{})
		resp, err := f.srv.Client().Get(f.srv.URL + "/stream")
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Contains(t, resp.Header.Get("Cache-Status"), "detail=storing")
		br := bufio.NewReader(resp.Body)
		first, err := br.ReadString(';')
		require.NoError(t, err)
		require.Equal(t, "first part;", first)
		close(read)
		rest, err := io.ReadAll(br)
		require.NoError(t, err)
		require.Equal(t, "second part", string(rest))
		hit := f.get("/stream")
		wantStatus(t, hit, 200, "hit")
		require.Equal(t, "first part;second part", hit.body)
		f.wantRuns(1)
	})
}

// A body over MaxEntryBytes streams to its caller uncached, and is never
// held whole: every caller runs the handler.
func TestMiddleware_LargeBodyStreamsUncached(t *testing.T) {
	onEachRedis(t, func(t *testing.T, r *redistest.Redis) {
		body := strings.Repeat("x", 100<<10)
		f := newFixture(t, r, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=60")
			if r.URL.Path == "/known" {
				w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			}
			for i := 0; i < len(body); i += 10 << 10 {
				fmt.Fprint(w, body[i:i+10<<10])
			}
		}, middleware.Options{Cache: roundtrip.Options{MaxEntryBytes: 64 << 10}})
		for range 2 {
			// Of unknown length: found too large while it streams, which
			// may be before or after its header goes out.
			got := f.get("/unknown")
			wantStatus(t, got, 200, "fwd=uri-miss")
			require.Regexp(t, `detail=(storing|too-large)`, got.cacheStatus())
			require.False(t, stored(got))
			require.Equal(t, body, got.body)
			// Of known length: never offered to the store.
			got = f.get("/known")
			wantStatus(t, got, 200, "fwd=uri-miss", "detail=too-large")
			require.Equal(t, body, got.body)
		}
		f.wantRuns(4)
		require.Zero(t, f.cache.Stats().BufferedBytes)
	})
}

// A handler that declared a Content-Length and wrote less is cut off: the
// caller's response is aborted, not passed off as whole, and nothing is
// stored.
func TestMiddleware_RFC9112_6_3_ShortBodyIsNotWhole(t *testing.T) {
	onEachRedis(t, func(t *testing.T, r *redistest.Redis) {
		f := newFixture(t, r, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Content-Length", "100")
			fmt.Fprint(w, "only this")
		}, middleware.Options{})
		for range 2 {
			got := f.get("/short")
			require.Error(t, got.err)
		}
		f.wantRuns(2)
	})
}

// http.ResponseController works for the handler: Flush, and the deadlines
// of the caller's connection while it is being served.
func TestMiddleware_ResponseControllerWorks(t *testing.T) {
	onEachRedis(t, func(t *testing.T, r *redistest.Redis) {
		errs := make(chan error, 3)
		f := newFixture(t, r, func(w http.ResponseWriter, r *http.Request) {
			rc := http.NewResponseController(w)
			errs <- rc.SetWriteDeadline(time.Now().Add(time.Minute))
			errs <- rc.SetReadDeadline(time.Now().Add(time.Minute))
			fmt.Fprint(w, "data: 1\n\n")
			errs <- rc.Flush()
		}, middleware.Options{})
		got := f.get("/events")
		wantStatus(t, got, 200)
		require.Equal(t, "data: 1\n\n", got.body)
		for range 3 {
			require.NoError(t, <-errs)
		}
	})
}

// A handler that writes a 1xx answers its caller itself: the caller gets
// the 1xx and the final response, and nothing is stored.
func TestMiddleware_InformationalPassesThroughUncached(t *testing.T) {
	onEachRedis(t, func(t *testing.T, r *redistest.Redis) {
		f := newFixture(t, r, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</style.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Set("Cache-Control", "max-age=60")
			fmt.Fprint(w, "page")
		}, middleware.Options{})
		for range 2 {
			var hints []int
			var mu sync.Mutex
			trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, _ textproto.MIMEHeader) error {
				mu.Lock()
				defer mu.Unlock()
				hints = append(hints, code)
				return nil
			}}
			req, err := http.NewRequest(http.MethodGet, f.srv.URL+"/hinted", nil)
			require.NoError(t, err)
			resp, err := f.srv.Client().Do(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
			require.NoError(t, err)
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			require.Equal(t, "page", string(body))
			require.Equal(t, []int{http.StatusEarlyHints}, hints)
			require.Empty(t, resp.Header.Get("Cache-Status"), "the cache did not answer")
		}
		f.wantRuns(2)
	})
}

// A handler that hijacks the connection has it, whether the request asks
// for an Upgrade (passed through before the cache) or not (passed through
// when the handler hijacks).
func TestMiddleware_HijackPassesThroughUncached(t *testing.T) {
	onEachRedis(t, func(t *testing.T, r *redistest.Redis) {
		f := newFixture(t, r, func(w http.ResponseWriter, r *http.Request) {
			conn, rw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			defer conn.Close()
			fmt.Fprint(rw, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
			_ = rw.Flush()
		}, middleware.Options{})
		for _, kv := range [][]string{{"Upgrade", "websocket", "Connection", "Upgrade"}, nil, nil} {
			got := f.get("/ws", kv...)
			require.NoError(t, got.err)
			require.Equal(t, "hijacked", got.body)
		}
		f.wantRuns(3)
	})
}
