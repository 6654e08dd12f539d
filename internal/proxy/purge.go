package proxy

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/fleetcache/fleetcache/rediscache"
)

// Purging over HTTP: PURGE on a URL removes its entries; POST
// <admin path>/purge takes a PurgeRequest. Both need the admin token
// (Config.AdminToken) as a bearer token, and are off without one. Neither
// ever reaches the upstream.

// MethodPurge is the method that purges the URL it names.
const MethodPurge = "PURGE"

// purgeTimeout bounds one purge request's work in Redis: a tag of many
// entries takes a batch per script.
const purgeTimeout = 30 * time.Second

// maxPurgeBody bounds the JSON of a purge request.
const maxPurgeBody = 1 << 20

// MaxPurgeItems bounds the URLs and tags of one purge request: each is a
// purge of its own (a tag's walks every shard), so that 1 MB of them would
// outlast purgeTimeout and leave undone work untold. A thousand take a few
// seconds on a local Redis.
const MaxPurgeItems = 1000

// PurgeRequest is the JSON body of POST <admin path>/purge.
type PurgeRequest struct {
	// URLs are purged with every variant: absolute URLs as clients ask
	// for them, or paths, which take the purge request's own host.
	URLs []string `json:"urls"`
	// Tags are purged wherever they are (Cache-Tag, Surrogate-Key, and
	// Cache-Groups as policy.GroupTag names them).
	Tags []string `json:"tags"`
	// Soft marks the entries stale rather than removing them.
	Soft bool `json:"soft"`
}

// PurgeResult says what a purge did: for each URL and tag, how many
// entries it removed (soft: marked stale), and their total.
type PurgeResult struct {
	Soft    bool             `json:"soft"`
	URLs    map[string]int64 `json:"urls,omitempty"`
	Tags    map[string]int64 `json:"tags,omitempty"`
	Entries int64            `json:"entries"`
}

// Purge purges the URLs (the store's keys, policy.NormalizeURL's form)
// and tags of a request from store. It stops at the first error, with what
// it did until then.
func Purge(ctx context.Context, store *rediscache.Store, keys, tags []string, soft bool) (PurgeResult, error) {
	res := PurgeResult{Soft: soft}
	for _, k := range keys {
		n, err := store.PurgeURL(ctx, k, soft)
		if err != nil {
			return res, err
		}
		if res.URLs == nil {
			res.URLs = map[string]int64{}
		}
		res.URLs[k] += n
		res.Entries += n
	}
	for _, t := range tags {
		var n int64
		var err error
		if soft {
			n, err = store.SoftPurgeTag(ctx, t)
		} else {
			n, err = store.PurgeTag(ctx, t)
		}
		if err != nil {
			return res, err
		}
		if res.Tags == nil {
			res.Tags = map[string]int64{}
		}
		res.Tags[t] += n
		res.Entries += n
	}
	return res, nil
}

// purger answers the purge requests of one proxy.
type purger struct {
	s            *Server
	token        [sha256.Size]byte // of Config.AdminToken
	on           bool              // a token is set
	upstream     *url.URL
	upstreamHost bool
}

