package miosa_test

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/miosa-ai/miosa-go"
)

// newTplBubbleClient returns a client whose requests fake answers in memory.
// It keeps the default retry delays, so an unwanted retry would show on the
// fake clock and in the request count.
func newTplBubbleClient(t *testing.T, replies ...reply) (*scriptedServer, *miosa.Client) {
	t.Helper()
	fake := newScripted(replies...)
	client, err := miosa.NewClient(scriptedKey,
		miosa.WithBaseURL("http://127.0.0.1"),
		miosa.WithHTTPClient(miosa.InMemory(fake)))
	require.NoError(t, err)
	return fake, client
}

const tplObject = `{"id":"tpl_1","tenant_id":"ten_1","name":"node20","description":"Node 20 with curl",` +
	`"build_spec":{"runtime":"node","version":"20","packages":["curl"]},"status":"active",` +
	`"image_ref":"registry.miosa.ai/t/node20:1","aliases":["node","lts"],"metadata":{"team":"web"},` +
	`"created_at":"2026-05-18T10:00:00Z","updated_at":"2026-05-18T10:05:00.5Z"}`

const buildObject = `{"id":"bld_1","template_id":"tpl_1","status":"building",` +
	`"log_url":"https://logs.miosa.ai/bld_1","error":null,"started_at":"2026-05-18T10:00:01Z",` +
	`"finished_at":null,"created_at":"2026-05-18T10:00:00Z"}`

func TestSandboxTemplatesList_SendsIncludeAliasesOnlyWhenAsked(t *testing.T) {
	for _, tc := range []struct {
		name   string
		params miosa.SandboxTemplateListParams
		query  string
	}{
		{"default", miosa.SandboxTemplateListParams{}, ""},
		{"aliases", miosa.SandboxTemplateListParams{IncludeAliases: true}, "include_aliases=true"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake, client := newScriptedServer(t, reply{200, `[]`})
			_, err := client.SandboxTemplates.List(t.Context(), tc.params)
			require.NoError(t, err)
			req := fake.onlyRequest(t)
			assert.Equal(t, http.MethodGet, req.Method)
			assert.Equal(t, "/sandbox-templates", req.Path)
			assert.Equal(t, tc.query, req.Query)
			assert.Empty(t, req.Body)
			assert.Empty(t, req.Header.Get("Content-Type"))
			assert.Empty(t, req.Header.Get("Idempotency-Key"))
		})
	}
}

func TestSandboxTemplatesList_DecodesEveryEnvelope(t *testing.T) {
	for _, tc := range []struct{ name, body string }{
		{"bare", `[` + tplObject + `]`},
		{"data", `{"data":[` + tplObject + `]}`},
		{"named", `{"templates":[` + tplObject + `]}`},
		{"named with meta", `{"templates":[` + tplObject + `],"meta":{"total":1,"page":1,"per_page":20}}`},
		{"data holding named", `{"data":{"templates":[` + tplObject + `]}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, client := newScriptedServer(t, reply{200, tc.body})
			templates, err := client.SandboxTemplates.List(t.Context(), miosa.SandboxTemplateListParams{})
			require.NoError(t, err)
			require.Len(t, templates, 1)
			assert.Equal(t, "tpl_1", templates[0].ID)
			assert.JSONEq(t, tplObject, string(templates[0].Raw))
		})
	}
}

func TestSandboxTemplatesGet_DecodesEveryEnvelope(t *testing.T) {
	for _, tc := range []struct{ name, body string }{
		{"bare", tplObject},
		{"data", `{"data":` + tplObject + `}`},
		{"named", `{"template":` + tplObject + `}`},
		{"result", `{"result":` + tplObject + `}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake, client := newScriptedServer(t, reply{200, tc.body})
			tpl, err := client.SandboxTemplates.Get(t.Context(), "tpl_1")
			require.NoError(t, err)
			req := fake.onlyRequest(t)
			assert.Equal(t, http.MethodGet, req.Method)
			assert.Equal(t, "/sandbox-templates/tpl_1", req.Path)
			assert.Equal(t, "tpl_1", tpl.ID)
			assert.Equal(t, "node20", tpl.Name)
		})
	}
}

