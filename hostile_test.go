package miosa

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// These tests play servers that are hostile or merely broken, and check the
// guarantees the SDK makes against them: the key reaches only the API's
// origin and is never shown, server text is bounded and one line, memory
// and time are never claimed on the server's say-so, and every failure is
// the error that says what happened.

// keyThief is a server that must never see the key: it counts the requests
// that reach it and remembers any credential they carried.
type keyThief struct {
	srv      *httptest.Server
	requests atomic.Int32
	stolen   atomic.Value // string
}

func newKeyThief(t *testing.T, tlsServer bool) *keyThief {
	t.Helper()
	k := &keyThief{}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k.requests.Add(1)
		if auth := r.Header.Get("Authorization") + r.Header.Get("X-Extra"); auth != "" {
			k.stolen.Store(auth)
		}
		writeJSON(w, 200, computerJSON)
	})
	if tlsServer {
		k.srv = httptest.NewTLSServer(handler)
	} else {
		k.srv = httptest.NewServer(handler)
	}
	t.Cleanup(k.srv.Close)
	return k
}

func redirectTo(target string, status int) func(w http.ResponseWriter, r *http.Request, n int) {
	return func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Location", target+r.URL.Path+"?token="+testKey)
		w.WriteHeader(status)
	}
}

func TestRedirect_ToAnotherOriginIsRefusedWithoutTheKey(t *testing.T) {
	for _, status := range []int{301, 302, 303, 307, 308} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			thief := newKeyThief(t, false)
			// Same host (127.0.0.1), another port: Go's client keeps the
			// Authorization header across this redirect on its own.
			rec, base := newRecordingServer(t, redirectTo(thief.srv.URL, status))
			c := newTestClient(t, base, WithHeader("X-Extra", "tenant-secret"))

			_, err := c.Computers.Get(t.Context(), "cmp_1")
			require.Error(t, err)
			assert.Zero(t, thief.requests.Load(), "nothing may be sent to another origin")
			assert.Nil(t, thief.stolen.Load())
			assert.Contains(t, err.Error(), "redirected to "+thief.srv.URL+"/api/v1/computers/cmp_1",
				"the error names where the redirect pointed")
			assert.NotContains(t, err.Error(), testKey, "not even the location's query")
			assert.Equal(t, 1, rec.count(), "a refused redirect is final, not retried")
			assert.NotErrorIs(t, err, ErrOutcomeUnknown)
		})
	}
}

func TestRedirect_FromHTTPSToHTTPOnTheSameHostIsRefused(t *testing.T) {
	thief := newKeyThief(t, false)
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, thief.srv.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(api.Close)
	c := newTestClient(t, api.URL+"/api/v1", WithHTTPClient(api.Client()))

	_, err := c.Computers.Get(t.Context(), "cmp_1")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "redirected to http://127.0.0.1:")
	assert.Zero(t, thief.requests.Load())
}

func TestRedirect_WithinTheOriginIsFollowedAndTheCallersPolicyStillRuns(t *testing.T) {
	rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if r.URL.Path == "/api/v1/computers/old" {
			http.Redirect(w, r, "/api/v1/computers/cmp_1", http.StatusMovedPermanently)
			return
		}
		writeJSON(w, 200, computerJSON)
	})
	var consulted atomic.Int32
	caller := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
		consulted.Add(1)
		return nil
	}}
	c := newTestClient(t, base, WithHTTPClient(caller))

	got, err := c.Computers.Get(t.Context(), "old")
	require.NoError(t, err)
	assert.Equal(t, "cmp_1", got.ID)
	reqs := rec.requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, "Bearer "+testKey, reqs[1].Header.Get("Authorization"), "the same origin gets the key")
	assert.Equal(t, int32(1), consulted.Load(), "the caller's CheckRedirect decides redirects that stay")
	assert.NotNil(t, caller.CheckRedirect)
	assert.Nil(t, caller.Transport, "the caller's client is not modified")
}

