package fleetproc

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// replyTimeout bounds every wait for a child: one that takes longer is stuck,
// and the test says so instead of hanging until the go test timeout.
const replyTimeout = 30 * time.Second

// Proc is one child process, stopped when the test that started it ends.
type Proc struct {
	ID int

	cmd     *exec.Cmd
	stdin   io.WriteCloser
	enc     *json.Encoder
	replies chan Reply    // closed when the child's stdout ends
	readErr error         // why stdout ended early; read after replies is closed
	exited  chan struct{} // closed after cmd.Wait
	waitErr error         // read after exited is closed
	stderr  SyncBuffer
	killed  bool
	last    *Reply // the latest reply, shown when the test fails
}

// Start starts n children, the i-th with cfg(i), and returns once every one
// is connected to Redis and waits for commands. Starting them all before
// waiting for any keeps the fleet's start-up to about one child's.
func Start(t testing.TB, n int, cfg func(i int) Config) []*Proc {
	t.Helper()
	procs := make([]*Proc, n)
	for i := range procs {
		procs[i] = start(t, cfg(i))
	}
	for _, p := range procs {
		if r := p.next(t); !r.Ready {
			t.Fatalf("child %d: first reply is not Ready: %+v", p.ID, r)
		}
	}
	return procs
}

func start(t testing.TB, cfg Config) *Proc {
	t.Helper()
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatalf("fleetproc: %v", err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+ChildTest+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), envConfig+"="+string(raw))
	// A child dies with the test binary even when cleanups do not run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &Proc{ID: cfg.ID, cmd: cmd, replies: make(chan Reply, 1), exited: make(chan struct{})}
	cmd.Stderr = &p.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("fleetproc: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("fleetproc: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("fleetproc: start child %d: %v", cfg.ID, err)
	}
	p.stdin, p.enc = stdin, json.NewEncoder(stdin)
	go p.read(stdout)
	t.Cleanup(func() { p.stop(t) })
	return p
}

// read decodes the child's replies until its stdout ends, then reaps it
// (exec wants every read of the pipe done before Wait).
func (p *Proc) read(stdout io.Reader) {
	dec := json.NewDecoder(stdout)
	for {
		var r Reply
		if err := dec.Decode(&r); err != nil {
			if !errors.Is(err, io.EOF) {
				p.readErr = err
				_, _ = io.Copy(io.Discard, stdout)
			}
			break
		}
		p.replies <- r
	}
	close(p.replies)
	p.waitErr = p.cmd.Wait()
	close(p.exited)
}

// next returns the child's next reply.
func (p *Proc) next(t testing.TB) Reply {
	t.Helper()
	timer := time.NewTimer(replyTimeout)
	defer timer.Stop()
	select {
	case r, ok := <-p.replies:
		if ok {
			p.last = &r
			return r
		}
		<-p.exited
		t.Fatalf("child %d ended without replying (read: %v, exit: %v)\n%s", p.ID, p.readErr, p.waitErr, p.stderr.String())
	case <-timer.C:
		t.Fatalf("child %d: no reply within %v\n%s", p.ID, replyTimeout, p.stderr.String())
	}
	return Reply{}
}

// Kill kills the child with SIGKILL, as a crash would, and waits until it
// is gone.
func (p *Proc) Kill(t testing.TB) {
	t.Helper()
	p.killed = true
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatalf("child %d: kill: %v", p.ID, err)
	}
	p.awaitExit(t)
}

// stop ends the child by closing its stdin, and reports a child that failed.
func (p *Proc) stop(t testing.TB) {
	t.Helper()
	_ = p.stdin.Close()
	p.awaitExit(t)
	if p.waitErr != nil && !p.killed {
		t.Errorf("child %d: %v (read: %v)\n%s", p.ID, p.waitErr, p.readErr, p.stderr.String())
	}
	if t.Failed() && p.last != nil {
		t.Logf("child %d: last stats %+v", p.ID, p.last.Stats)
	}
}

// awaitExit waits for the child to exit, discarding replies nobody will
// read, and kills it when it takes longer than replyTimeout.
func (p *Proc) awaitExit(t testing.TB) {
	t.Helper()
	timer := time.NewTimer(replyTimeout)
	defer timer.Stop()
	replies := p.replies
	for {
		select {
		case _, ok := <-replies:
			if !ok {
				replies = nil
			}
		case <-p.exited:
			return
		case <-timer.C:
			t.Errorf("child %d did not exit within %v; killing it\n%s", p.ID, replyTimeout, p.stderr.String())
			p.killed = true
			_ = p.cmd.Process.Kill()
		}
	}
}

// Send gives c to every child, back to back, so that their bursts start
// together; Collect gathers the replies.
func Send(t testing.TB, procs []*Proc, c Command) {
	t.Helper()
	for _, p := range procs {
		if err := p.enc.Encode(c); err != nil {
			t.Fatalf("child %d: send: %v\n%s", p.ID, err, p.stderr.String())
		}
	}
}

// Collect returns the reply of each child to the last command sent.
func Collect(t testing.TB, procs []*Proc) []Reply {
	t.Helper()
	replies := make([]Reply, len(procs))
	for i, p := range procs {
		replies[i] = p.next(t)
	}
	return replies
}

// Do sends c to every child and returns their replies.
func Do(t testing.TB, procs []*Proc, c Command) []Reply {
	t.Helper()
	Send(t, procs, c)
	return Collect(t, procs)
}

// Results lists every caller's result of replies.
func Results(replies []Reply) []Result {
	var all []Result
	for _, r := range replies {
		all = append(all, r.Results...)
	}
	return all
}

// SyncBuffer is a bytes.Buffer that several goroutines (exec's copying
// goroutine and the test, concurrent loggers) may use at the same time.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
