package miosatest_test

import (
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

// streamAll runs a streamed exec to its end and returns its events and the
// error that ended it.
func streamAll(t *testing.T, client *miosa.Client, id string, params miosa.ExecParams) ([]miosa.ExecEvent, error) {
	t.Helper()
	var events []miosa.ExecEvent
	for ev, err := range client.Exec.Stream(t.Context(), id, params) {
		if err != nil {
			return events, err
		}
		events = append(events, ev)
	}
	return events, nil
}

func TestExecStream_ScriptIsSentAsEventsOnTheWire(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	srv.HandleExecStream("make", miosatest.ExecStream{
		Lines:    []miosatest.ExecLine{{Text: "compiling..."}, {Stderr: true, Text: `warning: "x"`}},
		ExitCode: 2,
	})
	id := sandbox(t, srv)
	resp := call(t, srv, "POST", "/sandboxes/"+id+"/exec/stream", `{"command":"make"}`, "Accept: text/event-stream")
	require.Equal(t, http.StatusOK, resp.status)
	assert.Equal(t, "event: stdout\ndata: {\"line\":\"compiling...\"}\n\n"+
		"event: stderr\ndata: {\"line\":\"warning: \\\"x\\\"\"}\n\n"+
		"event: exit\ndata: {\"exit_code\":2,\"timed_out\":false}\n\n", string(resp.body))
}

func TestExecStream_ScriptDelaysEachLine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := miosatest.NewServer(t, miosatest.WithInMemoryNetwork(), miosatest.WithBootDelay(0))
		srv.HandleExecStream("slow", miosatest.ExecStream{
			Lines:     []miosatest.ExecLine{{Text: "a", Delay: time.Second}, {Text: "b", Delay: 2 * time.Second}},
			ExitDelay: 3 * time.Second,
		})
		client := srv.Client()
		id := sandbox(t, srv)
		start := time.Now()
		var at []time.Duration
		for ev, err := range client.Exec.Stream(t.Context(), id, miosa.ExecParams{Command: "slow"}) {
			require.NoError(t, err)
			at = append(at, time.Since(start))
			_ = ev
		}
		assert.Equal(t, []time.Duration{time.Second, 3 * time.Second, 6 * time.Second}, at)
	})
}

func TestExecStream_ScriptedEnds(t *testing.T) {
	lines := []miosatest.ExecLine{{Text: "one"}, {Text: "two"}}
	tests := []struct {
		name    string
		stream  miosatest.ExecStream
		want    []miosa.ExecEvent
		wantErr string // "" for a stream that ends with its exit
	}{
		{"exit", miosatest.ExecStream{Lines: lines, ExitCode: 1},
			[]miosa.ExecEvent{{Kind: miosa.ExecStdout, Line: "one"}, {Kind: miosa.ExecStdout, Line: "two"}, {Kind: miosa.ExecExit, ExitCode: 1}}, ""},
		{"timed out", miosatest.ExecStream{Lines: lines[:1], ExitCode: 9, TimedOut: true},
			[]miosa.ExecEvent{{Kind: miosa.ExecStdout, Line: "one"}, {Kind: miosa.ExecExit, ExitCode: -1, TimedOut: true}}, ""},
		{"drop after two lines", miosatest.ExecStream{Lines: lines, End: miosatest.ExecStreamDrop},
			[]miosa.ExecEvent{{Kind: miosa.ExecStdout, Line: "one"}, {Kind: miosa.ExecStdout, Line: "two"}}, "broke"},
		{"clean close without exit", miosatest.ExecStream{Lines: lines, End: miosatest.ExecStreamClose},
			[]miosa.ExecEvent{{Kind: miosa.ExecStdout, Line: "one"}, {Kind: miosa.ExecStdout, Line: "two"}}, "ended before"},
		{"exit with an error object", miosatest.ExecStream{Lines: lines[:1], End: miosatest.ExecStreamError},
			[]miosa.ExecEvent{{Kind: miosa.ExecStdout, Line: "one"}}, "STREAM_ABORTED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
			srv.HandleExecStream("job", tt.stream)
			events, err := streamAll(t, srv.Client(), sandbox(t, srv), miosa.ExecParams{Command: "job"})
			assert.Equal(t, tt.want, events)
			if tt.wantErr == "" {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, miosa.ErrOutcomeUnknown)
				assert.Contains(t, err.Error(), tt.wantErr)
			}
			assert.Len(t, srv.RequestsTo("POST", "/sandboxes/*/exec/stream"), 1)
		})
	}
}

func TestExecStream_UnscriptedCommandsStreamTheBlockingExecsResult(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	srv.HandleExec("check", miosatest.ExecResult{Stdout: "a\nb\n", Stderr: "c\n", ExitCode: 4})
	client := srv.Client()
	id := sandbox(t, srv)

	events, err := streamAll(t, client, id, miosa.ExecParams{Command: "check"})
	require.NoError(t, err)
	assert.Equal(t, []miosa.ExecEvent{
		{Kind: miosa.ExecStdout, Line: "a"}, {Kind: miosa.ExecStdout, Line: "b"},
		{Kind: miosa.ExecStderr, Line: "c"}, {Kind: miosa.ExecExit, ExitCode: 4},
	}, events)

	events, err = streamAll(t, client, id, miosa.ExecParams{Command: "echo hi"})
	require.NoError(t, err)
	assert.Equal(t, []miosa.ExecEvent{{Kind: miosa.ExecStdout, Line: "hi"}, {Kind: miosa.ExecExit}}, events)
	assert.Empty(t, srv.RequestsTo("POST", "/computers/*/exec"), "the stream answered; no fallback")
}

