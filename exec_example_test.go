package miosa_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

// Stream yields a command's output line by line while it runs, then its
// exit. Here the fake plays a scripted build whose lines come 10 ms apart.
func ExampleExecService_Stream() {
	srv, err := miosatest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	srv.HandleExecStream("make test", miosatest.ExecStream{
		Lines: []miosatest.ExecLine{
			{Text: "compiling..."},
			{Delay: 10 * time.Millisecond, Stderr: true, Text: "warning: unused variable"},
			{Delay: 10 * time.Millisecond, Text: "PASS"},
		},
	})
	client := srv.Client()
	ctx := context.Background()

	err = client.Sandboxes.Use(ctx, miosa.ComputerCreateParams{Name: "demo"}, func(ctx context.Context, sb *miosa.Sandbox) error {
		for ev, err := range client.Exec.Stream(ctx, sb.ID, miosa.ExecParams{Command: "make test", Timeout: 10 * time.Minute}) {
			if err != nil {
				return err // the last pair; errors.Is(err, miosa.ErrOutcomeUnknown) when the exit is unknown
			}
			switch ev.Kind {
			case miosa.ExecStdout, miosa.ExecStderr:
				fmt.Printf("%s: %s\n", ev.Kind, ev.Line)
			case miosa.ExecExit:
				fmt.Println("exit code", ev.ExitCode)
			}
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// stdout: compiling...
	// stderr: warning: unused variable
	// stdout: PASS
	// exit code 0
}

// Run with Stdout (and Stderr) set streams the command and writes each line
// of its output into the writers as it arrives, as os/exec does, then
// returns the exit code. Unlike a loop over Stream, it cannot drop an error.
func ExampleExecService_Run_writers() {
	srv, err := miosatest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	srv.HandleExecStream("make test", miosatest.ExecStream{
		Lines: []miosatest.ExecLine{
			{Text: "compiling..."},
			{Delay: 10 * time.Millisecond, Stderr: true, Text: "warning: unused variable"},
			{Delay: 10 * time.Millisecond, Text: "FAIL"},
		},
		ExitCode: 1,
	})
	client := srv.Client()
	ctx := context.Background()

	err = client.Sandboxes.Use(ctx, miosa.ComputerCreateParams{Name: "demo"}, func(ctx context.Context, sb *miosa.Sandbox) error {
		res, err := client.Exec.Run(ctx, sb.ID, miosa.ExecParams{
			Command: "make test",
			Timeout: 10 * time.Minute,
			Stdout:  os.Stdout, // each line the moment it arrives; stderr lines too, as Stderr is nil
		})
		if err != nil {
			return err // errors.Is(err, miosa.ErrOutcomeUnknown) when the exit is unknown
		}
		fmt.Println("exit code", res.ExitCode)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// compiling...
	// warning: unused variable
	// FAIL
	// exit code 1
}
