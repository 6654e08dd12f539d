package policy

import (
	"math"
	"net/http"
	"strings"
	"time"
)

// Cache directive flags (RFC 9111 §5.2, RFC 8246).
const (
	ccPublic        uint16 = 1 << iota
	ccPrivate              // unqualified private
	ccPrivateFields        // private="field, ..."
	ccNoCache              // unqualified no-cache
	ccNoCacheFields        // no-cache="field, ..."
	ccNoStore
	ccMustRevalidate
	ccProxyRevalidate
	ccMustUnderstand
	ccImmutable
	ccOnlyIfCached
)

const (
	// absent marks a delta-seconds directive that was not sent.
	absent = -1
	// unlimited is max-stale without a value: any staleness is acceptable.
	unlimited = math.MaxInt64
	// maxDelta is where delta-seconds saturate (RFC 9111 §1.2.2).
	maxDelta = 2147483648
)

// directives is a parsed Cache-Control (or targeted) field. Values are in
// seconds; absent when not sent. It is a value type so that parsing it on
// every decision costs no allocation.
type directives struct {
	flags                               uint16
	maxAge, sMaxAge, maxStale, minFresh int64
	swr, sie                            int64 // stale-while-revalidate, stale-if-error (RFC 5861)
}

func newDirectives() directives {
	return directives{maxAge: absent, sMaxAge: absent, maxStale: absent, minFresh: absent, swr: absent, sie: absent}
}

func (d *directives) has(f uint16) bool { return d.flags&f != 0 }

func seconds(s int64) time.Duration {
	if s == unlimited {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(s) * time.Second
}

// parseCacheControl parses the Cache-Control field lines vs (RFC 9111 §5.2)
// without allocating: the lines are scanned in place, which also joins them.
// req selects the request semantics of duplicates.
func parseCacheControl(vs []string, req bool) directives {
	d := newDirectives()
	for _, v := range vs {
		for v != "" {
			var name, arg string
			var hasArg bool
			name, arg, hasArg, v = nextDirective(v)
			if name != "" {
				d.apply(name, arg, hasArg, req)
			}
		}
	}
	return d
}

// nextDirective splits the first cache-directive (token [ "=" ( token /
// quoted-string ) ]) off s. Malformed input yields an empty name and always
// makes progress, so a hostile field cannot loop or panic.
func nextDirective(s string) (name, arg string, hasArg bool, rest string) {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == ',') {
		i++
	}
	start := i
	for i < len(s) && isTchar(s[i]) {
		i++
	}
	name = s[start:i]
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	if i < len(s) && s[i] == '=' && name != "" {
		i++
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		hasArg = true
		if i < len(s) && s[i] == '"' {
			i++
			start = i
			for i < len(s) && s[i] != '"' {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			arg = s[start:min(i, len(s))]
			i++ // closing quote
		} else {
			start = i
			for i < len(s) && isTchar(s[i]) {
				i++
			}
			arg = s[start:i]
		}
	}
	// Skip whatever is left of this member; a member with trailing garbage
	// is still honoured for the part that parsed.
	for i < len(s) && s[i] != ',' {
		if s[i] == '"' { // a stray quoted string may hide commas
			i++
			for i < len(s) && s[i] != '"' {
				if s[i] == '\\' {
					i++
				}
				i++
			}
		}
		i++
	}
	// Leading commas were skipped, so i > 0 here: the scan always progresses.
	return name, arg, hasArg, s[min(i, len(s)):]
}

// isTchar reports whether c may appear in a token (RFC 9110 §5.6.2).
func isTchar(c byte) bool { return tchar[c] }

// isToken reports whether s is an RFC 9110 §5.6.2 token.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !tchar[s[i]] {
			return false
		}
	}
	return s != ""
}

var tchar = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", byte(c)) >= 0
	}
	return t
}()

// parseDelta parses delta-seconds (RFC 9111 §1.2.2), saturating at
// 2147483648. ok is false for anything but one or more digits.
func parseDelta(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < maxDelta {
			n = n*10 + int64(c-'0')
		}
	}
	return min(n, maxDelta), true
}