func TestSandboxTemplate_DecodesEveryField(t *testing.T) {
	var tpl miosa.SandboxTemplate
	require.NoError(t, json.Unmarshal([]byte(tplObject), &tpl))
	assert.Equal(t, miosa.SandboxTemplate{
		ID: "tpl_1", TenantID: "ten_1", Name: "node20", Description: "Node 20 with curl",
		BuildSpec: miosa.BuildSpec{"runtime": "node", "version": "20", "packages": []any{"curl"}},
		Status:    "active", ImageRef: "registry.miosa.ai/t/node20:1",
		Aliases: []string{"node", "lts"}, Metadata: map[string]any{"team": "web"},
		CreatedAt: time.Date(2026, 5, 18, 10, 0, 0, 0, time.UTC),
		UpdatedAt: time.Date(2026, 5, 18, 10, 5, 0, 5e8, time.UTC),
		Raw:       json.RawMessage(tplObject),
	}, tpl)
}

func TestSandboxTemplate_ToleratesOddShapes(t *testing.T) {
	const body = `{"id":"tpl_2","aliases":["node",{"name":"x"},null],"created_at":"","updated_at":1779098400,"future":{"a":1}}`
	var tpl miosa.SandboxTemplate
	require.NoError(t, json.Unmarshal([]byte(body), &tpl))
	assert.Equal(t, []string{"node"}, tpl.Aliases)
	assert.True(t, tpl.CreatedAt.IsZero())
	assert.Equal(t, time.Unix(1779098400, 0).UTC(), tpl.UpdatedAt)
	assert.JSONEq(t, body, string(tpl.Raw))
}

func TestSandboxTemplatesGet_EscapesID(t *testing.T) {
	fake, client := newScriptedServer(t, reply{200, tplObject})
	_, err := client.SandboxTemplates.Get(t.Context(), "team a/node?v=1")
	require.NoError(t, err)
	req := fake.onlyRequest(t)
	assert.Equal(t, "/sandbox-templates/team%20a%2Fnode%3Fv=1", req.Path)
	assert.Empty(t, req.Query)
}

