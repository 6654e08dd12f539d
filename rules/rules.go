// Package rules matches an operator's per-route rules to URLs: for the
// responses of some hosts and paths, cap or floor the freshness lifetime,
// keep the cache out, leave query parameters or request fields out of the
// key, or supply stale-while-revalidate and stale-if-error windows. What a
// rule does is a policy.Route; this package only says which one a URL
// gets. Rules change what the cache does with a response, never the
// response a client is served.
//
//	set, err := rules.New(
//		rules.Rule{Host: "api.example.com", Path: "/products/**", Route: policy.Route{MaxTTL: time.Minute}},
//		rules.Rule{Path: "/search", Route: policy.Route{IgnoreQuery: []string{"utm_*"}, SortQuery: true}},
//	)
//	transport := roundtrip.New(store, roundtrip.Options{Rules: set})
//
// Package rulesfile reads the same rules from a YAML file.
package rules

import (
	"errors"
	"fmt"
	"net/textproto"
	"strings"

	"github.com/fleetcache/fleetcache/policy"
)

// A Rule applies its Route to the URLs whose host and path match its
// patterns.
type Rule struct {
	// Host is the host the rule applies to, as the cache keys it: lower
	// case, with its port unless it is the scheme's default
	// ("api.example.com", "localhost:8080"). "*.example.com" matches every
	// host under example.com (not example.com itself); "" matches every
	// host.
	Host string
	// Path is a pattern of the URL's path, without its query: * matches
	// any run of characters within one segment, ** any run across
	// segments ("/products/*", "/static/**"); everything else matches
	// itself. "" matches every path.
	Path string
	policy.Route
}

// Set is a list of rules, compiled. The first rule that matches a URL gives
// it its Route; the others are not consulted. A Set is immutable and safe
// for concurrent use.
type Set struct {
	rules []compiled
}

type compiled struct {
	host     string // lower case; "" any
	wildcard bool   // host is ".example.com", a suffix
	path     []elem // nil: any path
	route    policy.Route
}

// New checks and compiles rules, in order of precedence. An error names the
// rule (from 1) and what is wrong with it.
func New(rules ...Rule) (*Set, error) {
	s := &Set{rules: make([]compiled, 0, len(rules))}
	for i, r := range rules {
		c, err := compile(r)
		if err != nil {
			return nil, fmt.Errorf("rule %d: %w", i+1, err)
		}
		s.rules = append(s.rules, c)
	}
	return s, nil
}

// Check reports what is wrong with r, nil when nothing is.
func (r Rule) Check() error {
	_, err := compile(r)
	return err
}

// Routes returns the function policy.Options.Routes takes: the Route of the
// first rule matching a normalised URL. A nil or empty Set gives nil, which
// costs the policy nothing.
func (s *Set) Routes() func(url string) *policy.Route {
	if s == nil || len(s.rules) == 0 {
		return nil
	}
	return s.Route
}

// Route returns the Route of the first rule matching url (policy.NormalizeURL's
// output), nil when none does.
func (s *Set) Route(url string) *policy.Route {
	if s == nil {
		return nil
	}
	host, path := split(url)
	for i := range s.rules {
		if c := &s.rules[i]; c.matches(host, path) {
			return &c.route
		}
	}
	return nil
}

// split returns the host and path of a normalised URL.
func split(url string) (host, path string) {
	_, rest, ok := strings.Cut(url, "://")
	if !ok {
		return "", ""
	}
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		rest = rest[:q]
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		return rest[:i], rest[i:]
	}
	return rest, "/"
}

func (c *compiled) matches(host, path string) bool {
	switch {
	case c.wildcard:
		if !strings.HasSuffix(host, c.host) {
			return false
		}
	case c.host != "" && host != c.host:
		return false
	}
	return c.path == nil || match(c.path, path)
}

// fieldsKeptByCache are request fields the cache reads itself to decide
// what a request may be served: a rule that normalised one would change
// those decisions, not the key.
var fieldsKeptByCache = []string{
	"Authorization", "Cache-Control", "Cookie", "Host", "If-Match", "If-Modified-Since",
	"If-None-Match", "If-Range", "If-Unmodified-Since", "Pragma", "Range",
}

