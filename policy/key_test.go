package policy

import (
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestNormalizeURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://example.com", "http://example.com/"},
		{"HTTP://Example.COM:80/a", "http://example.com/a"},
		{"https://example.com:443/a", "https://example.com/a"},
		{"https://example.com:80/a", "https://example.com:80/a"},
		{"http://example.com:/a", "http://example.com/a"},
		{"http://[::1]:80/a", "http://[::1]/a"},
		{"http://[::1]/a", "http://[::1]/a"},
		{"http://example.com/%7euser/%2f%41%3a", "http://example.com/~user/%2FA%3A"},
		{"http://example.com/a?B=%7e&a=1#frag", "http://example.com/a?B=%7e&a=1"},
		{"http://example.com/a?", "http://example.com/a?"},
		{"http://user:pw@example.com/a", "http://example.com/a"},
		{"http://example.com/a b", "http://example.com/a%20b"},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := NormalizeURL(u); got != tt.want {
			t.Errorf("NormalizeURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	var b strings.Builder
	if writePath(&b, "/%zz%4%e2%82%ac"); b.String() != "/%zz%4%E2%82%AC" {
		t.Errorf("writePath kept broken escapes as %q", b.String())
	}
	if NormalizeURL(nil) != "" {
		t.Error("NormalizeURL(nil) not empty")
	}
	if got := NormalizeURL(&url.URL{Scheme: "http", Host: "h", Opaque: "//h/x"}); got != "http://h//h/x" {
		t.Errorf("opaque: %q", got)
	}
}

func TestVaryValues_RFC9111_4_1(t *testing.T) {
	h := http.Header{
		"Accept":          {" text/html ,  application/json", "image/*"},
		"User-Agent":      {"a \t  b"},
		"Accept-Language": {"", "en"},
	}
	got := VaryValues([]string{"Accept", "User-Agent", "Accept-Language", "X-Absent"}, h)
	want := []string{"text/html,application/json,image/*", "a b", "en", ""}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("VaryValues = %q, want %q", got, want)
	}
	if VaryValues(nil, h) != nil {
		t.Error("VaryValues(nil) not nil")
	}
}

func TestVaryValues_RFC9111_4_1_Normalisation(t *testing.T) {
	tests := []struct {
		name  string
		field string
		a, b  []string // two requests' lines of the field
		same  bool
	}{
		{"Accept-Language: letter case of tags", "Accept-Language", []string{"en, de"}, []string{"eN, De"}, true},
		{"Accept-Language: whitespace", "Accept-Language", []string{"en, de"}, []string{" en ,   de"}, true},
		{"Accept-Language: split over lines", "Accept-Language", []string{"en, de"}, []string{"en", "de"}, true},
		{"Accept-Language: whitespace around parameters", "Accept-Language", []string{"en;q=0.5, de"}, []string{"EN ; Q=0.5 ,de"}, true},
		{"Accept-Language: order is preference", "Accept-Language", []string{"en, de"}, []string{"de, en"}, false},
		{"Accept-Language: q-values are meaning", "Accept-Language", []string{"en;q=0.5, de"}, []string{"en;q=0.4, de"}, false},
		{"Accept-Language: equal q-values spelt apart stay apart", "Accept-Language", []string{"en;q=1"}, []string{"en;q=1.0"}, false},
		{"Accept-Encoding: codings are case-insensitive", "Accept-Encoding", []string{"gzip, br"}, []string{"GZIP,BR"}, true},
		{"Accept-Charset: charsets are case-insensitive", "Accept-Charset", []string{"utf-8"}, []string{"UTF-8"}, true},
		{"Accept: media ranges and parameter names", "Accept", []string{"text/html;level=1, */*;q=0.1"}, []string{"Text/HTML; Level=1,*/*; q=0.1"}, true},
		{"Accept: parameter values keep their case", "Accept", []string{"text/html;profile=Abc"}, []string{"text/html;profile=abc"}, false},
		{"Accept: quoted strings kept as they are", "Accept", []string{`text/html;p="a , B"`}, []string{`text/html;p="a,b"`}, false},
		{"unknown field: whitespace and lines", "Foo", []string{"1,2"}, []string{" 1, 2 "}, true},
		{"unknown field: lines joined", "Foo", []string{"1, 2"}, []string{"1", "2"}, true},
		{"unknown field: letter case may be meaning", "Foo", []string{"abc"}, []string{"ABC"}, false},
		{"unknown field: semicolons are not known delimiters", "Foo", []string{"a;b"}, []string{"a ; b"}, false},
		{"unknown field: quoted strings kept as they are", "Foo", []string{`"a , b"`}, []string{`"a,b"`}, false},
		{"unknown field: escaped quote inside a quoted string", "Foo", []string{`"a\" , b"`}, []string{`"a\",b"`}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := VaryValues([]string{tt.field}, http.Header{tt.field: tt.a})
			b := VaryValues([]string{tt.field}, http.Header{tt.field: tt.b})
			if (a[0] == b[0]) != tt.same {
				t.Errorf("%q -> %q and %q -> %q, want same %v", tt.a, a[0], tt.b, b[0], tt.same)
			}
		})
	}
}

