package miosatest

import (
	"net/http"
	"time"

	"golang.org/x/time/rate"
)

// requestRate is the server's rate limit: a token bucket that accepts
// perSecond requests a second with a burst of as many, and refuses the rest
// with 429 and the Retry-After of the next free token, in whole seconds, as
// rate-limited APIs do.
type requestRate struct {
	limiter *rate.Limiter // nil: no limit
}

func newRequestRate(perSecond int) requestRate {
	if perSecond <= 0 {
		return requestRate{}
	}
	return requestRate{limiter: rate.NewLimiter(rate.Limit(perSecond), perSecond)}
}

// refuse answers 429 and reports true when the request is over the limit.
// A refused request takes no token: it costs the client an attempt, not
// the server its rate.
func (rr requestRate) refuse(w http.ResponseWriter) bool {
	if rr.limiter == nil {
		return false
	}
	now := time.Now()
	r := rr.limiter.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	if wait == 0 {
		return false
	}
	r.CancelAt(now)
	w.Header().Set("Retry-After", retryAfterSeconds(wait))
	writeError(w, http.StatusTooManyRequests, "RATE_LIMITED", "rate limit exceeded: slow down")
	return true
}

// WithRateLimit makes the server accept at most perSecond API requests a
// second, from every client together, with a burst of as many, as a
// rate-limited API does: a request over the limit is refused with 429
// RATE_LIMITED and a Retry-After header giving the whole seconds until one
// would be accepted (1 for any rate of at least one a second), before it
// is acted on. Refused requests appear in the request log with status 429.
// Readiness streams count like any request. Zero or less: no limit (the
// default).
func WithRateLimit(perSecond int) Option {
	return func(c *config) { c.engine.RateLimit = perSecond }
}
