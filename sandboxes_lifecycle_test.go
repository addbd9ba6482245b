package miosa_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

// These tests pin the leak-proof lifecycle: Sandboxes.All sees every
// sandbox, and Sandboxes.Use destroys what it created whatever happens.

func TestSandboxesAll_WalksEveryPageAndKeepsOnlySandboxes(t *testing.T) {
	srv := miosatest.NewServer(t)
	client := srv.Client()
	var want []string
	for i := range 45 {
		params := miosa.ComputerCreateParams{Name: fmt.Sprint(i)}
		if i%3 == 0 {
			params.TemplateType = "miosa-desktop"
		}
		c, err := client.Sandboxes.Create(t.Context(), params)
		require.NoError(t, err)
		if params.TemplateType == "" {
			want = append(want, c.ID)
		}
	}
	var got []string
	for sb, err := range client.Sandboxes.All(t.Context()) {
		require.NoError(t, err)
		got = append(got, sb.ID)
	}
	assert.Equal(t, want, got, "30 sandboxes over three pages of 20 machines")
	assert.Len(t, srv.RequestsTo("GET", "/computers"), 3)

	listed, err := client.Sandboxes.List(t.Context())
	require.NoError(t, err)
	assert.Len(t, listed, 13, "List is the first page only")
}

func TestSandboxesAll_EndsAgainstAServerThatIgnoresThePage(t *testing.T) {
	page := `{"data":[{"id":"a","template_type":"miosa-sandbox"},{"id":"b","template_type":"miosa-desktop"}],` +
		`"meta":{"total":1000000,"page":1,"per_page":2}}`
	fake, client := newScriptedServer(t, reply{http.StatusOK, page})
	var got []string
	var errs []error
	for sb, err := range client.Sandboxes.All(t.Context()) {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		got = append(got, sb.ID)
	}
	assert.Equal(t, []string{"a"}, got, "the repeated page is not yielded again")
	require.Len(t, errs, 1, "the walk ends with one error")
	assert.Contains(t, errs[0].Error(), "ignore the page parameter")
	assert.Len(t, fake.Requests(), 2)
}

func TestSandboxesAll_BreakAndErrorsStopTheWalk(t *testing.T) {
	fake, client := newScriptedServer(t, reply{http.StatusOK, `{"data":[{"id":"a","template_type":"miosa-sandbox"},{"id":"c","template_type":"miosa-sandbox"}],"meta":{"total":9,"page":1,"per_page":2}}`})
	for range client.Sandboxes.All(t.Context()) {
		break
	}
	assert.Len(t, fake.Requests(), 1, "breaking out fetches nothing more")

	_, client = newScriptedServer(t, reply{http.StatusForbidden, `{"error":"no"}`})
	n := 0
	for _, err := range client.Sandboxes.All(t.Context()) {
		n++
		assert.ErrorIs(t, err, miosa.ErrForbidden)
	}
	assert.Equal(t, 1, n)
}

// useServer is a fake whose machines boot at once, and its client.
func useServer(t *testing.T, opts ...miosatest.Option) (*miosatest.Server, *miosa.Client) {
	t.Helper()
	srv := miosatest.NewServer(t, append([]miosatest.Option{miosatest.WithBootDelay(time.Millisecond)}, opts...)...)
	return srv, srv.Client()
}

// requireDestroyed checks that the server no longer has the sandbox and
// that it was removed by one forced DELETE.
func requireDestroyed(t *testing.T, srv *miosatest.Server, id string) {
	t.Helper()
	require.NotEmpty(t, id, "a sandbox was created")
	_, exists := srv.Status(id)
	assert.False(t, exists, "the sandbox was destroyed")
	deletes := srv.RequestsTo("DELETE", "/computers/"+id)
	require.NotEmpty(t, deletes)
	assert.Equal(t, "true", deletes[0].Query.Get("force"))
}

