// Command fanout creates 50 sandboxes at once, waits until each is ready,
// runs a command in each, deletes them, and prints how long each step took.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

const sandboxes = 50

func main() {
	var client *miosa.Client
	if os.Getenv("MIOSA_API_KEY") != "" {
		var err error
		if client, err = miosa.NewClient(""); err != nil { // reads MIOSA_API_KEY (and MIOSA_BASE_URL)
			log.Fatal(err)
		}
		fmt.Println("using the MIOSA API at", client.BaseURL())
	} else {
		srv, err := miosatest.Start() // the fake API, in this process: nothing leaves the machine
		if err != nil {
			log.Fatal(err)
		}
		defer srv.Close()
		client = srv.Client()
		fmt.Println("MIOSA_API_KEY is not set: using the embedded fake MIOSA API")
	}
	if err := run(client); err != nil {
		log.Fatal(err)
	}
}

// timing is how long one sandbox spent in each step.
type timing struct{ create, ready, exec time.Duration }

func run(client *miosa.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	start := time.Now()
	timings := make([]timing, sandboxes)
	errs := make([]error, sandboxes)
	var wg sync.WaitGroup
	for i := range sandboxes {
		wg.Go(func() { timings[i], errs[i] = useSandbox(ctx, client, i) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Printf("%d sandboxes created, ready, used and deleted in %s\n", sandboxes, time.Since(start).Round(time.Millisecond))
	report("create", timings, func(t timing) time.Duration { return t.create })
	report("ready ", timings, func(t timing) time.Duration { return t.ready })
	report("exec  ", timings, func(t timing) time.Duration { return t.exec })
	return nil
}

func useSandbox(ctx context.Context, client *miosa.Client, i int) (t timing, err error) {
	begin := time.Now()
	sb, err := client.Sandboxes.Create(ctx, miosa.ComputerCreateParams{Name: fmt.Sprintf("fanout-%02d", i)})
	if err != nil {
		return t, err
	}
	defer func() {
		err = errors.Join(err, client.Computers.Destroy(context.WithoutCancel(ctx), sb.ID))
	}()
	t.create = time.Since(begin)

	begin = time.Now()
	ready, err := client.Sandboxes.WaitUntilReady(ctx, sb.ID, miosa.WaitOptions{})
	if err != nil {
		return t, err
	}
	if !ready {
		return t, fmt.Errorf("sandbox %s did not become ready", sb.ID)
	}
	t.ready = time.Since(begin)

	begin = time.Now()
	res, err := client.Exec.Run(ctx, sb.ID, miosa.ExecParams{Command: fmt.Sprintf("echo %d", i)})
	if err != nil {
		return t, err
	}
	t.exec = time.Since(begin)
	return t, res.Err()
}

func report(step string, timings []timing, of func(timing) time.Duration) {
	ds := make([]time.Duration, len(timings))
	for i, t := range timings {
		ds[i] = of(t)
	}
	slices.Sort(ds)
	fmt.Printf("%s p50 %-8s p90 %-8s max %s\n", step,
		ds[len(ds)/2].Round(time.Microsecond*100),
		ds[len(ds)*9/10].Round(time.Microsecond*100),
		ds[len(ds)-1].Round(time.Microsecond*100))
}
