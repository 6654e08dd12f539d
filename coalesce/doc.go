// Package coalesce collapses identical concurrent work into one call: in one
// process with a singleflight group, and across processes with a lease held
// in Redis, so that a burst of misses reaches the origin once for the fleet.
//
//	var g coalesce.Group[*Response]
//	resp, shared, err := g.Do(ctx, key, 30*time.Second, fetch) // one fetch per key at a time
//
//	fleet := coalesce.NewFleet(client, coalesce.FleetOptions{})
//	lease, ok, err := fleet.Acquire(ctx, leaseKey, 5*time.Second)
//	if ok { /* fetch, store, lease.Fill(ctx, channel) */ } else { /* fleet.Watch(ctx, channel, leaseKey).Wait(ctx), read the store */ }
package coalesce
