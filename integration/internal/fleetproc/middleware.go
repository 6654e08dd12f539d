package fleetproc

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/fleetcache/fleetcache/middleware"
	"github.com/fleetcache/fleetcache/rediscache"
	"github.com/fleetcache/fleetcache/roundtrip"
)

// originField tells the handler which Origin to ask: the callers' requests
// go to the member's own server.
const originField = "X-Fleet-Origin"

// middlewareMember is a member that serves a handler behind package
// middleware on a loopback port. The handler asks the Origin for the
// request's path with the request's method and copies its answer, or
// panics while panicking is set; its callers reach the server as
// ServiceHost.
func middlewareMember(cfg Config, store *rediscache.Store, now func() time.Time, panicking *atomic.Bool) (*http.Client, func() roundtrip.Stats, func() error, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, nil, err
	}
	origin := &http.Transport{MaxIdleConnsPerHost: 64}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if panicking.Load() {
			panic("fleetproc: the handler panics, as the test asked")
		}
		req, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+r.Header.Get(originField)+r.URL.RequestURI(), r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		req.Header.Set(ProcHeader, r.Header.Get(ProcHeader))
		resp, err := origin.RoundTrip(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})
	cache := middleware.NewCache(store, middleware.Options{Cache: roundtrip.Options{
		LeaseTimeout: cfg.LeaseTimeout,
		StoreTimeout: cfg.StoreTimeout,
		Now:          now,
	}})
	srv := &http.Server{Handler: cache.Wrap(handler)}
	go func() { _ = srv.Serve(ln) }()
	client := &http.Client{Transport: toServer{addr: ln.Addr().String(), next: &http.Transport{MaxIdleConnsPerHost: 64}}}
	stop := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), replyTimeout)
		defer cancel()
		err := srv.Shutdown(ctx)
		err = errors.Join(err, cache.Close())
		origin.CloseIdleConnections()
		return err
	}
	return client, cache.Stats, stop, nil
}

// toServer sends a request for the Origin's URL to the member's server
// instead, as ServiceHost, telling the handler where the Origin is.
type toServer struct {
	addr string
	next http.RoundTripper
}

func (s toServer) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Header.Set(originField, req.URL.Host)
	r.URL.Host, r.Host = s.addr, ServiceHost
	return s.next.RoundTrip(r)
}
