package miosa

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/miosa-ai/miosa-go/internal/wire"
)

// ProcessesService runs commands that outlive the call that started them on
// a sandbox — a dev server, a long build, a watcher — under
// /sandboxes/{id}/processes. A process is known by its sandbox id and its
// PID: those two strings, stored anywhere, are all it takes to find it
// again, from another goroutine or after the program restarted.
type ProcessesService service

// ProcessStatus is a process's state as the server names it. The set is
// open: a state this SDK does not know is kept as sent.
type ProcessStatus string

// Known process states.
const (
	ProcessRunning ProcessStatus = "running" // it runs
	ProcessExited  ProcessStatus = "exited"  // it ended on its own; ExitCode says how
	ProcessKilled  ProcessStatus = "killed"  // it was ended: stopped, timed out, or its machine stopped
	ProcessFailed  ProcessStatus = "failed"  // it could not be started or crashed
)

// Process is a command running (or that ran) in the background on a
// sandbox.
type Process struct {
	// SandboxID is the sandbox the process runs on. The server does not
	// send it: the SDK sets it from the call.
	SandboxID string
	// PID is the process's id on its sandbox. Some servers send a number,
	// others a string: a number is written in decimal.
	PID     string
	Name    string
	Command string
	Status  ProcessStatus
	// StartedAt is zero when the server did not send it.
	StartedAt time.Time
	// ExitCode is nil while the process runs, and when the server does
	// not say how it ended.
	ExitCode *int
	// Raw is the object exactly as the server sent it.
	Raw json.RawMessage
}

// Running reports whether the process still runs: its status is "running",
// or the server sent no status and no exit code. Any other status, known or
// not, counts as ended.
func (p *Process) Running() bool {
	return p.Status == ProcessRunning || (p.Status == "" && p.ExitCode == nil)
}

// errMissingPID is the decoding error for a process that names no pid: it
// could not be found again.
var errMissingPID = errors.New(`the process has no "pid"`)

