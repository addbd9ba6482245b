package miosatest_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fastWait polls often, so tests wait for the fake's short boot delay only.
var fastWait = miosa.WaitOptions{PollInterval: 2 * time.Millisecond, Timeout: 10 * time.Second}

// rawResponse is an answer read in full.
type rawResponse struct {
	status int
	header http.Header
	body   []byte
}

// object decodes the answer's object: its "data" member, or the whole body
// for an endpoint that answers bare.
func (r rawResponse) object(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal(r.body, &v), string(r.body))
	if inner, ok := v["data"].(map[string]any); ok {
		return inner
	}
	return v
}

// list decodes a list answer.
func (r rawResponse) list(t *testing.T) ([]map[string]any, map[string]any) {
	t.Helper()
	var v struct {
		Data []map[string]any `json:"data"`
		Meta map[string]any   `json:"meta"`
	}
	require.NoError(t, json.Unmarshal(r.body, &v), string(r.body))
	return v.Data, v.Meta
}

// errorCode returns the code and message of the nested error envelope.
func (r rawResponse) errorCode(t *testing.T) (string, string) {
	t.Helper()
	var v struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	require.NoError(t, json.Unmarshal(r.body, &v), string(r.body))
	return v.Error.Code, v.Error.Message
}

// call sends one raw request with a valid key; headers are extra
// "Name: value" pairs.
func call(t *testing.T, srv *miosatest.Server, method, path, body string, headers ...string) rawResponse {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, r)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+miosatest.TestAPIKey)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	resp, err := srv.HTTPClient().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return rawResponse{status: resp.StatusCode, header: resp.Header, body: b}
}

// running creates a machine through the SDK and waits until it runs.
func running(t *testing.T, client *miosa.Client, params miosa.ComputerCreateParams) *miosa.Computer {
	t.Helper()
	c, err := client.Computers.Create(t.Context(), params)
	require.NoError(t, err)
	c, err = client.Computers.WaitForStatus(t.Context(), c.ID, miosa.StatusRunning, fastWait)
	require.NoError(t, err)
	return c
}

func TestServer_URLEndsInAPIPathOnLoopback(t *testing.T) {
	srv := miosatest.NewServer(t)
	assert.True(t, strings.HasPrefix(srv.URL, "http://127.0.0.1:"), srv.URL)
	assert.True(t, strings.HasSuffix(srv.URL, "/api/v1"), srv.URL)
	assert.Equal(t, srv.URL, srv.Client().BaseURL())
}

func TestServer_CreateAnswersCreatingThenBootsToRunning(t *testing.T) {
	srv := miosatest.NewServer(t)
	client := srv.Client()
	c, err := client.Computers.Create(t.Context(), miosa.ComputerCreateParams{
		Name: "desk", Metadata: map[string]any{"team": "a"}, ExternalUserID: "u1",
	})
	require.NoError(t, err)
	assert.Equal(t, miosa.StatusCreating, c.Status)
	assert.Equal(t, "miosa-desktop", c.TemplateType, "the raw endpoint defaults to the desktop template")
	assert.Equal(t, "small", c.Size)
	assert.Equal(t, "desk", c.Name)
	assert.Equal(t, "u1", c.ExternalUserID)
	assert.Equal(t, map[string]any{"team": "a"}, c.Metadata)
	assert.False(t, c.CreatedAt.IsZero())

	got, err := client.Computers.WaitForStatus(t.Context(), c.ID, miosa.StatusRunning, fastWait)
	require.NoError(t, err)
	assert.Equal(t, c.ID, got.ID)
	assert.NotEmpty(t, got.IPAddress)
	assert.NotEmpty(t, got.VNCURL, "a desktop has a VNC URL once it runs")
	status, ok := srv.Status(c.ID)
	assert.True(t, ok)
	assert.Equal(t, miosa.StatusRunning, status)
}

func TestServer_ZeroBootDelayCreatesRunningMachines(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	c, err := srv.Client().Computers.Create(t.Context(), miosa.ComputerCreateParams{TemplateType: miosa.DefaultSandboxTemplate})
	require.NoError(t, err)
	assert.Equal(t, miosa.StatusRunning, c.Status)
	assert.Empty(t, c.VNCURL, "a sandbox has no desktop")
}

func TestServer_CreateRefusesAnUnknownSize(t *testing.T) {
	srv := miosatest.NewServer(t)
	res := call(t, srv, "POST", "/computers", `{"size":"huge"}`)
	assert.Equal(t, http.StatusUnprocessableEntity, res.status)
	code, msg := res.errorCode(t)
	assert.Equal(t, "INVALID", code)
	assert.Contains(t, msg, "huge")
	assert.Equal(t, http.StatusBadRequest, call(t, srv, "POST", "/computers", `[1]`).status)
}

