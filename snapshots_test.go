package miosa_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

// withSandbox starts a fake whose machines boot at once and snapshots are
// ready at once (unless opts say otherwise), and creates a running sandbox.
func withSandbox(t *testing.T, opts ...miosatest.Option) (*miosatest.Server, *miosa.Client, *miosa.Sandbox) {
	t.Helper()
	srv := miosatest.NewServer(t, append([]miosatest.Option{miosatest.WithBootDelay(0), miosatest.WithBuildStepDelay(0)}, opts...)...)
	client := srv.Client()
	sb, err := client.Sandboxes.Create(t.Context(), miosa.ComputerCreateParams{Name: "work"})
	require.NoError(t, err)
	return srv, client, sb
}

func TestSnapshotsCreate_SendsOnlyTheFieldsSetWithAnIdempotencyKey(t *testing.T) {
	for _, tc := range []struct {
		name   string
		params miosa.SnapshotCreateParams
		want   string
	}{
		{"zero", miosa.SnapshotCreateParams{}, `{}`},
		{"all set", miosa.SnapshotCreateParams{Comment: "before upgrade", Keep: true, Retention: 90*time.Second + time.Millisecond},
			`{"comment":"before upgrade","keep":true,"retention_seconds":91}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake, client := newScriptedServer(t, reply{201, `{"data":{"id":"snap_1","sandbox_id":"sb_1","status":"creating"}}`})
			snap, err := client.Snapshots.Create(t.Context(), "sb_1", tc.params)
			require.NoError(t, err)
			assert.Equal(t, "snap_1", snap.ID)
			assert.Equal(t, miosa.SnapshotCreating, snap.Status)
			req := fake.onlyRequest(t)
			assert.Equal(t, http.MethodPost, req.Method)
			assert.Equal(t, "/sandboxes/sb_1/snapshots", req.Path)
			assert.JSONEq(t, tc.want, string(req.Body))
			assert.NotEmpty(t, req.Header.Get("Idempotency-Key"))
		})
	}
}

func TestSnapshots_CreatesHonourWithIdempotencyKey(t *testing.T) {
	fake, client := newScriptedServer(t,
		reply{201, `{"data":{"id":"snap_1","sandbox_id":"sb_1","status":"creating"}}`},
		reply{201, `{"data":{"id":"sb_2","state":"provisioning","template_id":"miosa-sandbox"}}`})
	_, err := client.Snapshots.Create(t.Context(), "sb_1", miosa.SnapshotCreateParams{}, miosa.WithIdempotencyKey("checkpoint-42"))
	require.NoError(t, err)
	_, err = client.Snapshots.Restore(t.Context(), "sb_1", "snap_1", miosa.WithIdempotencyKey("branch-42"))
	require.NoError(t, err)
	reqs := fake.Requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, "checkpoint-42", reqs[0].Header.Get("Idempotency-Key"))
	assert.Equal(t, "branch-42", reqs[1].Header.Get("Idempotency-Key"))
}

func TestSnapshotsCreate_ALostAnswerIsRetriedWithTheSameKeyAndMakesOneSnapshot(t *testing.T) {
	srv, client, sb := withSandbox(t)
	srv.Inject(miosatest.Fault{Method: "POST", Path: "/sandboxes/*/snapshots", Drop: miosatest.DropAfterAct})

	snap, err := client.Snapshots.Create(t.Context(), sb.ID, miosa.SnapshotCreateParams{Comment: "once"})
	require.NoError(t, err)

	creates := srv.RequestsTo("POST", "/sandboxes/*/snapshots")
	require.Len(t, creates, 2)
	assert.NotEmpty(t, creates[0].IdempotencyKey())
	assert.Equal(t, creates[0].IdempotencyKey(), creates[1].IdempotencyKey())
	listed, err := client.Snapshots.List(t.Context(), sb.ID)
	require.NoError(t, err)
	require.Len(t, listed, 1, "one logical create, one snapshot")
	assert.Equal(t, snap.ID, listed[0].ID)
}

func TestSnapshotsRestore_ALostAnswerIsRetriedWithTheSameKeyAndMakesOneSandbox(t *testing.T) {
	srv, client, sb := withSandbox(t)
	snap, err := client.Snapshots.Create(t.Context(), sb.ID, miosa.SnapshotCreateParams{})
	require.NoError(t, err)
	srv.Inject(miosatest.Fault{Method: "POST", Path: "/sandboxes/*/restore/*", Drop: miosatest.DropAfterAct})
	srv.Inject(miosatest.Fault{Method: "POST", Path: "/sandboxes/*/restore/*", Status: http.StatusServiceUnavailable})

	restored, err := client.Snapshots.Restore(t.Context(), sb.ID, snap.ID)
	require.NoError(t, err)

	restores := srv.RequestsTo("POST", "/sandboxes/*/restore/*")
	require.Len(t, restores, 3)
	for _, r := range restores[1:] {
		assert.Equal(t, restores[0].IdempotencyKey(), r.IdempotencyKey())
	}
	machines, err := client.Computers.List(t.Context(), miosa.ComputerListParams{})
	require.NoError(t, err)
	require.Len(t, machines, 2, "the sandbox and ONE restored sandbox")
	assert.Equal(t, restored.ID, machines[1].ID)
	assert.NotEqual(t, sb.ID, restored.ID, "a restore is a new sandbox")
}

func TestSnapshotsRestore_BranchesWithTheSnapshotsFilesAndLeavesTheSourceAlone(t *testing.T) {
	srv, client, sb := withSandbox(t)
	ctx := t.Context()
	require.NoError(t, srv.WriteFile(sb.ID, "/home/user/app/config.json", []byte(`{"v":1}`)))
	snap, err := client.Snapshots.Create(ctx, sb.ID, miosa.SnapshotCreateParams{Comment: "before the risky change"})
	require.NoError(t, err)
	_, err = client.Snapshots.WaitReady(ctx, sb.ID, snap.ID, miosa.WaitOptions{})
	require.NoError(t, err)
	require.NoError(t, client.Files.Delete(ctx, sb.ID, "/home/user/app/config.json", miosa.FileDeleteParams{}))

	branch, err := client.Snapshots.Restore(ctx, sb.ID, snap.ID)
	require.NoError(t, err)
	assert.Equal(t, miosa.StatusRunning, branch.Status, "read from the native object's state")
	assert.Equal(t, miosa.DefaultSandboxTemplate, branch.TemplateType, "read from the native object's template_id")

	var restoredFile bytes.Buffer
	_, err = client.Files.Download(ctx, branch.ID, "/home/user/app/config.json", &restoredFile)
	require.NoError(t, err)
	assert.JSONEq(t, `{"v":1}`, restoredFile.String(), "the branch has the file as it was")
	_, err = client.Files.Download(ctx, sb.ID, "/home/user/app/config.json", &bytes.Buffer{})
	assert.ErrorIs(t, err, miosa.ErrNotFound, "the source keeps its own change")
}

func TestSnapshotsRestore_WaitsOutASnapshotThatIsNotReadyYet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := miosatest.NewServer(t, miosatest.WithInMemoryNetwork(), miosatest.WithBootDelay(0),
			miosatest.WithBuildStepDelay(time.Second))
		client := srv.Client()
		sb, err := client.Sandboxes.Create(t.Context(), miosa.ComputerCreateParams{})
		require.NoError(t, err)
		snap, err := client.Snapshots.Create(t.Context(), sb.ID, miosa.SnapshotCreateParams{})
		require.NoError(t, err)
		require.Equal(t, miosa.SnapshotCreating, snap.Status)

		start := time.Now()
		_, err = client.Snapshots.Restore(t.Context(), sb.ID, snap.ID)
		require.NoError(t, err)
		// The hint says when the snapshot is due to be ready; a retry that
		// arrives in the same instant as the snapshot's last step may meet
		// it a moment early and wait once more, for the 1 ms left.
		elapsed := time.Since(start)
		assert.GreaterOrEqual(t, elapsed, 2*time.Second, "the 409 SNAPSHOT_NOT_READY's retry_after_ms is honoured")
		assert.LessOrEqual(t, elapsed, 2*time.Second+time.Millisecond)
		restores := srv.RequestsTo("POST", "/sandboxes/*/restore/*")
		require.GreaterOrEqual(t, len(restores), 2)
		assert.Equal(t, http.StatusConflict, restores[0].Status)
		assert.Equal(t, http.StatusCreated, restores[len(restores)-1].Status)
		for _, r := range restores[1:] {
			assert.Equal(t, restores[0].IdempotencyKey(), r.IdempotencyKey())
		}
	})
}

// snapshotsReply is a List answer holding snapshot snap_1 in state status.
func snapshotsReply(status string) reply {
	return reply{200, `{"data":[{"id":"snap_0","sandbox_id":"sb_1","status":"ready"},` +
		`{"id":"snap_1","sandbox_id":"sb_1","status":"` + status + `","comment":"c"}]}`}
}

func TestSnapshotsWaitReady_PollsTheListUntilReady(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake, client := newTplBubbleClient(t, snapshotsReply("creating"), snapshotsReply("uploading"), snapshotsReply("ready"))
		start := time.Now()
		snap, err := client.Snapshots.WaitReady(t.Context(), "sb_1", "snap_1", miosa.WaitOptions{})
		require.NoError(t, err)
		assert.Equal(t, "snap_1", snap.ID)
		assert.Equal(t, miosa.SnapshotReady, snap.Status)
		assert.Equal(t, 4*time.Second, time.Since(start), "three polls, 2 s apart")
		for _, req := range fake.Requests() {
			assert.Equal(t, http.MethodGet, req.Method)
			assert.Equal(t, "/sandboxes/sb_1/snapshots", req.Path)
		}
	})
}

func TestSnapshotsWaitReady_EndsAtOnceWhenTheSnapshotCannotBecomeReady(t *testing.T) {
	for _, tc := range []struct {
		name     string
		final    reply
		failed   bool
		notFound bool
	}{
		{"failed", snapshotsReply("failed"), true, false},
		{"deleted", snapshotsReply("deleted"), false, true},
		{"no longer listed", reply{200, `{"data":[{"id":"snap_0","status":"ready"}]}`}, false, true},
		{"sandbox gone", reply{404, `{"error":{"code":"NOT_FOUND","message":"sandbox not found"}}`}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fake, client := newTplBubbleClient(t, snapshotsReply("uploading"), tc.final)
				snap, err := client.Snapshots.WaitReady(t.Context(), "sb_1", "snap_1", miosa.WaitOptions{})
				require.Error(t, err)
				var failed *miosa.SnapshotFailedError
				assert.Equal(t, tc.failed, errors.As(err, &failed))
				assert.Equal(t, tc.notFound, errors.Is(err, miosa.ErrNotFound))
				assert.NotErrorIs(t, err, miosa.ErrWaitTimeout)
				assert.Len(t, fake.Requests(), 2, "the wait ends at the poll that shows it")
				if tc.failed {
					assert.Same(t, failed.Snapshot, snap, "the failed snapshot is returned too")
					assert.Equal(t, `miosa: sandbox sb_1: snapshot snap_1 ended "failed"`, err.Error())
				}
			})
		})
	}
}

func TestSnapshotsWaitReady_TimesOutWithErrWaitTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, client := newTplBubbleClient(t, snapshotsReply("uploading"))
		start := time.Now()
		snap, err := client.Snapshots.WaitReady(t.Context(), "sb_1", "snap_1", miosa.WaitOptions{})
		require.ErrorIs(t, err, miosa.ErrWaitTimeout)
		assert.Contains(t, err.Error(), `"uploading"`)
		assert.Equal(t, 10*time.Minute, time.Since(start), "the default timeout")
		require.NotNil(t, snap)
		assert.Equal(t, miosa.SnapshotUploading, snap.Status)
	})
}

func TestSnapshotsWaitReady_RidesOutTransientErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake, client := newTplBubbleClient(t,
			reply{503, `Service Unavailable`},
			reply{429, `{"message":"slow down","retry_after":5}`},
			snapshotsReply("ready"))
		start := time.Now()
		snap, err := client.Snapshots.WaitReady(t.Context(), "sb_1", "snap_1", miosa.WaitOptions{})
		require.NoError(t, err)
		assert.Equal(t, miosa.SnapshotReady, snap.Status)
		assert.Len(t, fake.Requests(), 3, "one request per poll")
		assert.Equal(t, 2*time.Second+5*time.Second, time.Since(start), "the 429's hint stretches one interval")
	})
}

func TestSnapshotsWaitReady_CallersContextEndsTheWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, client := newTplBubbleClient(t, snapshotsReply("creating"))
		ctx, cancel := context.WithTimeout(t.Context(), 7*time.Second)
		defer cancel()
		_, err := client.Snapshots.WaitReady(ctx, "sb_1", "snap_1", miosa.WaitOptions{})
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.NotErrorIs(t, err, miosa.ErrWaitTimeout)
	})
}

func TestSnapshotsWaitReady_AFailedSnapshotOfTheFake(t *testing.T) {
	srv, client, sb := withSandbox(t)
	srv.FailSnapshots(1, "disk full")
	snap, err := client.Snapshots.Create(t.Context(), sb.ID, miosa.SnapshotCreateParams{})
	require.NoError(t, err)
	_, err = client.Snapshots.WaitReady(t.Context(), sb.ID, snap.ID, miosa.WaitOptions{})
	var failed *miosa.SnapshotFailedError
	require.ErrorAs(t, err, &failed)
	assert.Equal(t, miosa.SnapshotFailed, failed.Snapshot.Status)
	assert.Contains(t, string(failed.Snapshot.Raw), "disk full")

	_, err = client.Snapshots.Restore(t.Context(), sb.ID, snap.ID)
	assert.ErrorIs(t, err, miosa.ErrConflict, "nothing can be restored from a failed snapshot")
}

func TestSnapshotsDelete_A404ToARetryIsDone(t *testing.T) {
	srv, client, sb := withSandbox(t)
	snap, err := client.Snapshots.Create(t.Context(), sb.ID, miosa.SnapshotCreateParams{})
	require.NoError(t, err)
	srv.Inject(miosatest.Fault{Method: "DELETE", Path: "/sandboxes/*/snapshots/*", Drop: miosatest.DropAfterAct})

	require.NoError(t, client.Snapshots.Delete(t.Context(), sb.ID, snap.ID))
	deletes := srv.RequestsTo("DELETE", "/sandboxes/*/snapshots/*")
	require.Len(t, deletes, 2)
	assert.Equal(t, http.StatusNotFound, deletes[1].Status, "the first attempt had deleted it")
	listed, err := client.Snapshots.List(t.Context(), sb.ID)
	require.NoError(t, err)
	assert.Empty(t, listed)

	err = client.Snapshots.Delete(t.Context(), sb.ID, snap.ID)
	assert.ErrorIs(t, err, miosa.ErrNotFound, "a 404 to the first attempt is an error")
}

func TestSnapshots_BadInputSendsNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		call func(ctx context.Context, s *miosa.SnapshotsService) error
	}{
		{"create without sandbox", func(ctx context.Context, s *miosa.SnapshotsService) error {
			_, err := s.Create(ctx, "", miosa.SnapshotCreateParams{})
			return err
		}},
		{"negative retention", func(ctx context.Context, s *miosa.SnapshotsService) error {
			_, err := s.Create(ctx, "sb_1", miosa.SnapshotCreateParams{Retention: -time.Second})
			return err
		}},
		{"list without sandbox", func(ctx context.Context, s *miosa.SnapshotsService) error {
			_, err := s.List(ctx, " ")
			return err
		}},
		{"wait without snapshot", func(ctx context.Context, s *miosa.SnapshotsService) error {
			_, err := s.WaitReady(ctx, "sb_1", "", miosa.WaitOptions{})
			return err
		}},
		{"wait with a negative timeout", func(ctx context.Context, s *miosa.SnapshotsService) error {
			_, err := s.WaitReady(ctx, "sb_1", "snap_1", miosa.WaitOptions{Timeout: -time.Second})
			return err
		}},
		{"restore without snapshot", func(ctx context.Context, s *miosa.SnapshotsService) error {
			_, err := s.Restore(ctx, "sb_1", "")
			return err
		}},
		{"restore with a dot-dot snapshot", func(ctx context.Context, s *miosa.SnapshotsService) error {
			_, err := s.Restore(ctx, "sb_1", "..")
			return err
		}},
		{"restore without sandbox", func(ctx context.Context, s *miosa.SnapshotsService) error {
			_, err := s.Restore(ctx, "", "snap_1")
			return err
		}},
		{"delete without snapshot", func(ctx context.Context, s *miosa.SnapshotsService) error {
			return s.Delete(ctx, "sb_1", "")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake, client := newScriptedServer(t)
			require.ErrorIs(t, tc.call(t.Context(), client.Snapshots), miosa.ErrInvalidParams)
			assert.Empty(t, fake.Requests())
		})
	}
}

func TestSnapshots_IDsArePathEscaped(t *testing.T) {
	fake, client := newScriptedServer(t, reply{204, ``})
	require.NoError(t, client.Snapshots.Delete(t.Context(), "sb/1", "snap?x=1"))
	assert.Equal(t, "/sandboxes/sb%2F1/snapshots/snap%3Fx=1", fake.onlyRequest(t).Path)
}

func TestSnapshotsList_ReadsEveryListShape(t *testing.T) {
	const item = `{"id":"snap_1","sandbox_id":"sb_1","status":"ready","comment":"c","keep":true,` +
		`"retention_seconds":3600,"expires_at":null,"created_at":"2026-05-18T10:00:00Z","last_used_at":"2026-05-18T11:00:00Z"}`
	for name, body := range map[string]string{
		"data":      `{"data":[` + item + `]}`,
		"bare":      `[` + item + `]`,
		"snapshots": `{"snapshots":[` + item + `]}`,
		"items":     `{"items":[` + item + `],"meta":{"total":1}}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, client := newScriptedServer(t, reply{200, body})
			got, err := client.Snapshots.List(t.Context(), "sb_1")
			require.NoError(t, err)
			require.Len(t, got, 1)
			s := got[0]
			assert.Equal(t, "snap_1", s.ID)
			assert.Equal(t, "sb_1", s.SandboxID)
			assert.Equal(t, miosa.SnapshotReady, s.Status)
			assert.Equal(t, "c", s.Comment)
			assert.True(t, s.Keep)
			assert.Equal(t, time.Hour, s.Retention)
			assert.True(t, s.ExpiresAt.IsZero())
			assert.Equal(t, time.Date(2026, 5, 18, 10, 0, 0, 0, time.UTC), s.CreatedAt)
			assert.Equal(t, time.Date(2026, 5, 18, 11, 0, 0, 0, time.UTC), s.LastUsedAt)
			assert.JSONEq(t, item, string(s.Raw))
		})
	}
}

