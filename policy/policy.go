package policy

import (
	"math"
	"net/http"
	"net/textproto"
	"strings"
	"time"
)

// Options tune the decisions. The zero value is the recommended shared-cache
// setup.
type Options struct {
	// Private makes a private (single-user) cache: private responses are
	// stored, s-maxage and proxy-revalidate are ignored. The default is a
	// shared cache, which many users reach.
	Private bool
	// CookieAuth makes a shared cache treat a request's Cookie as
	// RFC 9111 §3.5 treats Authorization, allowing only public and
	// s-maxage: a response to a request with a Cookie is stored, and a
	// stored response serves one, only when it says public or s-maxage.
	// It is for a cache in front of an origin that tells its users apart
	// by cookie, as package middleware's is.
	CookieAuth bool
	// HeuristicCap caps heuristic freshness (RFC 9111 §4.2.2); 0 means 24h.
	HeuristicCap time.Duration
	// NoQueryHeuristic restores the RFC 2616 §13.9 rule: no heuristic
	// freshness for a URL with a query. RFC 9111 dropped it.
	NoQueryHeuristic bool
	// TargetedField names our own targeted cache-control field (RFC 9213);
	// "" means "Fleetcache-Cache-Control". When valid it wins over
	// CDN-Cache-Control, which wins over Cache-Control and Expires.
	TargetedField string
	// Routes returns the Route of a normalised URL, nil for none: it is
	// asked for every request and every stored response, so it must be
	// quick. Nil means no URL has one. Package rules provides one.
	Routes func(url string) *Route
	// TagFields names the response fields whose space- or comma-separated
	// values tag a stored response for purging by tag (besides RFC 9875
	// Cache-Groups, always read); nil means DefaultTagFields, empty none.
	TagFields []string
}

// DefaultTargetedField is the targeted field used when
// Options.TargetedField is empty.
const DefaultTargetedField = "Fleetcache-Cache-Control"

const (
	defaultHeuristicCap = 24 * time.Hour
	// revalidationWindow is how long an entry with validators is kept past
	// its last servable moment: a stale entry still turns a full response
	// into a 304. Stores evict such entries first (Keep's explicit false).
	revalidationWindow = 24 * time.Hour
)

// Policy makes the decisions for one configuration. It is immutable and
// safe for concurrent use.
type Policy struct {
	private      bool
	cookies      bool // Options.CookieAuth
	heuristicCap time.Duration
	noQuery      bool
	targets      [2]string // canonical targeted field names, in precedence order
	routes       func(url string) *Route
	tagFields    []string // canonical names
}

// New returns a Policy for opts.
func New(opts Options) *Policy {
	p := &Policy{private: opts.Private, heuristicCap: opts.HeuristicCap, noQuery: opts.NoQueryHeuristic, routes: opts.Routes}
	if p.heuristicCap <= 0 {
		p.heuristicCap = defaultHeuristicCap
	}
	p.cookies = opts.CookieAuth
	p.tagFields = tagFieldNames(opts.TagFields)
	own := opts.TargetedField
	if own == "" {
		own = DefaultTargetedField
	}
	p.targets = [2]string{textproto.CanonicalMIMEHeaderKey(own), "Cdn-Cache-Control"}
	return p
}

// Request is a request parsed once for all the decisions of one round trip.
type Request struct {
	R   *http.Request
	URL string // NormalizeURL(R.URL)
	// Bypass is non-empty when the cache must not be consulted at all and
	// the request goes straight to the origin, uncollapsed: ReasonURL,
	// ReasonMethod, ReasonBody, ReasonOverride, ReasonRange (a Range the
	// cache does not answer: several ranges, another unit, bad syntax) or
	// ReasonPrecondition.
	Bypass Reason
	// Range is the Range field of a GET asking for one byte range, which
	// the cache answers from stored responses (see Part); "" otherwise. A
	// HEAD's Range is ignored, as servers do (RFC 9110 §14.2).
	Range string
	// NoStore, NoCache and OnlyIfCached are the request directives (RFC
	// 9111 §5.2.1); NoCache is also set by Pragma: no-cache when there is
	// no Cache-Control (§5.4). The transport answers OnlyIfCached with 504
	// when Reuse does not say Serve.
	NoStore, NoCache, OnlyIfCached bool
	// MaxAge, MaxStale, MinFresh: -1 when absent; MaxStale is the largest
	// Duration when max-stale has no value. An unreadable max-age is 0 (the
	// safe reading); an unreadable max-stale or min-fresh is ignored.
	MaxAge, MaxStale, MinFresh time.Duration
	// StaleIfError is the request's stale-if-error (RFC 5861), -1 when absent.
	StaleIfError time.Duration

	hasAuth, hasCookie bool
	rng                byteRange
	ifRange            string
}