func TestSandboxesUse_RunsFnOnAReadySandboxAndDestroysIt(t *testing.T) {
	srv, client := useServer(t)
	srv.HandleExec("node --version", miosatest.ExecResult{Stdout: "v20\n"})
	var id string
	err := client.Sandboxes.Use(t.Context(), miosa.ComputerCreateParams{Name: "job"}, func(ctx context.Context, sb *miosa.Sandbox) error {
		id = sb.ID
		assert.Equal(t, miosa.DefaultSandboxTemplate, sb.TemplateType)
		res, err := client.Exec.Run(ctx, sb.ID, miosa.ExecParams{Command: "node --version"})
		require.NoError(t, err, "the sandbox is ready when fn runs")
		assert.Equal(t, "v20\n", res.Stdout)
		return nil
	})
	require.NoError(t, err)
	requireDestroyed(t, srv, id)
	creates := srv.RequestsTo("POST", "/computers")
	require.Len(t, creates, 1)
	assert.NotEmpty(t, creates[0].IdempotencyKey())
}

func TestSandboxesUse_DestroysWhenFnFails(t *testing.T) {
	srv, client := useServer(t)
	errJob := errors.New("job failed")
	var id string
	err := client.Sandboxes.Use(t.Context(), miosa.ComputerCreateParams{}, func(_ context.Context, sb *miosa.Sandbox) error {
		id = sb.ID
		return errJob
	})
	assert.ErrorIs(t, err, errJob)
	requireDestroyed(t, srv, id)
}

func TestSandboxesUse_DestroysWhenFnPanicsAndPanicsAgain(t *testing.T) {
	srv, client := useServer(t)
	var id string
	assert.PanicsWithValue(t, "boom", func() {
		_ = client.Sandboxes.Use(t.Context(), miosa.ComputerCreateParams{}, func(_ context.Context, sb *miosa.Sandbox) error {
			id = sb.ID
			panic("boom")
		})
	})
	requireDestroyed(t, srv, id)
}

func TestSandboxesUse_DestroysWhenCtxIsCancelledDuringFn(t *testing.T) {
	srv, client := useServer(t)
	ctx, cancel := context.WithCancel(t.Context())
	var id string
	err := client.Sandboxes.Use(ctx, miosa.ComputerCreateParams{}, func(ctx context.Context, sb *miosa.Sandbox) error {
		id = sb.ID
		cancel()
		return ctx.Err()
	})
	assert.ErrorIs(t, err, context.Canceled)
	requireDestroyed(t, srv, id)
}

