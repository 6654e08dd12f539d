package main

import (
	"bytes"
	"context"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/internal/redistest"
	"github.com/fleetcache/fleetcache/policy"
	"github.com/fleetcache/fleetcache/rediscache"
)

var update = flag.Bool("update", false, "rewrite the golden files of the admin commands")

// t0 is when the seeded responses arrived; the commands run an hour later.
var t0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

const goldenPrefix = "golden:"

// seed stores a known cache: two variants of one product page and ten
// other pages, over four shards.
func seed(t *testing.T, redisURL string) *rediscache.Store {
	t.Helper()
	ctx := context.Background()
	store, err := rediscache.Open(ctx, redisURL, rediscache.Options{Prefix: goldenPrefix, Shards: 4, MaxEntries: 1000, MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	put := func(url, body string, vary ...string) {
		r := &policy.Response{
			Method: "GET", URL: url, Status: 200, ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{
				"Cache-Control": {"max-age=7200"},
				"Content-Type":  {"text/html"},
				"Date":          {t0.Format(http.TimeFormat)},
				"Etag":          {`"` + body + `"`},
			},
			Body: []byte(body), RequestTime: t0, ResponseTime: t0,
		}
		if len(vary) == 2 {
			r.Header["Vary"] = []string{vary[0]}
			r.Vary, r.VaryValues = []string{vary[0]}, []string{vary[1]}
		}
		if _, err := store.Put(ctx, r, 24*time.Hour, true); err != nil {
			t.Fatal(err)
		}
	}
	put("http://shop.test/products/1", "product one in english", "Accept-Language", "en")
	put("http://shop.test/products/1", "produit un en francais", "Accept-Language", "fr")
	for i := range 10 {
		put("http://shop.test/pages/"+strconv.Itoa(i), "page "+strconv.Itoa(i))
	}
	return store
}

// admin runs a command against redisURL at t0 + 1h.
func admin(t *testing.T, redisURL, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	c := &cli{getenv: func(string) string { return "" }, stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb,
		now: func() time.Time { return t0.Add(time.Hour) }}
	full := append([]string{args[0], "-redis", redisURL, "-prefix", goldenPrefix}, args[1:]...)
	code = c.run(context.Background(), full)
	return code, out.String(), errb.String()
}

var (
	ttlText = regexp.MustCompile(`ttl( +)(\S+) in Redis`)
	ttlJSON = regexp.MustCompile(`"ttl_seconds": ([0-9.e+]+)`)
)

// maskTTL replaces the TTLs Redis reports, which a real server counts down
// while the test runs, after checking each is within a minute of a day.
func maskTTL(t *testing.T, s string) string {
	t.Helper()
	near := func(d time.Duration) {
		if d > 24*time.Hour || d < 24*time.Hour-time.Minute {
			t.Errorf("TTL %v, want about 24h", d)
		}
	}
	s = ttlText.ReplaceAllStringFunc(s, func(m string) string {
		sub := ttlText.FindStringSubmatch(m)
		d, err := time.ParseDuration(sub[2])
		if err != nil {
			t.Errorf("TTL %q: %v", sub[2], err)
		}
		near(d)
		return "ttl" + sub[1] + "<ttl> in Redis"
	})
	return ttlJSON.ReplaceAllStringFunc(s, func(m string) string {
		f, _ := strconv.ParseFloat(ttlJSON.FindStringSubmatch(m)[1], 64)
		near(time.Duration(f * float64(time.Second)))
		return `"ttl_seconds": "<ttl>"`
	})
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s: output differs from %s (go test ./cmd/fleetcache -run %s -update rewrites it)\n--- got\n%s\n--- want\n%s", name, path, t.Name(), got, want)
	}
}

func TestCommands_Golden(t *testing.T) {
	redistest.Run(t, redistest.Real, func(t *testing.T, r *redistest.Redis) {
		seed(t, r.URL)
		for _, tc := range []struct {
			golden string
			args   []string
		}{
			{"stats", []string{"stats"}},
			{"stats.json", []string{"stats", "-json"}},
			{"inspect", []string{"inspect", "HTTP://Shop.test:80/products/%31"}},
			{"inspect.json", []string{"inspect", "http://shop.test/products/1", "-json"}},
			{"inspect-nothing", []string{"inspect", "http://shop.test/never"}},
			{"config-get", []string{"config", "get"}},
			{"config-get.json", []string{"config", "get", "-json"}},
		} {
			t.Run(tc.golden, func(t *testing.T) {
				code, out, errOut := admin(t, r.URL, "", tc.args...)
				if code != exitOK || errOut != "" {
					t.Fatalf("exit %d, stderr %q", code, errOut)
				}
				golden(t, tc.golden, maskTTL(t, out))
			})
		}
	})
}

func TestCommands_ConfigSetAndClear(t *testing.T) {
	redistest.Run(t, []redistest.Backend{redistest.RealServer}, func(t *testing.T, r *redistest.Redis) {
		store := seed(t, r.URL)
		ctx := context.Background()
		code, out, _ := admin(t, r.URL, "", "config", "set", "max_entries", "500")
		if code != exitOK || out != "max_entries set to 500 (was 1000); every instance applies it within 5 seconds\n" {
			t.Errorf("config set: exit %d, %q", code, out)
		}
		if c, err := store.Config(ctx); err != nil || c.MaxEntries != 500 {
			t.Errorf("config after set: %+v, %v", c, err)
		}

		code, _, errOut := admin(t, r.URL, "no\n", "clear")
		if code != exitFailure || !strings.Contains(errOut, `Remove all 12 entries of prefix "golden:"?`) || !strings.Contains(errOut, "not confirmed") {
			t.Errorf("clear answered no: exit %d, stderr %q", code, errOut)
		}
		if st, _ := store.Stats(ctx); st.Entries != 12 {
			t.Fatalf("%d entries after an unconfirmed clear, want 12", st.Entries)
		}
		code, out, _ = admin(t, r.URL, "yes\n", "clear")
		if code != exitOK || out != "cleared prefix \"golden:\" (it held 12 entries)\n" {
			t.Errorf("clear answered yes: exit %d, %q", code, out)
		}
		if st, _ := store.Stats(ctx); st.Entries != 0 {
			t.Errorf("%d entries after clear, want 0", st.Entries)
		}
		seed(t, r.URL)
		if code, _, errOut := admin(t, r.URL, "", "clear", "-yes"); code != exitOK || errOut != "" {
			t.Errorf("clear -yes: exit %d, stderr %q (it must not ask)", code, errOut)
		}
	})
}

func TestCommands_ExitCodes(t *testing.T) {
	srv := redistest.Server(t)
	url := "redis://" + srv.Addr()
	seed(t, url)
	closed := "redis://127.0.0.1:1"
	tests := []struct {
		name string
		args []string // after the command name, with no -redis/-prefix added
		code int
		want string
	}{
		{"no redis", []string{"stats", "-prefix", "p:"}, exitConfig, "no -redis URL"},
		{"no prefix", []string{"stats", "-redis", url}, exitConfig, "no -prefix"},
		{"bad prefix", []string{"stats", "-redis", url, "-prefix", "a{b}"}, exitConfig, "prefix"},
		{"bad redis url", []string{"stats", "-redis", "postgres://x", "-prefix", "p:"}, exitConfig, "Redis URL"},
		{"unknown flag", []string{"stats", "-redis", url, "-prefix", "p:", "-verbose"}, exitConfig, "-verbose"},
		{"stray argument", []string{"stats", "-redis", url, "-prefix", "p:", "extra"}, exitConfig, `unexpected argument "extra"`},
		{"inspect without a URL", []string{"inspect", "-redis", url, "-prefix", "p:"}, exitConfig, "want one URL"},
		{"inspect a relative URL", []string{"inspect", "-redis", url, "-prefix", "p:", "/products/1"}, exitConfig, "not an absolute"},
		{"config without get or set", []string{"config", "-redis", url, "-prefix", "p:"}, exitConfig, "want config get"},
		{"config set shards", []string{"config", "set", "shards", "8", "-redis", url, "-prefix", "p:"}, exitConfig, "shards is fixed"},
		{"config set zero", []string{"config", "set", "max_entries", "0", "-redis", url, "-prefix", "p:"}, exitConfig, "positive integer"},
		{"config set not a number", []string{"config", "set", "max_bytes", "1GB", "-redis", url, "-prefix", "p:"}, exitConfig, "positive integer"},
		{"config set without a value", []string{"config", "set", "max_bytes", "-redis", url, "-prefix", "p:"}, exitConfig, "want config get"},
		{"a prefix nobody uses", []string{"stats", "-redis", url, "-prefix", "typo:"}, exitFailure, `no cache at prefix "typo:"`},
		{"config set on a prefix nobody uses", []string{"config", "set", "max_entries", "5", "-redis", url, "-prefix", "typo:"}, exitFailure, "no cache at prefix"},
		{"redis unreachable", []string{"stats", "-redis", closed, "-prefix", "p:"}, exitFailure, "connection refused"},
		{"help", []string{"inspect", "-h"}, exitOK, "usage: fleetcache inspect -redis URL -prefix P [flags] URL"},
		{"purge nothing", []string{"purge", "-redis", url, "-prefix", "p:"}, exitConfig, "want URLs or -tag"},
		{"purge a relative URL", []string{"purge", "-redis", url, "-prefix", "p:", "/products/1"}, exitConfig, "not an absolute"},
		{"purge an empty tag", []string{"purge", "-redis", url, "-prefix", "p:", "-tag", ""}, exitConfig, "empty -tag"},
		{"purge with a bad redis url", []string{"purge", "-redis", "redis//x", "-prefix", "p:", "-tag", "t"}, exitConfig, "Redis URL"},
		{"purge with a bad prefix", []string{"purge", "-redis", url, "-prefix", "a b", "-tag", "t"}, exitConfig, "prefix"},
		{"purge a prefix nobody uses", []string{"purge", "-redis", url, "-prefix", "typo:", "-tag", "t"}, exitFailure, `no cache at prefix "typo:"`},
		{"purge on an unreachable redis", []string{"purge", "-redis", closed, "-prefix", "p:", "http://shop.test/"}, exitFailure, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runCommand(context.Background(), tt.args, func(string) string { return "" }, strings.NewReader(""), &out, &errb)
			if code != tt.code || !strings.Contains(errb.String(), tt.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errb.String(), tt.code, tt.want)
			}
			if tt.code != exitOK && strings.Count(errb.String(), "\n") != 1 {
				t.Errorf("stderr %q: want one line", errb.String())
			}
		})
	}
	t.Run("environment", func(t *testing.T) {
		env := map[string]string{"FLEETCACHE_REDIS": url, "FLEETCACHE_PREFIX": goldenPrefix}
		var out, errb bytes.Buffer
		code := runCommand(context.Background(), []string{"config", "get"}, func(k string) string { return env[k] }, nil, &out, &errb)
		if code != exitOK || !strings.Contains(out.String(), "max_entries  1000") {
			t.Errorf("exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
		}
	})
}