// ParseRequest parses r's cache-relevant parts. It does not change r.
func (p *Policy) ParseRequest(r *http.Request) Request {
	rq := Request{R: r}
	switch {
	case r.URL == nil || r.URL.Host == "":
		rq.Bypass = ReasonURL
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		rq.Bypass = ReasonMethod
	case hasContent(r):
		rq.Bypass = ReasonBody
	case hasOverride(r.Header):
		rq.Bypass = ReasonOverride
	case r.Method == http.MethodGet && len(r.Header["Range"]) > 0 && !rq.parseRange(r.Header):
		rq.Bypass = ReasonRange
	case len(r.Header["If-Match"]) > 0 || len(r.Header["If-Unmodified-Since"]) > 0:
		// Preconditions only the origin can evaluate (RFC 9111 §4.3.2).
		rq.Bypass = ReasonPrecondition
	}
	if r.URL != nil {
		rq.URL = NormalizeURL(targetURL(r))
	}
	cc := r.Header["Cache-Control"]
	d := parseCacheControl(cc, true)
	rq.NoStore = d.has(ccNoStore)
	rq.NoCache = d.has(ccNoCache | ccNoCacheFields)
	if len(cc) == 0 {
		for _, v := range r.Header["Pragma"] {
			fieldNamesEach(v, func(name string) {
				if strings.EqualFold(name, "no-cache") {
					rq.NoCache = true
				}
			})
		}
	}
	rq.OnlyIfCached = d.has(ccOnlyIfCached)
	rq.MaxAge = durationOrAbsent(d.maxAge)
	rq.MaxStale = durationOrAbsent(d.maxStale)
	rq.MinFresh = durationOrAbsent(d.minFresh)
	rq.StaleIfError = durationOrAbsent(d.sie)
	rq.hasAuth = len(r.Header["Authorization"]) > 0
	rq.hasCookie = len(r.Header["Cookie"]) > 0
	if rt := p.route(rq.URL); rt != nil {
		rq.applyRoute(rt)
	}
	return rq
}

// parseRange records a Range of one byte range and the If-Range that goes
// with it; false for any other Range.
func (rq *Request) parseRange(h http.Header) bool {
	if len(h["Range"]) != 1 {
		return false
	}
	rng, ok := parseRange(h["Range"][0])
	if !ok {
		return false
	}
	rq.Range, rq.rng = h["Range"][0], rng
	if v := h["If-Range"]; len(v) == 1 {
		rq.ifRange = v[0]
	} else if len(v) > 1 {
		rq.ifRange = "," // several: matches nothing, so the whole is sent
	}
	return true
}

// fieldNamesEach calls fn with the name of each directive of one
// Cache-Control-like line (Pragma shares the syntax).
func fieldNamesEach(v string, fn func(string)) {
	for v != "" {
		var name string
		name, _, _, v = nextDirective(v)
		if name != "" {
			fn(name)
		}
	}
}

func durationOrAbsent(s int64) time.Duration {
	if s == absent {
		return -1
	}
	return seconds(s)
}

// Action is what to do with a stored response for a request.
type Action int

