package miosa_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/miosa-ai/miosa-go"
)

const sseTestKey = "msk_u_ssetest"

// sseFake is a loopback server for the two readiness endpoints. It counts
// stream and poll requests, and the connections it holds open, so tests can
// assert on exactly what reached it.
type sseFake struct {
	srv        *httptest.Server
	httpClient *http.Client

	stream http.HandlerFunc // GET /sandboxes/{id}/readiness/stream
	poll   http.HandlerFunc // GET /sandboxes/{id}/readiness
	status http.HandlerFunc // GET /computers/{id}; a running machine unless set

	streams   atomic.Int64
	polls     atomic.Int64
	statuses  atomic.Int64
	newConns  atomic.Int64
	openConns atomic.Int64

	overTLS bool

	mu       sync.Mutex
	requests []*http.Request
}

type sseFakeOption func(*sseFake)

// sseOverTLS serves HTTPS with HTTP/2 enabled.
func sseOverTLS(f *sseFake) { f.overTLS = true }

// sseMaxStreams sets how many concurrent streams one HTTP/2 connection
// carries.
func sseMaxStreams(n int) sseFakeOption {
	return func(f *sseFake) { f.srv.Config.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: n} }
}

func newSSEFake(t testing.TB, stream, poll http.HandlerFunc, opts ...sseFakeOption) *sseFake {
	t.Helper()
	f := &sseFake{stream: stream, poll: poll}
	if f.stream == nil {
		f.stream = sseStatus(http.StatusNotFound)
	}
	if f.poll == nil {
		f.poll = ssePollJSON(`{"data":{"ready":true}}`)
	}
	f.status = ssePollJSON(`{"data":{"id":"sb_1","status":"running"}}`)
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	for _, opt := range opts {
		opt(f)
	}
	f.httpClient = startCounting(t, f.srv, f.overTLS, &f.newConns, &f.openConns)
	return f
}

func (f *sseFake) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r.Clone(context.Background()))
	f.mu.Unlock()
	switch {
	case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/readiness/stream"):
		f.streams.Add(1)
		f.stream(w, r)
	case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/readiness"):
		f.polls.Add(1)
		f.poll(w, r)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/api/v1/computers/"):
		f.statuses.Add(1)
		f.status(w, r)
	default:
		http.Error(w, `{"error":"unexpected request"}`, http.StatusTeapot)
	}
}

func (f *sseFake) client(t testing.TB, opts ...miosa.Option) *miosa.Client {
	t.Helper()
	base := []miosa.Option{
		miosa.WithBaseURL(f.srv.URL + "/api/v1"),
		miosa.WithHTTPClient(f.httpClient),
		miosa.WithRetryDelay(0, 0),
	}
	c, err := miosa.NewClient(sseTestKey, append(base, opts...)...)
	require.NoError(t, err)
	return c
}

// allConnectionsClosed closes the client's idle connections and reports
// whether the server then holds none open. A connection still busy with a
// request is not idle, so only leaked ones keep this false for long.
func (f *sseFake) allConnectionsClosed() bool {
	f.httpClient.CloseIdleConnections()
	return f.openConns.Load() == 0
}

func (f *sseFake) recorded() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*http.Request(nil), f.requests...)
}

// sseOpen answers 200 text/event-stream and flushes the headers.
func sseOpen(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
}

// sseSend writes each chunk and flushes it on its own.
func sseSend(w http.ResponseWriter, chunks ...string) {
	for _, c := range chunks {
		_, _ = io.WriteString(w, c)
		w.(http.Flusher).Flush()
	}
}

// sseFrames is a stream handler that sends chunks and then holds the stream
// open until the client goes away.
func sseFrames(chunks ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sseOpen(w)
		sseSend(w, chunks...)
		<-r.Context().Done()
	}
}

// sseFramesThenClose sends chunks and ends the response cleanly.
func sseFramesThenClose(chunks ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sseOpen(w)
		sseSend(w, chunks...)
	}
}

func sseStatus(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, `{"error":"no stream here"}`)
	}
}

// sseRefusedEndless answers status as JSON, then holds the body open
// without another byte until the client goes away.
func sseRefusedEndless(status int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		sseSend(w, `{"error":`)
		<-r.Context().Done()
	}
}

func ssePollJSON(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	}
}

