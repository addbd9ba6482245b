package miosatest_test

import (
	"bufio"
	"context"
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

// openStream opens the readiness stream of id and checks its headers.
func openStream(t *testing.T, ctx context.Context, srv *miosatest.Server, id string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", srv.URL+"/sandboxes/"+id+"/readiness/stream", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+miosatest.TestAPIKey)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := srv.HTTPClient().Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// readFrame reads one SSE frame: the lines up to a blank line.
func readFrame(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	var frame strings.Builder
	for {
		line, err := r.ReadString('\n')
		require.NoError(t, err, "stream ended after %q", frame.String())
		if line == "\n" {
			return frame.String()
		}
		frame.WriteString(line)
	}
}

// sandbox creates a sandbox through the SDK.
func sandbox(t *testing.T, srv *miosatest.Server) string {
	t.Helper()
	c, err := srv.Client().Computers.Create(t.Context(), miosa.ComputerCreateParams{TemplateType: miosa.DefaultSandboxTemplate})
	require.NoError(t, err)
	return c.ID
}

func TestStream_AlreadyReadySendsReadyAtOnce(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	resp := openStream(t, t.Context(), srv, sandbox(t, srv))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Regexp(t, `^: keepalive\n\nevent: ready\ndata: \{"ready_at":"[0-9T:.Z-]+"\}\n\n$`, string(body))
}

func TestStream_SendsReadyWhenTheSandboxBoots(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(time.Hour), miosatest.WithHeartbeatInterval(time.Millisecond))
	id := sandbox(t, srv)
	resp := openStream(t, t.Context(), srv, id)
	r := bufio.NewReader(resp.Body)
	for range 3 {
		assert.Equal(t, ": keepalive\n", readFrame(t, r), "heartbeats while not ready")
	}
	require.NoError(t, srv.SetStatus(id, miosa.StatusRunning))
	for {
		frame := readFrame(t, r)
		if frame != ": keepalive\n" {
			assert.True(t, strings.HasPrefix(frame, "event: ready\ndata: {\"ready_at\":"), frame)
			break
		}
	}
	_, err := r.ReadByte()
	assert.ErrorIs(t, err, io.EOF, "the stream ends after its verdict")
}

func TestStream_SendsTimeoutAfterTheServerLimit(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(time.Hour), miosatest.WithStreamTimeout(20*time.Millisecond))
	resp := openStream(t, t.Context(), srv, sandbox(t, srv))
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.True(t, strings.HasSuffix(string(body), "event: timeout\ndata: {\"reason\":\"not_ready_after_20ms\"}\n\n"), string(body))
}

func TestStream_NotFoundWhenDisabledOrUnknown(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithoutReadinessStream())
	id := sandbox(t, srv)
	res := call(t, srv, "GET", "/sandboxes/"+id+"/readiness/stream", "")
	assert.Equal(t, http.StatusNotFound, res.status)
	code, _ := res.errorCode(t)
	assert.Equal(t, "NOT_FOUND", code)
	assert.Equal(t, http.StatusOK, call(t, srv, "GET", "/sandboxes/"+id+"/readiness", "").status, "polling still works")

	srv = miosatest.NewServer(t)
	assert.Equal(t, http.StatusNotFound, call(t, srv, "GET", "/sandboxes/cmp_missing/readiness/stream", "").status)
}

func TestStream_FaultsWithholdTheVerdict(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0), miosatest.WithHeartbeatInterval(time.Millisecond))
	id := sandbox(t, srv)

	srv.Inject(miosatest.Fault{Stream: miosatest.StreamEndWithoutVerdict})
	body, err := io.ReadAll(openStream(t, t.Context(), srv, id).Body)
	require.NoError(t, err)
	assert.Equal(t, ": keepalive\n\n", string(body), "ends cleanly with no verdict though the sandbox is ready")

	srv.Inject(miosatest.Fault{Stream: miosatest.StreamStall})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	resp := openStream(t, ctx, srv, id)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	r := bufio.NewReader(resp.Body)
	for range 20 {
		assert.Equal(t, ": keepalive\n", readFrame(t, r), "only heartbeats, though the sandbox is ready")
	}
	cancel()

	body, err = io.ReadAll(openStream(t, t.Context(), srv, id).Body)
	require.NoError(t, err)
	assert.Contains(t, string(body), "event: ready", "the faults are used up")
}

// TestStream_NoGoroutineOutlivesClose opens streams that the client abandons
// after receiving a frame, and streams still open when the server closes;
// once it has closed, no goroutine of either side is left.
func TestStream_NoGoroutineOutlivesClose(t *testing.T) {
	defer goleak.VerifyNone(t)
	srv, err := miosatest.Start(miosatest.WithBootDelay(time.Hour), miosatest.WithHeartbeatInterval(time.Millisecond))
	require.NoError(t, err)
	id := sandbox(t, srv)

	for range 20 {
		ctx, cancel := context.WithCancel(t.Context())
		resp := openStream(t, ctx, srv, id)
		readFrame(t, bufio.NewReader(resp.Body))
		cancel()
		resp.Body.Close()
	}
	var open []*http.Response
	for range 5 {
		resp := openStream(t, t.Context(), srv, id)
		readFrame(t, bufio.NewReader(resp.Body))
		open = append(open, resp)
	}
	srv.Inject(miosatest.Fault{Path: "/computers", Delay: time.Hour})
	held := make(chan error)
	go func() {
		_, err := srv.Client(miosa.WithMaxRetries(0)).Computers.List(context.Background(), miosa.ComputerListParams{})
		held <- err
	}()
	require.Eventually(t, func() bool { return len(srv.RequestsTo("GET", "/computers")) == 1 }, 5*time.Second, time.Millisecond)

	require.NoError(t, srv.Close(), "Close ends open streams and delays instead of waiting for them")
	assert.Error(t, <-held)
	for _, resp := range open {
		_, err := io.ReadAll(resp.Body)
		assert.NoError(t, err, "a stream the server ends is a clean end")
		resp.Body.Close()
	}
}
