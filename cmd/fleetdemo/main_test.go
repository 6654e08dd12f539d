package main

import (
	"bytes"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestRun_SmallBurstCompletes(t *testing.T) {
	defer goleak.VerifyNone(t)
	var out, logs bytes.Buffer
	if err := run(t.Context(), &out, &logs, burst{proxies: 3, clients: 6, requests: 15}); err != nil {
		t.Fatalf("run: %v\nlogs:\n%s", err, logs.String())
	}
	t.Logf("\n%s", out.String())
	for _, want := range []string{"proxy 1", "proxy 2", "proxy 3", "fleet", "hit ratio", "origin:", "slow /report"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report does not mention %q", want)
		}
	}
	if !strings.Contains(out.String(), "6 clients sent 90 requests") {
		t.Errorf("report does not count 90 requests:\n%s", out.String())
	}
	if logs.Len() != 0 {
		t.Errorf("the proxies logged warnings:\n%s", logs.String())
	}
}
