package miosa_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

const sbComputer = `{"id":"sb_1","name":"demo","status":"creating","template_type":"miosa-sandbox","created_at":"2026-05-18T00:00:00Z"}`

func TestSandboxes_TemplateIsTheSandboxTemplate(t *testing.T) {
	_, c := newScriptedServer(t)
	assert.Equal(t, "miosa-sandbox", c.Sandboxes.Template())
	assert.Equal(t, miosa.DefaultSandboxTemplate, c.Sandboxes.Template())
}

func TestSandboxesCreate_PostsComputerWithSandboxTemplate(t *testing.T) {
	tests := []struct {
		name     string
		params   miosa.ComputerCreateParams
		wantBody string
	}{
		{"template defaults", miosa.ComputerCreateParams{Name: "demo"}, `{"name":"demo","template_type":"miosa-sandbox"}`},
		{"zero params", miosa.ComputerCreateParams{}, `{"template_type":"miosa-sandbox"}`},
		{"explicit template kept", miosa.ComputerCreateParams{TemplateType: "tpl_node", Size: "medium", ExternalUserID: "u1"},
			`{"template_type":"tpl_node","size":"medium","external_user_id":"u1"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, c := newScriptedServer(t, reply{http.StatusCreated, `{"computer":` + sbComputer + `}`})
			sb, err := c.Sandboxes.Create(context.Background(), tt.params)
			require.NoError(t, err)
			assert.Equal(t, "sb_1", sb.ID)
			assert.Equal(t, miosa.StatusCreating, sb.Status)
			assert.Equal(t, time.Date(2026, 5, 18, 0, 0, 0, 0, time.UTC), sb.CreatedAt)
			r := srv.onlyRequest(t)
			assert.Equal(t, http.MethodPost, r.Method)
			assert.Equal(t, "/computers", r.Path)
			assert.Empty(t, r.Query)
			assert.JSONEq(t, tt.wantBody, string(r.Body))
			assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
			assert.Equal(t, "Bearer "+scriptedKey, r.Header.Get("Authorization"))
			assert.NotEmpty(t, r.Header.Get("Idempotency-Key"))
		})
	}
}

func TestSandboxesCreateAndFork_KeepTheIdempotencyKeyAcrossA503(t *testing.T) {
	calls := []struct {
		name string
		call func(c *miosa.Client, opts ...miosa.Option) (*miosa.Sandbox, error)
	}{
		{"create", func(c *miosa.Client, opts ...miosa.Option) (*miosa.Sandbox, error) {
			return c.Sandboxes.Create(context.Background(), miosa.ComputerCreateParams{Name: "demo"}, opts...)
		}},
		{"fork", func(c *miosa.Client, opts ...miosa.Option) (*miosa.Sandbox, error) {
			return c.Sandboxes.Fork(context.Background(), "sb_0", miosa.SandboxForkParams{Name: "copy"}, opts...)
		}},
	}
	for _, tt := range calls {
		t.Run(tt.name+" generated key", func(t *testing.T) {
			srv, c := newScriptedServer(t,
				reply{http.StatusServiceUnavailable, `Service Unavailable`},
				reply{http.StatusCreated, sbComputer})
			sb, err := tt.call(c)
			require.NoError(t, err)
			assert.Equal(t, "sb_1", sb.ID)
			reqs := srv.Requests()
			require.Len(t, reqs, 2)
			key := reqs[0].Header.Get("Idempotency-Key")
			require.NotEmpty(t, key)
			assert.Equal(t, key, reqs[1].Header.Get("Idempotency-Key"))
			assert.Equal(t, reqs[0].Body, reqs[1].Body)
		})
		t.Run(tt.name+" caller key", func(t *testing.T) {
			srv, c := newScriptedServer(t,
				reply{http.StatusServiceUnavailable, `{}`},
				reply{http.StatusCreated, sbComputer})
			_, err := tt.call(c, miosa.WithIdempotencyKey("key-1"))
			require.NoError(t, err)
			for _, r := range srv.Requests() {
				assert.Equal(t, "key-1", r.Header.Get("Idempotency-Key"))
			}
			assert.Len(t, srv.Requests(), 2)
		})
	}
}

func TestSandboxesGet_FetchesTheComputer(t *testing.T) {
	for _, body := range []string{sbComputer, `{"data":` + sbComputer + `}`, `{"sandbox":` + sbComputer + `}`} {
		srv, c := newScriptedServer(t, reply{http.StatusOK, body})
		sb, err := c.Sandboxes.Get(context.Background(), "sb/1")
		require.NoError(t, err)
		assert.Equal(t, "sb_1", sb.ID)
		assert.JSONEq(t, sbComputer, string(sb.Raw))
		r := srv.onlyRequest(t)
		assert.Equal(t, http.MethodGet, r.Method)
		assert.Equal(t, "/computers/sb%2F1", r.Path)
		assert.Empty(t, r.Body)
		assert.Empty(t, r.Header.Get("Content-Type"))
		assert.Empty(t, r.Header.Get("Idempotency-Key"))
	}
}

func TestSandboxesList_KeepsOnlySandboxes(t *testing.T) {
	items := `[{"id":"a","template_type":"miosa-sandbox"},{"id":"b","template_type":"miosa-desktop"},{"id":"c","template_type":"miosa-sandbox"},{"id":"d"}]`
	for _, body := range []string{items, `{"computers":` + items + `}`, `{"data":` + items + `,"meta":{"total":4,"page":1,"per_page":20}}`} {
		srv, c := newScriptedServer(t, reply{http.StatusOK, body})
		got, err := c.Sandboxes.List(context.Background())
		require.NoError(t, err)
		require.Len(t, got, 2)
		assert.Equal(t, "a", got[0].ID)
		assert.Equal(t, "c", got[1].ID)
		r := srv.onlyRequest(t)
		assert.Equal(t, http.MethodGet, r.Method)
		assert.Equal(t, "/computers", r.Path)
		assert.Empty(t, r.Query)
	}
}

func TestSandboxesList_NoSandboxesIsAnEmptyList(t *testing.T) {
	_, c := newScriptedServer(t, reply{http.StatusOK, `{"computers":[{"id":"b","template_type":"miosa-desktop"}]}`})
	got, err := c.Sandboxes.List(context.Background())
	require.NoError(t, err)
	assert.NotNil(t, got)
	assert.Empty(t, got)
}

func TestSandboxesDelete_DeletesTheComputerWithoutForce(t *testing.T) {
	for _, answer := range []reply{{http.StatusNoContent, ``}, {http.StatusOK, `{"ok":true}`}} {
		srv, c := newScriptedServer(t, answer)
		require.NoError(t, c.Sandboxes.Delete(context.Background(), "sb_1"))
		r := srv.onlyRequest(t)
		assert.Equal(t, http.MethodDelete, r.Method)
		assert.Equal(t, "/computers/sb_1", r.Path)
		assert.Empty(t, r.Query)
		assert.Empty(t, r.Body)
	}
}

func TestSandboxesDestroy_ForcesTheDeleteAndCountsA404ToARetryAsDone(t *testing.T) {
	srv, c := newScriptedServer(t, reply{http.StatusServiceUnavailable, `{"error":"deleted, then the proxy failed"}`},
		reply{http.StatusNotFound, `{"error":{"code":"NOT_FOUND","message":"Host not found"}}`})
	require.NoError(t, c.Sandboxes.Destroy(t.Context(), "sb/1"))
	reqs := srv.Requests()
	require.Len(t, reqs, 2)
	for _, r := range reqs {
		assert.Equal(t, http.MethodDelete, r.Method)
		assert.Equal(t, "/computers/sb%2F1", r.Path)
		assert.Equal(t, "force=true", r.Query)
	}
}

// A plain delete of a running machine is refused with 409, and the
// server's own advice ("delete with force=true") names no Go call: the
// error says which one to use.
func TestDelete_AConflictSaysToUseDestroy(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	c := srv.Client()
	for name, del := range map[string]func(context.Context, string, ...miosa.Option) error{
		"Computers.Delete": c.Computers.Delete, "Sandboxes.Delete": c.Sandboxes.Delete,
	} {
		t.Run(name, func(t *testing.T) {
			sb, err := c.Sandboxes.Create(t.Context(), miosa.ComputerCreateParams{})
			require.NoError(t, err)
			err = del(t.Context(), sb.ID)
			require.ErrorIs(t, err, miosa.ErrConflict)
			var apiErr *miosa.APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Contains(t, apiErr.Message, "use Computers.Destroy or Sandboxes.Destroy")
			assert.Contains(t, err.Error(), "Sandboxes.Destroy")

			require.NoError(t, c.Sandboxes.Destroy(t.Context(), sb.ID))
			_, found := srv.Status(sb.ID)
			assert.False(t, found)
		})
	}
	t.Run("a forced delete's conflict has no such hint", func(t *testing.T) {
		_, c := newScriptedServer(t, reply{http.StatusConflict, `{"error":"snapshot in progress","code":"CONFLICT"}`})
		err := c.Sandboxes.Destroy(t.Context(), "sb_1")
		require.ErrorIs(t, err, miosa.ErrConflict)
		assert.NotContains(t, err.Error(), "Destroy")
	})
}

func TestSandboxesCreate_TheFakeAppliesTheSandboxSettings(t *testing.T) {
	srv := miosatest.NewServer(t)
	c := srv.Client()
	sb, err := c.Sandboxes.Create(t.Context(), miosa.ComputerCreateParams{
		Tags: []string{"eval"}, AlwaysOn: true, Timeout: 1500 * time.Millisecond, IdleTimeout: 5 * time.Minute,
	})
	require.NoError(t, err)
	fetched, err := c.Sandboxes.Get(t.Context(), sb.ID)
	require.NoError(t, err)
	for _, got := range []*miosa.Sandbox{sb, fetched} {
		assert.Equal(t, []string{"eval"}, got.Tags)
		assert.True(t, got.AlwaysOn)
		assert.Equal(t, 2*time.Second, got.Timeout, "whole seconds, rounded up")
		assert.Equal(t, 5*time.Minute, got.IdleTimeout)
	}
	creates := srv.RequestsTo("POST", "/computers")
	require.Len(t, creates, 1)
	assert.JSONEq(t, `{"template_type":"miosa-sandbox","tags":["eval"],"always_on":true,"timeout_sec":2,"idle_timeout_sec":300}`, string(creates[0].Body))
}

func TestSandboxesFork_SendsOnlySetFields(t *testing.T) {
	tests := []struct {
		name     string
		params   miosa.SandboxForkParams
		wantBody string
	}{
		{"nothing set", miosa.SandboxForkParams{}, `{}`},
		{"all set", miosa.SandboxForkParams{SnapshotID: "snap_1", Name: "copy", ExternalUserID: "u1"},
			`{"snapshot_id":"snap_1","name":"copy","external_user_id":"u1"}`},
		{"name only", miosa.SandboxForkParams{Name: "copy"}, `{"name":"copy"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, c := newScriptedServer(t, reply{http.StatusCreated, `{"sandbox":{"id":"sb_2","template_type":"miosa-sandbox"}}`})
			sb, err := c.Sandboxes.Fork(context.Background(), "sb_1", tt.params)
			require.NoError(t, err)
			assert.Equal(t, "sb_2", sb.ID)
			r := srv.onlyRequest(t)
			assert.Equal(t, http.MethodPost, r.Method)
			assert.Equal(t, "/sandboxes/sb_1/fork", r.Path)
			assert.JSONEq(t, tt.wantBody, string(r.Body))
			assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
			assert.NotEmpty(t, r.Header.Get("Idempotency-Key"))
		})
	}
}

