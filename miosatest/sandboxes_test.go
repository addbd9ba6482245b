package miosatest_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

func TestSandboxes_ForkCreatesANewBootingSandbox(t *testing.T) {
	srv := miosatest.NewServer(t)
	client := srv.Client()
	src := running(t, client, miosa.ComputerCreateParams{
		Name: "src", TemplateType: miosa.DefaultSandboxTemplate, Size: "medium", Metadata: map[string]any{"k": "v"},
	})

	snap, err := client.Snapshots.Create(t.Context(), src.ID, miosa.SnapshotCreateParams{})
	require.NoError(t, err)
	_, err = client.Snapshots.WaitReady(t.Context(), src.ID, snap.ID, fastWait)
	require.NoError(t, err)

	res := call(t, srv, "POST", "/sandboxes/"+src.ID+"/fork", `{"name":"copy","snapshot_id":"`+snap.ID+`"}`)
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	fork := res.object(t)
	assert.NotEqual(t, src.ID, fork["id"])
	assert.Equal(t, "copy", fork["name"])
	assert.Equal(t, "creating", fork["status"])
	assert.Equal(t, "miosa-sandbox", fork["template_type"])
	assert.Equal(t, "medium", fork["size"])
	assert.Equal(t, src.ID, fork["forked_from"])
	assert.Equal(t, snap.ID, fork["snapshot_id"])
	assert.Equal(t, map[string]any{"k": "v"}, fork["metadata"])

	_, err = client.Computers.WaitForStatus(t.Context(), fork["id"].(string), miosa.StatusRunning, fastWait)
	require.NoError(t, err)
	assert.Equal(t, http.StatusNotFound, call(t, srv, "POST", "/sandboxes/cmp_missing/fork", `{}`).status)
}

func TestSandboxes_UpdateChangesOnlyAllowedKeys(t *testing.T) {
	srv := miosatest.NewServer(t)
	c := running(t, srv.Client(), miosa.ComputerCreateParams{TemplateType: miosa.DefaultSandboxTemplate})
	path := "/sandboxes/" + c.ID

	res := call(t, srv, "PATCH", path, `{"name":"renamed","slug":"my-box","tags":["a","b"],
		"metadata":{"x":1},"always_on":true,"timeout_sec":600,"idle_timeout_sec":60}`)
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	got := res.object(t)
	assert.Equal(t, "renamed", got["name"])
	assert.Equal(t, "my-box", got["slug"])
	assert.Equal(t, []any{"a", "b"}, got["tags"])
	assert.Equal(t, map[string]any{"x": 1.0}, got["metadata"])
	assert.Equal(t, true, got["always_on"])
	assert.Equal(t, 600.0, got["timeout_sec"])
	assert.Equal(t, 60.0, got["idle_timeout_sec"])

	res = call(t, srv, "PATCH", path, `{"tags":[]}`)
	require.Equal(t, http.StatusOK, res.status)
	assert.Equal(t, []any{}, res.object(t)["tags"], "an empty list clears the tags")
	assert.Equal(t, "renamed", res.object(t)["name"], "keys not sent are kept")

	for name, body := range map[string]string{
		"unknown key":      `{"size":"large"}`,
		"wrong type":       `{"always_on":"yes"}`,
		"negative timeout": `{"timeout_sec":-1}`,
		"bad slug":         `{"slug":"Not A Slug"}`,
		"tags not strings": `{"tags":[1]}`,
	} {
		res := call(t, srv, "PATCH", path, body)
		assert.Equal(t, http.StatusUnprocessableEntity, res.status, name)
		code, _ := res.errorCode(t)
		assert.Equal(t, "INVALID", code, name)
	}
	assert.Equal(t, "renamed", call(t, srv, "GET", "/computers/"+c.ID, "").object(t)["name"], "a refused update changes nothing")
}

func TestSandboxes_PreviewTokenUsesDefaultsAndChecksScope(t *testing.T) {
	srv := miosatest.NewServer(t)
	c := running(t, srv.Client(), miosa.ComputerCreateParams{})
	path := "/sandboxes/" + c.ID + "/preview-token"

	before := time.Now()
	res := call(t, srv, "POST", path, "")
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	tok := res.object(t)
	assert.NotEmpty(t, tok["token"])
	assert.Contains(t, tok["url"], tok["token"])
	assert.Equal(t, "read", tok["scope"])
	expires, err := time.Parse(time.RFC3339Nano, tok["expires_at"].(string))
	require.NoError(t, err)
	assert.WithinDuration(t, before.Add(time.Hour), expires, time.Minute)

	res = call(t, srv, "POST", path, `{"expires_in":60,"scope":"interact"}`)
	require.Equal(t, http.StatusOK, res.status)
	assert.Equal(t, "interact", res.object(t)["scope"])

	assert.Equal(t, http.StatusUnprocessableEntity, call(t, srv, "POST", path, `{"scope":"admin"}`).status)
	assert.Equal(t, http.StatusUnprocessableEntity, call(t, srv, "POST", path, `{"expires_in":0}`).status)
}

func TestSandboxes_ReadinessTurnsReadyWhenTheMachineRuns(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(time.Hour))
	c, err := srv.Client().Computers.Create(t.Context(), miosa.ComputerCreateParams{TemplateType: miosa.DefaultSandboxTemplate})
	require.NoError(t, err)

	res := call(t, srv, "GET", "/sandboxes/"+c.ID+"/readiness", "")
	require.Equal(t, http.StatusOK, res.status)
	assert.Equal(t, map[string]any{"ready": false, "status": "creating"}, res.object(t))

	require.NoError(t, srv.SetStatus(c.ID, miosa.StatusRunning))
	got := call(t, srv, "GET", "/sandboxes/"+c.ID+"/readiness", "").object(t)
	assert.Equal(t, true, got["ready"])
	assert.Equal(t, "ready", got["status"])
	assert.NotEmpty(t, got["ready_at"])
}
