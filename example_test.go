package miosa_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

// The whole life of a sandbox: create it, wait until it can run code, run a
// command, fork it, share a preview, and delete it.
func Example() {
	// The fake stands in for the API here; with a real account,
	// client, err := miosa.NewClient("") reads MIOSA_API_KEY.
	srv, err := miosatest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	client := srv.Client()
	ctx := context.Background()

	sb, err := client.Sandboxes.Create(ctx, miosa.ComputerCreateParams{Name: "demo"})
	if err != nil {
		log.Fatal(err)
	}
	ready, err := client.Sandboxes.WaitUntilReady(ctx, sb.ID, miosa.WaitOptions{})
	if err != nil {
		log.Fatal(err)
	}
	if !ready { // a timeout is (false, nil), not an error
		log.Fatalf("sandbox %s did not become ready in time", sb.ID)
	}
	fmt.Println("ready:", ready)

	res, err := client.Exec.Run(ctx, sb.ID, miosa.ExecParams{Command: "echo hello"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("output: %q, exit code %d\n", res.Output, res.ExitCode)

	fork, err := client.Sandboxes.Fork(ctx, sb.ID, miosa.SandboxForkParams{Name: "demo-fork"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("fork is a sandbox:", fork.TemplateType == client.Sandboxes.Template())

	preview, err := client.Sandboxes.PreviewToken(ctx, sb.ID, miosa.PreviewTokenParams{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("preview scope:", preview.Scope)

	for _, id := range []string{fork.ID, sb.ID} {
		if err := client.Computers.Destroy(ctx, id); err != nil {
			log.Fatal(err)
		}
	}
	_, err = client.Sandboxes.Get(ctx, sb.ID)
	fmt.Println("deleted:", errors.Is(err, miosa.ErrNotFound))
	// Output:
	// ready: true
	// output: "hello\n", exit code 0
	// fork is a sandbox: true
	// preview scope: read
	// deleted: true
}

// Errors from the API are *APIError values: branch on their category with
// errors.Is and read the details with errors.As.
func ExampleAPIError() {
	srv, err := miosatest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	client := srv.Client()

	_, err = client.Computers.Get(context.Background(), "cmp_missing")
	var apiErr *miosa.APIError
	if errors.Is(err, miosa.ErrNotFound) && errors.As(err, &apiErr) {
		fmt.Println(apiErr.StatusCode, apiErr.Code)
	}
	// Output: 404 NOT_FOUND
}

// A command's exit code is a result, not an error; Err turns a non-zero exit
// code into an *ExitError.
func ExampleExecService_Run() {
	srv, err := miosatest.Start(miosatest.WithBootDelay(0))
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	srv.HandleExec("make test", miosatest.ExecResult{Stderr: "2 tests failed\n", ExitCode: 2})
	client := srv.Client()
	ctx := context.Background()
	sb, err := client.Sandboxes.Create(ctx, miosa.ComputerCreateParams{})
	if err != nil {
		log.Fatal(err)
	}

	res, err := client.Exec.Run(ctx, sb.ID, miosa.ExecParams{Command: "make test", Timeout: 5 * time.Minute})
	if err != nil {
		log.Fatal(err) // the command could not be run (or its outcome is unknown)
	}
	var exitErr *miosa.ExitError
	if errors.As(res.Err(), &exitErr) {
		fmt.Println("exit code", exitErr.ExitCode, "-", exitErr.Stderr)
	}
	// Output: exit code 2 - 2 tests failed
}

// All walks every page of computers lazily; breaking out of the loop stops
// the requests.
func ExampleComputersService_All() {
	srv, err := miosatest.Start(miosatest.WithBootDelay(0))
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	client := srv.Client()
	ctx := context.Background()
	for _, name := range []string{"a", "b", "c"} {
		if _, err := client.Computers.Create(ctx, miosa.ComputerCreateParams{Name: name}); err != nil {
			log.Fatal(err)
		}
	}

	for c, err := range client.Computers.All(ctx, miosa.ComputerListParams{PerPage: 2}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(c.Name, c.Status)
	}
	// Output:
	// a running
	// b running
	// c running
}