func TestSandboxTemplatesCreate_SendsBodyAndIdempotencyKey(t *testing.T) {
	for _, tc := range []struct {
		name   string
		params miosa.SandboxTemplateCreateParams
		want   string
	}{
		{
			name:   "required only",
			params: miosa.SandboxTemplateCreateParams{Name: "node20", BuildSpec: miosa.BuildSpec{"runtime": "node", "version": "20"}},
			want:   `{"name":"node20","build_spec":{"runtime":"node","version":"20"}}`,
		},
		{
			name: "every field",
			params: miosa.SandboxTemplateCreateParams{
				Name: "node20", BuildSpec: miosa.BuildSpec{"packages": []string{"curl"}},
				Description: "Node with curl", Metadata: map[string]any{"team": "web"},
			},
			want: `{"name":"node20","build_spec":{"packages":["curl"]},"description":"Node with curl","metadata":{"team":"web"}}`,
		},
		{
			name:   "empty spec is still sent",
			params: miosa.SandboxTemplateCreateParams{Name: "bare", BuildSpec: miosa.BuildSpec{}},
			want:   `{"name":"bare","build_spec":{}}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake, client := newScriptedServer(t, reply{201, `{"template":` + tplObject + `}`})
			tpl, err := client.SandboxTemplates.Create(t.Context(), tc.params)
			require.NoError(t, err)
			assert.Equal(t, "tpl_1", tpl.ID)
			req := fake.onlyRequest(t)
			assert.Equal(t, http.MethodPost, req.Method)
			assert.Equal(t, "/sandbox-templates", req.Path)
			assert.JSONEq(t, tc.want, string(req.Body))
			assert.Equal(t, "application/json", req.Header.Get("Content-Type"))
			_, err = uuid.Parse(req.Header.Get("Idempotency-Key"))
			assert.NoError(t, err, "a generated Idempotency-Key is a UUID")
		})
	}
}

func TestSandboxTemplatesCreates_SendOneIdempotencyKeyOnEveryRetry(t *testing.T) {
	creates := map[string]func(context.Context, *miosa.Client, ...miosa.Option) error{
		"Create": func(ctx context.Context, c *miosa.Client, opts ...miosa.Option) error {
			_, err := c.SandboxTemplates.Create(ctx, miosa.SandboxTemplateCreateParams{Name: "n", BuildSpec: miosa.BuildSpec{}}, opts...)
			return err
		},
		"CreateBuild": func(ctx context.Context, c *miosa.Client, opts ...miosa.Option) error {
			_, err := c.SandboxTemplates.CreateBuild(ctx, "tpl_1", miosa.TemplateBuildCreateParams{}, opts...)
			return err
		},
	}
	for name, create := range creates {
		for _, callerKey := range []string{"", "caller-key-1"} {
			t.Run(name+"/key="+callerKey, func(t *testing.T) {
				fake, client := newScriptedServer(t,
					reply{503, `{"error":"Service Unavailable"}`},
					reply{503, `Service Unavailable`},
					reply{201, `{"id":"x"}`})
				var opts []miosa.Option
				if callerKey != "" {
					opts = append(opts, miosa.WithIdempotencyKey(callerKey))
				}
				require.NoError(t, create(t.Context(), client, opts...))

				reqs := fake.Requests()
				require.Len(t, reqs, 3, "two 503s are retried")
				key := reqs[0].Header.Get("Idempotency-Key")
				require.NotEmpty(t, key)
				if callerKey != "" {
					assert.Equal(t, callerKey, key)
				}
				for _, req := range reqs {
					assert.Equal(t, key, req.Header.Get("Idempotency-Key"))
					assert.Equal(t, reqs[0].Body, req.Body)
				}
			})
		}
	}
}

func TestSandboxTemplatesCreate_KeysDifferPerLogicalCall(t *testing.T) {
	fake, client := newScriptedServer(t, reply{201, tplObject})
	params := miosa.SandboxTemplateCreateParams{Name: "n", BuildSpec: miosa.BuildSpec{}}
	for range 2 {
		_, err := client.SandboxTemplates.Create(t.Context(), params)
		require.NoError(t, err)
	}
	reqs := fake.Requests()
	require.Len(t, reqs, 2)
	assert.NotEqual(t, reqs[0].Header.Get("Idempotency-Key"), reqs[1].Header.Get("Idempotency-Key"))
}

func TestSandboxTemplatesCreateBuild_SendsOverridesOrEmptyObject(t *testing.T) {
	for _, tc := range []struct {
		name   string
		params miosa.TemplateBuildCreateParams
		want   string
	}{
		{"no overrides", miosa.TemplateBuildCreateParams{}, `{}`},
		{"empty spec overrides nothing", miosa.TemplateBuildCreateParams{BuildSpec: miosa.BuildSpec{}}, `{}`},
		{"spec override", miosa.TemplateBuildCreateParams{BuildSpec: miosa.BuildSpec{"version": "22"}}, `{"build_spec":{"version":"22"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake, client := newScriptedServer(t, reply{201, buildObject})
			_, err := client.SandboxTemplates.CreateBuild(t.Context(), "tpl_1", tc.params)
			require.NoError(t, err)
			req := fake.onlyRequest(t)
			assert.Equal(t, http.MethodPost, req.Method)
			assert.Equal(t, "/sandbox-templates/tpl_1/builds", req.Path)
			assert.Equal(t, tc.want, string(req.Body), "exact bytes")
			assert.Equal(t, "application/json", req.Header.Get("Content-Type"))
			assert.NotEmpty(t, req.Header.Get("Idempotency-Key"))
		})
	}
}

func TestSandboxTemplatesCreateBuild_DecodesEveryEnvelope(t *testing.T) {
	for _, tc := range []struct{ name, body string }{
		{"bare", buildObject},
		{"data", `{"data":` + buildObject + `}`},
		{"named", `{"build":` + buildObject + `}`},
		{"named beside its template", `{"template":` + tplObject + `,"build":` + buildObject + `}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, client := newScriptedServer(t, reply{201, tc.body})
			build, err := client.SandboxTemplates.CreateBuild(t.Context(), "tpl_1", miosa.TemplateBuildCreateParams{})
			require.NoError(t, err)
			assert.Equal(t, "bld_1", build.ID)
			assert.Equal(t, "building", build.Status)
			assert.JSONEq(t, buildObject, string(build.Raw))
		})
	}
}

func TestSandboxTemplatesListBuilds_DecodesEveryEnvelope(t *testing.T) {
	for _, tc := range []struct{ name, body string }{
		{"bare", `[` + buildObject + `]`},
		{"data", `{"data":[` + buildObject + `]}`},
		{"named", `{"builds":[` + buildObject + `]}`},
		{"named with meta", `{"builds":[` + buildObject + `],"meta":{"total":1,"page":1,"per_page":50}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake, client := newScriptedServer(t, reply{200, tc.body})
			builds, err := client.SandboxTemplates.ListBuilds(t.Context(), "tpl_1")
			require.NoError(t, err)
			req := fake.onlyRequest(t)
			assert.Equal(t, http.MethodGet, req.Method)
			assert.Equal(t, "/sandbox-templates/tpl_1/builds", req.Path)
			assert.Empty(t, req.Query)
			require.Len(t, builds, 1)
			assert.Equal(t, "bld_1", builds[0].ID)
		})
	}
}

func TestTemplateBuild_DecodesEveryField(t *testing.T) {
	var build miosa.TemplateBuild
	require.NoError(t, json.Unmarshal([]byte(buildObject), &build))
	assert.Equal(t, miosa.TemplateBuild{
		ID: "bld_1", TemplateID: "tpl_1", Status: "building", LogURL: "https://logs.miosa.ai/bld_1",
		StartedAt: time.Date(2026, 5, 18, 10, 0, 1, 0, time.UTC),
		CreatedAt: time.Date(2026, 5, 18, 10, 0, 0, 0, time.UTC),
		Raw:       json.RawMessage(buildObject),
	}, build)
	assert.False(t, build.Finished())
}

func TestTemplateBuild_ReadsErrorInEveryShape(t *testing.T) {
	for _, tc := range []struct{ name, errJSON, want string }{
		{"string", `"npm install exited 1"`, "npm install exited 1"},
		{"object with message", `{"code":"BUILD","message":"npm install exited 1"}`, "npm install exited 1"},
		{"object without message", `{"code":"BUILD"}`, `{"code":"BUILD"}`},
		{"null", `null`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var build miosa.TemplateBuild
			require.NoError(t, json.Unmarshal([]byte(`{"id":"b","status":"failed","error":`+tc.errJSON+`}`), &build))
			assert.Equal(t, tc.want, build.Error)
		})
	}
}

