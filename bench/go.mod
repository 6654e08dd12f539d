module github.com/fleetcache/fleetcache/bench

go 1.26.0

replace github.com/fleetcache/fleetcache => ../

require (
	github.com/fleetcache/fleetcache v0.0.0-00010101000000-000000000000
	github.com/gomodule/redigo v1.9.3
	github.com/gregjones/httpcache v0.0.0-20190611155906-901d90724c79
	github.com/redis/go-redis/v9 v9.23.0
)

require (
	github.com/alicebob/miniredis/v2 v2.40.0 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/yuin/gopher-lua v1.1.1 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	golang.org/x/sync v0.23.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
)
