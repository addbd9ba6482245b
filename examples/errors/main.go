// Command errors shows how to tell failures apart: invalid arguments, API
// errors by category, retries, rate limits, a command's exit code, and the
// exec call whose outcome is unknown.
//
// It always runs against the embedded fake, because it needs a server that
// fails on request.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

func main() {
	srv, err := miosatest.Start(miosatest.WithBootDelay(0))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("running against the embedded fake MIOSA API, which fails on request")
	err = run(srv)
	_ = srv.Close()
	if err != nil {
		log.Fatal(err)
	}
}

func run(srv *miosatest.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := srv.Client()

	// Arguments that cannot be right fail before any request is sent.
	_, err := client.Computers.Get(ctx, "")
	fmt.Printf("empty id: ErrInvalidParams=%t: %v\n", errors.Is(err, miosa.ErrInvalidParams), err)

	// Every non-2xx answer is an *APIError: branch on its category with
	// errors.Is, read the details with errors.As.
	_, err = client.Computers.Get(ctx, "cmp_missing")
	var apiErr *miosa.APIError
	if errors.Is(err, miosa.ErrNotFound) && errors.As(err, &apiErr) {
		fmt.Printf("unknown id: status %d, code %s, request id %s\n", apiErr.StatusCode, apiErr.Code, apiErr.RequestID)
	}

	sb, err := client.Sandboxes.Create(ctx, miosa.ComputerCreateParams{Name: "errors-example"})
	if err != nil {
		return err
	}

	// Transient failures are retried for you: two 503s, then success.
	srv.Inject(miosatest.Fault{Method: "GET", Path: "/computers/*", Status: 503, Times: 2})
	if _, err := client.Sandboxes.Get(ctx, sb.ID); err != nil {
		return err
	}
	fmt.Printf("two 503s then success: %d attempts, one call\n", len(srv.RequestsTo("GET", "/computers/"+sb.ID)))

	// A Retry-After longer than WithMaxRetryAfter is handed back, not slept.
	// The Client then holds every request it would start for
	// WithMaxRetryAfter (60 s), so this uses a client of its own; a call
	// whose deadline comes first fails at once, unsent.
	limited := srv.Client()
	srv.Inject(miosatest.Fault{Method: "GET", Path: "/computers/*", Status: 429, RetryAfter: 2 * time.Minute})
	_, err = limited.Sandboxes.Get(ctx, sb.ID)
	if errors.Is(err, miosa.ErrRateLimited) && errors.As(err, &apiErr) {
		fmt.Printf("rate limited: retry after %s\n", apiErr.RetryAfter)
	}
	soon, cancelSoon := context.WithTimeout(ctx, time.Second)
	_, err = limited.Sandboxes.Get(soon, sb.ID)
	cancelSoon()
	fmt.Printf("held by the client meanwhile: %t\n", errors.Is(err, context.DeadlineExceeded))

	// A non-zero exit code is a result, not an error, until you ask for one.
	srv.HandleExec("make test", miosatest.ExecResult{Stderr: "2 tests failed\n", ExitCode: 2})
	res, err := client.Exec.Run(ctx, sb.ID, miosa.ExecParams{Command: "make test"})
	if err != nil {
		return err
	}
	var exitErr *miosa.ExitError
	if errors.As(res.Err(), &exitErr) {
		fmt.Printf("command failed: %v\n", exitErr)
	}

	// Exec is never sent twice. When the answer is lost after the server
	// acted, the outcome is unknown: the command may have run.
	srv.Inject(miosatest.Fault{Method: "POST", Path: "/computers/*/exec", Drop: miosatest.DropAfterAct})
	before := len(srv.RequestsTo("POST", "/computers/*/exec"))
	_, err = client.Exec.Run(ctx, sb.ID, miosa.ExecParams{Command: "echo charge the card"})
	fmt.Printf("lost answer: ErrOutcomeUnknown=%t, sent %d time(s)\n",
		errors.Is(err, miosa.ErrOutcomeUnknown), len(srv.RequestsTo("POST", "/computers/*/exec"))-before)

	// A stopped machine refuses exec with 409 NOT_RUNNING.
	if err := client.Computers.Stop(ctx, sb.ID); err != nil {
		return err
	}
	_, err = client.Exec.Run(ctx, sb.ID, miosa.ExecParams{Command: "echo hi"})
	if errors.Is(err, miosa.ErrConflict) && errors.As(err, &apiErr) {
		fmt.Printf("stopped machine: %s\n", apiErr.Code)
	}

	// Your own deadline is always honoured, and stays visible.
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	srv.Inject(miosatest.Fault{Method: "GET", Path: "/computers/*", Delay: time.Second})
	_, err = client.Sandboxes.Get(short, sb.ID)
	fmt.Printf("deadline: context.DeadlineExceeded=%t\n", errors.Is(err, context.DeadlineExceeded))

	return client.Computers.Destroy(ctx, sb.ID)
}
