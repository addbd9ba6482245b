package miosatest_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

// processWait waits for a process of the fake to end, polling fast.
var processWait = miosa.WaitOptions{PollInterval: time.Millisecond, Timeout: 10 * time.Second}

// openProcessStream opens a process's stream by hand; lastEventID is sent
// as Last-Event-ID when not empty.
func openProcessStream(t *testing.T, srv *miosatest.Server, sandboxID, pid, lastEventID string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/sandboxes/"+sandboxID+"/processes/"+pid+"/stream", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+miosatest.TestAPIKey)
	req.Header.Set("Accept", "text/event-stream")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := srv.HTTPClient().Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// readStream reads a stream to its end and returns its bytes, and the
// error that ended it (nil for a clean end).
func readStream(resp *http.Response) (string, error) {
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

func finishedScript(srv *miosatest.Server) {
	srv.HandleProcess("build", miosatest.ProcessScript{
		Lines:    []miosatest.ExecLine{{Text: "one"}, {Text: "two", Stderr: true}, {Text: "three"}},
		ExitCode: 2,
	})
}

func TestProcesses_StartAnswersTheFixtureShapeAndEndsAsScripted(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	srv.HandleProcess("build", miosatest.ProcessScript{Lines: []miosatest.ExecLine{{Text: "one"}}, ExitCode: 2})
	id := sandbox(t, srv)
	res := call(t, srv, "POST", "/sandboxes/"+id+"/processes", `{"command":"build","name":"b","cwd":"/app"}`)
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	assert.Regexp(t, `^\{"data":\{"pid":1000,"name":"b","command":"build","cwd":"/app","status":"running",`+
		`"started_at":"[0-9T:.Z-]+","exit_code":null\}\}$`, string(res.body))

	client := srv.Client()
	p, err := client.Processes.Wait(t.Context(), id, "1000", processWait)
	require.NoError(t, err)
	assert.Equal(t, miosa.ProcessExited, p.Status)
	require.NotNil(t, p.ExitCode)
	assert.Equal(t, 2, *p.ExitCode)
	assert.Equal(t, "b", p.Name)
	logs, err := client.Processes.Logs(t.Context(), id, p.PID, miosa.ProcessLogsParams{})
	require.NoError(t, err)
	assert.Equal(t, "one\n", logs)
}

func TestProcesses_ListGetAndNotFound(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	client := srv.Client()
	id := sandbox(t, srv)
	for _, name := range []string{"a", "b"} {
		_, err := client.Processes.Start(t.Context(), id, miosa.ProcessStartParams{Command: "echo " + name, Name: name})
		require.NoError(t, err)
	}
	list, err := client.Processes.List(t.Context(), id)
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.Equal(t, []string{"1000", "1001"}, []string{list[0].PID, list[1].PID})
	assert.Equal(t, []string{"a", "b"}, []string{list[0].Name, list[1].Name})

	other := sandbox(t, srv)
	list, err = client.Processes.List(t.Context(), other)
	require.NoError(t, err)
	assert.Empty(t, list, "each sandbox has its own processes")

	_, err = client.Processes.Get(t.Context(), id, "999")
	assert.ErrorIs(t, err, miosa.ErrNotFound)
	_, err = client.Processes.Get(t.Context(), "cmp_missing", "1000")
	assert.ErrorIs(t, err, miosa.ErrNotFound)
	_, err = client.Processes.List(t.Context(), "cmp_missing")
	assert.ErrorIs(t, err, miosa.ErrNotFound)
}

func TestProcesses_UnscriptedCommandsAnswerLikeTheBlockingExec(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	srv.HandleExec("make", miosatest.ExecResult{Stdout: "built\n", Stderr: "warn\n", ExitCode: 4})
	client := srv.Client()
	id := sandbox(t, srv)
	for _, tc := range []struct {
		command, logs string
		code          int
	}{
		{"make", "built\nwarn\n", 4},
		{"echo hi there", "hi there\n", 0},
		{"nosuchtool", "", 127},
	} {
		p, err := client.Processes.Start(t.Context(), id, miosa.ProcessStartParams{Command: tc.command})
		require.NoError(t, err)
		p, err = client.Processes.Wait(t.Context(), id, p.PID, processWait)
		require.NoError(t, err)
		require.NotNil(t, p.ExitCode)
		assert.Equal(t, tc.code, *p.ExitCode, tc.command)
		if tc.logs != "" {
			logs, err := client.Processes.Logs(t.Context(), id, p.PID, miosa.ProcessLogsParams{})
			require.NoError(t, err)
			assert.Equal(t, tc.logs, logs)
		}
	}
}

func TestProcesses_StartRefusesWhatTheAPIWould(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(time.Hour))
	id := sandbox(t, srv)
	res := call(t, srv, "POST", "/sandboxes/"+id+"/processes", `{"command":"x"}`)
	assert.Equal(t, http.StatusConflict, res.status, "a sandbox still booting runs nothing")
	require.NoError(t, srv.SetStatus(id, miosa.StatusRunning))
	for body, want := range map[string]int{
		`{"command":"  "}`:                        http.StatusUnprocessableEntity,
		`{"command":"x","working_dir":"/"}`:       http.StatusUnprocessableEntity, // the wire says cwd
		`{"command":"x","timeout":-1}`:            http.StatusUnprocessableEntity,
		`{"command":"x","timeout":"1"}`:           http.StatusUnprocessableEntity,
		`[]`:                                      http.StatusBadRequest,
		`{"command":"echo","env":{"A":"1"}}`:      http.StatusOK,
		`{"command":"echo","timeout":30}`:         http.StatusOK,
		`{"command":"echo","name":null,"cwd":""}`: http.StatusOK,
	} {
		res := call(t, srv, "POST", "/sandboxes/"+id+"/processes", body)
		assert.Equal(t, want, res.status, "%s: %s", body, res.body)
	}
}

func TestProcesses_StreamCarriesIDsAndResumesAfterLastEventID(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	finishedScript(srv)
	_, id, pid := startProcess(t, srv, "build", true)

	resp := openProcessStream(t, srv, id, pid, "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	body, err := readStream(resp)
	require.NoError(t, err)
	assert.Equal(t, "event: stdout\nid: 1\ndata: {\"line\":\"one\"}\n\n"+
		"event: stderr\nid: 2\ndata: {\"line\":\"two\"}\n\n"+
		"event: stdout\nid: 3\ndata: {\"line\":\"three\"}\n\n"+
		"event: exit\nid: 4\ndata: {\"exit_code\":2}\n\n", body, "without Last-Event-ID: from the start")

	body, err = readStream(openProcessStream(t, srv, id, pid, "2"))
	require.NoError(t, err)
	assert.Equal(t, "event: stdout\nid: 3\ndata: {\"line\":\"three\"}\n\n"+
		"event: exit\nid: 4\ndata: {\"exit_code\":2}\n\n", body, "after Last-Event-ID 2")
}

func TestProcesses_StreamWithoutIDs(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	srv.HandleProcess("build", miosatest.ProcessScript{Lines: []miosatest.ExecLine{{Text: "one"}, {Text: "two"}}, NoEventIDs: true})
	_, id, pid := startProcess(t, srv, "build", true)
	body, err := readStream(openProcessStream(t, srv, id, pid, "1"))
	require.NoError(t, err)
	assert.Equal(t, "event: stdout\ndata: {\"line\":\"one\"}\n\nevent: stdout\ndata: {\"line\":\"two\"}\n\n"+
		"event: exit\ndata: {\"exit_code\":0}\n\n", body, "no ids, and Last-Event-ID means nothing")
}

func TestProcesses_StreamFollowsLinesAsTheyAreWritten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := miosatest.NewServer(t, miosatest.WithInMemoryNetwork(), miosatest.WithBootDelay(0), miosatest.WithHeartbeatInterval(time.Hour))
		srv.HandleProcess("serve", miosatest.ProcessScript{
			Lines:   []miosatest.ExecLine{{Text: "listening", Delay: time.Second}, {Text: "GET /", Delay: 2 * time.Second}},
			RunTime: 10 * time.Second,
		})
		client := srv.Client()
		id := sandbox(t, srv)
		p, err := client.Processes.Start(t.Context(), id, miosa.ProcessStartParams{Command: "serve"})
		require.NoError(t, err)
		start := time.Now()
		r := bufio.NewReader(openProcessStream(t, srv, id, p.PID, "").Body)
		var at []time.Duration
		for range 3 {
			readFrame(t, r)
			at = append(at, time.Since(start))
		}
		assert.Equal(t, []time.Duration{time.Second, 3 * time.Second, 10 * time.Second}, at, "each line as written, the exit at the run time")
	})
}

