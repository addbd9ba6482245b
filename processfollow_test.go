package miosa_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

// followFake serves one process, 7 on sandbox sb_1: its stream, answered
// by stream with the 1-based number of the stream request, and its GET,
// answered by get with the number of the GET. It records every request and
// counts the connections it holds open.
type followFake struct {
	*miosa.Recorder
	srv        *httptest.Server
	httpClient *http.Client

	stream func(w http.ResponseWriter, r *http.Request, n int)
	get    func(w http.ResponseWriter, n int)

	mu                  sync.Mutex
	streams, gets       int
	newConns, openConns atomic.Int64
}

func newFollowFake(t testing.TB, http2 bool, stream func(w http.ResponseWriter, r *http.Request, n int), get func(w http.ResponseWriter, n int)) *followFake {
	t.Helper()
	f := &followFake{stream: stream, get: get}
	f.Recorder = miosa.NewRecorder(f.respond)
	f.srv = httptest.NewUnstartedServer(f.Recorder)
	f.httpClient = startCounting(t, f.srv, http2, &f.newConns, &f.openConns)
	return f
}

func (f *followFake) respond(w http.ResponseWriter, r *http.Request, _ int) {
	f.mu.Lock()
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/api/v1/sandboxes/sb_1/processes/7/stream":
		f.streams++
		n := f.streams
		f.mu.Unlock()
		f.stream(w, r, n)
	case r.Method == http.MethodGet && r.URL.Path == "/api/v1/sandboxes/sb_1/processes/7" && f.get != nil:
		f.gets++
		n := f.gets
		f.mu.Unlock()
		f.get(w, n)
	default:
		f.mu.Unlock()
		http.Error(w, `{"error":"unexpected request"}`, http.StatusTeapot)
	}
}

func (f *followFake) client(t testing.TB, opts ...miosa.Option) *miosa.Client {
	t.Helper()
	return countingClient(t, f.srv.URL+"/api/v1", f.httpClient, opts...)
}

// streamRequests returns the stream requests the fake received.
func (f *followFake) streamRequests() []miosa.RecordedRequest {
	var out []miosa.RecordedRequest
	for _, r := range f.Requests() {
		if strings.HasSuffix(r.Path, "/stream") {
			out = append(out, r)
		}
	}
	return out
}

func (f *followFake) counts() (streams, gets int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.streams, f.gets
}

func (f *followFake) allConnectionsClosed() bool {
	f.httpClient.CloseIdleConnections()
	return f.openConns.Load() == 0
}

// follow collects a whole Follow: its events and the error that ended it.
func follow(t *testing.T, c *miosa.Client) ([]miosa.ExecEvent, error) {
	t.Helper()
	return execStreamed(t, c.Processes.Follow(t.Context(), "sb_1", "7"))
}

// processAnswer is a GET answer for process 7: status and exit code (a JSON
// value: "null", "3").
func processAnswer(status, exitCode string) func(w http.ResponseWriter, n int) {
	return func(w http.ResponseWriter, n int) {
		writeProcess(w, status, exitCode)
	}
}

