package policy

import (
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"time"
)

// Tags name groups of stored responses that one purge removes together:
// the surrogate keys of CDNs (Cache-Tag, Surrogate-Key: space or comma
// separated) and the cache groups of RFC 9875 (Cache-Groups, a Structured
// Fields List of Strings). A group belongs to its origin (RFC 9875 §2.1):
// it is tagged GroupTag(origin, group), so that one origin's
// Cache-Group-Invalidation never reaches another's responses.

// DefaultTagFields are the response fields read for tags when
// Options.TagFields is nil.
var DefaultTagFields = []string{"Cache-Tag", "Surrogate-Key"}

// Limits on what one response tags, so that a response cannot make the
// store's tag index grow without bound. RFC 9875 §2 asks a cache to keep at
// least 32 groups of at least 32 characters each.
const (
	MaxTags      = 64  // tags of one response (tag fields and groups together); the rest are ignored
	MaxTagLength = 128 // bytes of one tag or group name; longer ones are ignored
)

// GroupTag is the tag of an RFC 9875 cache group: the group's origin
// ("https://example.com", as NormalizeURL writes it), a space and the group.
// An operator purges a group with this tag.
func GroupTag(origin, group string) string { return origin + " " + group }

// TagFields returns the canonical names of the fields tags are read from
// (Cache-Groups aside), which a cache facing clients may strip.
func (p *Policy) TagFields() []string { return p.tagFields }

// tags returns the tags of a response to url with header h: its
// Cache-Groups as GroupTags, then each tag field's space- or
// comma-separated tags, each once, at most MaxTags. Groups come first, so
// that however many tags the tag fields name, the 32 groups RFC 9875 §2
// asks for are kept; a group's length is its name's, not its GroupTag's,
// as InvalidatedGroups counts it, so that the origin's length takes
// nothing from it.
func (p *Policy) tags(h http.Header, rawURL string) []string {
	var out []string
	add := func(tag, name string) {
		if name != "" && len(name) <= MaxTagLength && len(out) < MaxTags && !contains(out, tag) {
			out = append(out, tag)
		}
	}
	if vs := h["Cache-Groups"]; len(vs) > 0 {
		if u, err := url.Parse(rawURL); err == nil {
			org := originOf(u)
			for _, g := range groupsUpTo(vs, MaxTags) {
				add(GroupTag(org, g), g)
			}
		}
	}
	for _, name := range p.tagFields {
		for _, v := range h[name] {
			// A sequence, not a slice: a field of megabytes costs no memory.
			for t := range strings.FieldsFuncSeq(v, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' }) {
				if len(out) == MaxTags {
					break
				}
				add(t, t)
			}
		}
	}
	return out
}

// Groups parses a Cache-Groups or Cache-Group-Invalidation field (RFC 9875
// §2, §3): a Structured Fields List (RFC 8941 §3.1) whose String members are
// the groups. Members of other types and parameters are ignored; a field
// that does not parse is ignored whole (RFC 8941 §4.2).
func Groups(vs []string) []string {
	var out []string
	ok := parseList(joinLines(vs), func(v sfValue) {
		if v.kind == sfString {
			out = append(out, unescape(v.str))
		}
	})
	if !ok {
		return nil
	}
	return out
}

// InvalidatedGroups returns the tags of the groups a response to an unsafe
// method invalidates (RFC 9875 §3): its Cache-Group-Invalidation groups, as
// GroupTags of the request's origin. Like Invalidates (RFC 9111 §4.4), nil
// for safe methods and for responses other than 2xx and 3xx.
func InvalidatedGroups(r *http.Request, resp *http.Response) []string {
	vs := resp.Header["Cache-Group-Invalidation"]
	if len(vs) == 0 || r.URL == nil || safeMethod(r.Method) || resp.StatusCode < 200 || resp.StatusCode > 399 {
		return nil
	}
	org := originOf(targetURL(r))
	var out []string
	for _, g := range groupsUpTo(vs, MaxTags) {
		out = append(out, GroupTag(org, g))
	}
	return out
}

// groupsUpTo is Groups keeping, of a valid field, the distinct groups that
// can be tags (not empty, at most MaxTagLength bytes), at most max of
// them: an origin's field of megabytes costs no more than max strings.
func groupsUpTo(vs []string, max int) []string {
	var out []string
	ok := parseList(joinLines(vs), func(v sfValue) {
		if v.kind != sfString || len(out) == max {
			return
		}
		if g := unescape(v.str); g != "" && len(g) <= MaxTagLength && !contains(out, g) {
			out = append(out, g)
		}
	})
	if !ok {
		return nil
	}
	return out
}

func safeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

func unescape(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// parseList parses a List (RFC 8941 §4.2.1), calling fn for each member in
// order. It reports false for an invalid field; an empty one is an empty
// list.
func parseList(s string, fn func(v sfValue)) bool {
	p := sfParser{s: strings.Trim(s, " \t")}
	for p.i < len(p.s) {
		v, ok := p.member()
		if !ok {
			return false
		}
		fn(v)
		if more, ok := p.next(); !more {
			return ok
		}
	}
	return true
}

func tagFieldNames(names []string) []string {
	if names == nil {
		names = DefaultTagFields
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = textproto.CanonicalMIMEHeaderKey(n)
	}
	return out
}

// softPurgedAge is the current age of a response a soft purge made stale
// at purged: at least its freshness lifetime, growing from the purge on, so
// that it is stale at once and its stale-while-revalidate and
// stale-if-error windows count from the purge.
func softPurgedAge(age, lifetime time.Duration, purged, now time.Time) time.Duration {
	return max(age, addSat(lifetime, max(now.Sub(purged), 0)))
}