func TestRun_InvalidRulesFileExits2NamingTheLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte("rules:\n  - path: /a\n    max_ttl: soon\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-upstream", "http://example.com", "-rules", path}, path + `:3: max_ttl: "soon" is not a duration`},
		{[]string{"-upstream", "http://example.com", "-rules", path + ".missing"}, "no such file"},
		{[]string{"-upstream", "http://example.com", "-admin-path", "/"}, "admin path"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), tc.args, noEnv, &stdout, &stderr)
		if code != exitConfig || !strings.Contains(stderr.String(), tc.want) || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line with %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}

func TestCommands_Purge(t *testing.T) {
	redistest.Run(t, redistest.Real, func(t *testing.T, r *redistest.Redis) {
		store := seed(t, r.URL)
		ctx := context.Background()
		tagged := func(url string, tags ...string) {
			resp := &policy.Response{Method: "GET", URL: url, Status: 200, Header: http.Header{"Etag": {`"x"`}}, Tags: tags}
			if _, err := store.Put(ctx, resp, time.Hour, true); err != nil {
				t.Fatal(err)
			}
		}
		tagged("http://shop.test/search?q=42", "product-42")
		tagged("http://shop.test/listing", "product-42", "listing")

		code, out, errOut := admin(t, r.URL, "", "purge", "HTTP://Shop.test:80/products/%31", "http://shop.test/pages/1")
		want := "url  http://shop.test/products/1  2 removed\nurl  http://shop.test/pages/1     1 removed\n3 entries removed in prefix \"golden:\"\n"
		if code != exitOK || out != want || errOut != "" {
			t.Errorf("purge URLs: exit %d, stdout %q, stderr %q; want %q", code, out, errOut, want)
		}
		code, out, _ = admin(t, r.URL, "", "purge", "-soft", "-tag", "listing", "-json")
		if code != exitOK || !strings.Contains(out, `"listing": 1`) || !strings.Contains(out, `"soft": true`) {
			t.Errorf("purge -soft -tag: exit %d, %q", code, out)
		}
		if got, _, _ := store.Get(ctx, "http://shop.test/listing", ""); got == nil || got.Purged.IsZero() {
			t.Errorf("after a soft purge: %+v", got)
		}
		code, out, _ = admin(t, r.URL, "", "inspect", "http://shop.test/listing")
		if code != exitOK || !strings.Contains(out, "tags    product-42, listing") || !strings.Contains(out, "purged  soft, at ") {
			t.Errorf("inspect after a soft purge: exit %d\n%s", code, out)
		}
		code, out, _ = admin(t, r.URL, "", "purge", "-tag", "product-42")
		if code != exitOK || !strings.Contains(out, "2 entries removed") {
			t.Errorf("purge -tag: exit %d, %q", code, out)
		}
		if st, _ := store.Stats(ctx); st.Entries != 9 {
			t.Errorf("%d entries left, want the 9 other pages", st.Entries)
		}
	})
}
