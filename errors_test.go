package miosa

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseErrorBody_EveryKnownShape(t *testing.T) {
	cases := []struct {
		name       string
		status     int
		body       string
		code, msg  string
		retryAfter time.Duration
	}{
		{"error string with code", 402, `{"error": "Insufficient credits", "code": "INSUFFICIENT_CREDITS"}`, "INSUFFICIENT_CREDITS", "Insufficient credits", 0},
		{"error string alone", 401, `{"error": "Unauthorized"}`, "", "Unauthorized", 0},
		{"message with code", 400, `{"message": "Invalid params", "code": "INVALID"}`, "INVALID", "Invalid params", 0},
		{"message with retry_after", 429, `{"message": "Invalid params", "code": "INVALID", "retry_after": 5.0}`, "INVALID", "Invalid params", 5 * time.Second},
		{"fractional retry_after", 429, `{"message": "slow", "retry_after": 0.25}`, "", "slow", 250 * time.Millisecond},
		{"retry_after as a string", 429, `{"message": "slow", "retry_after": "3"}`, "", "slow", 3 * time.Second},
		{"nested error object", 404, `{"error": {"code": "NOT_FOUND", "message": "Host not found"}}`, "NOT_FOUND", "Host not found", 0},
		{"nested code wins over top code", 404, `{"code": "OUTER", "error": {"code": "NOT_FOUND", "message": "Host not found"}}`, "NOT_FOUND", "Host not found", 0},
		{"errors list", 422, `{"errors": ["first message", "second"]}`, "", "first message", 0},
		{"errors list of objects", 422, `{"errors": [{"field": "name", "message": "is required"}]}`, "", "is required", 0},
		{"detail", 400, `{"detail": "Not a valid size"}`, "", "Not a valid size", 0},
		{"text body", 503, "Service Unavailable\n", "", "Service Unavailable", 0},
		{"empty body", 502, "", "", "502 Bad Gateway", 0},
		{"blank body", 500, " \n\t", "", "500 Internal Server Error", 0},
		{"empty JSON object", 409, `{}`, "", "409 Conflict", 0},
		{"unknown status, empty body", 599, "", "", "599", 0},
		{"error before message", 400, `{"message": "m", "error": "e", "detail": "d", "errors": ["x"]}`, "", "e", 0},
		{"message before detail", 400, `{"detail": "d", "message": "m", "errors": ["x"]}`, "", "m", 0},
		{"detail before errors", 400, `{"errors": ["x"], "detail": "d"}`, "", "d", 0},
		{"empty error string falls through", 400, `{"error": "", "message": "m"}`, "", "m", 0},
		{"nested without message falls through", 400, `{"error": {"code": "X"}, "message": "m"}`, "X", "m", 0},
		{"error of another type falls through", 400, `{"error": 42, "detail": "d"}`, "", "d", 0},
		{"non-string code ignored", 400, `{"error": "e", "code": 7}`, "", "e", 0},
		{"negative retry_after ignored", 429, `{"error": "e", "retry_after": -1}`, "", "e", 0},
		{"JSON that is not an object is text", 500, `["a","b"]`, "", `["a","b"]`, 0},
		{"broken JSON is text", 500, `{"error": "x"`, "", `{"error": "x"`, 0},
		{"canonical envelope", 409, `{"error": {"code": "SANDBOX_STARTING", "message": "booting", "details": {"eta_ms": 900}, "retryable": true, "retry_after_ms": 1500}}`, "SANDBOX_STARTING", "booting", 1500 * time.Millisecond},
		{"retry_after_ms beats retry_after", 429, `{"retry_after": 9, "error": {"message": "slow", "retry_after_ms": 250}}`, "", "slow", 250 * time.Millisecond},
		{"retry_after of years is a year", 429, `{"error": "slow", "retry_after": 1e400}`, "", "slow", 365 * 24 * time.Hour},
		{"unknown fields ignored", 400, `{"error": "e", "trace": {"deep": [1, 2]}}`, "", "e", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := parseErrorBody(tc.status, []byte(tc.body))
			assert.Equal(t, tc.code, e.Code)
			assert.Equal(t, tc.msg, e.Message)
			assert.Equal(t, tc.retryAfter, e.RetryAfter)
		})
	}
}

