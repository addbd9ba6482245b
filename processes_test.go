package miosa

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestProcesses_RequestShapes(t *testing.T) {
	const proc = `{"data":{"pid":1234,"status":"running"}}`
	cases := []struct {
		name       string
		call       func(c *Client) error
		answer     string
		method     string
		uri        string
		body       string // JSON, when one is sent
		wantNoBody bool
	}{
		{"start sends only what is set", func(c *Client) error {
			_, err := c.Processes.Start(t.Context(), "sb_1", ProcessStartParams{Command: "npm run dev"})
			return err
		}, proc, "POST", "/api/v1/sandboxes/sb_1/processes", `{"command":"npm run dev"}`, false},
		{"start sends every field, the timeout in whole seconds rounded up", func(c *Client) error {
			_, err := c.Processes.Start(t.Context(), "sb_1", ProcessStartParams{
				Command: "npm run dev", Name: "web", WorkingDir: "/app", Env: map[string]string{"PORT": "3000"},
				Timeout: 90*time.Second + time.Millisecond,
			})
			return err
		}, proc, "POST", "/api/v1/sandboxes/sb_1/processes",
			`{"command":"npm run dev","name":"web","cwd":"/app","env":{"PORT":"3000"},"timeout":91}`, false},
		{"get", func(c *Client) error { _, err := c.Processes.Get(t.Context(), "sb_1", "1234"); return err },
			proc, "GET", "/api/v1/sandboxes/sb_1/processes/1234", "", true},
		{"list", func(c *Client) error { _, err := c.Processes.List(t.Context(), "sb_1"); return err },
			`{"data":[]}`, "GET", "/api/v1/sandboxes/sb_1/processes", "", true},
		{"stop", func(c *Client) error { return c.Processes.Stop(t.Context(), "sb_1", "1234") },
			``, "DELETE", "/api/v1/sandboxes/sb_1/processes/1234", "", true},
		{"logs without a tail sends no query", func(c *Client) error {
			_, err := c.Processes.Logs(t.Context(), "sb_1", "1234", ProcessLogsParams{})
			return err
		}, `{"data":""}`, "GET", "/api/v1/sandboxes/sb_1/processes/1234/logs", "", true},
		{"logs with a tail", func(c *Client) error {
			_, err := c.Processes.Logs(t.Context(), "sb_1", "1234", ProcessLogsParams{Tail: 50})
			return err
		}, `{"data":""}`, "GET", "/api/v1/sandboxes/sb_1/processes/1234/logs?tail=50", "", true},
		{"stdin", func(c *Client) error { return c.Processes.WriteStdin(t.Context(), "sb_1", "1234", "y\n") },
			`{"ok":true}`, "POST", "/api/v1/sandboxes/sb_1/processes/1234/stdin", `{"data":"y\n"}`, false},
		{"ids are escaped into one segment each", func(c *Client) error {
			_, err := c.Processes.Get(t.Context(), "sb/1", "12?x")
			return err
		}, proc, "GET", "/api/v1/sandboxes/sb%2F1/processes/12%3Fx", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if tc.answer == "" {
					w.WriteHeader(http.StatusNoContent)
					return
				}
				writeJSON(w, 200, tc.answer)
			})
			require.NoError(t, tc.call(newTestClient(t, base)))
			reqs := rec.requests()
			require.Len(t, reqs, 1)
			r := reqs[0]
			assert.Equal(t, tc.method, r.Method)
			assert.Equal(t, tc.uri, r.RequestURI)
			assert.Equal(t, "application/json", r.Header.Get("Accept"))
			assert.Empty(t, r.Header.Get("Idempotency-Key"), "no process call is a keyed create")
			if tc.wantNoBody {
				assert.Empty(t, r.Body)
				assert.Empty(t, r.Header.Get("Content-Type"))
				return
			}
			assert.JSONEq(t, tc.body, string(r.Body))
			assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
		})
	}
}

