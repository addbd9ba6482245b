package miosa_test

import (
	"context"
	"fmt"
	"log"
	"sync"
	"sync/atomic"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

// A fleet shares one Client. A burst of creates larger than the API's rate
// limit all succeed: after the first 429 the Client holds every goroutine's
// requests for its Retry-After, then paces them at the rate the API
// accepted.
func Example_fleet() {
	// A fake API that accepts 10 requests a second and refuses the rest
	// with 429 and Retry-After; with a real account,
	// client, err := miosa.NewClient("") reads MIOSA_API_KEY.
	srv, err := miosatest.Start(miosatest.WithRateLimit(10))
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	client := srv.Client()
	ctx := context.Background()

	var failed atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := client.Sandboxes.Create(ctx, miosa.ComputerCreateParams{}); err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	fmt.Printf("20 sandboxes created at once, %d failed\n", failed.Load())
	// Output: 20 sandboxes created at once, 0 failed
}

// WithRateLimit caps what the Client starts, for every goroutine together,
// on top of the pacing it does after a 429 by itself.
func ExampleWithRateLimit() {
	_, err := miosa.NewClient("msk_example", miosa.WithRateLimit(20, 5)) // 20 a second, 5 at once
	fmt.Println(err)
	_, err = miosa.NewClient("msk_example", miosa.WithRateLimit(0, 5))
	fmt.Println(err)
	// Output:
	// <nil>
	// miosa: invalid params: WithRateLimit wants a positive, finite number of requests a second, not 0
}
