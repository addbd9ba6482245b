package miosatest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

// These tests pin the facts the fake takes from the official MIOSA SDKs'
// fixtures (see the package documentation, "What the fake assumes").

// endpointShapes calls every object endpoint once and reports, per
// endpoint, the status and whether the object came bare (an "id" or
// "valid" at the top level) or under "data".
func endpointShapes(t *testing.T, srv *miosatest.Server) map[string]string {
	t.Helper()
	client := srv.Client()
	sb := running(t, client, miosa.ComputerCreateParams{TemplateType: miosa.DefaultSandboxTemplate})
	require.NoError(t, srv.WriteFile(sb.ID, "/home/user/f", []byte("x")))
	tpl, err := client.SandboxTemplates.Create(t.Context(), miosa.SandboxTemplateCreateParams{Name: "n", BuildSpec: miosa.BuildSpec{"runtime": "go"}})
	require.NoError(t, err)
	shapes := map[string]string{}
	for name, req := range map[string][3]string{
		"computer create": {"POST", "/computers", `{}`},
		"computer get":    {"GET", "/computers/" + sb.ID, ""},
		"exec":            {"POST", "/computers/" + sb.ID + "/exec", `{"command":"echo hi"}`},
		"exec python":     {"POST", "/computers/" + sb.ID + "/exec/python", `{"code":"print(1)"}`},
		"preview token":   {"POST", "/sandboxes/" + sb.ID + "/preview-token", `{}`},
		"fork":            {"POST", "/sandboxes/" + sb.ID + "/fork", `{}`},
		"validate":        {"POST", "/sandbox-templates/validate", `{"build_spec":{"runtime":"go"}}`},
		"template get":    {"GET", "/sandbox-templates/" + tpl.ID, ""},
		"template create": {"POST", "/sandbox-templates", `{"name":"m","build_spec":{"runtime":"go"}}`},
		"build create":    {"POST", "/sandbox-templates/" + tpl.ID + "/builds", `{}`},
		"readiness":       {"GET", "/sandboxes/" + sb.ID + "/readiness", ""},
		"computer list":   {"GET", "/computers", ""},
		"template list":   {"GET", "/sandbox-templates", ""},
		"build list":      {"GET", "/sandbox-templates/" + tpl.ID + "/builds", ""},
		"export":          {"POST", "/computers/" + sb.ID + "/files/export", `{"path":"/home/user/f"}`},
		"native create":   {"POST", "/sandboxes", `{}`},
		"native get":      {"GET", "/sandboxes/" + sb.ID, ""},
		"native list":     {"GET", "/sandboxes", ""},
		"extend":          {"POST", "/sandboxes/" + sb.ID + "/extend", `{"timeout_sec":60}`},
		"snapshot create": {"POST", "/sandboxes/" + sb.ID + "/snapshots", `{}`},
		"snapshot list":   {"GET", "/sandboxes/" + sb.ID + "/snapshots", ""},
	} {
		res := call(t, srv, req[0], req[1], req[2])
		var body map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(res.body, &body), name)
		shape := "bare"
		if _, ok := body["data"]; ok {
			shape = "data"
		}
		shapes[name] = fmt.Sprintf("%d %s", res.status, shape)
	}
	return shapes
}

func TestEvidence_EachEndpointAnswersInTheShapeOfTheOfficialFixtures(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	assert.Equal(t, map[string]string{
		"computer create": "201 bare", "computer get": "200 bare",
		"exec": "200 bare", "exec python": "200 bare",
		"preview token": "200 bare", "fork": "200 bare", "validate": "200 bare",
		"template get": "200 data", "template create": "201 data", "build create": "201 data",
		"readiness": "200 data", "computer list": "200 data", "template list": "200 data", "build list": "200 data",
		"export": "200 bare", "native create": "201 data", "native get": "200 data", "native list": "200 data",
		"extend": "200 data", "snapshot create": "201 data", "snapshot list": "200 data",
	}, endpointShapes(t, srv))
}

func TestEvidence_WithDataEnvelopeWrapsEveryObject(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0), miosatest.WithDataEnvelope())
	for name, shape := range endpointShapes(t, srv) {
		assert.True(t, strings.HasSuffix(shape, " data"), "%s: %s", name, shape)
	}
}

