package roundtrip

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/fleetcache/fleetcache/policy"
)

// flightState says how far a flight's body has come.
type flightState int

const (
	// filling: the pump is reading the origin's body into buf.
	filling flightState = iota
	// complete: the whole body is in buf; entry is set when it was storable.
	complete
	// streaming: the body is not shared (not storable, too large, or past
	// the process's buffer budget): only the owner reads it, from buf and
	// then straight from the origin, at its own pace.
	streaming
	// failed: the origin call or its body failed, or every reader left.
	failed
)

// flight is an origin answer whose body is still to be read: the result of
// a miss whose answer has a body. A storable one (head set) is shared by
// every caller in the process that asked for the same key while it ran: the
// caller whose request was sent (the owner) streams the body as it arrives;
// the others wait for the whole body and are served the stored entry, each
// with its own reader, but only when the policy lets that entry answer their
// own request. One that is not storable streams to its owner alone.
//
// Memory is bounded by MaxEntryBytes (plus one read chunk) per flight, and
// by MaxBufferedBytes for all of them: a body that would grow past either
// stops being buffered and is handed to the owner alone. The bytes buffered
// count against the budget until the pump is done and the owner closed its
// body (release).
type flight struct {
	owner *caller
	// Set before the flight is published, read-only afterwards.
	resp              *http.Response // status and header; Body belongs to the pump or the owner
	reqTime, respTime time.Time
	head              *policy.Response // the entry without its body, when storable; read-only
	keepOwner         func() bool      // stops the owner's giving up from disowning the flight
	detail            string           // why the response was not storable
	buffers           *budget          // the process-wide budget that held accounts against
	cancel            context.CancelFunc
	timer             *time.Timer // the shared fetch deadline; stopped when the owner alone streams

	mu        sync.Mutex
	wake      chan struct{} // closed and replaced whenever buf or state changes
	buf       []byte
	state     flightState
	bodyErr   error
	entry     *policy.Response
	rest      io.ReadCloser // streaming: the unread remainder of the origin body
	ownerGone bool
	keep      bool // read the body whole even with nobody left to read it
	waiters   int
	out       written // storable: what became of the body, once state left filling
	held      int64   // bytes of buf accounted against buffers
}

func (f *flight) ownedBy(c *caller) bool { return f.owner == c }

// broadcast wakes every reader; f.mu must be held.
func (f *flight) broadcast() {
	close(f.wake)
	f.wake = make(chan struct{})
}

// pump reads the origin body into buf until it ends, grows past limit or
// past the budget, or nobody wants it any more. When the body arrived
// whole, fill builds and stores the entry before anyone sees the end of the
// body, so that a caller that has read a response finds it stored. end then
// runs once either way, with that entry or nil, and the outcome.
func (f *flight) pump(limit int64, fill func(body []byte) (*policy.Response, written), end func(e *policy.Response, out written)) {
	body := f.resp.Body
	chunkp := chunks.Get().(*[]byte)
	defer chunks.Put(chunkp)
	chunk := *chunkp
	for {
		n, err := body.Read(chunk)
		f.mu.Lock()
		whole := err == io.EOF
		switch {
		case !f.hold(n):
			// Past the budget: the owner alone reads the rest, the bytes
			// just read first.
			f.state, f.out = streaming, bufferFull
			f.rest = &prefixed{Reader: io.MultiReader(bytes.NewReader(bytes.Clone(chunk[:n])), body), Closer: body}
			f.handOff()
		case err != nil && !whole:
			f.buf = append(f.buf, chunk[:n]...)
			f.state, f.out, f.bodyErr = failed, truncated, err
		case int64(len(f.buf)+n) > limit:
			// Too large to cache: the owner alone reads the rest, at its
			// own pace and under its own context.
			f.buf = append(f.buf, chunk[:n]...)
			f.state, f.out, f.rest = streaming, tooLarge, body
			f.handOff()
		default:
			f.buf = append(f.buf, chunk[:n]...)
			if !whole && f.ownerGone && f.waiters == 0 && !f.keep {
				f.state, f.out, f.bodyErr = failed, truncated, context.Canceled
			}
		}
		state, out := f.state, f.out
		f.release()
		f.broadcast()
		f.mu.Unlock()
		switch {
		case state == filling && whole:
			f.finish(body)
			e, out := fill(f.buf) // buf no longer changes
			f.mu.Lock()
			f.state, f.entry, f.out = complete, e, out
			f.release()
			f.broadcast()
			f.mu.Unlock()
			end(e, out)
			return
		case state == failed:
			f.finish(body)
			end(nil, out)
			return
		case state == streaming:
			end(nil, out)
			return
		}
	}
}

// hold accounts for n more bytes of buf against the budget, reporting
// false when they do not fit. A body of known length had all of it
// accounted for before the pump started. f.mu must be held.
func (f *flight) hold(n int) bool {
	need := int64(len(f.buf)+n) - f.held
	if need <= 0 {
		return true
	}
	if !f.buffers.take(need) {
		return false
	}
	f.held += need
	return true
}