const (
	// Serve: fresh, or stale within the request's max-stale.
	Serve Action = iota
	// ServeStale: stale within stale-while-revalidate (RFC 5861): serve
	// now, refresh in the background.
	ServeStale
	// Revalidate: send a conditional request first (stale, no-cache,
	// request no-cache, max-age or min-fresh not met).
	Revalidate
	// Unusable: the stored response cannot answer this request at all
	// (other URL, Vary mismatch, Vary: *, Authorization not allowed, a
	// HEAD entry for a GET): forward as a miss.
	Unusable
)

// Reuse is the decision about one stored response.
type Reuse struct {
	Action Action
	Age    time.Duration // current_age (RFC 9111 §4.2.3), for the Age header
	TTL    time.Duration // freshness lifetime - current age; negative when stale
	Detail string        // short reason: "vary-miss", "stale", "no-cache", "max-age" ...
	// Fwd is the Cache-Status fwd value (RFC 9211) when the request goes
	// to the origin: "uri-miss", "vary-miss", "partial" (a stored partial
	// response lacks what is asked) or "miss" when the stored response
	// cannot be used, "request" when the caller's directives
	// asked to validate a fresh one, "stale" otherwise; "" when served.
	Fwd string
}

// eval is what the decisions derive from a stored response at a moment.
type eval struct {
	d         directives
	lifetime  time.Duration
	heuristic bool
	age       time.Duration
}

func (p *Policy) evaluate(s *Response, now time.Time) eval {
	d, targeted := p.control(s.Header)
	e := eval{d: d}
	e.lifetime, e.heuristic = p.lifetime(s, &e.d, targeted)
	if rt := p.route(s.URL); rt != nil {
		e.applyRoute(rt)
	}
	e.age = currentAge(s, now)
	if !s.Purged.IsZero() {
		e.age = softPurgedAge(e.age, e.lifetime, s.Purged, now)
	}
	return e
}

func (e *eval) ttl() time.Duration { return e.lifetime - e.age }

// Reuse decides how stored may answer rq at now (RFC 9111 §4, RFC 5861,
// RFC 8246). It does not allocate.
//
// immutable (RFC 8246): while fresh, the request's max-age (a reload sends
// max-age=0) does not force a revalidation, as the RFC lets a cache choose;
// an explicit request no-cache is still honoured, because a caller that says
// no-cache wants the origin asked.
func (p *Policy) Reuse(rq *Request, stored *Response, now time.Time) Reuse {
	if why := p.unusable(rq, stored); why != "" {
		return Reuse{Action: Unusable, Detail: why, Fwd: missFwd(why)}
	}
	e := p.evaluate(stored, now)
	if why := p.authorizationBlocks(rq, &e.d); why != "" {
		return Reuse{Action: Unusable, Detail: string(why), Fwd: "miss"}
	}
	r := Reuse{Action: Revalidate, Age: e.age, TTL: e.ttl(), Fwd: "stale"}
	fresh := r.TTL > 0
	switch {
	case e.d.has(ccNoCache):
		r.Detail = "no-cache"
	case rq.NoCache:
		r.Detail = "request-no-cache"
	case rq.MaxAge >= 0 && e.age > rq.MaxAge && !(fresh && e.d.has(ccImmutable)):
		r.Detail = "max-age"
	case rq.MinFresh >= 0 && r.TTL < rq.MinFresh:
		r.Detail = "min-fresh"
	case fresh:
		r.Action, r.Fwd = Serve, ""
	case p.staleForbidden(&e.d):
		r.Detail = "must-revalidate"
	case rq.MaxStale >= 0 && -r.TTL <= rq.MaxStale:
		r.Action, r.Detail, r.Fwd = Serve, "max-stale", ""
	case e.d.swr >= 0 && -r.TTL <= seconds(e.d.swr):
		r.Action, r.Detail, r.Fwd = ServeStale, "stale-while-revalidate", ""
	default:
		r.Detail = "stale"
	}
	if fresh && r.Action == Revalidate && r.Detail != "no-cache" {
		r.Fwd = "request" // fresh, but the caller asked for validation
	}
	return r
}

// missFwd is the Cache-Status fwd value for a stored response that cannot
// be used at all.
func missFwd(why string) string {
	if why == "uri-miss" || why == "vary-miss" || why == "partial" {
		return why
	}
	return "miss"
}