func TestProcesses_StreamCutAfterSomeEvents(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	srv.HandleProcess("build", miosatest.ProcessScript{
		Lines: []miosatest.ExecLine{{Text: "one"}, {Text: "two"}, {Text: "three"}}, CutStreamAfter: 2,
	})
	_, id, pid := startProcess(t, srv, "build", true)
	body, err := readStream(openProcessStream(t, srv, id, pid, ""))
	require.Error(t, err, "the connection is cut, not ended")
	assert.Equal(t, "event: stdout\nid: 1\ndata: {\"line\":\"one\"}\n\nevent: stdout\nid: 2\ndata: {\"line\":\"two\"}\n\n", body)
	body, err = readStream(openProcessStream(t, srv, id, pid, "2"))
	require.Error(t, err)
	assert.Equal(t, "event: stdout\nid: 3\ndata: {\"line\":\"three\"}\n\nevent: exit\nid: 4\ndata: {\"exit_code\":0}\n\n", body,
		"every connection is cut after two events")
}

func TestProcesses_StreamFaultCutsAtOnce(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	finishedScript(srv)
	_, id, pid := startProcess(t, srv, "build", false)
	srv.Inject(miosatest.Fault{Method: "GET", Path: "/sandboxes/*/processes/*/stream", Drop: miosatest.DropMidAnswer})
	resp := openProcessStream(t, srv, id, pid, "")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := readStream(resp)
	require.Error(t, err, "cut after the headers")
	assert.Empty(t, body)
}

