package main

import "math/bits"

// subBits is the number of mantissa bits a histogram bucket keeps: 32
// sub-buckets per power of two, so a quantile is known to about 3%.
const subBits = 5

// histSize covers every int64 nanosecond value.
const histSize = (64 - subBits) << subBits

// hist is a log-linear latency histogram in nanoseconds. It has a fixed size
// so that recording a latency never allocates: the harness measures the
// allocations of the code under test, not its own.
type hist struct {
	Counts [histSize]uint64
}

func bucketOf(ns int64) int {
	if ns < 1<<subBits {
		return int(max(ns, 0))
	}
	shift := bits.Len64(uint64(ns)) - subBits - 1
	return shift<<subBits + int(uint64(ns)>>shift)
}

// bucketMid is the middle of the nanosecond range that bucket i counts.
func bucketMid(i int) int64 {
	if i < 1<<subBits {
		return int64(i)
	}
	shift := i>>subBits - 1
	m := int64(i&(1<<subBits-1) | 1<<subBits)
	return m<<shift + (int64(1)<<shift)/2
}

func (h *hist) record(ns int64) { h.Counts[bucketOf(ns)]++ }

func (h *hist) merge(o *hist) {
	for i, c := range o.Counts {
		h.Counts[i] += c
	}
}

func (h *hist) total() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// quantile returns the latency in nanoseconds below which a fraction q of
// the recorded latencies lie, or 0 when nothing was recorded.
func (h *hist) quantile(q float64) int64 {
	n := h.total()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5)
	rank = min(max(rank, 1), n)
	var seen uint64
	for i, c := range h.Counts {
		seen += c
		if seen >= rank {
			return bucketMid(i)
		}
	}
	return bucketMid(histSize - 1)
}
