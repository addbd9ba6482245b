package miosa_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

// Processes runs a dev server in the background, follows it until it is
// ready, sends it input, then stops it and waits for its end.
func ExampleProcessesService() {
	srv, err := miosatest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	srv.HandleProcess("npm run dev", miosatest.ProcessScript{
		Lines:        []miosatest.ExecLine{{Text: "compiling..."}, {Delay: 10 * time.Millisecond, Text: "ready on :3000"}},
		UntilStopped: true,
	})
	ctx := context.Background()
	client := srv.Client()
	err = client.Sandboxes.Use(ctx, miosa.ComputerCreateParams{Name: "dev"}, func(ctx context.Context, sb *miosa.Sandbox) error {
		p, err := client.Processes.Start(ctx, sb.ID, miosa.ProcessStartParams{Command: "npm run dev", Name: "web"})
		if err != nil {
			return err // errors.Is(err, miosa.ErrOutcomeUnknown): it may run; List finds it by Name
		}
		// p.SandboxID and p.PID are all it takes to find it again, after a restart too.
		for ev, err := range client.Processes.Follow(ctx, p.SandboxID, p.PID) {
			if err != nil {
				return err // errors.Is(err, miosa.ErrStreamGap): the stream broke, output may be missing
			}
			fmt.Printf("%s: %s\n", ev.Kind, ev.Line)
			if strings.Contains(ev.Line, "ready on") {
				break // closes the stream; the process runs on
			}
		}
		if err := client.Processes.WriteStdin(ctx, p.SandboxID, p.PID, "rs\n"); err != nil {
			return err // never sent twice: errors.Is(err, miosa.ErrOutcomeUnknown) when the answer was lost
		}
		if err := client.Processes.Stop(ctx, p.SandboxID, p.PID); err != nil { // SIGTERM, SIGKILL after 5 s
			return err
		}
		ended, err := client.Processes.Wait(ctx, p.SandboxID, p.PID, miosa.WaitOptions{})
		if err != nil {
			return err
		}
		fmt.Println(ended.Status, *ended.ExitCode)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// stdout: compiling...
	// stdout: ready on :3000
	// killed 143
}

// Start runs a command in the background and returns at once; a stored
// sandbox id and PID are all it takes to find the process again, here from
// a second client, as after a restart.
func ExampleProcessesService_Start() {
	srv, err := miosatest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	srv.HandleProcess("npm run dev", miosatest.ProcessScript{
		Lines:        []miosatest.ExecLine{{Text: "ready on :3000"}},
		UntilStopped: true,
	})
	ctx := context.Background()
	client := srv.Client()
	sb, err := client.Sandboxes.Create(ctx, miosa.ComputerCreateParams{Name: "dev"})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := client.Sandboxes.WaitUntilReady(ctx, sb.ID, miosa.WaitOptions{}); err != nil {
		log.Fatal(err)
	}

	p, err := client.Processes.Start(ctx, sb.ID, miosa.ProcessStartParams{Command: "npm run dev", Name: "web"})
	if errors.Is(err, miosa.ErrOutcomeUnknown) {
		// The answer was lost: the process may run. Find it by its name
		// with List rather than starting a second one.
		log.Fatal(err)
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("started", p.Name, p.Status)

	again, err := srv.Client().Processes.Get(ctx, p.SandboxID, p.PID) // another client, the same process
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("found again:", again.Command, again.Running())

	if err := client.Processes.Stop(ctx, p.SandboxID, p.PID); err != nil {
		log.Fatal(err)
	}
	ended, err := client.Processes.Wait(ctx, p.SandboxID, p.PID, miosa.WaitOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stopped:", ended.Status, *ended.ExitCode)
	// Output:
	// started web running
	// found again: npm run dev true
	// stopped: killed 143
}

// Follow yields a process's output as it writes it, then its exit. A
// stream that breaks is resumed where it broke; when it cannot be, the
// loop gets an error matching ErrStreamGap instead of a silent gap.
func ExampleProcessesService_Follow() {
	srv, err := miosatest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	srv.HandleProcess("make", miosatest.ProcessScript{
		Lines: []miosatest.ExecLine{
			{Text: "compiling..."},
			{Delay: 10 * time.Millisecond, Stderr: true, Text: "warning: unused variable"},
			{Delay: 10 * time.Millisecond, Text: "done"},
		},
		ExitCode: 2,
		// The fake cuts every stream after two events: Follow resumes from
		// the last event id, and nothing is lost or repeated.
		CutStreamAfter: 2,
	})
	ctx := context.Background()
	client := srv.Client()
	err = client.Sandboxes.Use(ctx, miosa.ComputerCreateParams{Name: "build"}, func(ctx context.Context, sb *miosa.Sandbox) error {
		p, err := client.Processes.Start(ctx, sb.ID, miosa.ProcessStartParams{Command: "make"})
		if err != nil {
			return err
		}
		for ev, err := range client.Processes.Follow(ctx, sb.ID, p.PID) {
			if err != nil {
				return err // the last pair: ErrStreamGap, ErrOutcomeUnknown, an *APIError, ctx's error
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
	// stdout: done
	// exit code 2
}

// WriteStdin sends input to a running process; Logs returns the last lines
// it wrote.
func ExampleProcessesService_WriteStdin() {
	srv, err := miosatest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	srv.HandleProcess("cat", miosatest.ProcessScript{UntilStopped: true, EchoStdin: true})
	ctx := context.Background()
	client := srv.Client()
	err = client.Sandboxes.Use(ctx, miosa.ComputerCreateParams{Name: "repl"}, func(ctx context.Context, sb *miosa.Sandbox) error {
		p, err := client.Processes.Start(ctx, sb.ID, miosa.ProcessStartParams{Command: "cat"})
		if err != nil {
			return err
		}
		if err := client.Processes.WriteStdin(ctx, sb.ID, p.PID, "hello\nworld\n"); err != nil {
			return err // never sent twice: errors.Is(err, miosa.ErrOutcomeUnknown) when the answer was lost
		}
		logs, err := client.Processes.Logs(ctx, sb.ID, p.PID, miosa.ProcessLogsParams{Tail: 1})
		if err != nil {
			return err
		}
		fmt.Printf("last line: %q\n", logs)
		return client.Processes.Stop(ctx, sb.ID, p.PID)
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// last line: "world\n"
}