func TestTemplateBuild_ClassifiesStates(t *testing.T) {
	for _, tc := range []struct {
		status              string
		finished, succeeded bool
	}{
		{miosa.BuildStatusReady, true, true},
		{miosa.BuildStatusSucceeded, true, true},
		{"SUCCEEDED", true, true},
		{miosa.BuildStatusFailed, true, false},
		{miosa.BuildStatusError, true, false},
		{miosa.BuildStatusCancelled, true, false},
		{"canceled", true, false},
		{"queued", false, false},
		{"building", false, false},
		{"", false, false},
	} {
		t.Run(tc.status, func(t *testing.T) {
			build := miosa.TemplateBuild{Status: tc.status}
			assert.Equal(t, tc.finished, build.Finished())
			assert.Equal(t, tc.succeeded, build.Succeeded())
		})
	}
}

func TestSandboxTemplatesBuildSpecSchema_ReturnsBodyVerbatim(t *testing.T) {
	for _, body := range []string{
		`{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","required":["runtime"]}`,
		"{\n  \"data\": {\"type\": \"object\"}\n}\n",
	} {
		fake, client := newScriptedServer(t, reply{200, body})
		schema, err := client.SandboxTemplates.BuildSpecSchema(t.Context())
		require.NoError(t, err)
		assert.Equal(t, body, string(schema))
		req := fake.onlyRequest(t)
		assert.Equal(t, http.MethodGet, req.Method)
		assert.Equal(t, "/sandbox-templates/build-spec", req.Path)
	}
}

func TestSandboxTemplatesBuildSpecSchema_RefusesNonJSON(t *testing.T) {
	for _, body := range []string{"", "  ", "<html>schema</html>", `{"type":`} {
		_, client := newScriptedServer(t, reply{200, body})
		schema, err := client.SandboxTemplates.BuildSpecSchema(t.Context())
		require.Error(t, err, "body %q", body)
		assert.Nil(t, schema)
	}
}

func TestSandboxTemplatesValidate_SendsBuildSpec(t *testing.T) {
	fake, client := newScriptedServer(t, reply{200, `{"valid":true}`})
	_, err := client.SandboxTemplates.Validate(t.Context(), miosa.BuildSpec{"runtime": "node", "packages": []string{"curl"}})
	require.NoError(t, err)
	req := fake.onlyRequest(t)
	assert.Equal(t, http.MethodPost, req.Method)
	assert.Equal(t, "/sandbox-templates/validate", req.Path)
	assert.JSONEq(t, `{"build_spec":{"runtime":"node","packages":["curl"]}}`, string(req.Body))
	assert.Equal(t, "application/json", req.Header.Get("Content-Type"))
	assert.Empty(t, req.Header.Get("Idempotency-Key"), "validation creates nothing")
}

