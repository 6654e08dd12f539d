package roundtrip

import "context"

// control is what a request's context asks of the cache; one key for all,
// so that the hit path looks once. The last one set on a context wins.
type control uint8

const (
	noControl control = iota
	bypassControl
	refreshControl
)

type controlKey struct{}

func controlOf(ctx context.Context) control {
	c, _ := ctx.Value(controlKey{}).(control)
	return c
}

// WithBypass returns a context whose requests the cache does not handle:
// sent to the origin as they are, neither answered from the store nor
// stored, nor collapsed with other requests. Their Cache-Status says
// fwd=bypass; detail=requested. What is stored stays as it is, for the
// other requests; an unsafe method (POST, PUT, ...) still invalidates what
// its response names (RFC 9111 §4.4), since the cache would otherwise serve
// what it changed.
//
// Of WithBypass and WithRefresh, the one applied last to a context counts.
//
// It is not a request directive, and differs from each of them:
// Cache-Control: no-store still lets a stored response answer the request
// (RFC 9111 §5.2.1.5) and only keeps the answer from being stored, and
// no-cache revalidates the stored response and stores what comes back.
//
//	req = req.WithContext(roundtrip.WithBypass(req.Context()))
func WithBypass(ctx context.Context) context.Context {
	return context.WithValue(ctx, controlKey{}, bypassControl)
}

// WithRefresh returns a context whose requests fetch the resource again:
// the stored response is not used, the origin is asked without the stored
// validators, and its answer is stored in place of the old one, for every
// instance, as for a miss. Cache-Status says fwd=request when something was
// stored. An only-if-cached request made with it gets a 504, since only the
// stored response could answer it.
//
// The request directives revalidate instead: Cache-Control: no-cache (and
// max-age=0) make the cache send the stored ETag and Last-Modified, and a
// 304 keeps the stored body. A refresh is for when that body must not be
// trusted: an origin that kept its ETag while the body changed, an entry
// to rebuild after a fix at the origin.
//
//	req = req.WithContext(roundtrip.WithRefresh(req.Context()))
func WithRefresh(ctx context.Context) context.Context {
	return context.WithValue(ctx, controlKey{}, refreshControl)
}
