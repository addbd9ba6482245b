package miosa

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/miosa-ai/miosa-go/internal/retry"
)

// A followed process: the events of GET /sandboxes/{id}/processes/{pid}/stream,
// read through the one event reader (sse.go), and what Follow does when the
// stream ends before the process's exit.

const (
	// maxFollowReconnects is how many times in a row Follow opens the
	// stream again after a connection that brought nothing: no line, no
	// new event id, and open less than followSteadyTime.
	maxFollowReconnects = 5
	// followSteadyTime is how long a connection must stay open to count as
	// following, even if the process wrote nothing meanwhile: a proxy that
	// cuts quiet streams every minute is followed as long as the process
	// runs.
	followSteadyTime = 30 * time.Second
)

// Follow yields a process's output as it writes it
// (GET /sandboxes/{id}/processes/{pid}/stream, server-sent events), line by
// line as ExecStdout and ExecStderr events, then one ExecExit with its exit
// code: the sequence ends after it. Following a process that has already
// ended yields what the server kept of its output, then its exit. Following
// does not change the process; several followers may follow one process.
//
// A server may cut a long stream. When the stream ends or breaks before the
// exit event (or its exit event carries an error or no exit code), Follow
// asks Get:
//   - a process that has ended yields its ExecExit with the exit code Get
//     reports, once the server's stream has delivered all it kept: a stream
//     that broke (rather than ended) is opened again from the last event id,
//     as below, at most five times. A process that ended without an exit
//     code (the server does not say) ends the sequence with an error
//     matching ErrOutcomeUnknown: a missing code is never reported as 0.
//   - a process that still runs is followed again from where the stream
//     broke: the stream is opened again with Last-Event-ID, the id of the
//     last event received. That needs the server to have sent event ids
//     (the API documents monotonic ids); a server that sent none, or whose
//     last line came without one, cannot be resumed without losing or
//     repeating lines, and the sequence ends with an error matching
//     ErrStreamGap. The same error ends a stream that broke without ids
//     while the process may still have been running, or that the server
//     cut more than five times in a row without sending anything (each
//     connection open less than 30 s), or that carried an event larger than
//     1 MiB.
//
// Nothing is ever yielded twice: when ids are decimal numbers, an event at
// or before the one resumed from is skipped, so a server that ignores
// Last-Event-ID cannot make Follow repeat a line. Between reconnects Follow
// waits as between retries (WithRetryDelay), longer after each connection
// that brought nothing.
//
// Errors are yielded once, as the last pair: an *APIError when the server
// refuses the stream (after the retries any GET gets); an error matching
// errors.ErrUnsupported when the server has no process stream (404 or 405
// while Get finds the process: Logs and Wait still work), or ErrNotFound
// when the process does not exist; ErrStreamGap or ErrOutcomeUnknown as
// above; ctx's error when it ends, promptly, even while the stream waits
// for the process's next line.
//
// The stream is read on the caller's goroutine, one event per step of the
// loop, as Exec.Stream's is: nothing runs in the background. Breaking out
// of the loop closes the stream at once; the process goes on running (Stop
// ends it). The stream is bounded by ctx alone, not by WithRequestTimeout,
// which covers only the wait for its headers; it holds one HTTP/1.1
// connection (or one HTTP/2 stream) while open. Lines that contain the API
// key have it replaced with "[redacted]". A data field that is not a JSON
// object with a "line" string is the line itself, as the wire contract
// says.
func (s *ProcessesService) Follow(ctx context.Context, sandboxID, pid string, opts ...Option) iter.Seq2[ExecEvent, error] {
	return func(yield func(ExecEvent, error) bool) {
		path, err := processPath(sandboxID, pid, "/stream")
		if err != nil {
			yield(ExecEvent{}, err)
			return
		}
		f := &processFollow{processes: s, sandboxID: sandboxID, pid: pid, path: path, opts: opts, yield: yield}
		if err := f.run(ctx); err != nil {
			yield(ExecEvent{}, err)
		}
	}
}

