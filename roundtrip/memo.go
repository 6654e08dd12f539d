package roundtrip

import (
	"sync"
	"sync/atomic"
	"time"
)

// memoLimit bounds each in-process memo. A fleet may see millions of URLs;
// the memos only save round trips, so forgetting everything once in a while
// costs a little latency and never correctness.
const memoLimit = 1 << 16

// memo is a bounded, read-mostly map from URL to V, safe for concurrent
// use. Reads take no lock: the hit path reads it on every request.
type memo[V any] struct {
	m sync.Map
	n atomic.Int64
}

func (m *memo[V]) load(key string) (V, bool) {
	v, ok := m.m.Load(key)
	if !ok {
		var zero V
		return zero, false
	}
	return v.(V), true
}

func (m *memo[V]) store(key string, v V) {
	if _, loaded := m.m.Swap(key, v); !loaded && m.n.Add(1) > memoLimit {
		m.m.Clear()
		m.n.Store(0)
	}
}

func (m *memo[V]) delete(key string) {
	if _, loaded := m.m.LoadAndDelete(key); loaded {
		m.n.Add(-1)
	}
}

// varyMemo remembers which request fields each URL varies on, so that a
// Vary'd resource is found with one store round trip, not two.
type varyMemo struct{ memo[[]string] }

func (v *varyMemo) get(url string) []string {
	names, _ := v.load(url)
	return names
}

// set records names for url; URLs that vary on nothing are only recorded
// when they used to vary, to keep the memo small.
func (v *varyMemo) set(url string, names []string) {
	old, known := v.load(url)
	if equalNames(old, names) {
		return
	}
	if len(names) == 0 && known {
		v.delete(url)
		return
	}
	v.store(url, names)
}

func (v *varyMemo) forget(url string) { v.delete(url) }

// sizeMemo remembers the size of the large entries each URL had, so that
// reading one again is given the time its size takes (storeCallSized).
// Small entries are not recorded: the memo stays as small as the set of
// large URLs.
type sizeMemo struct{ memo[int64] }

func (m *sizeMemo) get(url string) int64 {
	n, _ := m.load(url)
	return n
}

func (m *sizeMemo) set(url string, n int64) {
	switch old, known := m.load(url); {
	case n >= largeEntry && old != n:
		m.store(url, n)
	case n < largeEntry && known:
		m.delete(url)
	}
}

// markers is the in-process side of hit-for-miss: keys whose last response
// could not be shared are not collapsed until the marker expires, so that a
// burst on an uncacheable URL does not queue behind one request at a time.
type markers struct{ memo[time.Time] }

// markerTTL is how long a key stays uncollapsed after an unshareable
// response: long enough to let a burst through, short enough that a URL
// that becomes cacheable is collapsed again soon.
const markerTTL = 5 * time.Second

func (m *markers) mark(key string, now time.Time) { m.store(key, now.Add(markerTTL)) }

func (m *markers) marked(key string, now time.Time) bool {
	until, ok := m.load(key)
	if ok && now.After(until) {
		m.delete(key)
		return false
	}
	return ok
}
