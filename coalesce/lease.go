package coalesce

// A Lease is the right, held by one process of a fleet at a time, to do the
// work for a key while the other processes wait for its result. The store
// the fleet shares hands leases out and takes them back; a Lease value is
// how it says where one stands.
type Lease struct {
	// Key is what the lease is for; for a fleet of HTTP caches, a URL.
	Key string
	// Holder names the lease's holder, unique in the fleet; "" when nobody
	// holds it.
	Holder string
	// Mine reports that the call that returned the Lease took it: its
	// caller does the work and must end the lease, once.
	Mine bool
	// Marked reports that the key's last result could not be shared
	// (Varnish's hit-for-miss): waiting for a holder would only serialise
	// a burst, so nobody should, and a marked key is not leased at all.
	Marked bool
}
