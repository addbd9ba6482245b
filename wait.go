package miosa

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/miosa-ai/miosa-go/internal/retry"
)

// WaitOptions tunes a wait: Sandboxes.WaitUntilReady, Computers.WaitForStatus,
// SandboxTemplates.WaitForBuild, Snapshots.WaitReady and Processes.Wait.
// The zero value uses the defaults.
type WaitOptions struct {
	// Timeout bounds the whole wait; 0 means 30 s for sandbox readiness, 5
	// min for computer status, template builds and processes, 10 min for
	// snapshots.
	Timeout time.Duration
	// PollOnly skips the readiness stream and polls from the start.
	PollOnly bool
	// PollInterval is the time between polls; 0 means the client's
	// WithPollInterval, else 10 ms for sandbox readiness, 1 s for processes
	// and 2 s for computer status, template builds and snapshots. Beside an
	// open readiness stream, readiness is polled every second, or every
	// PollInterval when that is longer.
	PollInterval time.Duration
}

// errLocalTimeout marks a wait ended by WaitOptions.Timeout rather than by
// the caller's context.
var errLocalTimeout = errors.New("wait timeout")

// poller is one wait that polls: what it waits for, its limits, and the
// options every poll is sent with. Every wait in the SDK is run by one.
type poller struct {
	what     string        // what is awaited, as error messages name it
	timeout  time.Duration // the wait's own bound
	interval time.Duration // between polls
	// opts are the caller's per-call options with the pipeline's retries
	// off: each poll is one attempt, and the poll loop is the retry, so two
	// polls are never in flight at once.
	opts []Option
}

// poller resolves w against c's settings (with opts) and a wait's defaults.
// Negative durations are refused with ErrInvalidParams.
func (w WaitOptions) poller(c *Client, what string, defaultTimeout, defaultInterval time.Duration, opts []Option) (*poller, error) {
	if w.Timeout < 0 || w.PollInterval < 0 {
		return nil, fmt.Errorf("%w: wait timeout and poll interval must not be negative", ErrInvalidParams)
	}
	conf, err := c.settingsFor(opts)
	if err != nil {
		return nil, err
	}
	return &poller{
		what:     what,
		timeout:  cmp.Or(w.Timeout, defaultTimeout),
		interval: cmp.Or(w.PollInterval, conf.pollInterval, defaultInterval),
		opts:     append(opts[:len(opts):len(opts)], WithMaxRetries(0)),
	}, nil
}

// bound returns ctx bounded by the wait's timeout; when the timeout ends it,
// its cause is errLocalTimeout.
func (p *poller) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, p.timeout, errLocalTimeout)
}

// run polls check under the wait's timeout and says how the wait ended (see
// ended).
func (p *poller) run(ctx context.Context, check func(context.Context) (bool, error)) error {
	waitCtx, cancel := p.bound(ctx)
	defer cancel()
	return p.ended(ctx, pollUntil(waitCtx, p.interval, check))
}

// ended says how a wait run under bound(ctx) ended, the same way for every
// wait: nil once it was done; errLocalTimeout when the wait's own timeout
// passed first; the caller's context error, naming what was awaited, when
// ctx ended; otherwise err as it is, a permanent failure. The caller's
// context and the local timeout are told apart because only the former is
// the caller's own decision to stop.
func (p *poller) ended(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("miosa: waiting for %s: %w", p.what, ctx.Err())
	case errors.Is(err, errLocalTimeout):
		return errLocalTimeout
	}
	return err
}

// timedOut is the error of a wait whose own timeout passed; state says
// where the awaited thing was last seen.
func (p *poller) timedOut(state string) error {
	return fmt.Errorf("%w: waiting for %s: %s after %s", ErrWaitTimeout, p.what, state, p.timeout)
}

// pollRead is what every poll is to the retry policy: a read, which may be
// sent again.
var pollRead = call{method: http.MethodGet}