// ssePollReadyAfter answers not ready to the first n polls, then ready.
func ssePollReadyAfter(n int64) http.HandlerFunc {
	var seen atomic.Int64
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if seen.Add(1) <= n {
			_, _ = io.WriteString(w, `{"data":{"ready":false,"status":"booting"}}`)
			return
		}
		_, _ = io.WriteString(w, `{"data":{"ready":true,"ready_at":"2026-05-18T00:00:00Z"}}`)
	}
}

func TestWaitUntilReady_WireContractScenarios(t *testing.T) {
	tests := []struct {
		name        string
		stream      http.HandlerFunc
		poll        http.HandlerFunc
		wait        miosa.WaitOptions
		wantReady   bool
		wantStreams int64
		wantPolls   func(t *testing.T, n int64)
	}{
		{
			name:        "stream ready decides with no poll",
			stream:      sseFrames("event: ready\ndata: {\"ready_at\":\"2026-05-18T00:00:00Z\"}\n\n"),
			wantReady:   true,
			wantStreams: 1,
			wantPolls:   func(t *testing.T, n int64) { assert.Zero(t, n) },
		},
		{
			name:        "stream timeout is not ready and does not poll",
			stream:      sseFrames("event: timeout\ndata: {\"reason\":\"not_ready_after_30s\"}\n\n"),
			wantReady:   false,
			wantStreams: 1,
			wantPolls:   func(t *testing.T, n int64) { assert.Zero(t, n) },
		},
		{
			name:        "stream 404 falls back to polling",
			stream:      sseStatus(http.StatusNotFound),
			poll:        ssePollReadyAfter(1),
			wantReady:   true,
			wantStreams: 1,
			wantPolls:   func(t *testing.T, n int64) { assert.GreaterOrEqual(t, n, int64(2)) },
		},
		{
			name:        "poll only never opens the stream",
			stream:      sseFrames("event: ready\n\n"),
			poll:        ssePollReadyAfter(1),
			wait:        miosa.WaitOptions{PollOnly: true},
			wantReady:   true,
			wantStreams: 0,
			wantPolls:   func(t *testing.T, n int64) { assert.Equal(t, int64(2), n) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newSSEFake(t, tt.stream, tt.poll)
			ready, err := f.client(t).Sandboxes.WaitUntilReady(context.Background(), "sb_1", tt.wait)
			require.NoError(t, err)
			assert.Equal(t, tt.wantReady, ready)
			assert.Equal(t, tt.wantStreams, f.streams.Load())
			tt.wantPolls(t, f.polls.Load())
		})
	}
}

func TestWaitUntilReady_StreamRequestCarriesPathAndHeaders(t *testing.T) {
	f := newSSEFake(t, sseFrames("event: ready\n\n"), nil)
	c := f.client(t, miosa.WithUserAgent("agent/2"), miosa.WithHeader("X-Tenant", "t1"))

	ready, err := c.Sandboxes.WaitUntilReady(context.Background(), "sb/1 x", miosa.WaitOptions{})
	require.NoError(t, err)
	require.True(t, ready)

	reqs := f.recorded()
	require.Len(t, reqs, 1)
	r := reqs[0]
	assert.Equal(t, http.MethodGet, r.Method)
	assert.Equal(t, "/api/v1/sandboxes/sb%2F1%20x/readiness/stream", r.URL.EscapedPath())
	assert.Empty(t, r.URL.RawQuery)
	assert.Equal(t, "Bearer "+sseTestKey, r.Header.Get("Authorization"))
	assert.Equal(t, "text/event-stream", r.Header.Get("Accept"))
	assert.Equal(t, "miosa-go/"+miosa.Version+" agent/2", r.Header.Get("User-Agent"))
	assert.Equal(t, "t1", r.Header.Get("X-Tenant"))
	assert.Empty(t, r.Header.Get("Last-Event-ID"))
}

func TestWaitUntilReady_PollsCarryPathAndHeaders(t *testing.T) {
	f := newSSEFake(t, nil, nil)
	c := f.client(t, miosa.WithUserAgent("agent/2"), miosa.WithHeader("X-Tenant", "t1"))

	ready, err := c.Sandboxes.WaitUntilReady(context.Background(), "sb_1", miosa.WaitOptions{})
	require.NoError(t, err)
	require.True(t, ready)

	reqs := f.recorded()
	require.Len(t, reqs, 2)
	r := reqs[1]
	assert.Equal(t, "/api/v1/sandboxes/sb_1/readiness", r.URL.EscapedPath())
	assert.Empty(t, r.URL.RawQuery)
	assert.Equal(t, "Bearer "+sseTestKey, r.Header.Get("Authorization"))
	assert.Equal(t, "application/json", r.Header.Get("Accept"))
	assert.Equal(t, "miosa-go/"+miosa.Version+" agent/2", r.Header.Get("User-Agent"))
	assert.Equal(t, "t1", r.Header.Get("X-Tenant"))
}