// authorized answers 401 (or 403 when purging is off) unless r carries
// the admin token. The token's digest is compared in constant time, so
// that neither its bytes nor its length show in the time taken.
func (p *purger) authorized(w http.ResponseWriter, r *http.Request) bool {
	w.Header().Set("Cache-Control", "no-store")
	if !p.on {
		http.Error(w, "fleetcache: purging over HTTP is off: start the proxy with -admin-token", http.StatusForbidden)
		return false
	}
	// The scheme is case-insensitive and followed by one or more spaces
	// (RFC 9110 §11.4).
	scheme, got, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	sum := sha256.Sum256([]byte(strings.TrimLeft(got, " ")))
	if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(sum[:], p.token[:]) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="fleetcache"`)
		http.Error(w, "fleetcache: purge needs the admin token as Authorization: Bearer <token>", http.StatusUnauthorized)
		return false
	}
	return true
}

// key returns the store's key for target, a URL or a path as a client of
// the proxy would ask for it with Host host: what the proxy's rewrite
// makes of such a request (see handler), keyed by the transport.
func (p *purger) key(target, host string) (string, error) {
	u, err := url.Parse(target)
	if err != nil || (u.Host == "" && !strings.HasPrefix(u.Path, "/")) {
		return "", fmt.Errorf("%q is neither an absolute URL nor a path", target)
	}
	if u.Host != "" {
		host = u.Host
	}
	return p.keyOf(u, host)
}

// keyOf is key for a request to u (its path and query) with Host host.
// PURGE's own URL comes here unparsed again: its path may start with //,
// which a parse would take for a host.
func (p *purger) keyOf(u *url.URL, host string) (string, error) {
	in := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery, ForceQuery: u.ForceQuery}, Host: host, Header: http.Header{}}
	in, ok := resolved(in)
	if !ok {
		return "", fmt.Errorf("%q: bad path", u.Path)
	}
	out := in.Clone(context.Background())
	(&httputil.ProxyRequest{In: in, Out: out}).SetURL(p.upstream)
	if !p.upstreamHost && host != "" {
		out.URL.Host = host
	}
	return p.s.rt.Key(out.URL.String())
}

// serveMethod answers PURGE on a URL.
func (p *purger) serveMethod(w http.ResponseWriter, r *http.Request) {
	if !p.authorized(w, r) {
		return
	}
	k, err := p.keyOf(r.URL, r.Host)
	if err != nil {
		http.Error(w, "fleetcache: "+err.Error(), http.StatusBadRequest)
		return
	}
	p.purge(w, r, []string{k}, nil, false)
}

// serveAPI answers POST <admin path>/purge.
func (p *purger) serveAPI(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !p.authorized(w, r) {
		return
	}
	var req PurgeRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxPurgeBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		http.Error(w, "fleetcache: purge: want JSON such as {\"urls\": [...], \"tags\": [...], \"soft\": false}: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(req.URLs) == 0 && len(req.Tags) == 0 {
		http.Error(w, "fleetcache: purge: no urls and no tags", http.StatusBadRequest)
		return
	}
	if n := len(req.URLs) + len(req.Tags); n > MaxPurgeItems {
		http.Error(w, fmt.Sprintf("fleetcache: purge: %d urls and tags, at most %d per request: send several", n, MaxPurgeItems), http.StatusBadRequest)
		return
	}
	keys := make([]string, len(req.URLs))
	for i, u := range req.URLs {
		k, err := p.key(u, r.Host)
		if err != nil {
			http.Error(w, "fleetcache: purge: "+err.Error(), http.StatusBadRequest)
			return
		}
		keys[i] = k
	}
	for _, t := range req.Tags {
		if t == "" {
			http.Error(w, "fleetcache: purge: an empty tag", http.StatusBadRequest)
			return
		}
	}
	p.purge(w, r, keys, req.Tags, req.Soft)
}

func (p *purger) purge(w http.ResponseWriter, r *http.Request, keys, tags []string, soft bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), purgeTimeout)
	defer cancel()
	res, err := Purge(ctx, p.s.store, keys, tags, soft)
	p.s.log.Info("purge", "urls", keys, "tags", tags, "soft", soft, "entries", res.Entries, "err", err, "from", r.RemoteAddr)
	if err != nil {
		status := http.StatusBadGateway
		if errors.Is(err, context.DeadlineExceeded) {
			status = http.StatusGatewayTimeout
		}
		http.Error(w, "fleetcache: purge: "+err.Error(), status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // for shells and jq: a URL's & as it is
	if err := enc.Encode(res); err != nil {
		p.s.log.Debug("writing a purge result", "err", err)
	}
}
