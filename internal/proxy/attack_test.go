package proxy_test

import (
	"testing"

	"github.com/fleetcache/fleetcache/internal/proxy"
)

// The cache keys a path with its unnecessary percent-encoding decoded
// (RFC 3986 §6.2.2.2: "/%61dmin" is "/admin"), so the upstream must be asked
// for the path the cache keys on, as the proxy already does for dot
// segments. Otherwise a client poisons "/admin" for everyone with the
// answer to "/%61dmin", which an upstream that routes or authorises on the
// raw path may answer differently (a 200 where "/admin" is a 403).
func TestProxy_RFC3986_6_2_2_2_UpstreamAskedForThePathTheCacheKeysOn(t *testing.T) {
	p := startProxy(t, proxy.Config{Upstream: reflector(t).URL})
	base := "http://" + p.Addr()
	for _, tc := range []struct{ sent, keyed string }{
		{"/%61dmin", "/admin"},
		{"/a%2Db/%7Euser", "/a-b/~user"},
	} {
		get(t, base+tc.sent)
		later := get(t, base+tc.keyed)
		if want := tc.keyed + ` body=""`; later.body != want {
			t.Errorf("GET %s after GET %s: %q (%s); the upstream's answer to %s is %q",
				tc.keyed, tc.sent, later.body, later.header.Get("Cache-Status"), tc.keyed, want)
		}
	}
}
