// Command cleanup finds the sandboxes an application labelled through
// metadata and left behind, and destroys them.
//
// An application that labels every sandbox it creates with its name and the
// id of the run that created it can always find its leftovers, even after a
// crash that skipped every deferred delete. This program first plays such a
// crashed run (three labelled sandboxes, never deleted), then, while holding
// a sandbox of its own current run through Sandboxes.Use, sweeps: it walks
// every machine and destroys those labelled by an earlier run of the same
// application. Machines without the label, and the current run's, are left
// alone.
//
// With MIOSA_API_KEY set it uses the real API; otherwise it runs against the
// embedded fake.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

// appLabel is the metadata "app" value this application puts on its
// sandboxes; "run" names the run that created each.
const appLabel = "miosa-go-example-cleanup"

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

// labels is the metadata that marks a sandbox as this application's, made
// by run.
func labels(run string) map[string]any {
	return map[string]any{"app": appLabel, "run": run}
}

func run(client *miosa.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	crashedRun := fmt.Sprintf("run-%d", time.Now().UnixNano())
	for i := range 3 {
		sb, err := client.Sandboxes.Create(ctx, miosa.ComputerCreateParams{
			Name: fmt.Sprintf("crashed-%d", i), Metadata: labels(crashedRun),
		})
		if err != nil {
			return err
		}
		fmt.Printf("a crashed run left sandbox %s behind\n", sb.ID)
	}

	currentRun := crashedRun + "-next"
	params := miosa.ComputerCreateParams{Name: "current", Metadata: labels(currentRun)}
	err := client.Sandboxes.Use(ctx, params, func(ctx context.Context, own *miosa.Sandbox) error {
		leftovers, err := findLeftovers(ctx, client, currentRun)
		if err != nil {
			return err
		}
		fmt.Printf("found %d sandboxes left behind by earlier runs\n", len(leftovers))
		var errs []error
		for _, id := range leftovers {
			err := client.Computers.Destroy(ctx, id) // force: they may still be running
			if errors.Is(err, miosa.ErrNotFound) {
				err = nil // gone meanwhile: nothing left to do
			}
			errs = append(errs, err)
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
		fmt.Printf("destroyed them; this run's sandbox %s stays until its work is done\n", own.ID)
		return nil
	})
	if err != nil {
		return err
	}
	// Use destroyed the current run's sandbox too: nothing labelled is left.
	left, err := findLeftovers(ctx, client, "")
	if err != nil {
		return err
	}
	fmt.Printf("machines labelled by this application now: %d\n", len(left))
	return nil
}

// findLeftovers returns the ids of the machines labelled by this application
// but by a run other than currentRun. It walks every page with
// Computers.All rather than Sandboxes.All so that sandboxes made from custom
// templates are found too, and collects before destroying anything, since
// deleting machines during the walk would shift the pages still to come.
func findLeftovers(ctx context.Context, client *miosa.Client, currentRun string) ([]string, error) {
	var ids []string
	for c, err := range client.Computers.All(ctx, miosa.ComputerListParams{}) {
		if err != nil {
			return nil, err
		}
		if c.Metadata["app"] == appLabel && c.Metadata["run"] != currentRun {
			ids = append(ids, c.ID)
		}
	}
	return ids, nil
}
