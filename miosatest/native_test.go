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

func TestNative_CreateGetListAndDeleteTheSameMachines(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(time.Hour))
	res := call(t, srv, "POST", "/sandboxes", `{"name":"n","template_id":"miosa-sandbox","size":"small",
		"metadata":{"team":"a"},"timeout_sec":300,"external_user_id":"u1"}`)
	require.Equal(t, http.StatusCreated, res.status, string(res.body))
	assert.Contains(t, string(res.body), `{"data":{`)
	sb := res.object(t)
	id := sb["id"].(string)
	assert.Equal(t, "provisioning", sb["state"], "an official fixture's create answer")
	assert.Equal(t, "miosa-sandbox", sb["template_id"])
	assert.Equal(t, 300.0, sb["timeout_sec"])
	assert.NotContains(t, sb, "status")
	assert.NotContains(t, sb, "template_type")

	assert.Equal(t, sb, call(t, srv, "GET", "/sandboxes/"+id, "").object(t))
	computer := call(t, srv, "GET", "/computers/"+id, "").object(t)
	assert.Equal(t, "creating", computer["status"], "the same machine, in the computers' naming")
	assert.NotContains(t, computer, "state")

	desktop := call(t, srv, "POST", "/computers", `{}`).object(t)["id"]
	other := call(t, srv, "POST", "/sandboxes", `{}`).object(t)["id"]
	items, _ := call(t, srv, "GET", "/sandboxes", "").list(t)
	require.Len(t, items, 2, "desktops are not sandboxes")
	assert.Equal(t, id, items[0]["id"])
	assert.Equal(t, other, items[1]["id"])
	items, _ = call(t, srv, "GET", "/sandboxes?external_user_id=u1", "").list(t)
	require.Len(t, items, 1)
	assert.Equal(t, id, items[0]["id"])

	del := call(t, srv, "DELETE", "/sandboxes/"+id, "")
	assert.Equal(t, http.StatusNoContent, del.status, "the native delete needs no force")
	assert.Empty(t, del.body)
	assert.Equal(t, http.StatusNotFound, call(t, srv, "GET", "/sandboxes/"+id, "").status)
	assert.Equal(t, http.StatusNotFound, call(t, srv, "DELETE", "/sandboxes/"+id, "").status)
	_, ok := srv.Status(desktop.(string))
	assert.True(t, ok)
}

func TestNative_CreateRefusesWhatPOSTComputersWould(t *testing.T) {
	srv := miosatest.NewServer(t)
	for body, code := range map[string]string{
		`{"template_type":"miosa-sandbox"}`: "INVALID", // the native create names it template_id
		`{"cpu_count":2}`:                   "INVALID",
		`{"size":"huge"}`:                   "INVALID",
		`{"template_id":"node-22"}`:         "TEMPLATE_NOT_FOUND",
	} {
		res := call(t, srv, "POST", "/sandboxes", body)
		assert.Equal(t, http.StatusUnprocessableEntity, res.status, body)
		got, _ := res.errorCode(t)
		assert.Equal(t, code, got, body)
	}
	items, _ := call(t, srv, "GET", "/sandboxes", "").list(t)
	assert.Empty(t, items)
}

func TestNative_StopExtendAndTags(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	id := call(t, srv, "POST", "/sandboxes", `{}`).object(t)["id"].(string)

	res := call(t, srv, "POST", "/sandboxes/"+id+"/extend", `{"timeout_sec":7200}`)
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	assert.Equal(t, 7200.0, res.object(t)["timeout_sec"])
	res = call(t, srv, "POST", "/sandboxes/"+id+"/extend", `{}`)
	require.Equal(t, http.StatusOK, res.status)
	assert.Equal(t, 7200.0, res.object(t)["timeout_sec"], "{} keeps the timeout")
	for _, body := range []string{`{"timeout_sec":0}`, `{"timeout_sec":-5}`, `{"timeout_sec":"1h"}`, `{"by":60}`} {
		assert.Equal(t, http.StatusUnprocessableEntity, call(t, srv, "POST", "/sandboxes/"+id+"/extend", body).status, body)
	}

	res = call(t, srv, "PATCH", "/sandboxes/"+id+"/tags", `{"tags":["ci","eval"]}`)
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	assert.Equal(t, []any{"ci", "eval"}, res.object(t)["tags"])
	assert.Equal(t, http.StatusUnprocessableEntity, call(t, srv, "PATCH", "/sandboxes/"+id+"/tags", `{}`).status)

	res = call(t, srv, "POST", "/sandboxes/"+id+"/stop", `{}`)
	require.Equal(t, http.StatusOK, res.status)
	assert.Equal(t, "stopped", res.object(t)["state"])
	status, _ := srv.Status(id)
	assert.Equal(t, miosa.StatusStopped, status)
	for _, path := range []string{"/extend", "/stop", "/pause", "/resume"} {
		assert.Equal(t, http.StatusNotFound, call(t, srv, "POST", "/sandboxes/cmp_missing"+path, `{}`).status, path)
	}
}

