package policy

import "time"

// Freshness returns stored's current age at now (RFC 9111 §4.2.3) and how
// long it stays fresh: its freshness lifetime (§4.2.1, under its Route)
// less that age, negative once it is stale. It is what an operator's
// inspection of a stored response shows; requests go through Reuse.
func (p *Policy) Freshness(stored *Response, now time.Time) (age, ttl time.Duration) {
	e := p.evaluate(stored, now)
	return e.age, e.ttl()
}