// UnmarshalJSON decodes a process: its pid as a string or an integer,
// tolerating an empty or numeric started_at, and keeps the raw object in
// Raw. An object without a pid, or with an exit_code that is not an
// integer, is an error.
func (p *Process) UnmarshalJSON(data []byte) error {
	var v struct {
		PID       wire.ID         `json:"pid"`
		Name      string          `json:"name"`
		Command   string          `json:"command"`
		Status    ProcessStatus   `json:"status"`
		StartedAt wire.Time       `json:"started_at"`
		ExitCode  json.RawMessage `json:"exit_code"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	if v.PID == "" {
		return errMissingPID
	}
	code, err := exitCodeOf(v.ExitCode)
	if err != nil {
		return err
	}
	*p = Process{
		PID: string(v.PID), Name: v.Name, Command: v.Command, Status: v.Status,
		StartedAt: v.StartedAt.Time, ExitCode: code, Raw: append(json.RawMessage(nil), data...),
	}
	return nil
}

// exitCodeOf reads an exit code: nil when it is absent or null, its value
// when it is a JSON integer in int32's range, an error otherwise, so a
// malformed code is never read as another one.
func exitCodeOf(raw json.RawMessage) (*int, error) {
	if isJSONNull(raw) {
		return nil, nil
	}
	code, err := strconv.ParseInt(string(bytes.TrimSpace(raw)), 10, 32)
	if err != nil {
		return nil, fmt.Errorf("exit_code %.20s: want an integer", raw)
	}
	n := int(code)
	return &n, nil
}

// ProcessStartParams describes a process to start. Only Command is
// required; the rest is sent only when set.
type ProcessStartParams struct {
	// Command is run by the sandbox's shell. Required.
	Command string
	// Name is an optional label, listed with the process: it lets a caller
	// that lost the PID find its process again with List.
	Name string
	// WorkingDir is where the command runs (sent as "cwd").
	WorkingDir string
	// Env adds environment variables for the command.
	Env map[string]string
	// Timeout is the process's own time limit, enforced by the server and
	// sent in whole seconds, rounded up; 0 leaves the server's default.
	Timeout time.Duration
}

// processStartBody is the start request's body.
type processStartBody struct {
	Command string            `json:"command"`
	Name    string            `json:"name,omitzero"`
	Cwd     string            `json:"cwd,omitzero"`
	Env     map[string]string `json:"env,omitzero"`
	Timeout int64             `json:"timeout,omitzero"` // seconds
}

// ProcessLogsParams chooses how much of a process's output Logs returns.
type ProcessLogsParams struct {
	// Tail is how many of the last lines to return; 0 leaves the server's
	// default (200 lines on the API).
	Tail int
}

// Start starts a command in the background on a sandbox
// (POST /sandboxes/{id}/processes) and returns the process, running, with
// its PID. It returns once the server started it, not when it ends: see
// Follow, Wait and Stop.
//
// A start is never sent twice once it may have reached the server: a
// second start is a second process. If it was sent and no answer came
// back, the error matches ErrOutcomeUnknown: the process may be running,
// and List (by Name) finds it. A 429, or an answer the server marks
// retryable, says nothing started and is retried like any call.
func (s *ProcessesService) Start(ctx context.Context, sandboxID string, params ProcessStartParams, opts ...Option) (*Process, error) {
	path, err := sandboxPath(sandboxID, "/processes")
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(params.Command) == "" {
		return nil, fmt.Errorf("%w: the process's command is empty", ErrInvalidParams)
	}
	if params.Timeout < 0 {
		return nil, fmt.Errorf("%w: process timeout %s must not be negative (0 leaves the server's default)", ErrInvalidParams, params.Timeout)
	}
	seconds, _ := wholeSeconds("process timeout", &params.Timeout)
	p, err := sendForObject[Process](ctx, s.client, call{method: http.MethodPost, path: path, body: processStartBody{
		Command: params.Command, Name: params.Name, Cwd: params.WorkingDir, Env: params.Env, Timeout: *seconds,
	}}, opts, "process")
	if err != nil {
		return nil, err
	}
	p.SandboxID = sandboxID
	return p, nil
}

// Get fetches one process (GET /sandboxes/{id}/processes/{pid}), running or
// ended. It is a read, retried like any. An unknown PID fails with an error
// matching ErrNotFound.
func (s *ProcessesService) Get(ctx context.Context, sandboxID, pid string, opts ...Option) (*Process, error) {
	path, err := processPath(sandboxID, pid, "")
	if err != nil {
		return nil, err
	}
	p, err := sendForObject[Process](ctx, s.client, call{method: http.MethodGet, path: path}, opts, "process")
	if err != nil {
		return nil, err
	}
	p.SandboxID = sandboxID
	return p, nil
}

// List fetches the processes of a sandbox (GET /sandboxes/{id}/processes),
// as many as the server lists. It is a read, retried like any.
func (s *ProcessesService) List(ctx context.Context, sandboxID string, opts ...Option) ([]Process, error) {
	path, err := sandboxPath(sandboxID, "/processes")
	if err != nil {
		return nil, err
	}
	items, _, err := sendForList[Process](ctx, s.client, call{method: http.MethodGet, path: path}, opts, "processes")
	if err != nil {
		return nil, err
	}
	for i := range items {
		items[i].SandboxID = sandboxID
	}
	return items, nil
}

// Stop asks the server to end a process
// (DELETE /sandboxes/{id}/processes/{pid}): it sends the process SIGTERM,
// then SIGKILL after 5 s. It returns once the server accepted, not when the
// process has ended (Wait waits for that). Like every DELETE it is retried;
// a 404 to a retry counts as done, since the attempt whose answer was lost
// may have ended it.
func (s *ProcessesService) Stop(ctx context.Context, sandboxID, pid string, opts ...Option) error {
	path, err := processPath(sandboxID, pid, "")
	if err != nil {
		return err
	}
	_, err = s.client.send(ctx, call{method: http.MethodDelete, path: path, goneIsDone: true}, opts)
	return err
}

// Logs returns the last lines a process wrote, stdout and stderr together
// (GET /sandboxes/{id}/processes/{pid}/logs, with ?tail=N when params.Tail
// is set), as one text, each line ending in a newline as the server sent
// it. It reads every form servers answer in: {"data": "..."},
// {"logs": "..."}, a JSON string, or plain text. The answer is bounded by
// WithMaxResponseSize. It is a read, retried like any.
func (s *ProcessesService) Logs(ctx context.Context, sandboxID, pid string, params ProcessLogsParams, opts ...Option) (string, error) {
	path, err := processPath(sandboxID, pid, "/logs")
	if err != nil {
		return "", err
	}
	if params.Tail < 0 {
		return "", fmt.Errorf("%w: logs tail %d must not be negative (0 leaves the server's default)", ErrInvalidParams, params.Tail)
	}
	op := call{method: http.MethodGet, path: path}
	if params.Tail > 0 {
		op.query = url.Values{"tail": {strconv.Itoa(params.Tail)}}
	}
	res, err := s.client.send(ctx, op, opts)
	if err != nil {
		return "", err
	}
	logs, err := decodeLogs(res.header.Get("Content-Type"), res.body)
	if err != nil {
		return "", fmt.Errorf("miosa: %s %s: decoding the response: %w", op.method, op.path, err)
	}
	return logs, nil
}

// decodeLogs reads a logs answer. A JSON answer (by its content type, or,
// without one, by its first byte) is a string, or an object holding the
// text under "logs" or "data" (also one level down: {"data": {"logs":
// ...}}); an answer of any other type is the text itself.
func decodeLogs(contentType string, body []byte) (string, error) {
	mediaType, _, _ := mime.ParseMediaType(contentType)
	trimmed := bytes.TrimSpace(body)
	isJSON := mediaType == "application/json" || strings.HasSuffix(mediaType, "+json") ||
		(mediaType == "" && len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '"'))
	if !isJSON {
		return string(body), nil
	}
	if len(trimmed) == 0 {
		return "", nil
	}
	var text string
	if trimmed[0] == '"' {
		err := json.Unmarshal(trimmed, &text)
		return text, err
	}
	var envelope logsEnvelope
	if err := json.Unmarshal(trimmed, &envelope); err != nil {
		return "", err
	}
	if text, ok := envelope.text(); ok {
		return text, nil
	}
	if isJSONObject(envelope.Data) {
		var inner logsEnvelope
		if json.Unmarshal(envelope.Data, &inner) == nil {
			if text, ok := inner.text(); ok {
				return text, nil
			}
		}
	}
	return "", errors.New(`no logs text: want a string, or one under "logs" or "data"`)
}

// logsEnvelope is an object a logs answer may come in.
type logsEnvelope struct {
	Logs json.RawMessage `json:"logs"`
	Data json.RawMessage `json:"data"`
}

// text returns the logs text the envelope holds as a string, under "logs"
// or else "data".
func (e *logsEnvelope) text() (string, bool) {
	for _, raw := range []json.RawMessage{e.Logs, e.Data} {
		var text string
		if !isJSONNull(raw) && json.Unmarshal(raw, &text) == nil {
			return text, true
		}
	}
	return "", false
}

// WriteStdin writes data to a process's standard input
// (POST /sandboxes/{id}/processes/{pid}/stdin, body {"data": data}). A
// command reading lines needs data to end in a newline. It is never sent
// twice once it may have reached the server — a second write would be
// duplicated input — so if it was sent and no answer came back, the error
// matches ErrOutcomeUnknown. A 429, or an answer the server marks
// retryable, is retried like any call.
func (s *ProcessesService) WriteStdin(ctx context.Context, sandboxID, pid, data string, opts ...Option) error {
	path, err := processPath(sandboxID, pid, "/stdin")
	if err != nil {
		return err
	}
	if data == "" {
		return fmt.Errorf("%w: the stdin data is empty: there is nothing to write", ErrInvalidParams)
	}
	body := struct {
		Data string `json:"data"`
	}{data}
	_, err = s.client.send(ctx, call{method: http.MethodPost, path: path, body: body}, opts)
	return err
}

const (
	defaultProcessWaitTimeout  = 5 * time.Minute
	defaultProcessWaitInterval = time.Second
)

// Wait polls GET /sandboxes/{id}/processes/{pid} (every second by default)
// until the process no longer runs (see Process.Running), and returns it:
// its Status and ExitCode say how it ended. It sends only reads, each tried
// once per poll. The wait ends:
//   - with the process and a nil error once it no longer runs;
//   - with an error matching ErrNotFound when the server no longer knows
//     the process (404);
//   - with an error matching ErrWaitTimeout when WaitOptions.Timeout
//     (default 5 min) passes;
//   - at once on another permanent API error (such as 401 or 403);
//   - with the context's error when ctx ends.
//
// Transient errors (429, 5xx, network) do not end the wait; a Retry-After
// longer than the interval is honoured. The process last seen is returned
// with every error after the first successful poll. WaitOptions.PollOnly
// has no effect here.
func (s *ProcessesService) Wait(ctx context.Context, sandboxID, pid string, wait WaitOptions, opts ...Option) (*Process, error) {
	if _, err := processPath(sandboxID, pid, ""); err != nil {
		return nil, err
	}
	p, err := wait.poller(s.client, "process "+pid+" on sandbox "+sandboxID+" to end",
		defaultProcessWaitTimeout, defaultProcessWaitInterval, opts)
	if err != nil {
		return nil, err
	}
	var last *Process
	err = p.run(ctx, func(ctx context.Context) (bool, error) {
		proc, err := s.Get(ctx, sandboxID, pid, p.opts...)
		if err != nil {
			return false, err
		}
		last = proc
		return !proc.Running(), nil
	})
	if errors.Is(err, errLocalTimeout) {
		state := "its state is unknown"
		if last != nil {
			state = "it still runs"
		}
		err = p.timedOut(state)
	}
	return last, err
}

// processPath returns /sandboxes/{id}/processes/{pid}{suffix} with both ids
// escaped.
func processPath(sandboxID, pid, suffix string) (string, error) {
	escaped, err := pathID("process", pid)
	if err != nil {
		return "", err
	}
	return sandboxPath(sandboxID, "/processes/"+escaped+suffix)
}
