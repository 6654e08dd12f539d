package policy

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Range requests (RFC 9110 §14) from stored responses. A request with one
// byte range is answered from a stored complete 200, or from a stored 206
// whose single range covers it; several ranges, other units and bad syntax
// go to the origin unchanged (Request.Bypass "range"). A stored 206 lives in
// the same slot as a complete response would: one entry per variant, so
// that purge, invalidation, Vary and HEAD cover it without more.

// maxPos bounds byte positions: larger numbers are no range we can hold,
// and keeping them below it keeps every sum exact.
const maxPos = 1 << 62

// byteRange is one byte-range-spec: first-last, first- (last is -1), or a
// suffix of the last `last` bytes (first is -1).
type byteRange struct{ first, last int64 }

// parseRange reads a Range field value holding exactly one byte range
// (RFC 9110 §14.1.1, §14.2): the unit is case-insensitive, whitespace
// around the range is allowed. Several ranges, other units and bad syntax
// are not (ok false).
func parseRange(v string) (byteRange, bool) {
	unit, spec, ok := strings.Cut(strings.Trim(v, " \t"), "=")
	if !ok || !strings.EqualFold(strings.TrimRight(unit, " \t"), "bytes") {
		return byteRange{}, false
	}
	spec = strings.Trim(spec, " \t")
	a, b, ok := strings.Cut(spec, "-")
	if !ok {
		return byteRange{}, false
	}
	switch first, last := pos(a), pos(b); {
	case a == "" && last >= 0: // suffix: -n
		return byteRange{-1, last}, true
	case first >= 0 && b == "":
		return byteRange{first, -1}, true
	case first >= 0 && last >= first:
		return byteRange{first, last}, true
	}
	return byteRange{}, false
}

