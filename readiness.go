package miosa

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"
)

const (
	defaultReadyTimeout  = 30 * time.Second
	defaultReadyInterval = 10 * time.Millisecond
)

// Event names of the readiness stream that decide a wait. Every other event,
// comment or heartbeat is ignored.
const (
	eventReady   = "ready"
	eventTimeout = "timeout"
)

// streamVerdict is what the readiness stream said, if anything.
type streamVerdict int

const (
	verdictNone streamVerdict = iota
	verdictReady
	verdictTimeout
)

// WaitUntilReady waits until the server reports the sandbox ready to run
// commands and returns (true, nil), or (false, nil) when its time runs out
// first: a timeout is not an error, so always check the bool. It sends only
// reads.
//
// It first opens the server's readiness stream
// (GET /sandboxes/{id}/readiness/stream, server-sent events), which answers
// the moment the sandbox is ready. Only a complete event named exactly
// "ready" or "timeout" decides; other events, comments and an event cut off
// by the end of the stream are ignored. When that stream is unavailable (a
// 404 from a server that predates it, any other refusal, a network failure,
// or the stream ending without a verdict) it polls
// GET /sandboxes/{id}/readiness every WaitOptions.PollInterval (default
// 10 ms), one request at a time and honouring Retry-After. A refused stream
// costs at most 500 ms (and 256 KiB) of its body before polling starts,
// however long the body would run. WaitOptions.PollOnly skips the stream.
// The stream is opened at most once per call and is never reconnected.
//
// An open stream is not trusted to speak: a proxy may buffer it, and the
// server sends nothing on it for a sandbox that failed or was deleted. So
// while it is open without a verdict, readiness is also checked by polling,
// once a second (or every PollInterval, if longer), one check at a time.
// The checks of all the Client's open streams are scheduled together: at
// most 20 start a second in all, the stream due longest first, so a handful
// of open waits are each checked once a second, and 2,000 cost the API 20
// checks a second rather than 2,000.
//
// A sandbox that can never become ready ends the wait with a
// *MachineStateError, in stream and poll mode alike, within about a second
// of the server saying so (while up to 20 waits are open; with n open, the
// checks of each come round every n/20 seconds): a readiness answer with
// status "error", "destroying" or "destroyed"; the same status from
// GET /computers/{id}, which the wait also asks about once a second because
// a readiness answer need not carry a status; or a 404 for the sandbox (the
// error then matches ErrNotFound).
//
// The caller can rely on:
//   - (true, nil) when the server reports the sandbox ready;
//   - (false, nil) when the server's own wait expires (its "timeout" event;
//     no polling follows) or when WaitOptions.Timeout (default 30 s), which
//     bounds the stream and polling together, passes;
//   - (false, *MachineStateError) when the sandbox failed or is gone;
//   - an error wrapping ctx's error, promptly, when ctx ends first;
//   - an error when a poll fails permanently (401, 403 and other
//     non-transient answers); 429, 5xx and network errors are polled through.
//
// Every request carries the same authentication, user agent and extra
// headers as any other call, and is paced with the Client's others after a
// 429. Connection cost: while the stream is open it holds one HTTP/1.1
// connection to itself, so n concurrent waits over HTTP/1.1 hold n
// connections; after the verdict the wait gives the server up to 20 ms to
// end the response, which returns the connection to the pool (a stream the
// server keeps open takes its connection with it, and the Client's later
// waits then close theirs at once rather than wait on every verdict). Over HTTP/2, which the
// default client uses for https, streams are multiplexed on one connection
// up to the server's concurrent-stream limit, and another is dialled only
// when every one is full.
func (s *SandboxesService) WaitUntilReady(ctx context.Context, id string, wait WaitOptions, opts ...Option) (bool, error) {
	path, err := sandboxPath(id, "/readiness")
	if err != nil {
		return false, err
	}
	p, err := wait.poller(s.client, "sandbox "+id+" to be ready", defaultReadyTimeout, defaultReadyInterval, opts)
	if err != nil {
		return false, err
	}
	conf, err := s.client.settingsFor(opts)
	if err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, p.ended(ctx, err)
	}
	start := time.Now()
	waitCtx, cancel := p.bound(ctx)
	defer cancel()
	check := newReadinessCheck(s, id, p.opts, start)

	outcome := readinessOutcome{path: path, start: start}
	err = errNoVerdict
	if !wait.PollOnly {
		outcome.decidedBy = "stream"
		err = s.client.streamWithProbe(waitCtx, path+"/stream", p.opts, check, max(p.interval, streamProbeInterval), &outcome)
	}
	if errors.Is(err, errNoVerdict) {
		outcome.decidedBy = "poll"
		err = context.Cause(waitCtx)
		if err == nil {
			err = pollUntil(waitCtx, p.interval, check.ready)
		}
	}
	switch err = p.ended(ctx, err); {
	case err == nil:
		outcome.ready = true
	case errors.Is(err, errLocalTimeout):
		outcome.decidedBy, err = "local timeout", nil
	case ctx.Err() != nil:
		outcome.decidedBy = "context"
	case errors.Is(err, errStreamTimeout):
		err = nil
	}
	outcome.log(ctx, conf, err)
	return outcome.ready, err
}

