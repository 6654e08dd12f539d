package rules_test

import (
	"strings"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/policy"
	"github.com/fleetcache/fleetcache/rules"
)

func TestSet_FirstMatchingRuleWins(t *testing.T) {
	set, err := rules.New(
		rules.Rule{Host: "api.example.com", Path: "/products/*", Route: policy.Route{MaxTTL: 1 * time.Second}},
		rules.Rule{Host: "*.example.com", Path: "/static/**", Route: policy.Route{MaxTTL: 2 * time.Second}},
		rules.Rule{Host: "localhost:8080", Route: policy.Route{MaxTTL: 3 * time.Second}},
		rules.Rule{Path: "/search", Route: policy.Route{MaxTTL: 4 * time.Second}},
		rules.Rule{Path: "/a*b/c", Route: policy.Route{MaxTTL: 5 * time.Second}},
	)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		url  string
		want time.Duration // MaxTTL of the rule; 0: none matches
	}{
		{"http://api.example.com/products/42", 1 * time.Second},
		{"http://api.example.com/products/42?x=1", 1 * time.Second},
		{"http://api.example.com/products/42/reviews", 0}, // * stays in its segment
		{"http://api.example.com/products/", 1 * time.Second},
		{"http://other.com/products/42", 0},
		{"http://cdn.example.com/static/css/site.css", 2 * time.Second},
		{"http://a.b.example.com/static/x", 2 * time.Second},
		{"http://example.com/static/x", 0}, // *.example.com is below it
		{"http://evilexample.com/static/x", 0},
		{"http://localhost:8080/anything", 3 * time.Second},
		{"http://localhost/anything", 0},
		{"https://any.host/search?q=1", 4 * time.Second},
		{"https://any.host/search/more", 0},
		{"http://h/axxb/c", 5 * time.Second},
		{"http://h/ab/c", 5 * time.Second},
		{"http://h/ax/b/c", 0},
		{"not a url", 0},
	}
	for _, tt := range tests {
		got := set.Route(tt.url)
		switch {
		case tt.want == 0 && got != nil:
			t.Errorf("Route(%q) = %+v, want none", tt.url, got)
		case tt.want != 0 && (got == nil || got.MaxTTL != tt.want):
			t.Errorf("Route(%q) = %+v, want the rule with max_ttl %v", tt.url, got, tt.want)
		}
	}
}

func TestSet_NilAndEmptyCostNothing(t *testing.T) {
	var nilSet *rules.Set
	if nilSet.Routes() != nil || nilSet.Route("http://a/") != nil {
		t.Error("a nil Set routes something")
	}
	empty, err := rules.New()
	if err != nil || empty.Routes() != nil {
		t.Errorf("an empty Set gives a Routes func (err %v)", err)
	}
}

func TestSet_CompilesWhatThePolicyCompares(t *testing.T) {
	in := rules.Rule{Route: policy.Route{
		IgnoreVary: []string{"user-agent"},
		Normalize:  map[string][]string{"accept-encoding": {"gzip"}},
	}}
	set, err := rules.New(in)
	if err != nil {
		t.Fatal(err)
	}
	rt := set.Route("http://a/")
	if rt.IgnoreVary[0] != "User-Agent" || rt.Normalize["Accept-Encoding"] == nil {
		t.Errorf("compiled route %+v: want canonical field names", rt)
	}
	in.IgnoreVary[0] = "changed"
	if rt.IgnoreVary[0] != "User-Agent" {
		t.Error("the Set shares its caller's slices")
	}
}

func TestNew_RefusesBadRules(t *testing.T) {
	tests := []struct {
		name string
		rule rules.Rule
		want string
	}{
		{"host with a path", rules.Rule{Host: "a.com/x"}, "host"},
		{"star inside a host", rules.Rule{Host: "a.*.com"}, "host"},
		{"bare star host", rules.Rule{Host: "*"}, "host"},
		{"star dot only", rules.Rule{Host: "*."}, "host"},
		{"relative path", rules.Rule{Path: "products"}, "path"},
		{"path with a query", rules.Rule{Path: "/a?b"}, "path"},
		{"negative ttl", rules.Rule{Route: policy.Route{MaxTTL: -1}}, "max_ttl is negative"},
		{"negative window", rules.Rule{Route: policy.Route{StaleIfError: -1}}, "stale_if_error is negative"},
		{"floor above cap", rules.Rule{Route: policy.Route{MinTTL: time.Hour, MaxTTL: time.Minute}}, "above max_ttl"},
		{"no_store with more", rules.Rule{Route: policy.Route{NoStore: true, MaxTTL: time.Minute}}, "no_store"},
		{"empty query name", rules.Rule{Route: policy.Route{IgnoreQuery: []string{""}}}, "ignore_query"},
		{"star inside a query name", rules.Rule{Route: policy.Route{IgnoreQuery: []string{"a*b"}}}, "ignore_query"},
		{"bad vary name", rules.Rule{Route: policy.Route{IgnoreVary: []string{"a b"}}}, "ignore_vary"},
		{"normalise a field the cache reads", rules.Rule{Route: policy.Route{Normalize: map[string][]string{"authorization": {"x"}}}}, "reads that field"},
		{"normalise to nothing", rules.Rule{Route: policy.Route{Normalize: map[string][]string{"Accept-Encoding": nil}}}, "no values"},
		{"normalise to a non-token", rules.Rule{Route: policy.Route{Normalize: map[string][]string{"Accept-Encoding": {"a,b"}}}}, "not a token"},
		{"ignored and normalised", rules.Rule{Route: policy.Route{IgnoreVary: []string{"Accept"}, Normalize: map[string][]string{"accept": {"a"}}}}, "both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rules.New(rules.Rule{}, tt.rule)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "rule 2: ") {
				t.Errorf("New = %v, want an error about rule 2 mentioning %q", err, tt.want)
			}
			if tt.rule.Check() == nil {
				t.Error("Check found nothing wrong")
			}
		})
	}
}

// A path pattern costs its length times the path's, whatever the path.
func TestMatch_HostilePathIsLinear(t *testing.T) {
	set, err := rules.New(rules.Rule{Path: "/*a*a*a*a*a*a*a*a*a*a*b", Route: policy.Route{MaxTTL: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	url := "http://h/" + strings.Repeat("a", 100_000)
	start := time.Now()
	if set.Route(url) != nil {
		t.Error("matched a path without b")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}

func FuzzRoute(f *testing.F) {
	f.Add("/a/**/b*", "http://h/a/x/y/bz?q")
	f.Add("/*", "http://h/")
	f.Fuzz(func(t *testing.T, pattern, url string) {
		set, err := rules.New(rules.Rule{Path: pattern})
		if err != nil {
			return
		}
		_ = set.Route(url)
		if !strings.Contains(pattern, "*") && set.Route("http://h"+pattern) == nil {
			t.Errorf("pattern %q does not match itself", pattern)
		}
	})
}