// unusable is the part of Reuse that does not depend on freshness: the
// primary key, the method and the Vary selection (§4, §4.1).
func (p *Policy) unusable(rq *Request, s *Response) string {
	switch {
	case rq.Bypass != "":
		return string(rq.Bypass)
	case s == nil || s.URL != rq.URL:
		return "uri-miss"
	case s.Method != rq.R.Method && s.Method != http.MethodGet:
		// A stored GET answers a HEAD; nothing else crosses methods.
		return "method"
	case !varyMatches(s, rq.R.Header):
		return "vary-miss"
	case !p.Covers(rq, s):
		return "partial" // a stored part that lacks what is asked
	}
	return ""
}

// authorizationBlocks applies §3.5: a shared cache reuses a response to a
// request with Authorization only when the response allows it explicitly;
// with CookieAuth, a request with a Cookie only when it says public
// or s-maxage.
func (p *Policy) authorizationBlocks(rq *Request, d *directives) Reason {
	switch {
	case p.private || d.sMaxAge != absent:
	case rq.hasAuth && !d.has(ccPublic|ccMustRevalidate):
		return ReasonAuthorization
	case p.cookies && rq.hasCookie && !d.has(ccPublic):
		return ReasonCookie
	}
	return ""
}

// staleForbidden reports whether d forbids serving stale without a
// successful validation (§4.2.4): must-revalidate, and for a shared cache
// proxy-revalidate and s-maxage (§5.2.2.10).
func (p *Policy) staleForbidden(d *directives) bool {
	if d.has(ccMustRevalidate | ccNoCache) {
		return true
	}
	return !p.private && (d.has(ccProxyRevalidate) || d.sMaxAge != absent)
}

// StaleIfError reports whether stored may be served because the origin
// failed (connection error, timeout, or a 500, 502, 503 or 504), per RFC 5861
// stale-if-error in the request or the response, the most restrictive of
// the two winning; or within the request's max-stale. Never when
// must-revalidate, proxy-revalidate (shared), s-maxage (shared) or no-cache
// forbid serving stale, nor when the request said no-cache without allowing
// stale-if-error itself.
func (p *Policy) StaleIfError(rq *Request, stored *Response, now time.Time) bool {
	if p.unusable(rq, stored) != "" {
		return false
	}
	e := p.evaluate(stored, now)
	if p.authorizationBlocks(rq, &e.d) != "" || p.staleForbidden(&e.d) || (rq.NoCache && rq.StaleIfError < 0) {
		return false
	}
	staleness := -e.ttl()
	window := time.Duration(-1)
	if e.d.sie != absent {
		window = seconds(e.d.sie)
	}
	if rq.StaleIfError >= 0 && (window < 0 || rq.StaleIfError < window) {
		window = rq.StaleIfError
	}
	return staleness <= window || (rq.MaxStale >= 0 && staleness <= rq.MaxStale)
}

// Keep is how long a store should keep stored from now: remaining freshness
// plus the longest stale window it may be served in (stale-while-revalidate,
// stale-if-error) plus, when it has a validator, a revalidation window of a
// day (a stale entry with validators is still worth a 304). Zero or
// negative: not worth keeping. explicit is false when only a heuristic made
// it fresh or it is kept only for revalidation; stores evict those first.
func (p *Policy) Keep(stored *Response, now time.Time) (ttl time.Duration, explicit bool) {
	if stored.Status == http.StatusPartialContent && len(stored.Body) > 0 {
		// Checked once the body is in (a 206 always has one): a part
		// whose body is not the range it claims answers nothing.
		if _, _, _, ok := partial(stored); !ok {
			return 0, false
		}
	}
	e := p.evaluate(stored, now)
	if (e.d.has(ccNoStore) && !e.d.has(ccMustUnderstand)) || (!p.private && e.d.has(ccPrivate)) {
		return 0, false // a freshened entry may have turned unstorable
	}
	ttl = e.ttl()
	// The sums saturate: an Expires in the year 9999 makes the lifetime
	// the largest Duration already.
	if e.d.has(ccNoCache) {
		ttl = 0 // only ever used after a validation
	} else if !p.staleForbidden(&e.d) {
		ttl = addSat(ttl, seconds(max(e.d.swr, e.d.sie, 0)))
	}
	explicit = ttl > 0 && !e.heuristic
	if hasValidator(stored.Header) {
		ttl = addSat(max(ttl, 0), revalidationWindow)
	}
	return ttl, explicit
}