func TestProcesses_DecodeEveryShapeOfAProcess(t *testing.T) {
	code := func(n int) *int { return &n }
	cases := []struct {
		name, body string
		want       Process
	}{
		{"the Python fixture: an integer pid under data", `{"data":{"pid":1234,"status":"running","exit_code":null}}`,
			Process{PID: "1234", Status: ProcessRunning}},
		{"a string pid, bare", `{"pid":"p-7","name":"web","command":"npm run dev","status":"exited","exit_code":3,` +
			`"started_at":"2026-05-18T10:00:00Z","future":{"x":1}}`,
			Process{PID: "p-7", Name: "web", Command: "npm run dev", Status: ProcessExited, ExitCode: code(3),
				StartedAt: time.Date(2026, 5, 18, 10, 0, 0, 0, time.UTC)}},
		{"under process", `{"process":{"pid":5,"status":"killed","exit_code":143}}`,
			Process{PID: "5", Status: ProcessKilled, ExitCode: code(143)}},
		{"an unknown status is kept", `{"pid":5,"status":"zombie"}`, Process{PID: "5", Status: "zombie"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 200, tc.body) })
			got, err := newTestClient(t, base).Processes.Get(t.Context(), "sb_1", "1")
			require.NoError(t, err)
			assert.NotEmpty(t, got.Raw)
			got.Raw = nil
			tc.want.SandboxID = "sb_1"
			assert.Equal(t, &tc.want, got)
		})
	}
}

func TestProcesses_AnAnswerThatNamesNoProcessIsAnError(t *testing.T) {
	for _, body := range []string{
		`{"data":{}}`, // the official Go SDK reads this as an empty process
		`{"data":{"pid":null,"status":"running"}}`, // no pid to find it again by
		`{"pid":1.5}`,                 // a pid that is no id
		`{"pid":1,"exit_code":"0"}`,   // an exit code that is not a number
		`{"pid":1,"exit_code":1e400}`, // nor this one
		``,                            // nothing at all
	} {
		t.Run(body, func(t *testing.T) {
			_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 200, body) })
			c := newTestClient(t, base)
			_, err := c.Processes.Start(t.Context(), "sb_1", ProcessStartParams{Command: "x"})
			require.Error(t, err)
			assert.Contains(t, err.Error(), "decoding the response")
			_, err = c.Processes.Get(t.Context(), "sb_1", "1")
			require.Error(t, err)
		})
	}
}

func TestProcesses_ListReadsEveryEnvelopeAndSetsTheSandbox(t *testing.T) {
	for _, body := range []string{
		`{"data":[{"pid":1},{"pid":"2"}]}`,
		`[{"pid":1},{"pid":"2"}]`,
		`{"processes":[{"pid":1},{"pid":"2"}]}`,
		`{"items":[{"pid":1},{"pid":"2"}],"meta":{"total":2}}`,
	} {
		t.Run(body, func(t *testing.T) {
			_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 200, body) })
			got, err := newTestClient(t, base).Processes.List(t.Context(), "sb_1")
			require.NoError(t, err)
			require.Len(t, got, 2)
			for i, want := range []string{"1", "2"} {
				assert.Equal(t, want, got[i].PID)
				assert.Equal(t, "sb_1", got[i].SandboxID)
			}
		})
	}
}

func TestProcess_Running(t *testing.T) {
	zero := 0
	for _, tc := range []struct {
		p    Process
		want bool
	}{
		{Process{Status: ProcessRunning}, true},
		{Process{}, true}, // no status and no exit code: nothing says it ended
		{Process{ExitCode: &zero}, false},
		{Process{Status: ProcessExited, ExitCode: &zero}, false},
		{Process{Status: ProcessKilled}, false},
		{Process{Status: ProcessFailed}, false},
		{Process{Status: "zombie"}, false},
	} {
		assert.Equal(t, tc.want, tc.p.Running(), "%+v", tc.p)
	}
}

