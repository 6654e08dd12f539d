package policy

import (
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestTags_SurrogateKeysAndCacheGroups(t *testing.T) {
	long := strings.Repeat("x", MaxTagLength+1)
	tests := []struct {
		name string
		p    *Policy
		kv   []string
		want []string
	}{
		{"Cache-Tag, comma separated", shared, []string{"Cache-Tag", "product-42, listing"}, []string{"product-42", "listing"}},
		{"Surrogate-Key, space separated", shared, []string{"Surrogate-Key", "a  b\tc"}, []string{"a", "b", "c"}},
		{"both fields, each tag once", shared, []string{"Cache-Tag", "a,b", "Surrogate-Key", "b c"}, []string{"a", "b", "c"}},
		{"too long a tag is ignored", shared, []string{"Cache-Tag", "a " + long}, []string{"a"}},
		{"the fields an option names", New(Options{TagFields: []string{"x-tags"}}), []string{"Cache-Tag", "a", "X-Tags", "b"}, []string{"b"}},
		{"no tag fields at all", New(Options{TagFields: []string{}}), []string{"Cache-Tag", "a"}, nil},
		{"RFC 9875 §2: Cache-Groups are scoped by origin", shared, []string{"Cache-Groups", `"products", "eu"`}, []string{"http://example.com products", "http://example.com eu"}},
		{"RFC 9875 §2: non-String members are ignored", shared, []string{"Cache-Groups", `"a";p=1, tok, 1, ("b" "c"), "d\"e"`}, []string{"http://example.com a", `http://example.com d"e`}},
		{"RFC 8941 §4.2: an invalid list is ignored whole", shared, []string{"Cache-Groups", `"a", "b`}, nil},
		{"RFC 8941 §4.2: lines are joined", shared, []string{"Cache-Groups", `"a"`, "Cache-Groups", `"b"`}, []string{"http://example.com a", "http://example.com b"}},
		{"RFC 8941 §4.2.1: trailing comma is invalid", shared, []string{"Cache-Groups", `"a",`}, nil},
		{"an empty group names nothing", shared, []string{"Cache-Groups", `"", "a"`}, []string{"http://example.com a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := storedAt(tt.p, 200, tt.kv...).Tags; !slices.Equal(got, tt.want) {
				t.Errorf("Tags = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTags_RFC9875_2_AtLeast32GroupsOf32Characters(t *testing.T) {
	var groups []string
	for i := range 2 * MaxTags {
		groups = append(groups, `"`+strings.Repeat(string(rune('a'+i%26)), 31)+string(rune('A'+i/26))+`"`)
	}
	s := storedAt(shared, 200, "Cache-Groups", strings.Join(groups, ", "))
	if len(s.Tags) != MaxTags || MaxTags < 32 || MaxTagLength < 32 {
		t.Fatalf("%d tags kept of %d groups, MaxTags %d, MaxTagLength %d", len(s.Tags), len(groups), MaxTags, MaxTagLength)
	}
}

func TestTags_RFC9875_2_GroupsKeptWhateverTheTagFieldsHold(t *testing.T) {
	var keys, groups []string
	for i := range 2 * MaxTags {
		keys = append(keys, fmt.Sprint("key-", i))
	}
	for i := range 32 {
		groups = append(groups, fmt.Sprintf(`"%032d"`, i))
	}
	s := storedAt(shared, 200, "Surrogate-Key", strings.Join(keys, " "), "Cache-Groups", strings.Join(groups, ", "))
	if len(s.Tags) != MaxTags || s.Tags[0] != GroupTag("http://example.com", fmt.Sprintf("%032d", 0)) || s.Tags[31] != GroupTag("http://example.com", fmt.Sprintf("%032d", 31)) {
		t.Errorf("tags %q, want the 32 groups first, then surrogate keys up to %d", s.Tags, MaxTags)
	}
}

func TestTags_RFC9875_2_AGroupOfMaxTagLengthOnALongOrigin(t *testing.T) {
	host := strings.Repeat("h", 200) + ".example"
	group := strings.Repeat("g", MaxTagLength)
	rq := shared.ParseRequest(newReq("GET", "http://"+host+"/p"))
	s := shared.NewResponse(&rq, newResp(200, "Cache-Groups", `"`+group+`"`), nil, t0, t0)
	post := newReq("POST", "http://"+host+"/cart")
	inv := InvalidatedGroups(post, newResp(204, "Cache-Group-Invalidation", `"`+group+`"`))
	if len(s.Tags) != 1 || !slices.Equal(s.Tags, inv) {
		t.Errorf("stored tags %q, invalidated %q: want the same one group", s.Tags, inv)
	}
}

func TestInvalidatedGroups_RFC9875_3(t *testing.T) {
	tests := []struct {
		name   string
		method string
		status int
		want   []string
	}{
		{"unsafe method invalidates its origin's groups", "POST", 200, []string{"https://shop.example products", "https://shop.example eu"}},
		{"ignored on a safe method", "GET", 200, nil},
		{"ignored on HEAD", "HEAD", 200, nil},
		{"ignored on an error status", "DELETE", 500, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReq(tt.method, "https://Shop.Example:443/cart")
			got := InvalidatedGroups(r, newResp(tt.status, "Cache-Group-Invalidation", `"products", "eu", "products"`))
			if !slices.Equal(got, tt.want) {
				t.Errorf("InvalidatedGroups = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSoftPurge_StaleAtOnceRevalidatedWithValidators(t *testing.T) {
	s := storedAt(shared, 200, "Cache-Control", "max-age=3600", "Etag", `"v1"`)
	wantAction(t, reuse(shared, s, time.Minute), Serve, "")
	s.Purged = t0.Add(time.Minute)
	r := reuse(shared, s, time.Minute)
	wantAction(t, r, Revalidate, "stale")
	if r.TTL > 0 {
		t.Errorf("TTL %v after a soft purge, want <= 0", r.TTL)
	}
	if _, ok := Conditional(&Request{R: newReq("GET", testURL)}, s); !ok {
		t.Error("no conditional request for a soft-purged entry with an ETag")
	}
	fresh, ok := shared.Freshen(s, newResp(304, "Etag", `"v1"`), t0.Add(2*time.Minute), t0.Add(2*time.Minute))
	if !ok || !fresh.Purged.IsZero() {
		t.Fatalf("Freshen = %v %v, want a response no longer purged", ok, fresh.Purged)
	}
	wantAction(t, reuse(shared, fresh, 3*time.Minute), Serve, "")
}

func TestSoftPurge_RFC5861_StaleWindowsCountFromThePurge(t *testing.T) {
	s := storedAt(shared, 200, "Cache-Control", "max-age=3600, stale-while-revalidate=60, stale-if-error=600")
	s.Purged = t0.Add(10 * time.Minute)
	wantAction(t, reuse(shared, s, 10*time.Minute+30*time.Second), ServeStale, "stale-while-revalidate")
	wantAction(t, reuse(shared, s, 12*time.Minute), Revalidate, "stale")
	rq := shared.ParseRequest(newReq("GET", testURL))
	if !shared.StaleIfError(&rq, s, t0.Add(19*time.Minute)) {
		t.Error("stale-if-error refused 9 minutes after the purge, within its 10")
	}
	if shared.StaleIfError(&rq, s, t0.Add(21*time.Minute)) {
		t.Error("stale-if-error allowed 11 minutes after the purge, past its 10")
	}
	// Already stale when purged: the purge makes it no staler.
	s.Purged = t0.Add(2 * time.Hour)
	if !shared.StaleIfError(&rq, s, t0.Add(time.Hour+9*time.Minute)) {
		t.Error("a purge dated later made a stale entry older")
	}
}

func TestSoftPurge_TagsSurviveAFreshen(t *testing.T) {
	s := storedAt(shared, 200, "Cache-Control", "max-age=60", "Cache-Tag", "a", "Etag", `"v1"`)
	fresh, _ := shared.Freshen(s, &http.Response{StatusCode: 304, Header: header("Etag", `"v1"`, "Cache-Tag", "b")}, t0, t0)
	if !slices.Equal(fresh.Tags, []string{"b"}) {
		t.Errorf("Tags after a 304 = %q, want the 304's", fresh.Tags)
	}
}

// An origin's Cache-Groups or Surrogate-Key of megabytes (Go's client reads
// 10 MB of header) costs no more memory than the MaxTags tags it keeps; a
// Structured Fields list is still parsed whole, as it must be.
func TestTags_AHugeFieldCostsOnlyTheTagsItKeeps(t *testing.T) {
	field := strings.Repeat(`"g", "h", `, 1<<20/10) + `"last"`
	for name, parse := range map[string]func(){
		"Cache-Groups":  func() { storedAt(shared, 200, "Cache-Groups", field) },
		"Surrogate-Key": func() { storedAt(shared, 200, "Surrogate-Key", field) },
		"Cache-Group-Invalidation": func() {
			InvalidatedGroups(newReq("POST", testURL), newResp(204, "Cache-Group-Invalidation", field))
		},
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		parse()
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n > 4*uint64(len(field)) {
			t.Errorf("%s of %d bytes allocated %d bytes", name, len(field), n)
		}
	}
}