func TestSnapshot_DecodesTheOtherNamingsAndRefusesNoID(t *testing.T) {
	var s miosa.Snapshot
	require.NoError(t, s.UnmarshalJSON([]byte(`{"id":42,"sandbox_id":7,"state":"uploading"}`)))
	assert.Equal(t, "42", s.ID, "an integer id is read as its text")
	assert.Equal(t, "7", s.SandboxID)
	assert.Equal(t, miosa.SnapshotUploading, s.Status, `"state" when "status" is absent`)
	require.NoError(t, s.UnmarshalJSON([]byte(`{"id":"a","status":"ready","state":"creating"}`)))
	assert.Equal(t, miosa.SnapshotReady, s.Status, `"status" wins`)
	assert.Error(t, s.UnmarshalJSON([]byte(`{"status":"ready"}`)), "an object without an id is no snapshot")
	assert.Error(t, s.UnmarshalJSON([]byte(`{"id":"a","retention_seconds":-1}`)), "a negative retention is refused")
}

func TestSnapshotFailedError_MatchesNoSentinel(t *testing.T) {
	err := error(&miosa.SnapshotFailedError{Snapshot: &miosa.Snapshot{ID: "snap_1", SandboxID: "sb_1", Status: miosa.SnapshotFailed}})
	for _, sentinel := range []error{miosa.ErrWaitTimeout, miosa.ErrNotFound, miosa.ErrConflict, miosa.ErrServer} {
		assert.NotErrorIs(t, err, sentinel)
	}
	assert.Equal(t, "miosa: snapshot failed", (&miosa.SnapshotFailedError{}).Error())
	assert.Equal(t, `miosa: snapshot snap_1 ended "failed"`,
		(&miosa.SnapshotFailedError{Snapshot: &miosa.Snapshot{ID: "snap_1", Status: miosa.SnapshotFailed}}).Error())
}
