package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fleetcache/fleetcache/metrics"
	"github.com/fleetcache/fleetcache/rediscache"
	"github.com/fleetcache/fleetcache/roundtrip"
)

// DefaultAdminPath is where the proxy answers for itself unless
// Config.AdminPath says otherwise: PATH/health, PATH/stats, PATH/metrics.
const DefaultAdminPath = "/.fleetcache"

// admin answers the proxy's own paths: every path under its root, and the
// health path of Config.HealthPath with its /stats. Requests for them never
// reach the upstream.
type admin struct {
	root    string // "/.fleetcache": no trailing slash
	health  string // Config.HealthPath, "" when not set
	stats   func(w http.ResponseWriter, r *http.Request)
	metrics http.Handler
	purge   *purger
}

// checkAdminPath returns the admin root for a configured path: it starts
// with / and is not / itself, which would leave nothing to proxy.
func checkAdminPath(p string) (string, error) {
	root := strings.TrimRight(p, "/")
	if !strings.HasPrefix(p, "/") || root == "" {
		return "", fmt.Errorf("%w: admin path %q: want a path such as %s, not /", ErrConfig, p, DefaultAdminPath)
	}
	return root, nil
}

// newAdmin builds the admin paths of s: a metrics registry of its own
// (no global state) with the Go runtime's and the process's collectors.
func (s *Server) newAdmin(root, health string, m *metrics.Collector) *admin {
	reg := prometheus.NewRegistry()
	reg.MustRegister(m, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &admin{
		root:    root,
		health:  health,
		stats:   s.serveStats,
		metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slogPrinter{s}}),
	}
}

// owns reports whether path is one of the proxy's own.
func (a *admin) owns(path string) bool {
	return path == a.root || strings.HasPrefix(path, a.root+"/") ||
		a.health != "" && (path == a.health || path == a.health+"/stats")
}

func (a *admin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == MethodPurge:
		a.purge.serveMethod(w, r)
		return
	case r.URL.Path == a.root+"/purge":
		a.purge.serveAPI(w, r)
		return
	case !allowRead(w, r):
		return
	}
	switch p := r.URL.Path; {
	case p == a.root+"/health", a.health != "" && p == a.health:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintln(w, "ok")
	case p == a.root+"/stats", p == a.root+"/health/stats", a.health != "" && p == a.health+"/stats":
		// <root>/health/stats is where stats lived before the admin path.
		a.stats(w, r)
	case p == a.root+"/metrics":
		a.metrics.ServeHTTP(w, r)
	default:
		w.Header().Set("Cache-Control", "no-store")
		http.NotFound(w, r)
	}
}

// slogPrinter lets promhttp report a failed scrape in the proxy's log.
type slogPrinter struct{ s *Server }

func (p slogPrinter) Println(v ...any) { p.s.log.Warn("metrics", "err", fmt.Sprint(v...)) }

// statsDoc is the JSON of the stats path.
type statsDoc struct {
	Transport  roundtrip.Stats   `json:"transport"`
	Store      *rediscache.Stats `json:"store,omitempty"`
	StoreError string            `json:"store_error,omitempty"`
}

func (s *Server) serveStats(w http.ResponseWriter, r *http.Request) {
	doc := statsDoc{Transport: s.rt.Stats()}
	ctx, cancel := context.WithTimeout(r.Context(), statsTimeout)
	defer cancel()
	if st, err := s.store.Stats(ctx); err != nil {
		doc.StoreError = err.Error()
	} else {
		doc.Store = &st
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		s.log.Debug("writing stats", "err", err)
	}
}