// pos parses a byte position: ASCII digits only, below maxPos; -1 otherwise.
func pos(s string) int64 {
	if s == "" || len(s) > 18 {
		return -1
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return -1
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n
}

// resolve places r in a representation of length n (§14.1.2): the first
// and last positions, clamped to it; ok false when unsatisfiable.
func (r byteRange) resolve(n int64) (first, last int64, ok bool) {
	switch {
	case r.first < 0: // suffix
		if r.last == 0 || n == 0 {
			return 0, 0, false
		}
		return max(n-r.last, 0), n - 1, true
	case r.first >= n:
		return 0, 0, false
	case r.last < 0 || r.last >= n:
		return r.first, n - 1, true
	}
	return r.first, r.last, true
}

// parseContentRange reads the Content-Range of a single-part 206 (§14.4):
// "bytes first-last/complete". An unknown complete length ("*") is not
// accepted: without it no suffix or open range can be placed.
func parseContentRange(v string) (first, last, complete int64, ok bool) {
	unit, rest, ok := strings.Cut(strings.Trim(v, " \t"), " ")
	if !ok || !strings.EqualFold(unit, "bytes") {
		return 0, 0, 0, false
	}
	rng, length, ok := strings.Cut(rest, "/")
	a, b, ok2 := strings.Cut(rng, "-")
	first, last, complete = pos(a), pos(b), pos(length)
	if !ok || !ok2 || first < 0 || last < first || complete <= last {
		return 0, 0, 0, false
	}
	return first, last, complete, true
}

// partial returns the range a stored 206 holds and the complete length;
// ok only when its Content-Range is valid and its body is exactly that
// range. A 206 that fails this answers nothing and is not kept.
func partial(s *Response) (first, last, complete int64, ok bool) {
	if s.Status != http.StatusPartialContent || len(s.Header["Content-Range"]) != 1 {
		return 0, 0, 0, false
	}
	first, last, complete, ok = parseContentRange(s.Header["Content-Range"][0])
	if !ok || int64(len(s.Body)) != last-first+1 {
		return 0, 0, 0, false
	}
	return first, last, complete, true
}

// Part is how a stored response answers a request (RFC 9110 §14.2).
type Part struct {
	// Status is the stored status for the whole stored response (no
	// Range, a Range on a status that has no ranges, or an If-Range that
	// does not match; 200 for a stored 206 that holds every byte), 206
	// for a byte range, 416 for an unsatisfiable one, and 0 when stored
	// cannot answer the request at all (a partial response that does not
	// cover it, or a request for the whole representation).
	Status int
	// Body is the bytes to send for 206: a slice of the stored body,
	// shared, never copied.
	Body []byte
	// ContentRange is the Content-Range to send with 206 and 416.
	ContentRange string
}

// Part says how stored answers rq's Range. It allocates only the
// Content-Range of a 206 or 416.
func (p *Policy) Part(rq *Request, stored *Response) Part {
	k, first, last, complete := rangeOf(rq, stored)
	switch k {
	case whole:
		if stored.Status == http.StatusPartialContent {
			// A part that is the whole representation, sent as a 200.
			return Part{Status: http.StatusOK, Body: stored.Body}
		}
		return Part{Status: stored.Status, Body: stored.Body}
	case unsatisfiable:
		return Part{Status: http.StatusRequestedRangeNotSatisfiable, ContentRange: "bytes */" + strconv.FormatInt(complete, 10)}
	case inPart:
		off := int64(0)
		if stored.Status == http.StatusPartialContent {
			off, _, _, _ = partial(stored)
		}
		return Part{Status: http.StatusPartialContent, Body: stored.Body[first-off : last-off+1], ContentRange: contentRange(first, last, complete)}
	}
	return Part{}
}

func contentRange(first, last, complete int64) string {
	b := make([]byte, 0, 32)
	b = append(b, "bytes "...)
	b = strconv.AppendInt(b, first, 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, last, 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, complete, 10)
	return string(b)
}

type rangeKind int

const (
	cannot rangeKind = iota
	whole
	inPart
	unsatisfiable
)

// rangeOf decides what of stored answers rq; first and last are the
// absolute positions of the range, complete the representation's length.
func rangeOf(rq *Request, s *Response) (k rangeKind, first, last, complete int64) {
	pf, pl, n := int64(0), int64(len(s.Body))-1, int64(len(s.Body))
	isPartial := s.Status == http.StatusPartialContent
	if isPartial {
		var ok bool
		if pf, pl, n, ok = partial(s); !ok {
			return cannot, 0, 0, 0
		}
		// A part that is the whole (the answer to "bytes=0-", which media
		// players send first) answers everything a complete 200 does.
		isPartial = pf > 0 || pl < n-1
	}
	// Ranges apply to a complete 200 (or a stored part of one); an If-Range
	// that does not match asks for the whole representation (§13.1.5).
	if rq.Range == "" || (s.Status != http.StatusOK && s.Status != http.StatusPartialContent) || !ifRangeHolds(rq.ifRange, s) {
		if isPartial {
			return cannot, 0, 0, 0
		}
		return whole, 0, 0, 0
	}
	first, last, ok := rq.rng.resolve(n)
	switch {
	case !ok:
		return unsatisfiable, 0, 0, n
	case first < pf || last > pl:
		return cannot, 0, 0, 0
	}
	return inPart, first, last, n
}

// ifRangeHolds evaluates an If-Range value against stored (RFC 9110
// §13.1.5): an entity-tag must match the stored ETag strongly; a date must
// equal the stored Last-Modified exactly, and that Last-Modified must be
// strong: at least a second older than the Date it was sent with
// (§8.8.2.2). Anything else does not hold. An empty value always holds.
func ifRangeHolds(v string, s *Response) bool {
	v = strings.Trim(v, " \t")
	switch {
	case v == "":
		return true
	case v[0] == '"' || strings.HasPrefix(v, "W/"):
		etag := firstValue(s.Header, "Etag")
		return strongETag(v) && v == etag
	}
	since, ok := parseHTTPDate(v, s.ResponseTime)
	if !ok {
		return false
	}
	lm, ok := headerDate(s.Header, "Last-Modified", s.ResponseTime)
	return ok && lm.Equal(since) && dateValue(s).Sub(lm) >= time.Second
}

func strongETag(tag string) bool {
	return len(tag) >= 2 && tag[0] == '"' && tag[len(tag)-1] == '"'
}

// Covers reports whether stored can answer rq as far as ranges go: false
// only for a stored partial response that lacks what rq asks for. Reuse
// says Unusable, detail "partial", in that case.
func (p *Policy) Covers(rq *Request, stored *Response) bool {
	if rq.Range == "" && stored.Status != http.StatusPartialContent {
		return true // the hit path's common case, decided without parsing
	}
	k, _, _, _ := rangeOf(rq, stored)
	return k != cannot
}

// Complete returns the request that fetches only what stored, a partial
// response, lacks to answer rq, when that is one range that joins what
// stored holds and stored has a strong ETag to combine on (RFC 9111 §3.4):
// a Range for it with If-Range, so that a changed representation comes
// whole as a 200 instead. ok is false otherwise, or when the joined part
// would be larger than limit bytes, and the request is rq's own
// (Unconditional): it asks the origin for what the caller asked.
func (p *Policy) Complete(rq *Request, stored *Response, limit int64) (req *http.Request, ok bool) {
	req = Unconditional(rq)
	pf, pl, n, isPartial := partial(stored)
	etag := firstValue(stored.Header, "Etag")
	if !isPartial || !strongETag(etag) || rq.R.Method != http.MethodGet {
		return req, false
	}
	first, last := int64(0), n-1 // the whole representation
	if rq.Range != "" && ifRangeHolds(rq.ifRange, stored) {
		var satisfiable bool
		if first, last, satisfiable = rq.rng.resolve(n); !satisfiable {
			return req, false
		}
	}
	var a, b int64
	switch {
	case first >= pf && last <= pl, first < pf && last > pl:
		return req, false // nothing missing, or two pieces
	case first < pf && last >= pf-1:
		a, b = first, pf-1
	case last > pl && first <= pl+1:
		a, b = pl+1, last
	default:
		return req, false // a gap between what is stored and what is asked
	}
	if max(b, pl)-min(a, pf)+1 > limit {
		return req, false // the joined part would be too large to keep
	}
	spec := "bytes=" + strconv.FormatInt(a, 10) + "-"
	if b < n-1 {
		spec += strconv.FormatInt(b, 10)
	}
	req.Header["Range"] = []string{spec}
	req.Header["If-Range"] = []string{etag}
	return req, true
}

// Combine joins the 206 an origin sent to a Complete request with stored,
// the partial response it completes (RFC 9111 §3.4, RFC 9110 §15.3.7.3):
// only when both carry the same strong ETag, the complete lengths agree,
// body is exactly the part the 206 says, and the two parts join. The
// result's header fields are stored's updated with the 206's (§3.2); it is
// a 200 when the parts make the whole representation, else a larger 206.
func (p *Policy) Combine(stored *Response, resp *http.Response, body []byte, reqTime, respTime time.Time) (*Response, bool) {
	pf, pl, n, ok := partial(stored)
	if !ok || resp.StatusCode != http.StatusPartialContent || len(resp.Header["Content-Range"]) != 1 {
		return nil, false
	}
	a, b, m, ok := parseContentRange(resp.Header["Content-Range"][0])
	etag := firstValue(stored.Header, "Etag")
	if !ok || m != n || int64(len(body)) != b-a+1 || !strongETag(etag) || firstValue(resp.Header, "Etag") != etag ||
		a > pl+1 || b < pf-1 {
		return nil, false
	}
	first, last := min(pf, a), max(pl, b)
	joined := make([]byte, last-first+1)
	copy(joined[pf-first:], stored.Body)
	copy(joined[a-first:], body)
	c := p.update(stored, resp.Header, reqTime, respTime)
	c.Body = joined
	if first == 0 && last == n-1 {
		c.Status = http.StatusOK
		delete(c.Header, "Content-Range")
	} else {
		c.Header["Content-Range"] = []string{contentRange(first, last, n)}
	}
	c.Header["Content-Length"] = []string{strconv.Itoa(len(joined))}
	return c, true
}
