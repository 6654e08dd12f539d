package policy

import (
	"net/http"
	"time"
)

// Response is a stored response: everything RFC 9111 reasons about when it
// decides whether to reuse, revalidate or replace what a cache holds. Package
// rediscache encodes it; package roundtrip builds it from an origin response
// and serves it.
//
// A Response handed out by a store is shared by every caller that reads it:
// treat its Header and Body as read-only and Clone before changing them.
type Response struct {
	// Method is the request method the response answered: GET or HEAD.
	Method string
	// URL is the full, normalised target URI (the primary cache key).
	URL string

	Status     int
	ProtoMajor int
	ProtoMinor int
	// Header holds the stored header fields: hop-by-hop fields and the
	// fields a shared cache must not store have already been removed.
	Header http.Header
	Body   []byte

	// RequestTime and ResponseTime are the local clock when the request
	// that produced the response was sent and when the response arrived
	// (RFC 9111 §4.2.3).
	RequestTime  time.Time
	ResponseTime time.Time

	// Vary lists the canonical names of the request header fields the
	// response varies on, and VaryValues the normalised values the request
	// had for them, in the same order (RFC 9111 §4.1).
	Vary       []string
	VaryValues []string

	// Tags are what a purge by tag finds the response by: its Cache-Groups
	// as GroupTags, then its tag fields' tags (see Options.TagFields), at
	// most MaxTags.
	Tags []string
	// Purged is when a soft purge made the response stale, zero if none
	// did: from then on its age is at least its freshness lifetime, so
	// that it is revalidated (or served within its stale windows).
	Purged time.Time
}

// Clone returns a copy whose Header and Vary slices may be changed without
// touching r. The body is shared: it is never changed in place.
func (r *Response) Clone() *Response {
	c := *r
	c.Header = r.Header.Clone()
	c.Vary = append([]string(nil), r.Vary...)
	c.VaryValues = append([]string(nil), r.VaryValues...)
	c.Tags = append([]string(nil), r.Tags...)
	return &c
}
