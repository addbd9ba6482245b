package miosatest_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

// newSandbox creates a sandbox over raw HTTP and returns its id.
func newSandbox(t *testing.T, srv *miosatest.Server) string {
	t.Helper()
	res := call(t, srv, "POST", "/computers", `{"template_type":"miosa-sandbox"}`)
	require.Equal(t, http.StatusCreated, res.status, string(res.body))
	return res.object(t)["id"].(string)
}

func TestSnapshots_MoveThroughCreatingAndUploadingToReadyOnTheBuildStepDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := miosatest.NewServer(t, miosatest.WithInMemoryNetwork(), miosatest.WithBootDelay(0),
			miosatest.WithBuildStepDelay(time.Second))
		sb := newSandbox(t, srv)
		res := call(t, srv, "POST", "/sandboxes/"+sb+"/snapshots", `{"comment":"c","retention_seconds":3600}`)
		require.Equal(t, http.StatusCreated, res.status, string(res.body))
		snap := res.object(t)
		assert.Equal(t, "creating", snap["status"])
		assert.Equal(t, sb, snap["sandbox_id"])
		assert.Equal(t, "c", snap["comment"])
		assert.Equal(t, false, snap["keep"])
		assert.Equal(t, 3600.0, snap["retention_seconds"])
		created, err := time.Parse(time.RFC3339Nano, snap["created_at"].(string))
		require.NoError(t, err)
		assert.Equal(t, created.Add(time.Hour).Format(time.RFC3339Nano), snap["expires_at"])

		// Look half-way through each step.
		time.Sleep(time.Second / 2)
		for _, want := range []string{"creating", "uploading", "ready", "ready"} {
			items, _ := call(t, srv, "GET", "/sandboxes/"+sb+"/snapshots", "").list(t)
			require.Len(t, items, 1)
			assert.Equal(t, want, items[0]["status"])
			time.Sleep(time.Second)
		}
	})
}

func TestSnapshots_OfAMachineThatDoesNotRunAreRefused(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	sb := newSandbox(t, srv)
	require.NoError(t, srv.SetStatus(sb, miosa.StatusStopped))
	res := call(t, srv, "POST", "/sandboxes/"+sb+"/snapshots", `{}`)
	assert.Equal(t, http.StatusConflict, res.status)
	code, _ := res.errorCode(t)
	assert.Equal(t, "NOT_RUNNING", code)
	assert.Equal(t, http.StatusNotFound, call(t, srv, "POST", "/sandboxes/cmp_missing/snapshots", `{}`).status)
	assert.Equal(t, http.StatusNotFound, call(t, srv, "GET", "/sandboxes/cmp_missing/snapshots", "").status)
	items, _ := call(t, srv, "GET", "/sandboxes/"+sb+"/snapshots", "").list(t)
	assert.Empty(t, items)
}

func TestSnapshots_RefuseFieldsTheyDoNotKnowOrCannotUse(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	sb := newSandbox(t, srv)
	for _, body := range []string{`{"expiration_days":3}`, `{"retention_seconds":-1}`, `{"keep":"yes"}`, `[]`} {
		res := call(t, srv, "POST", "/sandboxes/"+sb+"/snapshots", body)
		assert.Contains(t, []int{http.StatusBadRequest, http.StatusUnprocessableEntity}, res.status, body)
	}
	items, _ := call(t, srv, "GET", "/sandboxes/"+sb+"/snapshots", "").list(t)
	assert.Empty(t, items, "nothing was taken by a refused call")

	kept := call(t, srv, "POST", "/sandboxes/"+sb+"/snapshots", `{"keep":true}`).object(t)
	assert.Nil(t, kept["expires_at"], "a kept snapshot does not expire")
}

func TestSnapshots_CreateAndRestoreHonourIdempotencyKeys(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0), miosatest.WithBuildStepDelay(0))
	sb := newSandbox(t, srv)
	first := call(t, srv, "POST", "/sandboxes/"+sb+"/snapshots", `{"comment":"x"}`, "Idempotency-Key: snap-1")
	again := call(t, srv, "POST", "/sandboxes/"+sb+"/snapshots", `{"comment":"x"}`, "Idempotency-Key: snap-1")
	require.Equal(t, http.StatusCreated, again.status)
	assert.Equal(t, first.object(t)["id"], again.object(t)["id"])
	assert.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
	items, _ := call(t, srv, "GET", "/sandboxes/"+sb+"/snapshots", "").list(t)
	require.Len(t, items, 1)

	restore := "/sandboxes/" + sb + "/restore/" + items[0]["id"].(string)
	a := call(t, srv, "POST", restore, `{}`, "Idempotency-Key: branch-1")
	b := call(t, srv, "POST", restore, `{}`, "Idempotency-Key: branch-1")
	require.Equal(t, http.StatusCreated, a.status, string(a.body))
	assert.Equal(t, a.object(t)["id"], b.object(t)["id"])
	c := call(t, srv, "POST", restore, `{}`, "Idempotency-Key: branch-2")
	assert.NotEqual(t, a.object(t)["id"], c.object(t)["id"], "a new key is a new sandbox")
	machines, _ := call(t, srv, "GET", "/computers", "").list(t)
	assert.Len(t, machines, 3, "the source and two restores")
}