func TestSandboxesUpdate_SendsOnlySetFields(t *testing.T) {
	tests := []struct {
		name     string
		params   miosa.SandboxUpdateParams
		wantBody string
	}{
		{"name", miosa.SandboxUpdateParams{Name: miosa.Ptr("n")}, `{"name":"n"}`},
		{"always on false is sent", miosa.SandboxUpdateParams{AlwaysOn: miosa.Ptr(false)}, `{"always_on":false}`},
		{"empty tags clear", miosa.SandboxUpdateParams{Tags: []string{}}, `{"tags":[]}`},
		{"empty metadata", miosa.SandboxUpdateParams{Metadata: map[string]any{}}, `{"metadata":{}}`},
		{"zero timeout is sent", miosa.SandboxUpdateParams{Timeout: miosa.Ptr(time.Duration(0))}, `{"timeout_sec":0}`},
		{"fractions round up", miosa.SandboxUpdateParams{
			Timeout: miosa.Ptr(90 * time.Second), IdleTimeout: miosa.Ptr(1500 * time.Millisecond),
		}, `{"timeout_sec":90,"idle_timeout_sec":2}`},
		{"everything", miosa.SandboxUpdateParams{
			Name: miosa.Ptr("n"), Slug: miosa.Ptr("s"), Tags: []string{"a", "b"},
			Metadata: map[string]any{"k": "v"}, AlwaysOn: miosa.Ptr(true),
			Timeout: miosa.Ptr(time.Hour), IdleTimeout: miosa.Ptr(time.Nanosecond),
		}, `{"name":"n","slug":"s","tags":["a","b"],"metadata":{"k":"v"},"always_on":true,"timeout_sec":3600,"idle_timeout_sec":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, c := newScriptedServer(t, reply{http.StatusOK, `{"data":{"id":"sb_1","name":"n"}}`})
			sb, err := c.Sandboxes.Update(context.Background(), "sb_1", tt.params)
			require.NoError(t, err)
			assert.Equal(t, "sb_1", sb.ID)
			r := srv.onlyRequest(t)
			assert.Equal(t, http.MethodPatch, r.Method)
			assert.Equal(t, "/sandboxes/sb_1", r.Path)
			assert.JSONEq(t, tt.wantBody, string(r.Body))
			assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
			assert.Empty(t, r.Header.Get("Idempotency-Key"))
		})
	}
}

func TestSandboxesPreviewToken_AlwaysSendsExpiryAndScope(t *testing.T) {
	tests := []struct {
		name     string
		params   miosa.PreviewTokenParams
		wantBody string
	}{
		{"defaults", miosa.PreviewTokenParams{}, `{"expires_in":3600,"scope":"read"}`},
		{"interact for ten minutes", miosa.PreviewTokenParams{ExpiresIn: 10 * time.Minute, Scope: miosa.PreviewScopeInteract},
			`{"expires_in":600,"scope":"interact"}`},
		{"fraction rounds up", miosa.PreviewTokenParams{ExpiresIn: 1500 * time.Millisecond}, `{"expires_in":2,"scope":"read"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, c := newScriptedServer(t, reply{http.StatusOK, `{"token":"tok","url":"https://p.example/x","expires_at":"2026-05-18T01:00:00Z","scope":"read"}`})
			_, err := c.Sandboxes.PreviewToken(context.Background(), "sb_1", tt.params)
			require.NoError(t, err)
			r := srv.onlyRequest(t)
			assert.Equal(t, http.MethodPost, r.Method)
			assert.Equal(t, "/sandboxes/sb_1/preview-token", r.Path)
			assert.JSONEq(t, tt.wantBody, string(r.Body))
			assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
		})
	}
}

