package miosa

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
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
	// Stdout and Stderr, when either is set, make Run stream the command
	// and write each line of its output, with a newline, to them the moment
	// it arrives, as os/exec does: stderr lines go to Stderr, or to Stdout
	// when Stderr is nil; stdout lines are dropped when Stdout is nil. They
	// are never sent to the server, and Stream ignores them.
	Stdout io.Writer `json:"-"`
	Stderr io.Writer `json:"-"`
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
//
// With params.Stdout or params.Stderr set, Run streams the command instead,
// exactly as Stream does (POST /sandboxes/{id}/exec/stream, with its
// fallback to the blocking exec and its rules, Timeout in whole seconds up
// to 24 hours), and writes each output line to its writer as it arrives.
// It then returns the exit code (-1 when the command timed out) with empty
// Output, Stdout and Stderr, since the bytes went to the writers. Every
// error Stream would yield is Run's error, and a writer's error ends the
// call with that error (closing the stream; the command goes on running on
// the server). Unlike a loop over Stream, this form cannot drop an error.
func (s *ExecService) Run(ctx context.Context, computerID string, params ExecParams, opts ...Option) (*ExecResult, error) {
	if params.Stdout != nil || params.Stderr != nil {
		return s.runIntoWriters(ctx, computerID, params, opts)
	}
	return s.runBlocking(ctx, computerID, params, opts)
}

// runBlocking is Run without writers: the blocking exec, answered once the
// command has ended.
func (s *ExecService) runBlocking(ctx context.Context, computerID string, params ExecParams, opts []Option) (*ExecResult, error) {
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
