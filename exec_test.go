package miosa

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestExec_RequestShapes(t *testing.T) {
	cases := []struct {
		name string
		call func(c *Client) error
		uri  string
		body string
	}{
		{"run, command only", func(c *Client) error {
			_, err := c.Exec.Run(t.Context(), "cmp_1", ExecParams{Command: "echo hi"})
			return err
		}, "/api/v1/computers/cmp_1/exec", `{"command":"echo hi"}`},
		{"run, every field", func(c *Client) error {
			_, err := c.Exec.Run(t.Context(), "cmp_1", ExecParams{
				Command: "ls", Timeout: 90 * time.Second, WorkingDir: "/tmp", Env: map[string]string{"A": "1"},
			})
			return err
		}, "/api/v1/computers/cmp_1/exec", `{"command":"ls","timeout":90000,"working_dir":"/tmp","env":{"A":"1"}}`},
		{"run, sub-millisecond timeout rounds up", func(c *Client) error {
			_, err := c.Exec.Run(t.Context(), "cmp_1", ExecParams{Command: "ls", Timeout: time.Microsecond})
			return err
		}, "/api/v1/computers/cmp_1/exec", `{"command":"ls","timeout":1}`},
		{"python, code only", func(c *Client) error {
			_, err := c.Exec.Python(t.Context(), "cmp_1", PythonParams{Code: "print(1)"})
			return err
		}, "/api/v1/computers/cmp_1/exec/python", `{"code":"print(1)"}`},
		{"python, every field", func(c *Client) error {
			_, err := c.Exec.Python(t.Context(), "cmp_1", PythonParams{
				Code: "print(1)", Timeout: 1500 * time.Millisecond, WorkingDir: "/srv", Env: map[string]string{"B": "2"},
			})
			return err
		}, "/api/v1/computers/cmp_1/exec/python", `{"code":"print(1)","timeout":1500,"working_dir":"/srv","env":{"B":"2"}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				writeJSON(w, 200, `{"output":"ok\n","exit_code":0}`)
			})
			require.NoError(t, tc.call(newTestClient(t, base)))
			reqs := rec.requests()
			require.Len(t, reqs, 1)
			assert.Equal(t, "POST", reqs[0].Method)
			assert.Equal(t, tc.uri, reqs[0].RequestURI)
			assert.Equal(t, "application/json", reqs[0].Header.Get("Content-Type"))
			assert.JSONEq(t, tc.body, string(reqs[0].Body))
		})
	}
}

func TestExec_DecodesResultEnvelopes(t *testing.T) {
	result := `{"output":"out\nerr\n","stdout":"out\n","stderr":"err\n","exit_code":3,"success":false,"extra":1}`
	for name, body := range map[string]string{
		"bare":   result,
		"data":   `{"data":` + result + `}`,
		"result": `{"result":` + result + `}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 200, body) })
			res, err := newTestClient(t, base).Exec.Run(t.Context(), "cmp_1", ExecParams{Command: "x"})
			require.NoError(t, err, "a non-zero exit is a result, not a Go error")
			assert.Equal(t, "out\nerr\n", res.Output)
			assert.Equal(t, "out\n", res.Stdout)
			assert.Equal(t, "err\n", res.Stderr)
			assert.Equal(t, 3, res.ExitCode)
			assert.JSONEq(t, result, string(res.Raw))
		})
	}
}

func TestExecResult_ExitCodeAbsentMeansZero(t *testing.T) {
	_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, 200, `{"output":"hi"}`)
	})
	res, err := newTestClient(t, base).Exec.Python(t.Context(), "cmp_1", PythonParams{Code: "print('hi')"})
	require.NoError(t, err)
	assert.Zero(t, res.ExitCode)
	assert.NoError(t, res.Err())
}

func TestExecResult_ErrCarriesExitCodeAndStderr(t *testing.T) {
	res := &ExecResult{ExitCode: 2, Stderr: "warning: x\nls: cannot access 'nope': No such file\n"}
	err := res.Err()
	var exitErr *ExitError
	require.ErrorAs(t, err, &exitErr)
	assert.Equal(t, 2, exitErr.ExitCode)
	assert.Equal(t, res.Stderr, exitErr.Stderr)
	assert.Equal(t, "miosa: command exited with code 2: ls: cannot access 'nope': No such file", err.Error())
	assert.Equal(t, "miosa: command exited with code 1", (&ExitError{ExitCode: 1}).Error())
	assert.NoError(t, (&ExecResult{}).Err())
}

func TestExec_RefusesBadParamsBeforeAnyRequest(t *testing.T) {
	rec, base := newRecordingServer(t, nil)
	c := newTestClient(t, base)
	_, err := c.Exec.Run(t.Context(), "cmp_1", ExecParams{Command: "  "})
	assert.ErrorIs(t, err, ErrInvalidParams)
	_, err = c.Exec.Python(t.Context(), "cmp_1", PythonParams{})
	assert.ErrorIs(t, err, ErrInvalidParams)
	_, err = c.Exec.Run(t.Context(), "cmp_1", ExecParams{Command: "ls", Timeout: -time.Second})
	assert.ErrorIs(t, err, ErrInvalidParams)
	assert.Zero(t, rec.count())
}