// release gives the buffered bytes back to the budget once nobody reads
// them: the pump is done and the owner closed its body. Callers served the
// entry have their own reference to it. f.mu must be held.
func (f *flight) release() {
	if f.held > 0 && f.ownerGone && f.state != filling {
		f.buffers.give(f.held)
		f.held, f.buf = 0, nil
	}
}

// prefixed reads bytes already taken from a body before the body's rest.
type prefixed struct {
	io.Reader
	io.Closer
}

// chunks recycles the pump's read buffers: every miss needs one for as long
// as its body takes to arrive.
var chunks = sync.Pool{New: func() any {
	b := make([]byte, 32<<10)
	return &b
}}

// finish releases the origin connection and the fetch's deadline.
func (f *flight) finish(body io.Closer) {
	body.Close()
	f.timer.Stop()
	f.cancel()
}

// handOff makes the rest of the body the owner's alone: the shared fetch
// deadline no longer applies, the owner's context does. f.mu must be held.
func (f *flight) handOff() {
	f.timer.Stop()
	if f.ownerGone {
		f.rest.Close()
		f.rest = nil
		f.cancel()
		return
	}
	stop := context.AfterFunc(f.owner.ctx, f.cancel)
	f.rest = &afterClose{ReadCloser: f.rest, after: func() { stop(); f.cancel() }}
}

// afterClose runs after once the reader is closed.
type afterClose struct {
	io.ReadCloser
	once  sync.Once
	after func()
}

func (a *afterClose) Close() error {
	err := a.ReadCloser.Close()
	a.once.Do(a.after)
	return err
}

// join registers a waiter; it reports false when the flight has already
// failed and cannot serve anyone.
func (f *flight) join() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state == failed {
		return false
	}
	f.waiters++
	return true
}

// wait blocks until the body is complete (returning the entry, nil when the
// response was not storable) or will not be shared, or ctx ends.
func (f *flight) wait(ctx context.Context) (*policy.Response, error) {
	err := f.settle(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leave()
	if err != nil {
		return nil, err
	}
	if f.state == complete && f.head != nil {
		return f.entry, nil
	}
	return nil, nil
}

// settle blocks until the body is no longer filling, or ctx ends.
func (f *flight) settle(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.state == filling {
		wake := f.wake
		f.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			f.mu.Lock()
			return ctx.Err()
		}
		f.mu.Lock()
	}
	return nil
}

// report fills in what cs says about the store: stored, or why not.
func (f *flight) report(cs policy.CacheStatus) policy.CacheStatus {
	if f.head == nil {
		cs.Detail = f.detail
		return cs
	}
	f.mu.Lock()
	out := f.out
	f.mu.Unlock()
	cs.Stored, cs.Detail = out == stored, out.detail()
	return cs
}

// leave unregisters a waiter, abandoning the fetch when nobody is left to
// read it. f.mu must be held.
func (f *flight) leave() {
	f.waiters--
	f.abandonIfUnwanted()
}

func (f *flight) abandonIfUnwanted() {
	if f.ownerGone && f.waiters == 0 && !f.keep && f.state == filling && f.cancel != nil {
		f.cancel()
	}
}

// disown lets the flight go when its owner stopped waiting before it got
// it. A body that is not shared is closed; a shared one is still read
// whole and stored (bounded by the fetch deadline and MaxEntryBytes): the
// callers waiting on it may not have joined yet, and the first caller
// giving up must not fail them.
func (f *flight) disown() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ownerGone, f.keep = true, true
	if f.state == streaming && f.rest != nil {
		f.rest.Close()
		f.rest = nil
	}
	f.release()
}

// body returns the owner's reader of the response body.
func (f *flight) body(ctx context.Context) io.ReadCloser {
	return &flightReader{f: f, ctx: ctx}
}

// flightReader is the owner's view of the body: what the pump buffered, and
// then, when the body was handed off, the origin's stream itself.
type flightReader struct {
	f      *flight
	ctx    context.Context
	off    int
	closed bool
}

func (r *flightReader) Read(p []byte) (int, error) {
	f := r.f
	f.mu.Lock()
	for {
		if r.closed {
			f.mu.Unlock()
			return 0, errReadAfterClose
		}
		if r.off < len(f.buf) {
			n := copy(p, f.buf[r.off:])
			r.off += n
			f.mu.Unlock()
			return n, nil
		}
		switch {
		case f.state == complete:
			f.mu.Unlock()
			return 0, io.EOF
		case f.state == failed:
			err := f.bodyErr
			f.mu.Unlock()
			if err == nil || err == context.Canceled {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		case f.state == streaming:
			rest := f.rest
			f.mu.Unlock()
			if rest == nil {
				return 0, io.ErrUnexpectedEOF
			}
			return rest.Read(p)
		}
		wake := f.wake
		f.mu.Unlock()
		select {
		case <-wake:
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
		f.mu.Lock()
	}
}

// Close lets the flight go: a body nobody else waits for is not fetched
// further, and nothing incomplete is ever stored.
func (r *flightReader) Close() error {
	f := r.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	f.ownerGone = true
	f.release()
	if f.state == streaming && f.rest != nil {
		err := f.rest.Close()
		f.rest = nil
		return err
	}
	f.abandonIfUnwanted()
	return nil
}
