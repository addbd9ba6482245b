package miosa_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/miosa-ai/miosa-go"
)

// lineWriter records every Write as one entry, and can be told to fail.
type lineWriter struct {
	mu     sync.Mutex
	writes []string
	fail   error
	onEach func(string) // called after each write, outside the lock
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.writes = append(w.writes, string(p))
	fail, onEach := w.fail, w.onEach
	w.mu.Unlock()
	if onEach != nil {
		onEach(string(p))
	}
	if fail != nil {
		return 0, fail
	}
	return len(p), nil
}

func (w *lineWriter) lines() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.writes...)
}

const mixedOutput = "event: stdout\ndata: {\"line\":\"out 1\"}\n\n" +
	"event: stderr\ndata: {\"line\":\"err 1\"}\n\n" +
	"event: stdout\ndata: {\"line\":\"out 2\"}\n\n" +
	"event: exit\ndata: {\"exit_code\":3,\"timed_out\":false}\n\n"

func TestExecRun_WritersGetEachLineAndRunReturnsTheExitCode(t *testing.T) {
	tests := []struct {
		name                   string
		stdout, stderr         bool
		wantStdout, wantStderr []string
	}{
		{"both writers", true, true, []string{"out 1\n", "out 2\n"}, []string{"err 1\n"}},
		{"stderr nil: stderr lines go to Stdout, in order", true, false, []string{"out 1\n", "err 1\n", "out 2\n"}, nil},
		{"stdout nil: stdout lines are dropped", false, true, nil, []string{"err 1\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newExecStreamFake(t, execStreamHandler(mixedOutput), nil)
			var outW, errW lineWriter
			params := miosa.ExecParams{Command: "make", Timeout: 90 * time.Second}
			if tt.stdout {
				params.Stdout = &outW
			}
			if tt.stderr {
				params.Stderr = &errW
			}
			res, err := f.client(t).Exec.Run(t.Context(), "sb_1", params)
			require.NoError(t, err)
			assert.Equal(t, &miosa.ExecResult{ExitCode: 3}, res, "the bytes went to the writers, not into the result")
			assert.Equal(t, tt.wantStdout, outW.lines(), "one write per line, with its newline")
			assert.Equal(t, tt.wantStderr, errW.lines())

			reqs := f.Requests()
			require.Len(t, reqs, 1)
			assert.Equal(t, "/api/v1/sandboxes/sb_1/exec/stream", reqs[0].Path, "Run with writers streams")
			assert.JSONEq(t, `{"command":"make","timeout":90}`, string(reqs[0].Body), "the writers are never sent")
		})
	}
}

func TestExecRun_WritesEachLineTheMomentItArrives(t *testing.T) {
	firstWritten := make(chan struct{})
	f := newExecStreamFake(t, func(w http.ResponseWriter, r *http.Request) {
		sseOpen(w)
		sseSend(w, "event: stdout\ndata: {\"line\":\"first\"}\n\n")
		// The rest comes only once the caller's writer has the first line.
		select {
		case <-firstWritten:
		case <-time.After(10 * time.Second):
			return
		}
		sseSend(w, "event: stdout\ndata: {\"line\":\"second\"}\n\n", execExit0)
	}, nil)
	var once sync.Once
	out := &lineWriter{onEach: func(string) { once.Do(func() { close(firstWritten) }) }}
	res, err := f.client(t).Exec.Run(t.Context(), "sb_1", miosa.ExecParams{Command: "make", Stdout: out})
	require.NoError(t, err)
	assert.Equal(t, 0, res.ExitCode)
	assert.Equal(t, []string{"first\n", "second\n"}, out.lines())
}

func TestExecRun_WithWritersTimedOutIsExitMinusOne(t *testing.T) {
	f := newExecStreamFake(t, execStreamHandler("event: exit\ndata: {\"exit_code\":-1,\"timed_out\":true}\n\n"), nil)
	res, err := f.client(t).Exec.Run(t.Context(), "sb_1", miosa.ExecParams{Command: "sleep 9", Timeout: time.Second, Stdout: &bytes.Buffer{}})
	require.NoError(t, err)
	assert.Equal(t, -1, res.ExitCode)
}

func TestExecRun_WithWritersFallsBackToTheBlockingExec(t *testing.T) {
	f := newExecStreamFake(t, execJSON(http.StatusNotFound, `{"error":"no route"}`),
		execJSON(http.StatusOK, `{"stdout":"a\nb\n","stderr":"oops\n","exit_code":1}`))
	var out bytes.Buffer
	res, err := f.client(t).Exec.Run(t.Context(), "sb_1", miosa.ExecParams{Command: "make", Timeout: 2 * time.Second, Stdout: &out})
	require.NoError(t, err)
	assert.Equal(t, 1, res.ExitCode)
	assert.Equal(t, "a\nb\noops\n", out.String())
	reqs := f.Requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, "/api/v1/computers/sb_1/exec", reqs[1].Path)
	assert.JSONEq(t, `{"command":"make","timeout":2000}`, string(reqs[1].Body), "the fallback is the blocking exec, timeout in ms")
}

