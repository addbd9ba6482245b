package miosa

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"strings"
	"time"

	"github.com/miosa-ai/miosa-go/internal/wire"
)

// ExecEventKind says what an ExecEvent carries.
type ExecEventKind string

// The kinds of ExecEvent, each declared on its own so that go doc lists
// every one of them under ExecEventKind.

// ExecStdout is a line the command wrote to stdout.
const ExecStdout ExecEventKind = "stdout"

// ExecStderr is a line the command wrote to stderr.
const ExecStderr ExecEventKind = "stderr"

// ExecExit is the command's end, with its exit code: always the last event.
const ExecExit ExecEventKind = "exit"

// ExecEvent is one step of a streamed command: a line of its output, or its
// exit.
type ExecEvent struct {
	Kind     ExecEventKind
	Line     string // ExecStdout, ExecStderr: one line, without its newline
	ExitCode int    // ExecExit: the command's exit code (-1 when it timed out)
	TimedOut bool   // ExecExit: the command was stopped at its Timeout
}

// errStreamOverdue ends a streamed exec still open execMargin after its
// command's timeout.
var errStreamOverdue = fmt.Errorf("the stream was still open %s after the command's timeout: %w", execMargin, context.DeadlineExceeded)

// maxStreamTimeout is the longest command timeout the streamed exec accepts.
const maxStreamTimeout = 24 * time.Hour

// execStreamBody is the request body of the streamed exec. Unlike the
// blocking exec's, its timeout is in whole seconds and the working
// directory is "cwd".
type execStreamBody struct {
	Command string            `json:"command"`
	Timeout int64             `json:"timeout,omitzero"` // seconds
	Cwd     string            `json:"cwd,omitzero"`
	Env     map[string]string `json:"env,omitzero"`
}

// Stream runs a shell command in a sandbox
// (POST /sandboxes/{id}/exec/stream, server-sent events) and yields its
// output line by line as the command writes it, then its exit: the
// sequence ends after the one ExecExit event. ExecParams.Timeout goes to
// the server in whole seconds, rounded up, at most 24 hours.
//
// Output lines are text from the command: a line that contains the API key
// has it replaced with "[redacted]", as Run's output has.
//
// A server without the streaming endpoint (404 or 405) gets the blocking
// exec instead (POST /computers/{id}/exec, see Run); its output is then
// yielded once the command has finished: the stdout lines, then the stderr
// lines, then the exit.
//
// Errors are yielded once, as the last pair:
//   - an *APIError when the server refuses the command before its stream
//     starts;
//   - an error matching ErrOutcomeUnknown when the command may have run but
//     its exit is not known: the request was sent and no answer came, or
//     the stream broke or ended before the exit event, or its exit event
//     carried an error or no exit code (a missing code is never read as 0),
//     or the server redirected the request and the answer where it pointed
//     was a refusal (the command may have run before the redirect: that
//     answer is never taken for a missing endpoint);
//   - an error wrapping ctx's error when ctx ends, promptly, even while the
//     stream waits for the command's next line.
//
// The request is never sent twice once it may have reached the server: a
// 429, or an answer the server marks retryable, says nothing ran and is
// retried like any call; a 5xx or a lost connection is not. Breaking out of
// the loop closes the stream at once (the command goes on running on the
// server). The stream is read on the caller's goroutine, one event per step
// of the loop: nothing runs in the background, and no event is buffered
// beyond the one being read. An event is at most 1 MiB. While it is open the
// stream holds one HTTP/1.1 connection (or one HTTP/2 stream), bounded by
// ctx rather than by WithRequestTimeout, which covers only the wait for the
// stream's headers. With params.Timeout set it is also bounded by that
// timeout plus a 30 s margin: the server ends the command by then, so a
// stream still open afterwards never will say how it ended, and the loop
// gets an error matching ErrOutcomeUnknown and context.DeadlineExceeded.
//
// Range with two variables, for ev, err := range ...: a loop with one
// (for ev := range ...) compiles but drops the error, so a command that
// broke off looks like one that ended. Run with ExecParams.Stdout or Stderr
// set streams the same way and returns every error. Stream ignores those
// writers. Each range over the returned sequence sends the command anew:
// ranging over the same value twice runs the command twice.
func (s *ExecService) Stream(ctx context.Context, sandboxID string, params ExecParams, opts ...Option) iter.Seq2[ExecEvent, error] {
	return func(yield func(ExecEvent, error) bool) {
		op, err := execStreamCall(sandboxID, params)
		if err != nil {
			yield(ExecEvent{}, err)
			return
		}
		streamCtx := ctx
		if params.Timeout > 0 {
			var cancel context.CancelFunc
			streamCtx, cancel = context.WithTimeoutCause(ctx, params.Timeout+execMargin, errStreamOverdue)
			defer cancel()
		}
		op.consume = func(resp *http.Response) error {
			return s.client.readExecStream(streamCtx, resp, func(ev ExecEvent) bool { return yield(ev, nil) })
		}
		_, err = s.client.send(streamCtx, op, opts)
		switch {
		case err == nil:
		case streamEndpointMissing(err):
			s.streamBlocking(ctx, sandboxID, params, opts, yield)
		default:
			yield(ExecEvent{}, err)
		}
	}
}

