package roundtrip

import (
	"sync/atomic"

	"github.com/fleetcache/fleetcache/policy"
)

// written is what became of a response offered to the store: Cache-Status
// claims stored only for stored, and otherwise says what happened in its
// detail (RFC 9211 §2.6, §2.8).
type written uint8

const (
	// storing: the body is still arriving. A caller whose header left
	// before its body arrived is told so: the outcome was not known yet.
	storing written = iota
	stored
	uncacheable  // not worth keeping (no freshness, no validator): not offered
	tooLarge     // over MaxEntryBytes, or declined by the store
	bufferFull   // past MaxBufferedBytes: streamed through uncached
	truncated    // the body did not arrive whole
	storeFailed  // the store did not answer (down, timed out, breaker open)
	storeRefused // the store answered the write with a refusal (RefusedError: OOM, NOAUTH)
)

func (o written) detail() string {
	switch o {
	case storing:
		return "storing"
	case uncacheable:
		return string(policy.ReasonUncacheable)
	case tooLarge:
		return string(policy.ReasonTooLarge)
	case bufferFull:
		return "buffer-full"
	case truncated:
		return "truncated"
	case storeFailed:
		return "store-error"
	case storeRefused:
		return "store-refused"
	}
	return ""
}

// DefaultMaxBufferedBytes is the process-wide bound on the response bodies
// a Transport holds while it reads them for the store, unless
// Options.MaxBufferedBytes says otherwise.
const DefaultMaxBufferedBytes = 256 << 20

// budget bounds the bytes of the bodies held for the store, process-wide.
type budget struct {
	limit int64
	used  atomic.Int64
}

// take reserves n bytes; it reports false, reserving nothing, when they do
// not fit.
func (b *budget) take(n int64) bool {
	for {
		used := b.used.Load()
		if used+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

func (b *budget) give(n int64) { b.used.Add(-n) }
