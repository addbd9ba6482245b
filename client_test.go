package miosa

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testKey = "msk_u_test0123456789secret"

// newTestClient returns a client for baseURL with no retry delays, so tests
// that are not about timing do not wait.
func newTestClient(t *testing.T, baseURL string, opts ...Option) *Client {
	t.Helper()
	all := append([]Option{WithBaseURL(baseURL), WithRetryDelay(0, 0)}, opts...)
	c, err := NewClient(testKey, all...)
	require.NoError(t, err)
	return c
}

// newFakeClient returns a client whose requests are answered in memory by
// rec; it works inside synctest bubbles.
func newFakeClient(t *testing.T, rec *recorder, opts ...Option) *Client {
	t.Helper()
	all := append([]Option{WithBaseURL("https://api.test/api/v1"), WithHTTPClient(inMemory(rec))}, opts...)
	c, err := NewClient(testKey, all...)
	require.NoError(t, err)
	return c
}

// writeJSON answers with status and a JSON body.
func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

const computerJSON = `{"id":"cmp_1","name":"box","slug":"box","status":"running","template_type":"miosa-desktop",` +
	`"size":"small","ip_address":"10.0.0.2","vnc_url":"https://vnc.test/cmp_1","visibility":"private",` +
	`"tenant_id":"t_1","workspace_id":"w_1","metadata":{"team":"a"},"external_workspace_id":"ew",` +
	`"external_user_id":"eu","external_project_id":"ep","created_at":"2026-05-18T10:00:00Z",` +
	`"updated_at":"2026-05-18T10:00:01.5Z","future_field":{"x":1}}`

func TestNewClient_KeyResolution(t *testing.T) {
	t.Run("argument wins over the environment", func(t *testing.T) {
		t.Setenv("MIOSA_API_KEY", "msk_from_env")
		rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 200, computerJSON) })
		c, err := NewClient("msk_from_arg", WithBaseURL(base))
		require.NoError(t, err)
		_, err = c.Computers.Get(t.Context(), "cmp_1")
		require.NoError(t, err)
		assert.Equal(t, "Bearer msk_from_arg", rec.requests()[0].Header.Get("Authorization"))
	})
	t.Run("environment when the argument is empty", func(t *testing.T) {
		t.Setenv("MIOSA_API_KEY", "msk_from_env")
		rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 200, computerJSON) })
		c, err := NewClient("", WithBaseURL(base))
		require.NoError(t, err)
		_, err = c.Computers.Get(t.Context(), "cmp_1")
		require.NoError(t, err)
		assert.Equal(t, "Bearer msk_from_env", rec.requests()[0].Header.Get("Authorization"))
	})
	t.Run("missing key names the argument and the variable", func(t *testing.T) {
		t.Setenv("MIOSA_API_KEY", "")
		_, err := NewClient("")
		require.ErrorIs(t, err, ErrMissingAPIKey)
		assert.Contains(t, err.Error(), "NewClient")
		assert.Contains(t, err.Error(), "MIOSA_API_KEY")
	})
}

func TestNewClient_RefusesKeysThatAreNotMIOSAKeysWithoutEchoingThem(t *testing.T) {
	for _, key := range []string{"sk-live-abcdef123456", "MSK_upper_secret99", "msk_with space_secret99", "msk_newline\nsecret99", "msk_tab\tsecret99"} {
		t.Run(fmt.Sprintf("%q", key), func(t *testing.T) {
			t.Setenv("MIOSA_API_KEY", "")
			_, err := NewClient(key)
			require.ErrorIs(t, err, ErrInvalidAPIKey)
			assert.NotContains(t, err.Error(), "secret99")
			assert.NotContains(t, err.Error(), "abcdef123456")
		})
	}
	for _, key := range []string{"msk_u_x", "msk_a_x", "msk_p_x", "msk_live_x"} {
		_, err := NewClient(key)
		assert.NoError(t, err, key)
	}
}

func TestNewClient_BaseURLResolution(t *testing.T) {
	t.Run("default", func(t *testing.T) {
		t.Setenv("MIOSA_BASE_URL", "")
		c, err := NewClient(testKey)
		require.NoError(t, err)
		assert.Equal(t, DefaultBaseURL, c.BaseURL())
	})
	t.Run("environment over default", func(t *testing.T) {
		t.Setenv("MIOSA_BASE_URL", "https://env.example/api/v1/")
		c, err := NewClient(testKey)
		require.NoError(t, err)
		assert.Equal(t, "https://env.example/api/v1", c.BaseURL())
	})
	t.Run("option over environment", func(t *testing.T) {
		t.Setenv("MIOSA_BASE_URL", "https://env.example/api/v1")
		c, err := NewClient(testKey, WithBaseURL("https://opt.example/api/v1"))
		require.NoError(t, err)
		assert.Equal(t, "https://opt.example/api/v1", c.BaseURL())
	})
	t.Run("invalid environment value is refused", func(t *testing.T) {
		t.Setenv("MIOSA_BASE_URL", "http://plain.example/api/v1")
		_, err := NewClient(testKey)
		require.ErrorIs(t, err, ErrInvalidParams)
	})
}

