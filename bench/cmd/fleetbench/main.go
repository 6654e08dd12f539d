// Command fleetbench measures fleetcache side by side with the least any
// Redis-backed HTTP cache can do (floor), with no cache (direct) and with the
// classic Go cache, github.com/gregjones/httpcache on Redis, in one run on the
// same loopback origin and the same Redis. docs/benchmarks.md shows its
// latest table and how to reproduce every figure.
//
// Usage:
//
//	fleetbench [-d 2s] [-scenario regexp] [-impl a,b] [-redis URL] [-json file] [-cpuprofile file] [-quick]
//
// Without -redis it starts a redis-server of its own on a free loopback port,
// with no persistence, and stops it at exit.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/fleetcache/fleetcache/internal/redistest"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == workerFlag {
		if err := workerMain(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "fleetbench worker:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "fleetbench:", err)
		stop()
		os.Exit(1)
	}
}

// runScenario measures every trial of one scenario. The load scenarios run
// the implementations in turns (cfg.rounds of them, each starting with the
// next implementation), so that whatever else the machine does at the time
// weighs on all of them alike.
func runScenario(ctx context.Context, sc scenario, cfg config, trials []*trial) ([]result, error) {
	results := make([]result, len(trials))
	fail := func(i int, err error) {
		r := trials[i]
		// One line, so that the table stays a table.
		results[i] = result{Scenario: sc.Name, Impl: r.im.name, Body: sc.Body, Goroutines: sc.Goroutines, Processes: sc.Procs,
			Unavailable: strings.Join(strings.Fields(err.Error()), " ")}
	}
	if sc.kind == kindStampede || sc.kind == kindFleet {
		for i, r := range trials {
			run := r.stampede
			if sc.kind == kindFleet {
				run = r.fleetLoad
			}
			m, err := run(ctx)
			r.stop()
			if err != nil {
				fail(i, err)
				continue
			}
			results[i] = newResult(sc, r.im, m)
		}
		return results, ctx.Err()
	}
	var live []int
	for i, r := range trials {
		defer r.stop()
		if err := r.start(ctx); err != nil {
			fail(i, err)
			continue
		}
		live = append(live, i)
	}
	for round := range cfg.rounds {
		for j := range live {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			trials[live[(j+round)%len(live)]].round(ctx, cfg.duration/time.Duration(cfg.rounds))
		}
	}
	for _, i := range live {
		results[i] = newResult(sc, trials[i].im, &trials[i].acc)
	}
	return results, nil
}

