package policy

import (
	"net/http"
	"strconv"
	"strings"
)

// VaryValues returns the normalised values that header h has for each of
// the given canonical field names, "" for an absent field (RFC 9111 §4.1).
// See appendNormalized for what two values that normalise alike share.
func VaryValues(names []string, h http.Header) []string {
	if len(names) == 0 {
		return nil
	}
	out := make([]string, len(names))
	for i, name := range names {
		out[i] = string(appendNormalized(nil, h[name], caseOf(name)))
	}
	return out
}

// fold says which letters of a field's value are case-insensitive.
type fold int

const (
	foldNone  fold = iota // unknown fields: their letters may mean something
	foldAll               // tokens, language ranges and q-values only
	foldNames             // media ranges and parameter names, not parameter values
)

// caseOf is what the field's specification (RFC 9110 §12.5) says about the
// letter case of its value, for the request fields responses commonly vary
// on. Their parameters also allow whitespace around ";" (§5.6.6).
func caseOf(name string) fold {
	switch name {
	case "Accept-Encoding", "Accept-Language", "Accept-Charset":
		return foldAll
	case "Accept":
		return foldNames
	}
	return foldNone
}

// appendNormalized appends the normalised form of a field's lines to dst,
// so that values that differ only in ways that cannot change their meaning
// select the same variant (RFC 9111 §4.1): lines joined with commas,
// whitespace around commas (and, for the fields caseOf knows, around
// semicolons) dropped, other runs of whitespace folded to one space, ends
// trimmed, and letters lowered where f says case does not matter. Quoted
// strings are copied as they are. Nothing is reordered: the order of
// Accept-Language preferences and q-values are meaning, and two values that
// only might mean the same (q=1 and q=1.0) stay apart: a miss costs a fetch,
// a wrong merge serves the wrong variant.
func appendNormalized(dst []byte, lines []string, f fold) []byte {
	line := ""
	for _, l := range lines {
		switch l = strings.Trim(l, " \t"); {
		case l == "":
		case line == "":
			line = l
		default:
			// Several lines mean what one line joined with commas does
			// (RFC 9110 §5.3); normalised as one, a quoted string reads
			// the same however the value was split.
			line += "," + l
		}
	}
	delim := func(c byte) bool { return c == ',' || (c == ';' && f != foldNone) }
	start := len(dst)
	space, inValue := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t':
			space = true
			continue
		case delim(c):
			dst = append(dst, c)
			space, inValue = false, false
			continue
		}
		if space && len(dst) > start && !delim(dst[len(dst)-1]) {
			dst = append(dst, ' ')
		}
		space = false
		if end := quotedEnd(line, i); end > 0 {
			dst = append(dst, line[i:end]...)
			i = end - 1
			continue
		}
		inValue = inValue || c == '='
		if 'A' <= c && c <= 'Z' && (f == foldAll || (f == foldNames && !inValue)) {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// quotedEnd returns the index just past the quoted-string that starts at
// s[i]; 0 when none does. A quote left open is an ordinary character.
func quotedEnd(s string, i int) int {
	if s[i] != '"' {
		return 0
	}
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return 0
}

// varyMatches reports whether the request header h selects s (§4.1):
// Vary: * never matches; every nominated field must have the same
// normalised value, an absent field matching only an absent one.
func varyMatches(s *Response, h http.Header) bool {
	if len(s.Vary) != len(s.VaryValues) {
		return false // a damaged entry never matches
	}
	var buf [256]byte
	for i, name := range s.Vary {
		if name == "*" {
			return false
		}
		if string(appendNormalized(buf[:0], h[name], caseOf(name))) != s.VaryValues[i] {
			return false
		}
	}
	return true
}

// Variant returns a canonical string naming one variant: "" when names is
// empty, else names and values joined so that distinct selections never
// collide (names cannot hold ':' and each value is length-prefixed). Stores
// hash it.
func Variant(names, values []string) string {
	if len(names) == 0 {
		return ""
	}
	var b []byte
	for i, name := range names {
		v := ""
		if i < len(values) {
			v = values[i]
		}
		b = append(b, name...)
		b = append(b, ':')
		b = strconv.AppendInt(b, int64(len(v)), 10)
		b = append(b, ':')
		b = append(b, v...)
	}
	return string(b)
}