func TestNewClient_ValidatesBaseURL(t *testing.T) {
	cases := []struct {
		url      string
		insecure bool
		ok       bool
	}{
		{"https://api.example/api/v1", false, true},
		{"http://127.0.0.1:8080/api/v1", false, true},
		{"http://localhost:8080/api/v1", false, true},
		{"http://[::1]:8080/api/v1", false, true},
		{"http://example.com/api/v1", false, false},
		{"http://10.0.0.1/api/v1", false, false},
		{"http://example.com/api/v1", true, true},
		{"ftp://example.com/api/v1", false, false},
		{"api.example/api/v1", false, false},
		{"/api/v1", false, false},
		{"https://user:pw@api.example/api/v1", false, false},
		{"https://api.example/api/v1?x=1", false, false},
		{"https://api.example/api/v1#frag", false, false},
		{"https://", false, false},
		{"://bad", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.url, func(t *testing.T) {
			opts := []Option{WithBaseURL(tc.url)}
			if tc.insecure {
				opts = append(opts, WithInsecureHTTP())
			}
			_, err := NewClient(testKey, opts...)
			if tc.ok {
				assert.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidParams)
			assert.NotContains(t, err.Error(), "pw@")
		})
	}
}

func TestNewClient_RefusesUnusableOptions(t *testing.T) {
	cases := map[string]Option{
		"idempotency key":           WithIdempotencyKey("k"),
		"negative retries":          WithMaxRetries(-1),
		"negative delay":            WithRetryDelay(-time.Second, time.Second),
		"max below min":             WithRetryDelay(2*time.Second, time.Second),
		"negative max retry-after":  WithMaxRetryAfter(-1),
		"zero request timeout":      WithRequestTimeout(0),
		"zero response size":        WithMaxResponseSize(0),
		"multi-line user agent":     WithUserAgent("a\r\nX-Evil: 1"),
		"header name with space":    WithHeader("Bad Name", "v"),
		"header value with newline": WithHeader("X-Ok", "v\r\nX-Evil: 1"),
	}
	for name, opt := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := NewClient(testKey, opt)
			require.ErrorIs(t, err, ErrInvalidParams)
		})
	}
}

func TestPerCallOptions_OverrideForThatCallOnly(t *testing.T) {
	rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, 503, `{"error":"busy"}`)
	})
	c := newTestClient(t, base, WithMaxRetries(2), WithHeader("X-Client", "c"))

	_, err := c.Computers.Get(t.Context(), "cmp_1", WithMaxRetries(0), WithHeader("X-Call", "1"))
	require.ErrorIs(t, err, ErrServer)
	require.Equal(t, 1, rec.count(), "per-call WithMaxRetries(0) makes one attempt")
	first := rec.requests()[0]
	assert.Equal(t, "1", first.Header.Get("X-Call"))
	assert.Equal(t, "c", first.Header.Get("X-Client"))

	_, err = c.Computers.Get(t.Context(), "cmp_1")
	require.ErrorIs(t, err, ErrServer)
	reqs := rec.requests()
	require.Len(t, reqs, 4, "the next call uses the client's WithMaxRetries(2) again")
	assert.Empty(t, reqs[3].Header.Get("X-Call"))
	assert.Equal(t, "c", reqs[3].Header.Get("X-Client"))
}

func TestPerCallOptions_InvalidValueFailsBeforeAnyRequest(t *testing.T) {
	rec, base := newRecordingServer(t, nil)
	c := newTestClient(t, base)
	_, err := c.Computers.Get(t.Context(), "cmp_1", WithBaseURL("http://example.com/api/v1"))
	require.ErrorIs(t, err, ErrInvalidParams)
	_, err = c.Computers.Get(t.Context(), "cmp_1", WithRequestTimeout(-1))
	require.ErrorIs(t, err, ErrInvalidParams)
	assert.Zero(t, rec.count())
}

func TestHeaders_EveryRequestCarriesTheSDKHeaders(t *testing.T) {
	rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/start") {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		writeJSON(w, 200, computerJSON)
	})
	c := newTestClient(t, base, WithUserAgent("agentkit/1.2"), WithHeader("X-Trace", "abc"))

	_, err := c.Computers.Create(t.Context(), ComputerCreateParams{Name: "box"})
	require.NoError(t, err)
	require.NoError(t, c.Computers.Start(t.Context(), "cmp_1"))
	_, err = c.Computers.Get(t.Context(), "cmp_1")
	require.NoError(t, err)

	reqs := rec.requests()
	require.Len(t, reqs, 3)
	for _, r := range reqs {
		assert.Equal(t, "Bearer "+testKey, r.Header.Get("Authorization"), r.RequestURI)
		assert.Equal(t, "miosa-go/"+Version+" agentkit/1.2", r.Header.Get("User-Agent"))
		assert.Equal(t, "application/json", r.Header.Get("Accept"))
		assert.Equal(t, "abc", r.Header.Get("X-Trace"))
	}
	create, start, get := reqs[0], reqs[1], reqs[2]
	assert.Equal(t, "application/json", create.Header.Get("Content-Type"))
	assert.JSONEq(t, `{"name":"box"}`, string(create.Body))
	assert.Empty(t, start.Header.Get("Content-Type"), "a body-less POST sends no content type")
	assert.Empty(t, start.Body, "a body-less POST sends no body")
	assert.Empty(t, get.Header.Get("Content-Type"))
}