func TestProcesses_StreamOfAnUnknownProcessIsNotFound(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	id := sandbox(t, srv)
	assert.Equal(t, http.StatusNotFound, openProcessStream(t, srv, id, "1000", "").StatusCode)
	assert.Equal(t, http.StatusNotFound, openProcessStream(t, srv, id, "abc", "").StatusCode)
}

func TestProcesses_StopKillsAScriptedProcess(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	srv.HandleProcess("serve", miosatest.ProcessScript{Lines: []miosatest.ExecLine{{Text: "listening"}}, UntilStopped: true})
	client, id, pid := startProcess(t, srv, "serve", false)
	got, err := client.Processes.Get(t.Context(), id, pid)
	require.NoError(t, err)
	assert.True(t, got.Running())

	require.NoError(t, client.Processes.Stop(t.Context(), id, pid))
	got, err = client.Processes.Wait(t.Context(), id, pid, processWait)
	require.NoError(t, err)
	assert.Equal(t, miosa.ProcessKilled, got.Status)
	require.NotNil(t, got.ExitCode)
	assert.Equal(t, 143, *got.ExitCode, "ended by SIGTERM")
	require.NoError(t, client.Processes.Stop(t.Context(), id, pid), "stopping an ended process is no error")
	assert.Equal(t, http.StatusNoContent, call(t, srv, "DELETE", "/sandboxes/"+id+"/processes/"+pid, "").status)
	assert.Equal(t, http.StatusNotFound, call(t, srv, "DELETE", "/sandboxes/"+id+"/processes/4242", "").status)
}

func TestProcesses_ScriptTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := miosatest.NewServer(t, miosatest.WithInMemoryNetwork(), miosatest.WithBootDelay(0))
		srv.HandleProcess("serve", miosatest.ProcessScript{UntilStopped: true})
		client := srv.Client()
		id := sandbox(t, srv)
		p, err := client.Processes.Start(t.Context(), id, miosa.ProcessStartParams{Command: "serve", Timeout: 30 * time.Second})
		require.NoError(t, err)
		start := time.Now()
		p, err = client.Processes.Wait(t.Context(), id, p.PID, miosa.WaitOptions{PollInterval: time.Second})
		require.NoError(t, err)
		// Killed at 30 s; the poll due at that instant may come first.
		assert.Contains(t, []time.Duration{30 * time.Second, 31 * time.Second}, time.Since(start))
		assert.Equal(t, miosa.ProcessKilled, p.Status)
		assert.Equal(t, 124, *p.ExitCode)
	})
}

