package miosa

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/miosa-ai/miosa-go/internal/retry"
)

// Sentinel errors. An *APIError matches the category of its status code with
// errors.Is; the client-side sentinels are returned before any request is sent.
var (
	ErrBadRequest          = errors.New("miosa: bad request")          // 400
	ErrUnauthorized        = errors.New("miosa: unauthorized")         // 401
	ErrInsufficientCredits = errors.New("miosa: insufficient credits") // 402
	ErrForbidden           = errors.New("miosa: forbidden")            // 403
	ErrNotFound            = errors.New("miosa: not found")            // 404
	ErrConflict            = errors.New("miosa: conflict")             // 409
	ErrValidation          = errors.New("miosa: validation failed")    // 422
	ErrRateLimited         = errors.New("miosa: rate limited")         // 429
	ErrServer              = errors.New("miosa: server error")         // 5xx

	// ErrMissingAPIKey is returned by NewClient when no key was given and
	// MIOSA_API_KEY is unset.
	ErrMissingAPIKey = errors.New("miosa: missing API key: pass it to NewClient or set MIOSA_API_KEY")
	// ErrInvalidAPIKey is returned by NewClient for a key that cannot be a
	// MIOSA key. Its text never contains the key.
	ErrInvalidAPIKey = errors.New("miosa: invalid API key")
	// ErrInvalidParams is returned, before any request, for arguments the
	// server would refuse or that could reach the wrong endpoint.
	ErrInvalidParams = errors.New("miosa: invalid params")
	// ErrOutcomeUnknown is returned when a request that must not be sent twice
	// (exec, start, stop, update) was sent and no answer came back: the server
	// may or may not have acted on it. The cause is wrapped too.
	ErrOutcomeUnknown = errors.New("miosa: outcome unknown: the request was sent but no answer came back")
	// ErrWaitTimeout is returned when a status wait (WaitForStatus,
	// WaitForBuild) runs out of time before the wanted state is reached.
	ErrWaitTimeout = errors.New("miosa: wait timed out")
)

// APIError is a non-2xx answer from the MIOSA API. Use errors.Is with the
// sentinels (ErrNotFound, ErrRateLimited, ...) to branch on its category, or
// errors.As to read its fields.
type APIError struct {
	StatusCode     int
	Code           string // e.g. "NOT_FOUND"; may be empty
	Message        string
	RequestID      string // from the X-Request-ID response header
	IdempotencyKey string // the Idempotency-Key the request carried, if any
	// RetryAfter is the server's hint (Retry-After header or the body's
	// retry_after) of how long to wait before trying again; zero when absent.
	RetryAfter   time.Duration
	Method, Path string
	Body         []byte // the raw body, capped
}

// Error formats the failure as
// "miosa: POST /computers: 402 INSUFFICIENT_CREDITS: Insufficient credits (request_id=req_1)".
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("miosa: ")
	if e.Method != "" {
		b.WriteString(e.Method + " " + e.Path + ": ")
	}
	fmt.Fprintf(&b, "%d", e.StatusCode)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	b.WriteString(": " + e.Message)
	if e.RequestID != "" {
		b.WriteString(" (request_id=" + e.RequestID + ")")
	}
	return b.String()
}

// Is reports whether target is the sentinel of this error's status category,
// so errors.Is(err, ErrNotFound) holds for every 404.
func (e *APIError) Is(target error) bool {
	return target != nil && target == statusSentinel(e.StatusCode)
}

// Temporary reports whether the same request may succeed later: 408, 429 and
// the retryable 5xx statuses.
func (e *APIError) Temporary() bool { return retry.RetryableStatus(e.StatusCode) }

func statusSentinel(code int) error {
	switch {
	case code == http.StatusBadRequest:
		return ErrBadRequest
	case code == http.StatusUnauthorized:
		return ErrUnauthorized
	case code == http.StatusPaymentRequired:
		return ErrInsufficientCredits
	case code == http.StatusForbidden:
		return ErrForbidden
	case code == http.StatusNotFound:
		return ErrNotFound
	case code == http.StatusConflict:
		return ErrConflict
	case code == http.StatusUnprocessableEntity:
		return ErrValidation
	case code == http.StatusTooManyRequests:
		return ErrRateLimited
	case code >= 500 && code <= 599:
		return ErrServer
	}
	return nil
}

