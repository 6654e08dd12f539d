package proxy

import (
	"errors"
	"net/url"
	"strings"
)

// errPath is a request path the proxy refuses: one that does not start with
// "/", that climbs above its root (joined to the upstream's base path, it
// would leave it), or that an origin could read so.
var errPath = errors.New("path leaves the upstream's base path")

// resolvePath removes the dot segments of an escaped request path (RFC 3986
// §5.2.4), "%2e" counting as "." (RFC 3986 §6.2.2.2), so that the upstream is
// asked for the path the cache keys on. The other segments are kept as the
// client escaped them.
//
// It refuses, rather than clamps, a ".." with nothing left to remove: a
// client that sends one (no browser or HTTP library does) is probing for the
// upstream's parent path. It also refuses a segment that some origin would
// read as a dot segment where the proxy sees none: one that holds one once
// "%2F", "%5C" or "\" separate segments, once ";" starts parameters (Tomcat),
// or once decoded again (an origin that decodes twice).
func resolvePath(escaped string) (string, error) {
	if escaped == "" {
		return "/", nil
	}
	if escaped[0] != '/' {
		return "", errPath
	}
	if !strings.Contains(escaped, "/.") && !strings.ContainsAny(escaped, "%;\\") {
		return escaped, nil // no segment that is or hides a dot segment
	}
	segs := strings.Split(escaped[1:], "/")
	out := make([]string, 0, len(segs))
	for i, seg := range segs {
		last := i == len(segs)-1
		switch decodeDots(seg) {
		case ".":
		case "..":
			if len(out) == 0 {
				return "", errPath
			}
			out = out[:len(out)-1]
		default:
			if hidesDotSegment(seg) {
				return "", errPath
			}
			out = append(out, seg)
			continue
		}
		if last {
			out = append(out, "") // "/a/b/.." is "/a/"
		}
	}
	return "/" + strings.Join(out, "/"), nil
}

// decodeDots returns "." or ".." when seg is one, "%2e" or "%2E" counting
// as "."; seg otherwise.
func decodeDots(seg string) string {
	if len(seg) > len("%2e%2e") {
		return seg
	}
	dots := 0
	for i := 0; i < len(seg); dots++ {
		switch {
		case seg[i] == '.':
			i++
		case strings.HasPrefix(seg[i:], "%2e"), strings.HasPrefix(seg[i:], "%2E"):
			i += 3
		default:
			return seg
		}
	}
	switch dots {
	case 1:
		return "."
	case 2:
		return ".."
	}
	return seg
}

// hidesDotSegment reports whether an escaped segment that is not a dot
// segment holds one for an origin that splits on "%2F", "%5C", "\" or ";",
// or that percent-decodes more than once.
func hidesDotSegment(seg string) bool {
	if !strings.ContainsAny(seg, "%;\\") {
		return false
	}
	for {
		for _, piece := range strings.FieldsFunc(seg, func(r rune) bool { return r == '/' || r == '\\' }) {
			if i := strings.IndexByte(piece, ';'); i >= 0 {
				piece = piece[:i]
			}
			if d := decodeDots(piece); d == "." || d == ".." {
				return true
			}
		}
		d, err := url.PathUnescape(seg)
		if err != nil || d == seg {
			return false
		}
		seg = d
	}
}