// processFollow is one Follow: where its stream stands across connections.
type processFollow struct {
	processes            *ProcessesService
	sandboxID, pid, path string
	opts                 []Option
	yield                func(ExecEvent, error) bool

	// lastID is the id of the last event received, on any connection.
	lastID string
	// lineSinceID says a line was yielded after lastID was received (or
	// with no id at all): resuming after lastID would repeat it.
	lineSinceID bool
	// lineYielded says a line was yielded: the stream can no longer be
	// opened again from its start.
	lineYielded bool
	// reconnecting says the stream was open before.
	reconnecting bool
	// done says the caller has the exit, or stopped reading.
	done bool
}

// streamEnd is how one connection of a followed stream ended, short of the
// exit.
type streamEnd int

const (
	// streamRefused: no stream; the error is the server's refusal, or no
	// answer came.
	streamRefused streamEnd = iota
	// streamClosed: the server ended the stream, or sent an exit without a
	// code: it has sent what it had.
	streamClosed
	// streamBroken: the stream was cut, or ended abnormally (an exit
	// carrying an error, an event that cannot be read).
	streamBroken
)

// run follows the process until its exit is yielded, the caller stops, or
// the error it returns.
func (f *processFollow) run(ctx context.Context) error {
	quiet := 0  // connections in a row that brought nothing
	drains := 0 // connections opened again after the process ended
	for {
		opened := time.Now()
		end, progress, err := f.connect(ctx)
		switch {
		case f.done:
			return nil
		case ctx.Err() != nil:
			return err
		case end == streamRefused:
			return f.refused(ctx, err)
		case errors.Is(err, errEventTooLarge):
			return f.gap(err)
		}
		p, getErr := f.processes.Get(ctx, f.sandboxID, f.pid, f.opts...)
		switch {
		case getErr != nil:
			return fmt.Errorf("miosa: following process %s on sandbox %s: the stream ended before its exit (%v), and reading the process failed: %w", f.pid, f.sandboxID, err, getErr)
		case !p.Running() && end == streamClosed:
			return f.exit(p)
		case !f.resumable():
			return f.gap(fmt.Errorf("the server sent no event id to resume from after the last line: %w", err))
		}
		if progress || time.Since(opened) >= followSteadyTime {
			quiet = 0
		} else if quiet++; quiet > maxFollowReconnects {
			return f.gap(fmt.Errorf("the stream ended %d times in a row without an event: %w", quiet, err))
		}
		if !p.Running() {
			// What an ended process wrote is finite: a stream that keeps
			// breaking before its end is not read again and again.
			if drains++; drains > maxFollowReconnects {
				return f.gap(fmt.Errorf("the process ended, and its stream broke %d times before its end: %w", drains, err))
			}
		}
		conf, err := f.processes.client.settingsFor(f.opts)
		if err != nil {
			return err
		}
		if err := retry.Sleep(ctx, retry.Backoff(quiet, conf.retryMin, conf.retryMax)); err != nil {
			return fmt.Errorf("miosa: following process %s on sandbox %s: %w", f.pid, f.sandboxID, err)
		}
		f.reconnecting = true
	}
}

// connect opens the stream once, from lastID when there is one, and yields
// what it brings until it ends. progress says it brought a line, the exit,
// or a new event id.
func (f *processFollow) connect(ctx context.Context) (end streamEnd, progress bool, err error) {
	opts := f.opts
	skipTo, skipping := eventNumber(f.lastID)
	if f.lastID != "" {
		opts = append(opts[:len(opts):len(opts)], WithHeader("Last-Event-ID", f.lastID))
	}
	end = streamRefused
	op := call{method: http.MethodGet, path: f.path, accept: eventStreamAccept, consume: func(resp *http.Response) error {
		events, err := newEventReader(resp)
		if err != nil {
			return err
		}
		end = streamBroken
		for {
			idBefore := events.lastID
			raw, err := events.next(ctx)
			switch {
			case err == io.EOF:
				end = streamClosed
				return errNoExit
			case err != nil:
				return err
			}
			if skipping {
				// A server that ignores Last-Event-ID sends from the start
				// again: what is at or before the resumed id was yielded.
				if n, ok := eventNumber(events.lastID); ok && n <= skipTo {
					continue
				}
				skipping = events.lastID == ""
			}
			if events.lastID != idBefore {
				progress = progress || events.lastID != f.lastID
				f.lastID, f.lineSinceID = events.lastID, false
			}
			ev, ok, err := f.decode(raw)
			switch {
			case errors.Is(err, errExitWithoutCode):
				end = streamClosed
				return err
			case err != nil:
				return err
			case !ok:
				continue
			}
			progress = true
			if ev.Kind != ExecExit {
				f.lineYielded = true
				f.lineSinceID = f.lineSinceID || events.lastID == idBefore
			}
			if !f.yield(ev, nil) || ev.Kind == ExecExit {
				f.done = true
				return nil
			}
		}
	}}
	_, err = f.processes.client.send(ctx, op, opts)
	return end, progress, err
}