func TestProcesses_EndWhenTheirMachineStopsOrIsDeleted(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	srv.HandleProcess("serve", miosatest.ProcessScript{UntilStopped: true})
	client := srv.Client()

	id := sandbox(t, srv)
	p, err := client.Processes.Start(t.Context(), id, miosa.ProcessStartParams{Command: "serve"})
	require.NoError(t, err)
	require.NoError(t, client.Computers.Stop(t.Context(), id))
	got, err := client.Processes.Wait(t.Context(), id, p.PID, processWait)
	require.NoError(t, err)
	assert.Equal(t, miosa.ProcessKilled, got.Status)
	assert.Equal(t, 137, *got.ExitCode)
	res := call(t, srv, "POST", "/sandboxes/"+id+"/processes/"+p.PID+"/stdin", `{"data":"x"}`)
	assert.Equal(t, http.StatusConflict, res.status, "an ended process reads nothing")

	id = sandbox(t, srv)
	p, err = client.Processes.Start(t.Context(), id, miosa.ProcessStartParams{Command: "serve"})
	require.NoError(t, err)
	resp := openProcessStream(t, srv, id, p.PID, "")
	require.NoError(t, client.Computers.Destroy(t.Context(), id))
	body, err := readStream(resp)
	require.NoError(t, err)
	assert.Equal(t, "event: exit\nid: 1\ndata: {\"exit_code\":137}\n\n", body, "an open stream sees the process end")
	_, err = client.Processes.Get(t.Context(), id, p.PID)
	assert.ErrorIs(t, err, miosa.ErrNotFound, "the machine is gone, and its processes with it")
}

func TestProcesses_EndWhenTheirMachineIsPausedOrFails(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	srv.HandleProcess("serve", miosatest.ProcessScript{UntilStopped: true})
	client := srv.Client()
	for name, leave := range map[string]func(id string){
		"paused": func(id string) {
			_, err := client.Sandboxes.Pause(t.Context(), id)
			require.NoError(t, err)
		},
		"failed": func(id string) { require.NoError(t, srv.SetStatus(id, miosa.StatusError)) },
	} {
		t.Run(name, func(t *testing.T) {
			id := sandbox(t, srv)
			p, err := client.Processes.Start(t.Context(), id, miosa.ProcessStartParams{Command: "serve"})
			require.NoError(t, err)
			leave(id)
			got, err := client.Processes.Wait(t.Context(), id, p.PID, processWait)
			require.NoError(t, err)
			assert.Equal(t, miosa.ProcessKilled, got.Status)
			assert.Equal(t, 137, *got.ExitCode)
			res := call(t, srv, "POST", "/sandboxes/"+id+"/processes/"+p.PID+"/stdin", `{"data":"x"}`)
			assert.Equal(t, http.StatusConflict, res.status, "an ended process reads nothing")
		})
	}
}

func TestProcesses_LogsKeepsTheTail(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	var lines []miosatest.ExecLine
	var want strings.Builder
	for i := range 300 {
		text := strings.Repeat("x", i%7) + "#" + string(rune('a'+i%26))
		lines = append(lines, miosatest.ExecLine{Text: text})
		if i >= 100 {
			want.WriteString(text + "\n")
		}
	}
	srv.HandleProcess("chatty", miosatest.ProcessScript{Lines: lines})
	client, id, pid := startProcess(t, srv, "chatty", true)

	logs, err := client.Processes.Logs(t.Context(), id, pid, miosa.ProcessLogsParams{})
	require.NoError(t, err)
	assert.Equal(t, want.String(), logs, "200 lines by default")
	logs, err = client.Processes.Logs(t.Context(), id, pid, miosa.ProcessLogsParams{Tail: 2})
	require.NoError(t, err)
	assert.Equal(t, lines[298].Text+"\n"+lines[299].Text+"\n", logs)
	assert.Equal(t, http.StatusBadRequest, call(t, srv, "GET", "/sandboxes/"+id+"/processes/"+pid+"/logs?tail=x", "").status)
}

