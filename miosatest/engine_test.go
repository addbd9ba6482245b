package miosatest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// do serves one request on e directly, without a network, so it works
// inside a synctest bubble.
func do(t *testing.T, e *engine, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, "/api/v1"+path, r)
	req.Header.Set("Authorization", "Bearer msk_test")
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec
}

// object decodes the object of a JSON answer: its "data" member, or the
// whole body for an endpoint that answers bare.
func object(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var body map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), rec.Body.String())
	if inner, ok := body["data"].(map[string]any); ok {
		return inner
	}
	return body
}

func TestEngine_MachineBootsAfterExactlyTheBootDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngine(engineConfig{BootDelay: 3 * time.Second})
		defer e.Close()
		created := do(t, e, "POST", "/computers", `{"name":"a"}`)
		require.Equal(t, http.StatusCreated, created.Code)
		id := object(t, created)["id"].(string)
		assert.Equal(t, "creating", object(t, created)["status"])

		time.Sleep(3*time.Second - time.Nanosecond)
		assert.Equal(t, "creating", object(t, do(t, e, "GET", "/computers/"+id, ""))["status"])
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		got := object(t, do(t, e, "GET", "/computers/"+id, ""))
		assert.Equal(t, "running", got["status"])
		assert.NotEmpty(t, got["ip_address"])
	})
}

func TestEngine_StopOvertakesABootInProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngine(engineConfig{BootDelay: time.Second})
		defer e.Close()
		id := object(t, do(t, e, "POST", "/computers", ""))["id"].(string)
		require.Equal(t, http.StatusOK, do(t, e, "POST", "/computers/"+id+"/stop", "").Code)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		assert.Equal(t, "stopped", object(t, do(t, e, "GET", "/computers/"+id, ""))["status"])
	})
}

func TestEngine_BuildMovesQueuedBuildingSucceeded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngine(engineConfig{BuildStepDelay: time.Second})
		defer e.Close()
		tpl := object(t, do(t, e, "POST", "/sandbox-templates", `{"name":"n","build_spec":{"runtime":"node"}}`))
		tplID := tpl["id"].(string)
		assert.Equal(t, "pending", tpl["status"])
		b := object(t, do(t, e, "POST", "/sandbox-templates/"+tplID+"/builds", `{}`))
		assert.Equal(t, "queued", b["status"])
		assert.Nil(t, b["started_at"])

		statusAt := func() string {
			var list struct {
				Data []map[string]any `json:"data"`
			}
			rec := do(t, e, "GET", "/sandbox-templates/"+tplID+"/builds", "")
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &list))
			require.Len(t, list.Data, 1)
			return list.Data[0]["status"].(string)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		assert.Equal(t, "building", statusAt())
		time.Sleep(time.Second)
		synctest.Wait()
		assert.Equal(t, "ready", statusAt())
		got := object(t, do(t, e, "GET", "/sandbox-templates/"+tplID, ""))
		assert.Equal(t, "ready", got["status"])
		assert.Contains(t, got["image_ref"], tplID)
	})
}

func TestEngine_BuildStatesMoveThroughTheSevenStateFlow(t *testing.T) {
	for _, tc := range []struct {
		name              string
		fail              bool
		final, tplOutcome string
	}{{"success", false, "ready", "ready"}, {"failure", true, "failed", "failed"}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEngine(engineConfig{BuildStepDelay: time.Second, BuildStates: true})
				defer e.Close()
				if tc.fail {
					e.FailBuilds(1, "npm install exited 1")
				}
				tplID := object(t, do(t, e, "POST", "/sandbox-templates", `{"name":"n","build_spec":{"runtime":"node"}}`))["id"].(string)
				b := object(t, do(t, e, "POST", "/sandbox-templates/"+tplID+"/builds", `{}`))
				buildAt := func() map[string]any {
					var list struct {
						Data []map[string]any `json:"data"`
					}
					rec := do(t, e, "GET", "/sandbox-templates/"+tplID+"/builds", "")
					require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &list))
					require.Len(t, list.Data, 1)
					return list.Data[0]
				}
				states := []any{b["state"]}
				for range 4 {
					time.Sleep(time.Second)
					synctest.Wait()
					states = append(states, buildAt()["state"])
				}
				assert.Equal(t, []any{"queued", "building", "certifying", "snapshotting", tc.final}, states)
				last := buildAt()
				assert.Equal(t, tplID, last["sandbox_template_id"])
				for _, older := range []string{"status", "template_id", "error"} {
					assert.NotContains(t, last, older)
				}
				if tc.fail {
					assert.Equal(t, "BUILD_FAILED", last["error_code"])
					assert.Equal(t, "npm install exited 1", last["error_message"])
				} else {
					assert.Nil(t, last["error_code"])
				}
				assert.Equal(t, tc.tplOutcome, object(t, do(t, e, "GET", "/sandbox-templates/"+tplID, ""))["state"])
			})
		})
	}
}