func TestServer_RefusesRequestsWithoutAValidKey(t *testing.T) {
	srv := miosatest.NewServer(t)
	for name, auth := range map[string]string{
		"missing":    "",
		"not msk":    "Bearer sk_live_123",
		"not bearer": "Basic msk_test",
	} {
		t.Run(name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/computers", nil)
			require.NoError(t, err)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := srv.HTTPClient().Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			res := rawResponse{status: resp.StatusCode, body: body}
			assert.Equal(t, http.StatusUnauthorized, res.status)
			code, _ := res.errorCode(t)
			assert.Equal(t, "UNAUTHORIZED", code)
		})
	}
}

func TestServer_WithAPIKeyAcceptsOnlyThatKey(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithAPIKey("msk_u_mine"))
	_, err := srv.Client().Computers.List(t.Context(), miosa.ComputerListParams{})
	require.NoError(t, err, "Client uses the configured key")

	other, err := miosa.NewClient("msk_u_other", miosa.WithBaseURL(srv.URL), miosa.WithHTTPClient(srv.HTTPClient()))
	require.NoError(t, err)
	_, err = other.Computers.List(t.Context(), miosa.ComputerListParams{})
	assert.ErrorIs(t, err, miosa.ErrUnauthorized)

	_, err = miosatest.Start(miosatest.WithAPIKey("sk_nope"))
	assert.Error(t, err)
}

func TestServer_UnknownIDsAndRoutesAnswerNotFoundEnvelope(t *testing.T) {
	srv := miosatest.NewServer(t)
	for _, path := range []string{
		"/computers/cmp_missing", "/sandboxes/cmp_missing/readiness",
		"/sandbox-templates/tpl_missing", "/sandbox-templates/tpl_missing/builds", "/no/such/route",
	} {
		res := call(t, srv, "GET", path, "")
		assert.Equal(t, http.StatusNotFound, res.status, path)
		code, msg := res.errorCode(t)
		assert.Equal(t, "NOT_FOUND", code, path)
		assert.NotEmpty(t, msg, path)
	}
	_, err := srv.Client().Computers.Get(t.Context(), "cmp_missing")
	var apiErr *miosa.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.ErrorIs(t, err, miosa.ErrNotFound)
	assert.Equal(t, "NOT_FOUND", apiErr.Code)
	assert.NotEmpty(t, apiErr.RequestID, "every answer carries X-Request-ID")
}

func TestServer_LifecycleMovesAsTheAPIDoes(t *testing.T) {
	srv := miosatest.NewServer(t)
	client := srv.Client()
	c := running(t, client, miosa.ComputerCreateParams{})

	err := client.Computers.Delete(t.Context(), c.ID)
	var apiErr *miosa.APIError
	require.ErrorAs(t, err, &apiErr, "by default the server refuses to delete a running machine without force")
	assert.Equal(t, http.StatusConflict, apiErr.StatusCode)

	require.NoError(t, client.Computers.Stop(t.Context(), c.ID))
	got, err := client.Computers.Get(t.Context(), c.ID)
	require.NoError(t, err)
	assert.Equal(t, miosa.StatusStopped, got.Status)

	require.NoError(t, client.Computers.Start(t.Context(), c.ID))
	got, err = client.Computers.Get(t.Context(), c.ID)
	require.NoError(t, err)
	assert.Equal(t, miosa.StatusStarting, got.Status)
	_, err = client.Computers.WaitForStatus(t.Context(), c.ID, miosa.StatusRunning, fastWait)
	require.NoError(t, err)

	require.NoError(t, client.Computers.Restart(t.Context(), c.ID))
	got, err = client.Computers.Get(t.Context(), c.ID)
	require.NoError(t, err)
	assert.Equal(t, miosa.StatusStarting, got.Status)

	require.NoError(t, client.Computers.Destroy(t.Context(), c.ID), "force=true deletes whatever the state")
	_, err = client.Computers.Get(t.Context(), c.ID)
	assert.ErrorIs(t, err, miosa.ErrNotFound)
	_, ok := srv.Status(c.ID)
	assert.False(t, ok)

	stopped := running(t, client, miosa.ComputerCreateParams{})
	require.NoError(t, client.Computers.Stop(t.Context(), stopped.ID))
	res := call(t, srv, "DELETE", "/computers/"+stopped.ID, "")
	assert.Equal(t, http.StatusOK, res.status)
	assert.JSONEq(t, `{"ok":true}`, string(res.body))
}

func TestServer_LenientDeleteRemovesARunningMachine(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithLenientDelete())
	client := srv.Client()
	c := running(t, client, miosa.ComputerCreateParams{})
	require.NoError(t, client.Computers.Delete(t.Context(), c.ID))
	_, err := client.Computers.Get(t.Context(), c.ID)
	assert.ErrorIs(t, err, miosa.ErrNotFound)
	assert.ErrorIs(t, client.Computers.Delete(t.Context(), c.ID), miosa.ErrNotFound, "deleting twice")
}

