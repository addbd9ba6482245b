package miosatest_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/miosa-ai/miosa-go/miosatest"
)

const nodeSpec = `{"runtime":"node","version":"20","packages":["curl"]}`

// buildsOf lists a template's builds.
func buildsOf(t *testing.T, srv *miosatest.Server, templateID string) []map[string]any {
	t.Helper()
	res := call(t, srv, "GET", "/sandbox-templates/"+templateID+"/builds", "")
	require.Equal(t, http.StatusOK, res.status)
	items, _ := res.list(t)
	return items
}

// awaitBuild polls the build list until the build leaves queued/building.
func awaitBuild(t *testing.T, srv *miosatest.Server, templateID, buildID string) map[string]any {
	t.Helper()
	var last map[string]any
	require.Eventually(t, func() bool {
		for _, b := range buildsOf(t, srv, templateID) {
			if b["id"] == buildID {
				last = b
			}
		}
		return last != nil && last["status"] != "queued" && last["status"] != "building"
	}, 10*time.Second, 2*time.Millisecond)
	return last
}

func TestTemplates_CreateRequiresNameAndAValidSpec(t *testing.T) {
	srv := miosatest.NewServer(t)
	for name, body := range map[string]string{
		"no name":       `{"build_spec":` + nodeSpec + `}`,
		"no spec":       `{"name":"x"}`,
		"spec no obj":   `{"name":"x","build_spec":"node"}`,
		"no runtime":    `{"name":"x","build_spec":{"version":"20"}}`,
		"unknown field": `{"name":"x","build_spec":{"runtime":"node","gpu":true}}`,
	} {
		res := call(t, srv, "POST", "/sandbox-templates", body)
		assert.Equal(t, http.StatusUnprocessableEntity, res.status, name)
		code, msg := res.errorCode(t)
		assert.Equal(t, "INVALID", code, name)
		assert.NotEmpty(t, msg, name)
	}
	items, _ := call(t, srv, "GET", "/sandbox-templates", "").list(t)
	assert.Empty(t, items, "nothing refused was created")
}

func TestTemplates_CreateListAndGetByIDOrAlias(t *testing.T) {
	srv := miosatest.NewServer(t)
	res := call(t, srv, "POST", "/sandbox-templates",
		`{"name":"Node Env","description":"d","metadata":{"a":"b"},"build_spec":`+nodeSpec+`}`)
	require.Equal(t, http.StatusCreated, res.status, string(res.body))
	tpl := res.object(t)
	id := tpl["id"].(string)
	assert.Equal(t, "Node Env", tpl["name"])
	assert.Equal(t, "d", tpl["description"])
	assert.Equal(t, "pending", tpl["status"])
	assert.Equal(t, []any{"node-env"}, tpl["aliases"])
	assert.Equal(t, map[string]any{"runtime": "node", "version": "20", "packages": []any{"curl"}}, tpl["build_spec"])

	items, _ := call(t, srv, "GET", "/sandbox-templates", "").list(t)
	require.Len(t, items, 1)
	assert.NotContains(t, items[0], "aliases", "aliases only when asked for")
	bare := call(t, srv, "POST", "/sandbox-templates", `{"name":"bare","build_spec":{"runtime":"go"}}`).object(t)
	assert.Equal(t, map[string]any{}, bare["metadata"], "metadata is an object even when none was given")
	items, _ = call(t, srv, "GET", "/sandbox-templates", "").list(t)
	require.Len(t, items, 2)
	items, _ = call(t, srv, "GET", "/sandbox-templates?include_aliases=true", "").list(t)
	require.Len(t, items, 2)
	assert.Equal(t, []any{"node-env"}, items[0]["aliases"])

	assert.Equal(t, id, call(t, srv, "GET", "/sandbox-templates/"+id, "").object(t)["id"])
	assert.Equal(t, id, call(t, srv, "GET", "/sandbox-templates/node-env", "").object(t)["id"])
}

