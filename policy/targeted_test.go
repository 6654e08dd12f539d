package policy

import (
	"testing"
	"time"
)

func TestTargeted_RFC8941_Dictionary(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"max-age=60", true},
		{"max-age=60, no-store", true},
		{"none", true}, // unknown but valid: the field still wins (RFC 9213 §3.1)
		{`private="set-cookie", a=?0, b=?1, c=:aGVsbG8=:, d=tok/en:x, e=1.5, f=-3`, true},
		{"a=(1 2 \"x\");p=1, b;q=?1;r=tok", true},
		{"a=(), b=( 1 )", true},
		{"*a=1", true},
		{"", false},
		{"   ", false},
		{"Max-Age=60", false}, // keys are lower-case
		{"max-age=60,", false},
		{"max-age=60 no-store", false},
		{"max-age=", false},
		{"a=1234567890123456", false}, // 16 digits
		{"a=1234567890123.5", false},
		{"a=1.2345", false},
		{"a=1.", false},
		{"a=-", false},
		{`a="unterminated`, false},
		{`a="bad\escape"`, false},
		{"a=\"ctl\x01\"", false},
		{"a=:bad!:", false},
		{"a=:open", false},
		{"a=?2", false},
		{"a=@1", false},
		{"a=(1 2", false},
		{"a=(1,2)", false},
		{"a;=1", false},
		{"a;p=", false},
		{"a=1;P=2", false},
		{"1a=1", false},
	}
	for _, tt := range tests {
		if _, ok := parseTargeted([]string{tt.in}); ok != tt.ok {
			t.Errorf("parseTargeted(%q) ok = %v, want %v", tt.in, ok, tt.ok)
		}
	}
	if _, ok := parseTargeted([]string{"max-age=1", "no-store"}); !ok {
		t.Error("two lines joined: want valid")
	}
	if _, ok := parseTargeted([]string{"max-age=1", ""}); ok {
		t.Error("an empty line joined makes a trailing comma: want invalid")
	}
}

func TestTargeted_RFC9213_Directives(t *testing.T) {
	tests := []struct {
		in          string
		flags       uint16
		maxAge, swr int64
	}{
		{"max-age=60", 0, 60, -1},
		{"max-age=60, max-age=5", 0, 5, -1}, // last member wins
		{"max-age=1.5", 0, -1, -1},          // wrong type: not consumed
		{"max-age=-1", 0, -1, -1},           // negative: not consumed
		{"max-age=999999999999", 0, 2147483648, -1},
		{`max-age="60"`, 0, -1, -1},
		{"no-store, no-store=?0", 0, -1, -1}, // false clears
		{`no-store="yes"`, 0, -1, -1},
		{"no-cache, private", ccNoCache | ccPrivate, -1, -1},
		{`no-cache="set-cookie"`, ccNoCacheFields, -1, -1},
		{`private="a", private`, ccPrivate, -1, -1}, // last wins
		{"private=1", 0, -1, -1},
		{"public, must-revalidate, proxy-revalidate, must-understand, immutable", ccPublic | ccMustRevalidate | ccProxyRevalidate | ccMustUnderstand | ccImmutable, -1, -1},
		{"stale-while-revalidate=30, stale-if-error=60, s-maxage=5", 0, -1, 30},
	}
	for _, tt := range tests {
		d, ok := parseTargeted([]string{tt.in})
		if !ok || d.flags != tt.flags || d.maxAge != tt.maxAge || d.swr != tt.swr {
			t.Errorf("parseTargeted(%q) = %+v, %v", tt.in, d, ok)
		}
	}
}

func TestTargeted_RFC9213_2_1_Precedence(t *testing.T) {
	tests := []struct {
		name string
		p    *Policy
		kv   []string
		life time.Duration
	}{
		{"Cache-Control alone", shared, []string{"Cache-Control", "max-age=10"}, 10 * time.Second},
		{"CDN-Cache-Control wins over Cache-Control", shared, []string{"Cache-Control", "max-age=10", "CDN-Cache-Control", "max-age=20"}, 20 * time.Second},
		{"our field wins over CDN-Cache-Control", shared, []string{"Cache-Control", "max-age=10", "CDN-Cache-Control", "max-age=20", "Fleetcache-Cache-Control", "max-age=30"}, 30 * time.Second},
		{"an invalid targeted field is ignored whole", shared, []string{"Cache-Control", "max-age=10", "Fleetcache-Cache-Control", "max-age=30, Bad"}, 10 * time.Second},
		{"an empty targeted field is ignored", shared, []string{"Cache-Control", "max-age=10", "CDN-Cache-Control", ""}, 10 * time.Second},
		{"a targeted field ignores Expires", shared, []string{"Expires", httpDate(t0.Add(time.Hour)), "Date", httpDate(t0), "CDN-Cache-Control", "public"}, 0},
		{"configured field name", New(Options{TargetedField: "x-edge-control"}), []string{"Cache-Control", "max-age=10", "X-Edge-Control", "max-age=40"}, 40 * time.Second},
		{"configured name replaces the default one", New(Options{TargetedField: "X-Edge-Control"}), []string{"Cache-Control", "max-age=10", "Fleetcache-Cache-Control", "max-age=40"}, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := storedAt(tt.p, 200, tt.kv...)
			d, targeted := tt.p.control(s.Header)
			if life, _ := tt.p.lifetime(s, &d, targeted); life != tt.life {
				t.Errorf("lifetime = %v, want %v", life, tt.life)
			}
		})
	}
}

func TestTargeted_RFC9213_NoStoreOverridesCacheControl(t *testing.T) {
	rq := shared.ParseRequest(newReq("GET", testURL))
	if ok, why := shared.Storable(&rq, newResp(200, "Cache-Control", "public, max-age=60", "CDN-Cache-Control", "no-store")); ok || why != "no-store" {
		t.Errorf("Storable = %v %q, want false no-store", ok, why)
	}
	if ok, _ := shared.Storable(&rq, newResp(200, "Cache-Control", "no-store", "CDN-Cache-Control", "max-age=60")); !ok {
		t.Error("targeted max-age must override Cache-Control: no-store")
	}
}

func TestTargeted_RFC9213_PrivateFieldsDropped(t *testing.T) {
	s := storedAt(shared, 200, "Fleetcache-Cache-Control", `max-age=60, private="x-user"`, "X-User", "alice", "X-Other", "1")
	if s.Header.Get("X-User") != "" || s.Header.Get("X-Other") != "1" {
		t.Errorf("stored header = %v", s.Header)
	}
}
