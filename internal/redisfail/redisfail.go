// Package redisfail tells a Redis that failed (unreachable, overloaded,
// not ready) from one that answered and refused a command.
//
// The difference decides what a caching client does next: a Redis that
// fails is worth avoiding for a while (a circuit breaker), but one that
// refuses a command (a script error, a key of the wrong type, out of
// memory, no permission) is up and serving everything else, and one refused
// call says nothing about the next one.
package redisfail

import (
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Refused is an error reply from a Redis that is up: it fails the one call
// that got it.
type Refused struct {
	kind string
	err  error
}

func (e *Refused) Error() string { return e.err.Error() }

func (e *Refused) Unwrap() error { return e.err }

// Refused returns the kind of refusal, the reply's first word: "OOM",
// "WRONGTYPE", "NOPERM", "NOAUTH", "ERR", ...
func (e *Refused) Refused() string { return e.kind }

// unavailable are the error replies of a Redis that cannot serve now:
// loading its data set, busy with a long script, without a master or a
// full cluster, in a failover, or out of client slots. They mean what a
// dropped connection means.
var unavailable = []string{
	"LOADING", "BUSY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "READONLY",
	"NOREPLICAS", "MOVED", "ASK", "ERR max number of clients reached",
}

// Refuse makes err a refusal of the given kind: for what a Redis that is up
// holds but the caller cannot use (an invalid value where it keeps its
// settings), which fails calls the way an error reply does.
func Refuse(kind string, err error) error { return &Refused{kind: kind, err: err} }

// Classify returns err wrapped in *Refused when it is an error reply of a
// Redis that is up, or the error of a client that was closed (kind
// "CLOSED"), and err unchanged otherwise (nil, redis.Nil, network and
// context errors, the replies of a Redis that cannot serve now).
func Classify(err error) error {
	var refused *Refused
	if errors.As(err, &refused) {
		return err
	}
	if errors.Is(err, redis.ErrClosed) {
		// Closed by its owner: it refuses every call, and says nothing
		// about Redis.
		return &Refused{kind: "CLOSED", err: err}
	}
	var reply redis.Error
	if err == nil || err == redis.Nil || !errors.As(err, &reply) {
		return err
	}
	msg := reply.Error()
	for _, p := range unavailable {
		if strings.HasPrefix(msg, p) && (len(msg) == len(p) || msg[len(p)] == ' ') {
			return err
		}
	}
	kind, _, _ := strings.Cut(msg, " ")
	return &Refused{kind: kind, err: err}
}
