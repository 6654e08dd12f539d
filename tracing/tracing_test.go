package tracing_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/fleetcache/fleetcache/policy"
	"github.com/fleetcache/fleetcache/roundtrip"
	"github.com/fleetcache/fleetcache/tracing"
)

// mapStore is the smallest roundtrip.Store: a map, no expiry.
type mapStore struct {
	mu   sync.Mutex
	m    map[string]*policy.Response
	fail bool
}

func (s *mapStore) Get(_ context.Context, url, variant string) (*policy.Response, []string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return nil, nil, errors.New("store down")
	}
	return s.m[url], nil, nil
}

func (s *mapStore) Put(_ context.Context, r *policy.Response, _ time.Duration, _ bool) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return false, errors.New("store down")
	}
	if s.m == nil {
		s.m = make(map[string]*policy.Response)
	}
	s.m[r.URL] = r
	return true, nil
}

func (s *mapStore) Purge(_ context.Context, url string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, url)
	return nil
}

// origin answers in process: fresh for a minute, or failing with err.
type origin struct {
	status int
	err    error
}

func (o origin) RoundTrip(r *http.Request) (*http.Response, error) {
	if o.err != nil {
		return nil, o.err
	}
	status := o.status
	if status == 0 {
		status = http.StatusOK
	}
	h := http.Header{"Cache-Control": {"max-age=60"}}
	return &http.Response{StatusCode: status, Status: http.StatusText(status), ProtoMajor: 1, ProtoMinor: 1, Header: h,
		Body: io.NopCloser(strings.NewReader("hello")), ContentLength: 5, Request: r}, nil
}

func do(t testing.TB, tr http.RoundTripper, ctx context.Context) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://origin.test/a", nil)
	require.NoError(t, err)
	resp, err := tr.RoundTrip(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return resp, err
}

// traced runs one request inside a span of its own and returns the spans
// that ended, the caller's last.
func traced(t *testing.T, tr http.RoundTripper, tp *sdktrace.TracerProvider, sr *tracetest.SpanRecorder) (caller sdktrace.ReadOnlySpan, children []sdktrace.ReadOnlySpan) {
	t.Helper()
	before := len(sr.Ended())
	ctx, span := tp.Tracer("test").Start(context.Background(), "caller")
	_, _ = do(t, tr, ctx)
	span.End()
	ended := sr.Ended()[before:]
	return ended[len(ended)-1], ended[:len(ended)-1]
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := make(map[attribute.Key]attribute.Value)
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

func newProvider() (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	sr := tracetest.NewSpanRecorder()
	return sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr)), sr
}

func TestTracer_OutcomeOnTheCallersSpanAndAChildForTheOrigin(t *testing.T) {
	tp, sr := newProvider()
	tr := roundtrip.New(&mapStore{}, roundtrip.Options{Transport: origin{}, Observer: tracing.New(tracing.Options{})})
	defer tr.Close()

	caller, children := traced(t, tr, tp, sr)
	a := attrs(caller)
	assert.Equal(t, "fleetcache; fwd=uri-miss; fwd-status=200; stored", a[tracing.AttrStatus].AsString())
	assert.False(t, a[tracing.AttrHit].AsBool())
	assert.False(t, a[tracing.AttrCoalesced].AsBool())
	assert.Equal(t, "uri-miss", a[tracing.AttrFwd].AsString())
	require.Len(t, children, 1)
	o := children[0]
	assert.Equal(t, "fleetcache.origin", o.Name())
	assert.Equal(t, caller.SpanContext().SpanID(), o.Parent().SpanID())
	assert.Equal(t, caller.SpanContext().TraceID(), o.SpanContext().TraceID())
	assert.EqualValues(t, 200, attrs(o)["http.response.status_code"].AsInt64())

	caller, children = traced(t, tr, tp, sr)
	a = attrs(caller)
	assert.True(t, a[tracing.AttrHit].AsBool())
	assert.Equal(t, "fleetcache; hit; ttl=60", a[tracing.AttrStatus].AsString())
	_, hasFwd := a[tracing.AttrFwd]
	assert.False(t, hasFwd)
	assert.Empty(t, children, "a hit asks no origin, and its store call is quick")
}

func TestTracer_OriginFailuresMarkTheSpan(t *testing.T) {
	tp, sr := newProvider()
	for _, tc := range []struct {
		name   string
		origin origin
		status string
	}{
		{"unreachable", origin{err: errors.New("connection refused")}, "origin unreachable"},
		{"5xx", origin{status: 503}, "Service Unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := roundtrip.New(&mapStore{}, roundtrip.Options{Transport: tc.origin, Observer: tracing.New(tracing.Options{TracerProvider: tp})})
			defer tr.Close()
			_, children := traced(t, tr, tp, sr)
			require.Len(t, children, 1)
			assert.Equal(t, codes.Error, children[0].Status().Code)
			assert.Equal(t, tc.status, children[0].Status().Description)
		})
	}
}

