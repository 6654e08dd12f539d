package rules_test

import (
	"fmt"
	"time"

	"github.com/fleetcache/fleetcache/policy"
	"github.com/fleetcache/fleetcache/rules"
)

func ExampleNew() {
	set, err := rules.New(
		rules.Rule{Host: "api.example.com", Path: "/products/*", Route: policy.Route{MaxTTL: time.Minute}},
		rules.Rule{Path: "/account/**", Route: policy.Route{NoStore: true}},
	)
	if err != nil {
		panic(err)
	}
	// roundtrip.New(store, roundtrip.Options{Rules: set}) applies them.
	for _, url := range []string{"http://api.example.com/products/42", "http://shop.example.com/account/me", "http://api.example.com/"} {
		fmt.Printf("%s: %+v\n", url, set.Route(url))
	}
	// Output:
	// http://api.example.com/products/42: &{NoStore:false MinTTL:0s MaxTTL:1m0s StaleWhileRevalidate:0s StaleIfError:0s IgnoreQuery:[] SortQuery:false IgnoreVary:[] Normalize:map[]}
	// http://shop.example.com/account/me: &{NoStore:true MinTTL:0s MaxTTL:0s StaleWhileRevalidate:0s StaleIfError:0s IgnoreQuery:[] SortQuery:false IgnoreVary:[] Normalize:map[]}
	// http://api.example.com/: <nil>
}
