package proxy

import (
	"net/url"
	"path"
	"strings"
	"testing"
)

func TestResolvePath_RFC3986_5_2_4(t *testing.T) {
	tests := []struct {
		in, want string // want "" for a refusal
	}{
		{"", "/"},
		{"/", "/"},
		{"/a/b", "/a/b"},
		{"/a//b", "/a//b"},
		{"/a/./b", "/a/b"},
		{"/a/b/../c", "/a/c"},
		{"/a/b/..", "/a/"},
		{"/a/b/.", "/a/b/"},
		{"/.", "/"},
		{"/a/%2e/b", "/a/b"},
		{"/a/%2E%2e/b", "/b"},
		{"/a/.%2e", "/"},
		{"/a%2fb", "/a%2fb"},
		{"/a;b/c", "/a;b/c"},
		{"/...", "/..."},
		{"/.a/b.", "/.a/b."},
		{"/index.html", "/index.html"},
		{"*", ""},
		{"a/b", ""},
		{"/..", ""},
		{"/../a", ""},
		{"/a/../..", ""},
		{"/%2e%2e", ""},
		{"/..%2f", ""},
		{"/a%2f..%2fb", ""},
		{"/..%5Cb", ""},
		{`/..\b`, ""},
		{"/..;x/b", ""},
		{"/.;x/b", ""},
		{"/%252e%252e/b", ""},
		{"/%25252e%25252e/b", ""},
	}
	for _, tt := range tests {
		got, err := resolvePath(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("resolvePath(%q) = %q, want a refusal", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("resolvePath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// FuzzResolvePath: no input panics; a path it accepts has no dot segment
// left, resolves to itself, and stays under a base path however an origin
// reads it (decoding any number of times, "\" and ";" as Tomcat does).
//
//	go test -run='^$' -fuzz=FuzzResolvePath -fuzztime=60s ./internal/proxy/
func FuzzResolvePath(f *testing.F) {
	for _, s := range []string{"/a/../b", "/%2e%2e/admin", "/..%2fadmin", `/..\admin`, "/..;/x", "/%252e%252e/", "/a/./b/.", "/a%2fb", "*", "//..//"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.ParseRequestURI(raw)
		if err != nil {
			return // the server answers 400 before the proxy sees it
		}
		got, err := resolvePath(u.EscapedPath())
		if err != nil {
			return
		}
		if !strings.HasPrefix(got, "/") {
			t.Fatalf("%q: %q does not start with /", raw, got)
		}
		if again, err := resolvePath(got); err != nil || again != got {
			t.Fatalf("%q: %q resolves again to %q, %v", raw, got, again, err)
		}
		for _, seg := range strings.Split(got[1:], "/") {
			if d := decodeDots(seg); d == "." || d == ".." {
				t.Fatalf("%q: %q keeps a dot segment", raw, got)
			}
		}
		if _, err := url.PathUnescape(got); err != nil {
			t.Fatalf("%q: %q is not a valid escaped path: %v", raw, got, err)
		}
		if seen := originView(got); !strings.HasPrefix(path.Clean("/base"+seen)+"/", "/base/") {
			t.Fatalf("%q: accepted as %q, which an origin reads as %q, outside /base", raw, got, path.Clean("/base"+seen))
		}
	})
}

// originView is the path a lax origin makes of an escaped path: decoded
// until nothing changes, "\" as "/", ";" parameters dropped.
func originView(p string) string {
	for {
		d, err := url.PathUnescape(p)
		if err != nil || d == p {
			break
		}
		p = d
	}
	segs := strings.Split(strings.ReplaceAll(p, `\`, "/"), "/")
	for i, s := range segs {
		if j := strings.IndexByte(s, ';'); j >= 0 {
			segs[i] = s[:j]
		}
	}
	return strings.Join(segs, "/")
}
