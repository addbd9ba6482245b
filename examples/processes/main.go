// Command processes starts a long-running server process in a sandbox,
// follows its first lines, sends it input, finds it again by its id from a
// fresh client (as a program restarted after a crash would), and stops it.
//
// With MIOSA_API_KEY set it uses the real API; otherwise it runs against the
// embedded fake, which runs the process in a local shell.
package main

import (
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

// server stands in for a dev server: it announces itself, then answers
// every line it reads on stdin, until it is stopped.
const server = `echo "listening on :8080"; echo "send a line to get an answer"; ` +
	`while read -r line; do echo "answer to $line"; done`

func main() {
	// newClient makes a client; called twice, it shows that a process is
	// found again from nothing but its sandbox id and PID.
	var newClient func() (*miosa.Client, error)
	if os.Getenv("MIOSA_API_KEY") != "" {
		newClient = func() (*miosa.Client, error) { return miosa.NewClient("") } // reads MIOSA_API_KEY (and MIOSA_BASE_URL)
		fmt.Println("using the MIOSA API")
	} else {
		// The fake API, in this process. WithLocalShell runs the command on
		// this machine with /bin/sh: fine for this fixed command, never for
		// untrusted input.
		srv, err := miosatest.Start(miosatest.WithLocalShell())
		if err != nil {
			log.Fatal(err)
		}
		defer srv.Close()
		newClient = func() (*miosa.Client, error) { return srv.Client(), nil }
		fmt.Println("MIOSA_API_KEY is not set: using the embedded fake MIOSA API")
	}
	if err := run(newClient); err != nil {
		log.Fatal(err)
	}
}

func run(newClient func() (*miosa.Client, error)) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client, err := newClient()
	if err != nil {
		return err
	}

	sb, err := client.Sandboxes.Create(ctx, miosa.ComputerCreateParams{Name: "processes"})
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

	// Start returns as soon as the process runs. Its answer may be lost on
	// the way back: then it is not sent again (a second start would be a
	// second server), and the process is found by its name instead.
	p, err := client.Processes.Start(ctx, sb.ID, miosa.ProcessStartParams{Command: server, Name: "echo-server"})
	if errors.Is(err, miosa.ErrOutcomeUnknown) {
		p, err = findByName(ctx, client, sb.ID, "echo-server")
	}
	if err != nil {
		return err
	}
	fmt.Printf("started %q as process %s\n", p.Name, p.PID)

	// Follow its first two lines, then leave: breaking out of the loop
	// closes the stream, and the process goes on running.
	n := 0
	for ev, err := range client.Processes.Follow(ctx, sb.ID, p.PID) {
		if err != nil {
			return err
		}
		fmt.Println("  |", ev.Line)
		if n++; n == 2 {
			break
		}
	}

	if err := client.Processes.WriteStdin(ctx, sb.ID, p.PID, "ping\n"); err != nil {
		return err
	}
	fmt.Println("sent it: ping")

	// A fresh client, as after a restart: the sandbox id and the PID are
	// all it needs.
	fresh, err := newClient()
	if err != nil {
		return err
	}
	again, err := fresh.Processes.Get(ctx, sb.ID, p.PID)
	if err != nil {
		return err
	}
	fmt.Printf("found process %s again: %q, running: %t\n", again.PID, again.Name, again.Running())
	// Following again starts from the start of what the server kept.
	for ev, err := range fresh.Processes.Follow(ctx, sb.ID, p.PID) {
		if err != nil {
			return err
		}
		if strings.HasPrefix(ev.Line, "answer to") {
			fmt.Println("  |", ev.Line)
			break
		}
	}

	// Stop sends SIGTERM (then SIGKILL after 5 s); Wait waits for the end.
	if err := fresh.Processes.Stop(ctx, sb.ID, p.PID); err != nil {
		return err
	}
	ended, err := fresh.Processes.Wait(ctx, sb.ID, p.PID, miosa.WaitOptions{PollInterval: 100 * time.Millisecond})
	if err != nil {
		return err
	}
	code := "unknown"
	if ended.ExitCode != nil {
		code = fmt.Sprint(*ended.ExitCode)
	}
	fmt.Printf("stopped: %s, exit code %s\n", ended.Status, code)
	return nil
}

// findByName returns the sandbox's running process named name.
func findByName(ctx context.Context, client *miosa.Client, sandboxID, name string) (*miosa.Process, error) {
	procs, err := client.Processes.List(ctx, sandboxID)
	if err != nil {
		return nil, err
	}
	for i := range procs {
		if procs[i].Name == name && procs[i].Running() {
			return &procs[i], nil
		}
	}
	return nil, fmt.Errorf("no running process named %q on sandbox %s", name, sandboxID)
}