const (
	// streamProbeInterval is how often readiness is checked by polling
	// while the stream is open without a verdict.
	streamProbeInterval = time.Second
	// statusCheckInterval is how often a readiness wait also asks for the
	// machine's own status.
	statusCheckInterval = time.Second
)

var (
	// errNoVerdict is a stream phase that did not decide the wait: polling
	// follows.
	errNoVerdict = errors.New("the stream gave no verdict")
	// errStreamTimeout is the server's "timeout" event: not ready, no
	// polling.
	errStreamTimeout = errors.New("the server's wait timed out")
)

// readinessCheck asks the server whether a sandbox is ready, and whether it
// can still become ready. It is used by one goroutine at a time.
type readinessCheck struct {
	sandboxes *SandboxesService
	opts      []Option
	// sandbox is what the wait wants: a sandbox that runs. Only a readiness
	// answer says it is ready, but its status says when it never will be.
	sandbox machineTarget
	// statusDue is when the machine's own status is next asked for. The
	// readiness answer's status is not known to be sent by every server, so
	// GET /computers/{id} is the authority on "error" and "destroyed".
	statusDue time.Time
}

func newReadinessCheck(s *SandboxesService, id string, opts []Option, start time.Time) *readinessCheck {
	return &readinessCheck{
		sandboxes: s,
		opts:      opts,
		sandbox:   machineTarget{kind: "sandbox", id: id, want: StatusRunning, wantText: "it to be ready"},
		statusDue: start.Add(statusCheckInterval),
	}
}

// ready is one poll: done when the sandbox is ready; a *MachineStateError
// when it is in a state it cannot become ready from, or gone.
func (c *readinessCheck) ready(ctx context.Context) (bool, error) {
	r, err := c.sandboxes.Readiness(ctx, c.sandbox.id, c.opts...)
	switch {
	case err == nil && r.Ready:
		return true, nil
	case err == nil:
		if stuck := c.sandbox.unreachable(ComputerStatus(r.Status)); stuck != nil {
			return false, stuck
		}
		if time.Now().Before(c.statusDue) {
			return false, nil
		}
	case !errors.Is(err, ErrNotFound):
		return false, err
	}
	// Due for a status check, or readiness answered 404: that may be a
	// sandbox that is gone, or only an endpoint this server lacks.
	c.statusDue = time.Now().Add(statusCheckInterval)
	m, statusErr := c.sandboxes.client.Computers.Get(ctx, c.sandbox.id, c.opts...)
	if statusErr != nil {
		return false, c.sandbox.gone(statusErr)
	}
	if stuck := c.sandbox.unreachable(m.Status); stuck != nil {
		return false, stuck
	}
	return false, err
}