func TestWaitUntilReady_OnlyExactEventNamesDecide(t *testing.T) {
	noise := []string{
		": keepalive\n\n",
		"event: progress\ndata: {\"pct\":10}\n\n",
		"id: 7\nevent: progress\ndata: 20\n\n",
		": heartbeat after an id\n\n",
		"retry: 5000\n\n",
		"data: ready\n\n",
		"event: ready-ish\n\n",
		"event: notready\n\n",
	}
	tests := []struct {
		name      string
		final     string
		wantReady bool
	}{
		{"ready after noise", "event: ready\ndata: {}\n\n", true},
		{"timeout after noise", "event: timeout\ndata: {}\n\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newSSEFake(t, sseFrames(append(noise, tt.final)...), nil)
			ready, err := f.client(t).Sandboxes.WaitUntilReady(context.Background(), "sb_1", miosa.WaitOptions{})
			require.NoError(t, err)
			assert.Equal(t, tt.wantReady, ready)
			assert.Equal(t, int64(1), f.streams.Load())
			assert.Zero(t, f.polls.Load(), "the stream decided; nothing may poll")
		})
	}
}

func TestWaitUntilReady_Framing(t *testing.T) {
	byteByByte := func(s string) []string {
		out := make([]string, len(s))
		for i := range len(s) { // bytes, not runes
			out[i] = s[i : i+1]
		}
		return out
	}
	tests := []struct {
		name       string
		stream     http.HandlerFunc
		fromStream bool // true: the stream decided ready; false: it fell back to polling
	}{
		{"no data", sseFrames("event: ready\n\n"), true},
		{"CRLF", sseFrames("event: ready\r\ndata: {}\r\n\r\n"), true},
		{"CR only", sseFrames("event: ready\rdata: {}\r\r"), true},
		{"mixed line ends", sseFrames(": hi\r\n\nevent: progress\rdata: 1\r\r", "event: ready\r\ndata: x\n\r\n"), true},
		{"two events in one write", sseFrames("event: progress\ndata: 1\n\nevent: ready\ndata: 2\n\n"), true},
		{"split byte by byte", sseFrames(byteByByte(": c\n\nevent: progress\n\nevent: ready\r\ndata: {}\r\n\r\n")...), true},
		{"no space after colon", sseFrames("event:ready\n\n"), true},
		{"multi-line data", sseFrames("event: ready\ndata: a\ndata: b\n\n"), true},
		{"trailing space in name", sseFramesThenClose("event: ready \n\n"), false},
		{"other case", sseFramesThenClose("event: Ready\n\n"), false},
		{"ready only in data", sseFramesThenClose("data: ready\n\n"), false},
		{"unterminated ready then close", sseFramesThenClose("event: ready"), false},
		{"ready with one newline then close", sseFramesThenClose("event: ready\n"), false},
		{"ready with CRLF then close", sseFramesThenClose("event: ready\r\ndata: x\r\n"), false},
		{"byte-order mark", sseFrames("\xEF\xBB\xBFevent: ready\n\n"), true},
		{"byte-order mark split byte by byte", sseFrames(byteByByte("\xEF\xBB\xBFevent: ready\r\n\r\n")...), true},
		{"byte-order mark before a comment", sseFrames("\xEF\xBB\xBF: hi\n\nevent: ready\n\n"), true},
		{"byte-order mark after the start", sseFramesThenClose(": hi\n\n\xEF\xBB\xBFevent: ready\n\n"), false},
		{"two byte-order marks", sseFramesThenClose("\xEF\xBB\xBF\xEF\xBB\xBFevent: ready\n\n"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newSSEFake(t, tt.stream, nil)
			ready, err := f.client(t).Sandboxes.WaitUntilReady(context.Background(), "sb_1", miosa.WaitOptions{})
			require.NoError(t, err)
			assert.True(t, ready)
			assert.Equal(t, int64(1), f.streams.Load())
			if tt.fromStream {
				assert.Zero(t, f.polls.Load(), "the stream should have decided")
			} else {
				assert.Equal(t, int64(1), f.polls.Load(), "the stream must not decide; the poll does")
			}
		})
	}
}