func TestVariant(t *testing.T) {
	if Variant(nil, nil) != "" {
		t.Error("Variant of no names not empty")
	}
	seen := map[string]bool{}
	for _, c := range [][2][]string{
		{{"A", "B"}, {"x", ""}},
		{{"A", "B"}, {"", "x"}},
		{{"A"}, {"x:1:B"}},
		{{"A", "B"}, {"x", "1"}},
		{{"A"}, {""}},
		{{"A"}, nil},
	} {
		v := Variant(c[0], c[1])
		if seen[v] && !(len(c[1]) == 0) {
			t.Errorf("Variant collision: %q", v)
		}
		seen[v] = true
	}
}

func TestCacheStatus_RFC9211(t *testing.T) {
	tests := []struct {
		c    CacheStatus
		name string
		want string
	}{
		{CacheStatus{Hit: true, TTL: 42 * time.Second, HasTTL: true}, "fleetcache", "fleetcache; hit; ttl=42"},
		{CacheStatus{Fwd: "uri-miss", FwdStatus: 200, Stored: true}, "fleetcache", "fleetcache; fwd=uri-miss; fwd-status=200; stored"},
		{CacheStatus{Fwd: "stale", FwdStatus: 304, TTL: -1500 * time.Millisecond, HasTTL: true, Collapsed: true, Detail: "stale-while-revalidate"}, "fleetcache",
			"fleetcache; fwd=stale; fwd-status=304; ttl=-1; collapsed; detail=stale-while-revalidate"},
		{CacheStatus{Fwd: "bypass", Detail: "no store \"x\"\x01"}, "my cache", `"my cache"; fwd=bypass; detail="no store \"x\""`},
		{CacheStatus{Fwd: "miss", HasTTL: true}, "edge", "edge; fwd=miss; ttl=0"},
	}
	for _, tt := range tests {
		if got := tt.c.String(tt.name); got != tt.want {
			t.Errorf("String = %s, want %s", got, tt.want)
		}
	}
	h := http.Header{}
	CacheStatus{Fwd: "miss"}.AppendTo(h, "origin-cache")
	CacheStatus{Hit: true}.AppendTo(h, "fleetcache")
	if got := h["Cache-Status"]; len(got) != 1 || got[0] != "origin-cache; fwd=miss, fleetcache; hit" {
		t.Errorf("Cache-Status = %q", got)
	}
}

func TestKey_RFC9111_2_HostSelectsTheTarget(t *testing.T) {
	p := New(Options{})
	r := newReq("GET", "http://a.example/page")
	r.Host = "b.example"
	if got := p.ParseRequest(r).URL; got != "http://b.example/page" {
		t.Errorf("key = %q, want the Host's authority", got)
	}
	post := newReq("POST", "http://a.example/page")
	post.Host = "b.example"
	got := Invalidates(post, newResp(201, "Location", "/new"))
	want := []string{"http://b.example/page", "http://b.example/new"}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("Invalidates = %v, want %v", got, want)
	}
}
