package miosatest_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

// Start runs the fake outside a test; here it stands in for the real API in
// a small program.
func ExampleStart() {
	srv, err := miosatest.Start()
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	client := srv.Client()
	ctx := context.Background()

	sb, err := client.Computers.Create(ctx, miosa.ComputerCreateParams{Name: "demo", TemplateType: miosa.DefaultSandboxTemplate})
	if err != nil {
		panic(err)
	}
	fmt.Println("created:", sb.Status)
	sb, err = client.Computers.WaitForStatus(ctx, sb.ID, miosa.StatusRunning, miosa.WaitOptions{PollInterval: miosatest.PollInterval})
	if err != nil {
		panic(err)
	}
	fmt.Println("now:", sb.Status)
	res, err := client.Exec.Run(ctx, sb.ID, miosa.ExecParams{Command: "echo hello from the fake"})
	if err != nil {
		panic(err)
	}
	fmt.Print(res.Output)
	// Output:
	// created: creating
	// now: running
	// hello from the fake
}

// Inject makes the next requests fail; the SDK's retries carry the same
// Idempotency-Key, so the server still creates one computer.
func ExampleServer_Inject() {
	srv, err := miosatest.Start(miosatest.WithBootDelay(0))
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	srv.Inject(miosatest.Fault{Method: "POST", Path: "/computers", Status: http.StatusServiceUnavailable, Times: 2})

	c, err := srv.Client().Computers.Create(context.Background(), miosa.ComputerCreateParams{})
	if err != nil {
		panic(err)
	}
	for _, r := range srv.RequestsTo("POST", "/computers") {
		fmt.Println(r.Seq, r.Status, r.IdempotencyKey() != "")
	}
	fmt.Println(c.Status)
	// Output:
	// 1 503 true
	// 2 503 true
	// 3 201 true
	// running
}

// HandleExec registers what a command prints; unregistered commands other
// than echo exit 127.
func ExampleServer_HandleExec() {
	srv, err := miosatest.Start(miosatest.WithBootDelay(0))
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	srv.HandleExec("node --version", miosatest.ExecResult{Stdout: "v20.11.0\n"})
	client := srv.Client()
	ctx := context.Background()
	c, err := client.Computers.Create(ctx, miosa.ComputerCreateParams{})
	if err != nil {
		panic(err)
	}
	for _, cmd := range []string{"node --version", "deno --version"} {
		res, err := client.Exec.Run(ctx, c.ID, miosa.ExecParams{Command: cmd})
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s: exit %d %q\n", cmd, res.ExitCode, res.Stdout)
	}
	// Output:
	// node --version: exit 0 "v20.11.0\n"
	// deno --version: exit 127 ""
}

// TestProvisioner_CreatesOneSandbox is the test shown in the package
// documentation, kept here so that it compiles and passes.
func TestProvisioner_CreatesOneSandbox(t *testing.T) {
	srv := miosatest.NewServer(t)
	srv.HandleExec("node --version", miosatest.ExecResult{Stdout: "v20.11.0\n"})
	client := srv.Client()

	sb, err := client.Computers.Create(t.Context(), miosa.ComputerCreateParams{
		Name: "ci", TemplateType: miosa.DefaultSandboxTemplate,
	})
	require.NoError(t, err)
	_, err = client.Computers.WaitForStatus(t.Context(), sb.ID, miosa.StatusRunning,
		miosa.WaitOptions{PollInterval: miosatest.PollInterval})
	require.NoError(t, err)
	res, err := client.Exec.Run(t.Context(), sb.ID, miosa.ExecParams{Command: "node --version"})
	require.NoError(t, err)
	assert.Equal(t, "v20.11.0\n", res.Stdout)

	creates := srv.RequestsTo("POST", "/computers")
	require.Len(t, creates, 1)
	assert.NotEmpty(t, creates[0].IdempotencyKey())
	assert.JSONEq(t, `{"name":"ci","template_type":"miosa-sandbox"}`, string(creates[0].Body))
}
