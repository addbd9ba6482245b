package miosatest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// ExecRequest is an exec call as a handler sees it: the ComputerID it was
// sent to, the Command (or, when Python is true, the Code) and the
// request's Timeout, WorkingDir and Env.
type ExecRequest struct {
	// ComputerID is the computer or sandbox the call was sent to.
	ComputerID string
	// Python is true for POST /computers/{id}/exec/python: Code then holds
	// the source, and Command is empty.
	Python  bool
	Command string
	Code    string
	// Timeout is the request's own limit, its "timeout" read as
	// milliseconds (the unit of these routes; whole seconds for the
	// streamed exec); zero when the request set none.
	Timeout time.Duration
	// TimeoutSent is the "timeout" exactly as the request sent it, e.g.
	// "30000" or "30": clients differ on the unit, and this shows which one
	// a client used. Empty when the request set none.
	TimeoutSent json.Number
	WorkingDir  string
	Env         map[string]string
}

// ExecResult is the answer to an exec call: Output, Stdout, Stderr and
// ExitCode. When Output is empty the server sends Stdout followed by Stderr
// as the combined output. A non-zero ExitCode is still a 200 answer, as
// with the real API.
type ExecResult struct {
	Output   string
	Stdout   string
	Stderr   string
	ExitCode int
}

// execFunc computes the result of exec calls that no exact registration
// matches.
type execFunc func(ctx context.Context, req ExecRequest) ExecResult

// execRegistry holds the results registered per command and per Python
// source, and the fallback function.
type execRegistry struct {
	mu       sync.Mutex
	commands map[string]ExecResult
	python   map[string]ExecResult
	fallback execFunc
}

// HandleExec makes every shell exec of exactly command answer res.
func (e *engine) HandleExec(command string, res ExecResult) {
	e.execs.register(&e.execs.commands, command, res)
}

// HandlePython makes every Python exec of exactly code answer res.
func (e *engine) HandlePython(code string, res ExecResult) {
	e.execs.register(&e.execs.python, code, res)
}

// register sets table[key] to res, making the table on first use.
func (h *execRegistry) register(table *map[string]ExecResult, key string, res ExecResult) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if *table == nil {
		*table = map[string]ExecResult{}
	}
	(*table)[key] = res
}

// HandleExecFunc makes fn answer every exec (shell or Python) that no exact
// registration matches; nil restores the default.
func (e *engine) HandleExecFunc(fn execFunc) {
	e.execs.mu.Lock()
	defer e.execs.mu.Unlock()
	e.execs.fallback = fn
}

// lookup returns the exact registration for req, or the fallback.
func (x *execRegistry) lookup(req ExecRequest) (ExecResult, execFunc, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	table, key := x.commands, req.Command
	if req.Python {
		table, key = x.python, req.Code
	}
	if res, ok := table[key]; ok {
		return res, nil, true
	}
	return ExecResult{}, x.fallback, false
}

func (e *engine) execShell(w http.ResponseWriter, r *http.Request)  { e.exec(w, r, false) }
func (e *engine) execPython(w http.ResponseWriter, r *http.Request) { e.exec(w, r, true) }

// exec serves POST /computers/{id}/exec and /exec/python: 409 NOT_RUNNING
// unless the machine runs (or, with engineConfig.RetryableStarting, a retryable
// 409 while it boots); otherwise the registered result, the fallback
// function's, the local shell's, or the default, answered bare. The
// request's "timeout" is read as milliseconds, the unit of these routes;
// any JSON number is accepted, since clients differ on the unit and the
// request log keeps the value as sent.
func (e *engine) exec(w http.ResponseWriter, r *http.Request, python bool) {
	fields, ok := decodeFields(w, r)
	if !ok {
		return
	}
	req := ExecRequest{ComputerID: r.PathValue("id"), Python: python}
	var timeoutMS float64
	source, what := &req.Command, "command"
	if python {
		source, what = &req.Code, "code"
	}
	for _, f := range []struct {
		name string
		dst  any
		want string
	}{
		{what, source, "a string"}, {"timeout", &timeoutMS, "a number of milliseconds"},
		{"working_dir", &req.WorkingDir, "a string"}, {"env", &req.Env, "an object of strings"},
	} {
		if _, ok := field(w, fields, f.name, f.dst, f.want); !ok {
			return
		}
	}
	switch {
	case strings.TrimSpace(*source) == "":
		invalid(w, "%s is required", what)
		return
	case timeoutMS < 0 || timeoutMS > maxExecTimeoutMS:
		invalid(w, "timeout must be between 0 and %d milliseconds", int64(maxExecTimeoutMS))
		return
	}
	req.Timeout = time.Duration(timeoutMS * float64(time.Millisecond))
	if raw, ok := fields["timeout"]; ok && string(raw) != "null" {
		req.TimeoutSent = json.Number(raw)
	}

	if !e.running(w, "computer", req.ComputerID) {
		return
	}

	// The command runs to its end whether or not the client waits for it.
	ctx := e.commandContext(req.ComputerID)
	var res ExecResult
	if answer := e.answerer(req); answer != nil {
		res = answer(ctx)
	} else {
		res = e.shell.run(ctx, req)
	}
	switch {
	case r.Context().Err() != nil:
		return // the client is gone; there is nobody to answer
	case ctx.Err() != nil:
		// The machine stopped, or the server shut down, under the command:
		// no answer, as when a real machine goes away mid-command.
		dropConnection(w)
		return
	}
	if res.Output == "" {
		res.Output = res.Stdout + res.Stderr
	}
	e.write(w, bareReply(http.StatusOK, map[string]any{
		"output": res.Output, "stdout": res.Stdout, "stderr": res.Stderr,
		"exit_code": res.ExitCode, "success": res.ExitCode == 0,
	}))
}

