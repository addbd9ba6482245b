// Command snapshots checkpoints a sandbox before a risky change, lets the
// change go wrong, and branches a new sandbox from the checkpoint, where the
// files are as they were.
//
// With MIOSA_API_KEY set it uses the real API; otherwise it runs against the
// embedded fake.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

// plan is the file the risky change destroys.
const plan = "/home/user/project/plan.md"

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

func run(client *miosa.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	return client.Sandboxes.Use(ctx, miosa.ComputerCreateParams{Name: "snapshots-example"}, func(ctx context.Context, sb *miosa.Sandbox) error {
		fmt.Println("sandbox", sb.ID, "is ready")
		if err := client.Files.Upload(ctx, sb.ID, plan, strings.NewReader("1. migrate the database\n"), miosa.FileUploadParams{}); err != nil {
			return err
		}

		// The checkpoint. A lost answer is retried with the same
		// Idempotency-Key, so there is only ever one.
		snap, err := client.Snapshots.Create(ctx, sb.ID, miosa.SnapshotCreateParams{Comment: "before the risky change"})
		if err != nil {
			return err
		}
		defer func() {
			if err := client.Snapshots.Delete(context.WithoutCancel(ctx), sb.ID, snap.ID); err != nil {
				log.Printf("deleting snapshot %s: %v", snap.ID, err)
			}
		}()
		snap, err = client.Snapshots.WaitReady(ctx, sb.ID, snap.ID, miosa.WaitOptions{})
		var failed *miosa.SnapshotFailedError
		switch {
		case errors.As(err, &failed):
			return fmt.Errorf("the checkpoint failed; not risking the change: %w", err)
		case err != nil:
			return err
		}
		fmt.Printf("checkpoint %s is %s (%q)\n", snap.ID, snap.Status, snap.Comment)

		// The risky change goes wrong: the plan is gone.
		if err := client.Files.Delete(ctx, sb.ID, plan, miosa.FileDeleteParams{}); err != nil {
			return err
		}
		if _, err := client.Files.Download(ctx, sb.ID, plan, &bytes.Buffer{}); errors.Is(err, miosa.ErrNotFound) {
			fmt.Println("after the change:", plan, "is gone")
		}

		// A branch from the checkpoint: a new sandbox, the first one untouched.
		branch, err := client.Snapshots.Restore(ctx, sb.ID, snap.ID)
		if err != nil {
			return err
		}
		defer func() {
			if err := client.Computers.Destroy(context.WithoutCancel(ctx), branch.ID); err != nil {
				log.Printf("destroying branch %s: %v", branch.ID, err)
			}
		}()
		ready, err := client.Sandboxes.WaitUntilReady(ctx, branch.ID, miosa.WaitOptions{Timeout: 2 * time.Minute})
		switch {
		case err != nil:
			return err
		case !ready:
			return fmt.Errorf("branch %s did not become ready within 2 minutes", branch.ID)
		}
		var restored bytes.Buffer
		if _, err := client.Files.Download(ctx, branch.ID, plan, &restored); err != nil {
			return err
		}
		fmt.Printf("branch %s from the checkpoint has %s: %q\n", branch.ID, plan, restored.String())
		return nil
	})
}
