// Package integration_test tests fleetcache from the outside with real
// components: redis-server processes and a three-master Redis Cluster from
// internal/redistest, loopback origins, and several OS processes (the test
// binary run again as fleet members) sharing one cache, with faults injected
// by killing, stopping or pausing Redis and the processes.
package integration_test