// streamWithProbe listens to the readiness stream while, from probeInterval
// on, the client's health checks (healthchecks.go) poll readiness every
// probeInterval, and returns when either decides: nil for ready,
// errStreamTimeout for the server's "timeout" event, a *MachineStateError
// from a check, or errNoVerdict when neither decided before the stream
// ended (polling follows). A stream that decides within probeInterval is
// never checked; a check that fails for another reason stops the checking
// and leaves the stream to decide. No check outlives the call.
func (c *Client) streamWithProbe(ctx context.Context, path string, opts []Option, check *readinessCheck, probeInterval time.Duration, outcome *readinessOutcome) error {
	streamCtx, stop := context.WithCancel(ctx)
	defer stop()
	guard := c.traffic.checks.guard(streamCtx, stop, check, probeInterval)
	verdict, streamErr := c.readinessStream(streamCtx, path, opts)
	stop()
	probeErr := guard.end()

	switch {
	case verdict == verdictReady:
		return nil
	case verdict == verdictTimeout:
		return errStreamTimeout
	case !errors.Is(probeErr, errNoVerdict):
		outcome.decidedBy = "probe"
		return probeErr
	}
	outcome.streamErr = streamErr
	return errNoVerdict
}

// awaitStreamEnd gives a readiness stream that delivered its verdict over
// HTTP/1.1 up to streamEndWait to end: a server that ends the response
// after the verdict, as the fake does, then has the connection back in the
// pool, where a body closed before its end takes its connection with it.
// A server that keeps the stream open instead would make every wait that
// much slower to return, so the first stream it keeps open is the last one
// the Client waits for: later streams are closed at once. Over HTTP/2
// ending a stream early costs nothing.
func (t *traffic) awaitStreamEnd(resp *http.Response) {
	if resp.ProtoMajor == 1 && !t.streamsStayOpen.Load() && !drainWithin(resp.Body, streamEndWait) {
		t.streamsStayOpen.Store(true)
	}
}

// streamEndWait is how long a readiness stream's end is awaited after its
// verdict: a server that ends the response sends its end right after the
// verdict.
const streamEndWait = 20 * time.Millisecond

// readinessOutcome is how a readiness wait ended, for its one debug line.
type readinessOutcome struct {
	path      string
	start     time.Time
	decidedBy string // stream, probe, poll, local timeout or context
	ready     bool
	streamErr error // why the stream did not decide; nil when it did or was skipped
}

// log writes the wait's debug line: which path decided it, and how.
func (o *readinessOutcome) log(ctx context.Context, conf *settings, err error) {
	if conf.logger == nil || !conf.logger.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs := []slog.Attr{
		slog.String("path", o.path),
		slog.String("decided_by", o.decidedBy),
		slog.Bool("ready", o.ready),
		slog.Duration("duration", time.Since(o.start)),
	}
	if o.streamErr != nil {
		attrs = append(attrs, slog.String("stream_fallback", o.streamErr.Error()))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	conf.logger.LogAttrs(ctx, slog.LevelDebug, "miosa: readiness wait", attrs...)
}

// readinessStream opens the readiness stream once and listens until it
// delivers a verdict, ends, fails, or ctx ends. Without a verdict it returns
// why, so the caller can fall back to polling. The stream is never retried:
// polling is the fallback.
func (c *Client) readinessStream(ctx context.Context, path string, opts []Option) (streamVerdict, error) {
	verdict := verdictNone
	op := call{method: http.MethodGet, path: path, accept: eventStreamAccept, consume: func(resp *http.Response) error {
		events, err := newEventReader(resp)
		if err != nil {
			return err
		}
		for {
			ev, err := events.next(ctx)
			switch {
			case err == io.EOF:
				return errors.New("stream ended without a verdict")
			case err != nil:
				return err
			}
			switch string(ev.name) {
			case eventReady:
				verdict = verdictReady
			case eventTimeout:
				verdict = verdictTimeout
			default:
				continue
			}
			c.traffic.awaitStreamEnd(resp)
			return nil
		}
	}}
	_, err := c.send(ctx, op, opts) // opts turn retries off, as for every poll
	switch {
	case verdict != verdictNone:
		return verdict, nil
	case ctx.Err() != nil:
		return verdictNone, ctx.Err()
	}
	return verdictNone, err
}
