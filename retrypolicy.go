package miosa

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/miosa-ai/miosa-go/internal/retry"
)

// shouldRetry is the SDK's retry policy, in one place: whether another
// attempt of op may succeed where failure did and is safe to send, and when
// not, why. The pipeline asks it after every failed attempt (and then
// weighs attempts left, Retry-After and the deadline); poll loops ask it
// after every failed poll.
//
// The rules: an answer the server declared retryable is retried whatever
// the call, since the server promises it did nothing. Otherwise a status
// that may pass (408, 429, 5xx) is retried when the call may be sent twice,
// and 429 always, since a rate limit refuses before acting. A failure to get
// an answer is retried when the call may be sent twice or the request
// provably never left; a streamed answer that broke is retried only before
// any of it was delivered. Invalid requests, oversized answers,
// redirects out of the API's origin, and refusals of a call that must not
// be sent twice that came after the server redirected it, are final.
func shouldRetry(op *call, failure error) (bool, string) {
	var (
		apiErr     *APIError
		afterRedir *refusedAfterRedirectError
	)
	if errors.As(failure, &afterRedir) {
		return false, "it was redirected after it reached the server, and it must not be sent twice"
	}
	if errors.As(failure, &apiErr) {
		switch {
		case apiErr.Retryable:
			return true, ""
		case !retry.RetryableStatus(apiErr.StatusCode):
			return false, fmt.Sprintf("status %d is final", apiErr.StatusCode)
		case op.replayable() || apiErr.StatusCode == http.StatusTooManyRequests:
			return true, ""
		}
		return false, "the server may have acted on it, and it must not be sent twice"
	}
	var (
		redirect *redirectError
		body     *bodyError
	)
	switch {
	case errors.Is(failure, ErrInvalidParams):
		return false, "the request is invalid"
	case errors.Is(failure, errBodyTooLarge):
		return false, "the answer is larger than the size limit"
	case errors.As(failure, &redirect):
		return false, "a redirect out of the API's origin is not followed"
	case errors.As(failure, &body):
		if op.replayable() && errors.Is(failure, errNothingDelivered) {
			return true, ""
		}
		return false, "the answer broke off after part of it was delivered"
	case op.replayable() || neverReachedServer(failure):
		return true, ""
	}
	return false, "it may have reached the server, and it must not be sent twice"
}

// bodyError is a failure while the request body was produced or a
// streamed answer consumed: after the transport's part went well.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }
