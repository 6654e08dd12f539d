package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for the program when the fleet
// scenario starts worker processes from its own executable.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == workerFlag {
		if err := workerMain(os.Stdin, os.Stdout); err != nil {
			os.Stderr.WriteString("fleetbench worker: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestQuick runs every scenario and implementation for a fraction of a second
// and checks that each produced a row without errors: the harness works,
// whatever the figures.
func TestQuick(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		msg := "redis-server is not installed (Debian: apt-get install redis-server)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out := filepath.Join(t.TempDir(), "bench.json")
	var stdout, stderr strings.Builder
	if err := run(ctx, []string{"-quick", "-json", out}, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var report struct {
		Machine machine
		Results []result
	}
	if err := json.Unmarshal(b, &report); err != nil {
		t.Fatal(err)
	}
	if report.Machine.CPUs == 0 || report.Machine.RedisVersion == "" {
		t.Errorf("machine description incomplete: %+v", report.Machine)
	}
	want := 0
	for _, sc := range scenarios(quickConfig(config{procs: 4})) {
		n := len(sc.impls)
		if n == 0 {
			for _, im := range impls {
				if !im.named {
					n++
				}
			}
		}
		want += n
	}
	if len(report.Results) != want {
		t.Errorf("%d rows, want %d (every scenario × implementation)", len(report.Results), want)
	}
	for _, r := range report.Results {
		switch {
		case r.Unavailable != "":
			t.Errorf("%s/%s: unavailable: %s", r.Scenario, r.Impl, r.Unavailable)
		case r.Requests == 0:
			t.Errorf("%s/%s: no requests", r.Scenario, r.Impl)
		case r.Errors > 0:
			t.Errorf("%s/%s: %d errors, first: %s", r.Scenario, r.Impl, r.Errors, r.FirstError)
		}
	}
	if t.Failed() {
		t.Logf("table:\n%s", stdout.String())
	}
}

func TestHistQuantile(t *testing.T) {
	var h hist
	for i := int64(1); i <= 1000; i++ {
		h.record(i * 1000) // 1µs .. 1ms
	}
	for _, c := range []struct {
		q    float64
		want int64
	}{{0.5, 500_000}, {0.9, 900_000}, {0.99, 990_000}} {
		got := h.quantile(c.q)
		if d := float64(got-c.want) / float64(c.want); d > 0.04 || d < -0.04 {
			t.Errorf("quantile(%v) = %d, want %d within 4%%", c.q, got, c.want)
		}
	}
	var empty hist
	if got := empty.quantile(0.99); got != 0 {
		t.Errorf("empty quantile = %d, want 0", got)
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-dist", "pareto"}, {"-impl", "varnish"}, {"-k", "1"}, {"extra"}} {
		if err := run(context.Background(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("run(%q) succeeded, want an error", args)
		}
	}
}
