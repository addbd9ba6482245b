// Package retry holds the arithmetic of the SDK's retry loop: which answers
// are worth another attempt, how long to back off, and how to read the
// server's Retry-After hints.
package retry

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RetryableStatus reports whether an HTTP status is a transient failure that
// another attempt may cure.
func RetryableStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooManyRequests,
		http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// Backoff returns the wait before retry number retry (0 for the first retry):
// exponential from min, capped at max, with "equal jitter" so that the wait
// lies in [d/2, d] and concurrent clients spread out without ever retrying at
// once.
func Backoff(retry int, min, max time.Duration) time.Duration {
	if min <= 0 {
		return 0
	}
	if max < min {
		max = min
	}
	d := min
	for i := 0; i < retry && d < max; i++ {
		d *= 2
	}
	d = Clamp(d, max)
	half := d / 2
	return half + rand.N(d-half+1)
}

// Clamp returns d, or max when d exceeds it.
func Clamp(d, max time.Duration) time.Duration {
	if d > max {
		return max
	}
	return d
}

// ParseRetryAfter reads a Retry-After header value: delay-seconds (an integer,
// or a decimal as some servers send) or an HTTP date, relative to now. It
// reports false when the value is absent or unreadable. A date in the past
// means "now" (zero).
func ParseRetryAfter(value string, now time.Time) (time.Duration, bool) {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0, false
	}
	if secs, err := strconv.ParseFloat(value, 64); err == nil {
		return Seconds(secs)
	}
	when, err := http.ParseTime(value)
	if err != nil {
		return 0, false
	}
	return max(when.Sub(now), 0), true
}

// Seconds converts a hint in seconds into a duration. Negative, NaN or
// absurdly large hints are refused so they cannot overflow into a short wait.
func Seconds(secs float64) (time.Duration, bool) {
	if !(secs >= 0) || secs > float64(365*24*time.Hour/time.Second) {
		return 0, false
	}
	return time.Duration(secs * float64(time.Second)), true
}