func TestSandboxesUse_DestroysWhenCtxIsCancelledDuringTheWait(t *testing.T) {
	srv, client := useServer(t, miosatest.WithBootDelay(time.Hour))
	ctx, cancel := context.WithCancel(t.Context())
	// The wait's stream is held open until the test cancels ctx.
	srv.Inject(miosatest.Fault{Stream: miosatest.StreamStall})
	go func() {
		for len(srv.RequestsTo("GET", "/sandboxes/*/readiness/stream")) == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	called := false
	err := client.Sandboxes.Use(ctx, miosa.ComputerCreateParams{}, func(context.Context, *miosa.Sandbox) error {
		called = true
		return nil
	})
	assert.ErrorIs(t, err, context.Canceled)
	assert.False(t, called)
	creates := srv.RequestsTo("POST", "/computers")
	require.Len(t, creates, 1)
	requireDestroyed(t, srv, sandboxCreated(t, srv))
}

// sandboxCreated returns the id of the one sandbox the server made, from
// its request log.
func sandboxCreated(t *testing.T, srv *miosatest.Server) string {
	t.Helper()
	deletes := srv.RequestsTo("DELETE", "/computers/*")
	require.Len(t, deletes, 1)
	return deletes[0].Path[len("/computers/"):]
}

func TestSandboxesUse_ASandboxThatNeverBecomesReadyIsAWaitTimeout(t *testing.T) {
	srv, client := useServer(t, miosatest.WithBootDelay(time.Hour), miosatest.WithStreamTimeout(time.Millisecond))
	called := false
	err := client.Sandboxes.Use(t.Context(), miosa.ComputerCreateParams{}, func(context.Context, *miosa.Sandbox) error {
		called = true
		return nil
	})
	assert.ErrorIs(t, err, miosa.ErrWaitTimeout)
	assert.False(t, called, "fn never sees a sandbox that is not ready")
	requireDestroyed(t, srv, sandboxCreated(t, srv))
}

func TestSandboxesUse_DestroysWhenTheWaitFails(t *testing.T) {
	srv, client := useServer(t, miosatest.WithBootDelay(time.Hour), miosatest.WithoutReadinessStream())
	srv.Inject(miosatest.Fault{Method: "GET", Path: "/sandboxes/*/readiness", Status: http.StatusForbidden, Times: miosatest.Always})
	err := client.Sandboxes.Use(t.Context(), miosa.ComputerCreateParams{}, func(context.Context, *miosa.Sandbox) error {
		t.Error("fn must not run")
		return nil
	})
	assert.ErrorIs(t, err, miosa.ErrForbidden)
	requireDestroyed(t, srv, sandboxCreated(t, srv))
}

func TestSandboxesUse_ADestroyAnswered404CountsAsDone(t *testing.T) {
	srv, client := useServer(t)
	err := client.Sandboxes.Use(t.Context(), miosa.ComputerCreateParams{}, func(ctx context.Context, sb *miosa.Sandbox) error {
		return client.Computers.Destroy(ctx, sb.ID)
	})
	require.NoError(t, err)
	assert.Len(t, srv.RequestsTo("DELETE", "/computers/*"), 2)
}

func TestSandboxesUse_JoinsFnsErrorWithTheDestroyError(t *testing.T) {
	srv, client := useServer(t)
	srv.Inject(miosatest.Fault{Method: "DELETE", Status: http.StatusServiceUnavailable, Times: miosatest.Always})
	errJob := errors.New("job failed")
	var id string
	err := client.Sandboxes.Use(t.Context(), miosa.ComputerCreateParams{}, func(_ context.Context, sb *miosa.Sandbox) error {
		id = sb.ID
		return errJob
	})
	assert.ErrorIs(t, err, errJob)
	assert.ErrorIs(t, err, miosa.ErrServer)
	assert.Contains(t, err.Error(), "destroying sandbox "+id+" after use")
}

func TestSandboxesUse_TheDestroyIsBoundedOnItsOwn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := miosatest.NewServer(t, miosatest.WithInMemoryNetwork(), miosatest.WithBootDelay(0))
		client := srv.Client(miosa.WithRequestTimeout(time.Hour))
		// The server never answers the destroy.
		srv.Inject(miosatest.Fault{Method: "DELETE", Delay: 24 * time.Hour})
		start := time.Now()
		err := client.Sandboxes.Use(t.Context(), miosa.ComputerCreateParams{}, func(context.Context, *miosa.Sandbox) error { return nil })
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, time.Minute, time.Since(start), "the destroy gave up after its own minute")
		srv.ClearFaults()
		require.NoError(t, srv.Close())
	})
}

func TestSandboxesUse_WithoutAFunctionSendsNothing(t *testing.T) {
	srv, client := useServer(t)
	err := client.Sandboxes.Use(t.Context(), miosa.ComputerCreateParams{}, nil)
	assert.ErrorIs(t, err, miosa.ErrInvalidParams)
	assert.Empty(t, srv.Requests())
}

func TestSandboxesUse_AContextAlreadyOverCreatesNothing(t *testing.T) {
	srv, client := useServer(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := client.Sandboxes.Use(ctx, miosa.ComputerCreateParams{}, func(context.Context, *miosa.Sandbox) error {
		t.Error("fn must not run")
		return nil
	})
	assert.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, srv.Requests(), "nothing created, so nothing to destroy")
}
