package redisfail_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/fleetcache/fleetcache/internal/redisfail"
	"github.com/fleetcache/fleetcache/internal/redistest"
)

// reply makes an error reply as go-redis returns it, from a real server.
func reply(t *testing.T, c redis.UniversalClient, script string) error {
	t.Helper()
	err := c.Eval(context.Background(), script, nil).Err()
	if err == nil {
		t.Fatalf("%s: no error", script)
	}
	return err
}

func TestClassify(t *testing.T) {
	c := redistest.Server(t).Client(t)
	refused := []struct {
		name, kind string
		err        error
	}{
		{"script error", "ERR", reply(t, c, "return redis.call('HINCRBY', 'k', 'f', '-0.5')")},
		{"wrong type", "WRONGTYPE", reply(t, c, "redis.call('SET', 'str', 'v'); return redis.call('HGET', 'str', 'f')")},
		{"error reply of a script", "OOM", reply(t, c, "return redis.error_reply('OOM command not allowed')")},
		{"wrapped", "NOPERM", fmt.Errorf("rediscache: put: %w", reply(t, c, "return redis.error_reply('NOPERM no permission')"))},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			err := redisfail.Classify(tc.err)
			var r *redisfail.Refused
			if !errors.As(err, &r) || r.Refused() != tc.kind {
				t.Fatalf("Classify(%v) = %#v, want a %s refusal", tc.err, err, tc.kind)
			}
			if !errors.Is(err, tc.err) || redisfail.Classify(err) != err {
				t.Error("the refusal does not wrap the reply, or wraps it twice")
			}
		})
	}
	unavailable := []error{
		nil, redis.Nil, io.EOF, context.DeadlineExceeded, context.Canceled, &net.OpError{Op: "dial", Err: errors.New("refused")},
		reply(t, c, "return redis.error_reply('LOADING Redis is loading the dataset in memory')"),
		reply(t, c, "return redis.error_reply('BUSY Redis is busy running a script')"),
		reply(t, c, "return redis.error_reply('MASTERDOWN Link with MASTER is down')"),
		reply(t, c, "return redis.error_reply('CLUSTERDOWN The cluster is down')"),
		reply(t, c, "return redis.error_reply('TRYAGAIN Multiple keys request during rehashing of slot')"),
		reply(t, c, "return redis.error_reply('READONLY You can not write against a read only replica.')"),
		reply(t, c, "return redis.error_reply('ERR max number of clients reached')"),
	}
	for _, err := range unavailable {
		if got := redisfail.Classify(err); got != err {
			t.Errorf("Classify(%v) = %v, want it unchanged: Redis is unavailable", err, got)
		}
	}
	// A client closed by its owner refuses; its Redis may be fine.
	closed := redistest.Server(t).Client(t)
	closed.Close()
	cerr := fmt.Errorf("coalesce: acquire: %w", closed.Ping(context.Background()).Err())
	var r *redisfail.Refused
	if got := redisfail.Classify(cerr); !errors.As(got, &r) || r.Refused() != "CLOSED" || !errors.Is(got, redis.ErrClosed) {
		t.Errorf("Classify(%v) = %#v, want a CLOSED refusal", cerr, got)
	}
	// A prefix must be the whole first word.
	err := reply(t, c, "return redis.error_reply('BUSYNESS is not BUSY')")
	if _, ok := redisfail.Classify(err).(*redisfail.Refused); !ok {
		t.Errorf("%v classified as unavailable", err)
	}
}
