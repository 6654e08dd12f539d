package cachestatus

import (
	"net/http"
	"testing"
)

func TestMember_RFC9211_2_OursIsTheLastNamingUs(t *testing.T) {
	h := http.Header{"Cache-Status": {"fleetcache; hit", "cdn; fwd=uri-miss, fleetcache; fwd=stale; fwd-status=304, edge; hit"}}
	if m, ok := Member(h, "fleetcache"); !ok || m != "fleetcache; fwd=stale; fwd-status=304" {
		t.Errorf("Member = %q, %v", m, ok)
	}
	if _, ok := Member(h, "other"); ok {
		t.Error("found a member of a cache that sent none")
	}
	if _, ok := Member(http.Header{}, "fleetcache"); ok {
		t.Error("found a member in an empty header")
	}
}

func TestOutcome(t *testing.T) {
	for member, want := range map[string]string{
		"fleetcache; hit; ttl=60":                                               Hit,
		"fleetcache; hit; ttl=-5; detail=stale-while-revalidate":                Stale,
		"fleetcache; fwd=stale; fwd-status=503; ttl=-30; detail=stale-if-error": Stale,
		"fleetcache; fwd=uri-miss; fwd-status=200; stored":                      Miss,
		"fleetcache; fwd=vary-miss; fwd-status=200; detail=private":             Miss,
		"fleetcache; fwd=partial; fwd-status=206; ttl=60; stored":               Miss,
		"fleetcache; fwd=uri-miss; collapsed; ttl=60":                           Coalesced,
		"fleetcache; fwd=stale; fwd-status=304; stored; ttl=60":                 Revalidated,
		"fleetcache; fwd=request; fwd-status=304; stored; ttl=60":               Revalidated,
		"fleetcache; fwd=bypass; detail=range":                                  Bypass,
		"fleetcache; fwd=method; fwd-status=201; detail=method":                 Bypass,
		"fleetcache; detail=only-if-cached":                                     Other,
	} {
		if got := Outcome(member); got != want {
			t.Errorf("Outcome(%q) = %q, want %q", member, got, want)
		}
	}
}
