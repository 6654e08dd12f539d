// Package examples shows package middleware in front of the routers
// services use: net/http's ServeMux, chi, gin and echo. It is a module of
// its own so that the fleetcache module depends on none of them; its
// Examples are compiled and run by `make test`.
package examples