func TestSnapshots_ARestoreIsANewMachineWithTheFilesAsTheyWere(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0), miosatest.WithBuildStepDelay(0))
	client := srv.Client()
	sb, err := client.Sandboxes.Create(t.Context(), miosa.ComputerCreateParams{Name: "src", Size: "large", Metadata: map[string]any{"k": "v"}})
	require.NoError(t, err)
	require.NoError(t, srv.WriteFile(sb.ID, "notes/a.txt", []byte("before")))
	snap, err := client.Snapshots.Create(t.Context(), sb.ID, miosa.SnapshotCreateParams{})
	require.NoError(t, err)
	require.NoError(t, srv.WriteFile(sb.ID, "notes/a.txt", []byte("after")))
	require.NoError(t, srv.WriteFile(sb.ID, "notes/b.txt", []byte("new")))

	// The snapshot outlives its sandbox.
	require.NoError(t, client.Computers.Destroy(t.Context(), sb.ID))
	res := call(t, srv, "POST", "/sandboxes/"+sb.ID+"/restore/"+snap.ID, `{}`)
	require.Equal(t, http.StatusCreated, res.status, string(res.body))
	restored := res.object(t)
	id := restored["id"].(string)
	assert.NotEqual(t, sb.ID, id)
	assert.Equal(t, "src-restored", restored["name"])
	assert.Equal(t, "large", restored["size"])
	assert.Equal(t, "miosa-sandbox", restored["template_id"])
	assert.Equal(t, "running", restored["state"])
	assert.Equal(t, map[string]any{"k": "v"}, restored["metadata"])
	assert.Equal(t, snap.ID, restored["snapshot_id"])
	assert.NotContains(t, restored, "status", "the native routes say state")

	got, err := srv.ReadFile(id, "notes/a.txt")
	require.NoError(t, err)
	assert.Equal(t, "before", string(got))
	_, err = srv.ReadFile(id, "notes/b.txt")
	assert.Error(t, err, "written after the snapshot")
	items, _ := call(t, srv, "GET", "/sandboxes/"+sb.ID+"/snapshots", "").list(t)
	require.Len(t, items, 1)
	assert.NotNil(t, items[0]["last_used_at"])
}

func TestSnapshots_ANotReadyOneIsARetryableConflict(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0), miosatest.WithBuildStepDelay(time.Hour))
	sb := newSandbox(t, srv)
	snap := call(t, srv, "POST", "/sandboxes/"+sb+"/snapshots", `{}`).object(t)["id"].(string)
	for _, req := range [][2]string{
		{"/sandboxes/" + sb + "/restore/" + snap, `{}`},
		{"/sandboxes/" + sb + "/fork", `{"snapshot_id":"` + snap + `"}`},
	} {
		res := call(t, srv, "POST", req[0], req[1])
		assert.Equal(t, http.StatusConflict, res.status, req[0])
		var body struct {
			Error struct {
				Code         string `json:"code"`
				Retryable    bool   `json:"retryable"`
				RetryAfterMS int64  `json:"retry_after_ms"`
			} `json:"error"`
			Message string `json:"message"`
		}
		require.NoError(t, json.Unmarshal(res.body, &body))
		assert.Equal(t, "SNAPSHOT_NOT_READY", body.Error.Code)
		assert.True(t, body.Error.Retryable)
		assert.InDelta(t, 2*time.Hour.Milliseconds(), body.Error.RetryAfterMS, float64(time.Minute.Milliseconds()))
		assert.Contains(t, body.Message, "still creating")
	}
	machines, _ := call(t, srv, "GET", "/computers", "").list(t)
	assert.Len(t, machines, 1, "nothing was made")
}

