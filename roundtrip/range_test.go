package roundtrip_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetcache/fleetcache/roundtrip"
)

// rangeOrigin serves a ten-byte representation with ranges (http.ServeContent
// answers Range and If-Range), max-age=60 and the ETag it is given, and
// records the Range of every request it receives.
type rangeOrigin struct {
	mu     sync.Mutex
	body   string
	etag   string
	ranges []string
}

func (o *rangeOrigin) handler(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	body, etag := o.body, o.etag
	o.ranges = append(o.ranges, r.Header.Get("Range"))
	o.mu.Unlock()
	if r.Method == http.MethodPost {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Cache-Control", "max-age=60")
	w.Header().Set("ETag", etag)
	w.Header().Set("Vary", "Accept-Language")
	modified := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	http.ServeContent(w, r, "", modified, strings.NewReader(body))
}

func (o *rangeOrigin) set(body, etag string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.body, o.etag = body, etag
}

// sent returns the Range fields the origin received since the last call.
func (o *rangeOrigin) sent() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := o.ranges
	o.ranges = nil
	return r
}

func TestRange_RFC9110_14_2_SingleRangeFromAStoredCompleteResponse(t *testing.T) {
	o := &rangeOrigin{body: "0123456789", etag: `"v1"`}
	onEachStore(t, o.handler, roundtrip.Options{}, func(t *testing.T, f *fixture) {
		f.get("/r")
		lm := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).Format(http.TimeFormat)
		for _, tc := range []struct {
			header       []string
			status       int
			body         string
			contentRange string
		}{
			{[]string{"Range", "bytes=0-1"}, 206, "01", "bytes 0-1/10"},
			{[]string{"Range", "bytes=7-"}, 206, "789", "bytes 7-9/10"},
			{[]string{"Range", "bytes=-3"}, 206, "789", "bytes 7-9/10"},
			{[]string{"Range", "bytes=-20"}, 206, "0123456789", "bytes 0-9/10"},
			{[]string{"Range", "bytes=5-100"}, 206, "56789", "bytes 5-9/10"},
			{[]string{"Range", "BYTES = 3-3"}, 206, "3", "bytes 3-3/10"},
			{[]string{"Range", "bytes=10-"}, 416, "", "bytes */10"},
			{[]string{"Range", "bytes=-0"}, 416, "", "bytes */10"},
			// If-Range (RFC 9110 §13.1.5): a strong match sends the range,
			// anything else the whole representation.
			{[]string{"Range", "bytes=0-1", "If-Range", `"v1"`}, 206, "01", "bytes 0-1/10"},
			{[]string{"Range", "bytes=0-1", "If-Range", `W/"v1"`}, 200, "0123456789", ""},
			{[]string{"Range", "bytes=0-1", "If-Range", `"v0"`}, 200, "0123456789", ""},
			{[]string{"Range", "bytes=0-1", "If-Range", lm}, 206, "01", "bytes 0-1/10"},
			{[]string{"Range", "bytes=0-1", "If-Range", "Sun, 01 Nov 2026 00:00:01 GMT"}, 200, "0123456789", ""},
		} {
			resp, body := f.get("/r", tc.header...)
			assert.Equal(t, tc.status, resp.StatusCode, "%q", tc.header)
			assert.Equal(t, tc.body, body, "%q", tc.header)
			assert.Equal(t, tc.contentRange, resp.Header.Get("Content-Range"), "%q", tc.header)
			assert.Equal(t, fmt.Sprint(len(tc.body)), resp.Header.Get("Content-Length"), "%q", tc.header)
			assert.EqualValues(t, len(tc.body), resp.ContentLength, "%q", tc.header)
			assert.Equal(t, "fleetcache; hit; ttl=60", resp.Header.Get("Cache-Status"), "%q", tc.header)
		}
		assert.EqualValues(t, 1, f.o.hits.Load(), "every range from the stored response")

		// A HEAD ignores Range; several ranges go to the origin as they are.
		resp, body := f.do(http.MethodHead, "/r", "Range", "bytes=0-1")
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Empty(t, body)
		assert.EqualValues(t, 10, resp.ContentLength)
		resp, _ = f.get("/r", "Range", "bytes=0-1,4-5")
		assert.Equal(t, http.StatusPartialContent, resp.StatusCode)
		assert.Contains(t, resp.Header.Get("Content-Type"), "multipart/byteranges")
		assert.Equal(t, "fleetcache; fwd=bypass; fwd-status=206; detail=range", resp.Header.Get("Cache-Status"))
		assert.EqualValues(t, 2, f.o.hits.Load())
		resp, _ = f.get("/r")
		assert.Contains(t, resp.Header.Get("Cache-Status"), "hit", "the stored response is undisturbed")
	})
}

