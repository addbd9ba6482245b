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
