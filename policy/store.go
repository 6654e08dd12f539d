package policy

import (
	"net/http"
	"net/textproto"
	"strings"
	"time"
)

// Storable reports whether the origin's response to rq may be stored by
// this cache (RFC 9111 §3). Only GET responses are stored: a HEAD is served
// from a stored GET and a HEAD 200 freshens it (FreshenHead). reason says
// why not when ok is false: the Bypass value, ReasonMethod, ReasonNoStore,
// ReasonStatus, ReasonMustUnderstand, ReasonPrivate, ReasonSetCookie,
// ReasonAuthorization, ReasonCookie, ReasonVary, ReasonPartial or ReasonUncacheable.
// ForEveryone says whether that reason holds for the URL's other requests
// too. A 206 is stored when it holds one byte range of a representation of
// known length (RFC 9111 §3.3); it then answers the ranges it covers.
//
// A shared cache does not store a response with Set-Cookie, even a public
// one, as Varnish and nginx do not: one user's session must never reach
// another.
func (p *Policy) Storable(rq *Request, resp *http.Response) (ok bool, reason Reason) {
	switch {
	case rq.Bypass != "":
		return false, rq.Bypass
	case rq.R.Method != http.MethodGet:
		return false, ReasonMethod
	case rq.NoStore:
		return false, ReasonNoStore
	}
	code := resp.StatusCode
	d, targeted := p.control(resp.Header)
	credentials := p.authorizationBlocks(rq, &d)
	switch {
	case !storableStatus(code):
		return false, ReasonStatus
	case !understoodStatus(code) && d.has(ccMustUnderstand):
		return false, ReasonMustUnderstand
	case d.has(ccNoStore) && !d.has(ccMustUnderstand):
		// must-understand with an understood status overrides no-store (§5.2.2.3).
		return false, ReasonNoStore
	case !p.private && d.has(ccPrivate):
		return false, ReasonPrivate
	case !p.private && len(resp.Header["Set-Cookie"]) > 0:
		return false, ReasonSetCookie
	case credentials != "":
		return false, credentials
	case varyStar(resp.Header):
		return false, ReasonVary // never matches a request (§4.1): not worth storing
	case code == http.StatusPartialContent && !singlePart(resp.Header):
		return false, ReasonPartial // several parts, or no length to place them in (§3.3)
	}
	explicit := d.has(ccPublic) || d.maxAge != absent ||
		(p.private && d.has(ccPrivate|ccPrivateFields)) ||
		(!p.private && d.sMaxAge != absent) ||
		(!targeted && len(resp.Header["Expires"]) > 0)
	if !explicit && !heuristicStatus(code) {
		return false, ReasonUncacheable
	}
	return true, ""
}

// NewResponse builds the Response to store from an origin response whose
// body was read whole: header filtered (storedHeader), Vary names and the
// request's values recorded, times recorded.
func (p *Policy) NewResponse(rq *Request, resp *http.Response, body []byte, reqTime, respTime time.Time) *Response {
	s := &Response{
		Method:       rq.R.Method,
		URL:          rq.URL,
		Status:       resp.StatusCode,
		ProtoMajor:   resp.ProtoMajor,
		ProtoMinor:   resp.ProtoMinor,
		Header:       make(http.Header, len(resp.Header)),
		Body:         body,
		RequestTime:  reqTime,
		ResponseTime: respTime,
	}
	p.copyStorable(s.Header, resp.Header, false)
	addDate(s.Header, respTime)
	rt := p.route(rq.URL)
	for _, v := range resp.Header["Vary"] {
		splitList(v, func(name string) {
			if !isToken(name) {
				return // names no request field (RFC 9110 §5.1): selects nothing
			}
			name = textproto.CanonicalMIMEHeaderKey(name)
			if rt != nil && rt.ignoresVary(name) {
				return // the operator's rule keys this URL without it
			}
			for _, have := range s.Vary {
				if have == name {
					return
				}
			}
			s.Vary = append(s.Vary, name)
		})
	}
	s.VaryValues = VaryValues(s.Vary, rq.R.Header)
	s.Tags = p.tags(s.Header, s.URL)
	return s
}

// copyStorable copies the fields of src that a cache may store into dst,
// replacing what dst had for them (§3.1, §3.2), then applies dst's own
// private="..." (shared) and no-cache="..." field lists. update leaves out
// Content-Length and Content-Encoding, which describe the stored body and
// must not change under it (§3.2; an HTTP client that decoded a gzip body
// dropped Content-Encoding from the stored copy, and a 304 must not bring
// it back).
func (p *Policy) copyStorable(dst, src http.Header, update bool) {
	for k, vs := range src {
		ck := textproto.CanonicalMIMEHeaderKey(k)
		if neverStored(ck, p.private) || listed(src["Connection"], ck) ||
			(update && (ck == "Content-Length" || ck == "Content-Encoding")) {
			continue
		}
		dst[ck] = append([]string(nil), vs...)
	}
	// no-cache="f": the rest may be reused, f not without revalidation
	// (§5.2.2.4); the simplest correct choice is not to keep f at all.
	p.controlFields(dst, "no-cache", dst.Del)
	if !p.private {
		p.controlFields(dst, "private", dst.Del) // §5.2.2.7
	}
}

// addDate records when a response without Date was received, as RFC 9110
// §6.6.1 requires of a cache, so that its age and Expires are reckoned from
// that moment ever after.
func addDate(h http.Header, received time.Time) {
	if len(h["Date"]) == 0 {
		h["Date"] = []string{received.UTC().Format(http.TimeFormat)}
	}
}

// neverStored reports the fields a cache must not store (§3.1): hop-by-hop
// fields (RFC 9110 §7.6.1) and the proxy authentication ones; for a shared
// cache also Set-Cookie, so that a 304 cannot plant one user's cookie in
// the entry everybody gets.
func neverStored(ck string, private bool) bool {
	switch ck {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Te", "Transfer-Encoding", "Upgrade", "Trailer",
		"Proxy-Authenticate", "Proxy-Authorization", "Proxy-Authentication-Info":
		return true
	case "Set-Cookie":
		return !private
	}
	return false
}

// listed reports whether the canonical name ck is among the field names of
// a Connection field.
func listed(connection []string, ck string) bool {
	found := false
	for _, v := range connection {
		splitList(v, func(name string) {
			found = found || strings.EqualFold(name, ck)
		})
	}
	return found
}

func varyStar(h http.Header) bool {
	star := false
	for _, v := range h["Vary"] {
		splitList(v, func(name string) { star = star || name == "*" })
	}
	return star
}

// singlePart reports whether a 206's header describes one byte range of a
// representation of known length.
func singlePart(h http.Header) bool {
	if len(h["Content-Range"]) != 1 {
		return false
	}
	_, _, _, ok := parseContentRange(h["Content-Range"][0])
	return ok
}