// decode reads one event of a process's stream: a stdout or stderr line
// (its data a JSON object with a "line" string, or else the line itself),
// the exit, or, reporting false, anything else.
func (f *processFollow) decode(raw streamEvent) (ExecEvent, bool, error) {
	var kind ExecEventKind
	switch string(raw.name) {
	case eventStdout:
		kind = ExecStdout
	case eventStderr:
		kind = ExecStderr
	case eventExit:
		return decodeExecEvent(raw, nil)
	default:
		return ExecEvent{}, false, nil
	}
	return ExecEvent{Kind: kind, Line: f.processes.client.key.scrub(processLine(raw.data))}, true, nil
}

// processLine returns the line an output event's data carries: the "line"
// string of a JSON object, or else the data itself, which some servers send
// as the bare line.
func processLine(data []byte) string {
	var v struct {
		Line *string `json:"line"`
	}
	if isJSONObject(data) && json.Unmarshal(data, &v) == nil && v.Line != nil {
		return *v.Line
	}
	return string(data)
}

// resumable reports whether the stream can be opened again without losing
// or repeating a line: from the last event id when no line came after it,
// or from the start when no line was yielded yet. An id that cannot be
// sent in a header cannot be resumed from.
func (f *processFollow) resumable() bool {
	if f.lineSinceID || strings.ContainsFunc(f.lastID, func(r rune) bool { return r != '\t' && isControl(r) }) {
		return false
	}
	return f.lastID != "" || !f.lineYielded
}

// refused turns a stream that did not open into Follow's error. A 404 or
// 405 means no process stream, unless the process itself is unknown: Get
// tells them apart. Refused when opened again, the stream cannot go on
// from where it broke.
func (f *processFollow) refused(ctx context.Context, err error) error {
	if !streamEndpointMissing(err) {
		return err
	}
	if _, getErr := f.processes.Get(ctx, f.sandboxID, f.pid, f.opts...); getErr != nil {
		return getErr
	}
	if f.reconnecting {
		return f.gap(err)
	}
	return fmt.Errorf("miosa: the server has no process stream (Logs and Wait still work): %w: %w", errors.ErrUnsupported, err)
}

// exit yields the exit of an ended process as Get reported it.
func (f *processFollow) exit(p *Process) error {
	if p.ExitCode == nil {
		return fmt.Errorf("miosa: process %s on sandbox %s ended (status %q) and the server does not say its exit code: %w",
			f.pid, f.sandboxID, capText(string(p.Status), maxErrorCode), ErrOutcomeUnknown)
	}
	f.yield(ExecEvent{Kind: ExecExit, ExitCode: *p.ExitCode}, nil)
	return nil
}

// gap is the error of a stream that cannot be followed further without a
// gap; cause says why.
func (f *processFollow) gap(cause error) error {
	return fmt.Errorf("miosa: following process %s on sandbox %s: %w: %w", f.pid, f.sandboxID, ErrStreamGap, cause)
}

// eventNumber reads an event id that is a decimal number.
func eventNumber(id string) (uint64, bool) {
	n, err := strconv.ParseUint(id, 10, 64)
	return n, err == nil
}