func compile(r Rule) (compiled, error) {
	c := compiled{route: r.Route}
	host := strings.ToLower(r.Host)
	if strings.ContainsAny(host, "/?# \t") || strings.Contains(strings.TrimPrefix(host, "*."), "*") {
		return c, fmt.Errorf("host %q: want a host name, optionally with a port, or *.domain", r.Host)
	}
	if rest, ok := strings.CutPrefix(host, "*"); ok {
		if rest == "." || !strings.HasPrefix(rest, ".") {
			return c, fmt.Errorf("host %q: want a host name, optionally with a port, or *.domain", r.Host)
		}
		host, c.wildcard = rest, true
	}
	c.host = host
	if r.Path != "" {
		if !strings.HasPrefix(r.Path, "/") || strings.ContainsAny(r.Path, "?# \t") {
			return c, fmt.Errorf("path %q: want a pattern starting with /, without a query", r.Path)
		}
		c.path = parsePattern(r.Path)
	}
	rt := &c.route
	for _, d := range []struct {
		name string
		v    int64
	}{{"min_ttl", int64(rt.MinTTL)}, {"max_ttl", int64(rt.MaxTTL)},
		{"stale_while_revalidate", int64(rt.StaleWhileRevalidate)}, {"stale_if_error", int64(rt.StaleIfError)}} {
		if d.v < 0 {
			return c, fmt.Errorf("%s is negative", d.name)
		}
	}
	if rt.MinTTL > 0 && rt.MaxTTL > 0 && rt.MinTTL > rt.MaxTTL {
		return c, fmt.Errorf("min_ttl %v is above max_ttl %v", rt.MinTTL, rt.MaxTTL)
	}
	if rt.NoStore && (rt.MinTTL > 0 || rt.MaxTTL > 0 || rt.StaleWhileRevalidate > 0 || rt.StaleIfError > 0 ||
		len(rt.IgnoreQuery) > 0 || rt.SortQuery || len(rt.IgnoreVary) > 0 || len(rt.Normalize) > 0) {
		return c, errors.New("no_store keeps the cache out: the rule's other settings would do nothing")
	}
	for _, q := range rt.IgnoreQuery {
		if q == "" || strings.Contains(strings.TrimSuffix(q, "*"), "*") {
			return c, fmt.Errorf("ignore_query %q: want a parameter name, optionally ending in *", q)
		}
	}
	rt.IgnoreVary = append([]string(nil), rt.IgnoreVary...)
	for i, name := range rt.IgnoreVary {
		if !isToken(name) {
			return c, fmt.Errorf("ignore_vary %q is not a field name", name)
		}
		rt.IgnoreVary[i] = textproto.CanonicalMIMEHeaderKey(name)
	}
	if len(rt.Normalize) > 0 {
		norm := make(map[string][]string, len(rt.Normalize))
		for name, values := range rt.Normalize {
			canon := textproto.CanonicalMIMEHeaderKey(name)
			switch {
			case !isToken(name):
				return c, fmt.Errorf("normalize %q is not a field name", name)
			case contains(fieldsKeptByCache, canon):
				return c, fmt.Errorf("normalize %s: the cache reads that field itself; it cannot be normalised", canon)
			case len(values) == 0:
				return c, fmt.Errorf("normalize %s lists no values", canon)
			case contains(rt.IgnoreVary, canon):
				return c, fmt.Errorf("%s is both ignored and normalised", canon)
			}
			for _, v := range values {
				if !isToken(v) {
					return c, fmt.Errorf("normalize %s: %q is not a token", canon, v)
				}
			}
			norm[canon] = append([]string(nil), values...)
		}
		rt.Normalize = norm
	}
	rt.IgnoreQuery = append([]string(nil), rt.IgnoreQuery...)
	return c, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// isToken reports whether s is an RFC 9110 token: a field name, or a
// coding or language tag.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
