package roundtrip_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/fleetcache/fleetcache/roundtrip"
)

// The corners an external conformance run found, each over both stores.

func TestFreshness_RFC9110_5_6_7_SloppyDatesAreRead(t *testing.T) {
	var expires string
	h := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Expires", expires)
		fmt.Fprint(w, "dated")
	}
	onEachStore(t, h, roundtrip.Options{}, func(t *testing.T, f *fixture) {
		for i, tc := range []struct {
			expires string
			hit     bool
		}{
			{strings.ToUpper(f.clk.HTTPDateIn(time.Hour)), true},                       // THU, 26 NOV 2026 13:00:00 GMT
			{strings.Replace(f.clk.HTTPDateIn(time.Hour), "GMT", "gmt", 1), true},      // gmt
			{strings.Replace(f.clk.HTTPDateIn(time.Hour), "GMT", "UTC", 1), false},     // another zone: invalid, already expired
			{strings.Replace(f.clk.HTTPDateIn(time.Hour), " 2026 ", " 26 ", 1), false}, // two-digit year in IMF-fixdate
		} {
			expires = tc.expires
			path := fmt.Sprint("/sloppy", i)
			f.get(path)
			resp, body := f.get(path)
			assert.Equal(t, "dated", body)
			assert.Equal(t, tc.hit, strings.Contains(resp.Header.Get("Cache-Status"), "hit"), "Expires: %s", tc.expires)
		}
	})
}
