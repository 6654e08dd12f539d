package policy

import (
	"strconv"
	"testing"
	"time"
)

func TestRange_RFC9110_14_1_1_ParseRange(t *testing.T) {
	tests := []struct {
		in   string
		want byteRange
		ok   bool
	}{
		{"bytes=0-499", byteRange{0, 499}, true},
		{"bytes=500-", byteRange{500, -1}, true},
		{"bytes=-500", byteRange{-1, 500}, true},
		{"Bytes = 1-1 ", byteRange{1, 1}, true},
		{"bytes=0-0", byteRange{0, 0}, true},
		{"bytes=-0", byteRange{-1, 0}, true}, // parsed; unsatisfiable when resolved
		{"bytes=5-4", byteRange{}, false},
		{"bytes=0-1,2-3", byteRange{}, false},
		{"bytes=-", byteRange{}, false},
		{"bytes=a-b", byteRange{}, false},
		{"bytes=+1-2", byteRange{}, false},
		{"bytes 0-1", byteRange{}, false},
		{"items=0-1", byteRange{}, false},
		{"bytes=99999999999999999999-", byteRange{}, false},
		{"", byteRange{}, false},
	}
	for _, tt := range tests {
		got, ok := parseRange(tt.in)
		if ok != tt.ok || got != tt.want {
			t.Errorf("parseRange(%q) = %v %v, want %v %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestRange_RFC9110_14_4_ContentRange(t *testing.T) {
	tests := []struct {
		in                    string
		first, last, complete int64
		ok                    bool
	}{
		{"bytes 0-4/10", 0, 4, 10, true},
		{"BYTES 9-9/10", 9, 9, 10, true},
		{"bytes 0-4/*", 0, 0, 0, false},
		{"bytes */10", 0, 0, 0, false},
		{"bytes 4-9/9", 0, 0, 0, false},
		{"bytes 5-4/10", 0, 0, 0, false},
		{"items 0-4/10", 0, 0, 0, false},
		{"bytes 0-4", 0, 0, 0, false},
	}
	for _, tt := range tests {
		f, l, n, ok := parseContentRange(tt.in)
		if ok != tt.ok || f != tt.first || l != tt.last || n != tt.complete {
			t.Errorf("parseContentRange(%q) = %d %d %d %v", tt.in, f, l, n, ok)
		}
	}
}

// rangeReq is a GET of testURL with request header kv.
func rangeReq(kv ...string) *Request {
	rq := shared.ParseRequest(newReq("GET", testURL, kv...))
	return &rq
}

func complete200() *Response {
	s := storedAt(shared, 200, "Cache-Control", "max-age=60", "ETag", `"v1"`, "Last-Modified", httpDate(t0.Add(-time.Hour)))
	s.Body = []byte("0123456789")
	return s
}

func part206(cr, body string, kv ...string) *Response {
	s := storedAt(shared, 206, append([]string{"Cache-Control", "max-age=60", "Content-Range", cr}, kv...)...)
	s.Body = []byte(body)
	return s
}

func TestRange_RFC9110_14_2_Part(t *testing.T) {
	lm := httpDate(t0.Add(-time.Hour))
	tests := []struct {
		name     string
		stored   *Response
		kv       []string
		status   int
		body, cr string
	}{
		{"no Range: the whole", complete200(), nil, 200, "0123456789", ""},
		{"first-last", complete200(), []string{"Range", "bytes=2-4"}, 206, "234", "bytes 2-4/10"},
		{"open end", complete200(), []string{"Range", "bytes=8-"}, 206, "89", "bytes 8-9/10"},
		{"suffix", complete200(), []string{"Range", "bytes=-2"}, 206, "89", "bytes 8-9/10"},
		{"suffix longer than the whole", complete200(), []string{"Range", "bytes=-99"}, 206, "0123456789", "bytes 0-9/10"},
		{"last beyond the end is clamped", complete200(), []string{"Range", "bytes=8-99"}, 206, "89", "bytes 8-9/10"},
		{"first beyond the end", complete200(), []string{"Range", "bytes=10-"}, 416, "", "bytes */10"},
		{"empty suffix", complete200(), []string{"Range", "bytes=-0"}, 416, "", "bytes */10"},
		{"If-Range strong match", complete200(), []string{"Range", "bytes=0-0", "If-Range", `"v1"`}, 206, "0", "bytes 0-0/10"},
		{"If-Range weak tag never matches", complete200(), []string{"Range", "bytes=0-0", "If-Range", `W/"v1"`}, 200, "0123456789", ""},
		{"If-Range other tag", complete200(), []string{"Range", "bytes=0-0", "If-Range", `"v2"`}, 200, "0123456789", ""},
		{"If-Range date equal to a strong Last-Modified", complete200(), []string{"Range", "bytes=0-0", "If-Range", lm}, 206, "0", "bytes 0-0/10"},
		{"If-Range other date", complete200(), []string{"Range", "bytes=0-0", "If-Range", httpDate(t0)}, 200, "0123456789", ""},
		{"If-Range garbage", complete200(), []string{"Range", "bytes=0-0", "If-Range", "soon"}, 200, "0123456789", ""},
		{"If-Range twice", complete200(), []string{"Range", "bytes=0-0", "If-Range", `"v1"`, "If-Range", `"v1"`}, 200, "0123456789", ""},
		{"a status without ranges is sent whole", storedAt(shared, 404, "Cache-Control", "max-age=60"), []string{"Range", "bytes=0-0"}, 404, "body", ""},
		{"stored part: covered", part206("bytes 2-5/10", "2345"), []string{"Range", "bytes=3-4"}, 206, "34", "bytes 3-4/10"},
		{"stored part: exactly", part206("bytes 2-5/10", "2345"), []string{"Range", "bytes=2-5"}, 206, "2345", "bytes 2-5/10"},
		{"stored part: suffix it holds", part206("bytes 6-9/10", "6789"), []string{"Range", "bytes=-3"}, 206, "789", "bytes 7-9/10"},
		{"stored part: unsatisfiable", part206("bytes 2-5/10", "2345"), []string{"Range", "bytes=10-"}, 416, "", "bytes */10"},
		{"stored part: not covered", part206("bytes 2-5/10", "2345"), []string{"Range", "bytes=4-6"}, 0, "", ""},
		{"stored part: the whole asked", part206("bytes 2-5/10", "2345"), nil, 0, "", ""},
		{"stored part: If-Range fails, the whole asked", part206("bytes 2-5/10", "2345", "ETag", `"v1"`), []string{"Range", "bytes=3-4", "If-Range", `"v0"`}, 0, "", ""},
		{"stored part that is the whole: a full request", part206("bytes 0-9/10", "0123456789"), nil, 200, "0123456789", ""},
		{"stored part that is the whole: a range", part206("bytes 0-9/10", "0123456789"), []string{"Range", "bytes=-1"}, 206, "9", "bytes 9-9/10"},
		{"stored part whose body is not its range", part206("bytes 2-5/10", "234"), []string{"Range", "bytes=3-4"}, 0, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rq := rangeReq(tt.kv...)
			got := shared.Part(rq, tt.stored)
			if got.Status != tt.status || string(got.Body) != tt.body || got.ContentRange != tt.cr {
				t.Errorf("Part = %d %q %q, want %d %q %q", got.Status, got.Body, got.ContentRange, tt.status, tt.body, tt.cr)
			}
			if covers := shared.Covers(rq, tt.stored); covers != (tt.status != 0) {
				t.Errorf("Covers = %v", covers)
			}
			if r := shared.Reuse(rq, tt.stored, t0); (r.Action == Unusable) != (tt.status == 0) || (tt.status == 0 && (r.Detail != "partial" || r.Fwd != "partial")) {
				t.Errorf("Reuse = %+v", r)
			}
		})
	}
	// The part is a slice of the stored body, never a copy.
	s := complete200()
	if p := shared.Part(rangeReq("Range", "bytes=3-5"), s); &p.Body[0] != &s.Body[3] {
		t.Error("the part copied the stored body")
	}
}

func TestRange_RFC9111_3_4_Complete(t *testing.T) {
	strong := []string{"ETag", `"v1"`}
	tests := []struct {
		name     string
		stored   *Response
		kv       []string
		rng, ifR string // "" rng: not completed
	}{
		{"the whole, stored prefix", part206("bytes 0-4/10", "01234", strong...), nil, "bytes=5-", `"v1"`},
		{"the whole, stored suffix", part206("bytes 5-9/10", "56789", strong...), nil, "bytes=0-4", `"v1"`},
		{"the whole, stored middle: two pieces", part206("bytes 2-5/10", "2345", strong...), nil, "", ""},
		{"a range overlapping the end", part206("bytes 0-3/10", "0123", strong...), []string{"Range", "bytes=2-7"}, "bytes=4-7", `"v1"`},
		{"a range adjoining the end", part206("bytes 0-3/10", "0123", strong...), []string{"Range", "bytes=4-6"}, "bytes=4-6", `"v1"`},
		{"a range overlapping the start", part206("bytes 4-7/10", "4567", strong...), []string{"Range", "bytes=2-5"}, "bytes=2-3", `"v1"`},
		{"a range over both ends: two pieces", part206("bytes 4-7/10", "4567", strong...), []string{"Range", "bytes=-8"}, "", ""},
		{"a range with a gap", part206("bytes 0-3/10", "0123", strong...), []string{"Range", "bytes=6-7"}, "", ""},
		{"no strong ETag", part206("bytes 0-4/10", "01234", "ETag", `W/"v1"`), nil, "", ""},
		{"no ETag", part206("bytes 0-4/10", "01234"), nil, "", ""},
		{"a complete response needs nothing", complete200(), nil, "", ""},
		{"a part that is the whole needs nothing", part206("bytes 0-9/10", "0123456789", strong...), nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rq := rangeReq(tt.kv...)
			req, ok := shared.Complete(rq, tt.stored, 1<<20)
			if ok != (tt.rng != "") || req.Header.Get("Range") != orDefault(tt.rng, rq.R.Header.Get("Range")) || req.Header.Get("If-Range") != tt.ifR {
				t.Errorf("Complete = %v Range %q If-Range %q", ok, req.Header.Get("Range"), req.Header.Get("If-Range"))
			}
			if req == rq.R {
				t.Error("the caller's request was handed out")
			}
			if tt.rng != "" {
				if _, ok := shared.Complete(rq, tt.stored, 5); ok {
					t.Error("completed past the size limit")
				}
			}
		})
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func TestRange_RFC9111_3_4_Combine(t *testing.T) {
	stored := part206("bytes 0-3/10", "0123", "ETag", `"v1"`, "X-Old", "kept", "X-Both", "old")
	tests := []struct {
		name string
		kv   []string
		body string
		ok   bool
		want string // Content-Range after, "" when complete
	}{
		{"overlapping", []string{"Content-Range", "bytes 2-7/10", "ETag", `"v1"`}, "234567", true, "bytes 0-7/10"},
		{"adjoining", []string{"Content-Range", "bytes 4-7/10", "ETag", `"v1"`}, "4567", true, "bytes 0-7/10"},
		{"making the whole", []string{"Content-Range", "bytes 4-9/10", "ETag", `"v1"`}, "456789", true, ""},
		{"other ETag", []string{"Content-Range", "bytes 4-7/10", "ETag", `"v2"`}, "4567", false, ""},
		{"weak ETags never", []string{"Content-Range", "bytes 4-7/10", "ETag", `W/"v1"`}, "4567", false, ""},
		{"other length", []string{"Content-Range", "bytes 4-7/11", "ETag", `"v1"`}, "4567", false, ""},
		{"a gap", []string{"Content-Range", "bytes 5-7/10", "ETag", `"v1"`}, "567", false, ""},
		{"body not its range", []string{"Content-Range", "bytes 4-7/10", "ETag", `"v1"`}, "45", false, ""},
		{"no Content-Range", []string{"ETag", `"v1"`}, "4567", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := newResp(206, append(tt.kv, "X-Both", "new")...)
			c, ok := shared.Combine(stored, resp, []byte(tt.body), t0, t0)
			if ok != tt.ok {
				t.Fatalf("Combine ok = %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			wantStatus, wantBody := 206, "01234567"
			if tt.want == "" {
				wantStatus, wantBody = 200, "0123456789"
			}
			if c.Status != wantStatus || string(c.Body) != wantBody || c.Header.Get("Content-Range") != tt.want ||
				c.Header.Get("Content-Length") != strconv.Itoa(len(wantBody)) {
				t.Errorf("Combine = %d %q %v", c.Status, c.Body, c.Header)
			}
			if c.Header.Get("X-Old") != "kept" || c.Header.Get("X-Both") != "new" {
				t.Errorf("header not updated from the new part (§3.4): %v", c.Header)
			}
			if string(stored.Body) != "0123" {
				t.Error("the stored part was changed")
			}
		})
	}
	if _, ok := shared.Combine(stored, newResp(200, "ETag", `"v1"`), []byte("0123456789"), t0, t0); ok {
		t.Error("combined a 200")
	}
}

func TestRange_RFC9111_3_3_KeepAndHead(t *testing.T) {
	if ttl, _ := shared.Keep(part206("bytes 2-5/10", "2345"), t0); ttl <= 0 {
		t.Error("a stored part with explicit freshness is not kept")
	}
	if ttl, _ := shared.Keep(part206("bytes 2-5/10", "23"), t0); ttl > 0 {
		t.Error("a part whose body is not its range is kept")
	}
	// A HEAD's 200 describes the whole representation: its length is the
	// stored part's complete length.
	s := part206("bytes 2-5/10", "2345", "ETag", `"v1"`)
	if _, ok := shared.FreshenHead(s, newResp(200, "ETag", `"v1"`, "Content-Length", "10"), t0, t0); !ok {
		t.Error("HEAD of the same representation did not freshen the part")
	}
	if _, ok := shared.FreshenHead(s, newResp(200, "ETag", `"v1"`, "Content-Length", "4"), t0, t0); ok {
		t.Error("HEAD of another length freshened the part")
	}
}
