package miosa

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/miosa-ai/miosa-go/internal/retry"
)

// pacer decides when each request a Client starts may go, for every
// goroutine using the Client at once. Until the server refuses a request
// with 429 (and without WithRateLimit) it lets every request go at once.
//
// A 429 holds every request the Client would start until its Retry-After
// has passed, whether or not the refused call is retried. From then on the
// Client paces the requests it starts, one at a time at even intervals, at
// a rate that starts at paceBeta of the rate the server accepted and grows
// back past it along the CUBIC curve (the AWS SDKs' adaptive retry mode
// does the same) for as long as the server refuses none. The rate the
// server accepted is the answers that were not 429 in the window before
// the refusal and until the hold ends, over that window (the Retry-After,
// between one second and paceWindowMax): a burst the server took 100 of
// before it asked for a second's pause measures 100 a second. Another 429
// starts the curve again from a new measure.
//
// Pacing waits are bounded by each call's context: a request whose turn
// would come after its deadline is not started, and fails at once. They
// are not retries and use none of the call's.
type pacer struct {
	// ceiling is WithRateLimit's fixed bound; nil without it. It is a
	// token bucket (golang.org/x/time/rate) shared by every request.
	ceiling *rate.Limiter
	// throttled is set by the first 429: from then on requests go through
	// the hold and the pace.
	throttled atomic.Bool

	mu sync.Mutex
	// accepted counts the answers that were not 429, per paceSlot.
	accepted windowCount
	// holdUntil is when the last 429's Retry-After ends: no request
	// starts before.
	holdUntil time.Time
	// refusedAt is when the last 429 came, window the span the accepted
	// rate is measured over; measure says that it has not been since.
	refusedAt time.Time
	window    time.Duration
	measure   bool
	// ratePeak is the rate the server accepted, measured after the last
	// 429 (requests per second); curveStart is where the curve back to it
	// starts (the hold's end) and next the earliest time the next request
	// may start.
	ratePeak   float64
	curveStart time.Time
	next       time.Time
}

const (
	// paceBeta is where the pace starts after a 429: this fraction of the
	// rate the server accepted. paceGrowth is CUBIC's scaling constant C:
	// with it the pace regains the accepted rate after
	// cbrt(rate·(1-paceBeta)/paceGrowth) seconds (4.2 s for 100 a second)
	// and then grows faster and faster. Both are the AWS SDKs' values.
	paceBeta   = 0.7
	paceGrowth = 0.4
	// paceMin is the slowest the pace goes, in requests a second, even
	// after a 429 to a server that accepted nothing.
	paceMin = 0.5
	// paceWindowMax bounds the window the accepted rate is measured over;
	// paceSlot is the resolution of that measure.
	paceWindowMax = 60 * time.Second
	paceSlot      = 100 * time.Millisecond
)

func (p *pacer) init(limit *rateLimitSetting) {
	if limit != nil {
		p.ceiling = rate.NewLimiter(rate.Limit(limit.perSecond), limit.burst)
	}
	p.accepted = newWindowCount(paceSlot, int(2*paceWindowMax/paceSlot)+1)
}

// answered records the server's answer to a request sent at start: a 429
// holds and paces every request from now on (hint being its Retry-After,
// capped by WithMaxRetryAfter, or 0); any other answer counts as one the
// server accepted.
func (p *pacer) answered(status int, hint time.Duration, start time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if status != http.StatusTooManyRequests {
		p.accepted.add(start)
		return
	}
	now := time.Now()
	p.throttled.Store(true)
	p.refusedAt = now
	p.window = min(max(hint, time.Second), paceWindowMax)
	p.measure = true
	if until := now.Add(hint); until.After(p.holdUntil) {
		p.holdUntil = until
	}
}

// wait returns when a request asked to start at now may start, and that
// time; or an error, at once, when it could not start before ctx's
// deadline, or when ctx ends first.
func (p *pacer) wait(ctx context.Context, now time.Time) (time.Time, error) {
	if p.ceiling == nil && !p.throttled.Load() {
		return now, nil
	}
	for {
		at, why, err := p.turn(ctx, now)
		if err != nil {
			return now, err
		}
		if err := retry.Sleep(ctx, at.Sub(now)); err != nil {
			return now, fmt.Errorf("%w while its turn was %s away (%s)", err, at.Sub(now).Round(time.Millisecond), why)
		}
		now = time.Now()
		// A turn taken during a hold is the hold's end, after which the
		// request takes a paced turn; and a 429 that came while a request
		// waited for its turn holds it like the rest.
		if why != whyHeld && !p.holding(now) {
			return now, nil
		}
	}
}

