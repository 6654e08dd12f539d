package integration_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/internal/redistest"
	"github.com/fleetcache/fleetcache/rediscache"
	"github.com/fleetcache/fleetcache/roundtrip"
)

// documentedCommands reads the commands docs/store.md says a fleetcache
// Redis user needs, so that the documentation cannot drift from the code:
// the list inside scripts, EVAL and EVALSHA, and PUBLISH and SUBSCRIBE.
func documentedCommands(t *testing.T) []string {
	t.Helper()
	doc, err := os.ReadFile("../docs/store.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)The user fleetcache connects as needs.*?`((?:[A-Z]+ )+[A-Z]+)`").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/store.md no longer lists the commands a fleetcache user needs")
	}
	return append(strings.Fields(string(m[1])), "EVAL", "EVALSHA", "PUBLISH", "SUBSCRIBE")
}

// An operator who grants exactly the commands docs/store.md lists (rather
// than whole categories) gets a cache that works: no call refused, and the
// fleet leases let go as soon as their fetch is over, not when their TTL
// runs out (their release is a script whose error nothing reports).
func TestOperators_DocumentedCommandListSuffices(t *testing.T) {
	r := redistest.RealServer.Start(t)
	origin := trafficOrigin(t)
	rules := []string{"~cmds:*", "&cmds:*", "-@all"}
	for _, c := range documentedCommands(t) {
		rules = append(rules, "+"+strings.ToLower(c))
	}
	url := aclUser(t, r, "cmds", rules...)
	var transports []*roundtrip.Transport
	for range 2 {
		s, err := rediscache.Open(context.Background(), url, rediscache.Options{Prefix: "cmds:"})
		if err != nil {
			t.Fatal(err)
		}
		next := &http.Transport{}
		tr := roundtrip.New(s, roundtrip.Options{Transport: next, StoreTimeout: patientStoreTimeout, LeaseTimeout: 10 * time.Second})
		t.Cleanup(func() { _ = tr.Close(); _ = s.Close(); next.CloseIdleConnections() })
		transports = append(transports, tr)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			c := &http.Client{Transport: transports[i%2]}
			for _, path := range []string{"/items/1", fmt.Sprintf("/items/%d", i%5), "/pages/1", "/checked/1"} {
				fetchStatus(t, c, http.MethodGet, origin.URL+path)
			}
			fetchStatus(t, c, http.MethodPost, origin.URL+fmt.Sprintf("/items/%d", i%5))
		})
	}
	wg.Wait()
	for i, tr := range transports {
		if st := tr.Stats(); st.StoreErrors != 0 || st.StoreRefused != 0 || st.BreakerTrips != 0 || st.Stores == 0 {
			t.Errorf("transport %d: %+v; want stores, and no store errors, refusals or trips", i, st)
		}
	}
	for _, k := range r.Keys(t) {
		if strings.HasPrefix(k, "cmds:lock:") {
			t.Errorf("lease %s outlived its fetch (ttl %v): its release was refused", k, r.TTL(t, k))
		}
	}
}