func TestEvidence_VisibilityIsTenant(t *testing.T) {
	srv := miosatest.NewServer(t)
	c, err := srv.Client().Computers.Create(t.Context(), miosa.ComputerCreateParams{})
	require.NoError(t, err)
	assert.Equal(t, "tenant", c.Visibility)
}

func TestEvidence_CreateAndForkRefuseFieldsTheyDoNotKnow(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	sb := call(t, srv, "POST", "/computers", `{"template_type":"miosa-sandbox"}`).object(t)["id"].(string)
	for _, req := range [][2]string{
		{"/computers", `{"name":"a","nmae":"typo"}`},
		{"/sandboxes/" + sb + "/fork", `{"name":"f","tags":["x"]}`},
		{"/sandboxes/" + sb + "/fork", `{"snapshot":"s"}`},
	} {
		path, body := req[0], req[1]
		res := call(t, srv, "POST", path, body)
		assert.Equal(t, http.StatusUnprocessableEntity, res.status, body)
		_, msg := res.errorCode(t)
		assert.Contains(t, msg, "unknown field", body)
	}
	computers, _ := call(t, srv, "GET", "/computers", "").list(t)
	assert.Len(t, computers, 1, "nothing was created by a refused call")
}

func TestEvidence_CreateAppliesTheSandboxSettings(t *testing.T) {
	srv := miosatest.NewServer(t)
	res := call(t, srv, "POST", "/computers", `{"tags":["ci"],"always_on":true,"timeout_sec":600,"idle_timeout_sec":60}`)
	require.Equal(t, http.StatusCreated, res.status, string(res.body))
	c, err := srv.Client().Computers.Get(t.Context(), res.object(t)["id"].(string))
	require.NoError(t, err)
	assert.Equal(t, []string{"ci"}, c.Tags)
	assert.True(t, c.AlwaysOn)
	assert.Equal(t, 10*time.Minute, c.Timeout)
	assert.Equal(t, time.Minute, c.IdleTimeout)
}

func TestEvidence_RequestLogShowsTheExecTimeoutAsSent(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	var seen []time.Duration
	var sent []json.Number
	srv.HandleExecFunc(func(_ context.Context, req miosatest.ExecRequest) miosatest.ExecResult {
		seen, sent = append(seen, req.Timeout), append(sent, req.TimeoutSent)
		return miosatest.ExecResult{}
	})
	c := running(t, srv.Client(), miosa.ComputerCreateParams{})
	_, err := srv.Client().Exec.Run(t.Context(), c.ID, miosa.ExecParams{Command: "true", Timeout: 1500 * time.Millisecond})
	require.NoError(t, err)
	// Another client may send seconds, even fractions: kept as sent, never refused.
	res := call(t, srv, "POST", "/computers/"+c.ID+"/exec", `{"command":"true","timeout":2.5}`)
	require.Equal(t, http.StatusOK, res.status, string(res.body))

	execs := srv.RequestsTo("POST", "/computers/*/exec")
	require.Len(t, execs, 2)
	assert.JSONEq(t, `{"command":"true","timeout":1500}`, string(execs[0].Body))
	assert.Contains(t, string(execs[1].Body), `"timeout":2.5`)
	assert.Equal(t, []json.Number{"1500", "2.5"}, sent, "ExecRequest.TimeoutSent is the number as sent")
	assert.Equal(t, []time.Duration{1500 * time.Millisecond, 2500 * time.Microsecond}, seen,
		"ExecRequest.Timeout reads the number as milliseconds, this route's unit")
}

func TestEvidence_PlainDeleteOfARunningMachineIsRefused(t *testing.T) {
	srv := miosatest.NewServer(t)
	client := srv.Client()
	sb, err := client.Sandboxes.Create(t.Context(), miosa.ComputerCreateParams{})
	require.NoError(t, err)
	err = client.Sandboxes.Delete(t.Context(), sb.ID)
	assert.ErrorIs(t, err, miosa.ErrConflict)
	assert.Contains(t, err.Error(), "miosatest.WithLenientDelete()",
		"a client that never sends force=true learns how to make the fake lenient")
	require.NoError(t, client.Computers.Destroy(t.Context(), sb.ID), "force=true deletes it")
	_, ok := srv.Status(sb.ID)
	assert.False(t, ok)
}