func TestSandboxTemplatesValidate_ReturnsVerdicts(t *testing.T) {
	normalized := miosa.BuildSpec{"runtime": "node", "version": "20"}
	for _, tc := range []struct {
		name   string
		reply  reply
		valid  bool
		errors []string
		spec   miosa.BuildSpec
	}{
		{"valid with normalized spec", reply{200, `{"valid":true,"build_spec":{"runtime":"node","version":"20"}}`}, true, nil, normalized},
		{"bare normalized spec", reply{200, `{"runtime":"node","version":"20"}`}, true, nil, normalized},
		{"normalized spec in data", reply{200, `{"data":{"runtime":"node","version":"20"}}`}, true, nil, normalized},
		{"invalid, string errors", reply{200, `{"valid":false,"errors":["runtime is required","version must be a string"]}`},
			false, []string{"runtime is required", "version must be a string"}, nil},
		{"invalid, object errors", reply{200, `{"valid":false,"errors":[{"path":"runtime","message":"is required"},{"detail":"bad version"}]}`},
			false, []string{"is required", "bad version"}, nil},
		{"invalid in data envelope", reply{200, `{"data":{"valid":false,"errors":["runtime is required"]}}`},
			false, []string{"runtime is required"}, nil},
		{"errors without valid", reply{200, `{"errors":["runtime is required"]}`}, false, []string{"runtime is required"}, nil},
		{"one error string", reply{200, `{"valid":false,"errors":"runtime is required"}`}, false, []string{"runtime is required"}, nil},
		{"errors by field", reply{200, `{"valid":false,"errors":{"version":["must be a string"],"runtime":"is required","packages":{"message":"must be a list"}}}`},
			false, []string{"packages: must be a list", "runtime: is required", "version: must be a string"}, nil},
		{"one error object", reply{200, `{"errors":{"code":"SCHEMA","message":"runtime is required"}}`}, false, []string{"runtime is required"}, nil},
		{"422 with errors", reply{422, `{"valid":false,"errors":["runtime is required"]}`}, false, []string{"runtime is required"}, nil},
		{"422 with error and errors", reply{422, `{"error":"Invalid build spec","code":"INVALID","errors":[{"message":"runtime is required"}]}`},
			false, []string{"runtime is required"}, nil},
		{"422 claiming valid is still invalid", reply{422, `{"valid":true,"errors":["runtime is required"]}`}, false, []string{"runtime is required"}, nil},
		{"422 in data envelope", reply{422, `{"data":{"valid":false,"errors":["runtime is required"]}}`}, false, []string{"runtime is required"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, client := newScriptedServer(t, tc.reply)
			verdict, err := client.SandboxTemplates.Validate(t.Context(), miosa.BuildSpec{"runtime": "node"})
			require.NoError(t, err)
			assert.Equal(t, tc.valid, verdict.Valid)
			assert.Equal(t, tc.errors, verdict.Errors)
			assert.Equal(t, tc.spec, verdict.BuildSpec)
			assert.NotEmpty(t, verdict.Raw)
		})
	}
}

func TestSandboxTemplatesValidate_IsRetriedLikeARead(t *testing.T) {
	fake, client := newScriptedServer(t, reply{503, `{"error":"busy"}`}, reply{200, `{"valid":true}`})
	verdict, err := client.SandboxTemplates.Validate(t.Context(), miosa.BuildSpec{"runtime": "node"})
	require.NoError(t, err)
	assert.True(t, verdict.Valid)
	reqs := fake.Requests()
	require.Len(t, reqs, 2, "validation changes nothing, so a 503 is retried")
	assert.Equal(t, reqs[0].Body, reqs[1].Body)
	assert.Empty(t, reqs[1].Header.Get("Idempotency-Key"), "validation is not a create call")
}

