package policy

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Conditional returns the request to send to validate stored (RFC 9111
// §4.3.1): a clone of rq.R (never rq.R itself) with If-None-Match from the
// stored ETag and If-Modified-Since from Last-Modified (the stored Date only
// when there is neither), and without the caller's own conditional fields,
// so that a 304 can only refer to what we hold. ok is false when stored has
// none of ETag, Last-Modified and Date: an unconditional request is needed.
func Conditional(rq *Request, stored *Response) (req *http.Request, ok bool) {
	req = Unconditional(rq)
	h := stored.Header
	if etag := h["Etag"]; len(etag) > 0 {
		req.Header["If-None-Match"] = []string{strings.Join(etag, ", ")}
		ok = true
	}
	switch {
	case len(h["Last-Modified"]) > 0:
		req.Header["If-Modified-Since"] = []string{h["Last-Modified"][0]}
		ok = true
	case !ok && len(h["Date"]) > 0:
		req.Header["If-Modified-Since"] = []string{h["Date"][0]}
		ok = true
	}
	return req, ok
}

// Unconditional returns the request a cache sends to fill an entry: a clone
// of rq.R without the caller's own conditional fields, so that the origin
// answers with a response the cache can store and share. The caller's
// conditions are then answered from that response (see NotModified).
// Range and If-Range stay: their answer, a 206 or the whole 200, is as
// shareable as any.
func Unconditional(rq *Request) *http.Request {
	req := rq.R.Clone(rq.R.Context())
	if req.Header == nil {
		req.Header = http.Header{}
	}
	for _, f := range [...]string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since"} {
		req.Header.Del(f)
	}
	return req
}

// NotModified reports whether the caller's own conditional request is
// satisfied by stored, so the cache answers it with a local 304 (RFC 9111
// §4.3.2): If-None-Match by weak comparison against the stored ETag, and
// only when it is absent, If-Modified-Since against Last-Modified (else
// Date, else the time stored was received). Only GET and HEAD, and only for
// a 2xx stored response, as the origin would (RFC 9110 §13.2.1).
func NotModified(r *http.Request, stored *Response) bool {
	if (r.Method != http.MethodGet && r.Method != http.MethodHead) || stored.Status < 200 || stored.Status > 299 {
		return false
	}
	if inm := r.Header["If-None-Match"]; len(inm) > 0 {
		etag := firstValue(stored.Header, "Etag")
		match := false
		for _, v := range inm {
			eachETag(v, func(tag string) {
				match = match || tag == "*" || (etag != "" && weakEqual(tag, etag))
			})
		}
		return match
	}
	ims := r.Header["If-Modified-Since"]
	if len(ims) != 1 {
		return false // absent, or several: ignored (RFC 9110 §13.1.3)
	}
	since, ok := parseHTTPDate(ims[0], stored.ResponseTime)
	if !ok {
		return false
	}
	last, ok := headerDate(stored.Header, "Last-Modified", stored.ResponseTime)
	if !ok {
		last = dateValue(stored)
	}
	return !last.After(since)
}

// Freshen applies a 304 to stored (RFC 9111 §4.3.4): ok is false when the
// 304's validators do not select stored, and then nothing is updated.
// stored must be the response the conditional request was built from
// (Conditional): a 304 that carries no validator at all then selects it,
// since the only condition the origin can have evaluated is stored's. The
// result is a new Response: header fields replaced by the 304's except
// Content-Length, Content-Encoding and the fields that must not be stored;
// RequestTime and ResponseTime set from the arguments. A 304 that makes the
// entry unstorable (no-store, private) shows as Keep <= 0.
func (p *Policy) Freshen(stored *Response, notModified *http.Response, reqTime, respTime time.Time) (fresh *Response, ok bool) {
	if notModified.StatusCode != http.StatusNotModified || !selects(stored.Header, notModified.Header) {
		return nil, false
	}
	return p.update(stored, notModified.Header, reqTime, respTime), true
}

