// Package fleetproc runs a fleet of fleetcache processes for black-box tests:
// each member is a separate OS process (the test binary, started again) that
// puts a rediscache Store and a roundtrip.Transport in front of a loopback
// origin and sends bursts of concurrent requests through them when the test
// says so, reporting every caller's outcome as JSON.
//
// A test package using it declares
//
//	func TestFleetProcChild(t *testing.T) { fleetproc.RunChild() }
//
// which does nothing in a normal run and is the whole life of a child.
package fleetproc

import (
	"time"

	"github.com/fleetcache/fleetcache/roundtrip"
)

// ChildTest is the name of the test function that must call RunChild.
const ChildTest = "TestFleetProcChild"

// ProcHeader carries a child's ID on every request it sends, so that the
// origin can tell which process reached it.
const ProcHeader = "X-Fleet-Proc"

// Config is what a child process is started with.
type Config struct {
	ID     int    // the child's index in its fleet
	Redis  string // a rediscache.Open URL
	Prefix string // the cache's key prefix; the fleet shares it
	// LeaseTimeout and StoreTimeout are the transport's options; 0 keeps
	// their defaults.
	LeaseTimeout time.Duration
	StoreTimeout time.Duration
	// NearBytes gives the store a near tier (rediscache.Options.NearBytes);
	// the child says Ready once it is subscribed.
	NearBytes int64
	// Middleware makes the child a replica of a service whose handler is
	// behind package middleware: it serves on a loopback port, its callers
	// send their requests there (as Host ServiceHost), and the handler
	// answers each by asking the Origin, so that the origin's request count
	// is how many times the fleet ran the handler.
	Middleware bool
}

// ServiceHost is the Host every middleware member's callers ask for: the
// replicas of one service share their cache entries.
const ServiceHost = "fleet.test"

// Command asks a child for one burst: N callers, each in its own goroutine,
// released at the same moment, GET URL and read the whole body. With N 0 the
// child only reports its Stats.
type Command struct {
	URL string
	N   int
	// Skew is added to the child's clock from this command on. Moving every
	// process of the fleet and the origin by the same amount is how the
	// fleet shares a fake clock: time passes for the cache without waiting.
	Skew time.Duration
	// Method is the callers' request method; "" is GET.
	Method string
	// Panic makes a middleware member's handler panic instead of asking
	// the origin, from this command on (until a command without it).
	Panic bool
	// Watch makes one caller GET URL again and again until a response is
	// not a hit from the near tier (Cache-Status detail=near), at most
	// WatchLimit: the Reply's one Result is that response, and Watched says
	// what came before it.
	Watch bool
}

// WatchLimit bounds a Watch command.
const WatchLimit = 10 * time.Second

// Reply answers one Command. The first Reply a child sends has Ready set and
// nothing else: the child is connected and waits for commands.
type Reply struct {
	Ready   bool
	Results []Result
	Stats   roundtrip.Stats // after the burst
	Watched Watched         // for a Watch command
}

// Watched is what a Watch command saw before the response that was not a
// hit.
type Watched struct {
	NearHits int       // hits with Cache-Status detail=near
	MissAt   time.Time // when the first request that was not one was sent
}

// Result is what one caller got.
type Result struct {
	Proc        int
	Status      int
	CacheStatus string
	Len         int
	Sum         string        // SHA-256 of the body, hex
	Err         string        // the request or the body read failed
	Latency     time.Duration // from the release of the burst to the end of the body
	Done        time.Time     // when the body was read, by the wall clock
}
