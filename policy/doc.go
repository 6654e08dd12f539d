// Package policy makes the HTTP caching decisions of RFC 9111 (with RFC 5861,
// RFC 8246, RFC 9211 and RFC 9213): what may be stored, for how long it is
// fresh, when a stored response may be reused, how to revalidate it, and what
// a write invalidates. It is pure: no I/O, and the clock is always passed in.
//
//	p := policy.New(policy.Options{}) // a shared cache
//	rq := p.ParseRequest(req)
//	switch d := p.Reuse(&rq, stored, now); d.Action {
//	case policy.Serve: // answer from stored, with Age d.Age
//	case policy.Revalidate:
//		cond, _ := policy.Conditional(&rq, stored) // If-None-Match, If-Modified-Since
//		...
//	}
//	ok, why := p.Storable(&rq, resp) // why is a Reason, which Cache-Status shows
//	if ok {
//		entry := p.NewResponse(&rq, resp, body, reqTime, respTime)
//		ttl, explicit := p.Keep(entry, now) // how long a store keeps it
//	}
//	members, err := policy.ParseCacheStatus(resp.Header) // what each cache on the way did
//
// The zero Options make a shared cache, the mode a fleet of services needs:
// private responses, responses with Set-Cookie and responses to requests with
// Authorization (unless the response allows it) are never stored. Only GET
// responses become entries; a HEAD is answered from a stored GET and a 200
// to a HEAD freshens one, but a HEAD response is never served to a GET.
//
// A GET for one byte range is answered from a stored complete response or a
// stored part that covers it (Part); a part that lacks what is asked is
// completed by asking for the missing range alone (Complete) and joining the
// answer to it on a strong ETag (Combine).
//
// The decisions a cache hit makes (ParseRequest, Reuse) parse header fields
// by scanning them in place and do not allocate beyond the cache key.
package policy