func TestProcesses_EchoStdin(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	srv.HandleProcess("cat", miosatest.ProcessScript{UntilStopped: true, EchoStdin: true})
	client, id, pid := startProcess(t, srv, "cat", false)
	require.NoError(t, client.Processes.WriteStdin(t.Context(), id, pid, "hello\nworld\n"))
	logs, err := client.Processes.Logs(t.Context(), id, pid, miosa.ProcessLogsParams{})
	require.NoError(t, err)
	assert.Equal(t, "hello\nworld\n", logs)
	res := call(t, srv, "POST", "/sandboxes/"+id+"/processes/"+pid+"/stdin", `{"data":"x","extra":1}`)
	assert.Equal(t, http.StatusUnprocessableEntity, res.status)
}

// A user's test can prove that a start whose answer was lost is not sent
// again: the fault acts on the request, then drops the answer.
func TestProcesses_AStartWhoseAnswerIsLostRunsOnce(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	srv.HandleProcess("serve", miosatest.ProcessScript{UntilStopped: true, EchoStdin: true})
	client := srv.Client(miosa.WithMaxRetries(5))
	id := sandbox(t, srv)

	srv.Inject(miosatest.Fault{Method: "POST", Path: "/sandboxes/*/processes", Drop: miosatest.DropAfterAct})
	_, err := client.Processes.Start(t.Context(), id, miosa.ProcessStartParams{Command: "serve", Name: "web"})
	require.ErrorIs(t, err, miosa.ErrOutcomeUnknown)
	list, err := client.Processes.List(t.Context(), id)
	require.NoError(t, err)
	require.Len(t, list, 1, "started once, and found again by its name")
	assert.Equal(t, "web", list[0].Name)
	assert.True(t, list[0].Running())

	srv.Inject(miosatest.Fault{Method: "POST", Path: "/sandboxes/*/processes/*/stdin", Drop: miosatest.DropAfterAct})
	err = client.Processes.WriteStdin(t.Context(), id, list[0].PID, "once\n")
	require.ErrorIs(t, err, miosa.ErrOutcomeUnknown)
	logs, err := client.Processes.Logs(t.Context(), id, list[0].PID, miosa.ProcessLogsParams{})
	require.NoError(t, err)
	assert.Equal(t, "once\n", logs, "written once")
	assert.Len(t, srv.RequestsTo("POST", "/sandboxes/*/processes/*/stdin"), 1)
}

func TestLocalShell_ProcessReadsStdinAndExits(t *testing.T) {
	client, id := localShellSandbox(t)
	p, err := client.Processes.Start(t.Context(), id, miosa.ProcessStartParams{
		Command: `echo "ready $GREETING"; while read -r line; do [ "$line" = quit ] && exit 3; echo "got $line"; echo "err $line" >&2; done`,
		Env:     map[string]string{"GREETING": "hi"},
	})
	require.NoError(t, err)
	require.NoError(t, client.Processes.WriteStdin(t.Context(), id, p.PID, "a\n"))
	require.NoError(t, client.Processes.WriteStdin(t.Context(), id, p.PID, "quit\n"))
	p, err = client.Processes.Wait(t.Context(), id, p.PID, processWait)
	require.NoError(t, err)
	assert.Equal(t, miosa.ProcessExited, p.Status)
	assert.Equal(t, 3, *p.ExitCode)
	logs, err := client.Processes.Logs(t.Context(), id, p.PID, miosa.ProcessLogsParams{})
	require.NoError(t, err)
	// stdout and stderr are two pipes: the shell's order across them is
	// not kept, its order within each is.
	lines := strings.Split(strings.TrimSuffix(logs, "\n"), "\n")
	assert.ElementsMatch(t, []string{"ready hi", "got a", "err a"}, lines)
	assert.Less(t, slices.Index(lines, "ready hi"), slices.Index(lines, "got a"))
}