func TestEvidence_DefaultPageSizeIsTwenty(t *testing.T) {
	srv := miosatest.NewServer(t)
	client := srv.Client()
	for range 25 {
		_, err := client.Sandboxes.Create(t.Context(), miosa.ComputerCreateParams{})
		require.NoError(t, err)
	}
	items, meta := call(t, srv, "GET", "/computers", "").list(t)
	assert.Len(t, items, 20)
	assert.Equal(t, map[string]any{"total": 25.0, "page": 1.0, "per_page": 20.0}, meta)

	listed, err := client.Sandboxes.List(t.Context())
	require.NoError(t, err)
	assert.Len(t, listed, 20, "List is one page")
}

func TestEvidence_CreateFromATemplateThatCannotServeFails(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBuildStepDelay(0))
	client := srv.Client()
	_, err := client.Sandboxes.Create(t.Context(), miosa.ComputerCreateParams{TemplateType: "no-such-template"})
	var apiErr *miosa.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusUnprocessableEntity, apiErr.StatusCode)
	assert.Equal(t, "TEMPLATE_NOT_FOUND", apiErr.Code)

	tpl, err := client.SandboxTemplates.Create(t.Context(), miosa.SandboxTemplateCreateParams{Name: "Node 20", BuildSpec: miosa.BuildSpec{"runtime": "node"}})
	require.NoError(t, err)
	_, err = client.Sandboxes.Create(t.Context(), miosa.ComputerCreateParams{TemplateType: tpl.ID})
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "TEMPLATE_NOT_READY", apiErr.Code, "a template without an image")

	_, err = client.SandboxTemplates.CreateBuild(t.Context(), tpl.ID, miosa.TemplateBuildCreateParams{})
	require.NoError(t, err)
	for _, name := range []string{tpl.ID, "node-20"} {
		sb, err := client.Sandboxes.Create(t.Context(), miosa.ComputerCreateParams{TemplateType: name})
		require.NoError(t, err, "by id or alias once built")
		assert.Equal(t, name, sb.TemplateType)
	}
	assert.Len(t, srv.RequestsTo("POST", "/computers"), 4)
}

func TestModes_BuildStatesSpeakTheNewerWire(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBuildStates())
	client := srv.Client()
	tpl, err := client.SandboxTemplates.Create(t.Context(), miosa.SandboxTemplateCreateParams{Name: "n", BuildSpec: miosa.BuildSpec{"runtime": "go"}})
	require.NoError(t, err)
	build, err := client.SandboxTemplates.CreateBuild(t.Context(), tpl.ID, miosa.TemplateBuildCreateParams{})
	require.NoError(t, err)
	assert.JSONEq(t, `"queued"`, string(field(t, build.Raw, "state")))
	assert.Nil(t, field(t, build.Raw, "status"), "no status field")
	assert.JSONEq(t, `"`+tpl.ID+`"`, string(field(t, build.Raw, "sandbox_template_id")))

	done, err := client.SandboxTemplates.WaitForBuild(t.Context(), tpl.ID, build.ID, fastWait)
	require.NoError(t, err)
	assert.Equal(t, miosa.BuildStatusReady, done.Status)
	got, err := client.SandboxTemplates.Get(t.Context(), tpl.ID)
	require.NoError(t, err)
	assert.Equal(t, "ready", got.Status)
	assert.NotNil(t, field(t, got.Raw, "state"))

	srv.FailBuilds(1, "npm install exited 1")
	build, err = client.SandboxTemplates.CreateBuild(t.Context(), tpl.ID, miosa.TemplateBuildCreateParams{})
	require.NoError(t, err)
	_, err = client.SandboxTemplates.WaitForBuild(t.Context(), tpl.ID, build.ID, fastWait)
	var failed *miosa.BuildFailedError
	require.ErrorAs(t, err, &failed)
	assert.Equal(t, "BUILD_FAILED", failed.Build.ErrorCode)
	assert.Equal(t, "npm install exited 1", failed.Build.Error)
}

// field returns the raw value of key in the JSON object obj, nil if absent.
func field(t *testing.T, obj json.RawMessage, key string) json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(obj, &m))
	return m[key]
}