// FreshenHead applies a 200 response to a HEAD request to a stored GET
// response (RFC 9111 §4.3.5): ok is false when a validator the HEAD carries
// differs from the stored one, when the HEAD carries none but stored has
// one, or when Content-Length differs; the caller then treats stored as
// stale (or purges it).
func (p *Policy) FreshenHead(stored *Response, head *http.Response, reqTime, respTime time.Time) (fresh *Response, ok bool) {
	if head.StatusCode != http.StatusOK {
		return nil, false
	}
	hh, sh := head.Header, stored.Header
	got := 0
	for _, f := range [...]string{"Etag", "Last-Modified"} {
		if v := firstValue(hh, f); v != "" {
			got++
			if v != firstValue(sh, f) {
				return nil, false
			}
		}
	}
	if got == 0 && hasValidator(sh) {
		return nil, false
	}
	if cl := firstValue(hh, "Content-Length"); cl != "" && cl != representationLength(stored) {
		return nil, false
	}
	return p.update(stored, hh, reqTime, respTime), true
}

// representationLength is the Content-Length a 200 to a HEAD must have to
// describe the same representation as s: the complete length of a stored
// partial response.
func representationLength(s *Response) string {
	if _, _, n, ok := partial(s); ok {
		return strconv.FormatInt(n, 10)
	}
	if cl := firstValue(s.Header, "Content-Length"); cl != "" {
		return cl
	}
	return strconv.Itoa(len(s.Body))
}

func (p *Policy) update(stored *Response, h http.Header, reqTime, respTime time.Time) *Response {
	fresh := stored.Clone()
	p.copyStorable(fresh.Header, h, true)
	if len(h["Date"]) == 0 {
		// The stored Date would make the freshened response look old.
		delete(fresh.Header, "Date")
		addDate(fresh.Header, respTime)
	}
	if len(h["Age"]) == 0 {
		// Age counts from the last validation at the origin (§5.1):
		// the stored one is now stale news.
		delete(fresh.Header, "Age")
	}
	fresh.RequestTime, fresh.ResponseTime = reqTime, respTime
	fresh.Tags = p.tags(fresh.Header, fresh.URL)
	fresh.Purged = time.Time{} // validated: a soft purge is answered
	return fresh
}

// selects reports whether a 304 with header got refers to the stored
// response with header stored, which our conditional request was built
// from (§4.3.4): a strong ETag must match strongly; else the weak
// validators it carries (a weak ETag, Last-Modified, which this cache
// treats as weak) must all match. With no validator at all it selects
// stored: §4.3.4's "only one stored response" case, which holds because
// the request carried stored's validators and nothing else. Origins (and
// the proxies in front of them) often send such bare 304s; asking them
// again unconditionally would cost a second request for nothing.
func selects(stored, got http.Header) bool {
	etag, lm := firstValue(got, "Etag"), firstValue(got, "Last-Modified")
	setag := firstValue(stored, "Etag")
	switch {
	case etag != "" && !strings.HasPrefix(etag, "W/"):
		return setag != "" && !strings.HasPrefix(setag, "W/") && setag == etag
	case etag == "" && lm == "":
		return true
	case etag != "" && !weakEqual(etag, setag):
		return false
	}
	return lm == "" || lm == firstValue(stored, "Last-Modified")
}

// weakEqual is the weak comparison of two entity-tags (RFC 9110 §8.8.3.2).
func weakEqual(a, b string) bool {
	a, b = strings.TrimPrefix(a, "W/"), strings.TrimPrefix(b, "W/")
	return a != "" && a == b
}

// eachETag calls fn for each entity-tag (or "*") of an If-None-Match line;
// commas inside the opaque tags do not split them.
func eachETag(s string, fn func(string)) {
	for s != "" {
		s = strings.TrimLeft(s, " \t,")
		i := 0
		if strings.HasPrefix(s, "W/") {
			i = 2
		}
		if i < len(s) && s[i] == '"' {
			if j := strings.IndexByte(s[i+1:], '"'); j >= 0 {
				fn(s[:i+j+2])
				s = s[i+j+2:]
				continue
			}
		}
		end := strings.IndexByte(s, ',')
		if end < 0 {
			end = len(s)
		}
		if tag := strings.Trim(s[:end], " \t"); tag != "" {
			fn(tag)
		}
		s = s[end:]
	}
}

func firstValue(h http.Header, ck string) string {
	if vs := h[ck]; len(vs) > 0 {
		return strings.Trim(vs[0], " \t")
	}
	return ""
}
