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

// A machine that fails while booting ends the wait at once with a
// MachineStateError, instead of keeping the caller until the timeout.
func ExampleMachineStateError() {
	srv, err := miosatest.Start(miosatest.WithBootDelay(time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	client := srv.Client()
	ctx := context.Background()

	c, err := client.Computers.Create(ctx, miosa.ComputerCreateParams{Name: "unlucky"})
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.SetStatus(c.ID, miosa.StatusError); err != nil { // the fake's way to fail a machine
		log.Fatal(err)
	}

	_, err = client.Computers.WaitForStatus(ctx, c.ID, miosa.StatusRunning, miosa.WaitOptions{Timeout: time.Minute})
	var stateErr *miosa.MachineStateError
	if errors.As(err, &stateErr) {
		fmt.Println("status:", stateErr.Status)
		fmt.Println("timed out:", errors.Is(err, miosa.ErrWaitTimeout))
	}
	// Output:
	// status: error
	// timed out: false
}

// WaitUntilReady reports a sandbox that is not ready in time as
// (false, nil): a timeout is not an error, so the bool must be checked.
func ExampleSandboxesService_WaitUntilReady() {
	srv, err := miosatest.Start(miosatest.WithBootDelay(time.Hour)) // a sandbox that takes an hour to boot
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	client := srv.Client()
	ctx := context.Background()

	sb, err := client.Sandboxes.Create(ctx, miosa.ComputerCreateParams{Name: "slow"})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Sandboxes.Destroy(ctx, sb.ID)

	ready, err := client.Sandboxes.WaitUntilReady(ctx, sb.ID, miosa.WaitOptions{Timeout: 50 * time.Millisecond})
	if err != nil {
		log.Fatal(err) // the context ended, the sandbox failed or is gone, or polling was refused
	}
	if !ready {
		fmt.Println("not ready in time; no error")
	}
	// Output:
	// not ready in time; no error
}
