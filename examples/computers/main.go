// Command computers walks a desktop computer through its lifecycle: create,
// wait until running, list, stop, start again, and destroy.
package main

import (
	"context"
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

func run(client *miosa.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// Polling every 2 s suits a real desktop; the fake boots in milliseconds.
	wait := miosa.WaitOptions{PollInterval: 250 * time.Millisecond}

	c, err := client.Computers.Create(ctx, miosa.ComputerCreateParams{
		Name:     "computers-example",
		Size:     "small",
		Metadata: map[string]any{"purpose": "example"},
	})
	if err != nil {
		return err
	}
	fmt.Printf("created computer %s (%s)\n", c.ID, c.Status)
	defer func() {
		// Destroy stops the computer first, whatever state the example left it in.
		if err := client.Computers.Destroy(context.WithoutCancel(ctx), c.ID); err != nil {
			log.Printf("destroying %s: %v", c.ID, err)
			return
		}
		fmt.Printf("destroyed %s\n", c.ID)
	}()

	if c, err = client.Computers.WaitForStatus(ctx, c.ID, miosa.StatusRunning, wait); err != nil {
		return err
	}
	fmt.Printf("%s is %s\n", c.ID, c.Status)

	n := 0
	for computer, err := range client.Computers.All(ctx, miosa.ComputerListParams{PerPage: 50}) {
		if err != nil {
			return err
		}
		if computer.ID == c.ID {
			n++
		}
	}
	fmt.Printf("listed: found %s %d time(s)\n", c.ID, n)

	if err := client.Computers.Stop(ctx, c.ID); err != nil {
		return err
	}
	if c, err = client.Computers.WaitForStatus(ctx, c.ID, miosa.StatusStopped, wait); err != nil {
		return err
	}
	fmt.Printf("%s is %s\n", c.ID, c.Status)

	if err := client.Computers.Start(ctx, c.ID); err != nil {
		return err
	}
	if c, err = client.Computers.WaitForStatus(ctx, c.ID, miosa.StatusRunning, wait); err != nil {
		return err
	}
	fmt.Printf("%s is %s again\n", c.ID, c.Status)
	return nil
}