func TestRedirect_TheReadinessStreamIsGuardedToo(t *testing.T) {
	thief := newKeyThief(t, false)
	_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if strings.HasSuffix(r.URL.Path, "/stream") {
			http.Redirect(w, r, thief.srv.URL+r.URL.Path, http.StatusTemporaryRedirect)
			return
		}
		writeJSON(w, 200, `{"data":{"ready":true}}`)
	})
	c := newTestClient(t, base)
	ready, err := c.Sandboxes.WaitUntilReady(t.Context(), "sb_1", WaitOptions{Timeout: 5 * time.Second})
	require.NoError(t, err)
	assert.True(t, ready, "a refused stream falls back to polling the API itself")
	assert.Zero(t, thief.requests.Load())
}

func TestKey_EchoedByTheServerIsScrubbedFromErrorsAndLogs(t *testing.T) {
	echo := func(w http.ResponseWriter, r *http.Request, n int) {
		auth := r.Header.Get("Authorization")
		w.Header().Set("X-Request-ID", "req-"+auth)
		writeJSON(w, 400, `{"error":{"code":"BAD_`+testKey+`","message":"you sent `+auth+`","details":{"key":"`+testKey+`"}}}`)
	}
	_, base := newRecordingServer(t, echo)
	var logs bytes.Buffer
	c := newTestClient(t, base, WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))

	_, err := c.Computers.Get(t.Context(), "cmp_1")
	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	fields, marshalErr := json.Marshal(apiErr)
	require.NoError(t, marshalErr)
	for name, text := range map[string]string{
		"Error()": err.Error(), "Message": apiErr.Message, "Code": apiErr.Code, "RequestID": apiErr.RequestID,
		"Body": string(apiErr.Body), "Details": string(apiErr.Details), "all fields": string(fields),
		"%+v": fmt.Sprintf("%+v", apiErr), "log": logs.String(),
	} {
		assert.NotContains(t, text, testKey, name)
	}
	assert.Contains(t, apiErr.Message, "you sent Bearer "+redacted, "the rest of the message is kept")
}

func TestKey_EchoedInASuccessfulAnswerIsScrubbed(t *testing.T) {
	_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, 200, `{"id":"cmp_1","name":"`+testKey+`","metadata":{"k":"`+testKey+`"}}`)
	})
	got, err := newTestClient(t, base).Computers.Get(t.Context(), "cmp_1")
	require.NoError(t, err)
	assert.Equal(t, redacted, got.Name)
	assert.NotContains(t, string(got.Raw), testKey)
}

func TestKey_EchoedIntoATransportErrorIsScrubbed(t *testing.T) {
	// A server that answers garbage quoting the key: Go's HTTP client puts
	// the bytes it could not parse into its error.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = conn.Read(make([]byte, 4096))
			_, _ = io.WriteString(conn, "HTTP/1.1 "+testKey+" nonsense\r\n\r\n")
			conn.Close()
		}
	}()
	c := newTestClient(t, "http://"+ln.Addr().String()+"/api/v1", WithMaxRetries(0))
	_, err = c.Exec.Run(t.Context(), "cmp_1", ExecParams{Command: "true"})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), testKey)
	assert.Contains(t, err.Error(), redacted)
	assert.ErrorIs(t, err, ErrOutcomeUnknown, "scrubbing keeps what the error matches")
}

// capturingT collects what a testify assertion would have reported.
type capturingT struct{ messages []string }

func (c *capturingT) Errorf(format string, args ...any) {
	c.messages = append(c.messages, fmt.Sprintf(format, args...))
}

func TestKey_NoFormatterOrDiffShowsIt(t *testing.T) {
	c, err := NewClient(testKey)
	require.NoError(t, err)
	other, err := NewClient("msk_u_other")
	require.NoError(t, err)
	type holder struct {
		name   string
		client Client // unexported: printers walk it without its methods
	}
	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X"} {
		for _, value := range []any{c.Sandboxes, c.Computers, *c.Computers, c.Exec, *c.Exec, c.SandboxTemplates,
			holder{"h", *c}, &holder{"h", *c}, c.authorization, c.key, c.settings} {
			outputs = append(outputs, fmt.Sprintf(verb, value))
		}
	}
	diff := &capturingT{}
	assert.Equal(diff, holder{"a", *c}, holder{"b", *other})
	assert.Equal(diff, c, other)
	require.NotEmpty(t, diff.messages)
	outputs = append(outputs, diff.messages...)
	hexKey := fmt.Sprintf("%x", testKey)
	for _, out := range outputs {
		assert.NotContains(t, out, testKey)
		assert.NotContains(t, out, "test0123456789secret")
		assert.NotContains(t, strings.ToLower(out), hexKey)
	}
}

