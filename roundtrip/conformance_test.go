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

func TestStore_RFC9111_3_UnknownStatusWithExplicitFreshnessIsReused(t *testing.T) {
	h := func(w http.ResponseWriter, r *http.Request) {
		var code int
		fmt.Sscan(r.URL.Query().Get("code"), &code)
		switch r.URL.Query().Get("fresh") {
		case "max-age":
			w.Header().Set("Cache-Control", "max-age=60")
		case "s-maxage":
			w.Header().Set("Cache-Control", "s-maxage=60")
		case "expires":
			w.Header().Set("Expires", time.Date(2026, 11, 26, 13, 0, 0, 0, time.UTC).Format(http.TimeFormat))
		case "must-understand":
			w.Header().Set("Cache-Control", "max-age=60, must-understand")
		case "heuristic":
			w.Header().Set("Last-Modified", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Format(http.TimeFormat))
		}
		w.WriteHeader(code)
		fmt.Fprint(w, "status ", code)
	}
	onEachStore(t, h, roundtrip.Options{}, func(t *testing.T, f *fixture) {
		for _, tc := range []struct {
			code  int
			fresh string
			hit   bool
		}{
			{299, "max-age", true},
			{499, "s-maxage", true},
			{599, "expires", true},
			{299, "must-understand", false}, // §5.2.2.3: not understood, not stored
			{599, "heuristic", false},       // heuristics only for the heuristically cacheable codes
		} {
			path := fmt.Sprintf("/status?code=%d&fresh=%s", tc.code, tc.fresh)
			f.get(path)
			resp, body := f.get(path)
			assert.Equal(t, tc.code, resp.StatusCode, path)
			assert.Equal(t, fmt.Sprint("status ", tc.code), body, path)
			assert.Equal(t, tc.hit, strings.Contains(resp.Header.Get("Cache-Status"), "hit"), path)
		}
		// Stale, it is not reused without the origin.
		f.clk.Advance(2 * time.Hour)
		resp, _ := f.get("/status?code=299&fresh=max-age")
		assert.Contains(t, resp.Header.Get("Cache-Status"), "fwd-status=299")
		assert.NotContains(t, resp.Header.Get("Cache-Status"), "hit")
	})
}

func TestVary_RFC9111_4_1_NormalisedValuesSelectTheSameVariant(t *testing.T) {
	h := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language, Foo")
		fmt.Fprint(w, "variant")
	}
	onEachStore(t, h, roundtrip.Options{}, func(t *testing.T, f *fixture) {
		f.get("/v", "Accept-Language", "en, de;q=0.5", "Foo", "a, b")
		for _, tc := range []struct {
			name   string
			header []string
			hit    bool
		}{
			{"whitespace", []string{"Accept-Language", "  en ,de ; q=0.5 ", "Foo", " a,b "}, true},
			{"letter case of language tags", []string{"Accept-Language", "EN, De;Q=0.5", "Foo", "a, b"}, true},
			{"split over lines", []string{"Accept-Language", "en", "Accept-Language", "de;q=0.5", "Foo", "a", "Foo", "b"}, true},
			{"order of preferences", []string{"Accept-Language", "de;q=0.5, en", "Foo", "a, b"}, false},
			{"q-value", []string{"Accept-Language", "en, de;q=0.4", "Foo", "a, b"}, false},
			{"letter case of an unknown field", []string{"Accept-Language", "en, de;q=0.5", "Foo", "A, B"}, false},
		} {
			resp, _ := f.get("/v", tc.header...)
			assert.Equal(t, tc.hit, strings.Contains(resp.Header.Get("Cache-Status"), "hit"), tc.name)
		}
	})
}

func TestRevalidate_RFC9111_4_3_4_NotModifiedWithoutValidatorsFreshensInOneRequest(t *testing.T) {
	for _, validator := range [][2]string{{"ETag", `"v1"`}, {"Last-Modified", "Sat, 01 Nov 2026 00:00:00 GMT"}} {
		h := func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=10")
			w.Header().Set("X-Version", r.Header.Get("X-Want"))
			if r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Modified-Since") != "" {
				w.WriteHeader(http.StatusNotModified) // no ETag, no Last-Modified
				return
			}
			w.Header().Set(validator[0], validator[1])
			fmt.Fprint(w, "the body")
		}
		t.Run(validator[0], func(t *testing.T) {
			onEachStore(t, h, roundtrip.Options{}, func(t *testing.T, f *fixture) {
				f.get("/bare", "X-Want", "1")
				f.clk.Advance(20 * time.Second)
				resp, body := f.get("/bare", "X-Want", "2")
				assert.Equal(t, http.StatusOK, resp.StatusCode)
				assert.Equal(t, "the body", body)
				assert.Equal(t, "2", resp.Header.Get("X-Version"), "the 304's fields freshened the stored response")
				assert.Equal(t, validator[1], resp.Header.Get(validator[0]), "the stored validator is kept")
				assert.Equal(t, "fleetcache; fwd=stale; fwd-status=304; ttl=10; stored", resp.Header.Get("Cache-Status"))
				assert.EqualValues(t, 2, f.o.hits.Load(), "one request to revalidate, none to fetch again")
				resp, _ = f.get("/bare")
				assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
				assert.EqualValues(t, 2, f.o.hits.Load())
			})
		})
	}
}

func TestRevalidate_RFC9111_4_3_2_IfModifiedSinceAgainstDateWithoutLastModified(t *testing.T) {
	h := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		fmt.Fprint(w, "no Last-Modified")
	}
	onEachStore(t, h, roundtrip.Options{}, func(t *testing.T, f *fixture) {
		f.get("/d") // Date: now
		f.clk.Advance(time.Minute)
		for _, tc := range []struct {
			ims    string
			status int
		}{
			{f.clk.HTTPDateIn(-time.Minute), http.StatusNotModified},       // the stored Date itself
			{f.clk.HTTPDateIn(0), http.StatusNotModified},                  // later than it
			{strings.ToUpper(f.clk.HTTPDateIn(0)), http.StatusNotModified}, // sloppy, still a date
			{f.clk.HTTPDateIn(-time.Hour), http.StatusOK},                  // earlier: it may have changed since
			{"not a date", http.StatusOK},
		} {
			resp, body := f.get("/d", "If-Modified-Since", tc.ims)
			assert.Equal(t, tc.status, resp.StatusCode, tc.ims)
			assert.Contains(t, resp.Header.Get("Cache-Status"), "hit", tc.ims)
			if tc.status == http.StatusNotModified {
				assert.Empty(t, body)
				assert.NotEmpty(t, resp.Header.Get("Date"))
			}
		}
		assert.EqualValues(t, 1, f.o.hits.Load(), "every answer from the fresh stored response")
	})
}
