package roundtrip

import (
	"errors"
	"testing"

	"github.com/fleetcache/fleetcache/policy"
)

// The outcome is read from what Cache-Status says, whichever path made it.
func TestOutcomeOf_EachCacheStatus(t *testing.T) {
	for _, tc := range []struct {
		cs   policy.CacheStatus
		err  error
		want Outcome
	}{
		{policy.CacheStatus{Hit: true, HasTTL: true}, nil, OutcomeHit},
		{policy.CacheStatus{Hit: true, HasTTL: true, Detail: "stale-while-revalidate"}, nil, OutcomeHit},
		{policy.CacheStatus{Fwd: "uri-miss", Collapsed: true}, nil, OutcomeCoalesced},
		{policy.CacheStatus{Fwd: "stale", FwdStatus: 304, Stored: true}, nil, OutcomeRevalidated},
		{policy.CacheStatus{Fwd: "request", FwdStatus: 304}, nil, OutcomeRevalidated},
		{policy.CacheStatus{Fwd: "stale", FwdStatus: 503, Detail: "stale-if-error"}, nil, OutcomeStale},
		{policy.CacheStatus{Fwd: "stale", FwdStatus: 200, Stored: true}, nil, OutcomeMiss},
		{policy.CacheStatus{Fwd: "uri-miss", FwdStatus: 304}, nil, OutcomeMiss},
		{policy.CacheStatus{Fwd: "partial", FwdStatus: 206, Stored: true}, nil, OutcomeMiss},
		{policy.CacheStatus{Detail: "only-if-cached"}, nil, OutcomeMiss},
		{policy.CacheStatus{Fwd: "bypass", FwdStatus: 200, Detail: "closed"}, nil, OutcomeBypass},
		{policy.CacheStatus{Fwd: "method", FwdStatus: 201}, nil, OutcomeBypass},
		{policy.CacheStatus{}, errors.New("refused"), OutcomeError},
	} {
		if got := outcomeOf(tc.cs, tc.err); got != tc.want {
			t.Errorf("%s (err %v): %v, want %v", tc.cs.String("fleetcache"), tc.err, got, tc.want)
		}
	}
	for o := OutcomeHit; o <= OutcomeError; o++ {
		if o.String() == "unknown" {
			t.Errorf("Outcome %d has no name", o)
		}
	}
}