func TestHeaders_DefaultUserAgentIsTheSDKVersion(t *testing.T) {
	rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 200, computerJSON) })
	c := newTestClient(t, base)
	_, err := c.Computers.Get(t.Context(), "cmp_1")
	require.NoError(t, err)
	assert.Equal(t, "miosa-go/"+Version, rec.requests()[0].Header.Get("User-Agent"))
}

func TestHeaders_ExtrasCannotReplaceSDKHeaders(t *testing.T) {
	rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if r.Method == http.MethodPost && r.URL.Path == "/api/v1/computers" {
			writeJSON(w, 201, computerJSON)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	c := newTestClient(t, base,
		WithHeader("Authorization", "Bearer stolen"),
		WithHeader("User-Agent", "evil/1"),
		WithHeader("Accept", "text/html"),
		WithHeader("Content-Type", "text/plain"),
		WithHeader("idempotency-key", "fixed"),
	)
	_, err := c.Computers.Create(t.Context(), ComputerCreateParams{})
	require.NoError(t, err)
	require.NoError(t, c.Computers.Stop(t.Context(), "cmp_1"))

	reqs := rec.requests()
	require.Len(t, reqs, 2)
	for _, r := range reqs {
		assert.Equal(t, []string{"Bearer " + testKey}, r.Header.Values("Authorization"))
		assert.Equal(t, []string{"miosa-go/" + Version}, r.Header.Values("User-Agent"))
		assert.Equal(t, []string{"application/json"}, r.Header.Values("Accept"))
	}
	assert.Equal(t, []string{"application/json"}, reqs[0].Header.Values("Content-Type"))
	assert.NotEqual(t, "fixed", reqs[0].Header.Get("Idempotency-Key"))
	assert.Empty(t, reqs[1].Header.Values("Content-Type"), "a body-less POST sends no content type, even when asked")
	assert.Empty(t, reqs[1].Header.Values("Idempotency-Key"), "a non-create call carries no key")
}

func TestIdempotencyKey_SameOnEveryAttemptOfOneCall(t *testing.T) {
	rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n%3 != 0 {
			writeJSON(w, 503, `{"error":"try again"}`)
			return
		}
		writeJSON(w, 201, computerJSON)
	})
	c := newTestClient(t, base)

	_, err := c.Computers.Create(t.Context(), ComputerCreateParams{Name: "a"})
	require.NoError(t, err)
	_, err = c.Computers.Create(t.Context(), ComputerCreateParams{Name: "b"})
	require.NoError(t, err)

	reqs := rec.requests()
	require.Len(t, reqs, 6)
	first := reqs[0].Header.Get("Idempotency-Key")
	require.NotEmpty(t, first)
	for _, r := range reqs[:3] {
		assert.Equal(t, []string{first}, r.Header.Values("Idempotency-Key"))
		assert.JSONEq(t, `{"name":"a"}`, string(r.Body), "the body is resent unchanged")
	}
	second := reqs[3].Header.Get("Idempotency-Key")
	assert.NotEqual(t, first, second, "two logical calls get two keys")
	for _, r := range reqs[3:] {
		assert.Equal(t, second, r.Header.Get("Idempotency-Key"))
	}
}

func TestIdempotencyKey_CallerKeyIsSentAndKeptOnTheError(t *testing.T) {
	rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, 503, `{"error":"down"}`)
	})
	c := newTestClient(t, base, WithMaxRetries(1))
	_, err := c.Computers.Create(t.Context(), ComputerCreateParams{}, WithIdempotencyKey("order-42"))
	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "order-42", apiErr.IdempotencyKey)
	reqs := rec.requests()
	require.Len(t, reqs, 2)
	for _, r := range reqs {
		assert.Equal(t, "order-42", r.Header.Get("Idempotency-Key"))
	}
}

func TestIdempotencyKey_NonCreateCallsCarryNone(t *testing.T) {
	rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/exec"):
			writeJSON(w, 200, `{"output":"ok"}`)
		case r.Method == http.MethodGet && r.URL.Path == "/api/v1/computers":
			writeJSON(w, 200, `[]`)
		default:
			writeJSON(w, 200, computerJSON)
		}
	})
	c := newTestClient(t, base)
	ctx := t.Context()
	_, err := c.Computers.Get(ctx, "cmp_1", WithIdempotencyKey("ignored"))
	require.NoError(t, err)
	_, err = c.Computers.List(ctx, ComputerListParams{})
	require.NoError(t, err)
	require.NoError(t, c.Computers.Delete(ctx, "cmp_1"))
	require.NoError(t, c.Computers.Restart(ctx, "cmp_1"))
	_, err = c.Exec.Run(ctx, "cmp_1", ExecParams{Command: "true"})
	require.NoError(t, err)
	for _, r := range rec.requests() {
		assert.Empty(t, r.Header.Values("Idempotency-Key"), r.Method+" "+r.RequestURI)
	}
}

