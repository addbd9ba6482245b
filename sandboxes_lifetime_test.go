package miosa_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

// nativeSandbox is a sandbox as the native routes answer it: "state" and
// "template_id", under "data".
const nativeSandbox = `{"data":{"id":"sb_1","state":"running","template_id":"node-22","size":"small","timeout_sec":91}}`

func TestSandboxesExtend_SendsWholeSecondsRoundedUpAndReadsTheNativeSandbox(t *testing.T) {
	fake, client := newScriptedServer(t, reply{200, nativeSandbox})
	sb, err := client.Sandboxes.Extend(t.Context(), "sb_1", 90*time.Second+time.Nanosecond)
	require.NoError(t, err)
	req := fake.onlyRequest(t)
	assert.Equal(t, http.MethodPost, req.Method)
	assert.Equal(t, "/sandboxes/sb_1/extend", req.Path)
	assert.JSONEq(t, `{"timeout_sec":91}`, string(req.Body))
	assert.Empty(t, req.Header.Get("Idempotency-Key"), "extend is not a create")
	assert.Equal(t, miosa.StatusRunning, sb.Status)
	assert.Equal(t, "node-22", sb.TemplateType)
	assert.Equal(t, 91*time.Second, sb.Timeout)
}

func TestSandboxesExtend_ALostAnswerIsOutcomeUnknownAndNeverResent(t *testing.T) {
	srv, client, sb := withSandbox(t)
	srv.Inject(miosatest.Fault{Method: "POST", Path: "/sandboxes/*/extend", Drop: miosatest.DropAfterAct})

	_, err := client.Sandboxes.Extend(t.Context(), sb.ID, time.Hour)
	require.ErrorIs(t, err, miosa.ErrOutcomeUnknown)
	assert.Len(t, srv.RequestsTo("POST", "/sandboxes/*/extend"), 1, "extending twice is not extending once")
	got, err := client.Sandboxes.Get(t.Context(), sb.ID)
	require.NoError(t, err)
	assert.Equal(t, time.Hour, got.Timeout, "the server did act on the one request")
}

func TestSandboxesExtend_IsRetriedOnlyWhenTheServerDidNothing(t *testing.T) {
	for _, tc := range []struct {
		name     string
		first    reply
		requests int
	}{
		{"429", reply{429, `{"message":"slow down"}`}, 2},
		{"retryable", reply{409, `{"error":{"code":"SANDBOX_STARTING","message":"booting","retryable":true,"retry_after_ms":1}}`}, 2},
		{"503", reply{503, `Service Unavailable`}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake, client := newScriptedServer(t, tc.first, reply{200, nativeSandbox})
			_, _ = client.Sandboxes.Extend(t.Context(), "sb_1", time.Minute)
			assert.Len(t, fake.Requests(), tc.requests)
		})
	}
}

func TestSandboxesPause_IsRetriedLikeAReadAndStopsExec(t *testing.T) {
	srv, client, sb := withSandbox(t)
	srv.Inject(miosatest.Fault{Method: "POST", Path: "/sandboxes/*/pause", Drop: miosatest.DropAfterAct})

	paused, err := client.Sandboxes.Pause(t.Context(), sb.ID)
	require.NoError(t, err)
	assert.Equal(t, miosa.StatusPaused, paused.Status)
	pauses := srv.RequestsTo("POST", "/sandboxes/*/pause")
	require.Len(t, pauses, 2, "the lost answer's call was sent again")
	assert.Empty(t, pauses[0].IdempotencyKey(), "pausing twice is pausing once: no key needed")
	assert.JSONEq(t, `{}`, string(pauses[0].Body))

	_, err = client.Exec.Run(t.Context(), sb.ID, miosa.ExecParams{Command: "echo hi"})
	assert.ErrorIs(t, err, miosa.ErrConflict, "a paused sandbox refuses exec")
	var apiErr *miosa.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "NOT_RUNNING", apiErr.Code)

	resumed, err := client.Sandboxes.Resume(t.Context(), sb.ID)
	require.NoError(t, err)
	assert.NotEqual(t, miosa.StatusPaused, resumed.Status)
	ready, err := client.Sandboxes.WaitUntilReady(t.Context(), sb.ID, miosa.WaitOptions{})
	require.NoError(t, err)
	require.True(t, ready)
	res, err := client.Exec.Run(t.Context(), sb.ID, miosa.ExecParams{Command: "echo hi"})
	require.NoError(t, err)
	assert.Equal(t, "hi\n", res.Stdout)
}

func TestSandboxesResume_ALostAnswerIsRetriedWithTheSameKey(t *testing.T) {
	srv, client, sb := withSandbox(t)
	_, err := client.Sandboxes.Pause(t.Context(), sb.ID)
	require.NoError(t, err)
	srv.Inject(miosatest.Fault{Method: "POST", Path: "/sandboxes/*/resume", Drop: miosatest.DropAfterAct})

	_, err = client.Sandboxes.Resume(t.Context(), sb.ID, miosa.WithIdempotencyKey("wake-1"))
	require.NoError(t, err)
	resumes := srv.RequestsTo("POST", "/sandboxes/*/resume")
	require.Len(t, resumes, 2)
	for _, r := range resumes {
		assert.Equal(t, "wake-1", r.IdempotencyKey())
	}
	assert.Equal(t, http.StatusOK, resumes[1].Status, "the server replayed its first answer")
}

func TestSandboxesLifetime_BadInputSendsNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		call func(ctx context.Context, s *miosa.SandboxesService) error
	}{
		{"extend by zero", func(ctx context.Context, s *miosa.SandboxesService) error {
			_, err := s.Extend(ctx, "sb_1", 0)
			return err
		}},
		{"extend by a negative duration", func(ctx context.Context, s *miosa.SandboxesService) error {
			_, err := s.Extend(ctx, "sb_1", -time.Minute)
			return err
		}},
		{"extend without id", func(ctx context.Context, s *miosa.SandboxesService) error {
			_, err := s.Extend(ctx, "", time.Minute)
			return err
		}},
		{"pause without id", func(ctx context.Context, s *miosa.SandboxesService) error {
			_, err := s.Pause(ctx, "")
			return err
		}},
		{"resume with a dot-dot id", func(ctx context.Context, s *miosa.SandboxesService) error {
			_, err := s.Resume(ctx, "..")
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake, client := newScriptedServer(t)
			require.ErrorIs(t, tc.call(t.Context(), client.Sandboxes), miosa.ErrInvalidParams)
			assert.Empty(t, fake.Requests())
		})
	}
}
