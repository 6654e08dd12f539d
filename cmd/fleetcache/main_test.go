package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fleetcache/fleetcache/internal/proxy"
	"github.com/fleetcache/fleetcache/internal/redistest"
)

func noEnv(string) string { return "" }

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestRun_BadConfigExits2WithOneLine(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"missing upstream", nil, nil, "no upstream"},
		{"upstream without scheme", []string{"-upstream", "127.0.0.1:9000"}, nil, "upstream"},
		{"upstream with another scheme", []string{"-upstream", "ftp://example.com"}, nil, "not an http:// or https:// URL"},
		{"unparsable redis url", []string{"-upstream", "http://example.com", "-redis", "postgres://db"}, nil, "redis"},
		{"negative size", []string{"-upstream", "http://example.com", "-max-entry-bytes", "-1"}, nil, "max entry bytes -1"},
		{"negative buffer budget", []string{"-upstream", "http://example.com", "-max-buffered-bytes", "-1"}, nil, "max buffered bytes -1"},
		{"negative timeout", []string{"-upstream", "http://example.com", "-write-timeout", "-1s"}, nil, "timeout -1s is negative"},
		{"timeout without unit", nil, map[string]string{"FLEETCACHE_UPSTREAM": "http://example.com", "FLEETCACHE_READ_TIMEOUT": "30"}, "FLEETCACHE_READ_TIMEOUT"},
		{"non-numeric size", []string{"-upstream", "http://example.com", "-max-entries", "many"}, nil, "-max-entries"},
		{"unknown log level", []string{"-upstream", "http://example.com", "-log-level", "loud"}, nil, `unknown log level "loud"`},
		{"unknown flag", []string{"-upstream", "http://example.com", "-cache-everything"}, nil, "flag provided but not defined: -cache-everything"},
		{"stray argument", []string{"-upstream", "http://example.com", "extra"}, nil, `unexpected argument "extra"`},
		{"bad environment value", nil, map[string]string{"FLEETCACHE_UPSTREAM": "http://example.com", "FLEETCACHE_MAX_ENTRIES": "lots"}, "FLEETCACHE_MAX_ENTRIES"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), tt.args, envOf(tt.env), &stdout, &stderr)
			if code != exitConfig {
				t.Errorf("exit code %d, want %d", code, exitConfig)
			}
			msg := stderr.String()
			if !strings.HasPrefix(msg, "fleetcache: ") || strings.Count(msg, "\n") != 1 || !strings.Contains(msg, tt.want) {
				t.Errorf("stderr %q, want one line starting with \"fleetcache: \" and mentioning %q", msg, tt.want)
			}
		})
	}
}

func TestRun_Version(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"-version"}, noEnv, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit code %d, stderr %q", code, stderr.String())
	}
	if !strings.HasPrefix(stdout.String(), "fleetcache ") {
		t.Errorf("stdout %q, want \"fleetcache <version>\"", stdout.String())
	}
}

func TestRun_HelpListsFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"-h"}, noEnv, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit code %d", code)
	}
	for _, f := range []string{"-upstream", "-redis", "-health-path", "FLEETCACHE_"} {
		if !strings.Contains(stderr.String(), f) {
			t.Errorf("usage does not mention %s:\n%s", f, stderr.String())
		}
	}
}