// maxExecTimeoutMS is the longest exec timeout the fake accepts: one day.
const maxExecTimeoutMS = float64(24 * time.Hour / time.Millisecond)

// startingReply is the newer servers' answer to exec on a machine still
// booting: 409 in the canonical envelope, retryable, with the time left
// until the machine runs as retry_after_ms (at least 1). The caller holds
// engine.mu.
func (e *engine) startingReply(m *machine) reply {
	code, what := "COMPUTER_STARTING", "computer"
	if m.templateType == templateSandbox {
		code, what = "SANDBOX_STARTING", "sandbox"
	}
	return retryableReply(http.StatusConflict, code,
		fmt.Sprintf("%s %s is still %s; nothing was run, retry shortly", what, m.id, m.status),
		map[string]any{"id": m.id, "status": m.status}, m.bootDue.Sub(e.now()))
}

// running reports whether the machine id runs. Otherwise it answers
// itself: 404, 409 NOT_RUNNING, or (with engineConfig.RetryableStarting) the
// retryable 409 of a machine still booting.
func (e *engine) running(w http.ResponseWriter, what, id string) bool {
	e.mu.Lock()
	refusal := e.runningRefusal(e.machines[id], what, id)
	e.mu.Unlock()
	if refusal.status != 0 {
		e.write(w, refusal)
		return false
	}
	return true
}

// runningRefusal is running's answer for m (nil when the machine id is
// gone): a zero reply while it runs. The caller holds engine.mu.
func (e *engine) runningRefusal(m *machine, what, id string) reply {
	switch {
	case m == nil:
		return errorReply(http.StatusNotFound, "NOT_FOUND", "%s %q not found", what, id)
	case e.cfg.RetryableStarting && (m.status == statusCreating || m.status == statusStarting):
		return e.startingReply(m)
	case m.status != statusRunning:
		return errorReply(http.StatusConflict, "NOT_RUNNING", "%s %s is %s, not running", what, id, m.status)
	}
	return reply{}
}

// answerer returns what answers req without running it: its exact
// registration, the fallback function, or the default; nil when the local
// shell is to run it instead.
func (e *engine) answerer(req ExecRequest) func(ctx context.Context) ExecResult {
	res, fallback, found := e.execs.lookup(req)
	switch {
	case found:
		return func(context.Context) ExecResult { return res }
	case fallback != nil:
		return func(ctx context.Context) ExecResult { return fallback(ctx, req) }
	case e.cfg.LocalShell:
		return nil
	}
	return func(context.Context) ExecResult { return defaultExec(req) }
}

// defaultExec answers a command nobody registered: "echo" prints its
// arguments; anything else fails with 127, as a shell does for a command it
// cannot find, with a hint on how to register one.
func defaultExec(req ExecRequest) ExecResult {
	if req.Python {
		return ExecResult{ExitCode: 1, Stderr: "miosatest: no result registered for this Python code; " +
			"register one with HandlePython or HandleExecFunc, or enable the local shell\n"}
	}
	cmd := strings.TrimSpace(req.Command)
	if cmd == "echo" || strings.HasPrefix(cmd, "echo ") {
		return ExecResult{Stdout: echoArgs(strings.TrimPrefix(cmd, "echo")) + "\n"}
	}
	name, _, _ := strings.Cut(cmd, " ")
	return ExecResult{ExitCode: 127, Stderr: fmt.Sprintf("sh: 1: %s: not found "+
		"(miosatest: register a result with HandleExec or HandleExecFunc, or enable the local shell)\n", name)}
}

// echoArgs joins echo's arguments with single spaces, removing the quotes a
// shell would remove. It does not expand variables or escapes.
func echoArgs(args string) string {
	var (
		words []string
		cur   strings.Builder
		quote rune
		inArg bool
	)
	for _, c := range args {
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(c)
		case c == '\'' || c == '"':
			quote, inArg = c, true
		case c == ' ' || c == '\t':
			if inArg {
				words, inArg = append(words, cur.String()), false
				cur.Reset()
			}
		default:
			cur.WriteRune(c)
			inArg = true
		}
	}
	if inArg {
		words = append(words, cur.String())
	}
	return strings.Join(words, " ")
}

// HandleExec makes every shell exec whose command is exactly command answer
// res. A later registration of the same command replaces the earlier one.
//
// Commands nobody registered are answered, in this order, by the function
// given to HandleExecFunc, by the local shell (WithLocalShell), or by the
// default: "echo ..." prints its arguments (quotes removed, nothing
// expanded) and exits 0; any other command exits 127 with "not found" on
// stderr, as a shell does, and a hint naming HandleExec.
//
// Exec against a machine that is not running answers 409 NOT_RUNNING before
// any handler is asked.
func (s *Server) HandleExec(command string, res ExecResult) {
	s.engine.HandleExec(command, res)
}

// HandlePython makes every Python exec whose code is exactly code answer
// res. Unregistered Python code falls to HandleExecFunc's function, the
// local shell, or by default exits 1 with a hint on stderr.
func (s *Server) HandlePython(code string, res ExecResult) {
	s.engine.HandlePython(code, res)
}

// HandleExecFunc makes fn answer every exec call, shell or Python, that no
// exact registration matches (and streamed execs that no script matches).
// fn may be called concurrently. fn is the command: like a command on the
// real server it runs on when the client goes away, and its ctx ends when
// the machine stops, restarts or is deleted, or when the server closes.
// nil restores the default.
func (s *Server) HandleExecFunc(fn func(ctx context.Context, req ExecRequest) ExecResult) {
	s.engine.HandleExecFunc(fn)
}
