package miosa_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

// These tests run the SDK's main flows end to end against miosatest, the
// stateful fake, rather than against hand-written handlers.

func TestFlow_CreateWaitExecForkDelete(t *testing.T) {
	for _, tc := range []struct {
		name     string
		server   []miosatest.Option
		wait     miosa.WaitOptions
		streams  int  // readiness stream requests expected
		polls    bool // whether readiness polls are expected
		pollOnly bool
	}{
		{name: "stream", streams: 1},
		{name: "stream over TLS and HTTP/2", server: []miosatest.Option{miosatest.WithTLS()}, streams: 1},
		{name: "stream answers 404", server: []miosatest.Option{miosatest.WithoutReadinessStream()}, streams: 1, polls: true},
		{name: "poll only", wait: miosa.WaitOptions{PollOnly: true}, streams: 0, polls: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := miosatest.NewServer(t, append(tc.server, miosatest.WithBootDelay(30*time.Millisecond))...)
			client := srv.Client()
			ctx := t.Context()

			sb, err := client.Sandboxes.Create(ctx, miosa.ComputerCreateParams{Name: "flow"})
			require.NoError(t, err)
			assert.Equal(t, miosa.StatusCreating, sb.Status)

			ready, err := client.Sandboxes.WaitUntilReady(ctx, sb.ID, tc.wait)
			require.NoError(t, err)
			require.True(t, ready)
			assert.Len(t, srv.RequestsTo("GET", "/sandboxes/*/readiness/stream"), tc.streams)
			polls := srv.RequestsTo("GET", "/sandboxes/*/readiness")
			if tc.polls {
				assert.NotEmpty(t, polls)
			} else {
				assert.Empty(t, polls)
			}

			res, err := client.Exec.Run(ctx, sb.ID, miosa.ExecParams{Command: "echo flow works"})
			require.NoError(t, err)
			assert.Equal(t, "flow works\n", res.Output)
			require.NoError(t, res.Err())

			fork, err := client.Sandboxes.Fork(ctx, sb.ID, miosa.SandboxForkParams{Name: "flow-fork"})
			require.NoError(t, err)
			assert.NotEqual(t, sb.ID, fork.ID)
			assert.Equal(t, miosa.DefaultSandboxTemplate, fork.TemplateType)

			listed, err := client.Sandboxes.List(ctx)
			require.NoError(t, err)
			assert.Len(t, listed, 2)

			for _, id := range []string{fork.ID, sb.ID} {
				require.NoError(t, client.Computers.Destroy(ctx, id))
				_, err = client.Sandboxes.Get(ctx, id)
				assert.ErrorIs(t, err, miosa.ErrNotFound)
			}
		})
	}
}

func TestFlow_RetriedCreateMakesOneSandbox(t *testing.T) {
	srv := miosatest.NewServer(t)
	// The first answer is lost after the server created the sandbox, the
	// second attempt meets a 503; the third must get the first sandbox back.
	srv.Inject(miosatest.Fault{Method: "POST", Path: "/computers", Drop: miosatest.DropAfterAct})
	srv.Inject(miosatest.Fault{Method: "POST", Path: "/computers", Status: 503})

	sb, err := srv.Client().Sandboxes.Create(t.Context(), miosa.ComputerCreateParams{Name: "once"})
	require.NoError(t, err)

	creates := srv.RequestsTo("POST", "/computers")
	require.Len(t, creates, 3)
	for _, r := range creates[1:] {
		assert.Equal(t, creates[0].IdempotencyKey(), r.IdempotencyKey())
	}
	all, err := srv.Client().Computers.List(t.Context(), miosa.ComputerListParams{})
	require.NoError(t, err)
	require.Len(t, all, 1, "one logical create, one sandbox")
	assert.Equal(t, sb.ID, all[0].ID)
}

func TestFlow_ExecWhoseAnswerIsLostRunsOnceAndIsOutcomeUnknown(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	var runs atomic.Int32
	srv.HandleExecFunc(func(context.Context, miosatest.ExecRequest) miosatest.ExecResult {
		runs.Add(1)
		return miosatest.ExecResult{Stdout: "charged\n"}
	})
	client := srv.Client()
	sb, err := client.Sandboxes.Create(t.Context(), miosa.ComputerCreateParams{})
	require.NoError(t, err)

	srv.Inject(miosatest.Fault{Method: "POST", Path: "/computers/*/exec", Drop: miosatest.DropAfterAct})
	_, err = client.Exec.Run(t.Context(), sb.ID, miosa.ExecParams{Command: "charge-card"})
	require.ErrorIs(t, err, miosa.ErrOutcomeUnknown)
	assert.Len(t, srv.RequestsTo("POST", "/computers/*/exec"), 1, "exec is never sent twice")
	assert.Equal(t, int32(1), runs.Load())
}

func TestFlow_ExecIsRetriedWhenTheServerDidNotAct(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	client := srv.Client()
	sb, err := client.Sandboxes.Create(t.Context(), miosa.ComputerCreateParams{})
	require.NoError(t, err)

	srv.Inject(miosatest.Fault{Method: "POST", Path: "/computers/*/exec", Status: 429})
	res, err := client.Exec.Run(t.Context(), sb.ID, miosa.ExecParams{Command: "echo after 429"})
	require.NoError(t, err)
	assert.Equal(t, "after 429\n", res.Output)

	srv.Inject(miosatest.Fault{Method: "POST", Path: "/computers/*/exec", Status: 500})
	_, err = client.Exec.Run(t.Context(), sb.ID, miosa.ExecParams{Command: "echo after 500"})
	assert.ErrorIs(t, err, miosa.ErrServer)
	assert.Len(t, srv.RequestsTo("POST", "/computers/*/exec"), 3, "429 retried once, 500 not retried")
}