func TestSandboxTemplatesValidate_FailuresWithoutAVerdictAreErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		reply    reply
		sentinel error
	}{
		{"422 without errors", reply{422, `{"error":"Unprocessable","code":"INVALID"}`}, miosa.ErrValidation},
		{"422 with empty errors", reply{422, `{"valid":false,"errors":[]}`}, miosa.ErrValidation},
		{"422 as text", reply{422, `Unprocessable Entity`}, miosa.ErrValidation},
		{"400 with errors", reply{400, `{"errors":["malformed JSON"]}`}, miosa.ErrBadRequest},
		{"401", reply{401, `{"error":"Unauthorized"}`}, miosa.ErrUnauthorized},
		{"500", reply{500, `{"error":"boom"}`}, miosa.ErrServer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, client := newScriptedServer(t, tc.reply)
			verdict, err := client.SandboxTemplates.Validate(t.Context(), miosa.BuildSpec{"runtime": "node"})
			require.Error(t, err)
			assert.Nil(t, verdict)
			var apiErr *miosa.APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, tc.reply.Status, apiErr.StatusCode)
			assert.ErrorIs(t, err, tc.sentinel)
		})
	}
}

func TestSandboxTemplates_InvalidInputSendsNoRequest(t *testing.T) {
	spec := miosa.BuildSpec{"runtime": "node"}
	for _, tc := range []struct {
		name string
		call func(context.Context, *miosa.SandboxTemplatesService) error
	}{
		{"Get empty id", func(ctx context.Context, s *miosa.SandboxTemplatesService) error {
			_, err := s.Get(ctx, "")
			return err
		}},
		{"Get blank id", func(ctx context.Context, s *miosa.SandboxTemplatesService) error {
			_, err := s.Get(ctx, "  ")
			return err
		}},
		{"Get dot-dot id", func(ctx context.Context, s *miosa.SandboxTemplatesService) error {
			_, err := s.Get(ctx, "..")
			return err
		}},
		{"Get schema endpoint as id", func(ctx context.Context, s *miosa.SandboxTemplatesService) error {
			_, err := s.Get(ctx, "build-spec")
			return err
		}},
		{"Get validate endpoint as id", func(ctx context.Context, s *miosa.SandboxTemplatesService) error {
			_, err := s.Get(ctx, "validate")
			return err
		}},
		{"Get control characters", func(ctx context.Context, s *miosa.SandboxTemplatesService) error {
			_, err := s.Get(ctx, "tpl\n1")
			return err
		}},
		{"Create without name", func(ctx context.Context, s *miosa.SandboxTemplatesService) error {
			_, err := s.Create(ctx, miosa.SandboxTemplateCreateParams{BuildSpec: spec})
			return err
		}},
		{"Create with blank name", func(ctx context.Context, s *miosa.SandboxTemplatesService) error {
			_, err := s.Create(ctx, miosa.SandboxTemplateCreateParams{Name: " ", BuildSpec: spec})
			return err
		}},
		{"Create with nil spec", func(ctx context.Context, s *miosa.SandboxTemplatesService) error {
			_, err := s.Create(ctx, miosa.SandboxTemplateCreateParams{Name: "node20"})
			return err
		}},
		{"Create with unencodable metadata", func(ctx context.Context, s *miosa.SandboxTemplatesService) error {
			_, err := s.Create(ctx, miosa.SandboxTemplateCreateParams{Name: "n", BuildSpec: spec, Metadata: map[string]any{"f": func() {}}})
			return err
		}},
		{"Validate nil spec", func(ctx context.Context, s *miosa.SandboxTemplatesService) error {
			_, err := s.Validate(ctx, nil)
			return err
		}},
		{"ListBuilds empty id", func(ctx context.Context, s *miosa.SandboxTemplatesService) error {
			_, err := s.ListBuilds(ctx, "")
			return err
		}},
		{"CreateBuild empty id", func(ctx context.Context, s *miosa.SandboxTemplatesService) error {
			_, err := s.CreateBuild(ctx, "", miosa.TemplateBuildCreateParams{})
			return err
		}},
		{"WaitForBuild empty template id", func(ctx context.Context, s *miosa.SandboxTemplatesService) error {
			_, err := s.WaitForBuild(ctx, "", "bld_1", miosa.WaitOptions{})
			return err
		}},
		{"WaitForBuild empty build id", func(ctx context.Context, s *miosa.SandboxTemplatesService) error {
			_, err := s.WaitForBuild(ctx, "tpl_1", "", miosa.WaitOptions{})
			return err
		}},
		{"WaitForBuild negative timeout", func(ctx context.Context, s *miosa.SandboxTemplatesService) error {
			_, err := s.WaitForBuild(ctx, "tpl_1", "bld_1", miosa.WaitOptions{Timeout: -time.Second})
			return err
		}},
		{"WaitForBuild negative interval", func(ctx context.Context, s *miosa.SandboxTemplatesService) error {
			_, err := s.WaitForBuild(ctx, "tpl_1", "bld_1", miosa.WaitOptions{PollInterval: -time.Second})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake, client := newScriptedServer(t)
			err := tc.call(t.Context(), client.SandboxTemplates)
			require.ErrorIs(t, err, miosa.ErrInvalidParams)
			assert.Empty(t, fake.Requests())
		})
	}
}

