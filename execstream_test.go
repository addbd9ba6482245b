package miosa_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/miosa-ai/miosa-go"
)

// execStreamFake is a loopback server for the streamed exec and the
// blocking exec it falls back to. It records every request and counts the
// connections it holds open, so tests can assert on exactly what reached
// it and that a stream the caller left was closed.
type execStreamFake struct {
	*miosa.Recorder
	srv        *httptest.Server
	httpClient *http.Client

	stream   http.HandlerFunc // POST /sandboxes/{id}/exec/stream
	blocking http.HandlerFunc // POST /computers/{id}/exec

	newConns, openConns atomic.Int64
}

func newExecStreamFake(t testing.TB, stream, blocking http.HandlerFunc) *execStreamFake {
	t.Helper()
	return newExecStreamFakeOver(t, false, stream, blocking)
}

// newExecStreamFakeOver is newExecStreamFake over HTTPS with HTTP/2 when
// http2 is set.
func newExecStreamFakeOver(t testing.TB, http2 bool, stream, blocking http.HandlerFunc) *execStreamFake {
	t.Helper()
	f := &execStreamFake{stream: stream, blocking: blocking}
	f.Recorder = miosa.NewRecorder(f.respond)
	f.srv = httptest.NewUnstartedServer(f.Recorder)
	f.httpClient = startCounting(t, f.srv, http2, &f.newConns, &f.openConns)
	return f
}

func (f *execStreamFake) respond(w http.ResponseWriter, r *http.Request, _ int) {
	switch {
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/exec/stream") && f.stream != nil:
		f.stream(w, r)
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/exec") && f.blocking != nil:
		f.blocking(w, r)
	default:
		http.Error(w, `{"error":"unexpected request"}`, http.StatusTeapot)
	}
}

func (f *execStreamFake) client(t testing.TB, opts ...miosa.Option) *miosa.Client {
	t.Helper()
	return countingClient(t, f.srv.URL+"/api/v1", f.httpClient, opts...)
}

// allConnectionsClosed closes the client's idle connections and reports
// whether the server then holds none open.
func (f *execStreamFake) allConnectionsClosed() bool {
	f.httpClient.CloseIdleConnections()
	return f.openConns.Load() == 0
}

// execStreamed collects a whole stream: its events, and the error that
// ended it (nil when it ended with its exit). It fails the test if anything
// follows an error.
func execStreamed(t *testing.T, seq func(func(miosa.ExecEvent, error) bool)) ([]miosa.ExecEvent, error) {
	t.Helper()
	var (
		events []miosa.ExecEvent
		last   error
	)
	for ev, err := range seq {
		require.NoError(t, last, "nothing may follow an error")
		if err != nil {
			last = err
			assert.Zero(t, ev, "an error comes with a zero event")
			continue
		}
		events = append(events, ev)
	}
	return events, last
}

// execStreamHandler answers with an event stream of chunks, each flushed on
// its own, then ends the response.
func execStreamHandler(chunks ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sseOpen(w)
		sseSend(w, chunks...)
	}
}