func TestRetry_StatusesAndMethods(t *testing.T) {
	type callFn func(c *Client) error
	get := func(c *Client) error { _, err := c.Computers.Get(t.Context(), "cmp_1"); return err }
	create := func(c *Client) error { _, err := c.Computers.Create(t.Context(), ComputerCreateParams{}); return err }
	del := func(c *Client) error { return c.Computers.Delete(t.Context(), "cmp_1") }
	start := func(c *Client) error { return c.Computers.Start(t.Context(), "cmp_1") }
	exec := func(c *Client) error {
		_, err := c.Exec.Run(t.Context(), "cmp_1", ExecParams{Command: "x"})
		return err
	}
	cases := []struct {
		name     string
		call     callFn
		status   int
		attempts int
	}{
		{"GET 408", get, 408, 3},
		{"GET 429", get, 429, 3},
		{"GET 500", get, 500, 3},
		{"GET 502", get, 502, 3},
		{"GET 503", get, 503, 3},
		{"GET 504", get, 504, 3},
		{"GET 400", get, 400, 1},
		{"GET 401", get, 401, 1},
		{"GET 404", get, 404, 1},
		{"GET 409", get, 409, 1},
		{"GET 501", get, 501, 1},
		{"DELETE 503", del, 503, 3},
		{"keyed POST 500", create, 500, 3},
		{"keyed POST 422", create, 422, 1},
		{"unkeyed POST 500", start, 500, 1},
		{"unkeyed POST 503", start, 503, 1},
		{"unkeyed POST 429", start, 429, 3},
		{"exec 502", exec, 502, 1},
		{"exec 429", exec, 429, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				writeJSON(w, tc.status, `{"error":"no"}`)
			})
			err := tc.call(newTestClient(t, base))
			var apiErr *APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, tc.status, apiErr.StatusCode)
			assert.Equal(t, tc.attempts, rec.count())
		})
	}
}

func TestRetry_SucceedsWhenALaterAttemptSucceeds(t *testing.T) {
	rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n < 3 {
			writeJSON(w, 502, "Bad Gateway")
			return
		}
		writeJSON(w, 200, computerJSON)
	})
	got, err := newTestClient(t, base).Computers.Get(t.Context(), "cmp_1")
	require.NoError(t, err)
	assert.Equal(t, "cmp_1", got.ID)
	assert.Equal(t, 3, rec.count())
}

func TestRetry_WithMaxRetriesBoundsTheAttempts(t *testing.T) {
	for _, n := range []int{0, 1, 4} {
		rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, _ int) { writeJSON(w, 500, `{}`) })
		_, err := newTestClient(t, base, WithMaxRetries(n)).Computers.Get(t.Context(), "cmp_1")
		require.ErrorIs(t, err, ErrServer)
		assert.Equal(t, n+1, rec.count(), "WithMaxRetries(%d)", n)
	}
}

// dialError is what net/http returns when no connection could be made.
func dialError() error {
	return &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
}

// flakyTransport fails the first failures requests with err, then serves
// them with h.
func flakyTransport(failures int, err error, h http.Handler) (*http.Client, *atomic.Int32) {
	var calls atomic.Int32
	next := inMemory(h).Transport
	return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if int(calls.Add(1)) <= failures {
			if r.Body != nil {
				_, _ = io.Copy(io.Discard, r.Body)
			}
			return nil, err
		}
		return next.RoundTrip(r)
	})}, &calls
}

func TestRetry_TransportErrors(t *testing.T) {
	reset := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	cases := []struct {
		name           string
		err            error
		call           func(c *Client) error
		attempts       int32
		ok             bool
		outcomeUnknown bool
	}{
		{"GET after reset is retried", reset, func(c *Client) error { _, err := c.Computers.Get(t.Context(), "x"); return err }, 2, true, false},
		{"keyed create after reset is retried", reset, func(c *Client) error { _, err := c.Computers.Create(t.Context(), ComputerCreateParams{}); return err }, 2, true, false},
		{"start after dial failure is retried", dialError(), func(c *Client) error { return c.Computers.Start(t.Context(), "x") }, 2, true, false},
		{"start after reset is not retried", reset, func(c *Client) error { return c.Computers.Start(t.Context(), "x") }, 1, false, true},
		{"exec after dial failure is retried", dialError(), func(c *Client) error { _, err := c.Exec.Run(t.Context(), "x", ExecParams{Command: "x"}); return err }, 2, true, false},
		{"exec after DNS failure is retried", &net.DNSError{Err: "no such host", Name: "api.test", IsNotFound: true}, func(c *Client) error { _, err := c.Exec.Run(t.Context(), "x", ExecParams{Command: "x"}); return err }, 2, true, false},
		{"exec after reset is not retried", reset, func(c *Client) error { _, err := c.Exec.Run(t.Context(), "x", ExecParams{Command: "x"}); return err }, 1, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{respond: func(w http.ResponseWriter, r *http.Request, n int) {
				if strings.HasSuffix(r.URL.Path, "/exec") {
					writeJSON(w, 200, `{"output":"ok"}`)
					return
				}
				writeJSON(w, 200, computerJSON)
			}}
			hc, calls := flakyTransport(1, tc.err, rec)
			c := newFakeClient(t, rec, WithHTTPClient(hc), WithRetryDelay(0, 0))
			err := tc.call(c)
			assert.Equal(t, tc.attempts, calls.Load())
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Equal(t, tc.outcomeUnknown, errors.Is(err, ErrOutcomeUnknown))
			assert.ErrorIs(t, err, tc.err, "the cause stays visible")
		})
	}
}