func TestTracer_SlowStoreCallsGetASpan(t *testing.T) {
	tp, sr := newProvider()
	store := &mapStore{fail: true}
	tr := roundtrip.New(store, roundtrip.Options{Transport: origin{}, Observer: tracing.New(tracing.Options{SlowStoreCall: time.Nanosecond})})
	defer tr.Close()
	caller, children := traced(t, tr, tp, sr)
	var stores []sdktrace.ReadOnlySpan
	for _, c := range children {
		if c.Name() == "fleetcache.store" {
			stores = append(stores, c)
		}
	}
	require.NotEmpty(t, stores)
	for _, s := range stores {
		assert.Equal(t, caller.SpanContext().SpanID(), s.Parent().SpanID())
		assert.Equal(t, codes.Error, s.Status().Code)
		assert.False(t, s.EndTime().Before(s.StartTime()))
	}
}

func TestTracer_NoSpanNoWork(t *testing.T) {
	tp, sr := newProvider()
	tr := roundtrip.New(&mapStore{}, roundtrip.Options{Transport: origin{}, Observer: tracing.New(tracing.Options{TracerProvider: tp, SlowStoreCall: time.Nanosecond})})
	defer tr.Close()
	_, err := do(t, tr, context.Background())
	require.NoError(t, err)
	// A span that does not record (sampled out) is no reason to make more.
	ctx, span := noop.NewTracerProvider().Tracer("t").Start(context.Background(), "sampled-out")
	_, err = do(t, tr, ctx)
	require.NoError(t, err)
	span.End()
	assert.Empty(t, sr.Ended())
	assert.False(t, trace.SpanFromContext(ctx).IsRecording())
}

func TestTracer_OutcomeAttributes(t *testing.T) {
	tp, sr := newProvider()
	tr := tracing.New(tracing.Options{Cache: "edge"})
	ctx, span := tp.Tracer("t").Start(context.Background(), "caller")
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://h/", nil)
	tr.Result(req, roundtrip.Result{Outcome: roundtrip.OutcomeCoalesced, CacheStatus: policy.CacheStatus{Fwd: "stale", FwdStatus: 304, Collapsed: true}})
	span.End()
	a := attrs(sr.Ended()[0])
	assert.Equal(t, "edge; fwd=stale; fwd-status=304; collapsed", a[tracing.AttrStatus].AsString())
	assert.True(t, a[tracing.AttrCoalesced].AsBool())
	assert.False(t, a[tracing.AttrHit].AsBool())
	assert.Equal(t, "stale", a[tracing.AttrFwd].AsString())
}

// The price of tracing a hit: nothing when no tracer is configured, a
// context lookup when the caller has no span, and the attributes when it
// records one.
func BenchmarkHit(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder()))
	_, recording := tp.Tracer("b").Start(context.Background(), "caller")
	for _, bc := range []struct {
		name string
		obs  roundtrip.Observer
		ctx  context.Context
	}{
		{"no-tracer", nil, context.Background()},
		{"tracer/no-span", tracing.New(tracing.Options{}), context.Background()},
		{"tracer/recording-span", tracing.New(tracing.Options{}), trace.ContextWithSpan(context.Background(), recording)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tr := roundtrip.New(&mapStore{}, roundtrip.Options{Transport: origin{}, Observer: bc.obs})
			defer tr.Close()
			if _, err := do(b, tr, bc.ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := do(b, tr, bc.ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func ExampleNew() {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	transport := roundtrip.New(&mapStore{}, roundtrip.Options{Transport: origin{}, Observer: tracing.New(tracing.Options{})})
	defer transport.Close()

	for range 2 {
		ctx, span := tp.Tracer("example").Start(context.Background(), "GET /a")
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://origin.test/a", nil)
		resp, _ := transport.RoundTrip(req)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		span.End()
	}
	for _, s := range sr.Ended() {
		fmt.Print(s.Name())
		for _, kv := range s.Attributes() {
			if kv.Key == tracing.AttrHit {
				fmt.Print(" cache.hit=", kv.Value.AsBool())
			}
		}
		fmt.Println()
	}
	// Output:
	// fleetcache.origin
	// GET /a cache.hit=false
	// GET /a cache.hit=true
}

// What the Tracer adds to a hit whose caller has no span, alone: a
// Result and a Store call.
func BenchmarkTracer_HitWithoutSpan(b *testing.B) {
	tr := tracing.New(tracing.Options{})
	req, _ := http.NewRequest(http.MethodGet, "http://origin.test/a", nil)
	r := roundtrip.Result{Outcome: roundtrip.OutcomeHit, CacheStatus: policy.CacheStatus{Hit: true, TTL: time.Minute, HasTTL: true}}
	start := time.Now()
	b.ReportAllocs()
	for range b.N {
		tr.Store(req.Context(), start, nil)
		tr.Result(req, r)
	}
}
