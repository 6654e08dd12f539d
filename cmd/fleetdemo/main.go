// Command fleetdemo shows a fleet sharing one cache, with nothing installed
// but Go: it starts a small origin, three fleetcache proxies sharing one
// embedded Redis, sends a burst of traffic through them, and prints what
// each proxy and the origin did. `make demo` runs it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/fleetcache/fleetcache/internal/proxy"
	"github.com/fleetcache/fleetcache/roundtrip"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Stdout, os.Stderr, burst{proxies: 3, clients: 24, requests: 60})
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleetdemo:", err)
		os.Exit(1)
	}
}

// burst is the traffic the demo sends: each client is one instance of a
// service talking to its own sidecar (client i uses proxy i mod proxies),
// and sends requests requests, the first of them all at the same moment.
type burst struct {
	proxies, clients, requests int
}

// The origin's resources, one per caching behaviour worth watching.
const (
	products  = 50                     // /products/N: max-age, zipf-popular
	slowDelay = 300 * time.Millisecond // /report takes this long to compute
)

var languages = []string{"en", "fr", "de", "es"}

// origin serves the demo's resources and counts what reaches it.
type origin struct {
	requests    atomic.Int64
	notModified atomic.Int64
	reports     atomic.Int64
}

func (o *origin) handler() http.Handler {
	mux := http.NewServeMux()
	// Fresh for five minutes: after the first request, the fleet serves it.
	mux.HandleFunc("GET /products/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		fmt.Fprintf(w, "product %s\n", r.PathValue("id"))
	})
	// Stored but revalidated on every use; the ETag makes that a cheap 304.
	mux.HandleFunc("GET /account", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("ETag", `"account-v7"`)
		if r.Header.Get("If-None-Match") == `"account-v7"` {
			o.notModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, "account\n")
	})
	// One stored variant per language.
	mux.HandleFunc("GET /greeting", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprintf(w, "greeting (%s)\n", r.Header.Get("Accept-Language"))
	})
	// Slow to compute, and everybody asks for it at once.
	mux.HandleFunc("GET /report", func(w http.ResponseWriter, r *http.Request) {
		o.reports.Add(1)
		select {
		case <-time.After(slowDelay):
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Cache-Control", "max-age=300")
		io.WriteString(w, "report\n")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.requests.Add(1)
		mux.ServeHTTP(w, r)
	})
}

// run starts the origin and the proxies, sends b through them, writes the
// report to out and stops everything. Proxies log warnings to logs.
func run(ctx context.Context, out, logs io.Writer, b burst) (err error) {
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))

	var o origin
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	originSrv := &http.Server{Handler: o.handler(), ReadHeaderTimeout: 10 * time.Second}
	go originSrv.Serve(ln)
	defer originSrv.Close()

	// The first proxy starts the embedded Redis; the others share it, as a
	// second `fleetcache -redis redis://127.0.0.1:PORT` would.
	proxies := make([]*proxy.Server, 0, b.proxies)
	defer func() {
		// The first proxy owns the embedded Redis: stop it last.
		for i := len(proxies) - 1; i >= 0; i-- {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err = errors.Join(err, proxies[i].Shutdown(sctx))
			cancel()
		}
	}()
	cfg := proxy.Config{Upstream: "http://" + ln.Addr().String(), Listen: "127.0.0.1:0", Logger: log}
	for range b.proxies {
		p, err := proxy.Start(ctx, cfg)
		if err != nil {
			return err
		}
		proxies = append(proxies, p)
		cfg.Redis = proxies[0].RedisURL()
	}

	start := time.Now()
	sent, err := send(ctx, proxies, b)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)

	stats := make([]roundtrip.Stats, len(proxies))
	for i, p := range proxies {
		stats[i] = p.Stats()
	}
	report(out, proxies[0].RedisURL(), b, sent, stats, &o, elapsed)
	return nil
}