func TestKey_TheSecretItselfPrintsOnlyAPlaceholder(t *testing.T) {
	s := newSecret(testKey)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		assert.NotContains(t, fmt.Sprintf(verb, s), "secret", verb)
	}
	text, err := s.MarshalText()
	require.NoError(t, err)
	assert.Equal(t, redacted, string(text))
	assert.Equal(t, redacted, s.LogValue().String())
	assert.Equal(t, testKey, s.reveal())
}

func TestRequestID_IsOneShortLine(t *testing.T) {
	hostile := "req_1\tlevel=ERROR forged\u2028\u0085\u202E" + strings.Repeat("x", 512<<10)
	_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header()["X-Request-Id"] = []string{hostile}
		writeJSON(w, 404, `{"error":"gone"}`)
	})
	_, err := newTestClient(t, base).Computers.Get(t.Context(), "cmp_1")
	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	assert.LessOrEqual(t, len(apiErr.RequestID), maxRequestID+len("…"))
	assert.True(t, strings.HasPrefix(apiErr.RequestID, "req_1 level=ERROR forged   x"), apiErr.RequestID[:40])
	assert.Less(t, len(err.Error()), 1024)
	assert.False(t, strings.ContainsFunc(err.Error(), breaksLine))
}

func TestTransportError_QuotingTheServerIsOneShortLine(t *testing.T) {
	// Go's client quotes a malformed header line whole in its error.
	_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header()["X-Request-Id"] = []string{"\x1b[2J" + strings.Repeat("x", 1<<20)}
		writeJSON(w, 404, `{"error":"gone"}`)
	})
	_, err := newTestClient(t, base, WithMaxRetries(0)).Computers.Get(t.Context(), "cmp_1")
	require.Error(t, err)
	assert.Less(t, len(err.Error()), 2048)
	assert.False(t, strings.ContainsFunc(err.Error(), breaksLine))
}

func TestReadCapped_ADeclaredLengthIsNotAllocatedBeforeTheBytesCome(t *testing.T) {
	// 16 stalled answers declaring 32 MiB once claimed 512 MiB between them.
	body, err := readCapped(strings.NewReader("short"), 32<<20, 64<<20)
	require.NoError(t, err)
	assert.Equal(t, "short", string(body))
	assert.LessOrEqual(t, cap(body), preallocLimit)

	small, err := readCapped(strings.NewReader("exact"), 5, 64<<20)
	require.NoError(t, err)
	assert.Equal(t, 6, cap(small), "a small declared length is still allocated once")
}

func TestRefusedAnswer_AnEndlessBodyDoesNotHoldTheCaller(t *testing.T) {
	for _, status := range []int{404, 500} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				w.WriteHeader(status)
				_, _ = io.WriteString(w, `{"error":"nope"}`+strings.Repeat(" ", maxErrorBody))
				w.(http.Flusher).Flush()
				<-r.Context().Done() // and then nothing, until the client leaves
			})
			c := newTestClient(t, base, WithMaxRetries(0), WithRequestTimeout(time.Minute))
			start := time.Now()
			_, err := c.Computers.Get(t.Context(), "cmp_1")
			require.Error(t, err)
			assert.Less(t, time.Since(start), 30*time.Second, "bounded by the drain limit, not the minute-long attempt deadline")
			var apiErr *APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, status, apiErr.StatusCode)
		})
	}
}

func TestRetryAfter_AbsurdHintsAreReturnedNotRetried(t *testing.T) {
	for _, hint := range []string{"40000000", "Inf", "1e400", "Fri, 01 Jan 2100 00:00:00 GMT"} {
		t.Run(hint, func(t *testing.T) {
			rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				w.Header().Set("Retry-After", hint)
				writeJSON(w, 503, `{"error":"come back much later"}`)
			})
			_, err := newTestClient(t, base).Computers.Get(t.Context(), "cmp_1")
			var apiErr *APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, 1, rec.count(), "a hint past WithMaxRetryAfter ends the call")
			assert.Equal(t, 365*24*time.Hour, apiErr.RetryAfter)
		})
	}
}

