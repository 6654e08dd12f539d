package policy

import (
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"time"
)

// A Route is what an operator's rule says about the responses of some URLs
// (package rules matches rules to URLs): how long they stay fresh, whether
// they are cached at all, and what their key ignores. It changes what the
// cache does with a response, never what a client is served: that stays the
// origin's status, header and body, plus Age and Cache-Status. The safety
// rules of a shared cache (private, no-store, Set-Cookie, Authorization)
// are not a Route's to change.
type Route struct {
	// NoStore keeps the cache out of the URLs' way: their requests bypass
	// it, neither served from it nor stored (Cache-Status detail=rule).
	NoStore bool
	// MinTTL and MaxTTL bound the freshness lifetime of the responses the
	// cache may store; 0 is no bound. MinTTL makes a response that has no
	// freshness of its own (or an expired Expires) fresh for that long; it
	// does not lift no-cache, which asks for validation at every use.
	MinTTL, MaxTTL time.Duration
	// StaleWhileRevalidate and StaleIfError apply when a response names no
	// window of its own (RFC 5861); must-revalidate, proxy-revalidate and
	// s-maxage still forbid serving stale.
	StaleWhileRevalidate, StaleIfError time.Duration
	// IgnoreQuery names query parameters the key leaves out; a trailing *
	// matches every name with that prefix ("utm_*"). The origin still
	// receives them: what it answers must not depend on them.
	IgnoreQuery []string
	// SortQuery keys the query's parameters in the order of their names,
	// so that "?b=2&a=1" and "?a=1&b=2" share an entry. Parameters of one
	// name keep their order: it may mean something.
	SortQuery bool
	// IgnoreVary names request fields that the key leaves out even when a
	// response varies on them: one variant then answers every value of the
	// field (a response that varies on User-Agent, served to every agent).
	IgnoreVary []string
	// Normalize reduces a request field to one of a few values: the first
	// of the field's values listed here that the request lists (and does
	// not refuse with q=0) replaces the field, and a request that lists
	// none is sent without it. The origin is asked with the reduced field,
	// so that the response stored for a value is right for every request
	// reduced to it: {"Accept-Encoding": {"br", "gzip"}}.
	Normalize map[string][]string
}

// ReasonRule is the Bypass of a request whose Route says NoStore.
const ReasonRule Reason = "rule"

// route returns the Route of url, nil when there is none.
func (p *Policy) route(url string) *Route {
	if p.routes == nil || url == "" {
		return nil
	}
	return p.routes(url)
}

// applyRoute applies rt to a request already parsed: the key, and the
// fields it normalises on a request the cache answers.
func (rq *Request) applyRoute(rt *Route) {
	rq.URL = rt.Key(rq.URL)
	if rq.Bypass != "" {
		return
	}
	if rt.NoStore {
		rq.Bypass = ReasonRule
		return
	}
	rq.R = rt.normalize(rq.R)
}

// applyRoute bounds the lifetime and supplies the stale windows a response
// lacks.
func (e *eval) applyRoute(rt *Route) {
	if rt.MaxTTL > 0 && e.lifetime > rt.MaxTTL {
		e.lifetime = rt.MaxTTL
	}
	if rt.MinTTL > 0 && e.lifetime < rt.MinTTL {
		e.lifetime, e.heuristic = rt.MinTTL, false
	}
	if e.d.swr == absent && rt.StaleWhileRevalidate > 0 {
		e.d.swr = int64(rt.StaleWhileRevalidate / time.Second)
	}
	if e.d.sie == absent && rt.StaleIfError > 0 {
		e.d.sie = int64(rt.StaleIfError / time.Second)
	}
}

// ignoresVary reports whether the key leaves the request field name out.
func (rt *Route) ignoresVary(name string) bool {
	for _, n := range rt.IgnoreVary {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

// Key returns the cache key url (NormalizeURL's output) has under rt: the
// ignored query parameters dropped, the rest sorted by name if SortQuery.
func (rt *Route) Key(url string) string {
	q := strings.IndexByte(url, '?')
	if q < 0 || (len(rt.IgnoreQuery) == 0 && !rt.SortQuery) {
		return url
	}
	params := strings.Split(url[q+1:], "&")
	kept := params[:0]
	for _, param := range params {
		if param != "" && !rt.ignoresParam(paramName(param)) {
			kept = append(kept, param)
		}
	}
	if rt.SortQuery {
		slices.SortStableFunc(kept, func(a, b string) int { return strings.Compare(paramName(a), paramName(b)) })
	}
	if len(kept) == 0 {
		return url[:q]
	}
	return url[:q+1] + strings.Join(kept, "&")
}

// paramName is a query parameter's name, percent-decoded when it can be.
func paramName(param string) string {
	name, _, _ := strings.Cut(param, "=")
	if dec, err := url.QueryUnescape(name); err == nil {
		return dec
	}
	return name
}

func (rt *Route) ignoresParam(name string) bool {
	for _, pat := range rt.IgnoreQuery {
		if prefix, ok := strings.CutSuffix(pat, "*"); ok && strings.HasPrefix(name, prefix) || pat == name {
			return true
		}
	}
	return false
}

// normalize returns r with the fields rt normalises reduced, a copy when
// that changes anything.
func (rt *Route) normalize(r *http.Request) *http.Request {
	var h http.Header
	for name, values := range rt.Normalize {
		name = textproto.CanonicalMIMEHeaderKey(name)
		have := r.Header[name]
		want := reduce(have, values)
		if len(have) == 1 && have[0] == want || len(have) == 0 && want == "" {
			continue
		}
		if h == nil {
			h = r.Header.Clone()
		}
		if want == "" {
			delete(h, name)
		} else {
			h[name] = []string{want}
		}
	}
	if h == nil {
		return r
	}
	r2 := new(http.Request)
	*r2 = *r
	r2.Header = h
	return r2
}

// reduce returns the first of values that the field's lines list without
// q=0, compared without regard to case; "" when none.
func reduce(lines, values []string) string {
	for _, v := range values {
		for _, line := range lines {
			found := false
			splitList(line, func(member string) {
				token, params, _ := strings.Cut(member, ";")
				if strings.EqualFold(strings.TrimSpace(token), v) && !refused(params) {
					found = true
				}
			})
			if found {
				return v
			}
		}
	}
	return ""
}

// refused reports whether a member's parameters give it a weight of 0
// (RFC 9110 §12.4.2: "q=0", "q=0.0", "q=0.000").
func refused(params string) bool {
	for _, p := range strings.Split(params, ";") {
		name, val, ok := strings.Cut(strings.TrimSpace(p), "=")
		if ok && strings.EqualFold(strings.TrimSpace(name), "q") {
			val = strings.TrimRight(strings.TrimSpace(val), "0")
			return val == "" || val == "0." || val == "0"
		}
	}
	return false
}

// Invalidates is the package's Invalidates with each URL keyed as its Route
// says, so that an unsafe method invalidates the entry its URL is stored
// under.
func (p *Policy) Invalidates(r *http.Request, resp *http.Response) []string {
	urls := Invalidates(r, resp)
	for i, u := range urls {
		if rt := p.route(u); rt != nil {
			urls[i] = rt.Key(u)
		}
	}
	return urls
}