func TestRetry_BackoffStaysWithinTheConfiguredBounds(t *testing.T) {
	const minDelay, maxDelay = 100 * time.Millisecond, 1 * time.Second
	for range 20 {
		synctest.Test(t, func(t *testing.T) {
			rec := &recorder{respond: func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 503, `{}`) }}
			c := newFakeClient(t, rec, WithMaxRetries(6), WithRetryDelay(minDelay, maxDelay))
			_, err := c.Computers.Get(t.Context(), "cmp_1")
			require.ErrorIs(t, err, ErrServer)
			reqs := rec.requests()
			require.Len(t, reqs, 7)
			step := minDelay
			for i := 1; i < len(reqs); i++ {
				wait := reqs[i].At.Sub(reqs[i-1].At)
				hi := min(2*step, maxDelay)
				lo := max(hi/2, minDelay)
				assert.GreaterOrEqual(t, wait, lo, "retry %d", i)
				assert.LessOrEqual(t, wait, hi, "retry %d", i)
				step = min(2*step, maxDelay)
			}
		})
	}
}

func TestRetry_BackoffIsJittered(t *testing.T) {
	waits := map[time.Duration]bool{}
	for range 10 {
		synctest.Test(t, func(t *testing.T) {
			rec := &recorder{respond: func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 503, `{}`) }}
			c := newFakeClient(t, rec, WithMaxRetries(1), WithRetryDelay(time.Second, 10*time.Second))
			_, _ = c.Computers.Get(t.Context(), "cmp_1")
			reqs := rec.requests()
			require.Len(t, reqs, 2)
			waits[reqs[1].At.Sub(reqs[0].At)] = true
		})
	}
	assert.Greater(t, len(waits), 1, "ten first retries all waited exactly the same time")
}

func TestRetry_RetryAfterOverridesTheBackoff(t *testing.T) {
	cases := []struct {
		name   string
		answer func(w http.ResponseWriter)
		want   time.Duration
	}{
		{"header seconds", func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "3")
			writeJSON(w, 429, `{"error":"slow down"}`)
		}, 3 * time.Second},
		{"header HTTP date", func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", time.Now().Add(5*time.Second).UTC().Format(http.TimeFormat))
			writeJSON(w, 503, `Service Unavailable`)
		}, 5 * time.Second},
		{"body retry_after", func(w http.ResponseWriter) {
			writeJSON(w, 429, `{"message":"Invalid params","code":"INVALID","retry_after":2.5}`)
		}, 2500 * time.Millisecond},
		{"header wins over body", func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, 429, `{"message":"x","retry_after":7}`)
		}, time.Second},
		{"zero means at once", func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "0")
			writeJSON(w, 429, `{}`)
		}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &recorder{respond: func(w http.ResponseWriter, r *http.Request, n int) {
					if n == 1 {
						tc.answer(w)
						return
					}
					writeJSON(w, 200, computerJSON)
				}}
				// A long backoff proves the hint, not the backoff, set the wait.
				c := newFakeClient(t, rec, WithRetryDelay(30*time.Second, 30*time.Second))
				_, err := c.Computers.Get(t.Context(), "cmp_1")
				require.NoError(t, err)
				reqs := rec.requests()
				require.Len(t, reqs, 2)
				assert.Equal(t, tc.want, reqs[1].At.Sub(reqs[0].At))
			})
		})
	}
}

func TestRetry_HintLongerThanMaxRetryAfterIsReturnedAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{respond: func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("Retry-After", "120")
			w.Header().Set("X-Request-ID", "req_9")
			writeJSON(w, 429, `{"error":"Too many requests"}`)
		}}
		c := newFakeClient(t, rec, WithMaxRetryAfter(time.Minute))
		start := time.Now()
		_, err := c.Computers.Get(t.Context(), "cmp_1")
		assert.Zero(t, time.Since(start), "the hint was slept")
		require.ErrorIs(t, err, ErrRateLimited)
		var apiErr *APIError
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, 2*time.Minute, apiErr.RetryAfter)
		assert.Equal(t, "req_9", apiErr.RequestID)
		assert.Equal(t, 1, rec.count())
	})
}

func TestRetry_NeverWaitsPastTheContextDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{respond: func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("Retry-After", "5")
			writeJSON(w, 503, `{"error":"busy"}`)
		}}
		c := newFakeClient(t, rec)
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		start := time.Now()
		_, err := c.Computers.Get(ctx, "cmp_1")
		assert.Zero(t, time.Since(start), "the call waited although the retry could not happen in time")
		require.ErrorIs(t, err, ErrServer, "the last answer is returned, not the context's error")
		assert.NotErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, 1, rec.count())
	})
}

