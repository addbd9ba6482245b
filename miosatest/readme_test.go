// The test below is the README's "Testing your code with miosatest" snippet,
// kept here so that it keeps compiling and passing.

package miosatest_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

func TestProvisioner_RunsNodeOnce(t *testing.T) {
	srv := miosatest.NewServer(t) // closed when the test ends
	srv.HandleExec("node --version", miosatest.ExecResult{Stdout: "v20.11.0\n"})
	// The first create attempt fails; the SDK retries with the same key.
	srv.Inject(miosatest.Fault{Method: "POST", Path: "/computers", Status: 503})
	client := srv.Client()

	sb, err := client.Sandboxes.Create(t.Context(), miosa.ComputerCreateParams{Name: "ci"})
	require.NoError(t, err)
	ready, err := client.Sandboxes.WaitUntilReady(t.Context(), sb.ID, miosa.WaitOptions{})
	require.NoError(t, err)
	require.True(t, ready)

	res, err := client.Exec.Run(t.Context(), sb.ID, miosa.ExecParams{Command: "node --version"})
	require.NoError(t, err)
	assert.Equal(t, "v20.11.0\n", res.Stdout)

	creates := srv.RequestsTo("POST", "/computers")
	require.Len(t, creates, 2)
	assert.Equal(t, creates[0].IdempotencyKey(), creates[1].IdempotencyKey())
}