// Why a request waits, as pacing errors say it.
const (
	whyHeld      = "requests are held after the server's 429 (Retry-After)"
	whyPaced     = "requests are paced after the server's 429"
	whyRateLimit = "WithRateLimit"
)

// turn takes the next turn to start a request at or after now, and says
// what decided it; or refuses, taking nothing, when the turn would come
// after ctx's deadline.
func (p *pacer) turn(ctx context.Context, now time.Time) (time.Time, string, error) {
	deadline, hasDeadline := ctx.Deadline()
	late := func(at time.Time) bool { return hasDeadline && !at.Before(deadline) }
	at, why := now, ""
	if p.throttled.Load() {
		p.mu.Lock()
		if now.Before(p.holdUntil) {
			// The paced turn is taken once the hold is over, when what
			// the server accepted until then can be measured.
			at, why = p.holdUntil, whyHeld
			p.mu.Unlock()
			if late(at) {
				return time.Time{}, "", &pacingError{wait: at.Sub(now), why: why}
			}
			return at, why, nil
		}
		at, why = p.nextTurn(now), whyPaced
		if late(at) {
			p.giveBack(at)
			p.mu.Unlock()
			return time.Time{}, "", &pacingError{wait: at.Sub(now), why: why}
		}
		p.mu.Unlock()
	}
	if p.ceiling != nil {
		r := p.ceiling.ReserveN(now, 1)
		if ceilingAt := now.Add(r.DelayFrom(now)); ceilingAt.After(at) {
			if late(ceilingAt) {
				r.CancelAt(now)
				if why == whyPaced {
					p.mu.Lock()
					p.giveBack(at)
					p.mu.Unlock()
				}
				return time.Time{}, "", &pacingError{wait: ceilingAt.Sub(now), why: whyRateLimit}
			}
			at, why = ceilingAt, whyRateLimit
		}
	}
	return at, why, nil
}

// nextTurn returns when the next paced request may start, at or after now,
// and books it. The interval after it is one over the rate at that very
// time, so that a queue of requests booked at once follows the curve as it
// grows. p.mu is held.
func (p *pacer) nextTurn(now time.Time) time.Time {
	if p.measure {
		p.measure = false
		accepted := p.accepted.sum(p.refusedAt.Add(-p.window), now)
		p.ratePeak = max(float64(accepted)/p.window.Seconds(), paceMin)
		p.curveStart, p.next = now, now
	}
	at := now
	if p.next.After(at) {
		at = p.next
	}
	p.next = at.Add(p.interval(at))
	return at
}

// interval is the time between two paced requests, the first at at: one
// over the curve's rate then. p.mu is held.
func (p *pacer) interval(at time.Time) time.Duration {
	return time.Duration(float64(time.Second) / cubicRate(p.ratePeak, at.Sub(p.curveStart)))
}

// giveBack returns a turn at at that will not be used, when it is the
// last one booked; a turn in the middle of the queue stays a gap. p.mu is
// held.
func (p *pacer) giveBack(at time.Time) {
	if p.next.Equal(at.Add(p.interval(at))) {
		p.next = at
	}
}

// holding reports whether a 429's hold is on at now.
func (p *pacer) holding(now time.Time) bool {
	if !p.throttled.Load() {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return now.Before(p.holdUntil)
}

// cubicRate is the pace, in requests a second, elapsed into the curve back
// to peak: paceBeta·peak at its start, peak after
// k = cbrt(peak·(1-paceBeta)/paceGrowth) seconds, growing ever faster
// after.
func cubicRate(peak float64, elapsed time.Duration) float64 {
	k := math.Cbrt(peak * (1 - paceBeta) / paceGrowth)
	t := elapsed.Seconds() - k
	return max(paceGrowth*t*t*t+peak, paceMin)
}

// pacingError is a request not started because its turn would have come
// after its context's deadline. It matches context.DeadlineExceeded, and
// ErrRateLimited when the turn was the server's doing (a 429) rather than
// WithRateLimit's.
type pacingError struct {
	wait time.Duration
	why  string
}

func (e *pacingError) Error() string {
	return fmt.Sprintf("its turn would come in %s, after the context's deadline (%s)", e.wait.Round(time.Millisecond), e.why)
}

func (e *pacingError) Is(target error) bool {
	return target == context.DeadlineExceeded || e.why != whyRateLimit && target == ErrRateLimited
}
