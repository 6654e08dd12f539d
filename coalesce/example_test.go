package coalesce_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/fleetcache/fleetcache/coalesce"
)

func ExampleGroup_Do() {
	var g coalesce.Group[string]
	fetch := func(ctx context.Context) (string, error) {
		return "the body", nil // one origin request for every caller that overlaps it
	}

	var wg sync.WaitGroup
	bodies := make(chan string, 10)
	for range 10 {
		wg.Go(func() {
			// Each caller waits with its own context; the fetch gets 5s of
			// its own whichever caller gives up.
			body, _, err := g.Do(context.Background(), "GET https://example.com/", 5*time.Second, fetch)
			if err != nil {
				body = err.Error()
			}
			bodies <- body
		})
	}
	wg.Wait()
	close(bodies)
	for body := range bodies {
		if body != "the body" {
			fmt.Println(body)
		}
	}
	fmt.Println("every caller got the body")
	// Output: every caller got the body
}