// sseAbruptClose sends headers and a comment, then drops the connection
// without ending the chunked body.
func sseAbruptClose(w http.ResponseWriter, r *http.Request) {
	sseOpen(w)
	sseSend(w, ": hello\n\nevent: ready")
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

// sseRefusingTransport sends stream requests to an address where nothing
// listens, and everything else to the real server.
type sseRefusingTransport struct {
	base     http.RoundTripper
	deadAddr string
	streams  atomic.Int64
}

func (rt *sseRefusingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/readiness/stream") {
		rt.streams.Add(1)
		r = r.Clone(r.Context())
		r.URL.Host = rt.deadAddr
	}
	return rt.base.RoundTrip(r)
}

func sseDeadAddress(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func TestWaitUntilReady_StreamFailureFallsBackToPolling(t *testing.T) {
	tests := []struct {
		name   string
		stream http.HandlerFunc
	}{
		{"404", sseStatus(http.StatusNotFound)},
		{"405", sseStatus(http.StatusMethodNotAllowed)},
		{"500", sseStatus(http.StatusInternalServerError)},
		{"503", sseStatus(http.StatusServiceUnavailable)},
		{"200 with JSON", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"ready":true}`)
		}},
		{"200 without content type", func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Type"] = nil
			_, _ = io.WriteString(w, "event: ready\n\n")
		}},
		{"abrupt close", sseAbruptClose},
		{"clean close without event", sseFramesThenClose(": keepalive\n\n", "event: progress\ndata: 1\n\n")},
		{"clean close with no body", sseFramesThenClose()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newSSEFake(t, tt.stream, ssePollReadyAfter(1))
			ready, err := f.client(t).Sandboxes.WaitUntilReady(context.Background(), "sb_1", miosa.WaitOptions{})
			require.NoError(t, err)
			assert.True(t, ready)
			assert.Equal(t, int64(1), f.streams.Load(), "exactly one stream request")
			assert.Equal(t, int64(2), f.polls.Load())
		})
	}

	t.Run("connection refused", func(t *testing.T) {
		f := newSSEFake(t, sseFrames("event: ready\n\n"), ssePollReadyAfter(1))
		rt := &sseRefusingTransport{base: f.httpClient.Transport, deadAddr: sseDeadAddress(t)}
		c := f.client(t, miosa.WithHTTPClient(&http.Client{Transport: rt}))
		ready, err := c.Sandboxes.WaitUntilReady(context.Background(), "sb_1", miosa.WaitOptions{})
		require.NoError(t, err)
		assert.True(t, ready)
		assert.Equal(t, int64(1), rt.streams.Load(), "exactly one stream attempt")
		assert.Zero(t, f.streams.Load())
		assert.Equal(t, int64(2), f.polls.Load())
	})
}

func TestWaitUntilReady_RefusedStreamsReuseOneConnection(t *testing.T) {
	f := newSSEFake(t, sseStatus(http.StatusNotFound), nil)
	c := f.client(t)
	for range 50 {
		ready, err := c.Sandboxes.WaitUntilReady(context.Background(), "sb_1", miosa.WaitOptions{})
		require.NoError(t, err)
		require.True(t, ready)
	}
	assert.Equal(t, int64(50), f.streams.Load())
	assert.LessOrEqual(t, f.newConns.Load(), int64(2), "a refused stream's body must be drained and closed so its connection is reused")
}

func TestWaitUntilReady_OversizedEvents(t *testing.T) {
	big := strings.Repeat("x", 70<<10)
	huge := strings.Repeat("y", 2<<20)
	tests := []struct {
		name       string
		stream     http.HandlerFunc
		fromStream bool
	}{
		{"70 KiB event is delivered", sseFrames("event: progress\ndata: "+big+"\n\n", "event: ready\ndata: "+big+"\n\n"), true},
		{"2 MiB event falls back cleanly", sseFrames("event: ready\ndata: " + huge + "\n\n"), false},
		{"2 MiB unterminated line falls back cleanly", sseFrames("data: " + huge), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newSSEFake(t, tt.stream, nil)
			ready, err := f.client(t).Sandboxes.WaitUntilReady(context.Background(), "sb_1", miosa.WaitOptions{})
			require.NoError(t, err)
			assert.True(t, ready)
			assert.Equal(t, int64(1), f.streams.Load(), "never a second stream request")
			if tt.fromStream {
				assert.Zero(t, f.polls.Load())
			} else {
				assert.Equal(t, int64(1), f.polls.Load())
			}
		})
	}
}

func TestWaitUntilReady_PermanentPollErrorsEndTheWait(t *testing.T) {
	tests := []struct {
		status int
		want   error
	}{
		{http.StatusUnauthorized, miosa.ErrUnauthorized},
		{http.StatusForbidden, miosa.ErrForbidden},
		{http.StatusNotFound, miosa.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			f := newSSEFake(t, nil, sseStatus(tt.status))
			ready, err := f.client(t).Sandboxes.WaitUntilReady(context.Background(), "sb_1", miosa.WaitOptions{})
			require.ErrorIs(t, err, tt.want)
			assert.False(t, ready)
			var apiErr *miosa.APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, "/sandboxes/sb_1/readiness", apiErr.Path)
			assert.Equal(t, int64(1), f.polls.Load(), "a permanent error ends the wait at once")
			var stateErr *miosa.MachineStateError
			assert.False(t, errors.As(err, &stateErr), "the sandbox itself still exists: %v", err)
		})
	}
}

func TestWaitUntilReady_TransientPollErrorsArePolledThrough(t *testing.T) {
	var n atomic.Int64
	poll := func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) {
		case 1:
			sseStatus(http.StatusServiceUnavailable)(w, r)
		case 2:
			sseStatus(http.StatusBadGateway)(w, r)
		default:
			ssePollJSON(`{"status":"ready"}`)(w, r)
		}
	}
	f := newSSEFake(t, nil, poll)
	ready, err := f.client(t).Sandboxes.WaitUntilReady(context.Background(), "sb_1", miosa.WaitOptions{})
	require.NoError(t, err)
	assert.True(t, ready)
	assert.Equal(t, int64(3), f.polls.Load(), "each poll is a single attempt; the loop retries")
}

func TestWaitUntilReady_InvalidInputSendsNothing(t *testing.T) {
	tests := []struct {
		name string
		id   string
		wait miosa.WaitOptions
		opts []miosa.Option
	}{
		{"empty id", "", miosa.WaitOptions{}, nil},
		{"blank id", "  ", miosa.WaitOptions{}, nil},
		{"dot-dot id", "..", miosa.WaitOptions{}, nil},
		{"control character", "sb\n1", miosa.WaitOptions{}, nil},
		{"negative timeout", "sb_1", miosa.WaitOptions{Timeout: -time.Second}, nil},
		{"negative interval", "sb_1", miosa.WaitOptions{PollInterval: -time.Second}, nil},
		{"bad option", "sb_1", miosa.WaitOptions{}, []miosa.Option{miosa.WithMaxRetries(-1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newSSEFake(t, sseFrames("event: ready\n\n"), nil)
			ready, err := f.client(t).Sandboxes.WaitUntilReady(context.Background(), tt.id, tt.wait, tt.opts...)
			require.ErrorIs(t, err, miosa.ErrInvalidParams)
			assert.False(t, ready)
			assert.Empty(t, f.recorded())
		})
	}
}

func TestWaitUntilReady_AlreadyCancelledContextSendsNothing(t *testing.T) {
	f := newSSEFake(t, sseFrames("event: ready\n\n"), nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ready, err := f.client(t).Sandboxes.WaitUntilReady(ctx, "sb_1", miosa.WaitOptions{})
	require.ErrorIs(t, err, context.Canceled)
	assert.False(t, ready)
	assert.Empty(t, f.recorded())
}

func TestWaitUntilReady_CancelWhileStreamingReturnsContextError(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	tests := []struct {
		name   string
		stream func(sent chan<- struct{}) http.HandlerFunc
	}{
		{"after a non-terminal event", func(sent chan<- struct{}) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				sseOpen(w)
				sseSend(w, "id: 1\nevent: progress\ndata: 1\n\n")
				sent <- struct{}{}
				<-r.Context().Done()
			}
		}},
		{"before headers", func(sent chan<- struct{}) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				sent <- struct{}{}
				<-r.Context().Done()
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sent := make(chan struct{}, 1)
			f := newSSEFake(t, tt.stream(sent), nil)
			c := f.client(t)
			ctx, cancel := context.WithCancel(context.Background())
			type result struct {
				ready bool
				err   error
			}
			done := make(chan result, 1)
			go func() {
				ready, err := c.Sandboxes.WaitUntilReady(ctx, "sb_1", miosa.WaitOptions{})
				done <- result{ready, err}
			}()
			<-sent
			cancel()
			res := <-done
			require.ErrorIs(t, res.err, context.Canceled)
			assert.False(t, res.ready)
			assert.Equal(t, int64(1), f.streams.Load())
			assert.Zero(t, f.polls.Load(), "a cancelled wait sends nothing more")
			require.Eventually(t, f.allConnectionsClosed, 5*time.Second, time.Millisecond)
		})
	}
}

func TestWaitUntilReady_CallerClientTimeoutDoesNotCutTheStream(t *testing.T) {
	const clientTimeout = 20 * time.Millisecond
	stream := func(w http.ResponseWriter, r *http.Request) {
		sseOpen(w)
		sseSend(w, ": waiting\n\n")
		select {
		case <-time.After(5 * clientTimeout):
		case <-r.Context().Done():
			return
		}
		sseSend(w, "event: ready\n\n")
		<-r.Context().Done()
	}
	f := newSSEFake(t, stream, sseStatus(http.StatusGone))
	short := &http.Client{Transport: f.httpClient.Transport, Timeout: clientTimeout}
	ready, err := f.client(t, miosa.WithHTTPClient(short)).Sandboxes.WaitUntilReady(context.Background(), "sb_1", miosa.WaitOptions{})
	require.NoError(t, err)
	assert.True(t, ready)
	assert.Zero(t, f.polls.Load(), "the stream must have decided, not a poll")
}

func TestWaitUntilReady_LogsOneLineNamingTheDecidingPath(t *testing.T) {
	tests := []struct {
		name         string
		stream       http.HandlerFunc
		wait         miosa.WaitOptions
		wantDecided  string
		wantFallback string
	}{
		{"stream", sseFrames("event: ready\n\n"), miosa.WaitOptions{}, "stream", ""},
		{"fallback", sseStatus(http.StatusNotFound), miosa.WaitOptions{}, "poll", "404"},
		{"poll only", nil, miosa.WaitOptions{PollOnly: true}, "poll", ""},
		{"refused stream whose body never ends", sseRefusedEndless(http.StatusNotFound), miosa.WaitOptions{}, "poll", "404"},
		{"JSON stream whose body never ends", sseRefusedEndless(http.StatusOK), miosa.WaitOptions{}, "poll", "application/json"},
		{"silent open stream", sseFrames(), miosa.WaitOptions{Timeout: 5 * time.Second}, "probe", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newSSEFake(t, tt.stream, nil)
			var buf bytes.Buffer
			var mu sync.Mutex
			logger := slog.New(slog.NewTextHandler(&sseLogWriter{w: &buf, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
			ready, err := f.client(t, miosa.WithLogger(logger)).Sandboxes.WaitUntilReady(context.Background(), "sb_1", tt.wait)
			require.NoError(t, err)
			require.True(t, ready)
			mu.Lock()
			out := buf.String()
			mu.Unlock()
			var lines []string
			for line := range strings.Lines(out) {
				if strings.Contains(line, "readiness wait") {
					lines = append(lines, line)
				}
			}
			require.Len(t, lines, 1, out)
			assert.Contains(t, lines[0], "decided_by="+tt.wantDecided)
			if tt.wantFallback != "" {
				assert.Contains(t, lines[0], "stream_fallback=")
				assert.Contains(t, lines[0], tt.wantFallback)
			} else {
				assert.NotContains(t, lines[0], "stream_fallback")
			}
			assert.NotContains(t, out, sseTestKey)
		})
	}
}

type sseLogWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *sseLogWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestWaitUntilReady_ConcurrentWaitsShareOneClient runs 200 waits at once on
// one client, holding every stream open until all have arrived, over
// HTTP/1.1 and over HTTP/2.
func TestWaitUntilReady_ConcurrentWaitsShareOneClient(t *testing.T) {
	const waiters = 200
	for _, tt := range []struct {
		name      string
		opts      []sseFakeOption
		wantProto int
	}{
		{"HTTP/1.1", nil, 1},
		{"HTTP/2", []sseFakeOption{sseOverTLS}, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			var arrived atomic.Int64
			var wrongProto atomic.Int64
			stream := func(w http.ResponseWriter, r *http.Request) {
				if r.ProtoMajor != tt.wantProto {
					wrongProto.Add(1)
				}
				sseOpen(w)
				if arrived.Add(1) == waiters {
					close(release)
				}
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
				sseSend(w, "event: ready\ndata: {}\n\n")
				<-r.Context().Done()
			}
			f := newSSEFake(t, stream, sseStatus(http.StatusGone), tt.opts...)
			c := f.client(t)
			// One finished request first, so the waits find a connection to
			// share instead of all dialling at once.
			warm, err := c.Sandboxes.Readiness(context.Background(), "warm-up")
			require.Error(t, err, "the fake answers polls with 410")
			require.Nil(t, warm)
			baseline := goleak.IgnoreCurrent()
			var wg sync.WaitGroup
			errs := make(chan error, waiters)
			for i := range waiters {
				wg.Go(func() {
					ready, err := c.Sandboxes.WaitUntilReady(context.Background(), fmt.Sprintf("sb_%d", i), miosa.WaitOptions{})
					if err == nil && !ready {
						err = errors.New("not ready")
					}
					errs <- err
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			assert.Equal(t, int64(waiters), f.streams.Load())
			assert.Equal(t, int64(1), f.polls.Load(), "only the warm-up")
			if tt.wantProto == 2 {
				assert.Equal(t, int64(1), f.newConns.Load(), "HTTP/2 multiplexes every stream on one connection")
			}
			assert.Zero(t, wrongProto.Load())
			require.Eventually(t, f.allConnectionsClosed, 10*time.Second, time.Millisecond)
			goleak.VerifyNone(t, baseline)
		})
	}
}

// TestWaitUntilReady_ManyMixedWaitsLeaveNothingBehind runs about a thousand
// waits that end every way a wait can end, then checks that goroutines and
// the server's open connections are back to where they started.
func TestWaitUntilReady_ManyMixedWaitsLeaveNothingBehind(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a thousand waits")
	}
	const waits, parallel = 1002, 32
	var (
		mu      sync.Mutex
		signals = map[string]chan struct{}{}
	)
	signalFor := func(id string) chan struct{} {
		mu.Lock()
		defer mu.Unlock()
		ch, ok := signals[id]
		if !ok {
			ch = make(chan struct{}, 1)
			signals[id] = ch
		}
		return ch
	}
	stream := func(w http.ResponseWriter, r *http.Request) {
		parts := strings.Split(r.URL.Path, "/")
		id := parts[len(parts)-3]
		kind := id[:strings.IndexByte(id, '-')]
		switch kind {
		case "ready":
			sseFrames(": hi\n\n", "id: 1\nevent: progress\n\n", "event: ready\n\n")(w, r)
		case "timeout":
			sseFrames("event: timeout\n\n")(w, r)
		case "gone":
			sseStatus(http.StatusNotFound)(w, r)
		case "close", "failed":
			sseFramesThenClose("id: 2\nevent: progress\n\n")(w, r)
		case "endless":
			sseRefusedEndless(http.StatusNotFound)(w, r)
		case "cancel", "deadline":
			sseOpen(w)
			sseSend(w, "id: 3\nevent: progress\ndata: 1\n\n")
			signalFor(id) <- struct{}{}
			<-r.Context().Done()
		}
	}
	poll := func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/failed-") {
			ssePollJSON(`{"ready":false,"status":"error"}`)(w, r)
			return
		}
		ssePollJSON(`{"ready":true}`)(w, r)
	}
	f := newSSEFake(t, stream, poll)
	c := f.client(t)
	baseline := goleak.IgnoreCurrent()

	kinds := []string{"ready", "timeout", "gone", "close", "cancel", "deadline", "endless", "failed"}
	jobs := make(chan int)
	var wg sync.WaitGroup
	var failures atomic.Int64
	var firstFailure atomic.Value
	fail := func(format string, args ...any) {
		if failures.Add(1) == 1 {
			firstFailure.Store(fmt.Sprintf(format, args...))
		}
	}
	for range parallel {
		wg.Go(func() {
			for i := range jobs {
				kind := kinds[i%len(kinds)]
				id := fmt.Sprintf("%s-%d", kind, i)
				ctx, cancel := context.WithCancel(context.Background())
				if kind == "deadline" {
					// Short enough to pass while the server holds the stream.
					ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
				}
				done := make(chan struct{})
				var ready bool
				var err error
				go func() {
					defer close(done)
					ready, err = c.Sandboxes.WaitUntilReady(ctx, id, miosa.WaitOptions{})
				}()
				switch kind {
				case "cancel":
					<-signalFor(id)
					cancel()
				}
				<-done
				cancel()
				want := map[string]bool{"ready": true, "timeout": false, "gone": true, "close": true, "endless": true}
				var stateErr *miosa.MachineStateError
				switch kind {
				case "failed":
					if !errors.As(err, &stateErr) || ready {
						fail("%s: ready=%v err=%v", id, ready, err)
					}
				case "cancel":
					if !errors.Is(err, context.Canceled) || ready {
						fail("%s: ready=%v err=%v", id, ready, err)
					}
				case "deadline":
					if !errors.Is(err, context.DeadlineExceeded) || ready {
						fail("%s: ready=%v err=%v", id, ready, err)
					}
				default:
					if err != nil || ready != want[kind] {
						fail("%s: ready=%v err=%v", id, ready, err)
					}
				}
			}
		})
	}
	for i := range waits {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	require.Zero(t, failures.Load(), "first failure: %v", firstFailure.Load())
	// A deadline may pass before its stream request is sent; no wait sends two.
	deadlines := int64(waits / len(kinds))
	assert.LessOrEqual(t, f.streams.Load(), int64(waits), "never a second stream request")
	assert.GreaterOrEqual(t, f.streams.Load(), int64(waits)-deadlines)

	require.Eventually(t, f.allConnectionsClosed, 10*time.Second, time.Millisecond,
		"server-side connections still open: %d", f.openConns.Load())
	goleak.VerifyNone(t, baseline)
}

// TestWaitUntilReady_ProbedWaitsLeaveNothingBehind ends waits through the
// probe that runs beside a silent stream, and checks that neither the probe
// nor the stream outlives them, over HTTP/1.1 and HTTP/2.
func TestWaitUntilReady_ProbedWaitsLeaveNothingBehind(t *testing.T) {
	for _, opts := range [][]sseFakeOption{nil, {sseOverTLS}} {
		poll := func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/failed-") {
				ssePollJSON(`{"data":{"ready":false,"status":"error"}}`)(w, r)
				return
			}
			ssePollJSON(`{"data":{"ready":true}}`)(w, r)
		}
		f := newSSEFake(t, sseFrames(": buffered by a proxy\n\n"), poll, opts...)
		c := f.client(t)
		baseline := goleak.IgnoreCurrent()
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				id := fmt.Sprintf("ready-%d", i)
				if i%2 == 1 {
					id = fmt.Sprintf("failed-%d", i)
				}
				ready, err := c.Sandboxes.WaitUntilReady(context.Background(), id, miosa.WaitOptions{Timeout: 5 * time.Second})
				var stateErr *miosa.MachineStateError
				if i%2 == 1 {
					assert.ErrorAs(t, err, &stateErr, id)
					assert.False(t, ready, id)
				} else {
					assert.NoError(t, err, id)
					assert.True(t, ready, id)
				}
			})
		}
		wg.Wait()
		assert.Equal(t, int64(20), f.streams.Load())
		require.Eventually(t, f.allConnectionsClosed, 10*time.Second, time.Millisecond,
			"server-side connections still open: %d", f.openConns.Load())
		goleak.VerifyNone(t, baseline)
	}
}

func TestWaitUntilReady_WorksOverHTTP2(t *testing.T) {
	var proto atomic.Int64
	stream := func(w http.ResponseWriter, r *http.Request) {
		proto.Store(int64(r.ProtoMajor))
		sseFrames("event: ready\n\n")(w, r)
	}
	f := newSSEFake(t, stream, nil, sseOverTLS)
	ready, err := f.client(t).Sandboxes.WaitUntilReady(context.Background(), "sb_1", miosa.WaitOptions{})
	require.NoError(t, err)
	assert.True(t, ready)
	assert.Equal(t, int64(2), proto.Load())
	assert.Zero(t, f.polls.Load())
}

func TestWaitUntilReady_NoLastEventIDCarriesOverBetweenWaits(t *testing.T) {
	f := newSSEFake(t, sseFrames("id: 42\nevent: progress\n\n", "id: 43\nevent: ready\n\n"), nil)
	c := f.client(t)
	for range 3 {
		ready, err := c.Sandboxes.WaitUntilReady(context.Background(), "sb_1", miosa.WaitOptions{})
		require.NoError(t, err)
		require.True(t, ready)
	}
	reqs := f.recorded()
	require.Len(t, reqs, 3)
	for _, r := range reqs {
		assert.Empty(t, r.Header.Get("Last-Event-ID"), "each wait is a fresh stream")
	}
}