// isTransient reports whether a failed poll is worth another one. A refusal
// or a failure to get an answer is judged by the SDK's retry policy
// (shouldRetry); anything else, such as an answer that cannot be decoded,
// would fail the same way again.
func isTransient(err error) bool {
	var (
		apiErr *APIError
		urlErr *url.Error
	)
	if !errors.As(err, &apiErr) && !errors.As(err, &urlErr) {
		return false
	}
	again, _ := shouldRetry(&pollRead, err)
	return again
}

// pollUntil calls check every interval (or after the server's Retry-After
// hint, if longer) until it reports done, or fails with a permanent error,
// or ctx ends. Transient failures do not end the wait. Each check makes one
// request at a time and is not retried by the pipeline: the poll loop is the
// retry.
func pollUntil(ctx context.Context, interval time.Duration, check func(context.Context) (bool, error)) error {
	for {
		done, err := check(ctx)
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if err == nil && done {
			return nil
		}
		wait := interval
		if err != nil {
			if !isTransient(err) {
				return err
			}
			var apiErr *APIError
			if errors.As(err, &apiErr) {
				wait = max(wait, apiErr.RetryAfter)
			}
		}
		if err := retry.Sleep(ctx, wait); err != nil {
			return context.Cause(ctx)
		}
	}
}

// MachineStateError is returned by Computers.WaitForStatus and
// Sandboxes.WaitUntilReady when the machine can no longer reach the awaited
// state, so waiting longer is pointless: the server reports it in state
// "error", being destroyed or destroyed, or no longer knows it (404). The
// wait ends as soon as the server says so rather than at its timeout.
//
// A wait for StatusError is not ended by "error", and a wait for
// StatusDestroying or StatusDestroyed is not ended by the states that lead
// there.
type MachineStateError struct {
	// ID is the computer's or sandbox's id.
	ID string
	// Status is the state the server reported: StatusError,
	// StatusDestroying or StatusDestroyed. A machine the server answers 404
	// for is reported as StatusDestroyed, with that answer in Err.
	Status ComputerStatus
	// Err is the server's 404 when the machine is gone, so that
	// errors.Is(err, ErrNotFound) holds; nil otherwise.
	Err error

	kind, want string // "computer" or "sandbox"; what the wait was for
}

// Error formats the failure as
// `miosa: computer cmp_1 is in state "error" while waiting for "running"`,
// or for a vanished machine
// `miosa: sandbox sb_1 is gone while waiting for it to be ready: ...404...`.
func (e *MachineStateError) Error() string {
	what := fmt.Sprintf("miosa: %s %s", cmp.Or(e.kind, "machine"), e.ID)
	want := cmp.Or(e.want, "the wanted state")
	if e.Err != nil {
		return fmt.Sprintf("%s is gone while waiting for %s: %v", what, want, e.Err)
	}
	return fmt.Sprintf("%s is in state %q while waiting for %s", what, e.Status, want)
}

// Unwrap returns the server's 404 answer for a machine that is gone.
func (e *MachineStateError) Unwrap() error { return e.Err }

// machineTarget is what a wait wants of one machine: the status it waits
// for, and how MachineStateError names the machine and the wait.
type machineTarget struct {
	kind, id string         // "computer" or "sandbox", and its id
	want     ComputerStatus // the status waited for
	wantText string         // the wait, as the error says it
}

// unreachable returns the MachineStateError of a machine found in status,
// or nil while the wanted status can still be reached. "error" is a dead end
// except on the way to destruction (deleting a failed machine is how it is
// cleaned up); a machine being destroyed only goes on to destroyed.
func (t machineTarget) unreachable(status ComputerStatus) error {
	dead := false
	switch status {
	case t.want:
	case StatusError:
		dead = t.want != StatusDestroying && t.want != StatusDestroyed
	case StatusDestroying, StatusDestroyed:
		dead = t.want != StatusDestroyed
	}
	if !dead {
		return nil
	}
	return &MachineStateError{ID: t.id, Status: status, kind: t.kind, want: t.wantText}
}

// gone turns a 404 for the machine into its MachineStateError; any other
// error is returned as it is.
func (t machineTarget) gone(err error) error {
	if !errors.Is(err, ErrNotFound) {
		return err
	}
	return &MachineStateError{ID: t.id, Status: StatusDestroyed, Err: err, kind: t.kind, want: t.wantText}
}
