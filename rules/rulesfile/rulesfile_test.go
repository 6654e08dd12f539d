package rulesfile_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/rules/rulesfile"
)

const good = `# rules for the catalog
rules:
  - host: api.example.com
    path: /products/*
    max_ttl: 5m
    min_ttl: 30s
    stale_while_revalidate: 1m
    stale_if_error: 1h
    ignore_query: [utm_*, fbclid]
    sort_query: true
    ignore_vary: [user-agent]
    normalize:
      Accept-Encoding: [br, gzip]
  - path: /account/**
    no_store: true
`

func TestParse_EverySetting(t *testing.T) {
	set, err := rulesfile.Parse("rules.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	rt := set.Route("http://api.example.com/products/42")
	if rt == nil {
		t.Fatal("the first rule does not match")
	}
	if rt.MaxTTL != 5*time.Minute || rt.MinTTL != 30*time.Second || rt.StaleWhileRevalidate != time.Minute ||
		rt.StaleIfError != time.Hour || !rt.SortQuery || strings.Join(rt.IgnoreQuery, ",") != "utm_*,fbclid" ||
		strings.Join(rt.IgnoreVary, ",") != "User-Agent" || strings.Join(rt.Normalize["Accept-Encoding"], ",") != "br,gzip" {
		t.Errorf("route = %+v", rt)
	}
	if rt := set.Route("http://any/account/me/orders"); rt == nil || !rt.NoStore {
		t.Errorf("second rule: %+v, want no_store", rt)
	}
	if set.Route("http://any/other") != nil {
		t.Error("an unmatched URL got a route")
	}
}

func TestParse_EmptyFilesHaveNoRules(t *testing.T) {
	for _, src := range []string{"", "# nothing\n", "rules: []\n", "rules:\n"} {
		set, err := rulesfile.Parse("r.yaml", []byte(src))
		if err != nil || set.Routes() != nil {
			t.Errorf("Parse(%q) = %v, %v; want no rules", src, set, err)
		}
	}
}

// Every bad file is refused with an error naming the file and the line.
func TestParse_ErrorsNameTheLine(t *testing.T) {
	tests := []struct {
		name, src string
		line      int
		want      string
	}{
		{"yaml syntax", "rules:\n  - path: /a\n\t  max_ttl: 1m\n", 2, "tab character"},
		{"not a mapping", "- a\n", 1, "want a mapping"},
		{"unknown key", "rule:\n  - path: /a\n", 1, `unknown key "rule"`},
		{"rules not a list", "rules: yes\n", 1, "want a list of rules"},
		{"rule not a mapping", "rules:\n  - /a\n", 2, "mapping of settings"},
		{"unknown setting", "rules:\n  - path: /a\n    max-ttl: 1m\n", 3, `unknown setting "max-ttl"`},
		{"bad duration", "rules:\n  - path: /a\n    max_ttl: 5 minutes\n", 3, "not a duration"},
		{"bare number", "rules:\n  - path: /a\n    max_ttl: 60\n", 3, "want a duration"},
		{"negative", "rules:\n  - path: /a\n    min_ttl: -1s\n", 3, "negative"},
		{"bad bool", "rules:\n  - path: /a\n    no_store: maybe\n", 3, "true or false"},
		{"list wanted", "rules:\n  - path: /a\n    ignore_query: utm_source\n", 3, "want a list"},
		{"null string", "rules:\n  - path:\n", 2, "want a string"},
		{"twice", "rules:\n  - path: /a\n    path: /b\n", 3, "given twice"},
		{"alias", "rules:\n  - path: &a /a\n  - path: *a\n", 3, "no aliases"},
		{"invalid rule, at its line", "rules:\n  - path: /a\n  - path: /b\n    min_ttl: 1h\n    max_ttl: 1m\n", 3, "above max_ttl"},
		{"bad normalize", "rules:\n  - normalize:\n      Authorization: [x]\n", 2, "reads that field"},
		{"normalize not a mapping", "rules:\n  - normalize: [a]\n", 2, "want a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rulesfile.Parse("r.yaml", []byte(tt.src))
			var fe *rulesfile.Error
			if !errors.As(err, &fe) {
				t.Fatalf("Parse = %v, want a *rulesfile.Error", err)
			}
			if fe.Line != tt.line || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "r.yaml:") {
				t.Errorf("Parse = %q (line %d), want line %d and %q", err, fe.Line, tt.line, tt.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := rulesfile.Load(path); err != nil {
		t.Fatal(err)
	}
	if _, err := rulesfile.Load(path + ".missing"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file = %v", err)
	}
	if _, err := rulesfile.Parse("big", make([]byte, 2<<20)); err == nil {
		t.Error("a 2 MiB file was read")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("rules:\n  - path: /a/**\n    normalize: {Accept: [a, b]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := rulesfile.Parse("f.yaml", data)
		if err == nil {
			_ = set.Route("http://h/a/b?c=d")
		}
	})
}
