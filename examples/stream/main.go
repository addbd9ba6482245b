// Command stream runs a slow command in a sandbox and prints each line of
// its output the moment the command writes it, with the time since the
// command started, then its exit code.
//
// With MIOSA_API_KEY set it uses the real API; otherwise it runs against the
// embedded fake, which runs the command in a local shell.
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

// command writes a line, then another every 200 ms, one on stderr.
const command = `for i in 1 2 3 4; do echo "step $i of 4"; sleep 0.2; done; echo "almost done" >&2; sleep 0.1; echo done`

func main() {
	var client *miosa.Client
	if os.Getenv("MIOSA_API_KEY") != "" {
		var err error
		if client, err = miosa.NewClient(""); err != nil { // reads MIOSA_API_KEY (and MIOSA_BASE_URL)
			log.Fatal(err)
		}
		fmt.Println("using the MIOSA API at", client.BaseURL())
	} else {
		// The fake API, in this process. WithLocalShell runs the command on
		// this machine with /bin/sh: fine for this fixed command, never for
		// untrusted input.
		srv, err := miosatest.Start(miosatest.WithLocalShell())
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
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	sb, err := client.Sandboxes.Create(ctx, miosa.ComputerCreateParams{Name: "stream"})
	if err != nil {
		return err
	}
	defer func() {
		if err := client.Computers.Destroy(context.WithoutCancel(ctx), sb.ID); err != nil {
			log.Printf("deleting %s: %v", sb.ID, err)
		}
	}()
	if ready, err := client.Sandboxes.WaitUntilReady(ctx, sb.ID, miosa.WaitOptions{}); err != nil || !ready {
		return fmt.Errorf("sandbox %s is not ready (%v)", sb.ID, err)
	}

	fmt.Printf("running %q\n", command)
	start := time.Now()
	for ev, err := range client.Exec.Stream(ctx, sb.ID, miosa.ExecParams{Command: command, Timeout: time.Minute}) {
		if err != nil {
			return err
		}
		elapsed := time.Since(start).Round(time.Millisecond)
		switch ev.Kind {
		case miosa.ExecStdout:
			fmt.Printf("%7s  out  %s\n", elapsed, ev.Line)
		case miosa.ExecStderr:
			fmt.Printf("%7s  err  %s\n", elapsed, ev.Line)
		case miosa.ExecExit:
			fmt.Printf("%7s  exit code %d (timed out: %t)\n", elapsed, ev.ExitCode, ev.TimedOut)
		}
	}
	return nil
}
