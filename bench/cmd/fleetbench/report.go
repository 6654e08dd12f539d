package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
)

// result is one row of the table and of the JSON report.
type result struct {
	Scenario       string  `json:"scenario"`
	Impl           string  `json:"impl"`
	Body           int     `json:"body_bytes"`
	Goroutines     int     `json:"goroutines_per_process"`
	Processes      int     `json:"processes"`
	URLs           int     `json:"urls,omitempty"`
	Rate           int     `json:"rate_per_process,omitempty"`
	Seconds        float64 `json:"seconds"`
	Requests       int64   `json:"requests"`
	Errors         int64   `json:"errors"`
	FirstError     string  `json:"first_error,omitempty"`
	ReqPerSec      float64 `json:"req_per_s"`
	P50us          float64 `json:"p50_us"`
	P90us          float64 `json:"p90_us"`
	P99us          float64 `json:"p99_us"`
	OriginRequests int64   `json:"origin_requests"`
	OriginPerSec   float64 `json:"origin_per_s,omitempty"`
	// Allocations are measured in the benchmark's own process, so they are
	// absent for the scenarios that run in worker processes.
	AllocsPerReq *float64 `json:"allocs_per_req,omitempty"`
	BytesPerReq  *float64 `json:"bytes_per_req,omitempty"`
	// Ratios of req/s to the faster floor (floor or floor-redigo), to
	// httpcache and to httpcache-pool measured in the same scenario, and
	// the allocations per request above the faster floor's.
	XFloor                   float64  `json:"x_floor,omitempty"`
	FasterFloor              string   `json:"faster_floor,omitempty"`
	XHTTPCache               float64  `json:"x_httpcache,omitempty"`
	XPool                    float64  `json:"x_httpcache_pool,omitempty"`
	AllocsAboveFloor         *float64 `json:"allocs_above_floor,omitempty"`
	P99AboveDirectUs         *float64 `json:"p99_above_direct_us,omitempty"`
	Unavailable              string   `json:"unavailable,omitempty"`
	stampede, redisDn, fleet bool
}

func newResult(sc scenario, im impl, m *measured) result {
	res := result{
		Scenario: sc.Name, Impl: im.name, Body: sc.Body, Goroutines: sc.Goroutines, Processes: sc.Procs, URLs: sc.URLs, Rate: sc.Rate,
		Seconds: m.elapsed.Seconds(), Requests: m.Requests, Errors: m.Errors, FirstError: m.FirstErr,
		P50us: us(m.Hist.quantile(0.50)), P90us: us(m.Hist.quantile(0.90)), P99us: us(m.Hist.quantile(0.99)),
		OriginRequests: m.origin,
		stampede:       sc.kind == kindStampede, redisDn: sc.kind == kindDown, fleet: sc.kind == kindFleet,
	}
	if m.elapsed > 0 {
		res.ReqPerSec = float64(m.Requests) / m.elapsed.Seconds()
		if res.fleet {
			res.OriginPerSec = float64(m.origin) / m.elapsed.Seconds()
		}
	}
	if m.allocsKnown && m.Requests > 0 {
		a, b := float64(m.mallocs)/float64(m.Requests), float64(m.bytes)/float64(m.Requests)
		res.AllocsPerReq, res.BytesPerReq = &a, &b
	}
	return res
}

func us(ns int64) float64 { return float64(ns) / 1e3 }

// compare fills the ratios of the rows of one scenario.
func compare(rows []result) {
	find := func(name string) *result {
		for i := range rows {
			if rows[i].Impl == name && rows[i].Unavailable == "" && rows[i].Requests > 0 {
				return &rows[i]
			}
		}
		return nil
	}
	fl, hc, pool, direct := find("floor"), find("httpcache"), find("httpcache-pool"), find("direct")
	if fr := find("floor-redigo"); fr != nil && (fl == nil || fr.ReqPerSec > fl.ReqPerSec) {
		fl = fr
	}
	ratio := func(r, to *result) float64 {
		if to == nil || to.ReqPerSec <= 0 {
			return 0
		}
		return r.ReqPerSec / to.ReqPerSec
	}
	for i := range rows {
		r := &rows[i]
		if r.Unavailable != "" {
			continue
		}
		if !r.stampede {
			r.XFloor, r.XHTTPCache, r.XPool = ratio(r, fl), ratio(r, hc), ratio(r, pool)
			if fl != nil {
				r.FasterFloor = fl.Impl
			}
		}
		if !r.stampede && fl != nil && fl.AllocsPerReq != nil && r.AllocsPerReq != nil {
			d := *r.AllocsPerReq - *fl.AllocsPerReq
			r.AllocsAboveFloor = &d
		}
		if r.redisDn && direct != nil && r != direct {
			d := r.P99us - direct.P99us
			r.P99AboveDirectUs = &d
		}
	}
}