func TestFlow_WaitUntilReadyWhenTheStreamMisbehaves(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fault  miosatest.StreamFault
		server []miosatest.Option
		wait   miosa.WaitOptions
		ready  bool
	}{
		{name: "stream ends without a verdict: polling decides", fault: miosatest.StreamEndWithoutVerdict, ready: true},
		{name: "stream stalls: the local timeout decides", fault: miosatest.StreamStall,
			server: []miosatest.Option{miosatest.WithHeartbeatInterval(5 * time.Millisecond)},
			wait:   miosa.WaitOptions{Timeout: 100 * time.Millisecond}, ready: false},
		{name: "server gives up first", server: []miosatest.Option{miosatest.WithStreamTimeout(20 * time.Millisecond)},
			ready: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := miosatest.NewServer(t, append(tc.server, miosatest.WithBootDelay(time.Hour))...)
			client := srv.Client()
			sb, err := client.Sandboxes.Create(t.Context(), miosa.ComputerCreateParams{})
			require.NoError(t, err)
			if tc.ready {
				require.NoError(t, srv.SetStatus(sb.ID, miosa.StatusRunning))
			}
			if tc.fault != miosatest.StreamNormal {
				srv.Inject(miosatest.Fault{Stream: tc.fault})
			}

			ready, err := client.Sandboxes.WaitUntilReady(t.Context(), sb.ID, tc.wait)
			require.NoError(t, err)
			assert.Equal(t, tc.ready, ready)
			assert.Len(t, srv.RequestsTo("GET", "/sandboxes/*/readiness/stream"), 1, "the stream is never reopened")
		})
	}
}

// TestFlow_WaitForASandboxThatFailsOrVanishes runs WaitUntilReady against
// the fake's real readiness stream, which says nothing about a sandbox that
// failed or was deleted: the wait must still end within about a second,
// with a MachineStateError.
func TestFlow_WaitForASandboxThatFailsOrVanishes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		wait    miosa.WaitOptions
		breakIt func(srv *miosatest.Server, client *miosa.Client, id string) error
		want    miosa.ComputerStatus
		gone    bool
	}{
		{"fails, stream", miosa.WaitOptions{}, func(srv *miosatest.Server, _ *miosa.Client, id string) error {
			return srv.SetStatus(id, miosa.StatusError)
		}, miosa.StatusError, false},
		{"fails, poll only", miosa.WaitOptions{PollOnly: true}, func(srv *miosatest.Server, _ *miosa.Client, id string) error {
			return srv.SetStatus(id, miosa.StatusError)
		}, miosa.StatusError, false},
		{"deleted, stream", miosa.WaitOptions{}, func(_ *miosatest.Server, client *miosa.Client, id string) error {
			return client.Computers.Destroy(context.Background(), id)
		}, miosa.StatusDestroyed, true},
		{"deleted, poll only", miosa.WaitOptions{PollOnly: true}, func(_ *miosatest.Server, client *miosa.Client, id string) error {
			return client.Computers.Destroy(context.Background(), id)
		}, miosa.StatusDestroyed, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := miosatest.NewServer(t, miosatest.WithBootDelay(time.Hour))
			client := srv.Client()
			sb, err := client.Sandboxes.Create(t.Context(), miosa.ComputerCreateParams{Name: "doomed"})
			require.NoError(t, err)
			time.AfterFunc(50*time.Millisecond, func() { assert.NoError(t, tc.breakIt(srv, client, sb.ID)) })

			ready, err := client.Sandboxes.WaitUntilReady(t.Context(), sb.ID, tc.wait)
			assert.False(t, ready)
			var stateErr *miosa.MachineStateError
			require.ErrorAs(t, err, &stateErr)
			assert.Equal(t, tc.want, stateErr.Status)
			assert.Equal(t, tc.gone, errors.Is(err, miosa.ErrNotFound))
		})
	}
}

// TestFlow_SilentStreamStillFindsAReadySandbox runs WaitUntilReady against a
// fake whose stream only ever sends heartbeats, as a buffering proxy would
// leave it: readiness must be found another way within about a second, not
// at the wait's timeout.
func TestFlow_SilentStreamStillFindsAReadySandbox(t *testing.T) {
	t.Parallel()
	srv := miosatest.NewServer(t, miosatest.WithSilentReadinessStream(), miosatest.WithHeartbeatInterval(10*time.Millisecond))
	client := srv.Client()
	sb, err := client.Sandboxes.Create(t.Context(), miosa.ComputerCreateParams{Name: "quiet"})
	require.NoError(t, err)

	ready, err := client.Sandboxes.WaitUntilReady(t.Context(), sb.ID, miosa.WaitOptions{Timeout: 10 * time.Second})
	require.NoError(t, err)
	assert.True(t, ready)
	assert.Len(t, srv.RequestsTo("GET", "/sandboxes/"+sb.ID+"/readiness/stream"), 1)
	assert.NotEmpty(t, srv.RequestsTo("GET", "/sandboxes/"+sb.ID+"/readiness"), "readiness was polled beside the stream")
}