// lifetime is the freshness lifetime (§4.2.1): s-maxage (shared), max-age,
// Expires - Date, else a heuristic (§4.2.2).
func (p *Policy) lifetime(s *Response, d *directives, targeted bool) (life time.Duration, heuristic bool) {
	if !p.private && d.sMaxAge != absent {
		return seconds(d.sMaxAge), false
	}
	if d.maxAge != absent {
		return seconds(d.maxAge), false
	}
	if ex := s.Header["Expires"]; !targeted && len(ex) > 0 {
		t, ok := parseHTTPDate(ex[0], s.ResponseTime)
		if !ok {
			return 0, false // invalid Expires, "0" included: already expired (§5.3)
		}
		return max(t.Sub(dateValue(s)), 0), false
	}
	if !heuristicStatus(s.Status) || (p.noQuery && strings.IndexByte(s.URL, '?') >= 0) {
		return 0, false
	}
	lm, ok := headerDate(s.Header, "Last-Modified", s.ResponseTime)
	if !ok {
		return 0, false
	}
	if since := dateValue(s).Sub(lm); since > 0 {
		return min(since/10, p.heuristicCap), true
	}
	return 0, false
}

// dateValue is the response's Date, or the time it was received when Date
// is missing or invalid (RFC 9110 §6.6.1).
func dateValue(s *Response) time.Time {
	if t, ok := headerDate(s.Header, "Date", s.ResponseTime); ok {
		return t
	}
	return s.ResponseTime
}

// currentAge computes current_age (§4.2.3).
func currentAge(s *Response, now time.Time) time.Duration {
	var apparent time.Duration
	if date, ok := headerDate(s.Header, "Date", s.ResponseTime); ok {
		apparent = max(s.ResponseTime.Sub(date), 0)
	}
	ageValue, _ := parseAge(s.Header["Age"]) // a bad Age counts as none
	var delay time.Duration
	if !s.RequestTime.IsZero() { // a Response built without it has no delay to add
		delay = max(s.ResponseTime.Sub(s.RequestTime), 0)
	}
	initial := max(apparent, addSat(ageValue, delay))
	return addSat(initial, max(now.Sub(s.ResponseTime), 0))
}

// addSat adds b >= 0 to a, saturating instead of wrapping: hostile dates
// must not turn an old response young, nor a long-lived one expired.
func addSat(a, b time.Duration) time.Duration {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// heuristicStatus reports the status codes that are heuristically
// cacheable (RFC 9110 §15.1).
func heuristicStatus(code int) bool {
	switch code {
	case 200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// storableStatus reports the status codes a response may be stored with
// (RFC 9111 §3): final ones, known or not (a 299, 499 or 599 with explicit
// freshness may be reused; must-understand, §5.2.2.3, is how an origin asks
// for the opposite), but 304, a validation answer and never an entry of its
// own, and 416, which answers one request's Range and no other request.
func storableStatus(code int) bool {
	return code >= 200 && code <= 599 && code != http.StatusNotModified && code != http.StatusRequestedRangeNotSatisfiable
}

// understoodStatus reports the final status codes whose caching semantics
// this cache implements, for must-understand: those RFC 9110 defines.
func understoodStatus(code int) bool {
	switch {
	case code >= 200 && code <= 205, code >= 300 && code <= 303, code == 305, code == 307, code == 308,
		code >= 400 && code <= 417, code == 421, code == 422, code == 426,
		code >= 500 && code <= 505:
		return true
	}
	return false
}

func hasValidator(h http.Header) bool {
	return len(h["Etag"]) > 0 || len(h["Last-Modified"]) > 0
}
