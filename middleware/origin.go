package middleware

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// callKey carries a request's *call from the middleware through the
// transport to the origin.
type callKey struct{}

// call is one request the middleware serves: the caller's own writer and
// request, and the handler to run for it.
type call struct {
	w    http.ResponseWriter
	r    *http.Request // the caller's request, as the handler is to see it
	req  *http.Request // the cache's view of it (cacheRequest)
	next http.Handler

	// flushMark is 1 + the length of the handler's output at its last
	// Flush, in the run that streams to this caller; 0 when it never
	// flushed. It is set before those bytes are written, so that whoever
	// reads them sees it.
	flushMark atomic.Int64

	mu       sync.Mutex
	state    callState
	runs     sync.WaitGroup // this caller's own runs of the handler
	panicked *panicError    // a run that answered the caller directly panicked; read after runs
}

type callState int

const (
	waiting    callState = iota // in the transport: a run of the handler may answer the caller itself
	direct                      // a run of the handler writes to the caller's writer itself
	responding                  // the middleware writes the transport's response
	ended                       // ServeHTTP returned: the writer must not be touched
)

// claim reports whether a run of the handler starting now is the caller's
// own: the transport is waiting for it to answer this caller. Such a run may
// pass 1xx responses and a hijack through to the caller, and its flushes
// are the caller's. Other runs (a refresh in the background after the
// caller was answered) have no caller.
func (cl *call) claim() bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.state != waiting {
		return false
	}
	cl.runs.Add(1)
	return true
}

// takeOver gives the caller's writer to its own run, for good; false when
// the middleware has begun to answer the caller.
func (cl *call) takeOver() bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.state != waiting {
		return false
	}
	cl.state = direct
	return true
}

// respond is called when the transport has answered; it reports whether a
// run of the handler answers the caller instead (and has done so once its
// runs are over).
func (cl *call) respond() bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.state == direct {
		return true
	}
	cl.state = responding
	return false
}

// end waits for the caller's own runs of the handler, which may use the
// caller's request, and then lets go of the writer.
func (cl *call) end() {
	cl.runs.Wait()
	cl.mu.Lock()
	cl.state = ended
	cl.mu.Unlock()
	if p := cl.panicked; p != nil {
		panic(p.value)
	}
}

// handlerRequest is the request the handler sees for out, the transport's
// request: the caller's, with out's context, and out's validation fields
// when the transport changed them (its own conditional request, or none of
// the caller's conditions for a response to share).
func (cl *call) handlerRequest(out *http.Request) *http.Request {
	r := cl.r.WithContext(out.Context())
	if out == cl.req {
		return r
	}
	h := cl.r.Header.Clone()
	for _, f := range validationFields {
		if v, ok := out.Header[f]; ok {
			h[f] = v
		} else {
			delete(h, f)
		}
	}
	r.Header, r.Method = h, out.Method
	return r
}

var validationFields = [...]string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "Range", "If-Range"}

// errPassThrough ends the transport's request when the handler answered the
// caller itself: nothing of it is stored.
var errPassThrough = errors.New("fleetcache middleware: the handler answered the caller itself (a 1xx response or a hijack); not cached")

// panicError is what the transport gets from a handler that panicked.
type panicError struct{ value any }

func (e *panicError) Error() string {
	return fmt.Sprintf("fleetcache middleware: handler panicked: %v", e.value)
}

// origin is the transport's origin: it runs the handler of the request's
// call, in process.
type origin struct{ log *slog.Logger }

// RoundTrip runs the handler for out and returns its response as soon as
// its header is out (when the handler flushes, outgrows the buffer, or
// returns); the body streams on as the handler writes it.
func (o origin) RoundTrip(out *http.Request) (*http.Response, error) {
	cl, _ := out.Context().Value(callKey{}).(*call)
	if cl == nil {
		return nil, errors.New("fleetcache middleware: a request that did not come through the middleware")
	}
	w := &originWriter{
		call:   cl,
		live:   cl.claim(),
		req:    out,
		log:    o.log,
		header: make(http.Header),
		head:   out.Method == http.MethodHead,
		ready:  make(chan result, 1),
	}
	go w.run(cl.next, cl.handlerRequest(out))
	select {
	case res := <-w.ready:
		return res.resp, res.err
	case <-out.Context().Done():
		w.abandon()
		return nil, out.Context().Err()
	}
}

type result struct {
	resp *http.Response
	err  error
}

// bufferSize is how much of the handler's output is held before its header
// goes out, as net/http holds it: a handler that returns before writing
// more has its length known (Content-Length) and its content sniffed.
const bufferSize = 32 << 10