func writeProcess(w http.ResponseWriter, status, exitCode string) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"data":{"pid":7,"status":"` + status + `","exit_code":` + exitCode + `}}`))
}

// cut closes the connection mid-stream, after what was written so far.
func cut(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // HTTP/2: reset the stream
	}
	conn.Close()
}

func line(id int, name, text string) string {
	frame := "event: " + name + "\n"
	if id > 0 {
		frame += "id: " + strconv.Itoa(id) + "\n"
	}
	return frame + `data: {"line":"` + text + `"}` + "\n\n"
}

func TestProcessesFollow_YieldsLinesThenTheExit(t *testing.T) {
	f := newFollowFake(t, false, func(w http.ResponseWriter, r *http.Request, n int) {
		sseOpen(w)
		sseSend(w,
			": keepalive\n\n",
			line(1, "stdout", "listening on :3000"),
			"event: progress\nid: 2\ndata: {\"pct\":50}\n\n", // unknown events are ignored
			"event: stderr\nid: 3\ndata: warning: raw text, not JSON\n\n",
			"event: stdout\nid: 4\ndata: {\"level\":\"info\",\"msg\":\"structured\"}\n\n",
			"event: stdout\nid: 5\ndata: {\"line\":\"key "+scriptedKey+" leaked\"}\n\n",
			"event: exit\nid: 6\ndata: {\"exit_code\":3}\n\n",
		)
	}, nil)
	events, err := follow(t, f.client(t))
	require.NoError(t, err)
	assert.Equal(t, []miosa.ExecEvent{
		stdout("listening on :3000"),
		stderr("warning: raw text, not JSON"),
		stdout(`{"level":"info","msg":"structured"}`),
		stdout("key [redacted] leaked"),
		exitWith(3),
	}, events)
	reqs := f.streamRequests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "/api/v1/sandboxes/sb_1/processes/7/stream", reqs[0].RequestURI)
	assert.Equal(t, "text/event-stream", reqs[0].Header.Get("Accept"))
	assert.Empty(t, reqs[0].Header.Get("Last-Event-ID"), "the first connection starts from the start")
	assert.Equal(t, "Bearer "+scriptedKey, reqs[0].Header.Get("Authorization"))
	_, gets := f.counts()
	assert.Zero(t, gets, "a stream that ends with its exit needs no Get")
}

func TestProcessesFollow_StreamThatEndsWithoutExitAsksGet(t *testing.T) {
	closesAfter := func(chunks ...string) func(w http.ResponseWriter, r *http.Request, n int) {
		return func(w http.ResponseWriter, r *http.Request, n int) {
			sseOpen(w)
			sseSend(w, chunks...)
		}
	}
	cases := []struct {
		name    string
		stream  func(w http.ResponseWriter, r *http.Request, n int)
		get     func(w http.ResponseWriter, n int)
		events  []miosa.ExecEvent
		wantErr error
		gets    int
	}{
		{"an ended process yields the exit Get reports",
			closesAfter(line(1, "stdout", "done")), processAnswer("exited", "3"),
			[]miosa.ExecEvent{stdout("done"), exitWith(3)}, nil, 1},
		{"an exit event without a code is not an exit 0: Get says",
			closesAfter(line(1, "stdout", "done"), "event: exit\nid: 2\ndata: {}\n\n"), processAnswer("exited", "5"),
			[]miosa.ExecEvent{stdout("done"), exitWith(5)}, nil, 1},
		{"an ended process without an exit code is an unknown outcome, never 0",
			closesAfter(line(0, "stdout", "done")), processAnswer("killed", "null"),
			[]miosa.ExecEvent{stdout("done")}, miosa.ErrOutcomeUnknown, 1},
		{"a process that runs, followed without ids, is a gap",
			closesAfter(line(0, "stdout", "a")), processAnswer("running", "null"),
			[]miosa.ExecEvent{stdout("a")}, miosa.ErrStreamGap, 1},
		{"a stream cut without ids while the process ran is a gap, whatever Get says",
			func(w http.ResponseWriter, r *http.Request, n int) {
				sseOpen(w)
				sseSend(w, line(0, "stdout", "a"))
				cut(w)
			}, processAnswer("exited", "0"),
			[]miosa.ExecEvent{stdout("a")}, miosa.ErrStreamGap, 1},
		{"an event too large to read is a gap",
			closesAfter(line(1, "stdout", "a"), "event: stdout\nid: 2\ndata: "+strings.Repeat("x", 1<<20+10)+"\n\n"), processAnswer("exited", "0"),
			[]miosa.ExecEvent{stdout("a")}, miosa.ErrStreamGap, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFollowFake(t, false, tc.stream, tc.get)
			events, err := follow(t, f.client(t))
			assert.Equal(t, tc.events, events)
			if tc.wantErr == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.wantErr)
				assert.Contains(t, err.Error(), "process 7 on sandbox sb_1")
			}
			streams, gets := f.counts()
			assert.Equal(t, 1, streams, "no reconnect")
			assert.Equal(t, tc.gets, gets)
		})
	}
}

func TestProcessesFollow_ResumesFromTheLastEventID(t *testing.T) {
	f := newFollowFake(t, false, func(w http.ResponseWriter, r *http.Request, n int) {
		sseOpen(w)
		switch n {
		case 1:
			sseSend(w, line(1, "stdout", "one"), line(2, "stderr", "two"))
			cut(w)
		case 2:
			assert.Equal(t, "2", r.Header.Get("Last-Event-ID"))
			sseSend(w, ": resumed\n\n", line(3, "stdout", "three"))
			// The server ends the stream cleanly, as one that caps a
			// stream's length does.
		case 3:
			assert.Equal(t, "3", r.Header.Get("Last-Event-ID"))
			sseSend(w, line(4, "stdout", "four"), "event: exit\nid: 5\ndata: {\"exit_code\":0}\n\n")
		}
	}, processAnswer("running", "null"))
	events, err := follow(t, f.client(t))
	require.NoError(t, err)
	assert.Equal(t, []miosa.ExecEvent{stdout("one"), stderr("two"), stdout("three"), stdout("four"), exitWith(0)}, events)
	streams, gets := f.counts()
	assert.Equal(t, 3, streams)
	assert.Equal(t, 2, gets, "Get asked at each end without an exit")
}

func TestProcessesFollow_AStreamCutBeforeItsFirstLineStartsOver(t *testing.T) {
	f := newFollowFake(t, false, func(w http.ResponseWriter, r *http.Request, n int) {
		sseOpen(w)
		assert.Empty(t, r.Header.Get("Last-Event-ID"))
		if n == 1 {
			sseSend(w, ": hello\n\n")
			cut(w)
			return
		}
		sseSend(w, line(0, "stdout", "one"), "event: exit\ndata: {\"exit_code\":0}\n\n")
	}, processAnswer("running", "null"))
	events, err := follow(t, f.client(t))
	require.NoError(t, err, "nothing was yielded, so starting over repeats nothing")
	assert.Equal(t, []miosa.ExecEvent{stdout("one"), exitWith(0)}, events)
}

func TestProcessesFollow_ALineAfterTheLastIDCannotBeResumed(t *testing.T) {
	f := newFollowFake(t, false, func(w http.ResponseWriter, r *http.Request, n int) {
		sseOpen(w)
		sseSend(w, line(1, "stdout", "one"), line(0, "stdout", "two, without an id"))
		cut(w)
	}, processAnswer("running", "null"))
	events, err := follow(t, f.client(t))
	require.ErrorIs(t, err, miosa.ErrStreamGap, "resuming after 1 would repeat the line after it")
	assert.Equal(t, []miosa.ExecEvent{stdout("one"), stdout("two, without an id")}, events)
	streams, _ := f.counts()
	assert.Equal(t, 1, streams)
}

func TestProcessesFollow_AnIDOnALaterEventMakesItResumableAgain(t *testing.T) {
	f := newFollowFake(t, false, func(w http.ResponseWriter, r *http.Request, n int) {
		sseOpen(w)
		if n == 1 {
			sseSend(w, line(1, "stdout", "one"), line(0, "stdout", "two"), "id: 2\n: position\n\n")
			cut(w)
			return
		}
		assert.Equal(t, "2", r.Header.Get("Last-Event-ID"))
		sseSend(w, "event: exit\nid: 3\ndata: {\"exit_code\":0}\n\n")
	}, processAnswer("running", "null"))
	events, err := follow(t, f.client(t))
	require.NoError(t, err)
	assert.Equal(t, []miosa.ExecEvent{stdout("one"), stdout("two"), exitWith(0)}, events)
}

func TestProcessesFollow_AServerThatIgnoresLastEventIDRepeatsNothing(t *testing.T) {
	all := []string{line(1, "stdout", "one"), line(2, "stdout", "two"), line(3, "stdout", "three"),
		"event: exit\nid: 4\ndata: {\"exit_code\":0}\n\n"}
	f := newFollowFake(t, false, func(w http.ResponseWriter, r *http.Request, n int) {
		sseOpen(w)
		if n == 1 {
			sseSend(w, all[:2]...)
			cut(w)
			return
		}
		if n == 2 {
			sseSend(w, all[:1]...) // from the start again, and cut before it gets further
			cut(w)
			return
		}
		sseSend(w, all...)
	}, processAnswer("running", "null"))
	events, err := follow(t, f.client(t))
	require.NoError(t, err)
	assert.Equal(t, []miosa.ExecEvent{stdout("one"), stdout("two"), stdout("three"), exitWith(0)}, events)
	reqs := f.streamRequests()
	require.Len(t, reqs, 3)
	assert.Equal(t, "2", reqs[1].Header.Get("Last-Event-ID"))
	assert.Equal(t, "2", reqs[2].Header.Get("Last-Event-ID"), "the replayed id 1 did not move the position back")
}

func TestProcessesFollow_AStreamBrokenAfterTheProcessEndedIsReadToItsEnd(t *testing.T) {
	f := newFollowFake(t, false, func(w http.ResponseWriter, r *http.Request, n int) {
		sseOpen(w)
		if n == 1 {
			sseSend(w, line(1, "stdout", "one"))
			cut(w)
			return
		}
		sseSend(w, line(2, "stdout", "written before it ended"), "event: exit\nid: 3\ndata: {\"exit_code\":1}\n\n")
	}, processAnswer("exited", "1"))
	events, err := follow(t, f.client(t))
	require.NoError(t, err)
	assert.Equal(t, []miosa.ExecEvent{stdout("one"), stdout("written before it ended"), exitWith(1)}, events)
}

func TestProcessesFollow_AnEndedProcessIsNotReadAgainAndAgain(t *testing.T) {
	f := newFollowFake(t, false, func(w http.ResponseWriter, r *http.Request, n int) {
		sseOpen(w)
		sseSend(w, line(n, "stdout", "more")) // a new line every time, never the end
		cut(w)
	}, processAnswer("exited", "0"))
	events, err := follow(t, f.client(t))
	require.ErrorIs(t, err, miosa.ErrStreamGap)
	assert.Contains(t, err.Error(), "broke 6 times before its end")
	assert.Len(t, events, 6)
	streams, _ := f.counts()
	assert.Equal(t, 6, streams)
}

func TestProcessesFollow_AnExitCarryingAnErrorIsResumed(t *testing.T) {
	f := newFollowFake(t, false, func(w http.ResponseWriter, r *http.Request, n int) {
		sseOpen(w)
		if n == 1 {
			sseSend(w, line(1, "stdout", "one"),
				"event: exit\ndata: {\"exit_code\":-1,\"error\":{\"code\":\"STREAM_ABORTED\",\"message\":\"relay restarted\"}}\n\n")
			return
		}
		sseSend(w, "event: exit\nid: 2\ndata: {\"exit_code\":0}\n\n")
	}, processAnswer("running", "null"))
	events, err := follow(t, f.client(t))
	require.NoError(t, err)
	assert.Equal(t, []miosa.ExecEvent{stdout("one"), exitWith(0)}, events)
}

func TestProcessesFollow_AServerThatKeepsCuttingIsNotFollowedForever(t *testing.T) {
	f := newFollowFake(t, false, func(w http.ResponseWriter, r *http.Request, n int) {
		sseOpen(w)
		if n == 1 {
			sseSend(w, line(1, "stdout", "one"))
		}
		cut(w)
	}, processAnswer("running", "null"))
	events, err := follow(t, f.client(t))
	require.ErrorIs(t, err, miosa.ErrStreamGap)
	assert.Contains(t, err.Error(), "6 times in a row")
	assert.Equal(t, []miosa.ExecEvent{stdout("one")}, events)
	streams, _ := f.counts()
	assert.Equal(t, 7, streams, "the first connection, then five reconnects that brought nothing, then one more")
}

func TestProcessesFollow_ReconnectsWaitLongerAfterEachEmptyConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A stream fault cuts the connection at the stream's first write:
		// here the first heartbeat, a millisecond after it opened.
		srv := miosatest.NewServer(t, miosatest.WithInMemoryNetwork(), miosatest.WithBootDelay(0),
			miosatest.WithHeartbeatInterval(time.Millisecond))
		srv.HandleProcess("serve", miosatest.ProcessScript{UntilStopped: true})
		client := srv.Client(miosa.WithRetryDelay(time.Second, 8*time.Second))
		sb, err := client.Sandboxes.Create(t.Context(), miosa.ComputerCreateParams{})
		require.NoError(t, err)
		p, err := client.Processes.Start(t.Context(), sb.ID, miosa.ProcessStartParams{Command: "serve"})
		require.NoError(t, err)
		srv.Inject(miosatest.Fault{Method: "GET", Path: "/sandboxes/*/processes/*/stream", Drop: miosatest.DropMidAnswer, Times: miosatest.Always})
		start := time.Now()
		_, err = execStreamed(t, client.Processes.Follow(t.Context(), sb.ID, p.PID))
		require.ErrorIs(t, err, miosa.ErrStreamGap)
		elapsed := time.Since(start)
		// Backoff(1..5) between 1 s and 8 s with jitter: at least
		// 2+4+4+4+4 s, at most 4+8+8+8+8 s, and six milliseconds of
		// connections.
		assert.GreaterOrEqual(t, elapsed, 18*time.Second)
		assert.LessOrEqual(t, elapsed, 37*time.Second)
		assert.Len(t, srv.RequestsTo("GET", "/sandboxes/*/processes/*/stream"), 6)
	})
}

func TestProcessesFollow_ASteadyConnectionIsFollowedHoweverOftenItIsCut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := miosatest.NewServer(t, miosatest.WithInMemoryNetwork(), miosatest.WithBootDelay(0))
		srv.HandleProcess("quiet", miosatest.ProcessScript{
			Lines: []miosatest.ExecLine{{Text: "start"}, {Text: "end", Delay: 10 * time.Minute}}, ExitCode: 0,
		})
		client := srv.Client()
		sb, err := client.Sandboxes.Create(t.Context(), miosa.ComputerCreateParams{})
		require.NoError(t, err)
		p, err := client.Processes.Start(t.Context(), sb.ID, miosa.ProcessStartParams{Command: "quiet"})
		require.NoError(t, err)
		// A proxy that cuts every stream after 45 s, with nothing delivered
		// meanwhile: ten times in a row.
		srv.Inject(miosatest.Fault{
			Method: "GET", Path: "/sandboxes/*/processes/*/stream",
			Delay: 45 * time.Second, Drop: miosatest.DropMidAnswer, Times: 10,
		})
		events, err := execStreamed(t, client.Processes.Follow(t.Context(), sb.ID, p.PID))
		require.NoError(t, err)
		assert.Equal(t, []miosa.ExecEvent{stdout("start"), stdout("end"), exitWith(0)}, events)
	})
}

func TestProcessesFollow_NoStreamEndpointIsUnsupported(t *testing.T) {
	for _, status := range []int{http.StatusNotFound, http.StatusMethodNotAllowed} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			f := newFollowFake(t, false, func(w http.ResponseWriter, r *http.Request, n int) {
				writeStatus(w, status)
			}, processAnswer("running", "null"))
			events, err := follow(t, f.client(t, miosa.WithMaxRetries(3)))
			assert.Empty(t, events)
			require.ErrorIs(t, err, errors.ErrUnsupported)
			var apiErr *miosa.APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, status, apiErr.StatusCode)
			streams, _ := f.counts()
			assert.Equal(t, 1, streams, "a missing endpoint is not retried")
		})
	}
	t.Run("an unknown process is not found, not unsupported", func(t *testing.T) {
		f := newFollowFake(t, false, func(w http.ResponseWriter, r *http.Request, n int) {
			writeStatus(w, http.StatusNotFound)
		}, func(w http.ResponseWriter, n int) { writeStatus(w, http.StatusNotFound) })
		_, err := follow(t, f.client(t))
		require.ErrorIs(t, err, miosa.ErrNotFound)
		assert.NotErrorIs(t, err, errors.ErrUnsupported)
	})
}

func writeStatus(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`{"error":{"code":"NOT_FOUND","message":"no such thing"}}`))
}

func TestProcessesFollow_RefusalsAndFailuresAreYieldedOnce(t *testing.T) {
	t.Run("a 403", func(t *testing.T) {
		f := newFollowFake(t, false, func(w http.ResponseWriter, r *http.Request, n int) { writeStatus(w, 403) }, nil)
		_, err := follow(t, f.client(t))
		require.ErrorIs(t, err, miosa.ErrForbidden)
	})
	t.Run("a 503 is retried like any GET", func(t *testing.T) {
		f := newFollowFake(t, false, func(w http.ResponseWriter, r *http.Request, n int) {
			if n == 1 {
				writeStatus(w, 503)
				return
			}
			sseOpen(w)
			sseSend(w, "event: exit\ndata: {\"exit_code\":0}\n\n")
		}, nil)
		events, err := follow(t, f.client(t))
		require.NoError(t, err)
		assert.Equal(t, []miosa.ExecEvent{exitWith(0)}, events)
	})
	t.Run("a stream that is not one", func(t *testing.T) {
		f := newFollowFake(t, false, func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"data":"nope"}`))
		}, nil)
		_, err := follow(t, f.client(t))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "not text/event-stream")
	})
	t.Run("Get failing after the stream ended", func(t *testing.T) {
		f := newFollowFake(t, false, func(w http.ResponseWriter, r *http.Request, n int) {
			sseOpen(w)
			sseSend(w, line(1, "stdout", "one"))
		}, func(w http.ResponseWriter, n int) { writeStatus(w, 401) })
		events, err := follow(t, f.client(t))
		assert.Equal(t, []miosa.ExecEvent{stdout("one")}, events)
		require.ErrorIs(t, err, miosa.ErrUnauthorized)
		assert.Contains(t, err.Error(), "the stream ended before its exit")
	})
}

