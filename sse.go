package miosa

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"time"

	"github.com/r3labs/sse/v2"
	"gopkg.in/cenkalti/backoff.v1"
)

// This file holds every piece of server-sent-events code in the SDK: the
// readiness stream behind WaitUntilReady. The r3labs client is used for frame
// parsing only; its defaults (an unbounded reconnect loop that ignores the
// context, undifferentiated status errors, unclosed bodies on rejection) are
// all replaced below, and each wait owns one short-lived client completely.

const (
	defaultReadyTimeout  = 30 * time.Second
	defaultReadyInterval = 10 * time.Millisecond

	// maxStreamEvent bounds one event block of the readiness stream. A larger
	// event ends the stream and the wait falls back to polling.
	maxStreamEvent = 1 << 20
	// maxStreamDrain is how much of a refused stream response is read so its
	// connection can be reused; beyond it the connection is closed.
	maxStreamDrain = 4 << 10
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

// streamRefusedError is a readiness stream answer that is not an event
// stream: a non-200 status (404 from servers that predate the endpoint) or a
// 200 of another media type.
type streamRefusedError struct {
	StatusCode  int
	ContentType string
}

func (e *streamRefusedError) Error() string {
	if e.StatusCode == http.StatusOK {
		return fmt.Sprintf("stream answered 200 with content type %q, not text/event-stream", e.ContentType)
	}
	return fmt.Sprintf("stream answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
}

// WaitUntilReady waits until the server reports the sandbox ready to run
// commands, and reports whether it became ready. It sends only reads.
//
// It first opens the server's readiness stream
// (GET /sandboxes/{id}/readiness/stream, server-sent events), which answers
// the moment the sandbox is ready. Only a complete event named exactly
// "ready" or "timeout" decides; other events, comments and an event cut off
// by the end of the stream are ignored. When that stream is unavailable (a
// 404 from a server that predates it, any other refusal, a network failure,
// or the stream ending without a verdict) it polls
// GET /sandboxes/{id}/readiness every WaitOptions.PollInterval (default
// 10 ms), one request at a time and honouring Retry-After.
// WaitOptions.PollOnly skips the stream. The stream is opened at most once
// per call and is never reconnected.
//
// The caller can rely on:
//   - (true, nil) when the server reports the sandbox ready;
//   - (false, nil) when the server's own wait expires (its "timeout" event;
//     no polling follows) or when WaitOptions.Timeout (default 30 s), which
//     bounds the stream and polling together, passes;
//   - an error wrapping ctx's error, promptly, when ctx ends first;
//   - an error when a poll fails permanently (401, 403, 404 and other
//     non-transient answers); 429, 5xx and network errors are polled through.
//
// Every request carries the same authentication, user agent and extra
// headers as any other call. Connection cost: while the stream is open it
// holds one HTTP/1.1 connection to itself, so n concurrent waits over
// HTTP/1.1 hold n connections, and a stream ended before the server closed
// it takes its connection with it rather than returning it to the pool. Over
// HTTP/2, which the default client attempts, streams are multiplexed on one
// connection up to the server's concurrent-stream limit.
func (s *SandboxesService) WaitUntilReady(ctx context.Context, id string, wait WaitOptions, opts ...Option) (bool, error) {
	path, err := sandboxPath(id, "/readiness")
	if err != nil {
		return false, err
	}
	timeout, interval, err := wait.resolve(defaultReadyTimeout, defaultReadyInterval)
	if err != nil {
		return false, err
	}
	st, err := s.client.settingsFor(opts)
	if err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("miosa: waiting for sandbox %s to be ready: %w", id, err)
	}
	start := time.Now()
	waitCtx, cancel := context.WithTimeoutCause(ctx, timeout, errLocalTimeout)
	defer cancel()

	decision := readinessDecision{path: path, start: start}
	if !wait.PollOnly {
		verdict, streamErr := s.client.readinessStream(waitCtx, st, path+"/stream")
		decision.streamErr = streamErr
		switch verdict {
		case verdictReady:
			return decision.finish(ctx, st, "stream", true, nil)
		case verdictTimeout:
			return decision.finish(ctx, st, "stream", false, nil)
		}
	}

	if waitCtx.Err() != nil {
		err = context.Cause(waitCtx)
	} else {
		// Retries are off: each poll is one attempt, and the poll loop itself
		// retries transient failures without ever having two in flight.
		pollOpts := append(opts[:len(opts):len(opts)], WithMaxRetries(0))
		err = pollUntil(waitCtx, interval, func(ctx context.Context) (bool, error) {
			r, err := s.Readiness(ctx, id, pollOpts...)
			if err != nil {
				return false, err
			}
			return r.Ready, nil
		})
	}
	switch {
	case err == nil:
		return decision.finish(ctx, st, "poll", true, nil)
	case ctx.Err() != nil:
		return decision.finish(ctx, st, "context", false,
			fmt.Errorf("miosa: waiting for sandbox %s to be ready: %w", id, ctx.Err()))
	case errors.Is(err, errLocalTimeout):
		return decision.finish(ctx, st, "local timeout", false, nil)
	}
	return decision.finish(ctx, st, "poll", false, err)
}

// readinessDecision gathers what the one debug line of a wait reports.
type readinessDecision struct {
	path      string
	start     time.Time
	streamErr error // why the stream did not decide; nil when it did or was skipped
}

// finish logs which path decided the wait and returns its result.
func (d *readinessDecision) finish(ctx context.Context, s *settings, decidedBy string, ready bool, err error) (bool, error) {
	if s.logger != nil && s.logger.Enabled(ctx, slog.LevelDebug) {
		attrs := []slog.Attr{
			slog.String("path", d.path),
			slog.String("decided_by", decidedBy),
			slog.Bool("ready", ready),
			slog.Duration("duration", time.Since(d.start)),
		}
		if d.streamErr != nil {
			attrs = append(attrs, slog.String("stream_fallback", d.streamErr.Error()))
		}
		if err != nil {
			attrs = append(attrs, slog.String("error", err.Error()))
		}
		s.logger.LogAttrs(ctx, slog.LevelDebug, "miosa: readiness wait", attrs...)
	}
	return ready, err
}

// readinessStream opens the readiness stream once and listens until it
// delivers a verdict, ends, fails, or ctx ends. Without a verdict it returns
// why, so the caller can fall back to polling.
func (c *Client) readinessStream(ctx context.Context, s *settings, path string) (streamVerdict, error) {
	streamCtx, stop := context.WithCancel(ctx)
	defer stop()

	client := sse.NewClient(s.baseURL+path, sse.ClientMaxBufferSize(maxStreamEvent))
	// The library's default strategy retries for 15 minutes regardless of the
	// context; one attempt is all a wait wants, since polling is the fallback.
	client.ReconnectStrategy = &backoff.StopBackOff{}
	client.ResponseValidator = acceptEventStream
	// Same transport (pool, proxy, TLS, HTTP/2) as every other call, but no
	// client Timeout: it would also cut the body, i.e. the open stream.
	// The context bounds the stream instead.
	streaming := *s.httpClient
	streaming.Timeout = 0
	client.Connection = &streaming
	header := http.Header{}
	c.setHeaders(header, s, eventStreamAccept)
	for k, v := range header {
		if len(v) > 0 {
			client.Headers[k] = v[0]
		}
	}

	verdict := verdictNone
	// The handler runs on this goroutine, inside SubscribeRawWithContext, so
	// the verdict needs no lock. The library cannot be told to stop from the
	// handler; cancelling the stream's context ends the body read.
	err := client.SubscribeRawWithContext(streamCtx, func(ev *sse.Event) {
		if verdict != verdictNone {
			return
		}
		switch string(ev.Event) {
		case eventReady:
			verdict = verdictReady
		case eventTimeout:
			verdict = verdictTimeout
		default:
			return
		}
		stop()
	})
	// The return value cannot tell a verdict, a cancellation and a clean
	// close apart (all are nil): the recorded verdict and ctx decide.
	switch {
	case verdict != verdictNone:
		return verdict, nil
	case ctx.Err() != nil:
		return verdictNone, ctx.Err()
	case errors.Is(err, bufio.ErrTooLong):
		return verdictNone, errEventTooLarge
	case err != nil:
		return verdictNone, err
	}
	return verdictNone, errors.New("stream ended without a verdict")
}

// acceptEventStream admits only a 200 text/event-stream answer. Anything else
// is drained (up to a cap, so the connection can be reused) and closed here,
// because the library leaves a rejected body open, and ends the subscription
// without a retry.
func acceptEventStream(_ *sse.Client, resp *http.Response) error {
	contentType := resp.Header.Get("Content-Type")
	mediaType, _, _ := mime.ParseMediaType(contentType)
	if resp.StatusCode == http.StatusOK && mediaType == "text/event-stream" {
		resp.Body = &completeEvents{ReadCloser: resp.Body}
		return nil
	}
	_, _ = io.CopyN(io.Discard, resp.Body, maxStreamDrain)
	resp.Body.Close()
	return backoff.Permanent(&streamRefusedError{StatusCode: resp.StatusCode, ContentType: contentType})
}

// errEventTooLarge is a readiness stream event over maxStreamEvent bytes.
var errEventTooLarge = fmt.Errorf("stream event larger than %d bytes", maxStreamEvent)

// completeEvents passes an event stream through only up to the end of its
// last complete event (one terminated by a blank line) and drops an
// unterminated tail when the stream ends. The parser would otherwise dispatch
// a half-received "event: ready" from a connection cut mid-event, which the
// event-stream format says must be discarded. A tail longer than
// maxStreamEvent fails the read instead of growing without bound.
type completeEvents struct {
	io.ReadCloser
	// buf[off:released] is released and not yet read; buf[released:] is held
	// back until an event terminator arrives.
	buf           []byte
	off, released int
	err           error
}

func (r *completeEvents) Read(p []byte) (int, error) {
	for r.off == r.released {
		if r.err != nil {
			return 0, r.err
		}
		held := copy(r.buf, r.buf[r.released:])
		r.buf, r.off, r.released = r.buf[:held], 0, 0
		if held > maxStreamEvent {
			r.err = errEventTooLarge
			continue
		}
		if cap(r.buf)-held < 512 {
			r.buf = slices.Grow(r.buf, max(4<<10, held))
		}
		n, err := r.ReadCloser.Read(r.buf[held:cap(r.buf)])
		r.buf = r.buf[:held+n]
		r.released = lastEventEnd(r.buf, held)
		r.err = err
	}
	n := copy(p, r.buf[r.off:r.released])
	r.off += n
	return n, nil
}

// lastEventEnd returns the end of the last event terminator in b that ends
// after from, or 0 when there is none. The terminators are those the parser
// splits on: two line ends in a row, in any mix of CR, LF and CRLF.
func lastEventEnd(b []byte, from int) int {
	for end := len(b); end > from && end >= 2; end-- {
		switch b[end-1] {
		case '\r':
			if b[end-2] == '\r' {
				return end
			}
		case '\n':
			if b[end-2] == '\n' || (end >= 3 && b[end-3] == '\n' && b[end-2] == '\r') {
				return end
			}
		}
	}
	return 0
}