// originWriter is the ResponseWriter of one run of the handler. Its output
// goes to the transport through a pipe, or, once the handler passes a 1xx
// or hijacks the connection, straight to the caller (direct).
type originWriter struct {
	call *call
	live bool // the caller's own run (call.claim)
	req  *http.Request
	log  *slog.Logger
	head bool // a HEAD: the body is counted, not kept

	header    http.Header
	status    int   // the final status, 0 until written
	length    int64 // the Content-Length the handler declared, -1 for none
	buf       []byte
	n         int64 // bytes of body written by the handler
	pushed    int64 // bytes written to the pipe
	committed bool  // the response went to the transport
	pw        *io.PipeWriter
	err       error // what writes now fail with
	direct    bool

	mu        sync.Mutex
	ready     chan result
	sent      bool
	abandoned bool
}

func (w *originWriter) Header() http.Header { return w.header }

func (w *originWriter) WriteHeader(code int) {
	if w.direct {
		w.copyHeader()
		w.call.w.WriteHeader(code)
		if code >= 200 || code == http.StatusSwitchingProtocols {
			w.status = code
		}
		return
	}
	if w.status != 0 {
		return // superfluous, as net/http ignores it
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code)) // as net/http does
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		// An informational response is the caller's alone: the caller
		// gets it and what follows, and nothing is stored.
		if w.toCaller() {
			w.call.w.WriteHeader(code)
		}
		return
	}
	w.status, w.length = code, -1
	if v := w.header.Get("Content-Length"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			w.length = n
		}
	}
}

func (w *originWriter) Write(p []byte) (int, error) {
	if w.direct {
		return w.call.w.Write(p)
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	switch {
	case w.err != nil:
		return 0, w.err
	case !bodyAllowed(w.status):
		return 0, http.ErrBodyNotAllowed
	case w.length >= 0 && w.n+int64(len(p)) > w.length:
		return 0, http.ErrContentLength
	}
	w.n += int64(len(p))
	if w.head {
		return len(p), nil
	}
	if len(w.buf)+len(p) <= bufferSize {
		w.buf = append(w.buf, p...)
		return len(p), nil
	}
	if err := w.push(false); err != nil {
		return 0, err
	}
	if len(p) < bufferSize {
		w.buf = append(w.buf, p...)
		return len(p), nil
	}
	n, err := w.pw.Write(p)
	w.pushed += int64(n)
	if err != nil {
		w.err = err
	}
	return n, err
}

// Flush sends what the handler wrote so far on its way, and asks the
// caller's connection to flush once it is there.
func (w *originWriter) Flush() { _ = w.FlushError() }

// FlushError is Flush for http.ResponseController.
func (w *originWriter) FlushError() error {
	if w.direct {
		return http.NewResponseController(w.call.w).Flush()
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return w.err
	}
	return w.push(true)
}

// push commits the response and writes the buffered bytes to the pipe;
// flushed marks them for the caller's connection to flush.
func (w *originWriter) push(flushed bool) error {
	if !w.committed {
		w.commit()
	}
	if flushed && w.live {
		w.call.flushMark.Store(1 + w.pushed + int64(len(w.buf)))
	}
	if len(w.buf) == 0 {
		return nil
	}
	n, err := w.pw.Write(w.buf)
	w.pushed += int64(n)
	w.buf = w.buf[:0]
	if err != nil {
		w.err = err
	}
	return err
}

// commit hands the response to the transport, its body to come through a
// pipe.
func (w *originWriter) commit() {
	w.committed = true
	pr, pw := io.Pipe()
	w.pw = pw
	w.send(result{resp: w.response(pr, w.length)})
}

// response builds the transport's response from what the handler wrote;
// its header is a copy, since the handler may go on changing its own.
func (w *originWriter) response(body io.ReadCloser, length int64) *http.Response {
	h := w.header.Clone()
	if _, typed := h["Content-Type"]; !typed && len(h["Content-Encoding"]) == 0 && len(w.buf) > 0 {
		h["Content-Type"] = []string{http.DetectContentType(w.buf)} // as net/http sniffs it
	}
	if w.head || !bodyAllowed(w.status) {
		body = http.NoBody
	}
	if !bodyAllowed(w.status) {
		length = 0
	}
	return &http.Response{
		Status:        strconv.Itoa(w.status) + " " + http.StatusText(w.status),
		StatusCode:    w.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          body,
		ContentLength: length,
		Request:       w.req,
	}
}

// send gives the transport its answer, once; a transport that stopped
// waiting gets nothing, and the body it would have read is closed so that
// the handler's writes fail.
func (w *originWriter) send(res result) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sent {
		return
	}
	w.sent = true
	if w.abandoned {
		if res.resp != nil {
			res.resp.Body.Close()
		}
		return
	}
	w.ready <- res
}

