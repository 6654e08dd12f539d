package policy

import "net/http"

// Reason says why a request bypasses the cache or why a response is not
// stored. Its value is the word the Cache-Status detail shows (RFC 9211).
type Reason string

// Why a request bypasses the cache (Request.Bypass).
const (
	ReasonURL          Reason = "url"          // no absolute URL to key on
	ReasonMethod       Reason = "method"       // neither GET nor HEAD
	ReasonBody         Reason = "body"         // a GET or HEAD with content
	ReasonOverride     Reason = "override"     // a field that overrides the method or target (OverrideFields)
	ReasonRange        Reason = "range"        // a Range the cache does not answer
	ReasonPrecondition Reason = "precondition" // If-Match, If-Unmodified-Since: only the origin can evaluate them
)

// Why a response is not stored (Storable), besides the bypass reasons.
const (
	ReasonNoStore        Reason = "no-store"
	ReasonStatus         Reason = "status"          // not a final status that may be stored
	ReasonMustUnderstand Reason = "must-understand" // must-understand with such a status
	ReasonPrivate        Reason = "private"         // private, in a shared cache
	ReasonSetCookie      Reason = "set-cookie"      // Set-Cookie, in a shared cache
	ReasonAuthorization  Reason = "authorization"   // the request's Authorization, not allowed by the response
	ReasonCookie         Reason = "cookie"          // the request's Cookie, not allowed by the response (Options.CookieAuth)
	ReasonVary           Reason = "vary"            // Vary: *
	ReasonPartial        Reason = "partial"         // a 206 of several parts, or of no known length
	ReasonUncacheable    Reason = "uncacheable"     // nothing makes it cacheable, or nothing is worth keeping
	ReasonTooLarge       Reason = "too-large"       // set by a cache whose size limit the body exceeds
)

// overrideFields are request fields that frameworks widely read as a new
// method, path, scheme, port or host for the request: an origin that
// honours one answers another request than the one the cache keys on.
// X-Forwarded-For, -Host and -Proto are not among them: a proxy sets those
// itself from the connection.
var overrideFields = [...]string{
	"X-Forwarded-Port",
	"X-Forwarded-Prefix",
	"X-Forwarded-Scheme",
	"X-Forwarded-Server",
	"X-Forwarded-Ssl",
	"X-Host",
	"X-Http-Method",
	"X-Http-Method-Override",
	"X-Method-Override",
	"X-Original-Host",
	"X-Original-Url",
	"X-Rewrite-Url",
	"X-Url-Scheme",
}

// OverrideFields returns the canonical names of the request fields that
// make a request bypass the cache (ReasonOverride): fields that common
// frameworks read as another method (X-HTTP-Method-Override), path
// (X-Original-URL, X-Rewrite-URL) or scheme, port or host
// (X-Forwarded-Scheme, X-Forwarded-Port) than the request line's, so that
// the answer is not the one for the URL the cache keys on.
func OverrideFields() []string {
	return append([]string(nil), overrideFields[:]...)
}

func hasOverride(h http.Header) bool {
	for _, name := range overrideFields {
		if len(h[name]) > 0 {
			return true
		}
	}
	return false
}

// hasContent reports whether r carries content. A GET or HEAD with content
// has no defined meaning (RFC 9110 §9.3.1), but an origin may read it all
// the same, and its answer would be keyed on the URL alone.
func hasContent(r *http.Request) bool {
	if r.ContentLength > 0 || len(r.TransferEncoding) > 0 || len(r.Header["Transfer-Encoding"]) > 0 {
		return true
	}
	// A client request with a body of unknown length (net/http sends it
	// chunked); a server's request without content has http.NoBody.
	return r.Body != nil && r.Body != http.NoBody && r.ContentLength <= 0
}

// ForEveryone reports whether resp, which was not stored for why, speaks
// for every request of its URL, and not only for rq: only then may a cache
// drop the response it stored for the URL (stored, nil on a plain miss) or
// stop collapsing requests for it. A refusal that may come from the request
// does not: its Authorization or cookies (in a shared cache), its own
// directives, its negotiation (a 406 to its Accept and every other client
// error but the cacheable 404, 405, 410 and 414), its own conditions (a
// 304). Otherwise no-store and private (in a shared cache) speak for
// everyone; any other reason only on a plain miss, or when resp carries a
// validator other than stored's (the resource changed).
func (p *Policy) ForEveryone(rq *Request, resp *http.Response, stored *Response, why Reason) bool {
	switch why {
	case "", ReasonURL, ReasonMethod, ReasonBody, ReasonOverride, ReasonRange, ReasonPrecondition, ReasonAuthorization, ReasonCookie:
		return false
	case ReasonNoStore:
		if rq.NoStore {
			return false
		}
	}
	code := resp.StatusCode
	if (!p.private && (rq.hasAuth || rq.hasCookie)) || code == http.StatusNotModified ||
		(code >= 400 && code < 500 && !heuristicStatus(code)) {
		return false
	}
	switch why {
	case ReasonNoStore, ReasonPrivate:
		return true
	}
	return stored == nil || newValidator(stored.Header, resp.Header)
}

// newValidator reports whether h names another version of the resource
// than stored: another entity tag or, without one, another Last-Modified.
func newValidator(stored, h http.Header) bool {
	for _, k := range [...]string{"Etag", "Last-Modified"} {
		if v := h[k]; len(v) > 0 {
			s := stored[k]
			return len(s) == 0 || s[0] != v[0]
		}
	}
	return false
}
