# Everyday commands. `make test` is the full suite CI runs; it needs Go and
# redis-server (the tests start their own servers on free loopback ports).

GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
PKGS        := ./...

.PHONY: test redis-server race soak lint bench demo cover fuzz

## test: unit and integration tests, with the race detector, the framework examples, and a smoke run of the benchmark harness
test: redis-server
	$(GO) test -race -count=1 -timeout 20m $(PKGS)
	cd examples && $(GO) test -race -count=1 -timeout 5m ./...
	cd bench && $(GO) test -count=1 -timeout 10m ./...

## redis-server: what the integration tests start (installed from Debian's packages when missing)
redis-server:
	@scripts/ensure-redis-server

## race: the suite three times over, to shake out flaky interleavings
race: redis-server
	$(GO) test -race -count=3 -timeout 30m $(PKGS)

## soak: the store's model-based test on a real redis-server for SOAK (default 5m)
SOAK ?= 5m
soak: redis-server
	$(GO) test -count=1 -timeout 0 -run '^TestStore_Model$$' -v ./rediscache/ -soak=$(SOAK)

## lint: gofmt, go vet and staticcheck must all be clean
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)
	cd examples && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./...
	cd bench && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./...

## bench: Go microbenchmarks, then the side-by-side comparison of docs/benchmarks.md
bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./policy/ ./rediscache/ ./coalesce/ ./roundtrip/
	cd bench && $(GO) run ./cmd/fleetbench

## demo: an origin, three proxies sharing one embedded Redis, and a burst of traffic
demo:
	$(GO) run ./cmd/fleetdemo

## cover: per-package coverage
cover:
	$(GO) test -count=1 -cover ./policy/ ./rediscache/ ./coalesce/ ./roundtrip/

## fuzz: every fuzz target for FUZZTIME each
FUZZTIME ?= 60s
fuzz:
	@set -e; for pkg in ./policy/ ./rediscache/ ./internal/proxy/; do \
		for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			$(GO) test -run='^$$' -fuzz="^$$t\$$" -fuzztime=$(FUZZTIME) $$pkg; \
		done; \
	done
