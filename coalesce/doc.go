// Package coalesce collapses identical concurrent work into one call: in one
// process with a group over golang.org/x/sync/singleflight, and across the
// processes of a fleet with a lease that the store they share hands out, whose
// state Lease reports. It knows neither HTTP nor Redis.
//
//	var g coalesce.Group[*Response]
//	resp, shared, err := g.Do(ctx, key, 30*time.Second, fetch) // one fetch per key at a time; each caller waits on its own ctx
//
// Across processes (rediscache.Store hands out the lease):
//
//	resp, _, lease, err := store.Claim(ctx, url, names, variant, 5*time.Second, false)
//	switch {
//	case lease.Mine: // fetch, then store.Fill(ctx, lease, entry, ttl, explicit), or store.Release
//	case lease.Holder != "" && !lease.Marked: // store.Wait(ctx, lease), then claim again
//	}
package coalesce