func TestLocalShell_StopSendsSIGTERM(t *testing.T) {
	client, id := localShellSandbox(t)
	p, err := client.Processes.Start(t.Context(), id, miosa.ProcessStartParams{
		Command: `trap 'echo bye; exit 0' TERM; echo up; while :; do sleep 0.01; done`,
	})
	require.NoError(t, err)
	waitForLogs(t, client, id, p.PID, "up\n")
	require.NoError(t, client.Processes.Stop(t.Context(), id, p.PID))
	p, err = client.Processes.Wait(t.Context(), id, p.PID, processWait)
	require.NoError(t, err)
	assert.Equal(t, miosa.ProcessKilled, p.Status)
	assert.Equal(t, 0, *p.ExitCode, "it ended on its own after SIGTERM")
	logs, err := client.Processes.Logs(t.Context(), id, p.PID, miosa.ProcessLogsParams{})
	require.NoError(t, err)
	assert.Contains(t, logs, "bye\n", "its trap ran")

	p, err = client.Processes.Start(t.Context(), id, miosa.ProcessStartParams{Command: `sleep 30`})
	require.NoError(t, err)
	require.NoError(t, client.Processes.Stop(t.Context(), id, p.PID))
	p, err = client.Processes.Wait(t.Context(), id, p.PID, processWait)
	require.NoError(t, err)
	assert.Equal(t, miosa.ProcessKilled, p.Status)
	assert.Equal(t, 143, *p.ExitCode, "killed by SIGTERM")
}

func TestLocalShell_StopKillsAProcessThatIgnoresSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the 5 s grace period")
	}
	client, id := localShellSandbox(t)
	p, err := client.Processes.Start(t.Context(), id, miosa.ProcessStartParams{
		Command: `trap '' TERM; echo up; while :; do sleep 0.01; done`,
	})
	require.NoError(t, err)
	waitForLogs(t, client, id, p.PID, "up\n")
	require.NoError(t, client.Processes.Stop(t.Context(), id, p.PID))
	got, err := client.Processes.Get(t.Context(), id, p.PID)
	require.NoError(t, err)
	assert.True(t, got.Running(), "SIGTERM is ignored")
	got, err = client.Processes.Wait(t.Context(), id, p.PID, processWait)
	require.NoError(t, err)
	assert.Equal(t, miosa.ProcessKilled, got.Status)
	assert.Equal(t, 137, *got.ExitCode, "SIGKILL after the grace period")
}

func TestLocalShell_ProcessesDieWithTheServer(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the local shell needs /bin/sh")
	}
	srv, err := miosatest.Start(miosatest.WithBootDelay(0), miosatest.WithLocalShell())
	require.NoError(t, err)
	client := srv.Client()
	c, err := client.Computers.Create(t.Context(), miosa.ComputerCreateParams{TemplateType: miosa.DefaultSandboxTemplate})
	require.NoError(t, err)
	_, err = client.Processes.Start(t.Context(), c.ID, miosa.ProcessStartParams{Command: `trap '' TERM; sleep 30`})
	require.NoError(t, err)
	done := make(chan error)
	go func() { done <- srv.Close() }()
	select {
	case err := <-done:
		require.NoError(t, err, "closed, the process killed, its directory removed")
	case <-time.After(10 * time.Second):
		t.Fatal("Close waits on a process that should have been killed")
	}
}

// localShellSandbox starts a server with the local shell and a running
// sandbox on it, or skips the test where there is no /bin/sh.
func localShellSandbox(t *testing.T) (*miosa.Client, string) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the local shell needs /bin/sh")
	}
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0), miosatest.WithLocalShell())
	return srv.Client(), sandbox(t, srv)
}

// startProcess starts command on a new sandbox of srv and, when ended is
// set, waits for the process to end. It returns a client, the sandbox's id
// and the process's pid.
func startProcess(t *testing.T, srv *miosatest.Server, command string, ended bool) (*miosa.Client, string, string) {
	t.Helper()
	client := srv.Client()
	id := sandbox(t, srv)
	p, err := client.Processes.Start(t.Context(), id, miosa.ProcessStartParams{Command: command})
	require.NoError(t, err)
	if ended {
		_, err = client.Processes.Wait(t.Context(), id, p.PID, processWait)
		require.NoError(t, err)
	}
	return client, id, p.PID
}

