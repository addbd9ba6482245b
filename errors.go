package miosa

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

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
	// WaitForBuild, WaitReady) runs out of time before the wanted state is
	// reached.
	ErrWaitTimeout = errors.New("miosa: wait timed out")
	// ErrStreamGap ends Processes.Follow when its stream broke while the
	// process still ran and cannot be resumed without losing or repeating
	// output: the server sent no event ids, or cut the stream again and
	// again. What was yielded before it came in order and once; what the
	// process wrote after the break was not yielded. Logs returns what the
	// server kept.
	ErrStreamGap = errors.New("miosa: stream gap: the followed stream broke while the process still ran, and output may be missing")
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
	// RetryAfter is the server's hint (the Retry-After header, or the body's
	// retry_after seconds or retry_after_ms) of how long to wait before
	// trying again; zero when absent, at most a year.
	RetryAfter time.Duration
	// Retryable is the server's declaration ("retryable": true in its error
	// object) that it did nothing and the same call may be sent again. The
	// SDK then retries any call, exec included.
	Retryable bool
	// Details is the error object's "details", as the server sent it.
	Details      json.RawMessage
	Method, Path string
	Body         []byte // the raw body, capped

	// retryAfterGiven tells a hint of zero ("retry now") from no hint.
	retryAfterGiven bool
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

// Temporary reports whether the same request may succeed later: the server
// declared the error retryable, or its status is 408, 429 or a retryable
// 5xx.
func (e *APIError) Temporary() bool { return e.Retryable || retry.RetryableStatus(e.StatusCode) }

// statusSentinels maps a status to the sentinel of its category; every
// 5xx is ErrServer.
var statusSentinels = map[int]error{
	http.StatusBadRequest:          ErrBadRequest,
	http.StatusUnauthorized:        ErrUnauthorized,
	http.StatusPaymentRequired:     ErrInsufficientCredits,
	http.StatusForbidden:           ErrForbidden,
	http.StatusNotFound:            ErrNotFound,
	http.StatusConflict:            ErrConflict,
	http.StatusUnprocessableEntity: ErrValidation,
	http.StatusTooManyRequests:     ErrRateLimited,
}

func statusSentinel(code int) error {
	if code >= 500 && code <= 599 {
		return ErrServer
	}
	return statusSentinels[code]
}

// errorBody is every key an error body is known to use, at its top level
// and inside the nested {"error": {...}} of newer servers (code, message,
// details, retryable, retry_after_ms). Values are raw because servers send
// them in several types; a typed field would make one odd value discard the
// whole body.
type errorBody struct {
	Error        json.RawMessage `json:"error"`
	Message      json.RawMessage `json:"message"`
	Detail       json.RawMessage `json:"detail"`
	Errors       json.RawMessage `json:"errors"`
	Code         json.RawMessage `json:"code"`
	RetryAfter   json.RawMessage `json:"retry_after"`
	Details      json.RawMessage `json:"details"`
	Retryable    json.RawMessage `json:"retryable"`
	RetryAfterMS json.RawMessage `json:"retry_after_ms"`
}

// parseErrorBody reads any of the error bodies the server sends into an
// APIError's status, code, message, retry hint, retryable flag and details.
// Precedence for the message: "error" as a string, then "message", then
// "detail", then the first of "errors"; a nested {"error": {...}} supplies
// code, message, details, retryable and retry_after_ms. A body that is not a
// JSON object is used as text. The message is one line of capped text; an
// empty one names the status instead.
func parseErrorBody(status int, body []byte) *APIError {
	e := &APIError{StatusCode: status}
	var eb errorBody
	if isJSONObject(body) && json.Unmarshal(body, &eb) == nil {
		e.Code = jsonString(eb.Code)
		var nested errorBody
		if s := jsonString(eb.Error); s != "" {
			e.Message = s
		} else if json.Unmarshal(eb.Error, &nested) == nil {
			e.Code = cmp.Or(jsonString(nested.Code), e.Code)
			e.Message = jsonString(nested.Message)
			e.Retryable = isJSONTrue(nested.Retryable)
			if !isJSONNull(nested.Details) {
				e.Details = nested.Details
			}
			if ms, ok := jsonNumber(nested.RetryAfterMS); ok {
				e.RetryAfter, e.retryAfterGiven = retry.Seconds(ms / 1000)
			}
		}
		e.Message = cmp.Or(e.Message, jsonString(eb.Message), jsonString(eb.Detail))
		if e.Message == "" {
			if msgs := messagesOf(eb.Errors); len(msgs) > 0 {
				e.Message = msgs[0]
			}
		}
		if !e.retryAfterGiven {
			if secs, ok := jsonNumber(eb.RetryAfter); ok {
				e.RetryAfter, e.retryAfterGiven = retry.Seconds(secs)
			}
		}
	} else {
		e.Message = string(body)
	}
	e.Message = capText(strings.TrimSpace(e.Message), maxErrorMessage)
	if e.Message == "" {
		e.Message = strings.TrimSpace(fmt.Sprintf("%d %s", status, http.StatusText(status)))
	}
	e.Code = capText(e.Code, maxErrorCode)
	return e
}