// execJSON answers status with body.
func execJSON(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// execDrop cuts the connection without answering.
func execDrop(w http.ResponseWriter, r *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

func stdout(line string) miosa.ExecEvent { return miosa.ExecEvent{Kind: miosa.ExecStdout, Line: line} }
func stderr(line string) miosa.ExecEvent { return miosa.ExecEvent{Kind: miosa.ExecStderr, Line: line} }
func exitWith(code int) miosa.ExecEvent  { return miosa.ExecEvent{Kind: miosa.ExecExit, ExitCode: code} }

const execExit0 = "event: exit\ndata: {\"exit_code\":0,\"timed_out\":false}\n\n"

func TestExecStream_RequestShape(t *testing.T) {
	tests := []struct {
		name    string
		params  miosa.ExecParams
		wantDoc string
	}{
		{"command only", miosa.ExecParams{Command: "make test"}, `{"command":"make test"}`},
		{"every field", miosa.ExecParams{Command: "ls", Timeout: 90 * time.Second, WorkingDir: "/srv", Env: map[string]string{"A": "1"}},
			`{"command":"ls","timeout":90,"cwd":"/srv","env":{"A":"1"}}`},
		{"timeout rounded up to whole seconds", miosa.ExecParams{Command: "ls", Timeout: 1500 * time.Millisecond}, `{"command":"ls","timeout":2}`},
		{"a nanosecond is one second", miosa.ExecParams{Command: "ls", Timeout: time.Nanosecond}, `{"command":"ls","timeout":1}`},
		{"24 hours is the most", miosa.ExecParams{Command: "ls", Timeout: 24 * time.Hour}, `{"command":"ls","timeout":86400}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newExecStreamFake(t, execStreamHandler(execExit0), nil)
			events, err := execStreamed(t, f.client(t).Exec.Stream(t.Context(), "sb/1 x", tt.params))
			require.NoError(t, err)
			assert.Equal(t, []miosa.ExecEvent{exitWith(0)}, events)

			reqs := f.Requests()
			require.Len(t, reqs, 1)
			r := reqs[0]
			assert.Equal(t, http.MethodPost, r.Method)
			assert.Equal(t, "/api/v1/sandboxes/sb%2F1%20x/exec/stream", r.Path)
			assert.Empty(t, r.Query)
			assert.Equal(t, "Bearer "+scriptedKey, r.Header.Get("Authorization"))
			assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
			assert.Equal(t, "text/event-stream", r.Header.Get("Accept"), "the wire contract asks for an event stream")
			assert.Empty(t, r.Header.Get("Idempotency-Key"), "exec carries no idempotency key")
			assert.JSONEq(t, tt.wantDoc, string(r.Body))
		})
	}
}

func TestExecStream_InvalidParamsSendNothing(t *testing.T) {
	tests := []struct {
		name   string
		id     string
		params miosa.ExecParams
	}{
		{"empty id", "", miosa.ExecParams{Command: "ls"}},
		{"dot-dot id", "..", miosa.ExecParams{Command: "ls"}},
		{"empty command", "sb_1", miosa.ExecParams{Command: "  "}},
		{"negative timeout", "sb_1", miosa.ExecParams{Command: "ls", Timeout: -time.Second}},
		{"timeout over 24 hours", "sb_1", miosa.ExecParams{Command: "ls", Timeout: 24*time.Hour + time.Nanosecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newExecStreamFake(t, execStreamHandler(execExit0), nil)
			events, err := execStreamed(t, f.client(t).Exec.Stream(t.Context(), tt.id, tt.params))
			require.ErrorIs(t, err, miosa.ErrInvalidParams)
			assert.Empty(t, events)
			assert.Empty(t, f.Requests())
		})
	}
}

func TestExecStream_YieldsOutputInOrderThenExit(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
		want   []miosa.ExecEvent
	}{
		{"lines then exit", []string{
			"event: stdout\ndata: {\"line\":\"compiling...\"}\n\n",
			"event: stderr\ndata: {\"line\":\"warning: x\"}\n\n",
			"event: stdout\ndata: {\"line\":\"\"}\n\n",
			"event: exit\ndata: {\"exit_code\":3,\"timed_out\":false}\n\n",
		}, []miosa.ExecEvent{stdout("compiling..."), stderr("warning: x"), stdout(""), exitWith(3)}},
		{"timed out means exit code -1", []string{
			"event: exit\ndata: {\"exit_code\":137,\"timed_out\":true}\n\n",
		}, []miosa.ExecEvent{{Kind: miosa.ExecExit, ExitCode: -1, TimedOut: true}}},
		{"comments, ids, retries and unknown events are ignored", []string{
			": keepalive\n\n",
			"id: 7\nretry: 10\n\n",
			"event: progress\ndata: {\"line\":\"no\"}\n\n",
			"event: Stdout\ndata: {\"line\":\"no\"}\n\n",
			"event: stdout \ndata: {\"line\":\"no\"}\n\n",
			"data: {\"line\":\"no name\"}\n\n",
			"event: stdout\ndata: {\"line\":\"yes\",\"extra\":1}\n\n",
			": keepalive\n\n",
			execExit0,
		}, []miosa.ExecEvent{stdout("yes"), exitWith(0)}},
		{"nothing after the exit is read", []string{
			execExit0,
			"event: stdout\ndata: {\"line\":\"after\"}\n\n",
		}, []miosa.ExecEvent{exitWith(0)}},
		{"an exit with a null error is an exit", []string{
			"event: exit\ndata: {\"exit_code\":0,\"timed_out\":false,\"error\":null}\n\n",
		}, []miosa.ExecEvent{exitWith(0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newExecStreamFake(t, execStreamHandler(tt.chunks...), nil)
			events, err := execStreamed(t, f.client(t).Exec.Stream(t.Context(), "sb_1", miosa.ExecParams{Command: "make"}))
			require.NoError(t, err)
			assert.Equal(t, tt.want, events)
		})
	}
}

func TestExecStream_Framing(t *testing.T) {
	want := []miosa.ExecEvent{stdout("a"), stderr("b"), exitWith(0)}
	tests := []struct {
		name   string
		chunks []string
	}{
		{"CRLF", []string{"event: stdout\r\ndata: {\"line\":\"a\"}\r\n\r\nevent: stderr\r\ndata: {\"line\":\"b\"}\r\n\r\nevent: exit\r\ndata: {\"exit_code\":0}\r\n\r\n"}},
		{"CR only", []string{"event: stdout\rdata: {\"line\":\"a\"}\r\revent: stderr\rdata: {\"line\":\"b\"}\r\revent: exit\rdata: {\"exit_code\":0}\r\r"}},
		{"no space after the colon", []string{"event:stdout\ndata:{\"line\":\"a\"}\n\nevent:stderr\ndata:{\"line\":\"b\"}\n\nevent:exit\ndata:{\"exit_code\":0}\n\n"}},
		{"all events in one write", []string{"event: stdout\ndata: {\"line\":\"a\"}\n\nevent: stderr\ndata: {\"line\":\"b\"}\n\n" + execExit0}},
		{"data split over several lines", []string{"event: stdout\ndata: {\"line\":\ndata: \"a\"}\n\nevent: stderr\ndata: {\"line\":\"b\"}\n\n" + execExit0}},
		{"byte by byte", strings.Split("event: stdout\ndata: {\"line\":\"a\"}\n\nevent: stderr\ndata: {\"line\":\"b\"}\n\n"+execExit0, "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newExecStreamFake(t, execStreamHandler(tt.chunks...), nil)
			events, err := execStreamed(t, f.client(t).Exec.Stream(t.Context(), "sb_1", miosa.ExecParams{Command: "make"}))
			require.NoError(t, err)
			assert.Equal(t, want, events)
		})
	}
}

func TestExecStream_LinesArriveWhileTheCommandRuns(t *testing.T) {
	seen := make(chan struct{})
	f := newExecStreamFake(t, func(w http.ResponseWriter, r *http.Request) {
		sseOpen(w)
		sseSend(w, "event: stdout\ndata: {\"line\":\"first\"}\n\n")
		// The command "runs" until the caller has the first line: a
		// client that waits for the exit before yielding never gets here.
		select {
		case <-seen:
		case <-time.After(5 * time.Second):
			return
		}
		sseSend(w, execExit0)
	}, nil)
	var events []miosa.ExecEvent
	for ev, err := range f.client(t).Exec.Stream(t.Context(), "sb_1", miosa.ExecParams{Command: "make"}) {
		require.NoError(t, err)
		if ev.Kind == miosa.ExecStdout {
			close(seen)
		}
		events = append(events, ev)
	}
	assert.Equal(t, []miosa.ExecEvent{stdout("first"), exitWith(0)}, events)
}

func TestExecStream_RetriedOnlyWhenNothingRan(t *testing.T) {
	tests := []struct {
		name      string
		first     http.HandlerFunc
		wantCalls int
		wantErr   error // nil: the retry streams the command
	}{
		{"429 is retried", execJSON(http.StatusTooManyRequests, `{"error":"slow down"}`), 2, nil},
		{"a retryable answer is retried", execJSON(http.StatusConflict,
			`{"error":{"code":"SANDBOX_STARTING","message":"booting","retryable":true}}`), 2, nil},
		{"503 is not", execJSON(http.StatusServiceUnavailable, `{"error":"down"}`), 1, miosa.ErrServer},
		{"500 is not", execJSON(http.StatusInternalServerError, `{"error":"oops"}`), 1, miosa.ErrServer},
		{"a dropped connection is not", execDrop, 1, miosa.ErrOutcomeUnknown},
		{"409 NOT_RUNNING is not", execJSON(http.StatusConflict, `{"error":"Not running","code":"NOT_RUNNING"}`), 1, miosa.ErrConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int64
			f := newExecStreamFake(t, func(w http.ResponseWriter, r *http.Request) {
				if calls.Add(1) == 1 {
					tt.first(w, r)
					return
				}
				execStreamHandler("event: stdout\ndata: {\"line\":\"ran\"}\n\n", execExit0)(w, r)
			}, nil)
			events, err := execStreamed(t, f.client(t).Exec.Stream(t.Context(), "sb_1", miosa.ExecParams{Command: "make"}))
			assert.Equal(t, int64(tt.wantCalls), calls.Load())
			if tt.wantErr == nil {
				require.NoError(t, err)
				assert.Equal(t, []miosa.ExecEvent{stdout("ran"), exitWith(0)}, events)
				return
			}
			require.ErrorIs(t, err, tt.wantErr)
			assert.Empty(t, events)
			var apiErr *miosa.APIError
			assert.Equal(t, !errors.Is(err, miosa.ErrOutcomeUnknown), errors.As(err, &apiErr),
				"a refusal is an *APIError; a lost answer is not")
		})
	}
}

func TestExecStream_UnfinishedStreamIsOutcomeUnknown(t *testing.T) {
	line := "event: stdout\ndata: {\"line\":\"partial\"}\n\n"
	tests := []struct {
		name    string
		stream  http.HandlerFunc
		wantErr string
	}{
		{"clean end before the exit", execStreamHandler(line), "before the command's exit"},
		{"exit cut off by the end", execStreamHandler(line, "event: exit\ndata: {\"exit_code\":0}\n"), "before the command's exit"},
		{"connection dropped mid-event", func(w http.ResponseWriter, r *http.Request) {
			sseOpen(w)
			sseSend(w, line, "event: exit\ndata: {\"exit_")
			execDrop(w, r)
		}, "broke before the command's exit"},
		{"exit carrying an error", execStreamHandler(line,
			"event: exit\ndata: {\"exit_code\":-1,\"timed_out\":false,\"error\":{\"code\":\"STREAM_LOST\",\"message\":\"worker\\ngone\",\"retryable\":false,\"request_id\":\"req_9\"}}\n\n"),
			"STREAM_LOST: worker gone (request_id=req_9)"},
		{"exit carrying a bare error", execStreamHandler(line, "event: exit\ndata: {\"exit_code\":0,\"error\":\"lost\"}\n\n"), `"lost"`},
		{"malformed output event", execStreamHandler(line, "event: stdout\ndata: {\"line\":42}\n\n"), "malformed stdout event"},
		{"malformed exit event", execStreamHandler(line, "event: exit\ndata: exit 0\n\n"), "malformed exit event"},
		{"exit without a code", execStreamHandler(line, "event: exit\ndata: {}\n\n"), "no exit code"},
		{"exit with a null code", execStreamHandler(line, "event: exit\ndata: {\"exit_code\":null,\"timed_out\":false}\n\n"), "no exit code"},
		{"exit with null data", execStreamHandler(line, "event: exit\ndata: null\n\n"), "no exit code"},
		{"exit with the code renamed", execStreamHandler(line, "event: exit\ndata: {\"code\":0}\n\n"), "no exit code"},
		{"not an event stream", execJSON(http.StatusOK, `{"output":"partial\n","exit_code":0}`), "not text/event-stream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newExecStreamFake(t, tt.stream, nil)
			events, err := execStreamed(t, f.client(t).Exec.Stream(t.Context(), "sb_1", miosa.ExecParams{Command: "make"}))
			require.ErrorIs(t, err, miosa.ErrOutcomeUnknown)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.Contains(t, err.Error(), "POST /sandboxes/sb_1/exec/stream")
			for _, ev := range events {
				assert.NotEqual(t, miosa.ExecExit, ev.Kind, "no exit may be reported")
			}
			assert.Len(t, f.Requests(), 1, "exec is never sent twice")
		})
	}
}

func TestExecStream_OversizedEventEndsTheStream(t *testing.T) {
	huge := "event: stdout\ndata: {\"line\":\"" + strings.Repeat("x", 2<<20) + "\"}\n\n"
	f := newExecStreamFake(t, execStreamHandler("event: stdout\ndata: {\"line\":\"small\"}\n\n", huge, execExit0), nil)
	events, err := execStreamed(t, f.client(t).Exec.Stream(t.Context(), "sb_1", miosa.ExecParams{Command: "make"}))
	require.ErrorIs(t, err, miosa.ErrOutcomeUnknown)
	assert.Contains(t, err.Error(), "larger than")
	assert.Equal(t, []miosa.ExecEvent{stdout("small")}, events)
	assert.Len(t, f.Requests(), 1)
}

func TestExecStream_LargeLineWithinTheBoundIsDelivered(t *testing.T) {
	long := strings.Repeat("y", 200<<10)
	f := newExecStreamFake(t, execStreamHandler("event: stdout\ndata: {\"line\":\""+long+"\"}\n\n", execExit0), nil)
	events, err := execStreamed(t, f.client(t).Exec.Stream(t.Context(), "sb_1", miosa.ExecParams{Command: "make"}))
	require.NoError(t, err)
	assert.Equal(t, []miosa.ExecEvent{stdout(long), exitWith(0)}, events)
}

// execEndlessOutput streams numbered lines until the client goes away, then
// reports that it saw the disconnect.
func execEndlessOutput(disconnected chan<- struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		defer close(disconnected)
		sseOpen(w)
		for {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(time.Millisecond):
			}
			sseSend(w, "event: stdout\ndata: {\"line\":\"more\"}\n\n")
		}
	}
}

func TestExecStream_BreakClosesTheStreamAtOnce(t *testing.T) {
	for _, http2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[http2], func(t *testing.T) {
			baseline := goleak.IgnoreCurrent()
			// Registered first, so it runs last: after the server has closed.
			t.Cleanup(func() { goleak.VerifyNone(t, baseline) })
			disconnected := make(chan struct{})
			f := newExecStreamFakeOver(t, http2, execEndlessOutput(disconnected), nil)
			n := 0
			for ev, err := range f.client(t).Exec.Stream(context.Background(), "sb_1", miosa.ExecParams{Command: "yes"}) {
				require.NoError(t, err)
				require.Equal(t, stdout("more"), ev)
				if n++; n == 3 {
					break
				}
			}
			// The stream was closed when the loop ended, not when a context
			// or the server ends it: the server sees the disconnect now.
			select {
			case <-disconnected:
			case <-time.After(5 * time.Second):
				t.Fatal("the server still streams to a loop that ended")
			}
			require.Eventually(t, f.allConnectionsClosed, 5*time.Second, time.Millisecond)
			assert.Len(t, f.Requests(), 1)
		})
	}
}

func TestExecStream_CancelMidStreamEndsItWithTheContextsError(t *testing.T) {
	baseline := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, baseline) })
	disconnected := make(chan struct{})
	f := newExecStreamFake(t, func(w http.ResponseWriter, r *http.Request) {
		defer close(disconnected)
		sseOpen(w)
		sseSend(w, "event: stdout\ndata: {\"line\":\"started\"}\n\n")
		<-r.Context().Done() // a command that writes nothing more
	}, nil)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	events, err := execStreamed(t, func(yield func(miosa.ExecEvent, error) bool) {
		for ev, err := range f.client(t).Exec.Stream(ctx, "sb_1", miosa.ExecParams{Command: "sleep 1000"}) {
			if ev.Kind == miosa.ExecStdout {
				cancel() // while the stream waits for the next line
			}
			if !yield(ev, err) {
				return
			}
		}
	})
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, []miosa.ExecEvent{stdout("started")}, events)
	<-disconnected
	assert.Len(t, f.Requests(), 1)
	require.Eventually(t, f.allConnectionsClosed, 5*time.Second, time.Millisecond)
}

func TestExecStream_DeadlinePassingMidStreamIsItsError(t *testing.T) {
	f := newExecStreamFake(t, func(w http.ResponseWriter, r *http.Request) {
		sseOpen(w)
		sseSend(w, "event: stdout\ndata: {\"line\":\"started\"}\n\n")
		<-r.Context().Done()
	}, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	events, err := execStreamed(t, f.client(t).Exec.Stream(ctx, "sb_1", miosa.ExecParams{Command: "sleep 1000"}))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, []miosa.ExecEvent{stdout("started")}, events)
}

func TestExecStream_AlreadyCancelledContextSendsNothing(t *testing.T) {
	f := newExecStreamFake(t, execStreamHandler(execExit0), nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	events, err := execStreamed(t, f.client(t).Exec.Stream(ctx, "sb_1", miosa.ExecParams{Command: "ls"}))
	require.ErrorIs(t, err, context.Canceled)
	assert.False(t, errors.Is(err, miosa.ErrOutcomeUnknown), "nothing was sent")
	assert.Empty(t, events)
	assert.Empty(t, f.Requests())
}

func TestExecStream_CallerClientTimeoutDoesNotCutTheStream(t *testing.T) {
	const clientTimeout = 20 * time.Millisecond
	f := newExecStreamFake(t, func(w http.ResponseWriter, r *http.Request) {
		sseOpen(w)
		sseSend(w, "event: stdout\ndata: {\"line\":\"a\"}\n\n")
		time.Sleep(5 * clientTimeout)
		sseSend(w, execExit0)
	}, nil)
	short := &http.Client{Transport: f.httpClient.Transport, Timeout: clientTimeout}
	events, err := execStreamed(t, f.client(t, miosa.WithHTTPClient(short)).Exec.Stream(t.Context(), "sb_1", miosa.ExecParams{Command: "make"}))
	require.NoError(t, err)
	assert.Equal(t, []miosa.ExecEvent{stdout("a"), exitWith(0)}, events)
}

func TestExecStream_WithoutTheEndpointFallsBackToTheBlockingExec(t *testing.T) {
	for _, status := range []int{http.StatusNotFound, http.StatusMethodNotAllowed} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			f := newExecStreamFake(t, execJSON(status, `{"error":"no such route"}`),
				execJSON(http.StatusOK, `{"output":"one\ntwo\noops\n","stdout":"one\ntwo\n","stderr":"oops\n","exit_code":2}`))
			events, err := execStreamed(t, f.client(t).Exec.Stream(t.Context(), "sb_1",
				miosa.ExecParams{Command: "make", Timeout: 1500 * time.Millisecond, WorkingDir: "/srv", Env: map[string]string{"A": "1"}}))
			require.NoError(t, err)
			assert.Equal(t, []miosa.ExecEvent{stdout("one"), stdout("two"), stderr("oops"), exitWith(2)}, events)

			reqs := f.Requests()
			require.Len(t, reqs, 2)
			assert.Equal(t, "/api/v1/sandboxes/sb_1/exec/stream", reqs[0].Path)
			assert.Equal(t, "/api/v1/computers/sb_1/exec", reqs[1].Path)
			assert.JSONEq(t, `{"command":"make","timeout":1500,"working_dir":"/srv","env":{"A":"1"}}`, string(reqs[1].Body),
				"the blocking exec takes milliseconds and working_dir")
		})
	}
}

func TestExecStream_FallbackSplitsOutputIntoLines(t *testing.T) {
	tests := []struct {
		name           string
		stdout, stderr string
		want           []miosa.ExecEvent
	}{
		{"no output", "", "", []miosa.ExecEvent{exitWith(0)}},
		{"a trailing newline makes no empty line", "a\n", "", []miosa.ExecEvent{stdout("a"), exitWith(0)}},
		{"no trailing newline", "a\nb", "c", []miosa.ExecEvent{stdout("a"), stdout("b"), stderr("c"), exitWith(0)}},
		{"empty lines inside are kept", "a\n\nb\n", "", []miosa.ExecEvent{stdout("a"), stdout(""), stdout("b"), exitWith(0)}},
		{"a lone newline is one empty line", "\n", "\n\n", []miosa.ExecEvent{stdout(""), stderr(""), stderr(""), exitWith(0)}},
		{"carriage returns are kept", "a\r\n", "", []miosa.ExecEvent{stdout("a\r"), exitWith(0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := json.Marshal(map[string]any{"output": "combined, never repeated", "stdout": tt.stdout, "stderr": tt.stderr})
			require.NoError(t, err)
			f := newExecStreamFake(t, execJSON(http.StatusNotFound, `{"error":"not found"}`), execJSON(http.StatusOK, string(body)))
			events, err := execStreamed(t, f.client(t).Exec.Stream(t.Context(), "sb_1", miosa.ExecParams{Command: "make"}))
			require.NoError(t, err)
			assert.Equal(t, tt.want, events)
		})
	}
}

func TestExecStream_FallbackErrorsAreTheBlockingExecs(t *testing.T) {
	tests := []struct {
		name     string
		blocking http.HandlerFunc
		want     error
	}{
		{"refused", execJSON(http.StatusConflict, `{"error":"Not running","code":"NOT_RUNNING"}`), miosa.ErrConflict},
		{"not found either", execJSON(http.StatusNotFound, `{"error":"no sandbox"}`), miosa.ErrNotFound},
		{"lost answer", execDrop, miosa.ErrOutcomeUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newExecStreamFake(t, execJSON(http.StatusNotFound, `{"error":"not found"}`), tt.blocking)
			events, err := execStreamed(t, f.client(t).Exec.Stream(t.Context(), "sb_1", miosa.ExecParams{Command: "make"}))
			require.ErrorIs(t, err, tt.want)
			assert.Contains(t, err.Error(), "POST /computers/sb_1/exec")
			assert.Empty(t, events)
			assert.Len(t, f.Requests(), 2, "one stream request, one blocking exec, no more")
		})
	}
}

func TestExecStream_BreakDuringFallbackStopsAtOnce(t *testing.T) {
	f := newExecStreamFake(t, execJSON(http.StatusNotFound, `{"error":"not found"}`),
		execJSON(http.StatusOK, `{"stdout":"a\nb\nc\n","stderr":"d\n"}`))
	var events []miosa.ExecEvent
	for ev, err := range f.client(t).Exec.Stream(t.Context(), "sb_1", miosa.ExecParams{Command: "make"}) {
		require.NoError(t, err)
		events = append(events, ev)
		if len(events) == 2 {
			break
		}
	}
	assert.Equal(t, []miosa.ExecEvent{stdout("a"), stdout("b")}, events)
}

// FuzzExecStreamBody feeds arbitrary bytes as the streamed exec's body.
// Whatever they are, the sequence ends on one request, with either its exit
// as the last event or one error matching ErrOutcomeUnknown, and reading
// the body a byte at a time changes nothing.
func FuzzExecStreamBody(f *testing.F) {
	for _, seed := range []string{
		"event: stdout\ndata: {\"line\":\"a\"}\n\n" + execExit0,
		"event: stdout\r\ndata: {\"line\":\"a\"}\r\n\r\nevent: exit\r\ndata: {\"exit_code\":1}\r\n\r\n",
		"event:exit\rdata:{\"timed_out\":true}\r\r",
		": hb\n\nid: 1\nevent: stderr\ndata: {\"line\":\"\\u00e9\"}\n\n",
		"event: exit\ndata: {\"exit_code\":0}\n",
		"event: exit\ndata: {\"error\":{\"code\":\"X\"}}\n\n",
		"event: stdout\ndata: {\"line\":\ndata: \"a\"}\n\n",
		"event: exit\ndata: {\"exit_code\":1e400}\n\n",
		"data\nevent\n\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		whole, wholeErr := execStreamOverBody(t, func() io.Reader { return bytes.NewReader(body) })
		trickle, trickleErr := execStreamOverBody(t, func() io.Reader { return iotest.OneByteReader(bytes.NewReader(body)) })
		require.Equal(t, whole, trickle, "reading byte by byte changed the events")
		require.Equal(t, wholeErr == nil, trickleErr == nil, "reading byte by byte changed the outcome")
		if wholeErr != nil {
			require.ErrorIs(t, wholeErr, miosa.ErrOutcomeUnknown)
			for _, ev := range whole {
				require.NotEqual(t, miosa.ExecExit, ev.Kind)
			}
			return
		}
		require.NotEmpty(t, whole)
		last := whole[len(whole)-1]
		require.Equal(t, miosa.ExecExit, last.Kind, "a stream without error ends with its exit")
		if last.TimedOut {
			require.Equal(t, -1, last.ExitCode)
		}
		for _, ev := range whole[:len(whole)-1] {
			require.Contains(t, []miosa.ExecEventKind{miosa.ExecStdout, miosa.ExecStderr}, ev.Kind)
		}
	})
}

// execStreamOverBody runs one streamed exec whose answer is a 200 event
// stream with the given body, through a transport that counts requests.
func execStreamOverBody(t *testing.T, body func() io.Reader) ([]miosa.ExecEvent, error) {
	var requests atomic.Int64
	rt := sseRoundTripFunc(func(r *http.Request) (*http.Response, error) {
		requests.Add(1)
		return &http.Response{
			StatusCode: http.StatusOK,
			Header:     http.Header{"Content-Type": {"text/event-stream"}},
			Body:       io.NopCloser(body()),
			Request:    r,
		}, nil
	})
	c, err := miosa.NewClient(scriptedKey, miosa.WithBaseURL("http://127.0.0.1:1/api/v1"),
		miosa.WithHTTPClient(&http.Client{Transport: rt}), miosa.WithRetryDelay(0, 0))
	require.NoError(t, err)
	events, err := execStreamed(t, c.Exec.Stream(t.Context(), "sb_1", miosa.ExecParams{Command: "x"}))
	require.Equal(t, int64(1), requests.Load())
	return events, err
}

func TestExecStream_ManyMixedStreamsLeaveNothingBehind(t *testing.T) {
	baseline := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, baseline) })
	line := "event: stdout\ndata: {\"line\":\"x\"}\n\n"
	f := newExecStreamFake(t, func(w http.ResponseWriter, r *http.Request) {
		// The sandbox id says how this stream behaves.
		switch strings.Split(r.URL.Path, "/")[4] {
		case "exit":
			execStreamHandler(line, execExit0)(w, r)
		case "drop":
			sseOpen(w)
			sseSend(w, line)
			execDrop(w, r)
		case "refuse":
			execJSON(http.StatusServiceUnavailable, `{"error":"down"}`)(w, r)
		case "absent":
			execJSON(http.StatusNotFound, `{"error":"no route"}`)(w, r)
		default: // "break", "cancel": output until the client goes away
			sseOpen(w)
			for r.Context().Err() == nil {
				sseSend(w, line)
				time.Sleep(time.Millisecond)
			}
		}
	}, execJSON(http.StatusOK, `{"stdout":"x\n"}`))
	client := f.client(t)
	commands := []string{"exit", "drop", "refuse", "absent", "break", "cancel"}
	var wg sync.WaitGroup
	for i := range 120 {
		wg.Go(func() {
			command := commands[i%len(commands)]
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			for ev, err := range client.Exec.Stream(ctx, command, miosa.ExecParams{Command: "make"}) {
				if err != nil || ev.Kind != miosa.ExecStdout {
					continue
				}
				if command == "break" {
					break
				}
				if command == "cancel" {
					cancel()
				}
			}
		})
	}
	wg.Wait()
	require.Eventually(t, f.allConnectionsClosed, 5*time.Second, time.Millisecond)
}

func TestExecStream_TimedOutExitNeedsNoCode(t *testing.T) {
	f := newExecStreamFake(t, execStreamHandler("event: exit\ndata: {\"timed_out\":true}\n\n"), nil)
	events, err := execStreamed(t, f.client(t).Exec.Stream(t.Context(), "sb_1", miosa.ExecParams{Command: "sleep 9"}))
	require.NoError(t, err)
	assert.Equal(t, []miosa.ExecEvent{{Kind: miosa.ExecExit, ExitCode: -1, TimedOut: true}}, events)
}

func TestExecStream_RefusalAfterARedirectNeverRunsTheCommandAgain(t *testing.T) {
	for _, status := range []int{http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			rec := miosa.NewRecorder(func(w http.ResponseWriter, r *http.Request, _ int) {
				switch {
				case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/exec/stream"):
					// The server took the command, then sent the client on:
					// a 303 after a POST is followed as a GET.
					http.Redirect(w, r, "/api/v1/elsewhere", http.StatusSeeOther)
				case r.Method == http.MethodGet:
					w.Header().Set("Retry-After", "0")
					execJSON(status, `{"error":{"code":"X","message":"no","retryable":true}}`)(w, r)
				default:
					execJSON(http.StatusOK, `{"output":"ran again\n","exit_code":0}`)(w, r)
				}
			})
			srv := httptest.NewServer(rec)
			t.Cleanup(srv.Close)
			c, err := miosa.NewClient(scriptedKey, miosa.WithBaseURL(srv.URL+"/api/v1"), miosa.WithRetryDelay(0, 0))
			require.NoError(t, err)
			_, err = execStreamed(t, c.Exec.Stream(t.Context(), "sb_1", miosa.ExecParams{Command: "make"}))
			require.ErrorIs(t, err, miosa.ErrOutcomeUnknown)
			var apiErr *miosa.APIError
			require.ErrorAs(t, err, &apiErr, "the refusal stays reachable")
			assert.Equal(t, status, apiErr.StatusCode)
			assert.Contains(t, err.Error(), "after a redirect")
			var posts int
			for _, r := range rec.Requests() {
				if r.Method == http.MethodPost {
					posts++
				}
			}
			assert.Equal(t, 1, posts, "the command is sent once: no retry, no fallback to the blocking exec")
		})
	}
}

func TestExecStream_LinesEchoingTheKeyAreRedacted(t *testing.T) {
	f := newExecStreamFake(t, execStreamHandler(
		"event: stdout\ndata: {\"line\":\"key=\"}\n\n",
		"event: stdout\ndata: {\"line\":\"key="+scriptedKey+"\"}\n\n",
		"event: stderr\ndata: {\"line\":\"key=msk\\u005f"+strings.TrimPrefix(scriptedKey, "msk_")+"!\"}\n\n",
		execExit0), nil)
	events, err := execStreamed(t, f.client(t).Exec.Stream(t.Context(), "sb_1", miosa.ExecParams{Command: "env"}))
	require.NoError(t, err)
	assert.Equal(t, []miosa.ExecEvent{stdout("key="), stdout("key=[redacted]"), stderr("key=[redacted]!"), exitWith(0)}, events)
}