// waitForLogs polls a process's logs until they are want.
func waitForLogs(t *testing.T, client *miosa.Client, id, pid, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var logs string
	for ctx.Err() == nil {
		var err error
		logs, err = client.Processes.Logs(ctx, id, pid, miosa.ProcessLogsParams{})
		require.NoError(t, err)
		if logs == want {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("logs are %q, want %q", logs, want)
}

// A user's test can prove that output is neither lost nor repeated when the
// stream is cut mid-way: with event ids the client resumes where it broke.
func TestProcesses_FollowAcrossCutStreamsLosesNothing(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	var lines []miosatest.ExecLine
	var want []miosa.ExecEvent
	for i := range 10 {
		text := strings.Repeat("#", i+1)
		lines = append(lines, miosatest.ExecLine{Text: text, Stderr: i%3 == 0, Delay: time.Millisecond})
		kind := miosa.ExecStdout
		if i%3 == 0 {
			kind = miosa.ExecStderr
		}
		want = append(want, miosa.ExecEvent{Kind: kind, Line: text})
	}
	want = append(want, miosa.ExecEvent{Kind: miosa.ExecExit, ExitCode: 7})
	srv.HandleProcess("build", miosatest.ProcessScript{Lines: lines, ExitCode: 7, CutStreamAfter: 3})
	client, id, pid := startProcess(t, srv, "build", false)

	var got []miosa.ExecEvent
	for ev, err := range client.Processes.Follow(t.Context(), id, pid) {
		require.NoError(t, err)
		got = append(got, ev)
	}
	assert.Equal(t, want, got)
	streams := srv.RequestsTo("GET", "/sandboxes/*/processes/*/stream")
	require.Len(t, streams, 4, "cut after every three events")
	for i, r := range streams {
		assert.Equal(t, []string{"", "3", "6", "9"}[i], r.Header.Get("Last-Event-ID"))
	}
}

// Without event ids a cut stream cannot be resumed: the client says so.
func TestProcesses_FollowWithoutIDsReportsTheGap(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	srv.HandleProcess("serve", miosatest.ProcessScript{
		Lines: []miosatest.ExecLine{{Text: "one"}, {Text: "two"}}, UntilStopped: true, NoEventIDs: true, CutStreamAfter: 1,
	})
	client, id, pid := startProcess(t, srv, "serve", false)
	var got []miosa.ExecEvent
	var followErr error
	for ev, err := range client.Processes.Follow(t.Context(), id, pid) {
		if err != nil {
			followErr = err
			break
		}
		got = append(got, ev)
	}
	require.ErrorIs(t, followErr, miosa.ErrStreamGap)
	assert.Equal(t, []miosa.ExecEvent{{Kind: miosa.ExecStdout, Line: "one"}}, got)
	logs, err := client.Processes.Logs(t.Context(), id, pid, miosa.ProcessLogsParams{})
	require.NoError(t, err)
	assert.Equal(t, "one\ntwo\n", logs, "what the stream lost, the logs still have")
}

func TestLocalShell_FollowARealProcess(t *testing.T) {
	client, id := localShellSandbox(t)
	p, err := client.Processes.Start(t.Context(), id, miosa.ProcessStartParams{
		Command: `echo up; while read -r line; do echo "got $line"; [ "$line" = bye ] && exit 4; done`,
	})
	require.NoError(t, err)
	var got []miosa.ExecEvent
	for ev, err := range client.Processes.Follow(t.Context(), id, p.PID) {
		require.NoError(t, err)
		got = append(got, ev)
		if ev.Line == "up" {
			require.NoError(t, client.Processes.WriteStdin(t.Context(), id, p.PID, "hello\nbye\n"))
		}
	}
	assert.Equal(t, []miosa.ExecEvent{
		{Kind: miosa.ExecStdout, Line: "up"}, {Kind: miosa.ExecStdout, Line: "got hello"},
		{Kind: miosa.ExecStdout, Line: "got bye"}, {Kind: miosa.ExecExit, ExitCode: 4},
	}, got)
}
