package miosa_test

import (
	"context"
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

// These tests pin what newer servers send (the wire contract, sections 3
// and 5): builds under other field names, the settings of a sandbox, and
// objects that carry no id.

func TestTemplateBuild_ReadsTheNewerFieldNames(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       miosa.TemplateBuild
	}{
		{
			"older names",
			`{"id":"b","template_id":"tpl_1","status":"failed","error":"npm exited 1"}`,
			miosa.TemplateBuild{ID: "b", TemplateID: "tpl_1", Status: "failed", Error: "npm exited 1"},
		},
		{
			"newer names",
			`{"id":"b","sandbox_template_id":"tpl_1","state":"failed","error_code":"BUILD_FAILED","error_message":"npm exited 1"}`,
			miosa.TemplateBuild{ID: "b", TemplateID: "tpl_1", Status: "failed", ErrorCode: "BUILD_FAILED", Error: "npm exited 1"},
		},
		{
			"both: the older name wins when set",
			`{"id":"b","template_id":"tpl_1","sandbox_template_id":"tpl_2","status":"building","state":"queued","error":"e1","error_message":"e2"}`,
			miosa.TemplateBuild{ID: "b", TemplateID: "tpl_1", Status: "building", Error: "e1"},
		},
		{
			"both, older ones empty",
			`{"id":"b","template_id":"","status":"","state":"snapshotting","error":null,"error_message":"e2"}`,
			miosa.TemplateBuild{ID: "b", Status: "snapshotting", Error: "e2"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got miosa.TemplateBuild
			require.NoError(t, json.Unmarshal([]byte(tc.body), &got))
			tc.want.Raw = json.RawMessage(tc.body)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestTemplateBuild_NewerInProgressStatesDoNotEndABuild(t *testing.T) {
	for _, state := range []string{miosa.BuildStatusQueued, miosa.BuildStatusBuilding, miosa.BuildStatusCertifying, miosa.BuildStatusSnapshotting} {
		build := miosa.TemplateBuild{Status: state}
		assert.False(t, build.Finished(), state)
	}
}

func TestSandboxTemplate_ReadsStateWhenStatusIsAbsent(t *testing.T) {
	var tpl miosa.SandboxTemplate
	require.NoError(t, json.Unmarshal([]byte(`{"id":"tpl_1","state":"ready"}`), &tpl))
	assert.Equal(t, "ready", tpl.Status)
}

// stateBuilds is a ListBuilds answer from a newer server: the build's state
// under "state", its template under "sandbox_template_id".
func stateBuilds(state, extra string) reply {
	return reply{200, `{"data":[{"id":"bld_1","sandbox_template_id":"tpl_1","state":"` + state + `"` + extra + `}]}`}
}

func TestWaitForBuild_FollowsABuildReportedUnderState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		flow := []reply{}
		for _, state := range []string{"queued", "building", "certifying", "snapshotting", "ready"} {
			flow = append(flow, stateBuilds(state, ""))
		}
		fake, client := newTplBubbleClient(t, flow...)
		build, err := client.SandboxTemplates.WaitForBuild(t.Context(), "tpl_1", "bld_1", miosa.WaitOptions{PollInterval: time.Second})
		require.NoError(t, err)
		assert.Equal(t, miosa.BuildStatusReady, build.Status)
		assert.Equal(t, "tpl_1", build.TemplateID)
		assert.Len(t, fake.Requests(), 5, "every in-progress state kept the wait going")
	})
}

func TestWaitForBuild_AFailureReportedUnderStateCarriesItsMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, client := newTplBubbleClient(t, stateBuilds("building", ""),
			stateBuilds("failed", `,"error_code":"BUILD_FAILED","error_message":"npm exited 1"`))
		_, err := client.SandboxTemplates.WaitForBuild(t.Context(), "tpl_1", "bld_1", miosa.WaitOptions{})
		var failed *miosa.BuildFailedError
		require.ErrorAs(t, err, &failed)
		assert.Equal(t, "BUILD_FAILED", failed.Build.ErrorCode)
		assert.EqualError(t, err, `miosa: template tpl_1: build bld_1 ended "failed" BUILD_FAILED: npm exited 1`)
	})
}