// processEndlessOutput streams a line every millisecond until the client
// goes away, then closes disconnected.
func processEndlessOutput(disconnected chan struct{}) func(w http.ResponseWriter, r *http.Request, n int) {
	return func(w http.ResponseWriter, r *http.Request, n int) {
		defer close(disconnected)
		sseOpen(w)
		for id := 1; ; id++ {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(time.Millisecond):
			}
			sseSend(w, line(id, "stdout", "more"))
		}
	}
}

func TestProcessesFollow_BreakClosesTheStreamAndLeavesNothingRunning(t *testing.T) {
	for _, http2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[http2], func(t *testing.T) {
			baseline := goleak.IgnoreCurrent()
			t.Cleanup(func() { goleak.VerifyNone(t, baseline) })
			disconnected := make(chan struct{})
			f := newFollowFake(t, http2, processEndlessOutput(disconnected), nil)
			n := 0
			for ev, err := range f.client(t).Processes.Follow(context.Background(), "sb_1", "7") {
				require.NoError(t, err)
				require.Equal(t, stdout("more"), ev)
				if n++; n == 3 {
					break
				}
			}
			select {
			case <-disconnected:
			case <-time.After(5 * time.Second):
				t.Fatal("the server still streams to a loop that ended")
			}
			require.Eventually(t, f.allConnectionsClosed, 5*time.Second, time.Millisecond)
			streams, gets := f.counts()
			assert.Equal(t, 1, streams)
			assert.Zero(t, gets)
		})
	}
}

func TestProcessesFollow_CancelMidStreamEndsItWithTheContextsError(t *testing.T) {
	baseline := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, baseline) })
	disconnected := make(chan struct{})
	f := newFollowFake(t, false, func(w http.ResponseWriter, r *http.Request, n int) {
		defer close(disconnected)
		sseOpen(w)
		sseSend(w, line(1, "stdout", "started"))
		<-r.Context().Done() // a process that writes nothing more
	}, nil)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	events, err := execStreamed(t, func(yield func(miosa.ExecEvent, error) bool) {
		for ev, err := range f.client(t).Processes.Follow(ctx, "sb_1", "7") {
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
	streams, gets := f.counts()
	assert.Equal(t, 1, streams)
	assert.Zero(t, gets, "nothing more is asked once the caller's context ended")
	require.Eventually(t, f.allConnectionsClosed, 5*time.Second, time.Millisecond)
}