func TestExec_TimeoutNearTheLargestDurationIsNotAnUnknownOutcome(t *testing.T) {
	rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, 200, `{"output":"ok","exit_code":0}`)
	})
	res, err := newTestClient(t, base).Exec.Run(t.Context(), "cmp_1", ExecParams{Command: "true", Timeout: math.MaxInt64 - time.Second})
	require.NoError(t, err)
	assert.Equal(t, "ok", res.Output)
	assert.Equal(t, 1, rec.count())
}

func TestCancelledContext_NothingSentIsNotAnUnknownOutcome(t *testing.T) {
	rec, base := newRecordingServer(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := newTestClient(t, base).Exec.Run(ctx, "cmp_1", ExecParams{Command: "true"})
	require.ErrorIs(t, err, context.Canceled)
	assert.NotErrorIs(t, err, ErrOutcomeUnknown, "nothing was sent")
	assert.Zero(t, rec.count())
}

func TestUpdate_IsNeverSentTwice(t *testing.T) {
	// PATCH is not idempotent in general: once it may have arrived, it is
	// not repeated, whether the answer was a 503 or never came.
	t.Run("503", func(t *testing.T) {
		rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
			writeJSON(w, 503, `{"error":"busy"}`)
		})
		_, err := newTestClient(t, base).Sandboxes.Update(t.Context(), "sb_1", SandboxUpdateParams{Name: Ptr("x")})
		require.ErrorIs(t, err, ErrServer)
		assert.Equal(t, 1, rec.count())
	})
	t.Run("dropped", func(t *testing.T) {
		rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		})
		_, err := newTestClient(t, base).Sandboxes.Update(t.Context(), "sb_1", SandboxUpdateParams{Name: Ptr("x")})
		require.ErrorIs(t, err, ErrOutcomeUnknown)
		assert.Equal(t, 1, rec.count())
	})
}

func TestRetryable_AnyCallIsRetriedWhenTheServerSaysNothingWasDone(t *testing.T) {
	rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			writeJSON(w, 409, `{"error":{"code":"SANDBOX_STARTING","message":"booting","retryable":true,"retry_after_ms":1}}`)
			return
		}
		writeJSON(w, 200, `{"output":"hi","exit_code":0}`)
	})
	res, err := newTestClient(t, base).Exec.Run(t.Context(), "sb_1", ExecParams{Command: "echo hi"})
	require.NoError(t, err)
	assert.Equal(t, "hi", res.Output)
	assert.Equal(t, 2, rec.count())

	rec, base = newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, 409, `{"error":{"code":"NOT_RUNNING","message":"stopped"}}`)
	})
	_, err = newTestClient(t, base).Exec.Run(t.Context(), "sb_1", ExecParams{Command: "echo hi"})
	require.ErrorIs(t, err, ErrConflict)
	assert.Equal(t, 1, rec.count(), "without the promise, exec is never sent twice")
}

func TestBaseURL_WithoutAPIRootSaysWhatIsLikelyWrong(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	_, err := newTestClient(t, srv.URL).Computers.Get(t.Context(), "cmp_1")
	require.ErrorIs(t, err, ErrNotFound)
	assert.Contains(t, err.Error(), "does not end in /api/v1")

	_, err = newTestClient(t, srv.URL+"/api/v1").Computers.Get(t.Context(), "cmp_1")
	require.ErrorIs(t, err, ErrNotFound)
	assert.NotContains(t, err.Error(), "/api/v1:", "a right base URL gets no hint")
}

func TestRedirect_PerCallOptionsAreGuardedToo(t *testing.T) {
	thief := newKeyThief(t, false)
	_, base := newRecordingServer(t, redirectTo(thief.srv.URL, http.StatusTemporaryRedirect))
	c := newTestClient(t, "http://127.0.0.1:1/api/v1")
	// The base URL and the HTTP client both come from this one call.
	_, err := c.Computers.Get(t.Context(), "cmp_1", WithBaseURL(base), WithHTTPClient(&http.Client{}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "redirected to "+thief.srv.URL)
	assert.Zero(t, thief.requests.Load())
}