func TestExecStream_LocalShellSendsEachLineAsTheProcessWritesIt(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the local shell needs /bin/sh")
	}
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0), miosatest.WithLocalShell())
	gate := filepath.Join(t.TempDir(), "gate")
	// The command cannot finish until the test has seen its first line.
	command := `echo first; echo "to stderr" >&2; while [ ! -e "$GATE" ]; do sleep 0.01; done; echo second; exit 3`
	var events []miosa.ExecEvent
	for ev, err := range srv.Client().Exec.Stream(t.Context(), sandbox(t, srv), miosa.ExecParams{
		Command: command, Env: map[string]string{"GATE": gate}, Timeout: 30 * time.Second,
	}) {
		require.NoError(t, err)
		if ev.Line == "first" {
			require.NoError(t, os.WriteFile(gate, nil, 0o600))
		}
		events = append(events, ev)
	}
	// stdout and stderr are separate pipes: only each one's own order is
	// kept. That "second" came at all shows "first" arrived while the
	// command still ran.
	require.Len(t, events, 4)
	var out []string
	for _, ev := range events[:3] {
		if ev.Kind == miosa.ExecStdout {
			out = append(out, ev.Line)
		}
	}
	assert.Equal(t, []string{"first", "second"}, out)
	assert.Contains(t, events[:3], miosa.ExecEvent{Kind: miosa.ExecStderr, Line: "to stderr"})
	assert.Equal(t, miosa.ExecEvent{Kind: miosa.ExecExit, ExitCode: 3}, events[3])
}

func TestExecStream_LocalShellTimeoutEndsTheCommand(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the local shell needs /bin/sh")
	}
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0), miosatest.WithLocalShell())
	events, err := streamAll(t, srv.Client(), sandbox(t, srv), miosa.ExecParams{Command: "echo started; sleep 30", Timeout: time.Second})
	require.NoError(t, err)
	assert.Equal(t, []miosa.ExecEvent{
		{Kind: miosa.ExecStdout, Line: "started"}, {Kind: miosa.ExecExit, ExitCode: -1, TimedOut: true},
	}, events)
}

func TestExecStream_WithoutTheEndpointTheSDKFallsBack(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0), miosatest.WithoutExecStream())
	srv.HandleExec("check", miosatest.ExecResult{Stdout: "ok\n", ExitCode: 0})
	id := sandbox(t, srv)
	resp := call(t, srv, "POST", "/sandboxes/"+id+"/exec/stream", `{"command":"check"}`)
	assert.Equal(t, http.StatusNotFound, resp.status)
	srv.ResetRequests()

	events, err := streamAll(t, srv.Client(), id, miosa.ExecParams{Command: "check"})
	require.NoError(t, err)
	assert.Equal(t, []miosa.ExecEvent{{Kind: miosa.ExecStdout, Line: "ok"}, {Kind: miosa.ExecExit}}, events)
	reqs := srv.Requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, "/sandboxes/"+id+"/exec/stream", reqs[0].Path)
	assert.Equal(t, http.StatusNotFound, reqs[0].Status)
	assert.Equal(t, "/computers/"+id+"/exec", reqs[1].Path)
}

func TestExecStream_FaultsBeforeTheStream(t *testing.T) {
	tests := []struct {
		name      string
		fault     miosatest.Fault
		wantCalls int
		wantErr   error
	}{
		{"429 is retried", miosatest.Fault{Status: http.StatusTooManyRequests}, 2, nil},
		{"503 is not", miosatest.Fault{Status: http.StatusServiceUnavailable}, 1, miosa.ErrServer},
		{"a lost answer is not", miosatest.Fault{Drop: miosatest.DropAfterAct}, 1, miosa.ErrOutcomeUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
			id := sandbox(t, srv)
			tt.fault.Method, tt.fault.Path = "POST", "/sandboxes/*/exec/stream"
			srv.Inject(tt.fault)
			_, err := streamAll(t, srv.Client(), id, miosa.ExecParams{Command: "echo hi"})
			if tt.wantErr == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tt.wantErr)
			}
			assert.Len(t, srv.RequestsTo("POST", "/sandboxes/*/exec/stream"), tt.wantCalls)
		})
	}
}

func TestExecStream_RefusesWhatTheServerWould(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	id := sandbox(t, srv)
	for _, tt := range []struct {
		path, body string
		status     int
	}{
		{"/sandboxes/" + id + "/exec/stream", `{}`, http.StatusUnprocessableEntity},
		{"/sandboxes/" + id + "/exec/stream", `{"command":"ls","timeout":0}`, http.StatusUnprocessableEntity},
		{"/sandboxes/" + id + "/exec/stream", `{"command":"ls","timeout":86401}`, http.StatusUnprocessableEntity},
		{"/sandboxes/" + id + "/exec/stream", `{"command":"ls","timeout":1.5}`, http.StatusUnprocessableEntity},
		{"/sandboxes/" + id + "/exec/stream", `{"command":"ls","cwd":3}`, http.StatusUnprocessableEntity},
		{"/sandboxes/nope/exec/stream", `{"command":"ls"}`, http.StatusNotFound},
	} {
		assert.Equal(t, tt.status, call(t, srv, "POST", tt.path, tt.body).status, tt.body)
	}
	require.NoError(t, srv.Client().Computers.Stop(t.Context(), id))
	_, err := streamAll(t, srv.Client(), id, miosa.ExecParams{Command: "ls"})
	require.ErrorIs(t, err, miosa.ErrConflict)
	assert.Contains(t, err.Error(), "NOT_RUNNING")
}