func TestSandboxesPreviewToken_DecodesEveryEnvelope(t *testing.T) {
	const token = `{"token":"tok","url":"https://p.example/x","expires_at":"2026-05-18T01:00:00Z","scope":"interact","extra":1}`
	for _, body := range []string{token, `{"data":` + token + `}`, `{"result":` + token + `}`, `{"preview_token":` + token + `}`} {
		_, c := newScriptedServer(t, reply{http.StatusCreated, body})
		pt, err := c.Sandboxes.PreviewToken(context.Background(), "sb_1", miosa.PreviewTokenParams{})
		require.NoError(t, err, body)
		assert.Equal(t, "tok", pt.Token)
		assert.Equal(t, "https://p.example/x", pt.URL)
		assert.Equal(t, "interact", pt.Scope)
		assert.Equal(t, time.Date(2026, 5, 18, 1, 0, 0, 0, time.UTC), pt.ExpiresAt)
		assert.JSONEq(t, token, string(pt.Raw))
	}
}

func TestSandboxesReadiness_DecodesEveryShape(t *testing.T) {
	readyAt := time.Date(2026, 5, 18, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		body        string
		wantReady   bool
		wantStatus  string
		wantReadyAt time.Time
		wantRaw     string
	}{
		{`{"data":{"ready":true}}`, true, "", time.Time{}, `{"ready":true}`},
		{`{"ready":true,"ready_at":"2026-05-18T00:00:00Z"}`, true, "", readyAt, ""},
		{`{"data":{"ready":false,"status":"booting"}}`, false, "booting", time.Time{}, `{"ready":false,"status":"booting"}`},
		{`{"status":"ready"}`, true, "ready", time.Time{}, ""},
		{`{"result":{"status":"ready","ready_at":"2026-05-18T00:00:00Z"}}`, true, "ready", readyAt, `{"status":"ready","ready_at":"2026-05-18T00:00:00Z"}`},
		{`{"readiness":{"ready":true}}`, true, "", time.Time{}, `{"ready":true}`},
		{`{"ready":"true"}`, false, "", time.Time{}, ""},
		{`{"ready":1}`, false, "", time.Time{}, ""},
		{`{"ready":null,"status":"READY"}`, false, "READY", time.Time{}, ""},
		{`{}`, false, "", time.Time{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			srv, c := newScriptedServer(t, reply{http.StatusOK, tt.body})
			r, err := c.Sandboxes.Readiness(context.Background(), "sb_1")
			require.NoError(t, err)
			assert.Equal(t, tt.wantReady, r.Ready)
			assert.Equal(t, tt.wantStatus, r.Status)
			assert.Equal(t, tt.wantReadyAt, r.ReadyAt)
			wantRaw := tt.wantRaw
			if wantRaw == "" {
				wantRaw = tt.body
			}
			assert.JSONEq(t, wantRaw, string(r.Raw))
			req := srv.onlyRequest(t)
			assert.Equal(t, http.MethodGet, req.Method)
			assert.Equal(t, "/sandboxes/sb_1/readiness", req.Path)
			assert.Empty(t, req.Query)
			assert.Equal(t, "application/json", req.Header.Get("Accept"))
		})
	}
}

