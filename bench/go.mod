module github.com/fleetcache/fleetcache/bench

go 1.26.0

replace github.com/fleetcache/fleetcache => ../

require (
	github.com/fleetcache/fleetcache v0.0.0-00010101000000-000000000000
	github.com/gomodule/redigo v1.9.3
	github.com/gregjones/httpcache v0.0.0-20190611155906-901d90724c79
	github.com/redis/go-redis/v9 v9.23.0
	github.com/victorspringer/http-cache v0.0.0-20231006141456-6446fe59efba
)

require (
	github.com/alicebob/miniredis/v2 v2.40.0 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/go-redis/cache v6.4.0+incompatible // indirect
	github.com/go-redis/redis v6.15.9+incompatible // indirect
	github.com/golang/protobuf v1.5.2 // indirect
	github.com/kr/pretty v0.3.1 // indirect
	github.com/maypok86/otter/v2 v2.4.0 // indirect
	github.com/nxadm/tail v1.4.11 // indirect
	github.com/vmihailenco/msgpack v4.0.4+incompatible // indirect
	github.com/yuin/gopher-lua v1.1.1 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	golang.org/x/net v0.2.0 // indirect
	golang.org/x/sync v0.23.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	google.golang.org/appengine v1.6.7 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
