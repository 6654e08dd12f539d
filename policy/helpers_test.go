package policy

import (
	"net/http"
	"testing"
	"time"
)

// t0 is the moment the test responses arrive.
var t0 = time.Date(2026, time.March, 10, 12, 0, 0, 0, time.UTC)

func httpDate(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

// header builds a header from name, value pairs; a name may repeat.
func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func newReq(method, target string, kv ...string) *http.Request {
	r, err := http.NewRequest(method, target, nil)
	if err != nil {
		panic(err)
	}
	r.Header = header(kv...)
	return r
}

func newResp(status int, kv ...string) *http.Response {
	return &http.Response{StatusCode: status, ProtoMajor: 1, ProtoMinor: 1, Header: header(kv...)}
}

const testURL = "http://example.com/a"

// storedAt builds the stored response for a GET of testURL answered by a
// response with status and header kv, sent and received at t0.
func storedAt(p *Policy, status int, kv ...string) *Response {
	rq := p.ParseRequest(newReq("GET", testURL))
	return p.NewResponse(&rq, newResp(status, kv...), []byte("body"), t0, t0)
}

// reuse asks p about s for a GET of testURL with request header kv at t0+after.
func reuse(p *Policy, s *Response, after time.Duration, kv ...string) Reuse {
	rq := p.ParseRequest(newReq("GET", testURL, kv...))
	return p.Reuse(&rq, s, t0.Add(after))
}

var shared, private = New(Options{}), New(Options{Private: true})

func wantAction(t *testing.T, got Reuse, want Action, detail string) {
	t.Helper()
	if got.Action != want || (detail != "*" && got.Detail != detail) {
		t.Errorf("Reuse = %+v, want action %d detail %q", got, want, detail)
	}
}
