package miosa

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"math"
	"net/http"
	"strings"
	"time"
)

// ExecParams is a shell command to run on a computer or sandbox.
type ExecParams struct {
	// Command is run by the machine's shell. Required.
	Command string
	// Timeout is the command's own time limit, enforced by the server; 0
	// leaves the server's default. Its unit on the wire differs by
	// endpoint: POST /computers/{id}/exec (Run) takes milliseconds, as the
	// API this SDK was written against documents, while newer endpoints
	// such as the streaming exec take whole seconds. The SDK converts for
	// each endpoint, so set it as a duration and never pre-scale it.
	Timeout time.Duration
	// WorkingDir is where the command runs; the server's default is
	// /home/user.
	WorkingDir string
	// Env adds environment variables for the command.
	Env map[string]string
}

// PythonParams is Python source to run on a computer or sandbox.
type PythonParams struct {
	// Code is the Python source. Required.
	Code string
	// Timeout is the program's own time limit, sent to
	// POST /computers/{id}/exec/python in milliseconds (see
	// ExecParams.Timeout); 0 leaves the server's default.
	Timeout    time.Duration
	WorkingDir string
	Env        map[string]string
}

// ExecResult is what a command produced. A non-zero ExitCode is a result,
// not a Go error; call Err to treat it as one.
type ExecResult struct {
	Output   string `json:"output"` // stdout and stderr combined, as the server sent them
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	ExitCode int    `json:"exit_code"` // 0 when the server sent none
	// Raw is the result exactly as the server sent it.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes a result and keeps the raw object in Raw.
func (r *ExecResult) UnmarshalJSON(data []byte) error {
	type plain ExecResult
	var v plain
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*r = ExecResult(v)
	r.Raw = append(json.RawMessage(nil), data...)
	return nil
}

// Err returns nil when the command exited with 0, and otherwise an
// *ExitError carrying the exit code and stderr.
func (r *ExecResult) Err() error {
	if r.ExitCode == 0 {
		return nil
	}
	return &ExitError{ExitCode: r.ExitCode, Stderr: r.Stderr}
}

// ExitError is a command that ran and exited with a non-zero code.
type ExitError struct {
	ExitCode int
	Stderr   string
}

// Error reports the exit code and the last line of stderr, capped.
func (e *ExitError) Error() string {
	msg := fmt.Sprintf("miosa: command exited with code %d", e.ExitCode)
	stderr := strings.TrimSpace(e.Stderr)
	if i := strings.LastIndexByte(stderr, '\n'); i >= 0 {
		stderr = stderr[i+1:]
	}
	if stderr != "" {
		msg += ": " + capText(stderr, 200)
	}
	return msg
}

// execMargin is added to a command's own timeout to make the HTTP attempt's
// deadline: the server needs time to start the command and send the answer.
const execMargin = 30 * time.Second

// execBody is the request body shared by shell and Python exec.
type execBody struct {
	Command    string            `json:"command,omitzero"`
	Code       string            `json:"code,omitzero"`
	Timeout    int64             `json:"timeout,omitzero"` // milliseconds
	WorkingDir string            `json:"working_dir,omitzero"`
	Env        map[string]string `json:"env,omitzero"`
}

// ExecService runs commands on computers and sandboxes.
type ExecService service

// Run runs a shell command on a computer or sandbox
// (POST /computers/{id}/exec) and returns its output and exit code once it
// has finished. Exec is not idempotent: the request is never sent a second
// time once it may have reached the server. If it was sent and no answer
// came back, the error matches ErrOutcomeUnknown (the command may have run).
// A stopped machine answers with an error matching ErrConflict.
func (s *ExecService) Run(ctx context.Context, computerID string, params ExecParams, opts ...Option) (*ExecResult, error) {
	return s.exec(ctx, computerID, "/exec", execBody{
		Command: params.Command, WorkingDir: params.WorkingDir, Env: params.Env,
	}, params.Timeout, opts)
}

// Python runs Python source on a computer or sandbox
// (POST /computers/{id}/exec/python) and returns its output and exit code
// once it has finished. Like Run, it is never sent twice once it may have
// reached the server.
func (s *ExecService) Python(ctx context.Context, computerID string, params PythonParams, opts ...Option) (*ExecResult, error) {
	return s.exec(ctx, computerID, "/exec/python", execBody{
		Code: params.Code, WorkingDir: params.WorkingDir, Env: params.Env,
	}, params.Timeout, opts)
}

func (s *ExecService) exec(ctx context.Context, id, suffix string, body execBody, timeout time.Duration, opts []Option) (*ExecResult, error) {
	if strings.TrimSpace(body.Command+body.Code) == "" {
		what := "command"
		if suffix == "/exec/python" {
			what = "Python code"
		}
		return nil, fmt.Errorf("%w: nothing to run: the %s is empty", ErrInvalidParams, what)
	}
	path, err := computerPath(id, suffix)
	if err != nil {
		return nil, err
	}
	if timeout < 0 {
		return nil, fmt.Errorf("%w: exec timeout must not be negative", ErrInvalidParams)
	}
	op := call{method: http.MethodPost, path: path, body: body}
	if timeout > 0 {
		body.Timeout = max(timeout.Milliseconds(), 1)
		op.body = body
		// Saturating: a timeout near the largest Duration must not wrap
		// around into an attempt deadline in the past.
		op.attemptTimeout = timeout + min(execMargin, math.MaxInt64-timeout)
	}
	return sendForObject[ExecResult](ctx, s.client, op, opts)
}

// ExecEventKind says what an ExecEvent carries.
type ExecEventKind string

// The kinds of ExecEvent.
const (
	ExecStdout ExecEventKind = "stdout" // a line the command wrote to stdout
	ExecStderr ExecEventKind = "stderr" // a line the command wrote to stderr
	ExecExit   ExecEventKind = "exit"   // the command ended; always the last event
)

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
//     carried an error;
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
			return readExecStream(streamCtx, resp, func(ev ExecEvent) bool { return yield(ev, nil) })
		}
		_, err = s.client.send(streamCtx, op, opts)
		var apiErr *APIError
		switch {
		case err == nil:
		case errors.As(err, &apiErr) && (apiErr.StatusCode == http.StatusNotFound || apiErr.StatusCode == http.StatusMethodNotAllowed):
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
	res, err := s.Run(ctx, id, params, opts...)
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