// quickConfig shrinks c so that every scenario takes a fraction of a second.
func quickConfig(c config) config {
	c.duration, c.warmup, c.urls, c.rounds = 100*time.Millisecond, 20*time.Millisecond, 4, 2
	c.stampede, c.stampedeDelay = 4*c.procs, 20*time.Millisecond
	c.fleetURLs, c.fleetRate = 100, 100
	return c
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) (retErr error) {
	fs := flag.NewFlagSet("fleetbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	fs.DurationVar(&cfg.duration, "d", 2*time.Second, "measured time of each implementation in each load scenario")
	fs.IntVar(&cfg.rounds, "rounds", 4, "turns the -d of a load scenario is split into, the implementations taking turns")
	fs.DurationVar(&cfg.warmup, "warmup", 300*time.Millisecond, "unmeasured load before each measurement")
	fs.IntVar(&cfg.urls, "k", 64, "number of distinct hot URLs")
	dist := fs.String("dist", "uniform", "distribution of requests over the hot URLs: uniform or zipf")
	fs.IntVar(&cfg.stampede, "stampede", 200, "goroutines of a stampede, in all processes together")
	fs.IntVar(&cfg.procs, "procs", 4, "processes of the fleet stampede")
	fs.DurationVar(&cfg.stampedeDelay, "stampede-delay", 50*time.Millisecond, "origin latency in the stampede scenarios")
	fs.IntVar(&cfg.fleetURLs, "fleet-urls", 10000, "distinct URLs of the fleet scenario (zipf), each implementation measured for 4 × -d from a cold cache")
	fs.IntVar(&cfg.fleetRate, "fleet-rate", 400, "requests a second each process of the fleet scenario sends")
	svgOut := fs.String("svg", "", "also write the fleet scenario's figures as an SVG chart to this file")
	cacheControl := fs.String("cache-control", "public, max-age=3600", "Cache-Control of the origin's responses")
	etag := fs.Bool("etag", true, "whether the origin sends an ETag (and answers If-None-Match)")
	redisURL := fs.String("redis", "", "Redis to use (default: start a redis-server on a free loopback port); the run's keys are left behind")
	only := fs.String("scenario", "", "run only the scenarios whose name matches this regexp")
	implList := fs.String("impl", "", "comma-separated implementations to run (default: all of "+strings.Join(implNames(), ",")+")")
	jsonOut := fs.String("json", "", "also write the results as JSON to this file")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	memProfile := fs.String("memprofile", "", "write an allocation profile of the whole run to this file (read it with -sample_index=alloc_objects)")
	quick := fs.Bool("quick", false, "a fraction of a second per run with tiny settings: checks that the harness works, measures nothing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch *dist {
	case "uniform":
	case "zipf":
		cfg.zipf = true
	default:
		return fmt.Errorf("-dist %q: want uniform or zipf", *dist)
	}
	if *quick {
		cfg = quickConfig(cfg)
	}
	if cfg.urls < 2 || cfg.fleetURLs < 2 || cfg.fleetRate < 1 || cfg.stampede < 1 || cfg.procs < 1 || cfg.rounds < 1 || cfg.duration <= 0 {
		return errors.New("-k and -fleet-urls must be at least 2, -fleet-rate, -stampede, -procs and -rounds at least 1, -d positive")
	}
	filter, err := regexp.Compile(*only)
	if err != nil {
		return fmt.Errorf("-scenario: %w", err)
	}
	var chosen []impl
	for name := range strings.SplitSeq(*implList, ",") {
		if name == "" {
			continue
		}
		im, err := findImpl(strings.TrimSpace(name))
		if err != nil {
			return err
		}
		chosen = append(chosen, im)
	}
	if len(chosen) == 0 {
		chosen = impls
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable for worker processes: %w", err)
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	if *memProfile != "" {
		defer func() {
			if err := writeAllocProfile(*memProfile); err != nil && retErr == nil {
				retErr = err
			}
		}()
	}

	var flush func(context.Context) error
	if *redisURL == "" {
		// A redis-server of our own, on a free loopback port and without
		// persistence: a run never touches a Redis that holds data.
		dir, err := os.MkdirTemp("", "fleetbench-redis-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		srv, err := redistest.Start(dir)
		if err != nil {
			return fmt.Errorf("%w (or pass -redis)", err)
		}
		defer srv.Kill()
		*redisURL = "redis://" + srv.Addr()
		// Between scenarios the server of our own is emptied, so that
		// memory stays bounded however many scenarios run.
		rdb, err := newGoRedis(*redisURL)
		if err != nil {
			return err
		}
		defer rdb.Close()
		flush = func(ctx context.Context) error { return rdb.FlushAll(ctx).Err() }
	}
	downPort, err := redistest.FreePort()
	if err != nil {
		return err
	}
	downURL := fmt.Sprintf("redis://127.0.0.1:%d", downPort)

	o, err := startOrigin(256*kib, *cacheControl, *etag)
	if err != nil {
		return err
	}
	defer o.close()
	m := describeMachine(ctx, *redisURL)

	var rows []result
	seq := 0
	for _, sc := range scenarios(cfg) {
		if !filter.MatchString(sc.Name) {
			continue
		}
		var trials []*trial
		for _, im := range chosen {
			if sc.impls != nil && !slices.Contains(sc.impls, im.name) || sc.impls == nil && im.named {
				continue
			}
			seq++
			r := &trial{
				sc: sc, im: im, cfg: cfg, origin: o, self: self,
				id:  fmt.Sprintf("r%d-%s-%s", seq, sc.Name, im.name),
				env: env{redisURL: *redisURL, prefix: fmt.Sprintf("fb%d-%d:", os.Getpid(), seq), origin: newOriginTransport()},
			}
			if sc.kind == kindDown {
				r.env.redisURL = downURL
			}
			trials = append(trials, r)
		}
		group, err := runScenario(ctx, sc, cfg, trials)
		if err != nil {
			return err
		}
		for _, res := range group {
			fmt.Fprintf(stderr, "%-16s %-15s %10.0f req/s  p99 %-9s origin %-6d errors %d %s\n",
				res.Scenario, res.Impl, res.ReqPerSec, fmtUs(res.P99us), res.OriginRequests, res.Errors, res.Unavailable)
		}
		compare(group)
		rows = append(rows, group...)
		if flush != nil {
			if err := flush(ctx); err != nil {
				return fmt.Errorf("empty the benchmark's redis-server: %w", err)
			}
		}
	}

	fmt.Fprintln(stdout)
	if err := printTable(stdout, m, rows); err != nil {
		return err
	}
	if *svgOut != "" {
		if err := writeFleetSVG(*svgOut, m, rows); err != nil {
			return err
		}
	}
	if *jsonOut != "" {
		b, err := json.MarshalIndent(struct {
			Machine machine  `json:"machine"`
			Results []result `json:"results"`
		}{m, rows}, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func writeAllocProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
