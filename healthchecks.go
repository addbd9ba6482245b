package miosa

import (
	"context"
	"errors"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// healthChecks runs the checks that guard a Client's open readiness
// streams (see streamWithProbe): an open stream is not trusted to speak, so
// each is checked by polling every interval until it decides. The checks
// of all a Client's open streams are scheduled here together: the stream
// due longest ago goes first, at most healthCheckRate checks start a second
// and at most maxChecksInFlight run at once, each on a goroutine of its
// own that ends with it. A handful of open waits is checked once a second
// each, as if alone; two thousand cost the API healthCheckRate checks a
// second, not two thousand, and no goroutine waits beside each of them.
// Nothing runs while no stream is open.
type healthChecks struct {
	mu       sync.Mutex
	open     map[*streamGuard]struct{}
	inFlight int
	timer    *time.Timer // fires at timerAt, when the next check can start; nil while none is open
	timerAt  time.Time
	limiter  *rate.Limiter
}

const (
	// healthCheckRate bounds the checks a Client starts a second, for all
	// its open streams together; a check is one or two requests.
	healthCheckRate = 20
	// maxChecksInFlight bounds the checks that run at once, so that a slow
	// server does not gather goroutines.
	maxChecksInFlight = 8
)

// streamGuard is one open stream's checks.
type streamGuard struct {
	checks   *healthChecks
	check    *readinessCheck
	ctx      context.Context // the stream's: its checks run under it
	stop     context.CancelFunc
	interval time.Duration
	due      time.Time
	running  chan struct{} // while a check runs; closed when it ends
	verdict  error         // errNoVerdict until a check decides
	over     bool          // decided, or checking failed for good
}

// guard starts checking an open stream every interval, the first check
// due one interval from now. A check that decides (the sandbox is ready,
// or can never be) records it and calls stop, which must end the stream.
func (h *healthChecks) guard(ctx context.Context, stop context.CancelFunc, check *readinessCheck, interval time.Duration) *streamGuard {
	g := &streamGuard{checks: h, check: check, ctx: ctx, stop: stop, interval: interval,
		due: time.Now().Add(interval), verdict: errNoVerdict}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.open == nil {
		h.open = map[*streamGuard]struct{}{}
		h.limiter = rate.NewLimiter(healthCheckRate, healthCheckRate)
	}
	h.open[g] = struct{}{}
	if h.timerAt.IsZero() || g.due.Before(h.timerAt) {
		h.schedule(time.Now())
	}
	return g
}

// end stops checking the stream, waits for a check still running (its
// context, the stream's, has ended) and returns what the checks decided:
// nil for ready, the *MachineStateError, or errNoVerdict.
func (g *streamGuard) end() error {
	h := g.checks
	h.mu.Lock()
	delete(h.open, g)
	running := g.running
	if len(h.open) == 0 && h.timer != nil {
		h.timer.Stop()
		h.timer, h.timerAt = nil, time.Time{}
	}
	h.mu.Unlock()
	if running != nil {
		<-running
	}
	return g.verdict
}

// schedule starts the checks that are due, as the rate and the bound on
// checks in flight allow, and sets the timer for when the next one can
// start. h.mu is held.
func (h *healthChecks) schedule(now time.Time) {
	var next time.Time
	for h.inFlight < maxChecksInFlight {
		g := h.mostOverdue()
		if g == nil {
			break
		}
		if g.due.After(now) {
			next = g.due
			break
		}
		r := h.limiter.ReserveN(now, 1)
		if delay := r.DelayFrom(now); delay > 0 {
			r.CancelAt(now)
			next = now.Add(delay)
			break
		}
		g.running = make(chan struct{})
		h.inFlight++
		go h.run(g)
	}
	switch {
	case next.IsZero() && h.timer != nil:
		// Every open stream's check is running or over: each that ends
		// schedules again.
		h.timer.Stop()
		h.timerAt = time.Time{}
	case next.IsZero():
	case h.timer == nil:
		h.timer, h.timerAt = time.AfterFunc(next.Sub(now), h.fire), next
	default:
		h.timer.Reset(next.Sub(now))
		h.timerAt = next
	}
}

// mostOverdue returns the open stream whose check is due first and not
// running, or nil. h.mu is held.
func (h *healthChecks) mostOverdue() *streamGuard {
	var first *streamGuard
	for g := range h.open {
		if g.running == nil && !g.over && (first == nil || g.due.Before(first.due)) {
			first = g
		}
	}
	return first
}

func (h *healthChecks) fire() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.open) > 0 {
		h.schedule(time.Now())
	}
}

// run makes one check of g's stream and records what it says: ready or
// never (the stream is then stopped), not yet (the next check is due an
// interval later, or after the server's Retry-After when it asked for
// one), or a failure that another check would repeat (checking stops and
// the stream decides alone).
func (h *healthChecks) run(g *streamGuard) {
	ready, err := g.check.ready(g.ctx)
	var stateErr *MachineStateError
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case g.ctx.Err() != nil:
	case ready || errors.As(err, &stateErr):
		g.verdict, g.over = err, true
		g.stop()
	case err != nil && !isTransient(err):
		g.over = true
	default:
		wait := g.interval
		var apiErr *APIError
		if errors.As(err, &apiErr) {
			wait = max(wait, apiErr.RetryAfter)
		}
		g.due = time.Now().Add(wait)
	}
	h.inFlight--
	close(g.running)
	g.running = nil
	if len(h.open) > 0 {
		h.schedule(time.Now())
	}
}
