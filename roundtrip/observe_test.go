package roundtrip_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/fleetcache/fleetcache/roundtrip"
)

// recorder is an Observer that writes down what it is told.
type recorder struct {
	mu      sync.Mutex
	results []string // Cache-Status of each result, or the error
	origins []int    // status of each origin answer; -1 for an error
	stores  []error
}

type ctxKey struct{}

func (r *recorder) Result(req *http.Request, res roundtrip.Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if res.Err != nil {
		r.results = append(r.results, res.Err.Error())
		return
	}
	r.results = append(r.results, res.CacheStatus.String("fleetcache"))
}

func (r *recorder) Origin(req *http.Request) (*http.Request, func(*http.Response, error)) {
	req = req.WithContext(context.WithValue(req.Context(), ctxKey{}, "mine"))
	return req, func(resp *http.Response, err error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if err != nil {
			r.origins = append(r.origins, -1)
			return
		}
		r.origins = append(r.origins, resp.StatusCode)
	}
}

func (r *recorder) Store(ctx context.Context, start time.Time, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stores = append(r.stores, err)
}

func TestObserver_ToldOfResultsOriginAndStore(t *testing.T) {
	rec := &recorder{}
	var seen any
	h := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("x"))
	}
	f := newFixture(t, h, roundtrip.Options{Observer: rec, Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen = r.Context().Value(ctxKey{}) // the origin request carries the context the observer gave it
		return http.DefaultTransport.RoundTrip(r)
	})})
	f.get("/a")
	f.get("/a")
	rec.mu.Lock()
	defer rec.mu.Unlock()
	assert.Equal(t, "mine", seen)
	assert.Equal(t, []string{"fleetcache; fwd=uri-miss; fwd-status=200; stored", "fleetcache; hit; ttl=60"}, rec.results)
	assert.Equal(t, []int{200}, rec.origins)
	assert.Len(t, rec.stores, 4, "lookup, the leader's second look, put, hit")
	for _, err := range rec.stores {
		assert.NoError(t, err)
	}
}

func TestObserver_StoreErrorsAndOriginFailures(t *testing.T) {
	rec := &recorder{}
	store := newMemStore(time.Now)
	store.fail.Store(true)
	boom := errors.New("origin down")
	tr := roundtrip.New(store, roundtrip.Options{Observer: rec, Transport: roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, boom })})
	defer tr.Close()
	req, _ := http.NewRequest(http.MethodGet, "http://origin.test/a", nil)
	_, err := tr.RoundTrip(req)
	assert.ErrorIs(t, err, boom)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	assert.Equal(t, []string{boom.Error()}, rec.results)
	assert.Equal(t, []int{-1}, rec.origins)
	assert.NotEmpty(t, rec.stores)
	for _, err := range rec.stores {
		assert.Error(t, err)
	}
}

func TestObservers_CombinesInOrder(t *testing.T) {
	assert.Nil(t, roundtrip.Observers())
	assert.Nil(t, roundtrip.Observers(nil, nil))
	a := &recorder{}
	assert.Same(t, a, roundtrip.Observers(nil, a))
	b := &recorder{}
	both := roundtrip.Observers(a, b)
	req, _ := http.NewRequest(http.MethodGet, "http://h/", nil)
	out, done := both.Origin(req)
	assert.Equal(t, "mine", out.Context().Value(ctxKey{}))
	done(&http.Response{StatusCode: 204}, nil)
	both.Store(context.Background(), time.Now(), nil)
	both.Result(req, roundtrip.Result{Err: errors.New("e")})
	for _, r := range []*recorder{a, b} {
		assert.Equal(t, []int{204}, r.origins)
		assert.Len(t, r.stores, 1)
		assert.Equal(t, []string{"e"}, r.results)
	}
}