func TestExec_AttemptDeadlineIsTheCommandTimeoutPlusAMargin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{respond: func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 200, `{}`) }}
		c := newFakeClient(t, rec, WithRequestTimeout(10*time.Second))
		_, err := c.Exec.Run(t.Context(), "cmp_1", ExecParams{Command: "sleep 100", Timeout: 2 * time.Minute})
		require.NoError(t, err)
		_, err = c.Exec.Run(t.Context(), "cmp_1", ExecParams{Command: "true"})
		require.NoError(t, err)
		reqs := rec.requests()
		require.Len(t, reqs, 2)
		assert.Equal(t, 2*time.Minute+execMargin, reqs[0].Deadline.Sub(reqs[0].At))
		assert.Equal(t, 10*time.Second, reqs[1].Deadline.Sub(reqs[1].At), "without a command timeout the request timeout applies")
	})
}

func TestExec_AttemptedOnceOnServerError(t *testing.T) {
	rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, 500, `{"error":"boom"}`)
	})
	_, err := newTestClient(t, base, WithMaxRetries(5)).Exec.Run(t.Context(), "cmp_1", ExecParams{Command: "rm -rf /tmp/x"})
	require.ErrorIs(t, err, ErrServer)
	assert.NotErrorIs(t, err, ErrOutcomeUnknown, "the server answered")
	assert.Equal(t, 1, rec.count())
}

func TestExec_DroppedConnectionIsOutcomeUnknownAndNotRetried(t *testing.T) {
	for _, python := range []bool{false, true} {
		rec := &recorder{respond: func(w http.ResponseWriter, r *http.Request, n int) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		}}
		srv := httptest.NewServer(rec)
		t.Cleanup(srv.Close)
		c := newTestClient(t, srv.URL+"/api/v1", WithMaxRetries(5))
		var err error
		if python {
			_, err = c.Exec.Python(t.Context(), "cmp_1", PythonParams{Code: "x"})
		} else {
			_, err = c.Exec.Run(t.Context(), "cmp_1", ExecParams{Command: "x"})
		}
		require.ErrorIs(t, err, ErrOutcomeUnknown)
		assert.Contains(t, err.Error(), "POST /computers/cmp_1/exec")
		assert.Equal(t, 1, rec.count(), "exec must not be sent twice")
	}
}

func TestExec_RetriedWhenTheRequestNeverLeft(t *testing.T) {
	rec := &recorder{respond: func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 200, `{"output":"ok"}`) }}
	hc, calls := flakyTransport(2, dialError(), rec)
	c := newFakeClient(t, rec, WithHTTPClient(hc), WithRetryDelay(0, 0))
	res, err := c.Exec.Run(t.Context(), "cmp_1", ExecParams{Command: "x"})
	require.NoError(t, err)
	assert.Equal(t, "ok", res.Output)
	assert.Equal(t, int32(3), calls.Load())
	assert.Equal(t, 1, rec.count(), "the command reached the server once")
}

func TestExec_RetriedOn429(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{respond: func(w http.ResponseWriter, r *http.Request, n int) {
			if n == 1 {
				w.Header().Set("Retry-After", "2")
				writeJSON(w, 429, `{"error":"slow down"}`)
				return
			}
			writeJSON(w, 200, `{"output":"ok"}`)
		}}
		c := newFakeClient(t, rec)
		start := time.Now()
		res, err := c.Exec.Run(t.Context(), "cmp_1", ExecParams{Command: "x"})
		require.NoError(t, err)
		assert.Equal(t, "ok", res.Output)
		assert.Equal(t, 2*time.Second, time.Since(start))
		assert.Equal(t, 2, rec.count())
	})
}

func TestExec_NotRunningIsAConflict(t *testing.T) {
	rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, 409, `{"error":"Computer is not running","code":"NOT_RUNNING"}`)
	})
	_, err := newTestClient(t, base).Exec.Run(t.Context(), "cmp_1", ExecParams{Command: "x"})
	require.ErrorIs(t, err, ErrConflict)
	var apiErr *APIError
	require.True(t, errors.As(err, &apiErr))
	assert.Equal(t, "NOT_RUNNING", apiErr.Code)
	assert.Equal(t, 1, rec.count())
}

func TestExec_RetriedAfterATLSHandshakeFailure(t *testing.T) {
	rec := &recorder{respond: func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 200, `{}`) }}
	srv := httptest.NewUnstartedServer(rec)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
	conns := countConns(srv)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	// The default client does not trust the test certificate: every
	// handshake fails, so the command provably never reached the server.
	c := newTestClient(t, srv.URL+"/api/v1", WithMaxRetries(2))
	_, err := c.Exec.Run(t.Context(), "cmp_1", ExecParams{Command: "x"})
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrOutcomeUnknown)
	var certErr *tls.CertificateVerificationError
	assert.ErrorAs(t, err, &certErr)
	assert.Equal(t, int32(3), conns.Load(), "one handshake per attempt")
	assert.Zero(t, rec.count())
}

func TestExecStream_AStreamThatOutlivesTheCommandTimeoutEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client := newFakeClientWith(t, pipeTransport{func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "event: stdout\ndata: {\"line\":\"started\"}\n\n")
			<-r.Context().Done() // and then never an exit
		}})
		start := time.Now()
		var lines []string
		var err error
		for ev, evErr := range client.Exec.Stream(t.Context(), "sb_1", ExecParams{Command: "sleep 1", Timeout: 10 * time.Second}) {
			if evErr != nil {
				err = evErr
				break
			}
			lines = append(lines, ev.Line)
		}
		assert.Equal(t, []string{"started"}, lines)
		require.ErrorIs(t, err, ErrOutcomeUnknown)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, 10*time.Second+execMargin, time.Since(start), "the command's timeout and the margin, not the caller's context")
	})
}