func (d *directives) apply(name, arg string, hasArg, req bool) {
	switch len(name) {
	case 6:
		if strings.EqualFold(name, "public") {
			d.flags |= ccPublic
		}
	case 7:
		if strings.EqualFold(name, "max-age") {
			d.maxAge = mergeAge(d.maxAge, arg, req)
		} else if strings.EqualFold(name, "private") {
			d.flags |= pick(hasArg, ccPrivateFields, ccPrivate)
		}
	case 8:
		switch {
		case strings.EqualFold(name, "no-cache"):
			d.flags |= pick(hasArg, ccNoCacheFields, ccNoCache)
		case strings.EqualFold(name, "no-store"):
			d.flags |= ccNoStore
		case strings.EqualFold(name, "s-maxage"):
			d.sMaxAge = mergeAge(d.sMaxAge, arg, req)
		}
	case 9:
		if strings.EqualFold(name, "max-stale") {
			v := int64(unlimited)
			if hasArg {
				var ok bool
				if v, ok = parseDelta(arg); !ok {
					return // an unreadable max-stale allows nothing
				}
			}
			d.maxStale = minPresent(d.maxStale, v)
		} else if strings.EqualFold(name, "min-fresh") {
			if v, ok := parseDelta(arg); ok {
				d.minFresh = max(d.minFresh, v) // most restrictive
			}
		} else if strings.EqualFold(name, "immutable") {
			d.flags |= ccImmutable
		}
	case 14:
		if strings.EqualFold(name, "only-if-cached") {
			d.flags |= ccOnlyIfCached
		} else if strings.EqualFold(name, "stale-if-error") {
			if v, ok := parseDelta(arg); ok {
				d.sie = minPresent(d.sie, v)
			}
		}
	case 15:
		if strings.EqualFold(name, "must-revalidate") {
			d.flags |= ccMustRevalidate
		} else if strings.EqualFold(name, "must-understand") {
			d.flags |= ccMustUnderstand
		}
	case 16:
		if strings.EqualFold(name, "proxy-revalidate") {
			d.flags |= ccProxyRevalidate
		}
	case 22:
		if strings.EqualFold(name, "stale-while-revalidate") {
			if v, ok := parseDelta(arg); ok {
				d.swr = minPresent(d.swr, v)
			}
		}
	}
}

func pick(cond bool, a, b uint16) uint16 {
	if cond {
		return a
	}
	return b
}

// mergeAge folds one max-age or s-maxage value into the one seen so far.
// An invalid value means stale (RFC 9111 §4.2.1: max-age=abc). A response
// with conflicting duplicates is treated as stale (§4.2.1 allows "first" or
// "stale"; stale is the safe one); a request keeps the smallest, the most
// restrictive.
func mergeAge(cur int64, arg string, req bool) int64 {
	v, ok := parseDelta(arg)
	if !ok {
		return 0
	}
	switch {
	case cur == absent:
		return v
	case req:
		return min(cur, v)
	case cur != v:
		return 0
	}
	return cur
}

func minPresent(cur, v int64) int64 {
	if cur == absent {
		return v
	}
	return min(cur, v)
}

// fieldNames calls fn for each field name listed in the qualified form of
// directive (private="a, b" or no-cache="a") in the Cache-Control lines vs.
// Recipients accept the token form too (RFC 9111 §5.2).
func fieldNames(vs []string, directive string, fn func(string)) {
	for _, v := range vs {
		for v != "" {
			var name, arg string
			var hasArg bool
			name, arg, hasArg, v = nextDirective(v)
			if hasArg && strings.EqualFold(name, directive) {
				splitList(arg, fn)
			}
		}
	}
}

// splitList calls fn for each non-empty, trimmed member of a comma list.
func splitList(s string, fn func(string)) {
	for s != "" {
		var m string
		m, s, _ = strings.Cut(s, ",")
		if m = strings.Trim(m, " \t"); m != "" {
			fn(m)
		}
	}
}

// control returns the directives that govern a response: the first valid,
// non-empty targeted field (ours, then CDN-Cache-Control), else
// Cache-Control. targeted reports that a targeted field won, in which case
// Cache-Control and Expires are ignored (RFC 9213 §2.1).
func (p *Policy) control(h http.Header) (d directives, targeted bool) {
	for _, name := range p.targets {
		if vs := h[name]; len(vs) > 0 {
			if d, ok := parseTargeted(vs); ok {
				return d, true
			}
		}
	}
	return parseCacheControl(h["Cache-Control"], false), false
}

// controlFields is fieldNames for whichever field governs h (see control).
func (p *Policy) controlFields(h http.Header, directive string, fn func(string)) {
	for _, name := range p.targets {
		if vs := h[name]; len(vs) > 0 {
			if _, ok := parseTargeted(vs); ok {
				targetedFieldNames(vs, directive, fn)
				return
			}
		}
	}
	fieldNames(h["Cache-Control"], directive, fn)
}
