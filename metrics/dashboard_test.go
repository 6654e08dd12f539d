package metrics_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetcache/fleetcache/metrics"
)

// exported returns the names of the metrics a Collector exports, with the
// series names of its histograms.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	ch := make(chan *prometheus.Desc, 64)
	metrics.New(nil, metrics.Options{}).Describe(ch)
	close(ch)
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	names := make(map[string]bool)
	for d := range ch {
		m := fqName.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("no name in %s", d)
		}
		names[m[1]] = true
		if strings.HasSuffix(m[1], "_seconds") {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				names[m[1]+suffix] = true
			}
		}
	}
	return names
}

// exprs returns every "expr" in a Grafana dashboard, wherever it stands.
func exprs(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "expr" {
				out = append(out, s)
			} else {
				out = append(out, exprs(x)...)
			}
		}
	case []any:
		for _, x := range v {
			out = append(out, exprs(x)...)
		}
	}
	return out
}

func TestDashboard_EveryQueryNamesAnExportedMetric(t *testing.T) {
	raw, err := os.ReadFile("../docs/grafana/fleetcache.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	names := exported(t)
	queries := exprs(dash)
	if len(queries) < 10 {
		t.Fatalf("%d queries in the dashboard", len(queries))
	}
	metric := regexp.MustCompile(`\b[a-z_]+_[a-z_]+\b`)
	used := make(map[string]bool)
	for _, q := range queries {
		found := 0
		for _, name := range metric.FindAllString(q, -1) {
			if !strings.HasPrefix(name, "fleetcache_") {
				continue // a function or label name: histogram_quantile, label_values
			}
			found++
			used[name] = true
			if !names[name] {
				t.Errorf("query %q names %s, which the collector does not export", q, name)
			}
		}
		if found == 0 {
			t.Errorf("query %q names no fleetcache metric", q)
		}
	}
	// The dashboard shows the metrics an operator needs: request outcomes,
	// the origin, the store, the breaker and memory.
	for _, want := range []string{"fleetcache_requests_total", "fleetcache_request_duration_seconds_bucket", "fleetcache_origin_requests_total",
		"fleetcache_store_errors_total", "fleetcache_breaker_open", "fleetcache_store_bytes", "fleetcache_buffered_bytes"} {
		if !used[want] {
			t.Errorf("the dashboard does not show %s", want)
		}
	}
}