// execStreamCall checks params and builds the streamed exec's call.
func execStreamCall(sandboxID string, params ExecParams) (call, error) {
	path, err := sandboxPath(sandboxID, "/exec/stream")
	if err != nil {
		return call{}, err
	}
	switch {
	case strings.TrimSpace(params.Command) == "":
		return call{}, fmt.Errorf("%w: exec command is empty", ErrInvalidParams)
	case params.Timeout > maxStreamTimeout:
		return call{}, fmt.Errorf("%w: streamed exec timeout %s is longer than 24h (0 leaves the server's default)", ErrInvalidParams, params.Timeout)
	}
	seconds, err := wholeSeconds("exec timeout", &params.Timeout)
	if err != nil {
		return call{}, err
	}
	return call{method: http.MethodPost, path: path, accept: eventStreamAccept, body: execStreamBody{
		Command: params.Command, Timeout: *seconds, Cwd: params.WorkingDir, Env: params.Env,
	}}, nil
}

// streamBlocking runs params through the blocking exec and yields its
// result as a stream would: stdout lines, stderr lines, then the exit.
func (s *ExecService) streamBlocking(ctx context.Context, id string, params ExecParams, opts []Option, yield func(ExecEvent, error) bool) {
	res, err := s.runBlocking(ctx, id, params, opts)
	if err != nil {
		yield(ExecEvent{}, err)
		return
	}
	for _, out := range []struct {
		kind ExecEventKind
		text string
	}{{ExecStdout, res.Stdout}, {ExecStderr, res.Stderr}} {
		for line := range strings.Lines(out.text) {
			if !yield(ExecEvent{Kind: out.kind, Line: strings.TrimSuffix(line, "\n")}, nil) {
				return
			}
		}
	}
	yield(ExecEvent{Kind: ExecExit, ExitCode: res.ExitCode}, nil)
}

// Event names of the streamed exec (and of a followed process). Every
// other event and every comment is ignored.
const (
	eventStdout = "stdout"
	eventStderr = "stderr"
	eventExit   = "exit"
)

var (
	// errNoExit is a streamed exec that ended cleanly without its exit
	// event.
	errNoExit = errors.New("the stream ended before the command's exit event")
	// errExitWithoutCode is an exit event that does not say how the command
	// ended.
	errExitWithoutCode = errors.New("the exit event carries no exit code")
)

// readExecStream reads a streamed exec's answer and passes each output line,
// then the exit, to yield as soon as its event is complete. It returns nil
// after the exit event or once yield returns false (the caller has what it
// wanted: not a failure), and otherwise why the stream ended without a
// trustworthy exit: ctx's error, a broken or oversized stream, a malformed
// event, or an exit that carries an error object or no exit code.
func (c *Client) readExecStream(ctx context.Context, resp *http.Response, yield func(ExecEvent) bool) error {
	events, err := newEventReader(resp)
	if err != nil {
		return err
	}
	var scratch execLineData
	for {
		raw, err := events.next(ctx)
		if err != nil {
			switch {
			case err == io.EOF:
				return errNoExit
			case errors.Is(err, errEventTooLarge) || ctx.Err() != nil:
				return err
			}
			return fmt.Errorf("the stream broke before the command's exit event: %w", err)
		}
		// Cleaned before decoding, as every answer is: lines and an exit's
		// error text then cannot hold the key, in any spelling.
		raw.data = c.key.scrubBytes(raw.data)
		ev, ok, err := decodeExecEvent(raw, &scratch)
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

// lineDataPrefix starts the data of an output event as servers send it.
var lineDataPrefix = []byte(`{"line":`)

// decodeLineData decodes an output event's data into out. The usual form,
// {"line":"..."} and nothing else, has its one string decoded alone, which
// takes encoding/json a third less time than the object; any other form is
// decoded as an object.
func decodeLineData(data []byte, out *execLineData) error {
	if rest, ok := bytes.CutPrefix(data, lineDataPrefix); ok && len(rest) > 1 && rest[0] == '"' && rest[len(rest)-1] == '}' &&
		wire.StringEnd(rest, 0) == len(rest)-1 {
		return json.Unmarshal(rest[:len(rest)-1], &out.Line)
	}
	return json.Unmarshal(data, out)
}

// execLineData is the data of a stdout or stderr event.
type execLineData struct {
	Line string `json:"line"`
}

// decodeExecEvent reads one event of a streamed exec. It reports false for
// comments and events other than stdout, stderr and exit. out is where an
// output line is decoded: one reused for every event of a stream saves an
// allocation per line. An exit without an exit code (none, null, or under
// another name) is not an exit 0 but an unknown outcome, unless it says the
// command timed out.
func decodeExecEvent(raw streamEvent, out *execLineData) (ExecEvent, bool, error) {
	name, data := raw.name, raw.data
	switch string(name) {
	case eventStdout, eventStderr:
		*out = execLineData{}
		if err := decodeLineData(data, out); err != nil {
			return ExecEvent{}, false, fmt.Errorf("malformed %s event: %w", name, err)
		}
		kind := ExecStdout
		if string(name) == eventStderr {
			kind = ExecStderr
		}
		return ExecEvent{Kind: kind, Line: out.Line}, true, nil
	case eventExit:
		var exit struct {
			ExitCode *int            `json:"exit_code"`
			TimedOut bool            `json:"timed_out"`
			Error    json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(data, &exit); err != nil {
			return ExecEvent{}, false, fmt.Errorf("malformed exit event: %w", err)
		}
		switch {
		case len(exit.Error) > 0 && !isJSONNull(exit.Error):
			return ExecEvent{}, false, newStreamAbortedError(exit.Error)
		case exit.TimedOut:
			return ExecEvent{Kind: ExecExit, ExitCode: -1, TimedOut: true}, true, nil
		case exit.ExitCode == nil:
			return ExecEvent{}, false, errExitWithoutCode
		}
		return ExecEvent{Kind: ExecExit, ExitCode: *exit.ExitCode}, true, nil
	}
	return ExecEvent{}, false, nil
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