// abandon is the transport's giving up before the answer came.
func (w *originWriter) abandon() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.abandoned = true
	if w.sent {
		if res := <-w.ready; res.resp != nil {
			res.resp.Body.Close()
		}
	}
}

// run calls the handler and ends its response however it ends.
func (w *originWriter) run(h http.Handler, r *http.Request) {
	defer w.finish()
	h.ServeHTTP(w, r)
}

func (w *originWriter) finish() {
	p := recover()
	var err error
	if p != nil {
		if p != http.ErrAbortHandler {
			w.log.Error("fleetcache middleware: handler panicked", "url", w.req.URL.String(), "panic", p, "stack", string(debug.Stack()))
		}
		err = &panicError{value: p}
	}
	switch {
	case w.direct:
		if p != nil {
			w.call.panicked = err.(*panicError)
		}
	case !w.committed && err != nil:
		w.send(result{err: err})
	case !w.committed:
		w.send(result{resp: w.whole()})
	case err != nil:
		w.pw.CloseWithError(err)
	case w.push(false) != nil:
	case w.short():
		w.pw.CloseWithError(io.ErrUnexpectedEOF)
	default:
		w.pw.Close()
	}
	if w.live {
		w.call.runs.Done()
	}
}

// whole is the response of a handler that returned before its header went
// out: its length is known, and set as net/http sets it.
func (w *originWriter) whole() *http.Response {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	var body io.Reader = bytes.NewReader(w.buf)
	switch {
	case w.short():
		body = io.MultiReader(body, errReader{io.ErrUnexpectedEOF})
	case w.length < 0:
		w.length = w.n
		if bodyAllowed(w.status) && len(w.header["Transfer-Encoding"]) == 0 && (!w.head || w.n > 0) {
			w.header["Content-Length"] = []string{strconv.FormatInt(w.n, 10)}
		}
	}
	return w.response(io.NopCloser(body), w.length)
}

// short reports whether the handler wrote less than the Content-Length it
// declared: the body is cut off, and must not pass for whole.
func (w *originWriter) short() bool {
	return !w.head && bodyAllowed(w.status) && w.length >= 0 && w.n < w.length
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// toCaller makes the caller's own run answer the caller directly: what was
// written so far goes to the caller's writer, and the transport is told
// that there is nothing to cache. A run that is not the caller's, or comes
// too late, reports false: its output goes nowhere.
func (w *originWriter) toCaller() bool {
	if !w.live || !w.call.takeOver() {
		w.err = errPassThrough
		w.send(result{err: errPassThrough})
		return false
	}
	w.direct = true
	w.copyHeader()
	if w.status != 0 {
		w.call.w.WriteHeader(w.status)
		if len(w.buf) > 0 {
			_, _ = w.call.w.Write(w.buf)
		}
		w.buf = nil
	}
	w.send(result{err: errPassThrough})
	return true
}

// copyHeader sets the handler's header fields on the caller's writer.
func (w *originWriter) copyHeader() {
	dst := w.call.w.Header()
	for k, v := range w.header {
		dst[k] = v
	}
}

// Hijack hands the caller's connection to the handler, when the run is the
// caller's own and its response has not gone to the transport yet; the
// request is then passed through uncached.
func (w *originWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if !w.direct && (w.committed || !w.toCaller()) {
		return nil, nil, http.ErrNotSupported
	}
	return http.NewResponseController(w.call.w).Hijack()
}

// SetReadDeadline, SetWriteDeadline and EnableFullDuplex act on the
// caller's connection while the run is the caller's own and the caller is
// being served; otherwise they are not supported (http.ErrNotSupported).
func (w *originWriter) SetReadDeadline(d time.Time) error {
	return w.onConn(func(rc *http.ResponseController) error { return rc.SetReadDeadline(d) })
}

func (w *originWriter) SetWriteDeadline(d time.Time) error {
	return w.onConn(func(rc *http.ResponseController) error { return rc.SetWriteDeadline(d) })
}

func (w *originWriter) EnableFullDuplex() error {
	return w.onConn(func(rc *http.ResponseController) error { return rc.EnableFullDuplex() })
}

func (w *originWriter) onConn(fn func(rc *http.ResponseController) error) error {
	if !w.live {
		return http.ErrNotSupported
	}
	cl := w.call
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.state == ended {
		return http.ErrNotSupported
	}
	return fn(http.NewResponseController(cl.w))
}
