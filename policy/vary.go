package policy

import (
	"net/http"
	"strconv"
	"strings"
)

// VaryValues returns the normalised values (joined lines, trimmed, inner
// whitespace folded) that header h has for each of the given canonical
// field names; "" for an absent field (RFC 9111 §4.1).
func VaryValues(names []string, h http.Header) []string {
	if len(names) == 0 {
		return nil
	}
	out := make([]string, len(names))
	for i, name := range names {
		out[i] = string(appendNormalized(nil, h[name]))
	}
	return out
}

// appendNormalized appends the normalised form of a field's lines to dst:
// lines joined with commas, whitespace around commas dropped, other runs
// of whitespace folded to one space, ends trimmed. Values that differ only
// so have the same semantics (RFC 9111 §4.1).
func appendNormalized(dst []byte, lines []string) []byte {
	start := len(dst)
	for _, line := range lines {
		line = strings.Trim(line, " \t")
		if line == "" {
			continue
		}
		if len(dst) > start {
			dst = append(dst, ',')
		}
		space := false
		for i := 0; i < len(line); i++ {
			switch c := line[i]; c {
			case ' ', '\t':
				space = true
			case ',':
				space = false
				dst = append(dst, ',')
			default:
				if space && len(dst) > start && dst[len(dst)-1] != ',' {
					dst = append(dst, ' ')
				}
				space = false
				dst = append(dst, c)
			}
		}
	}
	return dst
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
		if string(appendNormalized(buf[:0], h[name])) != s.VaryValues[i] {
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
