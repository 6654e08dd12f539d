package policy

import (
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
