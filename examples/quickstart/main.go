// Command quickstart creates a sandbox, waits until it is ready, runs a
// command in it, forks it, shares a preview and deletes both sandboxes.
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

func run(client *miosa.Client) (err error) {
	// Deferred first, so it runs last: after both sandboxes were deleted.
	defer func() {
		if err == nil {
			fmt.Println("done: both sandboxes are deleted")
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	sb, err := client.Sandboxes.Create(ctx, miosa.ComputerCreateParams{Name: "quickstart"})
	if err != nil {
		return err
	}
	fmt.Printf("created sandbox %s (%s)\n", sb.ID, sb.Status)
	defer func() { err = errors.Join(err, client.Sandboxes.Destroy(context.WithoutCancel(ctx), sb.ID)) }()

	start := time.Now()
	ready, err := client.Sandboxes.WaitUntilReady(ctx, sb.ID, miosa.WaitOptions{})
	if err != nil {
		return err
	}
	if !ready {
		return fmt.Errorf("sandbox %s did not become ready", sb.ID)
	}
	fmt.Printf("ready after %s\n", time.Since(start).Round(time.Millisecond))

	res, err := client.Exec.Run(ctx, sb.ID, miosa.ExecParams{Command: "echo hello from MIOSA"})
	if err != nil {
		return err
	}
	if err := res.Err(); err != nil {
		return err
	}
	fmt.Printf("exec: %q (exit code %d)\n", res.Output, res.ExitCode)

	fork, err := client.Sandboxes.Fork(ctx, sb.ID, miosa.SandboxForkParams{Name: "quickstart-fork"})
	if err != nil {
		return err
	}
	fmt.Printf("forked into %s\n", fork.ID)
	defer func() { err = errors.Join(err, client.Sandboxes.Destroy(context.WithoutCancel(ctx), fork.ID)) }()

	preview, err := client.Sandboxes.PreviewToken(ctx, sb.ID, miosa.PreviewTokenParams{ExpiresIn: 15 * time.Minute})
	if err != nil {
		return err
	}
	fmt.Printf("preview (%s scope) until %s: %s\n", preview.Scope, preview.ExpiresAt.Format(time.RFC3339), preview.URL)
	fmt.Println("deleting both sandboxes")
	return nil
}