func TestRetry_SleepEndsTheMomentTheContextIsCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{respond: func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 503, `{}`) }}
		c := newFakeClient(t, rec, WithRetryDelay(10*time.Second, 10*time.Second))
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(time.Second, cancel)
		start := time.Now()
		_, err := c.Computers.Get(ctx, "cmp_1")
		assert.Equal(t, time.Second, time.Since(start))
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorIs(t, err, ErrServer, "the last attempt's error is kept")
		assert.Equal(t, 1, rec.count())
	})
}

func TestAttempt_EachAttemptHasItsOwnDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{respond: func(w http.ResponseWriter, r *http.Request, n int) {
			if n < 3 {
				<-r.Context().Done() // a server that never answers
				return
			}
			writeJSON(w, 200, computerJSON)
		}}
		c := newFakeClient(t, rec, WithRequestTimeout(5*time.Second), WithRetryDelay(0, 0))
		start := time.Now()
		got, err := c.Computers.Get(t.Context(), "cmp_1")
		require.NoError(t, err)
		assert.Equal(t, "cmp_1", got.ID)
		assert.Equal(t, 10*time.Second, time.Since(start))
		for _, r := range rec.requests() {
			assert.Equal(t, 5*time.Second, r.Deadline.Sub(r.At))
		}
	})
}

func TestAttempt_DefaultDeadlineIsSixtySeconds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{respond: func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 200, computerJSON) }}
		c := newFakeClient(t, rec)
		_, err := c.Computers.Get(t.Context(), "cmp_1")
		require.NoError(t, err)
		r := rec.requests()[0]
		assert.Equal(t, 60*time.Second, r.Deadline.Sub(r.At))
	})
}

func TestAttempt_TimeoutWrapsDeadlineExceeded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{respond: func(w http.ResponseWriter, r *http.Request, n int) { <-r.Context().Done() }}
		c := newFakeClient(t, rec, WithRequestTimeout(time.Second), WithMaxRetries(0))
		_, err := c.Computers.Get(t.Context(), "cmp_1")
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Contains(t, err.Error(), "GET /computers/cmp_1")
	})
}

func TestAttempt_CallerHTTPClientIsNeverModified(t *testing.T) {
	_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 200, computerJSON) })
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	jar := http.CookieJar(nil)
	hc := &http.Client{Transport: transport, Timeout: 0, Jar: jar}
	before := *hc
	c := newTestClient(t, base, WithHTTPClient(hc))
	_, err := c.Computers.Get(t.Context(), "cmp_1")
	require.NoError(t, err)
	_, err = c.Computers.Get(t.Context(), "cmp_1", WithRequestTimeout(time.Second))
	require.NoError(t, err)
	assert.Equal(t, before.Transport, hc.Transport)
	assert.Equal(t, before.Timeout, hc.Timeout)
	assert.Nil(t, hc.CheckRedirect)
	assert.Nil(t, hc.Jar)
}

func TestDefaultTransport_PooledKeepAliveHTTP2WithoutConnCap(t *testing.T) {
	c, err := NewClient(testKey)
	require.NoError(t, err)
	hc := c.settings.httpClient
	assert.Zero(t, hc.Timeout, "deadlines come from the context, never http.Client.Timeout")
	dt, ok := hc.Transport.(*defaultTransport)
	require.True(t, ok)
	require.NotNil(t, dt.h2, "https goes over HTTP/2 through a pool that shares its dials")
	assert.NotZero(t, dt.h2.IdleConnTimeout, "idle HTTP/2 connections are closed in time")
	tr := dt.h1
	assert.False(t, tr.DisableKeepAlives)
	assert.GreaterOrEqual(t, tr.MaxIdleConnsPerHost, 16)
	assert.GreaterOrEqual(t, tr.MaxIdleConns, tr.MaxIdleConnsPerHost)
	assert.Zero(t, tr.MaxConnsPerHost)
	assert.NotNil(t, tr.Proxy, "the environment's proxy settings are honoured")
	assert.NotSame(t, http.DefaultTransport, tr, "the process-wide default transport is not shared")
}

// countConns counts the TCP connections the server accepted.
func countConns(srv *httptest.Server) *atomic.Int32 {
	var n atomic.Int32
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			n.Add(1)
		}
	}
	return &n
}

func TestAttempt_FailedBodiesAreDrainedSoTheConnectionIsReused(t *testing.T) {
	big := strings.Repeat("x", 100<<10) // above the kept error body, below the drain cap
	rec := &recorder{respond: func(w http.ResponseWriter, r *http.Request, n int) {
		switch n % 3 {
		case 1:
			writeJSON(w, 503, `{"error":"`+big+`"}`)
		case 2:
			w.WriteHeader(502) // chunked, no length
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, big)
		default:
			writeJSON(w, 200, computerJSON)
		}
	}}
	srv := httptest.NewUnstartedServer(rec)
	conns := countConns(srv)
	srv.Start()
	t.Cleanup(srv.Close)
	c := newTestClient(t, srv.URL+"/api/v1")
	for range 5 {
		_, err := c.Computers.Get(t.Context(), "cmp_1")
		require.NoError(t, err)
	}
	_, err := c.Computers.Get(t.Context(), "cmp_1", WithMaxRetries(0))
	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	assert.LessOrEqual(t, len(apiErr.Body), maxErrorBody, "the kept body is capped")
	assert.Equal(t, 16, rec.count())
	assert.Equal(t, int32(1), conns.Load(), "every failed answer was drained and its connection reused")
}

