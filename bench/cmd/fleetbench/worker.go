package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// workerFlag, as the first argument, makes the program a worker process of a
// fleet scenario instead of the benchmark.
const workerFlag = "-worker"

// workerSpec is the first line a worker reads on its standard input.
type workerSpec struct {
	Impl       string
	RedisURL   string
	Prefix     string
	URL        string // a burst's URL; for a load, its URLs with "{i}" for 0..URLs-1
	Body       int
	Goroutines int
	// A load instead of a burst: Rate requests a second for Duration,
	// each sent on schedule whatever the others are waiting for (as a
	// service's own callers arrive), spread over URLs with a zipf
	// distribution.
	URLs     int
	Rate     int
	Duration time.Duration
}

// The rest of the protocol: the worker writes readyLine once its goroutines
// wait, reads goLine, releases them, and writes its tally as one JSON line.
const (
	readyLine = "ready"
	goLine    = "go"
)

// fleetStampede runs the stampede from r.sc.Procs worker processes, each
// with its own instance of the implementation, released together.
func (r *trial) fleetStampede(ctx context.Context) (*measured, error) {
	return r.workers(ctx, workerSpec{
		Impl: r.im.name, RedisURL: r.env.redisURL, Prefix: r.env.prefix,
		URL:  r.origin.resourceURL(r.id+"/cold", r.sc.Body, r.sc.Delay),
		Body: r.sc.Body, Goroutines: r.sc.Goroutines,
	})
}

// fleetLoad runs the fleet scenario: r.sc.Procs worker processes, each with
// its own instance of the implementation, sending r.sc.Rate requests a
// second from a cold cache for four turns' worth of -d.
func (r *trial) fleetLoad(ctx context.Context) (*measured, error) {
	return r.workers(ctx, workerSpec{
		Impl: r.im.name, RedisURL: r.env.redisURL, Prefix: r.env.prefix,
		URL:  r.origin.resourceURL(r.id+"/z/{i}", r.sc.Body, r.sc.Delay),
		Body: r.sc.Body,
		URLs: r.sc.URLs, Rate: r.sc.Rate, Duration: r.cfg.duration * 4,
	})
}

// workers runs spec in r.sc.Procs worker processes, released together.
func (r *trial) workers(ctx context.Context, spec workerSpec) (*measured, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute+spec.Duration)
	defer cancel()
	ws := make([]*worker, r.sc.Procs)
	defer func() {
		for _, w := range ws {
			if w != nil {
				w.stop()
			}
		}
	}()
	for i := range ws {
		w, err := startWorker(ctx, r.self, spec)
		if err != nil {
			return nil, err
		}
		ws[i] = w
	}
	for _, w := range ws {
		if err := w.expect(readyLine); err != nil {
			return nil, err
		}
	}
	origin0 := r.origin.requests.Load()
	start := time.Now()
	for _, w := range ws {
		if _, err := io.WriteString(w.stdin, goLine+"\n"); err != nil {
			return nil, fmt.Errorf("worker: %w", err)
		}
	}
	sum := &measured{}
	for _, w := range ws {
		var t tally
		line, err := w.line()
		if err == nil {
			err = json.Unmarshal([]byte(line), &t)
		}
		if err != nil {
			return nil, fmt.Errorf("worker result: %w", err)
		}
		sum.tally.add(&t)
	}
	sum.elapsed = time.Since(start)
	sum.origin = r.origin.requests.Load() - origin0
	return sum, nil
}

type worker struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Reader
	stderr strings.Builder
}

func startWorker(ctx context.Context, self string, spec workerSpec) (*worker, error) {
	w := &worker{cmd: exec.CommandContext(ctx, self, workerFlag)}
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	w.cmd.Stderr = &w.stderr
	in, err := w.cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := w.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	w.stdin, w.out = in, bufio.NewReader(out)
	if err := w.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker: %w", err)
	}
	if err := json.NewEncoder(in).Encode(spec); err != nil {
		w.stop()
		return nil, fmt.Errorf("worker spec: %w", err)
	}
	return w, nil
}

func (w *worker) line() (string, error) {
	s, err := w.out.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("worker exited: %w: %s", err, w.stderr.String())
	}
	return strings.TrimSuffix(s, "\n"), nil
}

func (w *worker) expect(want string) error {
	got, err := w.line()
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("worker said %q, want %q", got, want)
	}
	return nil
}

// stop waits for a worker that has finished, and kills one that has not.
func (w *worker) stop() {
	_ = w.stdin.Close()
	done := make(chan struct{})
	go func() { _ = w.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = w.cmd.Process.Kill()
		<-done
	}
}

// workerMain is the whole life of a worker process.
func workerMain(stdin io.Reader, stdout io.Writer) error {
	in := bufio.NewReader(stdin)
	var spec workerSpec
	line, err := in.ReadString('\n')
	if err != nil {
		return fmt.Errorf("read spec: %w", err)
	}
	if err := json.Unmarshal([]byte(line), &spec); err != nil {
		return fmt.Errorf("spec: %w", err)
	}
	im, err := findImpl(spec.Impl)
	if err != nil {
		return err
	}
	origin := newOriginTransport()
	defer origin.CloseIdleConnections()
	rt, release, err := im.open(env{redisURL: spec.RedisURL, prefix: spec.Prefix, origin: origin})
	if err != nil {
		return err
	}
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute+spec.Duration)
	defer cancel()
	ready := func() error {
		if _, err := fmt.Fprintln(stdout, readyLine); err != nil {
			return err
		}
		got, err := in.ReadString('\n')
		if err != nil {
			return err
		}
		if strings.TrimSpace(got) != goLine {
			return errors.New("worker: expected " + goLine)
		}
		return nil
	}
	client := &http.Client{Transport: rt}
	// One request to a URL of its own first, so that the process's
	// connections are open, as a running fleet's are: the burst then
	// measures collapsing, not dialling Redis and the origin at once.
	if err := fetch(ctx, client, strings.Replace(spec.URL, "?", "-warm?", 1), spec.Body); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	var t *tally
	if spec.URLs > 0 {
		if err := ready(); err != nil {
			return err
		}
		urls := make([]string, spec.URLs)
		for i := range urls {
			urls[i] = strings.Replace(spec.URL, "{i}", strconv.Itoa(i), 1)
		}
		rnd := rand.New(rand.NewSource(time.Now().UnixNano()))
		p := &picker{r: rnd, hot: urls, z: rand.NewZipf(rnd, zipfS, 1, uint64(len(urls)-1))}
		t = pace(ctx, client, spec.Rate, spec.Duration, p, spec.Body)
	} else if t, err = burst(ctx, client, spec.URL, spec.Body, spec.Goroutines, ready); err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(t)
}
