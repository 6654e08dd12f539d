// Package redistest starts throwaway Redis servers for tests: a real
// redis-server on a free loopback port, a three-master Redis Cluster, or an
// in-process miniredis. Every server it starts is stopped by t.Cleanup and
// dies with the test process, and none of them is the machine's shared Redis.
package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// startTimeout bounds how long a server may take to answer PING, and a
// cluster to report cluster_state:ok.
const startTimeout = 15 * time.Second

// Binary returns the path of redis-server. When it is missing the test is
// skipped with a clear message, or failed when CI=true: CI must never pass by
// skipping the tests that need a real server.
func Binary(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err == nil {
		return path
	}
	msg := "redis-server is not installed (Debian: apt-get install redis-server); tests that need a real Redis cannot run"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Srv is one redis-server process owned by a test.
type Srv struct {
	bin  string
	dir  string
	port int
	args []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Server starts a fresh redis-server with no persistence on a free loopback
// port and stops it when the test ends.
func Server(t testing.TB) *Srv {
	t.Helper()
	return start(t, nil)
}

func start(t testing.TB, extra []string) *Srv {
	t.Helper()
	Binary(t)
	s, err := Start(t.TempDir(), extra...)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(s.Kill)
	return s
}

// Start starts a redis-server with no persistence on a free loopback port,
// working in dir, with extra arguments appended; Kill stops it. It is the
// part of Server that needs no test, for programs such as the benchmark.
func Start(dir string, extra ...string) (*Srv, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server is not installed (Debian: apt-get install redis-server): %w", err)
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	s := &Srv{bin: bin, dir: dir, port: port, args: extra}
	if err := s.run(); err != nil {
		return nil, err
	}
	return s, nil
}

// Addr is the server's host:port.
func (s *Srv) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Client returns a client of the server, closed when the test ends.
func (s *Srv) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Kill stops the server at once (SIGKILL), as a crash would. It is safe to
// call on a server that is already stopped.
func (s *Srv) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Restart starts the server again on the same port, killing it first if it
// still runs. The data set starts empty: nothing is persisted.
func (s *Srv) Restart(t testing.TB) {
	t.Helper()
	s.Kill()
	if err := s.run(); err != nil {
		t.Fatalf("redistest: restart: %v", err)
	}
}

func (s *Srv) run() error {
	args := append([]string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--logfile", filepath.Join(s.dir, "redis.log"),
		"--daemonize", "no",
	}, s.args...)
	cmd := exec.Command(s.bin, args...)
	// The server dies with the test process even when the test binary is
	// killed before its cleanups run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	if err := waitPing(s.Addr(), done); err != nil {
		s.Kill()
		log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
		return fmt.Errorf("redis-server on %s: %w\n%s", s.Addr(), err, tail(log))
	}
	return nil
}

// waitPing waits until the server answers PING, giving up early when the
// process exits (a port taken meanwhile, a bad argument).
func waitPing(addr string, exited <-chan struct{}) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	return waitFor(func(ctx context.Context) error {
		select {
		case <-exited:
			return errExited
		default:
		}
		return c.Ping(ctx).Err()
	})
}

var errExited = errors.New("redis-server exited")

// waitFor retries check until it succeeds or startTimeout passes.
func waitFor(check func(ctx context.Context) error) error {
	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := check(ctx)
		cancel()
		if err == nil || errors.Is(err, errExited) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %w", startTimeout, err)
		}
		time.Sleep(20 * time.Millisecond) // a retry interval, not a wait for state
	}
}

func tail(b []byte) string {
	const max = 2000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// FreePort finds a loopback port that is free together with port+10000,
// the port a cluster node uses for its bus, so that any server may join a
// cluster. Nothing listens on it afterwards either, which also makes it an
// address that refuses connections.
func FreePort() (int, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("redistest: free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		if port >= 55535 {
			l.Close()
			continue
		}
		bus, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000))
		l.Close()
		if err != nil {
			continue
		}
		bus.Close()
		return port, nil
	}
	return 0, errors.New("redistest: no free loopback port pair found")
}

// ClusterSrv is a three-master Redis Cluster owned by a test.
type ClusterSrv struct {
	Nodes []*Srv
}

// Cluster starts three redis-server processes in cluster mode, splits the
// 16384 slots between them and waits until every node reports
// cluster_state:ok.
func Cluster(t testing.TB) *ClusterSrv {
	t.Helper()
	c := &ClusterSrv{}
	for range 3 {
		c.Nodes = append(c.Nodes, start(t, []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000",
		}))
	}
	if err := c.form(); err != nil {
		t.Fatalf("redistest: cluster: %v", err)
	}
	return c
}

func (c *ClusterSrv) form() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	clients := make([]*redis.Client, len(c.Nodes))
	for i, n := range c.Nodes {
		clients[i] = redis.NewClient(&redis.Options{Addr: n.Addr()})
		defer clients[i].Close()
	}
	const slots = 16384
	for i, cl := range clients {
		lo, hi := i*slots/len(clients), (i+1)*slots/len(clients)-1
		if err := cl.ClusterAddSlotsRange(ctx, lo, hi).Err(); err != nil {
			return fmt.Errorf("addslots on %s: %w", c.Nodes[i].Addr(), err)
		}
	}
	for _, n := range c.Nodes[1:] {
		if err := clients[0].ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(n.port)).Err(); err != nil {
			return fmt.Errorf("meet %s: %w", n.Addr(), err)
		}
	}
	return waitFor(func(ctx context.Context) error {
		for i, cl := range clients {
			info, err := cl.ClusterInfo(ctx).Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:3") {
				return fmt.Errorf("node %s not ready: %q", c.Nodes[i].Addr(), firstLine(info))
			}
		}
		return nil
	})
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}

// Addrs are the nodes' host:port addresses.
func (c *ClusterSrv) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// Client returns a cluster client, closed when the test ends. It waits until
// the client sees every slot covered, so that the first command of a test
// does not race the cluster's gossip.
func (c *ClusterSrv) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { _ = cl.Close() })
	err := waitFor(func(ctx context.Context) error {
		var mu sync.Mutex // ForEachMaster calls back concurrently
		seen := map[string]bool{}
		err := cl.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			mu.Lock()
			seen[m.Options().Addr] = true
			mu.Unlock()
			return m.Ping(ctx).Err()
		})
		if err == nil && len(seen) != len(c.Nodes) {
			err = fmt.Errorf("client sees %d masters, want %d", len(seen), len(c.Nodes))
		}
		if err != nil {
			cl.ReloadState(ctx)
		}
		return err
	})
	if err != nil {
		t.Fatalf("redistest: cluster client: %v", err)
	}
	return cl
}

// Mini starts an in-process miniredis for fast unit tests and returns it
// with a client of it; both are closed when the test ends.
func Mini(t testing.TB) (*miniredis.Miniredis, *redis.Client) {
	t.Helper()
	m := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	return m, c
}