// send runs the clients and returns how many requests went to each proxy.
// A client that gets a wrong answer (a status other than 200, or another
// resource's or another language's body) fails the demo.
func send(ctx context.Context, proxies []*proxy.Server, b burst) ([]int64, error) {
	client := &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: b.clients},
		Timeout:   10 * time.Second,
	}
	defer client.CloseIdleConnections()

	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		errs    []error
		herd    = make(chan struct{}) // closed once every client is started
		counted = make([]atomic.Int64, len(proxies))
	)
	for c := range b.clients {
		wg.Go(func() {
			p := c % len(proxies)
			base := "http://" + proxies[p].Addr()
			rng := rand.New(rand.NewPCG(1, uint64(c)))
			zipf := rand.NewZipf(rng, 1.2, 1, products-1)
			<-herd
			for i := range b.requests {
				path, lang := "/report", ""
				if i > 0 {
					path, lang = pick(rng, zipf)
				}
				counted[p].Add(1)
				if err := fetch(ctx, client, base, path, lang); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	close(herd)
	wg.Wait()
	sent := make([]int64, len(proxies))
	for i := range counted {
		sent[i] = counted[i].Load()
	}
	return sent, errors.Join(errs...)
}

// pick draws the next request: mostly products, by popularity, then the
// page that varies by language, the revalidated one and the slow report.
func pick(rng *rand.Rand, zipf *rand.Zipf) (path, lang string) {
	switch n := rng.IntN(100); {
	case n < 70:
		return fmt.Sprintf("/products/%d", zipf.Uint64()+1), ""
	case n < 85:
		return "/greeting", languages[rng.IntN(len(languages))]
	case n < 95:
		return "/account", ""
	default:
		return "/report", ""
	}
}

func fetch(ctx context.Context, client *http.Client, base, path, lang string) error {
	url := base + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	// Each instance reaches its own sidecar as localhost:8080, as in a
	// fleet where every sidecar listens on the same port; the Host is part
	// of the cache key.
	req.Host = "localhost:8080"
	if lang != "" {
		req.Header.Set("Accept-Language", lang)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	want := expectedBody(path, lang)
	if resp.StatusCode != http.StatusOK || string(body) != want {
		return fmt.Errorf("GET %s (Accept-Language %q): %d %q, want 200 %q", url, lang, resp.StatusCode, body, want)
	}
	return nil
}

// expectedBody is what the origin answers for path, so that a response
// served for the wrong URL or the wrong variant shows up as an error.
func expectedBody(path, lang string) string {
	switch {
	case strings.HasPrefix(path, "/products/"):
		return "product " + strings.TrimPrefix(path, "/products/") + "\n"
	case path == "/greeting":
		return "greeting (" + lang + ")\n"
	default:
		return strings.TrimPrefix(path, "/") + "\n"
	}
}

func report(out io.Writer, redisURL string, b burst, sent []int64, stats []roundtrip.Stats, o *origin, elapsed time.Duration) {
	var total int64
	var sum roundtrip.Stats
	for i := range stats {
		total += sent[i]
		sum.Hits += stats[i].Hits
		sum.Misses += stats[i].Misses
		sum.Coalesced += stats[i].Coalesced
		sum.Revalidations += stats[i].Revalidations
		sum.NotModified += stats[i].NotModified
	}
	fmt.Fprintf(out, "fleetcache demo: %d proxies sharing one embedded Redis (%s)\n", len(stats), redisURL)
	fmt.Fprintf(out, "%d clients sent %d requests in %v: popular products, a page that varies on\n", b.clients, total, elapsed.Round(time.Millisecond))
	fmt.Fprintf(out, "Accept-Language, a no-cache page with an ETag, and a slow report everyone asks for at once.\n\n")

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\trequests\thits\tmisses\tcoalesced\trevalidations\t304s\thit ratio\t")
	row := func(name string, n int64, s roundtrip.Stats) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", name, n, s.Hits, s.Misses, s.Coalesced, s.Revalidations, s.NotModified, ratio(s.Hits, n))
	}
	for i, s := range stats {
		row(fmt.Sprintf("proxy %d", i+1), sent[i], s)
	}
	row("fleet", total, sum)
	tw.Flush()

	fmt.Fprintln(out, "\nrequests = hits + misses + revalidations. hits: answered from the shared cache;")
	fmt.Fprintln(out, "misses: nothing usable stored; revalidations: stored but stale, checked with the origin;")
	fmt.Fprintln(out, "coalesced: misses and revalidations served by the same fetch of another request,")
	fmt.Fprintln(out, "in this proxy or another.")
	fmt.Fprintf(out, "\norigin: %d requests for %d client requests (%d answered 304 Not Modified)\n", o.requests.Load(), total, o.notModified.Load())
	fmt.Fprintf(out, "slow /report: %d clients asked at the same moment; the origin computed it %d time(s)\n", b.clients, o.reports.Load())
}

func ratio(part, whole int64) string {
	if whole == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(part)/float64(whole))
}
