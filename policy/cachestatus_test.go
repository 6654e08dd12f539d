package policy

import (
	"errors"
	"math"
	"net/http"
	"reflect"
	"testing"
	"time"
)

func TestParseCacheStatus_RFC9211_2_Parameters(t *testing.T) {
	tests := []struct {
		name, field string
		want        CacheStatus
	}{
		{"hit and ttl (§2.1, §2.5)", "fleetcache; hit; ttl=42", CacheStatus{Hit: true, TTL: 42 * time.Second, HasTTL: true}},
		{"fwd, fwd-status, stored (§2.2, §2.3, §2.6)", "fleetcache; fwd=uri-miss; fwd-status=200; stored", CacheStatus{Fwd: "uri-miss", FwdStatus: 200, Stored: true}},
		{"negative ttl, collapsed, token detail (§2.5, §2.7, §2.8)", "fleetcache; fwd=stale; fwd-status=304; ttl=-30; collapsed; detail=stale-if-error",
			CacheStatus{Fwd: "stale", FwdStatus: 304, TTL: -30 * time.Second, HasTTL: true, Collapsed: true, Detail: "stale-if-error"}},
		{"String detail, unescaped (§2.8)", `fleetcache; fwd=method; detail="invalidated \"a\" b\\c"`, CacheStatus{Fwd: "method", Detail: `invalidated "a" b\c`}},
		{"ttl=0 is present", "fleetcache; ttl=0", CacheStatus{HasTTL: true}},
		{"Boolean false (RFC 8941 §3.3.6)", "fleetcache; hit=?0; stored=?1", CacheStatus{Stored: true}},
		{"no space after the semicolon", "fleetcache;hit;ttl=1", CacheStatus{Hit: true, TTL: time.Second, HasTTL: true}},
		{"unknown parameters skipped", `fleetcache; key="GET /a"; x-mine=1.5; hit; y=:AQ==:`, CacheStatus{Hit: true}},
		{"the last of repeated parameters counts (RFC 8941 §4.2.3.2)", "fleetcache; ttl=5; ttl=7; hit; hit=?0", CacheStatus{TTL: 7 * time.Second, HasTTL: true}},
		{"wrong type read as absent", `fleetcache; hit=1; ttl="5"; fwd="uri-miss"; fwd-status=2.5; detail=?1; stored`, CacheStatus{Stored: true}},
		{"a wrong-typed repeat clears the earlier one", `fleetcache; ttl=5; ttl="x"; fwd=stale; fwd=1`, CacheStatus{}},
		{"fwd-status out of range", "fleetcache; fwd=miss; fwd-status=42", CacheStatus{Fwd: "miss"}},
		{"a huge ttl saturates", "fleetcache; ttl=999999999999999", CacheStatus{TTL: math.MaxInt64, HasTTL: true}},
		{"a huge negative ttl saturates", "fleetcache; ttl=-999999999999999", CacheStatus{TTL: math.MinInt64, HasTTL: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCacheStatus(http.Header{"Cache-Status": {tt.field}})
			if err != nil {
				t.Fatal(err)
			}
			want := []CacheStatusMember{{Cache: "fleetcache", CacheStatus: tt.want}}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestParseCacheStatus_RFC9211_2_MembersInOrder(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  []string // cache names
	}{
		{"no field", nil, nil},
		{"empty line", []string{" "}, nil},
		{"one member per cache, origin side first", []string{`OriginCache; hit; ttl=1100, "CDN Company Here"; hit; ttl=545, fleetcache; fwd=uri-miss; stored`}, []string{"OriginCache", "CDN Company Here", "fleetcache"}},
		{"several lines are one list (RFC 9110 §5.3)", []string{"origin; fwd=uri-miss", "edge; hit", "fleetcache; hit"}, []string{"origin", "edge", "fleetcache"}},
		{"tabs around commas (OWS)", []string{"a;hit\t,\tb;hit"}, []string{"a", "b"}},
		{"a token name with : and /", []string{"cdn/edge:7; hit"}, []string{"cdn/edge:7"}},
		{"an empty String name", []string{`""; hit`}, []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, l := range tt.lines {
				h.Add("Cache-Status", l)
			}
			got, err := ParseCacheStatus(h)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, m := range got {
				names = append(names, m.Cache)
			}
			if !reflect.DeepEqual(names, tt.want) {
				t.Errorf("names %q, want %q", names, tt.want)
			}
		})
	}
}

// Another cache's syntax error must not hide what fleetcache said: the
// member is skipped, the error says so, and the rest is read.
func TestParseCacheStatus_RFC8941_3_1_MalformedMembersSkipped(t *testing.T) {
	ours := CacheStatusMember{Cache: "fleetcache", CacheStatus: CacheStatus{Hit: true, TTL: 5 * time.Second, HasTTL: true}}
	tests := []struct {
		name, field string
	}{
		{"a name that is a number", "42; hit, fleetcache; hit; ttl=5"},
		{"an inner list", "(a b); hit, fleetcache; hit; ttl=5"},
		{"a space before the semicolon", "edge ; hit, fleetcache; hit; ttl=5"},
		{"a bad parameter key", "edge; Hit, fleetcache; hit; ttl=5"},
		{"a comma inside a broken member's String", `edge; detail="a, b" x, fleetcache; hit; ttl=5`},
		{"an empty member", "edge; hit, , fleetcache; hit; ttl=5"},
		{"a leading comma", ", fleetcache; hit; ttl=5"},
		{"a decimal with too many digits", "edge; x=1.2345, fleetcache; hit; ttl=5"},
		{"non-ASCII", "édge; hit, fleetcache; hit; ttl=5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCacheStatus(http.Header{"Cache-Status": {tt.field}})
			if !errors.Is(err, ErrCacheStatus) {
				t.Errorf("err = %v, want ErrCacheStatus", err)
			}
			if len(got) == 0 || !reflect.DeepEqual(got[len(got)-1], ours) {
				t.Errorf("got %+v, want it to end with %+v", got, ours)
			}
		})
	}
	for _, field := range []string{"fleetcache; hit,", `fleetcache; detail="unterminated`, "fleetcache; ttl=-", ";"} {
		if _, err := ParseCacheStatus(http.Header{"Cache-Status": {field}}); !errors.Is(err, ErrCacheStatus) {
			t.Errorf("%q: err = %v, want ErrCacheStatus", field, err)
		}
	}
}

// What CacheStatus renders, ParseCacheStatus reads back.
func TestParseCacheStatus_RFC9211_RoundTrip(t *testing.T) {
	for _, c := range []CacheStatus{
		{Hit: true, TTL: 42 * time.Second, HasTTL: true},
		{Fwd: "uri-miss", FwdStatus: 200, Stored: true},
		{Fwd: "stale", FwdStatus: 304, TTL: -2 * time.Second, HasTTL: true, Collapsed: true, Detail: "stale-if-error"},
		{Fwd: "method", FwdStatus: 204, Detail: "invalidated http://a.example/x?q=1 http://a.example/y"},
		{Detail: "only-if-cached"},
	} {
		h := http.Header{}
		CacheStatus{Fwd: "miss"}.AppendTo(h, "origin cache")
		c.AppendTo(h, "fleetcache")
		got, err := ParseCacheStatus(h)
		want := []CacheStatusMember{{Cache: "origin cache", CacheStatus: CacheStatus{Fwd: "miss"}}, {Cache: "fleetcache", CacheStatus: c}}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %+v, %v\nwant %+v", h.Get("Cache-Status"), got, err, want)
		}
	}
}