func TestTemplates_BuildSpecSchemaIsABareJSONSchema(t *testing.T) {
	srv := miosatest.NewServer(t)
	res := call(t, srv, "GET", "/sandbox-templates/build-spec", "")
	require.Equal(t, http.StatusOK, res.status)
	var schema map[string]any
	require.NoError(t, json.Unmarshal(res.body, &schema))
	assert.Contains(t, schema["$schema"], "json-schema.org")
	assert.Equal(t, []any{"runtime"}, schema["required"])
	assert.Contains(t, schema["properties"], "packages")
	assert.NotContains(t, schema, "data", "returned verbatim, without an envelope")
}

func TestTemplates_ValidateReportsProblems(t *testing.T) {
	for _, tc := range []struct {
		name       string
		opts       []miosatest.Option
		wantStatus int
	}{
		{"lenient server", nil, http.StatusOK},
		{"strict server", []miosatest.Option{miosatest.WithStrictValidation()}, http.StatusUnprocessableEntity},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := miosatest.NewServer(t, tc.opts...)
			res := call(t, srv, "POST", "/sandbox-templates/validate", `{"build_spec":{"version":20}}`)
			require.Equal(t, tc.wantStatus, res.status, string(res.body))
			var verdict struct {
				Valid  *bool    `json:"valid"`
				Errors []string `json:"errors"`
			}
			raw := res.body
			if res.status == http.StatusOK {
				raw, _ = json.Marshal(res.object(t))
			}
			require.NoError(t, json.Unmarshal(raw, &verdict))
			require.NotNil(t, verdict.Valid)
			assert.False(t, *verdict.Valid)
			assert.Equal(t, []string{"runtime is required", "version must be a string"}, verdict.Errors)

			good := call(t, srv, "POST", "/sandbox-templates/validate", `{"build_spec":{"runtime":"python"}}`)
			require.Equal(t, http.StatusOK, good.status)
			v := good.object(t)
			assert.Equal(t, true, v["valid"])
			assert.Equal(t, "latest", v["build_spec"].(map[string]any)["version"], "the spec comes back normalized")
		})
	}
}

func TestTemplates_BuildSucceedsAndMakesTheTemplateReady(t *testing.T) {
	srv := miosatest.NewServer(t)
	id := call(t, srv, "POST", "/sandbox-templates", `{"name":"n","build_spec":`+nodeSpec+`}`).object(t)["id"].(string)

	res := call(t, srv, "POST", "/sandbox-templates/"+id+"/builds", `{}`)
	require.Equal(t, http.StatusCreated, res.status, string(res.body))
	b := res.object(t)
	assert.Equal(t, "queued", b["status"])
	assert.Equal(t, id, b["template_id"])

	done := awaitBuild(t, srv, id, b["id"].(string))
	assert.Equal(t, "ready", done["status"])
	assert.Empty(t, done["error"])
	assert.NotNil(t, done["started_at"])
	assert.NotNil(t, done["finished_at"])
	tpl := call(t, srv, "GET", "/sandbox-templates/"+id, "").object(t)
	assert.Equal(t, "ready", tpl["status"])
	assert.NotEmpty(t, tpl["image_ref"])
}

func TestTemplates_FailBuildsEndsTheNextBuildsFailed(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBuildStepDelay(0))
	id := call(t, srv, "POST", "/sandbox-templates", `{"name":"n","build_spec":`+nodeSpec+`}`).object(t)["id"].(string)
	srv.FailBuilds(1, "npm install exited 1")

	failed := call(t, srv, "POST", "/sandbox-templates/"+id+"/builds", `{"build_spec":{"version":"22"}}`).object(t)
	assert.Equal(t, "failed", failed["status"])
	assert.Equal(t, "npm install exited 1", failed["error"])
	assert.Equal(t, "failed", call(t, srv, "GET", "/sandbox-templates/"+id, "").object(t)["status"])

	ok := call(t, srv, "POST", "/sandbox-templates/"+id+"/builds", "").object(t)
	assert.Equal(t, "ready", ok["status"], "only the next n builds fail")
	assert.Len(t, buildsOf(t, srv, id), 2)

	bad := call(t, srv, "POST", "/sandbox-templates/"+id+"/builds", `{"build_spec":{"runtime":"cobol"}}`)
	assert.Equal(t, http.StatusUnprocessableEntity, bad.status, "overrides are validated")
	assert.Equal(t, http.StatusNotFound, call(t, srv, "POST", "/sandbox-templates/tpl_missing/builds", "").status)
}
