package policy

import (
	"net/http"
	"net/url"
	"strings"
)

// NormalizeURL returns the primary cache key of a request target: scheme
// and host lower-cased, default port dropped, empty path "/",
// percent-encoding normalised (upper-case hex, unreserved characters
// decoded), fragment and user information dropped, query kept byte for
// byte. It allocates once for a path without percent-encoding.
func NormalizeURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	scheme, host := u.Scheme, u.Host
	path := u.Opaque
	if path == "" {
		path = u.EscapedPath()
	}
	var b strings.Builder
	b.Grow(len(scheme) + 3 + len(host) + len(path) + 2 + len(u.RawQuery))
	writeLower(&b, scheme)
	b.WriteString("://")
	writeLower(&b, hostWithoutDefaultPort(scheme, host))
	if path == "" {
		b.WriteByte('/')
	}
	writePath(&b, path)
	if u.ForceQuery || u.RawQuery != "" {
		b.WriteByte('?')
		b.WriteString(u.RawQuery)
	}
	return b.String()
}

func writeLower(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
}

// hostWithoutDefaultPort drops ":80" for http and ":443" for https, and a
// bare ":" (RFC 3986 §6.2.3).
func hostWithoutDefaultPort(scheme, host string) string {
	i := strings.LastIndexByte(host, ':')
	if i < 0 || strings.IndexByte(host[i:], ']') >= 0 {
		return host
	}
	switch port := host[i+1:]; {
	case port == "",
		port == "80" && strings.EqualFold(scheme, "http"),
		port == "443" && strings.EqualFold(scheme, "https"):
		return host[:i]
	}
	return host
}

// writePath copies an escaped path, decoding percent-encoded unreserved
// characters and upper-casing the hex of the others (RFC 3986 §6.2.2).
// NormalizePath returns an escaped path in the form NormalizeURL keys it
// with (RFC 3986 §6.2.2): the percent-encodings of unreserved characters
// decoded, the hex digits of the others in upper case. A proxy that asks
// its upstream for this form gets the answer for the request the cache
// keys on: an upstream that reads "/%61dmin" other than "/admin" would
// otherwise have its answer to one stored for the other.
func NormalizePath(escaped string) string {
	var b strings.Builder
	b.Grow(len(escaped))
	writePath(&b, escaped)
	return b.String()
}

func writePath(b *strings.Builder, p string) {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c != '%' || i+2 >= len(p) || unhex(p[i+1]) < 0 || unhex(p[i+2]) < 0 {
			b.WriteByte(c)
			continue
		}
		if v := byte(unhex(p[i+1])<<4 | unhex(p[i+2])); isUnreserved(v) {
			b.WriteByte(v)
		} else {
			b.WriteByte('%')
			b.WriteByte(upperHex(p[i+1]))
			b.WriteByte(upperHex(p[i+2]))
		}
		i += 2
	}
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func upperHex(c byte) byte {
	if 'a' <= c && c <= 'f' {
		return c - ('a' - 'A')
	}
	return c
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// Invalidates returns the normalised URLs a response to an unsafe or
// unknown method invalidates (RFC 9111 §4.4): nil for safe methods and for
// responses other than 2xx and 3xx; else the target URI and the
// same-origin Location and Content-Location URIs, each once.
func Invalidates(r *http.Request, resp *http.Response) []string {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return nil
	}
	if resp.StatusCode < 200 || resp.StatusCode > 399 || r.URL == nil {
		return nil
	}
	base := targetURL(r)
	target := NormalizeURL(base)
	out := []string{target}
	org := originOf(base)
	for _, field := range [...]string{"Location", "Content-Location"} {
		v := resp.Header.Get(field)
		if v == "" {
			continue
		}
		u, err := base.Parse(v)
		if err != nil || org != originOf(u) {
			continue // another origin could be attacked by naming it (§4.4)
		}
		if n := NormalizeURL(u); !contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// targetURL is the URI a request targets: its URL, with the authority of
// its Host when that is set, because Host is what the server sees (RFC 9110
// §7.2) and so what selects the resource. r.URL is returned as it is when
// they agree.
func targetURL(r *http.Request) *url.URL {
	if r.Host == "" || r.Host == r.URL.Host {
		return r.URL
	}
	u := *r.URL
	u.Host = r.Host
	return &u
}

// originOf is scheme://host[:port] normalised: the origin of RFC 6454.
func originOf(u *url.URL) string {
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(hostWithoutDefaultPort(u.Scheme, u.Host))
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