func TestSnapshots_AFailedOneCannotBeRestoredOrForked(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0), miosatest.WithBuildStepDelay(0))
	sb := newSandbox(t, srv)
	srv.FailSnapshots(1, "disk full")
	failed := call(t, srv, "POST", "/sandboxes/"+sb+"/snapshots", `{}`).object(t)
	assert.Equal(t, "failed", failed["status"])
	assert.Equal(t, "disk full", failed["error"])
	ok := call(t, srv, "POST", "/sandboxes/"+sb+"/snapshots", `{}`).object(t)
	assert.Equal(t, "ready", ok["status"], "only the next one fails")

	for _, req := range [][2]string{
		{"/sandboxes/" + sb + "/restore/" + failed["id"].(string), `{}`},
		{"/sandboxes/" + sb + "/fork", `{"snapshot_id":"` + failed["id"].(string) + `"}`},
	} {
		res := call(t, srv, "POST", req[0], req[1])
		assert.Equal(t, http.StatusConflict, res.status)
		_, msg := res.errorCode(t)
		assert.Contains(t, msg, "disk full")
	}
}

func TestSnapshots_DeleteRemovesOne(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0), miosatest.WithBuildStepDelay(0))
	sb := newSandbox(t, srv)
	other := newSandbox(t, srv)
	snap := call(t, srv, "POST", "/sandboxes/"+sb+"/snapshots", `{}`).object(t)["id"].(string)
	assert.Equal(t, http.StatusNotFound, call(t, srv, "DELETE", "/sandboxes/"+other+"/snapshots/"+snap, "").status,
		"a snapshot belongs to its own sandbox")

	res := call(t, srv, "DELETE", "/sandboxes/"+sb+"/snapshots/"+snap, "")
	assert.Equal(t, http.StatusNoContent, res.status)
	assert.Empty(t, res.body)
	items, _ := call(t, srv, "GET", "/sandboxes/"+sb+"/snapshots", "").list(t)
	assert.Empty(t, items)
	assert.Equal(t, http.StatusNotFound, call(t, srv, "POST", "/sandboxes/"+sb+"/restore/"+snap, `{}`).status)
	assert.Equal(t, http.StatusNotFound, call(t, srv, "DELETE", "/sandboxes/"+sb+"/snapshots/"+snap, "").status)
}

func TestFork_AcceptsTimeoutAndTemplateAndCopiesTheFiles(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0), miosatest.WithBuildStepDelay(0))
	sb := newSandbox(t, srv)
	require.NoError(t, srv.WriteFile(sb, "/home/user/app.py", []byte("print(1)")))
	res := call(t, srv, "POST", "/sandboxes/"+sb+"/fork", `{"timeout_sec":1200,"template_id":"miosa-sandbox"}`)
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	fork := res.object(t)
	assert.Equal(t, 1200.0, fork["timeout_sec"])
	assert.Equal(t, "running", fork["status"])
	assert.Equal(t, "running", fork["state"])
	assert.Equal(t, "miosa-sandbox", fork["template_type"])
	assert.Equal(t, "miosa-sandbox", fork["template_id"])
	got, err := srv.ReadFile(fork["id"].(string), "/home/user/app.py")
	require.NoError(t, err)
	assert.Equal(t, "print(1)", string(got))

	res = call(t, srv, "POST", "/sandboxes/"+sb+"/fork", `{"template_id":"node-22"}`)
	assert.Equal(t, http.StatusUnprocessableEntity, res.status)
	code, _ := res.errorCode(t)
	assert.Equal(t, "TEMPLATE_NOT_FOUND", code)
	assert.Equal(t, http.StatusUnprocessableEntity, call(t, srv, "POST", "/sandboxes/"+sb+"/fork", `{"timeout_sec":-1}`).status)
	assert.Equal(t, http.StatusNotFound, call(t, srv, "POST", "/sandboxes/"+sb+"/fork", `{"snapshot_id":"snap_none"}`).status)
}

func TestIdempotency_ARefusalIsNotReplayed(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	sb := newSandbox(t, srv)
	require.NoError(t, srv.SetStatus(sb, miosa.StatusStopped))
	refused := call(t, srv, "POST", "/sandboxes/"+sb+"/snapshots", `{}`, "Idempotency-Key: k")
	require.Equal(t, http.StatusConflict, refused.status)
	require.NoError(t, srv.SetStatus(sb, miosa.StatusRunning))
	again := call(t, srv, "POST", "/sandboxes/"+sb+"/snapshots", `{}`, "Idempotency-Key: k")
	assert.Equal(t, http.StatusCreated, again.status, "the refused call did nothing, so the key was free")
	assert.Empty(t, again.header.Get("Idempotent-Replayed"))
}