func TestNative_PauseAndResume(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	id := newSandbox(t, srv)
	for range 2 {
		res := call(t, srv, "POST", "/sandboxes/"+id+"/pause", `{}`)
		require.Equal(t, http.StatusOK, res.status, string(res.body))
		assert.Equal(t, "paused", res.object(t)["state"], "pausing a paused sandbox changes nothing")
	}
	for _, req := range [][2]string{
		{"/computers/" + id + "/exec", `{"command":"echo hi"}`},
		{"/sandboxes/" + id + "/exec/stream", `{"command":"echo hi"}`},
		{"/sandboxes/" + id + "/snapshots", `{}`},
	} {
		res := call(t, srv, "POST", req[0], req[1])
		assert.Equal(t, http.StatusConflict, res.status, req[0])
		code, msg := res.errorCode(t)
		assert.Equal(t, "NOT_RUNNING", code, req[0])
		assert.Contains(t, msg, "paused", req[0])
	}
	assert.Equal(t, false, call(t, srv, "GET", "/sandboxes/"+id+"/readiness", "").object(t)["ready"])

	res := call(t, srv, "POST", "/sandboxes/"+id+"/resume", `{}`)
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	assert.Equal(t, "running", res.object(t)["state"], "with no boot delay it runs at once")
	assert.Equal(t, http.StatusOK, call(t, srv, "POST", "/computers/"+id+"/exec", `{"command":"echo hi"}`).status)
	assert.Equal(t, http.StatusOK, call(t, srv, "POST", "/sandboxes/"+id+"/resume", `{}`).status, "resuming a running sandbox changes nothing")

	require.NoError(t, srv.SetStatus(id, miosa.StatusStopped))
	for _, action := range []string{"/pause", "/resume"} {
		assert.Equal(t, http.StatusConflict, call(t, srv, "POST", "/sandboxes/"+id+action, `{}`).status, action)
	}
}

func TestNative_APausedMachineStaysPausedThroughABootInProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := miosatest.NewServer(t, miosatest.WithInMemoryNetwork(), miosatest.WithBootDelay(time.Minute))
		id := newSandbox(t, srv)
		require.Equal(t, http.StatusOK, call(t, srv, "POST", "/sandboxes/"+id+"/pause", `{}`).status)
		time.Sleep(2 * time.Minute) // the boot it overtook would have ended by now
		status, _ := srv.Status(id)
		assert.Equal(t, miosa.StatusPaused, status)
	})
}

func TestNative_FileTreeDescribesTheMachinesFiles(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	id := newSandbox(t, srv)
	require.NoError(t, srv.WriteFile(id, "/home/user/app/main.go", []byte("package main")))
	require.NoError(t, srv.WriteFile(id, "/home/user/app/lib/deep/x.go", []byte("x")))

	res := call(t, srv, "GET", "/sandboxes/"+id+"/files/tree?path=/home/user/app&depth=2", "")
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	var tree struct {
		Path, Type, Name string
		Children         []struct {
			Path, Type, Name string
			Size             *int64
			Children         []struct {
				Name, Type string
				Children   []any
			}
		}
	}
	require.NoError(t, json.Unmarshal(res.body, &tree), "answered bare, as the official fixture shows")
	assert.Equal(t, "/home/user/app", tree.Path)
	assert.Equal(t, "dir", tree.Type)
	assert.Equal(t, "app", tree.Name)
	require.Len(t, tree.Children, 2)
	assert.Equal(t, "lib", tree.Children[0].Name)
	assert.Equal(t, "dir", tree.Children[0].Type)
	require.Len(t, tree.Children[0].Children, 1)
	assert.Equal(t, "deep", tree.Children[0].Children[0].Name)
	assert.Nil(t, tree.Children[0].Children[0].Children, "depth 2 stops there")
	assert.Equal(t, "/home/user/app/main.go", tree.Children[1].Path)
	require.NotNil(t, tree.Children[1].Size)
	assert.Equal(t, int64(len("package main")), *tree.Children[1].Size)

	assert.Equal(t, http.StatusNotFound, call(t, srv, "GET", "/sandboxes/"+id+"/files/tree?path=/nope", "").status)
	assert.Equal(t, http.StatusBadRequest, call(t, srv, "GET", "/sandboxes/"+id+"/files/tree?depth=-1", "").status)
}

func TestNative_WriteManyWritesEachFile(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	id := newSandbox(t, srv)
	res := call(t, srv, "POST", "/sandboxes/"+id+"/files/write-many", `{"files":[
		{"path":"/home/user/a/one.txt","content_base64":"b25l"},
		{"path":"/home/user/two.txt","content_base64":"not base64!"},
		{"path":"","content_base64":""}]}`)
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	var body struct {
		Written []struct {
			Path string
			Size int
		}
		Failed []struct{ Path, Error string }
	}
	require.NoError(t, json.Unmarshal(res.body, &body))
	require.Len(t, body.Written, 1)
	assert.Equal(t, "/home/user/a/one.txt", body.Written[0].Path)
	assert.Equal(t, 3, body.Written[0].Size)
	require.Len(t, body.Failed, 2)
	assert.Equal(t, "/home/user/two.txt", body.Failed[0].Path)
	got, err := srv.ReadFile(id, "/home/user/a/one.txt")
	require.NoError(t, err)
	assert.Equal(t, "one", string(got))

	assert.Equal(t, http.StatusUnprocessableEntity, call(t, srv, "POST", "/sandboxes/"+id+"/files/write-many", `{"files":[]}`).status)
	_, err = srv.Client().Sandboxes.Pause(t.Context(), id)
	require.NoError(t, err)
	assert.Equal(t, http.StatusConflict, call(t, srv, "POST", "/sandboxes/"+id+"/files/write-many",
		`{"files":[{"path":"/home/user/x","content_base64":""}]}`).status, "a paused machine's files are out of reach")
}