func TestDecode_EveryObjectEnvelope(t *testing.T) {
	bodies := map[string]string{
		"bare":     computerJSON,
		"data":     `{"data":` + computerJSON + `}`,
		"computer": `{"computer":` + computerJSON + `}`,
		"result":   `{"result":` + computerJSON + `}`,
		"sandbox":  `{"sandbox":` + computerJSON + `}`,
		// A first key that wraps an object is decoded as a guess; when
		// other members follow, the guess fails and the body is read in
		// full.
		"data, then other members":  `{"data":` + computerJSON + `,"meta":{"id":"wrong"}}`,
		"data twice, the last wins": `{"data":{"id":"wrong"},"data":` + computerJSON + `}`,
		"named key after data":      `{"data":{"id":"wrong"},"computer":` + computerJSON + `}`,
		// A bare guess that meets an envelope key holding an object is
		// not taken: the key wins, as it does when the body is walked.
		"wrapper key after another": `{"id":"wrong","data":` + computerJSON + `}`,
		"wrapper key in other case": `{"DATA":{"id":"wrong"},"computer":` + computerJSON + `}`,
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 200, body) })
			got, err := newTestClient(t, base).Computers.Get(t.Context(), "cmp_1")
			require.NoError(t, err)
			assert.Equal(t, "cmp_1", got.ID)
			assert.Equal(t, StatusRunning, got.Status)
			assert.JSONEq(t, computerJSON, string(got.Raw), "Raw is the object itself")
			assert.Equal(t, 1, rec.count(), "one response, never a second request")
		})
	}
}

func TestDecode_EveryListEnvelope(t *testing.T) {
	item := `{"id":"a","status":"running"}`
	bodies := map[string]string{
		"bare":              `[` + item + `]`,
		"data":              `{"data":[` + item + `]}`,
		"computers":         `{"computers":[` + item + `],"meta":{"total":1,"page":1,"per_page":10}}`,
		"items":             `{"items":[` + item + `]}`,
		"sandboxes":         `{"sandboxes":[` + item + `]}`,
		"data with meta":    `{"data":[` + item + `],"meta":{"total":1,"page":1,"per_page":20}}`,
		"data holding list": `{"data":{"computers":[` + item + `]}}`,
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 200, body) })
			got, err := newTestClient(t, base).Computers.List(t.Context(), ComputerListParams{})
			require.NoError(t, err)
			require.Len(t, got, 1)
			assert.Equal(t, "a", got[0].ID)
			assert.JSONEq(t, item, string(got[0].Raw))
			assert.Equal(t, 1, rec.count())
		})
	}
}

func TestDecode_MalformedJSONIsAnError(t *testing.T) {
	for _, body := range []string{`{"id":`, `not json`, `"a string"`, `[1,2]`, `{"id": 5}`} {
		t.Run(body, func(t *testing.T) {
			_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 200, body) })
			_, err := newTestClient(t, base).Computers.Get(t.Context(), "cmp_1")
			require.Error(t, err)
			assert.Contains(t, err.Error(), "GET /computers/cmp_1: decoding the response")
		})
	}
}

func TestDecode_BodyOverTheCapIsAClearError(t *testing.T) {
	body := `{"id":"cmp_1","name":"` + strings.Repeat("n", 4096) + `"}`
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				w.WriteHeader(200)
				if chunked {
					w.(http.Flusher).Flush()
				}
				_, _ = io.WriteString(w, body)
			})
			c := newTestClient(t, base)
			_, err := c.Computers.Get(t.Context(), "cmp_1", WithMaxResponseSize(1024))
			require.Error(t, err)
			assert.Contains(t, err.Error(), "exceeds the size limit")
			assert.Equal(t, 1, rec.count(), "a body over the cap is not retried")

			_, err = c.Exec.Run(t.Context(), "cmp_1", ExecParams{Command: "x"}, WithMaxResponseSize(1024))
			require.Error(t, err)
			assert.NotErrorIs(t, err, ErrOutcomeUnknown, "the server answered; only the answer was refused")

			got, err := c.Computers.Get(t.Context(), "cmp_1", WithMaxResponseSize(int64(len(body))))
			require.NoError(t, err, "a body exactly at the cap is accepted")
			assert.Len(t, got.Name, 4096)
		})
	}
}

