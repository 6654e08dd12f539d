// Package tracing reports what a fleetcache Transport did to OpenTelemetry:
// the cache's outcome as attributes of the caller's span, a child span for
// each origin fetch, and one for each store call slower than a threshold.
// It keeps no global state: spans are made by the TracerProvider given in
// Options, or else by the one that made the caller's span. A request whose
// context carries no recording span costs a context lookup.
//
//	tracer := tracing.New(tracing.Options{})
//	transport := roundtrip.New(store, roundtrip.Options{Observer: tracer})
//	// requests whose context carries a span are traced
package tracing

import (
	"context"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/fleetcache/fleetcache/roundtrip"
)

// DefaultSlowStoreCall is the duration from which a store call gets a span
// of its own, unless Options.SlowStoreCall says otherwise: a hit takes well
// under a millisecond, and the store timeout is 100ms.
const DefaultSlowStoreCall = 5 * time.Millisecond

// instrumentation names this package as the maker of its spans.
const instrumentation = "github.com/fleetcache/fleetcache/tracing"

// Attribute keys set on the caller's span.
const (
	AttrHit       = attribute.Key("cache.hit")       // served from the store without asking the origin
	AttrStatus    = attribute.Key("cache.status")    // the cache's Cache-Status member, as sent
	AttrCoalesced = attribute.Key("cache.coalesced") // served from another request's fetch
	AttrFwd       = attribute.Key("cache.fwd")       // why the origin was asked (Cache-Status fwd), when it was
)

// Options configure a Tracer. The zero value is the recommended setup.
type Options struct {
	// TracerProvider makes the child spans; nil means the provider of the
	// caller's span.
	TracerProvider trace.TracerProvider
	// SlowStoreCall is the duration from which a store call gets a span;
	// 0 means DefaultSlowStoreCall.
	SlowStoreCall time.Duration
	// Cache is the cache's name in Cache-Status (roundtrip.Options.Name);
	// "" means roundtrip.DefaultName.
	Cache string
}

// Tracer is a roundtrip.Observer that reports to OpenTelemetry. It is safe
// for concurrent use.
type Tracer struct {
	provider trace.TracerProvider
	slow     time.Duration
	cache    string
}

// New returns a Tracer.
func New(opts Options) *Tracer {
	t := &Tracer{provider: opts.TracerProvider, slow: opts.SlowStoreCall, cache: opts.Cache}
	if t.slow <= 0 {
		t.slow = DefaultSlowStoreCall
	}
	if t.cache == "" {
		t.cache = roundtrip.DefaultName
	}
	return t
}

// tracer returns the tracer for a child of parent.
func (t *Tracer) tracer(parent trace.Span) trace.Tracer {
	p := t.provider
	if p == nil {
		p = parent.TracerProvider()
	}
	return p.Tracer(instrumentation)
}

// Result implements roundtrip.Observer: it adds the cache's outcome to the
// caller's span.
func (t *Tracer) Result(req *http.Request, r roundtrip.Result) {
	span := trace.SpanFromContext(req.Context())
	if r.Err != nil || !span.IsRecording() {
		return
	}
	cs := r.CacheStatus
	attrs := []attribute.KeyValue{AttrStatus.String(cs.String(t.cache)), AttrHit.Bool(cs.Hit), AttrCoalesced.Bool(cs.Collapsed)}
	if cs.Fwd != "" {
		attrs = append(attrs, AttrFwd.String(cs.Fwd))
	}
	span.SetAttributes(attrs...)
}

// Origin implements roundtrip.Observer: the request to the origin is sent
// inside a child span of the caller's, so that a tracing transport beneath
// (otelhttp) and the origin itself nest under it.
func (t *Tracer) Origin(req *http.Request) (*http.Request, func(*http.Response, error)) {
	parent := trace.SpanFromContext(req.Context())
	if !parent.IsRecording() {
		return req, noDone
	}
	ctx, span := t.tracer(parent).Start(req.Context(), "fleetcache.origin",
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attribute.String("http.request.method", req.Method), attribute.String("server.address", req.URL.Host)))
	return req.WithContext(ctx), func(resp *http.Response, err error) {
		switch {
		case err != nil:
			span.RecordError(err)
			span.SetStatus(codes.Error, "origin unreachable")
		default:
			span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
			if resp.StatusCode >= 500 {
				span.SetStatus(codes.Error, resp.Status)
			}
		}
		span.End()
	}
}

func noDone(*http.Response, error) {}

// Store implements roundtrip.Observer: a call that took SlowStoreCall or
// longer gets a child span of the caller's, covering it. A quick one costs
// a clock read.
func (t *Tracer) Store(ctx context.Context, start time.Time, err error) {
	end := time.Now()
	if end.Sub(start) < t.slow {
		return
	}
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return
	}
	_, span := t.tracer(parent).Start(ctx, "fleetcache.store", trace.WithTimestamp(start), trace.WithSpanKind(trace.SpanKindClient))
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "store call failed")
	}
	span.End(trace.WithTimestamp(end))
}

var _ roundtrip.Observer = (*Tracer)(nil)