func TestParseConfig_FlagWinsOverEnvironment(t *testing.T) {
	env := envOf(map[string]string{
		"FLEETCACHE_LISTEN":          "127.0.0.1:1111",
		"FLEETCACHE_UPSTREAM":        "http://from-env",
		"FLEETCACHE_PRIVATE":         "true",
		"FLEETCACHE_MAX_ENTRY_BYTES": "1024",
		"FLEETCACHE_NEAR_BYTES":      "65536",
		"FLEETCACHE_LOG_LEVEL":       "debug",
		"FLEETCACHE_VERSION":         "v9.9.9", // set by build systems; never read

		"FLEETCACHE_MAX_BUFFERED_BYTES":    "4096",
		"FLEETCACHE_PASS_OVERRIDE_HEADERS": "1",
		"FLEETCACHE_READ_HEADER_TIMEOUT":   "1s",
		"FLEETCACHE_READ_TIMEOUT":          "2s",
		"FLEETCACHE_IDLE_TIMEOUT":          "3s",
		"FLEETCACHE_WRITE_TIMEOUT":         "4s",
		"FLEETCACHE_RESPONSE_TIMEOUT":      "5s",
	})
	cfg, level, showVersion, err := parseConfig([]string{"-listen", "127.0.0.1:2222", "-write-timeout", "40s"}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:2222" || cfg.Upstream != "http://from-env" || !cfg.Private ||
		cfg.MaxEntryBytes != 1024 || cfg.NearBytes != 65536 || level.String() != "DEBUG" || showVersion ||
		cfg.MaxBufferedBytes != 4096 || !cfg.PassOverrideHeaders ||
		cfg.ReadHeaderTimeout != time.Second || cfg.ReadTimeout != 2*time.Second || cfg.IdleTimeout != 3*time.Second ||
		cfg.WriteTimeout != 40*time.Second || cfg.ResponseTimeout != 5*time.Second {
		t.Errorf("got %+v level %v version %v", cfg, level, showVersion)
	}
}

func TestParseConfig_PurgeAndTags(t *testing.T) {
	env := envOf(map[string]string{"FLEETCACHE_ADMIN_TOKEN": "from-env", "FLEETCACHE_TAG_FIELDS": "X-Tags, Cache-Tag,", "FLEETCACHE_STRIP_TAGS": "true"})
	cfg, _, _, err := parseConfig(nil, env, io.Discard)
	if err != nil || cfg.AdminToken != "from-env" || !slices.Equal(cfg.TagFields, []string{"X-Tags", "Cache-Tag"}) || !cfg.StripTags {
		t.Errorf("got %+v, %v", cfg, err)
	}
	cfg, _, _, err = parseConfig([]string{"-admin-token", "from-flag"}, env, io.Discard)
	if err != nil || cfg.AdminToken != "from-flag" {
		t.Errorf("got %q, %v", cfg.AdminToken, err)
	}
	cfg, _, _, err = parseConfig(nil, noEnv, io.Discard)
	if err != nil || cfg.AdminToken != "" || cfg.TagFields != nil || cfg.StripTags {
		t.Errorf("defaults: %+v, %v", cfg, err)
	}
}

// With neither flags nor environment, the timeouts are the proxy's
// defaults, which the usage shows.
func TestParseConfig_TimeoutDefaults(t *testing.T) {
	cfg, _, _, err := parseConfig(nil, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ReadHeaderTimeout != proxy.DefaultReadHeaderTimeout || cfg.ReadTimeout != proxy.DefaultReadTimeout ||
		cfg.IdleTimeout != proxy.DefaultIdleTimeout || cfg.WriteTimeout != proxy.DefaultWriteTimeout ||
		cfg.ResponseTimeout != proxy.DefaultResponseTimeout {
		t.Errorf("got %+v", cfg)
	}
}

// startRun runs the command in process until the returned stop is called,
// and returns the address it listens on.
func startRun(t *testing.T, args ...string) (addr string, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, append([]string{"-listen", "127.0.0.1:0"}, args...), noEnv, io.Discard, pw)
		pw.Close()
	}()
	fields, logged, err := waitListening(t, pr)
	stop = func() int {
		cancel()
		c := <-code
		<-logged
		return c
	}
	if err != nil {
		stop()
		t.Fatal(err)
	}
	return fields["listen"], stop
}

var logField = regexp.MustCompile(`(\w+)=("[^"]*"|\S+)`)

// waitListening reads log lines until the startup line and returns its
// fields. It copies r to the test log in the background until r ends, and
// then closes done; the caller must wait for done before the test ends.
func waitListening(t *testing.T, r io.Reader) (fields map[string]string, done <-chan struct{}, err error) {
	t.Helper()
	lines := make(chan string, 1)
	eof := make(chan struct{})
	go func() {
		defer close(eof)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			t.Log(sc.Text())
			if strings.Contains(sc.Text(), "fleetcache proxy listening") {
				lines <- sc.Text()
			}
		}
		io.Copy(io.Discard, r) // a line too long for the scanner must not block the writer
		close(lines)
	}()
	select {
	case line, ok := <-lines:
		if !ok {
			return nil, eof, errors.New("the command exited without logging that it listens")
		}
		fields = map[string]string{}
		for _, m := range logField.FindAllStringSubmatch(line, -1) {
			fields[m[1]] = strings.Trim(m[2], `"`)
		}
		return fields, eof, nil
	case <-time.After(30 * time.Second):
		return nil, eof, errors.New("no startup line within 30s")
	}
}

func newOrigin(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "hello from the origin")
	}))
	t.Cleanup(o.Close)
	return o, &n
}

func cacheStatus(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); string(b) != "hello from the origin" {
		t.Errorf("GET %s: body %q", url, b)
	}
	return resp.Header.Get("Cache-Status")
}

func TestRun_ServesThenShutsDownCleanly(t *testing.T) {
	o, n := newOrigin(t)
	addr, stop := startRun(t, "-upstream", o.URL, "-log-level", "debug")
	cacheStatus(t, "http://"+addr+"/")
	if cs := cacheStatus(t, "http://"+addr+"/"); !strings.Contains(cs, "; hit") {
		t.Errorf("second GET: Cache-Status %q, want a hit", cs)
	}
	if n.Load() != 1 {
		t.Errorf("origin saw %d requests, want 1", n.Load())
	}
	if code := stop(); code != exitOK {
		t.Errorf("exit code %d after cancellation, want 0", code)
	}
}

func TestRun_ListenFailureExits1(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var stderr bytes.Buffer
	code := run(t.Context(), []string{"-upstream", "http://example.com", "-listen", ln.Addr().String()}, noEnv, io.Discard, &stderr)
	if code != exitFailure || !strings.Contains(stderr.String(), "listening on") {
		t.Errorf("exit code %d, stderr %q; want 1 and the listen error", code, stderr.String())
	}
}