// buildsReply is a ListBuilds answer holding one build in state status.
func buildsReply(status string) reply {
	return reply{200, `{"builds":[{"id":"bld_0","status":"ready"},{"id":"bld_1","template_id":"tpl_1","status":"` + status + `","error":"npm install exited 1"}]}`}
}

func TestWaitForBuild_ReturnsTheFinishedBuild(t *testing.T) {
	for _, final := range []string{miosa.BuildStatusReady, miosa.BuildStatusSucceeded} {
		t.Run(final, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fake, client := newTplBubbleClient(t, buildsReply("queued"), buildsReply("building"), buildsReply(final))
				start := time.Now()
				build, err := client.SandboxTemplates.WaitForBuild(t.Context(), "tpl_1", "bld_1", miosa.WaitOptions{})
				require.NoError(t, err)
				assert.Equal(t, "bld_1", build.ID)
				assert.Equal(t, final, build.Status)
				assert.Equal(t, 4*time.Second, time.Since(start), "three polls, 2 s apart")
				reqs := fake.Requests()
				require.Len(t, reqs, 3)
				for _, req := range reqs {
					assert.Equal(t, http.MethodGet, req.Method)
					assert.Equal(t, "/sandbox-templates/tpl_1/builds", req.Path)
				}
			})
		})
	}
}

func TestWaitForBuild_FailedBuildIsABuildFailedError(t *testing.T) {
	for _, final := range []string{miosa.BuildStatusFailed, miosa.BuildStatusError, miosa.BuildStatusCancelled} {
		t.Run(final, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fake, client := newTplBubbleClient(t, buildsReply("building"), buildsReply(final))
				build, err := client.SandboxTemplates.WaitForBuild(t.Context(), "tpl_1", "bld_1", miosa.WaitOptions{})
				var failed *miosa.BuildFailedError
				require.ErrorAs(t, err, &failed)
				assert.Equal(t, "tpl_1", failed.TemplateID)
				assert.Equal(t, final, failed.Build.Status)
				assert.Equal(t, "npm install exited 1", failed.Build.Error)
				assert.Contains(t, err.Error(), "npm install exited 1")
				assert.NotErrorIs(t, err, miosa.ErrWaitTimeout)
				assert.Same(t, failed.Build, build, "the failed build is returned too")
				assert.Len(t, fake.Requests(), 2, "a failure ends the wait at once")
			})
		})
	}
}

func TestWaitForBuild_TimesOutWithErrWaitTimeout(t *testing.T) {
	for _, tc := range []struct {
		name    string
		wait    miosa.WaitOptions
		elapsed time.Duration
	}{
		{"default 5 min", miosa.WaitOptions{}, 5 * time.Minute},
		{"caller's timeout", miosa.WaitOptions{Timeout: 10 * time.Second, PollInterval: time.Second}, 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fake, client := newTplBubbleClient(t, buildsReply("building"))
				start := time.Now()
				build, err := client.SandboxTemplates.WaitForBuild(t.Context(), "tpl_1", "bld_1", tc.wait)
				require.ErrorIs(t, err, miosa.ErrWaitTimeout)
				assert.Contains(t, err.Error(), `"building"`)
				assert.Equal(t, tc.elapsed, time.Since(start))
				require.NotNil(t, build)
				assert.Equal(t, "building", build.Status)
				interval := cmp.Or(tc.wait.PollInterval, 2*time.Second)
				assert.GreaterOrEqual(t, len(fake.Requests()), int(tc.elapsed/interval))
			})
		})
	}
}

func TestWaitForBuild_KeepsWaitingWhileTheBuildIsUnlistedOrInAnUnknownState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake, client := newTplBubbleClient(t,
			reply{200, `{"builds":[]}`},
			reply{200, `{"builds":[{"id":"bld_0","status":"failed"}]}`},
			buildsReply("optimizing-layers"),
			buildsReply(miosa.BuildStatusReady))
		build, err := client.SandboxTemplates.WaitForBuild(t.Context(), "tpl_1", "bld_1", miosa.WaitOptions{})
		require.NoError(t, err)
		assert.Equal(t, miosa.BuildStatusReady, build.Status)
		assert.Len(t, fake.Requests(), 4)
	})
}

