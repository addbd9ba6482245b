// Package retry holds the arithmetic of the SDK's retry loop: which answers
// are worth another attempt, how long to back off, how to read the server's
// Retry-After hints, and how to wait without outliving a context.
package retry

import (
	"context"
	"errors"
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

// Backoff returns the wait before retry number retry (0 for the first retry).
// The upper end of the wait doubles from 2·min and is capped at max; the
// wait is drawn uniformly from the upper half of that range, never below
// min, so it always lies in [min, max] and concurrent clients spread out.
// A min of zero disables the backoff.
func Backoff(retry int, min, max time.Duration) time.Duration {
	if min <= 0 {
		return 0
	}
	if max < min {
		max = min
	}
	hi := min
	for i := 0; i <= retry && hi < max; i++ {
		if hi > max/2 {
			hi = max
		} else {
			hi *= 2
		}
	}
	lo := hi / 2
	if lo < min {
		lo = min
	}
	return lo + rand.N(hi-lo+1)
}

// MaxHint is the longest wait a hint can ask for: a longer one (a hint of
// years, or an infinite one) means "much longer than any caller will wait"
// and is read as MaxHint, never discarded as unreadable, so a server asking
// for a very long pause is not retried at once instead.
const MaxHint = 365 * 24 * time.Hour

// ParseRetryAfter reads a Retry-After header value: delay-seconds (an integer,
// or a decimal as some servers send) or an HTTP date, relative to now. It
// reports false when the value is absent or unreadable. A date in the past
// means "now" (zero); a wait beyond MaxHint is MaxHint.
func ParseRetryAfter(value string, now time.Time) (time.Duration, bool) {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0, false
	}
	if secs, err := strconv.ParseFloat(value, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		// Out of range, ParseFloat returns ±Inf (or ±0): Seconds sorts them.
		return Seconds(secs)
	}
	when, err := http.ParseTime(value)
	if err != nil {
		return 0, false
	}
	return min(max(when.Sub(now), 0), MaxHint), true
}

// Seconds converts a hint in seconds into a duration, at most MaxHint.
// Negative and NaN hints are refused.
func Seconds(secs float64) (time.Duration, bool) {
	if !(secs >= 0) {
		return 0, false
	}
	if secs >= MaxHint.Seconds() {
		return MaxHint, true
	}
	return time.Duration(secs * float64(time.Second)), true
}

// Sleep waits for d or until ctx ends, whichever comes first, and returns
// ctx's error if it ended. A d of zero or less returns at once.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