// streamUntilDone serves the readiness stream of id in the bubble and
// returns what it wrote once the handler has returned.
func streamUntilDone(t *testing.T, e *engine, ctx context.Context, id string) (*httptest.ResponseRecorder, <-chan struct{}) {
	req := httptest.NewRequestWithContext(ctx, "GET", "/api/v1/sandboxes/"+id+"/readiness/stream", nil)
	req.Header.Set("Authorization", "Bearer msk_test")
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.ServeHTTP(rec, req)
	}()
	return rec, done
}

func TestEngine_StreamSendsHeartbeatsThenReadyTheMomentItBoots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngine(engineConfig{BootDelay: 3500 * time.Millisecond, HeartbeatInterval: time.Second})
		defer e.Close()
		id := object(t, do(t, e, "POST", "/computers", ""))["id"].(string)
		start := time.Now()
		rec, done := streamUntilDone(t, e, t.Context(), id)
		<-done
		assert.Equal(t, 3500*time.Millisecond, time.Since(start), "ready is sent when the machine boots")
		assert.Equal(t, "text/event-stream", rec.Header().Get("Content-Type"))
		body := rec.Body.String()
		assert.Equal(t, 4, strings.Count(body, ": keepalive\n\n"), body)
		assert.Contains(t, body, "event: ready\ndata: {\"ready_at\":\"")
		assert.True(t, strings.HasSuffix(body, "\"}\n\n"), body)
	})
}

func TestEngine_StreamTimesOutAfterTheConfiguredLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngine(engineConfig{BootDelay: time.Hour, StreamTimeout: 30 * time.Second, HeartbeatInterval: 10 * time.Second})
		defer e.Close()
		id := object(t, do(t, e, "POST", "/computers", ""))["id"].(string)
		start := time.Now()
		rec, done := streamUntilDone(t, e, t.Context(), id)
		<-done
		assert.Equal(t, 30*time.Second, time.Since(start))
		assert.True(t, strings.HasSuffix(rec.Body.String(),
			"event: timeout\ndata: {\"reason\":\"not_ready_after_30s\"}\n\n"), rec.Body.String())
	})
}

func TestEngine_StreamEndsWhenTheClientGoesAwayOrTheEngineCloses(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(cancel context.CancelFunc, e *engine)
	}{
		{"client gone", func(cancel context.CancelFunc, _ *engine) { cancel() }},
		{"engine closed", func(_ context.CancelFunc, e *engine) { e.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEngine(engineConfig{BootDelay: time.Hour, StreamTimeout: time.Hour})
				defer e.Close()
				id := object(t, do(t, e, "POST", "/computers", ""))["id"].(string)
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				rec, done := streamUntilDone(t, e, ctx, id)
				time.Sleep(time.Minute)
				synctest.Wait()
				tc.end(cancel, e)
				<-done
				assert.NotContains(t, rec.Body.String(), "event:")
			})
		})
	}
}

func TestEngine_StreamFaultsWithholdTheVerdict(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngine(engineConfig{StreamTimeout: time.Second, HeartbeatInterval: 100 * time.Millisecond})
		defer e.Close()
		id := object(t, do(t, e, "POST", "/computers", ""))["id"].(string) // running at once

		ctx := withStreamFault(t.Context(), StreamEndWithoutVerdict)
		rec, done := streamUntilDone(t, e, ctx, id)
		<-done
		assert.Equal(t, ": keepalive\n\n", rec.Body.String())

		ctx, cancel := context.WithCancel(withStreamFault(t.Context(), StreamStall))
		rec, done = streamUntilDone(t, e, ctx, id)
		time.Sleep(time.Minute) // far past the stream's own timeout
		synctest.Wait()
		cancel()
		<-done
		assert.NotContains(t, rec.Body.String(), "event:")
		assert.Greater(t, strings.Count(rec.Body.String(), ": keepalive"), 500)
	})
}

func TestEngine_TimersStopWhenTheEngineCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngine(engineConfig{BootDelay: time.Hour, BuildStepDelay: time.Hour})
		id := object(t, do(t, e, "POST", "/computers", ""))["id"].(string)
		tpl := object(t, do(t, e, "POST", "/sandbox-templates", `{"name":"n","build_spec":{"runtime":"go"}}`))
		do(t, e, "POST", "/sandbox-templates/"+tpl["id"].(string)+"/builds", "")
		e.Close()
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		status, _ := e.Status(id)
		assert.Equal(t, "creating", status)
	})
}

func TestMatchPath_MatchesSegmentBySegment(t *testing.T) {
	for _, tc := range []struct {
		pattern, path string
		want          bool
	}{
		{"/computers", "/computers", true},
		{"/computers", "/computers/", true},
		{"/computers/*", "/computers/cmp_1", true},
		{"/computers/*", "/computers", false},
		{"/computers/*/exec", "/computers/cmp_1/exec", true},
		{"/computers/*/exec", "/computers/cmp_1/exec/python", false},
		{"/computers/*/exec", "/computers/cmp_1/start", false},
		{"/sandboxes/*/readiness/stream", "/sandboxes/x/readiness/stream", true},
	} {
		assert.Equal(t, tc.want, matchPath(tc.pattern, tc.path), "%s vs %s", tc.pattern, tc.path)
	}
}

func TestEchoArgs_RemovesQuotesAndJoinsWords(t *testing.T) {
	for in, want := range map[string]string{
		" hi":                   "hi",
		"  a   b ":              "a b",
		` "hello world"`:        "hello world",
		` 'it''s' x`:            "its x",
		` a"b c"d`:              "ab cd",
		"":                      "",
		` "$HOME" not-expanded`: "$HOME not-expanded",
	} {
		assert.Equal(t, want, echoArgs(in), "echo%s", in)
	}
}

func TestEngine_DeletingAMachineRemovesItsFilesProcessesAndScreen(t *testing.T) {
	e := newEngine(engineConfig{})
	defer e.Close()
	defer func() { require.NoError(t, e.Cleanup()) }()
	keep := object(t, do(t, e, "POST", "/computers", `{"name":"keep","template_type":"miosa-sandbox"}`))["id"].(string)
	gone := object(t, do(t, e, "POST", "/computers", `{"name":"gone","template_type":"miosa-desktop"}`))["id"].(string)
	for _, id := range []string{keep, gone} {
		require.NoError(t, e.WriteFile(id, "notes.txt", []byte(id)))
	}
	require.Equal(t, http.StatusOK, do(t, e, "POST", "/sandboxes/"+gone+"/processes", `{"command":"echo hi"}`).Code)
	require.Equal(t, http.StatusOK, do(t, e, "GET", "/computers/"+gone+"/desktop/cursor", "").Code)
	e.mu.Lock()
	require.Contains(t, e.desktops, gone)
	e.mu.Unlock()
	e.procs.mu.Lock()
	require.Contains(t, e.procs.bySandbox, gone)
	e.procs.mu.Unlock()
	goneDir := filepath.Join(e.shell.root, gone)
	require.DirExists(t, goneDir)

	require.Equal(t, http.StatusOK, do(t, e, "DELETE", "/computers/"+gone+"?force=true", "").Code)
	assert.NoDirExists(t, goneDir)
	e.mu.Lock()
	assert.NotContains(t, e.desktops, gone, "its screen goes with it")
	e.mu.Unlock()
	e.procs.mu.Lock()
	assert.NotContains(t, e.procs.bySandbox, gone, "its processes go with it")
	e.procs.mu.Unlock()
	got, err := e.ReadFile(keep, "notes.txt")
	require.NoError(t, err, "another machine's files stay")
	assert.Equal(t, keep, string(got))
}

func TestFailQueue_RunsOfReasonsInOrderHeldAsCounts(t *testing.T) {
	var q failQueue
	q.add(2, "a")
	q.add(0, "never")
	q.add(1<<40, "b") // a count, not a trillion entries
	for _, want := range []string{"a", "a", "b", "b"} {
		got, ok := q.next()
		require.True(t, ok)
		assert.Equal(t, want, got)
	}
	assert.Len(t, q.runs, 1)
	var empty failQueue
	_, ok := empty.next()
	assert.False(t, ok)
}