func TestModes_RetryableStartingWhileAMachineBoots(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(time.Hour), miosatest.WithRetryableStarting())
	client := srv.Client()
	for template, code := range map[string]string{miosa.DefaultSandboxTemplate: "SANDBOX_STARTING", "miosa-desktop": "COMPUTER_STARTING"} {
		c, err := client.Computers.Create(t.Context(), miosa.ComputerCreateParams{TemplateType: template})
		require.NoError(t, err)
		res := call(t, srv, "POST", "/computers/"+c.ID+"/exec", `{"command":"echo hi"}`)
		assert.Equal(t, http.StatusConflict, res.status)
		var body struct {
			Error struct {
				Code         string         `json:"code"`
				Message      string         `json:"message"`
				Details      map[string]any `json:"details"`
				Retryable    bool           `json:"retryable"`
				RetryAfterMS int64          `json:"retry_after_ms"`
			} `json:"error"`
		}
		require.NoError(t, json.Unmarshal(res.body, &body))
		assert.Equal(t, code, body.Error.Code)
		assert.NotEmpty(t, body.Error.Message)
		assert.Equal(t, "creating", body.Error.Details["status"])
		assert.True(t, body.Error.Retryable)
		assert.InDelta(t, time.Hour.Milliseconds(), body.Error.RetryAfterMS, float64(time.Minute.Milliseconds()),
			"the time left until the machine runs")

		require.NoError(t, srv.SetStatus(c.ID, miosa.StatusRunning))
		res = call(t, srv, "POST", "/computers/"+c.ID+"/exec", `{"command":"echo hi"}`)
		assert.Equal(t, http.StatusOK, res.status, "once it runs, exec runs")
	}
}

func TestModes_WithoutRetryableStartingABootingMachineIsNotRunning(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(time.Hour))
	sb := call(t, srv, "POST", "/computers", `{}`).object(t)["id"].(string)
	res := call(t, srv, "POST", "/computers/"+sb+"/exec", `{"command":"echo hi"}`)
	assert.Equal(t, http.StatusConflict, res.status)
	code, _ := res.errorCode(t)
	assert.Equal(t, "NOT_RUNNING", code)
}

func TestModes_SilentReadinessStreamSendsOnlyHeartbeats(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0), miosatest.WithSilentReadinessStream(),
		miosatest.WithHeartbeatInterval(time.Millisecond), miosatest.WithStreamTimeout(5*time.Millisecond))
	sb := call(t, srv, "POST", "/computers", `{"template_type":"miosa-sandbox"}`).object(t)["id"].(string)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", srv.URL+"/sandboxes/"+sb+"/readiness/stream", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+miosatest.TestAPIKey)
	resp, err := srv.HTTPClient().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	lines := bufio.NewScanner(resp.Body)
	// The machine is ready and the stream's own timeout passes meanwhile:
	// neither makes the stream say anything but heartbeats.
	for range 20 {
		require.True(t, lines.Scan())
		assert.Contains(t, []string{": keepalive", ""}, lines.Text())
	}
}

func TestEvidence_ErrorBodiesCarryATopLevelMessageToo(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(time.Hour), miosatest.WithRetryableStarting())
	sb := newSandbox(t, srv)
	srv.Inject(miosatest.Fault{Method: "GET", Path: "/sandbox-templates", Status: http.StatusServiceUnavailable})
	for name, res := range map[string]rawResponse{
		"not found":       call(t, srv, "GET", "/computers/cmp_missing", ""),
		"invalid":         call(t, srv, "POST", "/computers", `{"size":"huge"}`),
		"invalid spec":    call(t, srv, "POST", "/sandbox-templates", `{"name":"n","build_spec":{}}`),
		"retryable":       call(t, srv, "POST", "/computers/"+sb+"/exec", `{"command":"true"}`),
		"injected":        call(t, srv, "GET", "/sandbox-templates", ""),
		"unauthenticated": call(t, srv, "GET", "/computers", "", "Authorization: Bearer nope"),
	} {
		var body struct {
			Error   struct{ Message string } `json:"error"`
			Message string                   `json:"message"`
		}
		require.NoError(t, json.Unmarshal(res.body, &body), name)
		assert.NotEmpty(t, body.Message, name)
		assert.Equal(t, body.Error.Message, body.Message, name)
	}
}
