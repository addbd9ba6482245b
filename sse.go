package miosa

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/r3labs/sse/v2"
	"gopkg.in/cenkalti/backoff.v1"
)

// This file holds every piece of server-sent-events code in the SDK: the
// readiness stream behind WaitUntilReady, and the streamed exec behind
// Exec.Stream (at the end of the file). The r3labs client is used for frame
// parsing only; its defaults (an unbounded reconnect loop that ignores the
// context, undifferentiated status errors, unclosed bodies on rejection) are
// all replaced below, and each wait owns one short-lived client completely.

const (
	defaultReadyTimeout  = 30 * time.Second
	defaultReadyInterval = 10 * time.Millisecond

	// maxStreamEvent bounds one event block of a stream. A larger event
	// ends the stream: the readiness wait falls back to polling, and a
	// streamed exec ends with its outcome unknown.
	maxStreamEvent = 1 << 20
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

// streamRefusedError is a stream answer (readiness, or a streamed exec's
// 2xx) that is not an event stream: a non-200 status (404 from servers that
// predate the endpoint) or a 200 of another media type.
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
// 10 ms), one request at a time and honouring Retry-After. A refused stream
// costs at most 500 ms (and 256 KiB) of its body before polling starts,
// however long the body would run. WaitOptions.PollOnly skips the stream.
// The stream is opened at most once per call and is never reconnected.
//
// An open stream is not trusted to speak: a proxy may buffer it, and the
// server sends nothing on it for a sandbox that failed or was deleted. So
// while it is open without a verdict, readiness is also checked by polling,
// once a second (or every PollInterval, if longer), one request at a time.
//
// A sandbox that can never become ready ends the wait with a
// *MachineStateError, within about a second of the server saying so, in
// stream and poll mode alike: a readiness answer with status "error",
// "destroying" or "destroyed"; the same status from GET /computers/{id},
// which the wait also asks about once a second because a readiness answer
// need not carry a status; or a 404 for the sandbox (the error then matches
// ErrNotFound).
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
		err = s.client.streamWithProbe(waitCtx, conf, path+"/stream", check, max(p.interval, streamProbeInterval), &outcome)
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
// on, a second goroutine checks readiness by polling every probeInterval,
// and returns when either decides: nil for ready, errStreamTimeout for the
// server's "timeout" event, a *MachineStateError from a probe, or
// errNoVerdict when neither decided before the stream ended (polling
// follows). The probe makes one request at a time and never outlives the
// call; a stream that decides within probeInterval never starts it. A probe
// that fails for another reason stops probing and leaves the stream to
// decide.
func (c *Client) streamWithProbe(ctx context.Context, conf *settings, path string, check *readinessCheck, probeInterval time.Duration, outcome *readinessOutcome) error {
	streamCtx, stop := context.WithCancel(ctx)
	defer stop()
	probed := make(chan error, 1)
	startProbe := time.AfterFunc(probeInterval, func() {
		probed <- probe(streamCtx, probeInterval, check, stop)
	})
	verdict, streamErr := c.readinessStream(streamCtx, conf, path)
	stop()
	probeErr := errNoVerdict
	if !startProbe.Stop() {
		probeErr = <-probed // it started: wait until it has stopped
	}

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

// probe polls check every interval until it decides, and calls stop when it
// does. It returns nil for ready, the *MachineStateError that ended the wait,
// or errNoVerdict when ctx ended first or the poll failed for another
// reason.
func probe(ctx context.Context, interval time.Duration, check *readinessCheck, stop context.CancelFunc) error {
	err := pollUntil(ctx, interval, check.ready)
	var stateErr *MachineStateError
	if ctx.Err() != nil || (err != nil && !errors.As(err, &stateErr)) {
		return errNoVerdict
	}
	stop()
	return err
}

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
// why, so the caller can fall back to polling.
func (c *Client) readinessStream(ctx context.Context, conf *settings, path string) (streamVerdict, error) {
	streamCtx, stop := context.WithCancel(ctx)
	defer stop()

	client := sse.NewClient(conf.baseURL+path, sse.ClientMaxBufferSize(maxStreamEvent))
	// The library's default strategy retries for 15 minutes regardless of the
	// context; one attempt is all a wait wants, since polling is the fallback.
	client.ReconnectStrategy = &backoff.StopBackOff{}
	client.ResponseValidator = acceptEventStream
	// Same transport (pool, proxy, TLS, HTTP/2) as every other call, but no
	// client Timeout: it would also cut the body, i.e. the open stream.
	// The context bounds the stream instead.
	streaming := *conf.httpClient
	streaming.Timeout = 0
	client.Connection = &streaming
	header := http.Header{}
	c.setHeaders(header, conf, eventStreamAccept)
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
// is drained briefly, as any refused answer is (so the connection can be
// reused, but never waiting on a body that does not end), and closed here,
// because the library leaves a rejected body open; the subscription then
// ends without a retry.
func acceptEventStream(_ *sse.Client, resp *http.Response) error {
	contentType := resp.Header.Get("Content-Type")
	mediaType, _, _ := mime.ParseMediaType(contentType)
	if resp.StatusCode == http.StatusOK && mediaType == "text/event-stream" {
		resp.Body = &completeEvents{ReadCloser: resp.Body}
		return nil
	}
	drainBriefly(resp.Body)
	resp.Body.Close()
	return backoff.Permanent(&streamRefusedError{StatusCode: resp.StatusCode, ContentType: contentType})
}

// errEventTooLarge is a stream event over maxStreamEvent bytes.
var errEventTooLarge = fmt.Errorf("stream event larger than %d bytes", maxStreamEvent)

// completeEvents passes an event stream through only up to the end of its
// last complete event (one terminated by a blank line) and drops an
// unterminated tail when the stream ends. The parser would otherwise dispatch
// a half-received "event: ready" from a connection cut mid-event, which the
// event-stream format says must be discarded. A tail longer than
// maxStreamEvent fails the read instead of growing without bound. A UTF-8
// byte-order mark that starts the stream is removed, as the format requires:
// the parser would read it as part of the first field's name and lose the
// first event.
type completeEvents struct {
	io.ReadCloser
	// buf[off:released] is released and not yet read; buf[released:] is held
	// back until an event terminator arrives.
	buf           []byte
	off, released int
	err           error
	pastBOM       bool // the stream's start has been checked for a byte-order mark
}

var utf8BOM = []byte("\xEF\xBB\xBF")

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
		r.err = err
		if !r.pastBOM {
			if len(r.buf) < len(utf8BOM) && bytes.HasPrefix(utf8BOM, r.buf) && err == nil {
				continue // the mark may still be arriving
			}
			r.pastBOM = true
			if bytes.HasPrefix(r.buf, utf8BOM) {
				r.buf = r.buf[:copy(r.buf, r.buf[len(utf8BOM):])]
			}
			held = 0
		}
		r.released = lastEventEnd(r.buf, held)
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

// The streamed exec: the events of POST /sandboxes/{id}/exec/stream, read
// with the library's frame parser straight from the answer the pipeline
// hands over. The library's client is not used here: it can only GET, and
// its read loop runs on a goroutine of its own, while this stream is read on
// the caller's goroutine, one event per step of the caller's loop.

// Event names of the streamed exec. Every other event and every comment is
// ignored.
const (
	eventStdout = "stdout"
	eventStderr = "stderr"
	eventExit   = "exit"
)

// errNoExit is a streamed exec that ended cleanly without its exit event.
var errNoExit = errors.New("the stream ended before the command's exit event")

// readExecStream reads a streamed exec's answer and passes each output line,
// then the exit, to yield as soon as its event is complete. It returns nil
// after the exit event or once yield returns false (the caller has what it
// wanted: not a failure), and otherwise why the stream ended without a trustworthy exit: ctx's error, a
// broken or oversized stream, a malformed event, or an exit carrying an
// error object.
func readExecStream(ctx context.Context, resp *http.Response, yield func(ExecEvent) bool) error {
	if mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); resp.StatusCode != http.StatusOK || mediaType != "text/event-stream" {
		return &streamRefusedError{StatusCode: resp.StatusCode, ContentType: resp.Header.Get("Content-Type")}
	}
	events := sse.NewEventStreamReader(shortReads{&completeEvents{ReadCloser: resp.Body}}, maxStreamEvent)
	var scratch execLineData
	for {
		block, err := events.ReadEvent()
		if err != nil {
			// The parser reports a read cut by cancellation as a clean end
			// (io.EOF): only the context can tell them apart.
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			switch {
			case err == io.EOF:
				return errNoExit
			case errors.Is(err, bufio.ErrTooLong):
				return errEventTooLarge
			}
			return fmt.Errorf("the stream broke before the command's exit event: %w", err)
		}
		ev, ok, err := decodeExecEvent(block, &scratch)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if !yield(ev) || ev.Kind == ExecExit {
			return nil
		}
	}
}

// shortReads hands the event parser at most maxParserRead bytes per read.
// The parser looks for the end of an event by searching everything it has
// buffered and not yet returned, once per event and once per kind of line
// end; fed a network-sized read of many small events it searches the same
// bytes over and over (quadratic in the read's size), which made it the
// slowest step of a busy stream. Short reads bound that rescan; they cost a
// copy from the buffer completeEvents already holds.
type shortReads struct{ r io.Reader }

// maxParserRead is the most shortReads passes on at once: a few output
// lines' worth.
const maxParserRead = 512

func (s shortReads) Read(p []byte) (int, error) {
	return s.r.Read(p[:min(len(p), maxParserRead)])
}

// execLineData is the data of a stdout or stderr event.
type execLineData struct {
	Line string `json:"line"`
}

// decodeExecEvent reads one event block of a streamed exec. It reports false
// for comments and events other than stdout, stderr and exit. out is where
// an output line is decoded: one reused for every event of a stream saves
// an allocation per line.
func decodeExecEvent(block []byte, out *execLineData) (ExecEvent, bool, error) {
	name, data := eventFields(block)
	switch string(name) {
	case eventStdout, eventStderr:
		*out = execLineData{}
		if err := json.Unmarshal(data, out); err != nil {
			return ExecEvent{}, false, fmt.Errorf("malformed %s event: %w", name, err)
		}
		kind := ExecStdout
		if string(name) == eventStderr {
			kind = ExecStderr
		}
		return ExecEvent{Kind: kind, Line: out.Line}, true, nil
	case eventExit:
		var exit struct {
			ExitCode int             `json:"exit_code"`
			TimedOut bool            `json:"timed_out"`
			Error    json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(data, &exit); err != nil {
			return ExecEvent{}, false, fmt.Errorf("malformed exit event: %w", err)
		}
		if len(exit.Error) > 0 && string(exit.Error) != "null" {
			return ExecEvent{}, false, newStreamAbortedError(exit.Error)
		}
		if exit.TimedOut {
			exit.ExitCode = -1
		}
		return ExecEvent{Kind: ExecExit, ExitCode: exit.ExitCode, TimedOut: exit.TimedOut}, true, nil
	}
	return ExecEvent{}, false, nil
}

// eventFields returns the event name and data of one event block, read as
// the event-stream format says: lines end at CR, LF or CRLF; a line starting
// with a colon is a comment; one space after a field's colon is dropped; a
// field without a colon has an empty value; several data lines are joined
// with LF. Other fields (id, retry) mean nothing to an exec stream. Both
// results point into block unless data lines had to be joined.
func eventFields(block []byte) (name, data []byte) {
	dataLines := 0
	for len(block) > 0 {
		end := bytes.IndexAny(block, "\r\n")
		line := block
		if end < 0 {
			block = nil
		} else {
			line = block[:end]
			if block[end] == '\r' && end+1 < len(block) && block[end+1] == '\n' {
				end++
			}
			block = block[end+1:]
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			name = value
		case "data":
			if dataLines++; dataLines == 1 {
				data = value
			} else {
				data = append(append(slices.Clip(data), '\n'), value...)
			}
		}
	}
	return name, data
}

// streamAbortedError is an exit event that carried an error object: the
// server ended the stream abnormally and cannot say what became of the
// command. Its texts come from the server, capped to one line.
type streamAbortedError struct {
	Code, Message, RequestID string
}

func newStreamAbortedError(raw json.RawMessage) *streamAbortedError {
	var obj struct {
		Code      json.RawMessage `json:"code"`
		Message   json.RawMessage `json:"message"`
		RequestID json.RawMessage `json:"request_id"`
	}
	if json.Unmarshal(raw, &obj) != nil {
		return &streamAbortedError{Message: capText(string(raw), maxErrorMessage)}
	}
	return &streamAbortedError{
		Code:      capText(jsonString(obj.Code), maxErrorCode),
		Message:   capText(jsonString(obj.Message), maxErrorMessage),
		RequestID: capText(jsonString(obj.RequestID), maxRequestID),
	}
}

func (e *streamAbortedError) Error() string {
	var b strings.Builder
	b.WriteString("the stream ended with an error instead of the command's exit")
	if e.Code != "" {
		b.WriteString(": " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.RequestID != "" {
		b.WriteString(" (request_id=" + e.RequestID + ")")
	}
	return b.String()
}