func TestProcesses_LogsReadsEveryForm(t *testing.T) {
	cases := []struct {
		name, contentType, body string
	}{
		{"under data", "application/json", `{"data":"line1\nline2\n"}`},
		{"under logs", "application/json", `{"logs":"line1\nline2\n","truncated":false}`},
		{"a JSON string", "application/json; charset=utf-8", `"line1\nline2\n"`},
		{"plain text", "text/plain; charset=utf-8", "line1\nline2\n"},
		{"plain text that looks like JSON is still text", "text/plain", "line1\nline2\n"},
		{"under logs inside data", "application/json", `{"data":{"logs":"line1\nline2\n","tail":200}}`},
		{"JSON without a content type", "", `{"logs":"line1\nline2\n"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				w.Header()["Content-Type"] = []string{tc.contentType}
				_, _ = w.Write([]byte(tc.body))
			})
			got, err := newTestClient(t, base).Processes.Logs(t.Context(), "sb_1", "1", ProcessLogsParams{})
			require.NoError(t, err)
			assert.Equal(t, "line1\nline2\n", got)
		})
	}
	t.Run("JSON text under a type of its own is text", func(t *testing.T) {
		got, err := decodeLogs("text/plain", []byte(`{"level":"info"}`+"\n"))
		require.NoError(t, err)
		assert.Equal(t, `{"level":"info"}`+"\n", got)
	})
	t.Run("an empty answer is no logs", func(t *testing.T) {
		got, err := decodeLogs("application/json", nil)
		require.NoError(t, err)
		assert.Empty(t, got)
	})
}

func TestProcesses_LogsRefusesJSONWithoutText(t *testing.T) {
	for _, body := range []string{`{"data":[1,2]}`, `{"lines":"x"}`, `[1]`, `{"data":{"x":1}}`, `{"logs":`} {
		_, err := decodeLogs("application/json", []byte(body))
		assert.Error(t, err, body)
	}
}

func TestProcesses_LogsAreBoundedByTheResponseSizeLimit(t *testing.T) {
	_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(strings.Repeat("x", 4096)))
	})
	_, err := newTestClient(t, base, WithMaxResponseSize(1024)).Processes.Logs(t.Context(), "sb_1", "1", ProcessLogsParams{})
	require.ErrorIs(t, err, errBodyTooLarge)
}

func TestProcesses_BadArgumentsFailBeforeAnyRequest(t *testing.T) {
	rec, base := newRecordingServer(t, nil)
	c := newTestClient(t, base)
	ctx := t.Context()
	calls := map[string]func() error{
		"start: empty sandbox": func() error { _, err := c.Processes.Start(ctx, "", ProcessStartParams{Command: "x"}); return err },
		"start: empty command": func() error { _, err := c.Processes.Start(ctx, "sb_1", ProcessStartParams{Command: "  "}); return err },
		"start: negative timeout": func() error {
			_, err := c.Processes.Start(ctx, "sb_1", ProcessStartParams{Command: "x", Timeout: -time.Second})
			return err
		},
		"get: empty pid":            func() error { _, err := c.Processes.Get(ctx, "sb_1", ""); return err },
		"get: a pid that climbs up": func() error { _, err := c.Processes.Get(ctx, "sb_1", ".."); return err },
		"list: empty sandbox":       func() error { _, err := c.Processes.List(ctx, " "); return err },
		"stop: empty pid":           func() error { return c.Processes.Stop(ctx, "sb_1", "") },
		"stop: empty sandbox":       func() error { return c.Processes.Stop(ctx, "", "1") },
		"logs: negative tail": func() error {
			_, err := c.Processes.Logs(ctx, "sb_1", "1", ProcessLogsParams{Tail: -1})
			return err
		},
		"logs: empty pid":     func() error { _, err := c.Processes.Logs(ctx, "sb_1", "", ProcessLogsParams{}); return err },
		"stdin: empty pid":    func() error { return c.Processes.WriteStdin(ctx, "sb_1", "", "x") },
		"stdin: nothing":      func() error { return c.Processes.WriteStdin(ctx, "sb_1", "1", "") },
		"wait: empty pid":     func() error { _, err := c.Processes.Wait(ctx, "sb_1", "", WaitOptions{}); return err },
		"wait: empty sandbox": func() error { _, err := c.Processes.Wait(ctx, "", "1", WaitOptions{}); return err },
		"wait: negative timeout": func() error {
			_, err := c.Processes.Wait(ctx, "sb_1", "1", WaitOptions{Timeout: -1})
			return err
		},
		"follow: empty pid": func() error {
			for _, err := range c.Processes.Follow(ctx, "sb_1", "") {
				return err
			}
			return nil
		},
		"follow: empty sandbox": func() error {
			for _, err := range c.Processes.Follow(ctx, "", "1") {
				return err
			}
			return nil
		},
	}
	for name, call := range calls {
		err := call()
		assert.ErrorIs(t, err, ErrInvalidParams, name)
	}
	assert.Zero(t, rec.count(), "no request was sent")
}

// dropEvery answers nothing: the connection is cut once the request has
// arrived, as when an answer is lost on its way back.
func dropEvery(w http.ResponseWriter, r *http.Request, n int) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

func TestProcesses_StartAndStdinAreNeverSentTwice(t *testing.T) {
	calls := map[string]func(c *Client) error{
		"start": func(c *Client) error {
			_, err := c.Processes.Start(t.Context(), "sb_1", ProcessStartParams{Command: "npm run dev"})
			return err
		},
		"stdin": func(c *Client) error { return c.Processes.WriteStdin(t.Context(), "sb_1", "7", "y\n") },
	}
	for name, call := range calls {
		t.Run(name+": a lost answer is an unknown outcome", func(t *testing.T) {
			rec := &recorder{respond: dropEvery}
			srv := httptest.NewServer(rec)
			t.Cleanup(srv.Close)
			err := call(newTestClient(t, srv.URL+"/api/v1", WithMaxRetries(5)))
			require.ErrorIs(t, err, ErrOutcomeUnknown)
			assert.Equal(t, 1, rec.count(), "sent once")
		})
		t.Run(name+": a 503 is not retried", func(t *testing.T) {
			rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				writeJSON(w, 503, `{"error":"upstream failed"}`)
			})
			err := call(newTestClient(t, base, WithMaxRetries(5)))
			require.ErrorIs(t, err, ErrServer)
			assert.NotErrorIs(t, err, ErrOutcomeUnknown, "the server answered")
			assert.Equal(t, 1, rec.count())
		})
		t.Run(name+": a 429 or a retryable answer is retried", func(t *testing.T) {
			rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				switch n {
				case 1:
					writeJSON(w, 429, `{"error":"slow down"}`)
				case 2:
					writeJSON(w, 409, `{"error":{"code":"SANDBOX_STARTING","message":"booting","retryable":true,"retry_after_ms":0}}`)
				default:
					writeJSON(w, 200, `{"data":{"pid":7,"status":"running"}}`)
				}
			})
			require.NoError(t, call(newTestClient(t, base)))
			assert.Equal(t, 3, rec.count())
		})
	}
}

func TestProcesses_StartSetsTheSandboxOnTheProcess(t *testing.T) {
	_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, 200, `{"data":{"pid":1234,"status":"running","exit_code":null}}`)
	})
	p, err := newTestClient(t, base).Processes.Start(t.Context(), "sb_1", ProcessStartParams{Command: "x"})
	require.NoError(t, err)
	assert.Equal(t, "sb_1", p.SandboxID)
	assert.Equal(t, "1234", p.PID)
	assert.True(t, p.Running())
	assert.Nil(t, p.ExitCode)
	assert.JSONEq(t, `{"pid":1234,"status":"running","exit_code":null}`, string(p.Raw))
}

func TestProcesses_StopRetriedAfterALostAnswerCountsA404AsDone(t *testing.T) {
	rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			dropEvery(w, r, n)
			return
		}
		writeJSON(w, 404, `{"error":{"code":"NOT_FOUND","message":"no such process"}}`)
	})
	require.NoError(t, newTestClient(t, base).Processes.Stop(t.Context(), "sb_1", "7"))
	assert.Equal(t, 2, rec.count())
	for _, r := range rec.requests() {
		assert.Equal(t, "DELETE", r.Method)
	}
}

func TestProcesses_StopAnswered404AtOnceIsNotFound(t *testing.T) {
	_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, 404, `{"error":{"code":"NOT_FOUND","message":"no such process"}}`)
	})
	assert.ErrorIs(t, newTestClient(t, base).Processes.Stop(t.Context(), "sb_1", "7"), ErrNotFound)
}

// processServer answers GET /sandboxes/sb_1/processes/7 with the states in
// order, the last one forever: "running", "exited:N" (with exit code N),
// "killed", or an HTTP status.
func processServer(answers ...string) *recorder {
	return &recorder{respond: func(w http.ResponseWriter, r *http.Request, n int) {
		a := answers[min(n, len(answers))-1]
		status, code, hasCode := strings.Cut(a, ":")
		switch status {
		case "running", "killed", "exited", "":
		default:
			writeJSON(w, map[string]int{"404": 404, "503": 503, "401": 401}[status], `{"error":"status `+status+`"}`)
			return
		}
		exit := "null"
		if hasCode {
			exit = code
		}
		body, _ := json.Marshal(map[string]any{"pid": 7, "status": status, "exit_code": json.RawMessage(exit)})
		writeJSON(w, 200, string(body))
	}}
}

func TestProcessesWait(t *testing.T) {
	cases := []struct {
		name    string
		answers []string
		opts    WaitOptions
		polls   int
		elapsed time.Duration
		check   func(t *testing.T, p *Process, err error)
	}{
		{"returns the process once it ended", []string{"running", "running", "exited:3"}, WaitOptions{}, 3, 2 * time.Second,
			func(t *testing.T, p *Process, err error) {
				require.NoError(t, err)
				assert.Equal(t, ProcessExited, p.Status)
				require.NotNil(t, p.ExitCode)
				assert.Equal(t, 3, *p.ExitCode)
				assert.Equal(t, "sb_1", p.SandboxID)
			}},
		{"an ended process without an exit code is returned as it is", []string{"killed"}, WaitOptions{}, 1, 0,
			func(t *testing.T, p *Process, err error) {
				require.NoError(t, err)
				assert.Equal(t, ProcessKilled, p.Status)
				assert.Nil(t, p.ExitCode)
			}},
		{"transient errors keep polling", []string{"running", "503", "exited:0"}, WaitOptions{}, 3, 2 * time.Second,
			func(t *testing.T, p *Process, err error) { require.NoError(t, err) }},
		{"a vanished process is not found", []string{"running", "404"}, WaitOptions{}, 2, time.Second,
			func(t *testing.T, p *Process, err error) {
				require.ErrorIs(t, err, ErrNotFound)
				require.NotNil(t, p, "the process last seen")
				assert.True(t, p.Running())
			}},
		{"401 ends the wait", []string{"401"}, WaitOptions{}, 1, 0,
			func(t *testing.T, p *Process, err error) { require.ErrorIs(t, err, ErrUnauthorized) }},
		{"the default timeout is five minutes", []string{"running"}, WaitOptions{}, 300, 5 * time.Minute,
			func(t *testing.T, p *Process, err error) {
				require.ErrorIs(t, err, ErrWaitTimeout)
				assert.Contains(t, err.Error(), "process 7 on sandbox sb_1")
				assert.Contains(t, err.Error(), "it still runs")
				assert.NotErrorIs(t, err, context.DeadlineExceeded)
			}},
		{"a timeout and interval of the caller's", []string{"running"}, WaitOptions{Timeout: 10 * time.Second, PollInterval: 3 * time.Second}, 4, 10 * time.Second,
			func(t *testing.T, p *Process, err error) { require.ErrorIs(t, err, ErrWaitTimeout) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := processServer(tc.answers...)
				c := newFakeClient(t, rec)
				start := time.Now()
				p, err := c.Processes.Wait(t.Context(), "sb_1", "7", tc.opts)
				tc.check(t, p, err)
				assert.Equal(t, tc.elapsed, time.Since(start))
				assert.InDelta(t, tc.polls, rec.count(), 1, "polls")
				for _, r := range rec.requests() {
					assert.Equal(t, "GET", r.Method)
					assert.Equal(t, "/api/v1/sandboxes/sb_1/processes/7", r.RequestURI)
				}
			})
		})
	}
}

func TestProcessesWait_CancelReturnsTheContextError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 3500*time.Millisecond)
		defer cancel()
		_, err := newFakeClient(t, processServer("running")).Processes.Wait(ctx, "sb_1", "7", WaitOptions{})
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.NotErrorIs(t, err, ErrWaitTimeout, "the caller's deadline is not the wait's timeout")
		assert.False(t, errors.Is(err, ErrNotFound))
	})
}
