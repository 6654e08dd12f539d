package main

import (
	"context"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

type kind int

const (
	// kindLoad drives goroutines over warm URLs (and, with a miss ratio,
	// over URLs never seen before) for a fixed time.
	kindLoad kind = iota
	// kindStampede sends one request per goroutine, all at once, for one
	// cold URL whose origin is slow; the figure is how many reach the origin.
	kindStampede
	// kindDown is kindLoad with Redis refusing connections.
	kindDown
	// kindFleet is a fleet of worker processes, each with its own instance
	// of the implementation, sending requests back to back over many URLs
	// of a slow origin, from cold: what a fleet sees of its origin.
	kindFleet
)

// scenario is one row group of the table.
type scenario struct {
	Name       string
	kind       kind
	Body       int           // response body bytes
	Goroutines int           // per process
	Procs      int           // OS processes (stampede only; 1 otherwise)
	MissRatio  float64       // fraction of requests for URLs never seen before
	Delay      time.Duration // origin latency
	URLs       int           // fleet only: distinct URLs, chosen with a zipf distribution
	Rate       int           // fleet only: requests a second per process
	impls      []string      // nil: every implementation
}

// config is what the flags set.
type config struct {
	duration, warmup time.Duration
	rounds           int
	urls             int
	zipf             bool
	stampede, procs  int
	stampedeDelay    time.Duration
	fleetURLs        int
	fleetRate        int
}

const kib = 1024

// fleetDelay is the origin's latency in the fleet scenario.
const fleetDelay = 20 * time.Millisecond

func scenarios(c config) []scenario {
	var out []scenario
	for _, body := range []int{1 * kib, 16 * kib, 256 * kib} {
		for _, g := range []int{1, 32} {
			out = append(out, scenario{Name: fmt.Sprintf("hit-%dk-c%d", body/kib, g), kind: kindLoad, Body: body, Goroutines: g, Procs: 1})
		}
	}
	perProc := max(c.stampede/c.procs, 1)
	down := []string{"direct", "fleetcache", "httpcache-pool"}
	// The fleet a user recognises: four processes of a service, each called
	// 400 times a second, calling an API that takes 20 ms, over 10 000 URLs
	// of which a few are popular.
	fleet := scenario{Name: fmt.Sprintf("fleet-%dx%d", c.fleetRate, c.procs), kind: kindFleet, Body: 1 * kib,
		Procs: c.procs, Delay: fleetDelay, URLs: c.fleetURLs, Rate: c.fleetRate,
		impls: []string{"direct", "httpcache-memory", "httpcache-pool", "fleetcache"}}
	out = append([]scenario{fleet}, out...)
	return append(out,
		scenario{Name: "mix90-1k-c32", kind: kindLoad, Body: 1 * kib, Goroutines: 32, Procs: 1, MissRatio: 0.1},
		scenario{Name: fmt.Sprintf("stampede-%dx1", c.stampede), kind: kindStampede, Body: 16 * kib, Goroutines: c.stampede, Procs: 1, Delay: c.stampedeDelay},
		scenario{Name: fmt.Sprintf("stampede-%dx%d", perProc, c.procs), kind: kindStampede, Body: 16 * kib, Goroutines: perProc, Procs: c.procs, Delay: c.stampedeDelay},
		scenario{Name: "down-1k-c1", kind: kindDown, Body: 1 * kib, Goroutines: 1, Procs: 1, impls: down},
		scenario{Name: "down-1k-c32", kind: kindDown, Body: 1 * kib, Goroutines: 32, Procs: 1, impls: down},
	)
}

// fetch sends one GET and reads the whole body, failing when the answer is
// not the 200 and the size the origin sends.
func fetch(ctx context.Context, c *http.Client, url string, size int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return fmt.Errorf("%s: read body: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK || n != int64(size) {
		return fmt.Errorf("%s: status %d with %d bytes, want 200 with %d", url, resp.StatusCode, n, size)
	}
	return nil
}

// tally is what a set of goroutines measured.
type tally struct {
	Hist     hist
	Requests int64
	Errors   int64
	FirstErr string
}

func (t *tally) add(o *tally) {
	t.Hist.merge(&o.Hist)
	t.Requests += o.Requests
	t.Errors += o.Errors
	if t.FirstErr == "" {
		t.FirstErr = o.FirstErr
	}
}

func (t *tally) observe(start time.Time, err error) {
	t.Hist.record(int64(time.Since(start)))
	t.Requests++
	if err != nil {
		t.Errors++
		if t.FirstErr == "" {
			t.FirstErr = err.Error()
		}
	}
}

// zipfS is the exponent of the zipf distributions: a few URLs take most
// requests, and a long tail takes the rest.
const zipfS = 1.1

// picker chooses the URL of each request of one goroutine.
type picker struct {
	r         *rand.Rand
	z         *rand.Zipf // nil: uniform
	hot       []string
	missRatio float64
	miss      func() string
}

func (p *picker) next() string {
	if p.missRatio > 0 && p.r.Float64() < p.missRatio {
		return p.miss()
	}
	if p.z != nil {
		return p.hot[p.z.Uint64()]
	}
	return p.hot[p.r.Intn(len(p.hot))]
}

// hammer runs goroutines that each send requests back to back until d has
// passed.
func hammer(ctx context.Context, c *http.Client, goroutines int, d time.Duration, newPicker func(i int) *picker, size int) *tally {
	tallies := make([]tally, goroutines)
	pickers := make([]*picker, goroutines)
	for i := range pickers {
		pickers[i] = newPicker(i)
	}
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for i := range goroutines {
		wg.Go(func() {
			t, p := &tallies[i], pickers[i]
			for time.Now().Before(deadline) && ctx.Err() == nil {
				start := time.Now()
				t.observe(start, fetch(ctx, c, p.next(), size))
			}
		})
	}
	wg.Wait()
	var sum tally
	for i := range tallies {
		sum.add(&tallies[i])
	}
	return &sum
}

// pace sends rate requests a second for d, each on its own goroutine at its
// scheduled time, so that a slow request delays no other: the load a
// service's own callers put on it.
func pace(ctx context.Context, c *http.Client, rate int, d time.Duration, p *picker, size int) *tally {
	var (
		mu  sync.Mutex
		sum tally
		wg  sync.WaitGroup
	)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	deadline := time.Now().Add(d)
	for now := range tick.C {
		if now.After(deadline) || ctx.Err() != nil {
			break
		}
		url := p.next()
		wg.Go(func() {
			var t tally
			t.observe(now, fetch(ctx, c, url, size))
			mu.Lock()
			sum.add(&t)
			mu.Unlock()
		})
	}
	wg.Wait()
	return &sum
}

// burst sends one request per goroutine for url, all released at once after
// every goroutine is started and ready has returned.
func burst(ctx context.Context, c *http.Client, url string, size, goroutines int, ready func() error) (*tally, error) {
	tallies := make([]tally, goroutines)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range goroutines {
		wg.Go(func() {
			<-start
			t0 := time.Now()
			tallies[i].observe(t0, fetch(ctx, c, url, size))
		})
	}
	err := ready()
	close(start)
	wg.Wait()
	var sum tally
	for i := range tallies {
		sum.add(&tallies[i])
	}
	return &sum, err
}

// trial is one implementation in one scenario.
type trial struct {
	sc     scenario
	im     impl
	cfg    config
	origin *origin
	env    env
	id     string // unique path segment of the trial's URLs
	self   string // this program's executable, for worker processes

	// Set by start for load scenarios.
	client    *http.Client
	release   func()
	newPicker func(i int) *picker
	acc       measured
}

// measured is a trial's outcome before it is compared with its neighbours.
type measured struct {
	tally
	elapsed        time.Duration
	origin         int64
	mallocs, bytes uint64
	allocsKnown    bool
}

func (m *measured) add(o *measured) {
	m.tally.add(&o.tally)
	m.elapsed += o.elapsed
	m.origin += o.origin
	m.mallocs += o.mallocs
	m.bytes += o.bytes
	m.allocsKnown = o.allocsKnown
}

// stampede runs a stampede scenario: one burst, from this process or from
// worker processes.
func (r *trial) stampede(ctx context.Context) (*measured, error) {
	if r.sc.Procs > 1 {
		return r.fleetStampede(ctx)
	}
	rt, release, err := r.im.open(r.env)
	if err != nil {
		return nil, err
	}
	defer release()
	c := &http.Client{Transport: rt}
	url := r.origin.resourceURL(r.id+"/cold", r.sc.Body, r.sc.Delay)
	return r.measure(func() *tally {
		t, _ := burst(ctx, c, url, r.sc.Body, r.sc.Goroutines, func() error { return nil })
		return t
	}), nil
}

// start readies a load trial: it opens the implementation, fills the cache
// with the hot URLs and lets pools, connections and the runtime settle.
func (r *trial) start(ctx context.Context) error {
	rt, release, err := r.im.open(r.env)
	if err != nil {
		return err
	}
	r.client, r.release = &http.Client{Transport: rt}, release
	hot := make([]string, r.cfg.urls)
	for i := range hot {
		hot[i] = r.origin.resourceURL(fmt.Sprintf("%s/hot/%d", r.id, i), r.sc.Body, 0)
	}
	var misses atomic.Int64
	r.newPicker = func(i int) *picker {
		rnd := rand.New(rand.NewSource(int64(i) + 1))
		p := &picker{r: rnd, hot: hot, missRatio: r.sc.MissRatio, miss: func() string {
			return r.origin.resourceURL(fmt.Sprintf("%s/miss/%d", r.id, misses.Add(1)), r.sc.Body, 0)
		}}
		if r.cfg.zipf {
			p.z = rand.NewZipf(rnd, zipfS, 1, uint64(len(hot)-1))
		}
		return p
	}
	for _, u := range hot {
		_ = fetch(ctx, r.client, u, r.sc.Body)
	}
	hammer(ctx, r.client, r.sc.Goroutines, r.cfg.warmup, r.newPicker, r.sc.Body)
	return nil
}

// round measures a started load trial for d more.
func (r *trial) round(ctx context.Context, d time.Duration) {
	r.acc.add(r.measure(func() *tally {
		return hammer(ctx, r.client, r.sc.Goroutines, d, r.newPicker, r.sc.Body)
	}))
}

func (r *trial) stop() {
	if r.release != nil {
		r.release()
	}
	r.env.origin.(*http.Transport).CloseIdleConnections()
}

// measure runs f in this process and records time, origin requests and the
// allocations of the whole process (the client stack and, for direct, the
// origin it talks to) while f ran.
func (r *trial) measure(f func() *tally) *measured {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	origin0 := r.origin.requests.Load()
	start := time.Now()
	t := f()
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	return &measured{
		tally: *t, elapsed: elapsed,
		origin:  r.origin.requests.Load() - origin0,
		mallocs: after.Mallocs - before.Mallocs, bytes: after.TotalAlloc - before.TotalAlloc,
		allocsKnown: true,
	}
}