func TestSandboxes_APIErrorsComeBackTyped(t *testing.T) {
	srv, c := newScriptedServer(t, reply{http.StatusNotFound, `{"error":{"code":"NOT_FOUND","message":"Host not found"}}`})
	_, err := c.Sandboxes.Readiness(context.Background(), "sb_1")
	require.ErrorIs(t, err, miosa.ErrNotFound)
	var apiErr *miosa.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "NOT_FOUND", apiErr.Code)
	assert.Equal(t, "/sandboxes/sb_1/readiness", apiErr.Path)
	assert.Len(t, srv.Requests(), 1, "404 is not retried")
}

func TestSandboxes_InvalidInputSendsNothing(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		call func(c *miosa.Client) error
	}{
		{"create bad size", func(c *miosa.Client) error {
			_, err := c.Sandboxes.Create(ctx, miosa.ComputerCreateParams{Size: "huge"})
			return err
		}},
		{"get empty id", func(c *miosa.Client) error { _, err := c.Sandboxes.Get(ctx, ""); return err }},
		{"get dot-dot", func(c *miosa.Client) error { _, err := c.Sandboxes.Get(ctx, ".."); return err }},
		{"delete blank id", func(c *miosa.Client) error { return c.Sandboxes.Delete(ctx, " ") }},
		{"destroy dot-dot", func(c *miosa.Client) error { return c.Sandboxes.Destroy(ctx, "..") }},
		{"fork control char", func(c *miosa.Client) error {
			_, err := c.Sandboxes.Fork(ctx, "sb\x00", miosa.SandboxForkParams{})
			return err
		}},
		{"update empty id", func(c *miosa.Client) error {
			_, err := c.Sandboxes.Update(ctx, "", miosa.SandboxUpdateParams{Name: miosa.Ptr("n")})
			return err
		}},
		{"update sets nothing", func(c *miosa.Client) error {
			_, err := c.Sandboxes.Update(ctx, "sb_1", miosa.SandboxUpdateParams{})
			return err
		}},
		{"update negative timeout", func(c *miosa.Client) error {
			_, err := c.Sandboxes.Update(ctx, "sb_1", miosa.SandboxUpdateParams{Timeout: miosa.Ptr(-time.Second)})
			return err
		}},
		{"update negative idle timeout", func(c *miosa.Client) error {
			_, err := c.Sandboxes.Update(ctx, "sb_1", miosa.SandboxUpdateParams{IdleTimeout: miosa.Ptr(-time.Nanosecond)})
			return err
		}},
		{"preview token negative expiry", func(c *miosa.Client) error {
			_, err := c.Sandboxes.PreviewToken(ctx, "sb_1", miosa.PreviewTokenParams{ExpiresIn: -time.Minute})
			return err
		}},
		{"preview token empty id", func(c *miosa.Client) error {
			_, err := c.Sandboxes.PreviewToken(ctx, "", miosa.PreviewTokenParams{})
			return err
		}},
		{"readiness dot", func(c *miosa.Client) error { _, err := c.Sandboxes.Readiness(ctx, "."); return err }},
		{"bad per-call option", func(c *miosa.Client) error {
			_, err := c.Sandboxes.Readiness(ctx, "sb_1", miosa.WithRequestTimeout(-1))
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, c := newScriptedServer(t)
			err := tt.call(c)
			require.ErrorIs(t, err, miosa.ErrInvalidParams)
			assert.Empty(t, srv.Requests())
		})
	}
}

func TestPreviewToken_KeepsUnknownFieldsInRaw(t *testing.T) {
	var pt miosa.PreviewToken
	require.NoError(t, json.Unmarshal([]byte(`{"token":"t","expires_at":1779062400,"new":{"x":1}}`), &pt))
	assert.Equal(t, "t", pt.Token)
	assert.Equal(t, time.Unix(1779062400, 0).UTC(), pt.ExpiresAt)
	assert.Contains(t, string(pt.Raw), `"new"`)
}
