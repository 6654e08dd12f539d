// Package cachestatus reads back what a fleetcache Transport said it did
// in a response's Cache-Status (RFC 9211), for packages metrics and tracing.
package cachestatus

import (
	"net/http"
	"strings"
)

// Member returns the last member of h's Cache-Status that names cache: a
// cache appends its member after those of the caches before it (RFC 9211
// §2). The transport's members hold no quoted commas.
func Member(h http.Header, cache string) (string, bool) {
	lines := h["Cache-Status"]
	for i := len(lines) - 1; i >= 0; i-- {
		members := strings.Split(lines[i], ",")
		for j := len(members) - 1; j >= 0; j-- {
			m := strings.TrimSpace(members[j])
			if name, _, _ := strings.Cut(m, ";"); name == cache {
				return m, true
			}
		}
	}
	return "", false
}

// Params returns the parameters of a member, "hit" or "fwd=stale", in order.
func Params(member string) []string {
	params := strings.Split(member, ";")[1:]
	for i, p := range params {
		params[i] = strings.TrimSpace(p)
	}
	return params
}

// Outcomes of a request, as Outcome names them.
const (
	Hit         = "hit"         // served from the store
	Stale       = "stale"       // served stale: stale-while-revalidate or stale-if-error
	Miss        = "miss"        // nothing usable stored: the origin's answer
	Revalidated = "revalidated" // a stored response validated with the origin
	Coalesced   = "coalesced"   // served from another request's fetch
	Bypass      = "bypass"      // not the cache's to answer: sent through
	Other       = "other"       // answered by the cache itself (only-if-cached)
)

// Outcome names what the transport did, from its member of Cache-Status.
func Outcome(member string) string {
	var hit, collapsed bool
	var fwd, detail string
	for _, p := range Params(member) {
		name, val, _ := strings.Cut(p, "=")
		switch name {
		case "hit":
			hit = true
		case "collapsed":
			collapsed = true
		case "fwd":
			fwd = val
		case "detail":
			detail = val
		}
	}
	switch {
	case detail == "stale-while-revalidate" || detail == "stale-if-error":
		return Stale
	case hit:
		return Hit
	case collapsed:
		return Coalesced
	case fwd == "bypass" || fwd == "method":
		return Bypass
	case fwd == "stale" || fwd == "request":
		return Revalidated
	case fwd != "":
		return Miss
	}
	return Other
}
