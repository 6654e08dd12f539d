package rulesfile_test

import (
	"fmt"

	"github.com/fleetcache/fleetcache/rules/rulesfile"
)

func ExampleParse() {
	_, err := rulesfile.Parse("rules.yaml", []byte(`rules:
  - path: /products/*
    max_ttl: 5m
  - path: /search
    min_ttl: 1h
    max_ttl: 1m
`))
	fmt.Println(err)
	// Output:
	// rules.yaml:4: min_ttl 1h0m0s is above max_ttl 1m0s
}
