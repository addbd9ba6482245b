package miosatest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miosa-ai/miosa-go/internal/retry"
)

// ExecLine is one line of a scripted streamed command's output: Text (the
// line, without its newline) sent after Delay, as a "stderr" event when
// Stderr is set, else as "stdout".
type ExecLine struct {
	// Delay is waited before the line is sent.
	Delay time.Duration
	// Stderr sends the line as a "stderr" event instead of "stdout".
	Stderr bool
	// Text is the line, without its newline.
	Text string
}

// ExecStreamEnd says how a scripted streamed command's answer ends.
type ExecStreamEnd int

const (
	// ExecStreamExit sends the exit event: the normal end.
	ExecStreamExit ExecStreamEnd = iota
	// ExecStreamError sends an exit event carrying an error object
	// (code STREAM_ABORTED) instead of an outcome, as a server does when it
	// loses track of the command.
	ExecStreamError
	// ExecStreamDrop cuts the connection after the lines: no exit event.
	ExecStreamDrop
	// ExecStreamClose ends the answer cleanly after the lines, without an
	// exit event.
	ExecStreamClose
)

// ExecStream is how a scripted streamed command behaves: its Lines, each
// after its delay, then ExitDelay, then its End — by default the exit event
// with ExitCode (or -1 and timed_out when TimedOut is set).
type ExecStream struct {
	Lines     []ExecLine
	ExitDelay time.Duration
	ExitCode  int
	// TimedOut reports the command stopped at its timeout: the exit event
	// then says exit code -1, whatever ExitCode is.
	TimedOut bool
	End      ExecStreamEnd
}

// maxStreamTimeout is the longest timeout, in seconds, the streamed exec
// accepts.
const maxStreamTimeout = 86400

// maxStreamLine is the longest line the local shell sends as one event; a
// longer one is sent in pieces of this size.
const maxStreamLine = 64 << 10

// execStreams holds the scripted streamed commands.
type execStreams struct {
	mu      sync.Mutex
	scripts map[string]ExecStream
}

// HandleExecStream makes every streamed exec of exactly command play
// script.
func (e *engine) HandleExecStream(command string, script ExecStream) {
	script.Lines = slices.Clone(script.Lines)
	e.streams.mu.Lock()
	defer e.streams.mu.Unlock()
	if e.streams.scripts == nil {
		e.streams.scripts = map[string]ExecStream{}
	}
	e.streams.scripts[command] = script
}

func (x *execStreams) lookup(command string) (ExecStream, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	s, ok := x.scripts[command]
	return s, ok
}

// execStream serves POST /sandboxes/{id}/exec/stream: 404 when the server
// has no such endpoint, 409 NOT_RUNNING unless the machine runs; otherwise
// a server-sent-event stream of the command's output lines and its exit.
// The command is a script's (HandleExecStream); else it runs in the local
// shell, its lines sent as the process writes them; else the blocking
// exec's result (HandleExec, HandleExecFunc, the default) is sent, its
// stdout lines, then its stderr lines.
func (e *engine) execStream(w http.ResponseWriter, r *http.Request) {
	if e.cfg.NoExecStream {
		writeError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
		return
	}
	req, ok := decodeStreamRequest(w, r)
	if !ok || !e.running(w, "sandbox", req.ComputerID) {
		return
	}
	// The command runs to its end whether or not the client stays to read
	// it: what it writes after the client left goes nowhere.
	ctx := e.commandContext(req.ComputerID)
	out := execEvents{send: startEventStream(w), requestID: w.Header().Get("X-Request-ID")}

	script, scripted := e.streams.lookup(req.Command)
	if !scripted {
		answer := e.answerer(req)
		if answer == nil {
			e.shell.stream(ctx, req, out)
			dropIfEnded(ctx, w)
			return
		}
		script = streamOf(answer(ctx))
	}
	if !out.play(ctx, script) {
		dropIfEnded(ctx, w)
		return
	}
	switch script.End {
	case ExecStreamDrop:
		dropConnection(w)
	case ExecStreamError:
		out.abort()
	case ExecStreamExit:
		out.exit(script.ExitCode, script.TimedOut)
	}
}

// decodeStreamRequest reads a streamed exec's body: command (required),
// timeout (whole seconds, 1 to 86400), cwd and env. It answers 400 or 422
// itself when the body is wrong.
func decodeStreamRequest(w http.ResponseWriter, r *http.Request) (ExecRequest, bool) {
	req := ExecRequest{ComputerID: r.PathValue("id")}
	fields, ok := decodeFields(w, r)
	if !ok {
		return req, false
	}
	var seconds int64
	for _, f := range []struct {
		name string
		dst  any
		want string
	}{
		{"command", &req.Command, "a string"}, {"timeout", &seconds, "an integer number of seconds"},
		{"cwd", &req.WorkingDir, "a string"}, {"env", &req.Env, "an object of strings"},
	} {
		if _, ok := field(w, fields, f.name, f.dst, f.want); !ok {
			return req, false
		}
	}
	raw, timeoutSet := fields["timeout"]
	timeoutSet = timeoutSet && string(raw) != "null"
	switch {
	case strings.TrimSpace(req.Command) == "":
		invalid(w, "command is required")
		return req, false
	case timeoutSet && (seconds < 1 || seconds > maxStreamTimeout):
		invalid(w, "timeout must be 1 to %d seconds", maxStreamTimeout)
		return req, false
	}
	req.Timeout = time.Duration(seconds) * time.Second
	if timeoutSet {
		req.TimeoutSent = json.Number(raw)
	}
	return req, true
}