func TestParseErrorBody_MessageIsCappedValidText(t *testing.T) {
	long := strings.Repeat("é", 2000)
	msg := parseErrorBody(500, []byte(long)).Message
	assert.True(t, utf8.ValidString(msg))
	assert.LessOrEqual(t, len(msg), maxErrorMessage+len("…"))
	assert.True(t, strings.HasSuffix(msg, "…"))

	invalid := strings.Repeat("\xffa", 2000)
	msg = parseErrorBody(500, []byte(invalid)).Message
	assert.True(t, utf8.ValidString(msg))
	assert.LessOrEqual(t, len(msg), maxErrorMessage+len("…"), "replacing invalid bytes must not lift the cap")

	code := parseErrorBody(400, []byte(`{"error":"e","code":"`+strings.Repeat("C", 500)+`"}`)).Code
	assert.LessOrEqual(t, len(code), 64+len("…"))

	msg = parseErrorBody(502, []byte("bad gateway\nlevel=INFO msg=forged\r\x1b[31m")).Message
	assert.Equal(t, "bad gateway level=INFO msg=forged  [31m", msg, "control characters cannot start a new log line")

	msg = parseErrorBody(502, []byte("a\u0085b\u2028c\u2029d\u202Eevil\u2066e")).Message
	assert.Equal(t, "a b c d evil e", msg, "C1 controls, line separators and bidi overrides cannot break or reorder a line")
}

func TestParseErrorBody_CanonicalEnvelopeKeepsRetryableAndDetails(t *testing.T) {
	e := parseErrorBody(409, []byte(`{"error": {"code": "SANDBOX_STARTING", "message": "booting", "details": {"eta_ms": 900}, "retryable": true, "retry_after_ms": 0}}`))
	assert.True(t, e.Retryable)
	assert.True(t, e.Temporary(), "a retryable 409 may succeed later")
	assert.JSONEq(t, `{"eta_ms": 900}`, string(e.Details))
	assert.True(t, e.retryAfterGiven, "retry_after_ms 0 means retry now, not no hint")

	e = parseErrorBody(409, []byte(`{"error": {"code": "NOT_RUNNING", "message": "stopped", "retryable": false}}`))
	assert.False(t, e.Retryable)
	assert.False(t, e.Temporary())
	assert.Nil(t, e.Details)
}

func TestMessagesOf_DeepOrHugeListsCostTheirSize(t *testing.T) {
	// An "errors" object nested thousands of levels deep once cost seconds of
	// CPU and hundreds of MiB (every level decoded the rest again).
	deep := strings.Repeat(`{"a":`, 9000) + `"x"` + strings.Repeat(`}`, 9000)
	msgs := messagesOf([]byte(deep))
	require.Len(t, msgs, 1)
	assert.LessOrEqual(t, len(msgs[0]), maxErrorMessage+len("…"))
	assert.True(t, strings.HasPrefix(msgs[0], "a: a: a: {"), "objects deeper than the limit are kept as capped JSON: %q", msgs[0][:20])

	many := "[" + strings.Repeat(`"m",`, 100000) + `"m"]`
	assert.Len(t, messagesOf([]byte(many)), maxMessages)

	wide := "{" + strings.Repeat(`"k":["m"],`, 10) + `"z":{"y":{"x":{"w":"deep"}}}}`
	assert.Equal(t, []string{"k: m", `z: y: x: {"w":"deep"}`}, messagesOf([]byte(wide)))
}

func TestAPIError_ErrorFormat(t *testing.T) {
	cases := []struct {
		err  APIError
		want string
	}{
		{APIError{StatusCode: 402, Code: "INSUFFICIENT_CREDITS", Message: "Insufficient credits", RequestID: "req_1", Method: "POST", Path: "/computers"},
			"miosa: POST /computers: 402 INSUFFICIENT_CREDITS: Insufficient credits (request_id=req_1)"},
		{APIError{StatusCode: 401, Message: "Unauthorized", Method: "GET", Path: "/computers/x"},
			"miosa: GET /computers/x: 401: Unauthorized"},
		{APIError{StatusCode: 500, Message: "boom"}, "miosa: 500: boom"},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, tc.err.Error())
	}
}

func TestAPIError_IsMatchesTheCategoryOfEveryStatus(t *testing.T) {
	sentinels := []error{ErrBadRequest, ErrUnauthorized, ErrInsufficientCredits, ErrForbidden, ErrNotFound,
		ErrConflict, ErrValidation, ErrRateLimited, ErrServer}
	want := map[int]error{
		400: ErrBadRequest, 401: ErrUnauthorized, 402: ErrInsufficientCredits, 403: ErrForbidden,
		404: ErrNotFound, 409: ErrConflict, 422: ErrValidation, 429: ErrRateLimited,
		500: ErrServer, 501: ErrServer, 502: ErrServer, 503: ErrServer, 504: ErrServer, 599: ErrServer,
		405: nil, 408: nil, 410: nil, 418: nil, 300: nil,
	}
	for status, sentinel := range want {
		err := error(&APIError{StatusCode: status, Message: "m"})
		for _, s := range sentinels {
			assert.Equal(t, s == sentinel, errors.Is(err, s), "status %d vs %v", status, s)
		}
		for _, s := range []error{ErrMissingAPIKey, ErrInvalidAPIKey, ErrInvalidParams, ErrOutcomeUnknown, ErrWaitTimeout} {
			assert.False(t, errors.Is(err, s), "status %d must not match %v", status, s)
		}
		assert.False(t, (&APIError{StatusCode: status}).Is(nil))
	}
}