func TestServer_SetStatusReachesTheErrorState(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(time.Hour))
	client := srv.Client()
	c, err := client.Computers.Create(t.Context(), miosa.ComputerCreateParams{})
	require.NoError(t, err)
	require.NoError(t, srv.SetStatus(c.ID, miosa.StatusError))
	_, err = client.Computers.WaitForStatus(t.Context(), c.ID, miosa.StatusRunning, fastWait)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"error"`)
	assert.Error(t, srv.SetStatus("cmp_missing", miosa.StatusRunning))
}

func TestServer_ListFiltersByStatusAndPages(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	client := srv.Client()
	var ids []string
	for range 5 {
		c, err := client.Computers.Create(t.Context(), miosa.ComputerCreateParams{})
		require.NoError(t, err)
		ids = append(ids, c.ID)
	}
	require.NoError(t, client.Computers.Stop(t.Context(), ids[1]))

	items, meta := call(t, srv, "GET", "/computers?page=2&per_page=2", "").list(t)
	require.Len(t, items, 2)
	assert.Equal(t, ids[2], items[0]["id"], "oldest first")
	assert.Equal(t, map[string]any{"total": 5.0, "page": 2.0, "per_page": 2.0}, meta)

	stopped, err := client.Computers.List(t.Context(), miosa.ComputerListParams{Status: miosa.StatusStopped})
	require.NoError(t, err)
	require.Len(t, stopped, 1)
	assert.Equal(t, ids[1], stopped[0].ID)

	var all []string
	for c, err := range client.Computers.All(t.Context(), miosa.ComputerListParams{PerPage: 2}) {
		require.NoError(t, err)
		all = append(all, c.ID)
	}
	assert.Equal(t, ids, all, "All follows meta across pages")
	assert.Len(t, srv.RequestsTo("GET", "/computers"), 5, "one raw + one filtered + three pages")

	assert.Equal(t, http.StatusBadRequest, call(t, srv, "GET", "/computers?page=0", "").status)
}

func TestServer_StartWithoutTestingTBNeedsClose(t *testing.T) {
	srv, err := miosatest.Start(miosatest.WithBootDelay(0))
	require.NoError(t, err)
	c, err := srv.Client().Computers.Create(t.Context(), miosa.ComputerCreateParams{})
	require.NoError(t, err)
	require.NoError(t, srv.Close())
	require.NoError(t, srv.Close(), "a second Close does nothing")
	_, err = srv.Client(miosa.WithMaxRetries(0)).Computers.Get(t.Context(), c.ID)
	assert.Error(t, err, "a closed server answers nothing")
	assert.False(t, errors.Is(err, miosa.ErrNotFound))
}

func TestServer_ClientAppliesCallerOptionsLast(t *testing.T) {
	srv := miosatest.NewServer(t)
	srv.Inject(miosatest.Fault{Path: "/computers", Status: http.StatusServiceUnavailable, Times: miosatest.Always})
	_, err := srv.Client(miosa.WithMaxRetries(0)).Computers.List(t.Context(), miosa.ComputerListParams{})
	assert.ErrorIs(t, err, miosa.ErrServer)
	assert.Len(t, srv.Requests(), 1, "the caller's WithMaxRetries(0) wins")
}

func TestServer_WithTLSServesHTTP2(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithTLS(), miosatest.WithBootDelay(0))
	assert.True(t, strings.HasPrefix(srv.URL, "https://"))
	client := srv.Client()
	c, err := client.Computers.Create(t.Context(), miosa.ComputerCreateParams{})
	require.NoError(t, err)

	req, err := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/computers/"+c.ID, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+miosatest.TestAPIKey)
	resp, err := srv.HTTPClient().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 2, resp.ProtoMajor)

	srv.Inject(miosatest.Fault{Method: "POST", Path: "/computers/*/exec", Drop: miosatest.DropBeforeAct})
	_, err = client.Exec.Run(t.Context(), c.ID, miosa.ExecParams{Command: "echo hi"})
	assert.ErrorIs(t, err, miosa.ErrOutcomeUnknown, "over HTTP/2 a drop resets the stream")
}

func TestServer_RefusesPathsOutsideTheAPIAndHugeBodies(t *testing.T) {
	srv := miosatest.NewServer(t)
	root := strings.TrimSuffix(srv.URL, "/api/v1")
	req, err := http.NewRequestWithContext(t.Context(), "GET", root+"/computers", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+miosatest.TestAPIKey)
	resp, err := srv.HTTPClient().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "the API lives under /api/v1")

	huge := strings.Repeat(" ", 8<<20+1) // one byte over the limit
	assert.Equal(t, http.StatusRequestEntityTooLarge, call(t, srv, "POST", "/computers", huge).status)
	items, _ := call(t, srv, "GET", "/computers", "").list(t)
	assert.Empty(t, items)
}
