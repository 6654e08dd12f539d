package roundtrip

import (
	"context"
	"net/http"
	"time"
)

// An Observer is told what the transport does, for metrics and tracing
// (packages metrics and tracing implement it): each request's result, each
// request it sends to the origin and each call it makes to the store. Its
// methods run on the request's goroutine, must be safe for concurrent use,
// and should be quick: they are on the hit path. A Transport without one
// pays a nil check per request and per store call.
type Observer interface {
	// Result is called when RoundTrip returns, with what the cache did
	// for req (Options.OnResult hears the same).
	Result(req *http.Request, r Result)
	// Origin is called as a request leaves for the origin. It returns the
	// request to send (req, or req with a context of its own, such as a
	// tracer's child span) and a function called once with the origin's
	// answer: its header, or the error.
	Origin(req *http.Request) (*http.Request, func(resp *http.Response, err error))
	// Store is called when a call to the store returns, with its start
	// and its error. ctx is the request's. Calls the breaker skipped are
	// not reported: they never reached the store.
	Store(ctx context.Context, start time.Time, err error)
}

// Observers returns an Observer that tells each of obs in turn; nil ones are
// skipped, and none at all gives nil.
func Observers(obs ...Observer) Observer {
	var all multiObserver
	for _, o := range obs {
		if o != nil {
			all = append(all, o)
		}
	}
	switch len(all) {
	case 0:
		return nil
	case 1:
		return all[0]
	}
	return all
}

type multiObserver []Observer

func (m multiObserver) Result(req *http.Request, r Result) {
	for _, o := range m {
		o.Result(req, r)
	}
}

func (m multiObserver) Origin(req *http.Request) (*http.Request, func(*http.Response, error)) {
	dones := make([]func(*http.Response, error), len(m))
	for i, o := range m {
		req, dones[i] = o.Origin(req)
	}
	return req, func(resp *http.Response, err error) {
		for i := len(dones) - 1; i >= 0; i-- {
			dones[i](resp, err)
		}
	}
}

func (m multiObserver) Store(ctx context.Context, start time.Time, err error) {
	for _, o := range m {
		o.Store(ctx, start, err)
	}
}

// observedOrigin reports every request the transport sends to the origin:
// it wraps Options.Transport, which is where they all go.
type observedOrigin struct {
	next http.RoundTripper
	obs  Observer
}

func (o observedOrigin) RoundTrip(req *http.Request) (*http.Response, error) {
	req, done := o.obs.Origin(req)
	resp, err := o.next.RoundTrip(req)
	done(resp, err)
	return resp, err
}

// onResult is Options.OnResult as an Observer that hears only results;
// nil for a nil func.
func onResult(fn func(*http.Request, Result)) Observer {
	if fn == nil {
		return nil
	}
	return resultFunc(fn)
}

type resultFunc func(*http.Request, Result)

func (f resultFunc) Result(req *http.Request, r Result) { f(req, r) }

func (resultFunc) Origin(req *http.Request) (*http.Request, func(*http.Response, error)) {
	return req, func(*http.Response, error) {}
}

func (resultFunc) Store(context.Context, time.Time, error) {}