func TestRange_RFC9111_3_3_StoredPartialAnswersTheRangesItCovers(t *testing.T) {
	o := &rangeOrigin{body: "0123456789", etag: `W/"weak"`}
	onEachStore(t, o.handler, roundtrip.Options{}, func(t *testing.T, f *fixture) {
		resp, body := f.get("/p", "Range", "bytes=2-5")
		assert.Equal(t, http.StatusPartialContent, resp.StatusCode)
		assert.Equal(t, "2345", body)
		assert.Equal(t, "fleetcache; fwd=uri-miss; fwd-status=206; stored", resp.Header.Get("Cache-Status"))
		assert.Equal(t, []string{"bytes=2-5"}, o.sent(), "a range miss is forwarded as it came")

		for _, tc := range []struct{ rng, body, contentRange string }{
			{"bytes=2-5", "2345", "bytes 2-5/10"},
			{"bytes=3-4", "34", "bytes 3-4/10"},
			{"bytes=10-", "", "bytes */10"}, // unsatisfiable: the stored part knows the length
		} {
			resp, body := f.get("/p", "Range", tc.rng)
			assert.Equal(t, tc.body, body, tc.rng)
			assert.Equal(t, tc.contentRange, resp.Header.Get("Content-Range"), tc.rng)
			assert.Contains(t, resp.Header.Get("Cache-Status"), "hit", tc.rng)
		}
		assert.Empty(t, o.sent())

		// Not covered, and no strong validator to combine on: forwarded as
		// it came, and its answer takes the slot.
		resp, body = f.get("/p", "Range", "bytes=4-7")
		assert.Equal(t, "4567", body)
		assert.Equal(t, "fleetcache; fwd=partial; fwd-status=206; stored", resp.Header.Get("Cache-Status"))
		assert.Equal(t, []string{"bytes=4-7"}, o.sent())

		// A full GET never gets a partial body.
		resp, body = f.get("/p")
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "0123456789", body)
		assert.Equal(t, []string{""}, o.sent())
		resp, body = f.get("/p", "Range", "bytes=0-0")
		assert.Equal(t, "0", body)
		assert.Contains(t, resp.Header.Get("Cache-Status"), "hit", "the complete response replaced the part")
	})
}

func TestRange_RFC9111_3_4_PartsCombinedOnAStrongValidator(t *testing.T) {
	o := &rangeOrigin{}
	onEachStore(t, o.handler, roundtrip.Options{}, func(t *testing.T, f *fixture) {
		o.set("0123456789", `"v1"`) // each store starts from the same origin
		f.get("/c", "Range", "bytes=0-3")
		assert.Equal(t, []string{"bytes=0-3"}, o.sent())

		// What is missing is one range that joins the stored part: only
		// that is asked for, with If-Range, and the parts are combined.
		resp, body := f.get("/c", "Range", "bytes=2-7")
		assert.Equal(t, http.StatusPartialContent, resp.StatusCode)
		assert.Equal(t, "234567", body)
		assert.Equal(t, "bytes 2-7/10", resp.Header.Get("Content-Range"))
		assert.Equal(t, "fleetcache; fwd=partial; fwd-status=206; ttl=60; stored", resp.Header.Get("Cache-Status"))
		assert.Equal(t, []string{"bytes=4-7"}, o.sent())
		resp, body = f.get("/c", "Range", "bytes=0-7")
		assert.Equal(t, "01234567", body)
		assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")

		// A full GET completes it: the last part, then the whole is stored.
		resp, body = f.get("/c")
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "0123456789", body)
		assert.Empty(t, resp.Header.Get("Content-Range"))
		assert.Equal(t, "10", resp.Header.Get("Content-Length"))
		assert.Equal(t, []string{"bytes=8-"}, o.sent())
		resp, body = f.get("/c")
		assert.Equal(t, "0123456789", body)
		assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")

		// Changed at the origin: If-Range brings the new representation
		// whole, never a part of it joined to the old one.
		f.clk.Advance(2 * time.Minute)
		f.get("/c2", "Range", "bytes=0-3")
		o.set("abcdefghij", `"v2"`)
		resp, body = f.get("/c2", "Range", "bytes=2-7")
		assert.Equal(t, http.StatusOK, resp.StatusCode, "If-Range failed at the origin: the whole new representation")
		assert.Equal(t, "abcdefghij", body)
		resp, body = f.get("/c2", "Range", "bytes=2-7")
		assert.Equal(t, "cdefgh", body)
		assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
		assert.Equal(t, []string{"bytes=0-3", "bytes=4-7"}, o.sent())
	})
}

func TestRange_RFC9111_4_4_InvalidationHeadAndVaryCoverPartials(t *testing.T) {
	o := &rangeOrigin{body: "0123456789", etag: `"v1"`}
	onEachStore(t, o.handler, roundtrip.Options{}, func(t *testing.T, f *fixture) {
		f.get("/i", "Range", "bytes=0-3", "Accept-Language", "en")
		f.get("/i", "Accept-Language", "fr")
		o.sent()

		// Vary: each variant answers from its own entry.
		resp, body := f.get("/i", "Range", "bytes=1-2", "Accept-Language", "en")
		assert.Equal(t, "12", body)
		assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
		resp, body = f.get("/i", "Range", "bytes=6-9", "Accept-Language", "fr")
		assert.Equal(t, "6789", body)
		assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
		resp, _ = f.get("/i", "Range", "bytes=1-2", "Accept-Language", "de")
		assert.Contains(t, resp.Header.Get("Cache-Status"), "fwd=vary-miss")
		o.sent()

		// HEAD: a stored part cannot answer it; the origin's 200 for the
		// same representation freshens the part instead of dropping it.
		resp, _ = f.do(http.MethodHead, "/i", "Accept-Language", "en")
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.EqualValues(t, 10, resp.ContentLength)
		assert.Contains(t, resp.Header.Get("Cache-Status"), "fwd=partial")
		resp, _ = f.get("/i", "Range", "bytes=1-2", "Accept-Language", "en")
		assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")

		// An unsafe method removes every variant, the partial one included.
		req, err := http.NewRequest(http.MethodPost, f.o.URL+"/i", nil)
		require.NoError(t, err)
		resp, err = f.cl.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		o.sent()
		resp, _ = f.get("/i", "Range", "bytes=1-2", "Accept-Language", "en")
		assert.Contains(t, resp.Header.Get("Cache-Status"), "fwd=uri-miss")
		resp, _ = f.get("/i", "Range", "bytes=6-9", "Accept-Language", "fr")
		assert.NotContains(t, resp.Header.Get("Cache-Status"), "hit")
	})
}