func TestDecode_HugeStreamedBodyIsRefusedWithBoundedMemory(t *testing.T) {
	const total = 200 << 20
	var written atomic.Int64
	_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.WriteHeader(200)
		chunk := bytes.Repeat([]byte("a"), 64<<10)
		for written.Load() < total {
			k, err := w.Write(chunk)
			written.Add(int64(k))
			if err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	})
	c := newTestClient(t, base)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := c.Computers.Get(t.Context(), "cmp_1", WithMaxResponseSize(1<<20))
	runtime.ReadMemStats(&after)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "exceeds the size limit")
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %d KiB while refusing a %d MiB body; server wrote %d MiB", allocated>>10, total>>20, written.Load()>>20)
	assert.Less(t, allocated, uint64(8<<20), "memory grew with the body, not with the cap")
	assert.Less(t, written.Load(), int64(total/2), "the body was read to the end")
}

func TestDecode_EmptySuccessBodiesAreSuccessForActions(t *testing.T) {
	for _, status := range []int{200, 202, 204} {
		_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) { w.WriteHeader(status) })
		c := newTestClient(t, base)
		assert.NoError(t, c.Computers.Stop(t.Context(), "cmp_1"), status)
		assert.NoError(t, c.Computers.Delete(t.Context(), "cmp_1"), status)
	}
}

func TestLogger_OneLinePerAttemptWithoutSecrets(t *testing.T) {
	rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("X-Request-ID", fmt.Sprintf("req_%d", n))
		if n == 1 {
			writeJSON(w, 503, `{"error":"busy, body-secret"}`)
			return
		}
		writeJSON(w, 201, computerJSON)
	})
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := newTestClient(t, base, WithLogger(logger), WithHeader("X-Private", "header-secret"))
	_, err := c.Computers.Create(t.Context(), ComputerCreateParams{Name: "name-secret"})
	require.NoError(t, err)
	require.Equal(t, 2, rec.count())

	out := buf.String()
	for _, secret := range []string{testKey, "header-secret", "name-secret", "body-secret", "Bearer", rec.requests()[0].Header.Get("Idempotency-Key")} {
		assert.NotContains(t, out, secret)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2)
	for i, line := range lines {
		var entry map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &entry))
		assert.Equal(t, "DEBUG", entry["level"])
		assert.Equal(t, "POST", entry["method"])
		assert.Equal(t, "/computers", entry["path"])
		assert.EqualValues(t, i+1, entry["attempt"])
		assert.Equal(t, fmt.Sprintf("req_%d", i+1), entry["request_id"])
		assert.Contains(t, entry, "duration")
		assert.EqualValues(t, []int{503, 201}[i], entry["status"])
	}
}

func TestLogger_SilentAboveDebug(t *testing.T) {
	_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 200, computerJSON) })
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	_, err := newTestClient(t, base, WithLogger(logger)).Computers.Get(t.Context(), "cmp_1")
	require.NoError(t, err)
	assert.Empty(t, buf.String())
}

func TestClient_NeverPrintsItsKey(t *testing.T) {
	c, err := NewClient(testKey, WithBaseURL("https://api.example/api/v1"))
	require.NoError(t, err)
	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		outputs = append(outputs, fmt.Sprintf(verb, c), fmt.Sprintf(verb, *c))
	}
	for _, svc := range []any{c.Computers, c.Exec, c.Sandboxes, c.SandboxTemplates} {
		outputs = append(outputs, fmt.Sprintf("%+v", svc), fmt.Sprintf("%#v", svc))
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("client", "c", c, "v", *c)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("client", "c", c)
	outputs = append(outputs, buf.String())
	js, err := json.Marshal(c)
	require.NoError(t, err)
	outputs = append(outputs, string(js))
	hexKey := fmt.Sprintf("%x", testKey)
	for _, out := range outputs {
		assert.NotContains(t, out, testKey)
		assert.NotContains(t, out, "test0123456789secret")
		assert.NotContains(t, out, hexKey)
	}
	assert.Contains(t, fmt.Sprintf("%v", c), "https://api.example/api/v1")
}

func TestErrors_NeverContainTheKey(t *testing.T) {
	rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		// A hostile or buggy server echoes the Authorization header.
		writeJSON(w, 401, `{"error":"bad token"}`)
	})
	c := newTestClient(t, base)
	_, err := c.Computers.Get(t.Context(), "cmp_1")
	require.ErrorIs(t, err, ErrUnauthorized)
	assert.NotContains(t, err.Error(), testKey)
	require.Equal(t, 1, rec.count())

	_, err = c.Computers.Get(t.Context(), "cmp_1", WithHTTPClient(&http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
		return nil, dialError()
	})}), WithMaxRetries(0))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), testKey)
}

func TestPathID_RefusesIdsThatCouldChangeTheEndpoint(t *testing.T) {
	for _, id := range []string{"", " ", "\t", ".", "..", "a\nb", "a\x00b", "a\x7fb", "\r"} {
		_, err := pathID("computer", id)
		assert.ErrorIs(t, err, ErrInvalidParams, "%q", id)
	}
	for id, want := range map[string]string{
		"cmp_1":  "cmp_1",
		"a/../b": "a%2F..%2Fb",
		"a b":    "a%20b",
		"a?x=1":  "a%3Fx=1",
		"a#b":    "a%23b",
		"%2e%2e": "%252e%252e",
		"...":    "...",
	} {
		got, err := pathID("computer", id)
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
}