func TestAPIError_TemporaryForRetryableStatuses(t *testing.T) {
	for status, want := range map[int]bool{408: true, 429: true, 500: true, 502: true, 503: true, 504: true, 400: false, 404: false, 501: false} {
		assert.Equal(t, want, (&APIError{StatusCode: status}).Temporary(), status)
	}
}

func TestAPIError_FromTheServerCarriesEverything(t *testing.T) {
	_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("X-Request-ID", "req_abc")
		writeJSON(w, 402, `{"error": "Insufficient credits", "code": "INSUFFICIENT_CREDITS"}`)
	})
	_, err := newTestClient(t, base).Computers.Create(t.Context(), ComputerCreateParams{})
	require.ErrorIs(t, err, ErrInsufficientCredits)
	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 402, apiErr.StatusCode)
	assert.Equal(t, "INSUFFICIENT_CREDITS", apiErr.Code)
	assert.Equal(t, "Insufficient credits", apiErr.Message)
	assert.Equal(t, "req_abc", apiErr.RequestID)
	assert.Equal(t, "POST", apiErr.Method)
	assert.Equal(t, "/computers", apiErr.Path)
	assert.NotEmpty(t, apiErr.IdempotencyKey)
	assert.JSONEq(t, `{"error": "Insufficient credits", "code": "INSUFFICIENT_CREDITS"}`, string(apiErr.Body))
	assert.Equal(t, "miosa: POST /computers: 402 INSUFFICIENT_CREDITS: Insufficient credits (request_id=req_abc)", err.Error())
}

func TestAPIError_AsThroughWrapping(t *testing.T) {
	wrapped := fmt.Errorf("creating workers: %w", &APIError{StatusCode: 404, Message: "gone"})
	var apiErr *APIError
	require.ErrorAs(t, wrapped, &apiErr)
	assert.Equal(t, 404, apiErr.StatusCode)
	assert.ErrorIs(t, wrapped, ErrNotFound)
}

func TestTransportErrors_WrapTheirCause(t *testing.T) {
	rec := &recorder{}
	hc, _ := flakyTransport(100, context.DeadlineExceeded, rec)
	c := newFakeClient(t, rec, WithHTTPClient(hc), WithMaxRetries(0))
	_, err := c.Computers.Get(t.Context(), "cmp_1")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.True(t, strings.HasPrefix(err.Error(), "miosa: GET /computers/cmp_1: "), err.Error())

	_, err = c.Exec.Run(t.Context(), "cmp_1", ExecParams{Command: "x"})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorIs(t, err, ErrOutcomeUnknown)
}

func FuzzParseErrorBody(f *testing.F) {
	for _, seed := range []string{
		`{"error": "Insufficient credits", "code": "INSUFFICIENT_CREDITS"}`,
		`{"error": "Unauthorized"}`,
		`{"message": "Invalid params", "code": "INVALID", "retry_after": 5.0}`,
		`{"error": {"code": "NOT_FOUND", "message": "Host not found"}}`,
		`{"errors": ["first message", "..."]}`,
		`{"detail": "..."}`,
		"Service Unavailable",
		"",
		"\xff\xfe",
		`{"errors": [{"message": 1}, {"detail": "d"}]}`,
	} {
		f.Add(503, []byte(seed))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		e := parseErrorBody(status, body)
		code, msg, retryAfter := e.Code, e.Message, e.RetryAfter
		if msg == "" {
			t.Fatal("empty message")
		}
		if !utf8.ValidString(msg) || !utf8.ValidString(code) {
			t.Fatalf("invalid UTF-8: %q %q", code, msg)
		}
		if strings.ContainsFunc(msg+code, breaksLine) {
			t.Fatalf("control characters: %q %q", code, msg)
		}
		if len(msg) > maxErrorMessage+len("…") || len(code) > 64+len("…") {
			t.Fatalf("not capped: %d, %d bytes", len(msg), len(code))
		}
		if retryAfter < 0 {
			t.Fatalf("negative retry_after %v", retryAfter)
		}
	})
}