// machine describes where the figures were measured.
type machine struct {
	CPUs         int    `json:"cpus"`
	GOMAXPROCS   int    `json:"gomaxprocs"`
	CPUModel     string `json:"cpu_model"`
	OS           string `json:"os"`
	GoVersion    string `json:"go_version"`
	RedisVersion string `json:"redis_version"`
}

func describeMachine(ctx context.Context, redisURL string) machine {
	m := machine{
		CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		CPUModel: cpuModel(), OS: runtime.GOOS + "/" + runtime.GOARCH, GoVersion: runtime.Version(),
	}
	if rdb, err := newGoRedis(redisURL); err == nil {
		defer rdb.Close()
		if info, err := rdb.InfoMap(ctx, "server").Result(); err == nil {
			m.RedisVersion = info["Server"]["redis_version"]
		}
	}
	return m
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// printTable writes the rows as an aligned Markdown table, so that the
// output pastes into docs/benchmarks.md as it is.
func printTable(w io.Writer, m machine, rows []result) error {
	fmt.Fprintf(w, "machine: %d CPUs (GOMAXPROCS %d), %s, %s, %s, redis-server %s\n\n",
		m.CPUs, m.GOMAXPROCS, m.CPUModel, m.OS, m.GoVersion, m.RedisVersion)
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	line := func(cells ...string) {
		for _, c := range cells {
			fmt.Fprint(tw, "| ", c, "\t")
		}
		fmt.Fprintln(tw, "|")
	}
	header := []string{"scenario", "impl", "G×P", "req/s", "p50", "p90", "p99", "origin", "allocs/req", "B/req", "×floor", "×httpcache", "×pool", "allocs−floor", "note"}
	line(header...)
	sep := make([]string, len(header))
	for i := range sep {
		sep[i] = "---"
	}
	line(sep...)
	for _, r := range rows {
		gp := fmt.Sprintf("%d×%d", r.Goroutines, r.Processes)
		if r.fleet {
			gp = fmt.Sprintf("%d/s×%d", r.Rate, r.Processes)
		}
		if r.Unavailable != "" {
			line(r.Scenario, r.Impl, gp, "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", r.Unavailable)
			continue
		}
		rps := fmt.Sprintf("%.0f", r.ReqPerSec)
		if r.stampede {
			rps = "-"
		}
		line(r.Scenario, r.Impl, gp, rps,
			fmtUs(r.P50us), fmtUs(r.P90us), fmtUs(r.P99us), strconv.FormatInt(r.OriginRequests, 10),
			fmtPtr(r.AllocsPerReq, "%.1f"), fmtBytes(r.BytesPerReq),
			fmtRatio(r.XFloor), fmtRatio(r.XHTTPCache), fmtRatio(r.XPool), fmtPtr(r.AllocsAboveFloor, "%+.1f"), note(r))
	}
	return tw.Flush()
}

func note(r result) string {
	var parts []string
	if r.Impl == r.FasterFloor {
		parts = append(parts, "the faster floor")
	}
	if r.stampede {
		parts = append(parts, fmt.Sprintf("%d of %d reached the origin", r.OriginRequests, r.Requests))
	}
	if r.fleet {
		parts = append(parts, fmt.Sprintf("origin %.0f req/s", r.OriginPerSec))
	}
	if r.P99AboveDirectUs != nil {
		parts = append(parts, "p99 "+fmtSignedUs(*r.P99AboveDirectUs)+" vs direct")
	}
	if r.Errors > 0 {
		parts = append(parts, fmt.Sprintf("%d errors, first: %.80s", r.Errors, strings.ReplaceAll(r.FirstError, "|", "/")))
	}
	return strings.Join(parts, "; ")
}

func fmtUs(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fs", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.2fms", v/1e3)
	default:
		return fmt.Sprintf("%.0fµs", v)
	}
}

func fmtSignedUs(v float64) string {
	if v < 0 {
		return "-" + fmtUs(-v)
	}
	return "+" + fmtUs(v)
}

func fmtRatio(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", v)
}

func fmtPtr(v *float64, format string) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf(format, *v)
}

func fmtBytes(v *float64) string {
	switch {
	case v == nil:
		return "-"
	case *v >= 1<<20:
		return fmt.Sprintf("%.1fM", *v/(1<<20))
	case *v >= 1<<10:
		return fmt.Sprintf("%.1fk", *v/(1<<10))
	default:
		return fmt.Sprintf("%.0f", *v)
	}
}