// buildBinary compiles the command once per test binary.
func buildBinary(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH")
	}
	bin := filepath.Join(t.TempDir(), "fleetcache")
	out, err := exec.Command(gobin, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestBinary runs the real executable: exit status and message for a bad
// flag, then two processes sharing the first one's embedded Redis, then a
// SIGTERM.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the command")
	}
	bin := buildBinary(t)

	t.Run("bad flag", func(t *testing.T) {
		cmd := exec.Command(bin, "-upstream", "http://example.com", "-max-entries", "-5")
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 {
			t.Fatalf("err %v, want exit status 2", err)
		}
		if want := "fleetcache: invalid configuration: max entries -5 is negative\n"; string(out) != want {
			t.Errorf("output %q, want %q", out, want)
		}
	})

	t.Run("two processes share one cache", func(t *testing.T) {
		o, n := newOrigin(t)
		// The two listen on different ports, so their clients' Host
		// differs: -upstream-host keys both by the upstream's host.
		first := startBinary(t, bin, "-upstream", o.URL, "-upstream-host")
		second := startBinary(t, bin, "-upstream", o.URL, "-upstream-host", "-redis", first["redis"])
		if first["embedded_redis"] != "true" || second["embedded_redis"] != "false" {
			t.Fatalf("startup lines: first %v, second %v", first, second)
		}
		if cs := cacheStatus(t, "http://"+first["listen"]+"/shared"); strings.Contains(cs, "; hit") {
			t.Errorf("first process: Cache-Status %q, want a miss", cs)
		}
		if cs := cacheStatus(t, "http://"+second["listen"]+"/shared"); !strings.Contains(cs, "; hit") {
			t.Errorf("second process: Cache-Status %q, want a hit", cs)
		}
		if n.Load() != 1 {
			t.Errorf("origin saw %d requests, want 1", n.Load())
		}
	})
}

// startBinary starts the command and returns the fields of its startup
// line. At cleanup it sends SIGTERM and expects a clean exit.
func startBinary(t *testing.T, bin string, args ...string) map[string]string {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"-listen", "127.0.0.1:0"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	fields, logged, err := waitListening(t, stderr)
	if err != nil {
		cmd.Process.Kill()
		<-logged // the log pipe must be drained before Wait closes it
		cmd.Wait()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-logged
		if err := cmd.Wait(); err != nil {
			t.Errorf("after SIGTERM: %v, want exit status 0", err)
		}
	})
	return fields
}

// go-redis's own lines (a failed dial) go through the log, at debug level,
// instead of straight to stderr; a request gets one debug line, the proxy's.
func TestRun_GoRedisLinesGoThroughTheLog(t *testing.T) {
	port, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	o, _ := newOrigin(t)
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"-listen", "127.0.0.1:0", "-upstream", o.URL, "-redis", "redis://127.0.0.1:" + strconv.Itoa(port), "-log-level", "debug"}, noEnv, io.Discard, pw)
		pw.Close()
	}()
	var mu sync.Mutex
	var lines []string
	listening := make(chan string, 1)
	eof := make(chan struct{})
	go func() {
		defer close(eof)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			t.Log(sc.Text())
			mu.Lock()
			lines = append(lines, sc.Text())
			mu.Unlock()
			if strings.Contains(sc.Text(), "fleetcache proxy listening") {
				listening <- sc.Text()
			}
		}
		io.Copy(io.Discard, pr)
	}()
	defer func() {
		cancel()
		<-code
		<-eof
	}()
	var addr string
	select {
	case line := <-listening:
		addr = logField.FindStringSubmatch(line[strings.Index(line, "listen="):])[2]
	case <-time.After(30 * time.Second):
		t.Fatal("no startup line within 30s")
	}
	cacheStatus(t, "http://"+addr+"/page")

	count := func(substr string) (n int, first string) {
		mu.Lock()
		defer mu.Unlock()
		for _, l := range lines {
			if strings.Contains(l, substr) {
				if n == 0 {
					first = l
				}
				n++
			}
		}
		return n, first
	}
	logged := func(substr string) string {
		deadline := time.Now().Add(30 * time.Second)
		for {
			if n, line := count(substr); n > 0 {
				return line
			}
			if time.Now().After(deadline) {
				t.Fatalf("no line with %s in the log", substr)
			}
			time.Sleep(10 * time.Millisecond) // polling interval
		}
	}
	if line := logged("logger=go-redis"); !strings.Contains(line, "level=DEBUG") || !strings.Contains(line, "failed to dial") {
		t.Errorf("go-redis line %q, want a debug line about the dial", line)
	}
	logged("uri=/page")
	if n, _ := count("uri=/page"); n != 1 {
		t.Errorf("%d debug lines for the request, want the proxy's one", n)
	}
	if n, _ := count(`msg="fleetcache: request"`); n != 0 {
		t.Errorf("the Transport wrote %d lines of its own per request", n)
	}
}