// streamOf is the stream of a blocking exec's result: its stdout lines,
// then its stderr lines, then its exit.
func streamOf(res ExecResult) ExecStream {
	var s ExecStream
	for _, out := range []struct {
		text   string
		stderr bool
	}{{res.Stdout, false}, {res.Stderr, true}} {
		for line := range strings.Lines(out.text) {
			s.Lines = append(s.Lines, ExecLine{Stderr: out.stderr, Text: strings.TrimSuffix(line, "\n")})
		}
	}
	s.ExitCode = res.ExitCode
	return s
}

// execEvents writes a streamed exec's events.
type execEvents struct {
	send      func(frame string) bool
	requestID string
}

// line sends one output line (dropped once the client is gone: the
// command runs on).
func (o execEvents) line(stderr bool, text string) {
	o.send(eventFrame(outputEventName(stderr), "", map[string]string{"line": text}))
}

func (o execEvents) exit(code int, timedOut bool) {
	if timedOut {
		code = -1
	}
	o.send(eventFrame("exit", "", map[string]any{"exit_code": code, "timed_out": timedOut}))
}

// abort sends an exit event that carries an error object instead of an
// outcome.
func (o execEvents) abort() {
	o.send(eventFrame("exit", "", map[string]any{"exit_code": -1, "timed_out": false, "error": map[string]any{
		"code": "STREAM_ABORTED", "message": "injected fault: the stream ended abnormally",
		"retryable": false, "request_id": o.requestID,
	}}))
}

// play sends script's lines, each after its delay, then waits ExitDelay,
// whether or not the client is still there to read them. It reports false
// when ctx (the machine's commands, see commandContext) ended first.
func (o execEvents) play(ctx context.Context, script ExecStream) bool {
	for _, l := range script.Lines {
		if retry.Sleep(ctx, l.Delay) != nil {
			return false
		}
		o.line(l.Stderr, l.Text)
	}
	return retry.Sleep(ctx, script.ExitDelay) == nil
}

// stream runs req like run, but sends each line of output as the command
// writes it, then the exit: exit code -1 and timed out when its timeout
// passed. When the client goes away the command runs on, its output read
// and dropped, until it ends by itself, by its timeout, or with ctx.
func (s *localShell) stream(ctx context.Context, req ExecRequest, out execEvents) {
	cmd, runCtx, cancel, timeout, err := s.command(ctx, req)
	if err != nil {
		out.line(true, fmt.Sprintf("miosatest: %v", err))
		out.exit(1, false)
		return
	}
	defer cancel()
	output := attachLines(runCtx, cmd)
	if err := cmd.Start(); err != nil {
		output.closePipes()
		code, note := exitStatus(runCtx, err, timeout)
		out.line(true, strings.TrimSuffix(note, "\n"))
		out.exit(code, false)
		return
	}
	done := output.waitFor(cmd)
	for l := range output.lines {
		out.line(l.stderr, l.text)
	}
	err = <-done
	switch {
	case ctx.Err() != nil:
		return
	case runCtx.Err() == context.DeadlineExceeded:
		out.exit(-1, true)
		return
	}
	code, note := exitStatus(runCtx, err, timeout)
	if note != "" {
		out.line(true, strings.TrimSuffix(note, "\n"))
	}
	out.exit(code, false)
}

// HandleExecStream makes every streamed exec
// (POST /sandboxes/{id}/exec/stream) of exactly command play stream: its
// lines as server-sent events, each after its delay, then its end. Faults
// mid-stream are ends: ExecStreamDrop after the lines cuts the connection,
// ExecStreamError sends an exit carrying an error. A later registration of
// the same command replaces the earlier one. A script plays to its end even
// when its client breaks out early, as a command on the real server runs on.
//
// Streamed commands nobody scripted run in the local shell
// (WithLocalShell), each line sent the moment the process writes it;
// without it they are answered like the blocking exec (HandleExec,
// HandleExecFunc, the default "echo"), stdout lines first, then stderr
// lines, then the exit. The request's timeout is whole seconds there
// (ExecRequest.Timeout holds it as a duration) and its working directory is
// "cwd". A machine that is not running answers 409 NOT_RUNNING.
func (s *Server) HandleExecStream(command string, stream ExecStream) {
	s.engine.HandleExecStream(command, stream)
}

// WithoutExecStream makes POST /sandboxes/{id}/exec/stream answer 404, as
// servers that predate the streamed exec do, so clients fall back to the
// blocking exec.
func WithoutExecStream() Option {
	return func(c *config) { c.engine.NoExecStream = true }
}