func TestExecRun_WithWritersReturnsEveryErrorStreamWouldYield(t *testing.T) {
	tests := []struct {
		name   string
		stream http.HandlerFunc
		want   []error
	}{
		{"refused before the stream", execJSON(http.StatusConflict, `{"error":"not running","code":"NOT_RUNNING"}`), []error{miosa.ErrConflict}},
		{"broken before the exit", func(w http.ResponseWriter, r *http.Request) {
			sseOpen(w)
			sseSend(w, "event: stdout\ndata: {\"line\":\"x\"}\n\n")
			execDrop(w, r)
		}, []error{miosa.ErrOutcomeUnknown}},
		{"ended without the exit", execStreamHandler("event: stdout\ndata: {\"line\":\"x\"}\n\n"), []error{miosa.ErrOutcomeUnknown}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newExecStreamFake(t, tt.stream, nil)
			res, err := f.client(t).Exec.Run(t.Context(), "sb_1", miosa.ExecParams{Command: "make", Stdout: &bytes.Buffer{}})
			assert.Nil(t, res)
			for _, want := range tt.want {
				assert.ErrorIs(t, err, want)
			}
			assert.Len(t, f.Requests(), 1, "never sent twice")
		})
	}
	t.Run("invalid params", func(t *testing.T) {
		f := newExecStreamFake(t, execStreamHandler(execExit0), nil)
		_, err := f.client(t).Exec.Run(t.Context(), "sb_1", miosa.ExecParams{Command: "x", Timeout: 25 * time.Hour, Stderr: &bytes.Buffer{}})
		require.ErrorIs(t, err, miosa.ErrInvalidParams, "the stream's 24 h limit applies")
		assert.Empty(t, f.Requests())
	})
	t.Run("the caller's context", func(t *testing.T) {
		f := newExecStreamFake(t, func(w http.ResponseWriter, r *http.Request) {
			sseOpen(w)
			sseSend(w, "event: stdout\ndata: {\"line\":\"started\"}\n\n")
			<-r.Context().Done()
		}, nil)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		out := &lineWriter{onEach: func(string) { cancel() }}
		_, err := f.client(t).Exec.Run(ctx, "sb_1", miosa.ExecParams{Command: "sleep 100", Stdout: out})
		require.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, []string{"started\n"}, out.lines())
	})
}

func TestExecRun_AWritersErrorEndsTheCallAndClosesTheStream(t *testing.T) {
	baseline := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, baseline) })
	disconnected := make(chan struct{})
	f := newExecStreamFake(t, execEndlessOutput(disconnected), nil)
	diskFull := errors.New("disk full")
	out := &lineWriter{fail: diskFull}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // fails, rather than hangs, if the error were ignored
	defer cancel()
	res, err := f.client(t).Exec.Run(ctx, "sb_1", miosa.ExecParams{Command: "yes", Stdout: out})
	assert.Nil(t, res)
	require.ErrorIs(t, err, diskFull)
	assert.NotErrorIs(t, err, miosa.ErrOutcomeUnknown)
	assert.Equal(t, "miosa: exec: writing a line of the command's stdout to ExecParams.Stdout: disk full", err.Error())
	assert.Len(t, out.lines(), 1, "nothing is written after the writer failed")
	select {
	case <-disconnected:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream is still open after the writer failed")
	}
	require.Eventually(t, f.allConnectionsClosed, 5*time.Second, time.Millisecond)
	assert.Len(t, f.Requests(), 1)
}

func TestExecRun_AShortWriteIsAnError(t *testing.T) {
	f := newExecStreamFake(t, execStreamHandler(mixedOutput), nil)
	_, err := f.client(t).Exec.Run(t.Context(), "sb_1", miosa.ExecParams{Command: "make", Stderr: shortWriter{}})
	require.ErrorContains(t, err, "ExecParams.Stderr: short write")
}

type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return len(p) / 2, nil }

func TestExecStream_IgnoresTheWriters(t *testing.T) {
	// A server without the streaming endpoint: the fallback runs the
	// blocking exec once, and the lines come to the loop, not the writer.
	f := newExecStreamFake(t, execJSON(http.StatusNotFound, `{"error":"no route"}`), execJSON(http.StatusOK, `{"stdout":"a\n"}`))
	var out bytes.Buffer
	events, err := execStreamed(t, f.client(t).Exec.Stream(t.Context(), "sb_1", miosa.ExecParams{Command: "make", Stdout: &out}))
	require.NoError(t, err)
	assert.Equal(t, []miosa.ExecEvent{stdout("a"), exitWith(0)}, events)
	assert.Empty(t, out.String())
	assert.Len(t, f.Requests(), 2)
}

func TestExecStream_RangingTwiceRunsTheCommandTwice(t *testing.T) {
	f := newExecStreamFake(t, execStreamHandler(execExit0), nil)
	seq := f.client(t).Exec.Stream(t.Context(), "sb_1", miosa.ExecParams{Command: "make"})
	for range 2 {
		events, err := execStreamed(t, seq)
		require.NoError(t, err)
		assert.Equal(t, []miosa.ExecEvent{exitWith(0)}, events)
	}
	assert.Len(t, f.Requests(), 2, "each range sends the command anew, as documented")
}

func TestExecRun_WithoutWritersIsTheBlockingExec(t *testing.T) {
	f := newExecStreamFake(t, execStreamHandler(execExit0), execJSON(http.StatusOK, `{"stdout":"a\n"}`))
	res, err := f.client(t).Exec.Run(t.Context(), "sb_1", miosa.ExecParams{Command: "make"})
	require.NoError(t, err)
	assert.Equal(t, "a\n", res.Stdout)
	reqs := f.Requests()
	require.Len(t, reqs, 1)
	assert.True(t, strings.HasSuffix(reqs[0].Path, "/computers/sb_1/exec"))
}

// go doc lists a type's constants one line per declaration and elides the
// rest of a const block: every kind of event must show without -all, above
// all ExecExit, which every loop has to handle.
func TestGoDoc_ListsEveryExecEventKind(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH")
	}
	out, err := exec.Command(goTool, "doc", ".", "ExecEventKind").CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, kind := range []string{"ExecStdout", "ExecStderr", "ExecExit"} {
		assert.Contains(t, string(out), "const "+kind+" ExecEventKind")
	}
}
