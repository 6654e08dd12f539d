package policy

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// CacheStatus is one member of a Cache-Status field (RFC 9211). The obsolete
// Warning field is never generated: RFC 9111 §5.5 retired it.
type CacheStatus struct {
	Hit bool
	// Fwd: "uri-miss", "vary-miss", "stale", "request", "bypass", "method",
	// "miss"; "" with Hit.
	Fwd       string
	FwdStatus int           // the origin's status code when forwarded, 0 if none
	TTL       time.Duration // with HasTTL; negative when stale
	HasTTL    bool
	Stored    bool
	Collapsed bool
	Detail    string
}

// String renders the member with the given cache name, e.g.
// `fleetcache; hit; ttl=42` or `fleetcache; fwd=uri-miss; fwd-status=200;
// stored`. TTL is rendered in whole seconds; a name or detail that is not a
// token is rendered as a String.
func (c CacheStatus) String(name string) string {
	b := make([]byte, 0, 64)
	b = appendTokenOrString(b, name)
	if c.Hit {
		b = append(b, "; hit"...)
	}
	if c.Fwd != "" {
		b = append(b, "; fwd="...)
		b = appendTokenOrString(b, c.Fwd)
	}
	if c.FwdStatus != 0 {
		b = append(b, "; fwd-status="...)
		b = strconv.AppendInt(b, int64(c.FwdStatus), 10)
	}
	if c.HasTTL {
		b = append(b, "; ttl="...)
		b = strconv.AppendInt(b, int64(c.TTL/time.Second), 10)
	}
	if c.Stored {
		b = append(b, "; stored"...)
	}
	if c.Collapsed {
		b = append(b, "; collapsed"...)
	}
	if c.Detail != "" {
		b = append(b, "; detail="...)
		b = appendTokenOrString(b, c.Detail)
	}
	return string(b)
}

// AppendTo adds the member to h's Cache-Status field, after any members
// already there (RFC 9211 §2: caches closer to the origin come first), as
// one field line.
func (c CacheStatus) AppendTo(h http.Header, name string) {
	member := c.String(name)
	if prev := h["Cache-Status"]; len(prev) > 0 {
		member = strings.Join(prev, ", ") + ", " + member
	}
	h["Cache-Status"] = []string{member}
}

// appendTokenOrString appends s as an sf-token when it is one (RFC 8941
// §3.3.4), else as an sf-string with non-printable characters dropped.
func appendTokenOrString(b []byte, s string) []byte {
	if isSFToken(s) {
		return append(b, s...)
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c >= 0x20 && c <= 0x7e:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

func isSFToken(s string) bool {
	if s == "" || !(s[0] == '*' || ('a' <= s[0] && s[0] <= 'z') || ('A' <= s[0] && s[0] <= 'Z')) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isTchar(s[i]) && s[i] != ':' && s[i] != '/' {
			return false
		}
	}
	return true
}

// CacheStatusMember is one member of a Cache-Status field: the cache that
// added it and what it says.
type CacheStatusMember struct {
	Cache string // the cache's name, as CacheStatus.String was given it
	CacheStatus
}

// ErrCacheStatus is wrapped by the error ParseCacheStatus returns when it
// skipped a member it could not read.
var ErrCacheStatus = errors.New("policy: malformed Cache-Status member")

// ParseCacheStatus reads h's Cache-Status field (RFC 9211), a List (RFC 8941
// §3.1) with a member per cache, in order from the origin's side to the
// client's: fleetcache's own member is the last one that names it. Several
// field lines are read as one list (RFC 9110 §5.3); no field gives nil.
//
// It reads what other caches send without failing on it: parameters it does
// not know (key, a cache's own) are skipped, a known parameter of the wrong
// type or out of range is read as absent, and of repeated parameters the
// last one counts (RFC 8941 §4.2.3.2). A member that is not a valid Item
// named by a Token or a String is skipped, and the members after it are
// still read: the error, wrapping ErrCacheStatus, names the first member
// skipped, and comes with every member that could be read.
func ParseCacheStatus(h http.Header) ([]CacheStatusMember, error) {
	var lines []string
	for _, v := range h["Cache-Status"] {
		if v = strings.Trim(v, " \t"); v != "" {
			lines = append(lines, v)
		}
	}
	if len(lines) == 0 {
		return nil, nil
	}
	s := joinLines(lines)
	var members []CacheStatusMember
	var err error
	for n, i := 1, 0; i < len(s); n++ {
		m, end, ok := parseCacheStatusMember(s, i)
		if ok {
			members = append(members, m)
		} else {
			end = skipMember(s, i)
			if err == nil {
				err = fmt.Errorf("%w: member %d, %q", ErrCacheStatus, n, clip(strings.Trim(s[i:end], " \t"), 64))
			}
		}
		i = end
		if i < len(s) { // at the comma
			i++
			for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
				i++
			}
			if i == len(s) && err == nil { // a trailing comma: an empty member
				err = fmt.Errorf("%w: member %d is empty", ErrCacheStatus, n+1)
			}
		}
	}
	return members, err
}

// parseCacheStatusMember reads the member starting at s[i], up to the comma
// that ends it (end) or the end of s.
func parseCacheStatusMember(s string, i int) (m CacheStatusMember, end int, ok bool) {
	p := sfParser{s: s, i: i}
	name, ok := p.bareItem()
	switch {
	case !ok:
		return m, 0, false
	case name.kind == sfString:
		m.Cache = unescapeSFString(name.str)
	case name.kind == sfToken:
		m.Cache = name.str
	default:
		return m, 0, false
	}
	if !p.params(m.set) {
		return m, 0, false
	}
	p.skipOWS()
	if p.i < len(s) && s[p.i] != ',' {
		return m, 0, false
	}
	return m, p.i, true
}

// set applies one parameter (RFC 9211 §2.1 to §2.8).
func (m *CacheStatusMember) set(key string, v sfValue) {
	c := &m.CacheStatus
	switch key {
	case "hit":
		c.Hit = v.kind == sfBoolean && v.b
	case "stored":
		c.Stored = v.kind == sfBoolean && v.b
	case "collapsed":
		c.Collapsed = v.kind == sfBoolean && v.b
	case "fwd":
		c.Fwd = ""
		if v.kind == sfToken {
			c.Fwd = v.str
		}
	case "fwd-status":
		c.FwdStatus = 0
		if v.kind == sfInteger && v.num >= 100 && v.num <= 999 {
			c.FwdStatus = int(v.num)
		}
	case "ttl":
		c.TTL, c.HasTTL = 0, v.kind == sfInteger
		if c.HasTTL {
			c.TTL = saturatingSeconds(v.num)
		}
	case "detail":
		switch v.kind {
		case sfToken:
			c.Detail = v.str
		case sfString:
			c.Detail = unescapeSFString(v.str)
		default:
			c.Detail = ""
		}
	}
}

// skipMember returns the index of the comma that ends the member starting
// at s[i], or len(s): the first comma outside a String.
func skipMember(s string, i int) int {
	quoted := false
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			return i
		}
	}
	return len(s) // also when a String ends in a lone backslash
}

// unescapeSFString undoes the \" and \\ escapes of a String's content.
func unescapeSFString(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
		}
		b = append(b, s[i])
	}
	return string(b)
}

// saturatingSeconds converts n seconds (at most 15 digits) to a Duration,
// saturating where a Duration ends (about 292 years).
func saturatingSeconds(n int64) time.Duration {
	const most = math.MaxInt64 / int64(time.Second)
	switch {
	case n > most:
		return math.MaxInt64
	case n < -most:
		return math.MinInt64
	}
	return time.Duration(n) * time.Second
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