func TestWaitForBuild_TimeoutNamesAnUnlistedBuild(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, client := newTplBubbleClient(t, reply{200, `[]`})
		build, err := client.SandboxTemplates.WaitForBuild(t.Context(), "tpl_1", "bld_1", miosa.WaitOptions{Timeout: 10 * time.Second})
		require.ErrorIs(t, err, miosa.ErrWaitTimeout)
		assert.Contains(t, err.Error(), "not listed")
		assert.Nil(t, build)
	})
}

func TestWaitForBuild_PollsOnceAndRidesOutTransientErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake, client := newTplBubbleClient(t,
			reply{503, `Service Unavailable`},
			reply{429, `{"message":"slow down","retry_after":5}`},
			buildsReply(miosa.BuildStatusReady))
		start := time.Now()
		build, err := client.SandboxTemplates.WaitForBuild(t.Context(), "tpl_1", "bld_1", miosa.WaitOptions{})
		require.NoError(t, err)
		assert.Equal(t, miosa.BuildStatusReady, build.Status)
		assert.Len(t, fake.Requests(), 3, "one request per poll: the pipeline does not retry inside a poll")
		assert.Equal(t, 2*time.Second+5*time.Second, time.Since(start), "the 429's hint stretches one interval")
	})
}

func TestWaitForBuild_PermanentErrorEndsTheWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake, client := newTplBubbleClient(t, reply{404, `{"error":{"code":"NOT_FOUND","message":"Template not found"}}`})
		build, err := client.SandboxTemplates.WaitForBuild(t.Context(), "tpl_1", "bld_1", miosa.WaitOptions{})
		require.ErrorIs(t, err, miosa.ErrNotFound)
		assert.NotErrorIs(t, err, miosa.ErrWaitTimeout)
		assert.Nil(t, build)
		assert.Len(t, fake.Requests(), 1)
	})
}

func TestWaitForBuild_CallersContextEndsTheWait(t *testing.T) {
	t.Run("deadline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			_, client := newTplBubbleClient(t, buildsReply("building"))
			ctx, cancel := context.WithTimeout(t.Context(), 7*time.Second)
			defer cancel()
			start := time.Now()
			_, err := client.SandboxTemplates.WaitForBuild(ctx, "tpl_1", "bld_1", miosa.WaitOptions{})
			require.ErrorIs(t, err, context.DeadlineExceeded)
			assert.NotErrorIs(t, err, miosa.ErrWaitTimeout, "the caller's deadline is not the wait's timeout")
			assert.Equal(t, 7*time.Second, time.Since(start))
		})
	})
	t.Run("cancel", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			fake, client := newTplBubbleClient(t, buildsReply("building"))
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			fake.onServe = func(n int) {
				if n == 2 {
					cancel()
				}
			}
			_, err := client.SandboxTemplates.WaitForBuild(ctx, "tpl_1", "bld_1", miosa.WaitOptions{})
			require.ErrorIs(t, err, context.Canceled)
			assert.NotErrorIs(t, err, miosa.ErrWaitTimeout)
			assert.Len(t, fake.Requests(), 2)
		})
	})
}

func TestBuildFailedError_Message(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  *miosa.BuildFailedError
		want string
	}{
		{"with explanation", &miosa.BuildFailedError{TemplateID: "tpl_1", Build: &miosa.TemplateBuild{ID: "bld_1", Status: "failed", Error: " npm install exited 1\n"}},
			`miosa: template tpl_1: build bld_1 ended "failed": npm install exited 1`},
		{"without explanation", &miosa.BuildFailedError{TemplateID: "tpl_1", Build: &miosa.TemplateBuild{ID: "bld_1", Status: "cancelled"}},
			`miosa: template tpl_1: build bld_1 ended "cancelled"`},
		{"without build", &miosa.BuildFailedError{TemplateID: "tpl_1"}, `miosa: template tpl_1: build failed`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.err.Error())
		})
	}
}

func TestSandboxTemplatesBuildSpecSchema_ReturnsAPIErrors(t *testing.T) {
	_, client := newScriptedServer(t, reply{404, `{"error":{"code":"NOT_FOUND","message":"no schema"}}`})
	schema, err := client.SandboxTemplates.BuildSpecSchema(t.Context())
	require.ErrorIs(t, err, miosa.ErrNotFound)
	assert.Nil(t, schema)
}