// maxErrorMessage caps a message taken from a text body, so a hostile server
// cannot fill logs through error strings.
const maxErrorMessage = 512

// errorBody is every key an error body is known to use.
type errorBody struct {
	Error   json.RawMessage `json:"error"`
	Message json.RawMessage `json:"message"`
	Detail  json.RawMessage `json:"detail"`
	Errors  json.RawMessage `json:"errors"`
	Code    json.RawMessage `json:"code"`
	// RetryAfter is raw because servers send it as a number or a string;
	// a typed field would make one odd hint discard the whole body.
	RetryAfter json.RawMessage `json:"retry_after"`
}

// parseErrorBody extracts the code, message and retry_after hint from any of
// the error bodies the server sends. Precedence for the message: "error" as a
// string, then "message", then "detail", then the first of "errors"; a nested
// {"error": {"code", "message"}} supplies both code and message. A body that
// is not a JSON object is used as text, trimmed and capped; an empty message
// names the status instead.
func parseErrorBody(status int, body []byte) (code, message string, retryAfter time.Duration) {
	var eb errorBody
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '{' && json.Unmarshal(trimmed, &eb) == nil {
		code = jsonString(eb.Code)
		var nested struct {
			Code    json.RawMessage `json:"code"`
			Message json.RawMessage `json:"message"`
		}
		if s := jsonString(eb.Error); s != "" {
			message = s
		} else if json.Unmarshal(eb.Error, &nested) == nil {
			if c := jsonString(nested.Code); c != "" {
				code = c
			}
			message = jsonString(nested.Message)
		}
		if message == "" {
			message = jsonString(eb.Message)
		}
		if message == "" {
			message = jsonString(eb.Detail)
		}
		if message == "" {
			message = firstOf(eb.Errors)
		}
		retryAfter = retryAfterSeconds(eb.RetryAfter)
	} else {
		message = string(trimmed)
	}
	message = capText(strings.TrimSpace(message), maxErrorMessage)
	if message == "" {
		message = strings.TrimSpace(fmt.Sprintf("%d %s", status, http.StatusText(status)))
	}
	return capText(code, 64), message, retryAfter
}

// retryAfterSeconds reads a body's retry_after hint, a number of seconds or
// a string holding one; anything else is no hint.
func retryAfterSeconds(raw json.RawMessage) time.Duration {
	var secs float64
	if json.Unmarshal(raw, &secs) != nil {
		s := jsonString(raw)
		if s == "" {
			return 0
		}
		var err error
		if secs, err = strconv.ParseFloat(strings.TrimSpace(s), 64); err != nil {
			return 0
		}
	}
	d, _ := retry.Seconds(secs)
	return d
}

// jsonString returns raw as a string if it is a JSON string, else "".
func jsonString(raw json.RawMessage) string {
	var s string
	if len(raw) == 0 || json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// firstOf returns the first message of an "errors" list: a string, or an
// object's "message" or "detail".
func firstOf(raw json.RawMessage) string {
	var items []json.RawMessage
	if len(raw) == 0 || json.Unmarshal(raw, &items) != nil {
		return ""
	}
	for _, item := range items {
		if s := jsonString(item); s != "" {
			return s
		}
		var obj struct {
			Message json.RawMessage `json:"message"`
			Detail  json.RawMessage `json:"detail"`
		}
		if json.Unmarshal(item, &obj) == nil {
			if s := jsonString(obj.Message); s != "" {
				return s
			}
			if s := jsonString(obj.Detail); s != "" {
				return s
			}
		}
	}
	return ""
}

// capText replaces invalid bytes and control characters and then cuts s to
// at most n bytes without splitting a UTF-8 sequence, so an error message is
// always one line of valid text of bounded size: a server cannot forge log
// lines through it (replacing after cutting could triple its size).
func capText(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if isControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	if len(s) > n {
		cut := n
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