func TestComputer_DecodesTheSandboxSettings(t *testing.T) {
	var c miosa.Computer
	require.NoError(t, json.Unmarshal([]byte(`{"id":"c","tags":["ci",7,"web"],"always_on":true,"timeout_sec":3600,"idle_timeout_sec":90.5}`), &c))
	assert.Equal(t, []string{"ci", "web"}, c.Tags, "a tag that is not a string is skipped")
	assert.True(t, c.AlwaysOn)
	assert.Equal(t, time.Hour, c.Timeout)
	assert.Equal(t, 90*time.Second+500*time.Millisecond, c.IdleTimeout)

	require.NoError(t, json.Unmarshal([]byte(`{"id":"c","timeout_sec":null}`), &c))
	assert.Zero(t, c.Timeout)
	assert.Nil(t, c.Tags, "a decode starts from an empty computer")
}

func TestComputer_RefusesDurationsNoDurationCanHold(t *testing.T) {
	for _, value := range []string{`-1`, `"60"`, `1e300`, `true`} {
		var c miosa.Computer
		err := json.Unmarshal([]byte(`{"id":"c","idle_timeout_sec":`+value+`}`), &c)
		assert.Error(t, err, value)
	}
}

func TestDecoding_AnObjectWithoutAnIDIsAnError(t *testing.T) {
	objects := []string{`{"name":"x","status":"running"}`, `{"data":{"id":"","status":"running"}}`, `{"data":null}`}
	lists := []string{`[{"name":"x","status":"running"}]`, `{"data":[{"id":"a"},{"status":"running"}]}`}
	for _, tc := range []struct {
		name   string
		bodies []string
		call   func(ctx context.Context, c *miosa.Client) error
	}{
		{"computer create", objects, func(ctx context.Context, c *miosa.Client) error {
			_, err := c.Computers.Create(ctx, miosa.ComputerCreateParams{})
			return err
		}},
		{"computer get", objects, func(ctx context.Context, c *miosa.Client) error {
			_, err := c.Computers.Get(ctx, "c")
			return err
		}},
		{"computer list", lists, func(ctx context.Context, c *miosa.Client) error {
			_, err := c.Computers.List(ctx, miosa.ComputerListParams{})
			return err
		}},
		{"sandbox fork", objects, func(ctx context.Context, c *miosa.Client) error {
			_, err := c.Sandboxes.Fork(ctx, "sb", miosa.SandboxForkParams{})
			return err
		}},
		{"sandbox update", objects, func(ctx context.Context, c *miosa.Client) error {
			_, err := c.Sandboxes.Update(ctx, "sb", miosa.SandboxUpdateParams{Name: miosa.Ptr("x")})
			return err
		}},
		{"template get", objects, func(ctx context.Context, c *miosa.Client) error {
			_, err := c.SandboxTemplates.Get(ctx, "tpl")
			return err
		}},
		{"template create", objects, func(ctx context.Context, c *miosa.Client) error {
			_, err := c.SandboxTemplates.Create(ctx, miosa.SandboxTemplateCreateParams{Name: "n", BuildSpec: miosa.BuildSpec{}})
			return err
		}},
		{"build create", objects, func(ctx context.Context, c *miosa.Client) error {
			_, err := c.SandboxTemplates.CreateBuild(ctx, "tpl", miosa.TemplateBuildCreateParams{})
			return err
		}},
		{"build list", lists, func(ctx context.Context, c *miosa.Client) error {
			_, err := c.SandboxTemplates.ListBuilds(ctx, "tpl")
			return err
		}},
	} {
		for _, body := range tc.bodies {
			t.Run(tc.name+" "+body, func(t *testing.T) {
				_, client := newScriptedServer(t, reply{http.StatusOK, body})
				err := tc.call(t.Context(), client)
				require.Error(t, err)
				assert.Contains(t, err.Error(), `decoding the response: the object has no "id"`)
			})
		}
	}
}

func TestExec_RetryableStartingIsRetriedUntilTheSandboxRuns(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithRetryableStarting(), miosatest.WithBootDelay(30*time.Millisecond))
	client := srv.Client()
	sb, err := client.Sandboxes.Create(t.Context(), miosa.ComputerCreateParams{})
	require.NoError(t, err)
	res, err := client.Exec.Run(t.Context(), sb.ID, miosa.ExecParams{Command: "echo up"})
	require.NoError(t, err, "retryable: true promises nothing ran, so exec may be sent again")
	assert.Equal(t, "up\n", res.Stdout)
	execs := srv.RequestsTo("POST", "/computers/*/exec")
	require.GreaterOrEqual(t, len(execs), 2)
	assert.Equal(t, http.StatusConflict, execs[0].Status)
	assert.Equal(t, http.StatusOK, execs[len(execs)-1].Status)
}
