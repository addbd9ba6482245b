package miosatest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miosa-ai/miosa-go/internal/retry"
)

// ProcessScript is how a scripted background process behaves: it writes
// its Lines, each after its delay, and exits with ExitCode once RunTime has
// passed since it started (at once after its last line when that comes
// later), or runs until stopped when UntilStopped is set. The other fields
// shape what a client sees.
type ProcessScript struct {
	// Lines are written one after another, each after its Delay.
	Lines []ExecLine
	// RunTime is how long after its start the process exits; 0 exits
	// right after the last line.
	RunTime time.Duration
	// UntilStopped keeps the process running after its lines until it is
	// stopped, times out, or its machine stops.
	UntilStopped bool
	// ExitCode is the code it exits with when it ends on its own.
	ExitCode int
	// EchoStdin writes every line written to the process's stdin back as a
	// stdout line, as `cat` would.
	EchoStdin bool
	// NoEventIDs sends the process's stream without "id:" fields, as a
	// server that cannot resume does; Last-Event-ID is then ignored.
	NoEventIDs bool
	// CutStreamAfter cuts every stream of the process (the connection
	// closed, no exit event) right after it sent this many events; 0
	// never. A client that resumes from the last event id gets everything,
	// over several connections.
	CutStreamAfter int
}

// Process states, as the fake names them.
const (
	processRunning = "running"
	processExited  = "exited"
	processKilled  = "killed"
	processFailed  = "failed"
)

const (
	// firstPID is the first process id on each sandbox.
	firstPID = 1000
	// defaultProcessTimeout bounds a local process whose start set none.
	defaultProcessTimeout = 24 * time.Hour
	// stopGrace is how long a stopped process has between SIGTERM and
	// SIGKILL, as on the API.
	stopGrace = 5 * time.Second
	// maxProcessLines and maxProcessLogBytes bound the output a process
	// keeps, for logs and for streams that start or resume: older lines are
	// forgotten first.
	maxProcessLines    = 10_000
	maxProcessLogBytes = 8 << 20
	// defaultLogTail is how many lines logs returns without ?tail.
	defaultLogTail = 200
	// stdinWriteTimeout bounds a write to a local process that does not
	// read its stdin.
	stdinWriteTimeout = 5 * time.Second
	// Exit codes of processes that were ended: as a shell reports a
	// command killed by SIGTERM or SIGKILL, and timeout(1) one that timed
	// out.
	exitTerminated = 128 + 15
	exitKilled     = 128 + 9
)

// errProcessStopped is the cause of a process context that Stop ended.
var errProcessStopped = errors.New("the process was stopped")

// processTable holds every sandbox's processes and the scripted commands.
type processTable struct {
	mu        sync.Mutex
	scripts   map[string]ProcessScript
	bySandbox map[string]*sandboxProcesses
	// running counts the goroutines of processes that have not ended.
	running sync.WaitGroup
}

// sandboxProcesses are one sandbox's processes, in start order.
type sandboxProcesses struct {
	nextPID int
	procs   []*process
}

// process is one background process. Its fixed fields are set before it is
// listed; the rest are guarded by mu.
type process struct {
	pid                int
	name, command, cwd string
	startedAt          time.Time
	noIDs              bool
	cutAfter           int
	echo               bool
	// ctx ends the process: cancelled with its cause when it is stopped
	// (after the grace period), its machine stops or the engine closes.
	ctx    context.Context
	cancel context.CancelCauseFunc

	mu       sync.Mutex
	status   string
	exitCode *int
	// lines are the last lines written, oldest first; lines[i] has event id
	// firstLineID+i.
	lines       []outputLine
	firstLineID int
	logBytes    int
	// changed is closed, and replaced, whenever a line is written or the
	// process ends.
	changed chan struct{}
	// stopping is set once a stop was asked for; terminate sends a local
	// process SIGTERM.
	stopping  bool
	terminate func()
	// stdin is the write end of a local process's stdin.
	stdin *os.File
}

// processView is a process as the API sends it: pid as an integer, as the
// Python SDK's fixture shows, and exit_code null while it runs.
type processView struct {
	PID       int    `json:"pid"`
	Name      string `json:"name"`
	Command   string `json:"command"`
	Cwd       string `json:"cwd,omitempty"`
	Status    string `json:"status"`
	StartedAt string `json:"started_at"`
	ExitCode  *int   `json:"exit_code"`
}

func (p *process) view() processView {
	p.mu.Lock()
	defer p.mu.Unlock()
	v := processView{PID: p.pid, Name: p.name, Command: p.command, Cwd: p.cwd, Status: p.status,
		StartedAt: timeString(p.startedAt)}
	if p.exitCode != nil {
		code := *p.exitCode
		v.ExitCode = &code
	}
	return v
}

// write adds a line of output, forgetting the oldest lines over the bounds.
func (p *process) write(stderr bool, text string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.status != processRunning {
		return
	}
	p.lines = append(p.lines, outputLine{stderr: stderr, text: text})
	p.logBytes += len(text)
	for len(p.lines) > maxProcessLines || p.logBytes > maxProcessLogBytes {
		p.logBytes -= len(p.lines[0].text)
		p.lines = p.lines[1:]
		p.firstLineID++
	}
	p.notify()
}

// end records how the process ended, once, and releases its context.
func (p *process) end(status string, code int) {
	p.mu.Lock()
	if p.status == processRunning {
		p.status, p.exitCode = status, &code
		p.notify()
	}
	p.mu.Unlock()
	p.cancel(context.Canceled)
}

// notify wakes every stream waiting on the process; the caller holds p.mu.
func (p *process) notify() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// killedCode is the exit code of a process whose context ended, which
// ends it "killed": its own timeout, a stop, or its machine ending or the
// engine closing.
func (p *process) killedCode(runCtx context.Context) int {
	switch cause := context.Cause(runCtx); {
	case errors.Is(cause, context.DeadlineExceeded) && p.ctx.Err() == nil:
		return exitTimedOut
	case errors.Is(cause, errProcessStopped):
		return exitTerminated
	}
	return exitKilled
}

// stop asks the process to end: a local one gets SIGTERM, then SIGKILL
// after stopGrace; a scripted one ends at once, as a process that obeys
// SIGTERM does.
func (p *process) stop() {
	p.mu.Lock()
	if p.status != processRunning || p.stopping {
		p.mu.Unlock()
		return
	}
	p.stopping = true
	terminate := p.terminate
	p.mu.Unlock()
	if terminate == nil {
		p.cancel(errProcessStopped)
		return
	}
	terminate()
	kill := time.AfterFunc(stopGrace, func() { p.cancel(errProcessStopped) })
	context.AfterFunc(p.ctx, func() { kill.Stop() })
}

// HandleProcess makes every start of exactly command play script.
func (e *engine) HandleProcess(command string, script ProcessScript) {
	script.Lines = slices.Clone(script.Lines)
	e.procs.mu.Lock()
	defer e.procs.mu.Unlock()
	if e.procs.scripts == nil {
		e.procs.scripts = map[string]ProcessScript{}
	}
	e.procs.scripts[command] = script
}

// forget drops a deleted machine's processes, which its stop ended.
func (t *processTable) forget(machineID string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.bySandbox, machineID)
}

// find returns a sandbox's process by its pid as the path gives it.
func (t *processTable) find(sandboxID, pid string) *process {
	n, err := strconv.Atoi(pid)
	if err != nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if sp := t.bySandbox[sandboxID]; sp != nil {
		for _, p := range sp.procs {
			if p.pid == n {
				return p
			}
		}
	}
	return nil
}

func (t *processTable) list(sandboxID string) []*process {
	t.mu.Lock()
	defer t.mu.Unlock()
	if sp := t.bySandbox[sandboxID]; sp != nil {
		return slices.Clone(sp.procs)
	}
	return nil
}

// startProcess serves POST /sandboxes/{id}/processes: 409 NOT_RUNNING
// unless the sandbox runs; otherwise the process starts and the answer is
// 200 {"data": process}, as the Python SDK's fixture shows. The command is
// a script's (HandleProcess); else the exec handlers' result (HandleExec,
// HandleExecFunc, the default), its lines written at once; else, with the
// local shell, a real process.
func (e *engine) startProcess(w http.ResponseWriter, r *http.Request) {
	req := ExecRequest{ComputerID: r.PathValue("id")}
	var (
		name    string
		seconds int64
	)
	if !readFields(w, r, []bodyField{
		{"command", &req.Command, false, "a string"}, {"name", &name, false, "a string"}, {"cwd", &req.WorkingDir, false, "a string"},
		{"env", &req.Env, false, "an object of strings"}, {"timeout", &seconds, false, "an integer number of seconds"},
	}) {
		return
	}
	switch {
	case strings.TrimSpace(req.Command) == "":
		invalid(w, "command is required")
		return
	case seconds < 0 || seconds > maxStreamTimeout:
		invalid(w, "timeout must be 0 to %d seconds", maxStreamTimeout)
		return
	}
	req.Timeout = time.Duration(seconds) * time.Second
	if !e.running(w, "sandbox", req.ComputerID) {
		return
	}
	e.procs.mu.Lock()
	script, scripted := e.procs.scripts[req.Command]
	e.procs.mu.Unlock()
	p := &process{
		name: name, command: req.Command, cwd: req.WorkingDir, startedAt: e.now(),
		noIDs: script.NoEventIDs, cutAfter: script.CutStreamAfter, echo: script.EchoStdin,
		status: processRunning, firstLineID: 1, changed: make(chan struct{}),
	}
	if !e.addProcess(req.ComputerID, p) {
		writeError(w, http.StatusConflict, "NOT_RUNNING", fmt.Sprintf("sandbox %s is not running", req.ComputerID))
		return
	}
	// The answer says "running", as the API's does, however soon the
	// process ends.
	view := p.view()
	var run func()
	switch answer := e.answerer(req); {
	case scripted:
		run = func() { playProcess(p, script, req.Timeout) }
	case answer != nil:
		run = func() {
			res := answer(p.ctx)
			playProcess(p, ProcessScript{Lines: streamOf(res).Lines, ExitCode: res.ExitCode}, req.Timeout)
		}
	default:
		// Started before the answer, so that stdin written as soon as the
		// answer arrives reaches it.
		run = e.startLocalProcess(p, req)
	}
	go func() {
		defer e.procs.running.Done()
		run()
	}()
	e.write(w, dataReply(http.StatusOK, view))
}

// addProcess gives p its pid and its context, the machine's commands' (see
// commandContext), and lists it on its sandbox; it reports false when the
// sandbox stopped or the engine closed meanwhile. Holding engine.mu while
// it adds makes a stop that follows end p, and counts p's goroutine before
// Close can wait for it.
func (e *engine) addProcess(sandboxID string, p *process) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := e.machines[sandboxID]
	if e.closed || m == nil || m.status != statusRunning {
		return false
	}
	// A process belongs to its machine, as a command does: it ends when
	// the machine stops, fails, is paused or deleted, or the server closes.
	p.ctx, p.cancel = context.WithCancelCause(e.machineCommands(m))
	e.procs.mu.Lock()
	defer e.procs.mu.Unlock()
	if e.procs.bySandbox == nil {
		e.procs.bySandbox = map[string]*sandboxProcesses{}
	}
	sp := e.procs.bySandbox[sandboxID]
	if sp == nil {
		sp = &sandboxProcesses{nextPID: firstPID}
		e.procs.bySandbox[sandboxID] = sp
	}
	p.pid = sp.nextPID
	sp.nextPID++
	sp.procs = append(sp.procs, p)
	e.procs.running.Add(1)
	return true
}

// playProcess runs a scripted process to its end.
func playProcess(p *process, script ProcessScript, timeout time.Duration) {
	runCtx := p.ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(p.ctx, timeout)
		defer cancel()
	}
	start := time.Now()
	for _, l := range script.Lines {
		if retry.Sleep(runCtx, l.Delay) != nil {
			p.end(processKilled, p.killedCode(runCtx))
			return
		}
		p.write(l.Stderr, l.Text)
	}
	if script.UntilStopped {
		<-runCtx.Done()
		p.end(processKilled, p.killedCode(runCtx))
		return
	}
	if retry.Sleep(runCtx, script.RunTime-time.Since(start)) != nil {
		p.end(processKilled, p.killedCode(runCtx))
		return
	}
	p.end(processExited, script.ExitCode)
}

// startLocalProcess starts a process in the local shell and returns what
// follows it to its end: its output lines go to its log as they are
// written, its stdin is a pipe, a stop sends its process group SIGTERM and,
// after stopGrace, SIGKILL. A process that cannot start has ended "failed"
// when it returns.
func (e *engine) startLocalProcess(p *process, req ExecRequest) (follow func()) {
	req.Timeout = cmp.Or(req.Timeout, defaultProcessTimeout)
	failed := func(code int, err error) func() {
		p.write(true, fmt.Sprintf("miosatest: %v", err))
		p.end(processFailed, code)
		return func() {}
	}
	cmd, runCtx, cancel, _, err := e.shell.command(p.ctx, req)
	if err != nil {
		return failed(1, err)
	}
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		cancel()
		return failed(1, err)
	}
	cmd.Stdin = stdinR
	output := attachLines(runCtx, cmd)
	err = cmd.Start()
	stdinR.Close()
	if err != nil {
		stdinW.Close()
		output.closePipes()
		cancel()
		code, _ := exitStatus(runCtx, err, req.Timeout)
		return failed(code, err)
	}
	p.mu.Lock()
	p.stdin, p.terminate = stdinW, func() { terminateGroup(cmd) }
	p.mu.Unlock()
	return func() {
		defer cancel()
		done := output.waitFor(cmd)
		for l := range output.lines {
			p.write(l.stderr, l.text)
		}
		err := <-done
		p.mu.Lock()
		p.stdin = nil
		stopping := p.stopping
		p.mu.Unlock()
		stdinW.Close()
		switch {
		case runCtx.Err() != nil && errors.Is(context.Cause(runCtx), errProcessStopped):
			p.end(processKilled, exitKilled) // SIGTERM was not enough
		case runCtx.Err() != nil:
			p.end(processKilled, p.killedCode(runCtx))
		case stopping:
			// It ended within the grace period: by SIGTERM, or on its own.
			code := exitTerminated
			if state := cmd.ProcessState; state != nil && state.ExitCode() >= 0 {
				code = state.ExitCode()
			}
			p.end(processKilled, code)
		default:
			code, _ := exitStatus(runCtx, err, req.Timeout)
			p.end(processExited, code)
		}
	}
}

// withProcess finds the process the path names, answering 404 itself for
// an unknown sandbox or process.
func (e *engine) withProcess(w http.ResponseWriter, r *http.Request) (*process, bool) {
	id, pid := r.PathValue("id"), r.PathValue("pid")
	if !e.machineExists(w, id) {
		return nil, false
	}
	p := e.procs.find(id, pid)
	if p == nil {
		notFound(w, "process", pid)
		return nil, false
	}
	return p, true
}

// machineExists answers 404 itself for an unknown sandbox.
func (e *engine) machineExists(w http.ResponseWriter, id string) bool {
	if e.knownMachine(id) != nil {
		notFound(w, "sandbox", id)
		return false
	}
	return true
}

// getProcess serves GET /sandboxes/{id}/processes/{pid}: {"data": process}.
func (e *engine) getProcess(w http.ResponseWriter, r *http.Request) {
	if p, ok := e.withProcess(w, r); ok {
		e.write(w, dataReply(http.StatusOK, p.view()))
	}
}

// listProcesses serves GET /sandboxes/{id}/processes: every process the
// sandbox ran, oldest first, under "data".
func (e *engine) listProcesses(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !e.machineExists(w, id) {
		return
	}
	var views []processView
	for _, p := range e.procs.list(id) {
		views = append(views, p.view())
	}
	writeList(w, views, nil)
}

// stopProcess serves DELETE /sandboxes/{id}/processes/{pid}: 204 at once;
// the process gets SIGTERM, then SIGKILL after 5 s. An ended process stays
// listed, and stopping it again answers 204 too.
func (e *engine) stopProcess(w http.ResponseWriter, r *http.Request) {
	if p, ok := e.withProcess(w, r); ok {
		p.stop()
		w.WriteHeader(http.StatusNoContent)
	}
}

// processLogs serves GET /sandboxes/{id}/processes/{pid}/logs?tail=N: the
// last N lines (default 200), each with its newline, as {"data": "..."}.
func (e *engine) processLogs(w http.ResponseWriter, r *http.Request) {
	p, ok := e.withProcess(w, r)
	if !ok {
		return
	}
	tail := defaultLogTail
	if raw := r.URL.Query().Get("tail"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "INVALID", "tail must be a whole number of lines")
			return
		}
		tail = n
	}
	var b strings.Builder
	p.mu.Lock()
	for _, l := range p.lines[max(0, len(p.lines)-tail):] {
		b.WriteString(l.text + "\n")
	}
	p.mu.Unlock()
	writeData(w, http.StatusOK, b.String())
}

// writeProcessStdin serves POST /sandboxes/{id}/processes/{pid}/stdin with
// {"data": text}: 200 {"ok": true} once the text is written; 409
// NOT_RUNNING when the process has ended.
func (e *engine) writeProcessStdin(w http.ResponseWriter, r *http.Request) {
	p, ok := e.withProcess(w, r)
	if !ok {
		return
	}
	fields, ok := knownFields(w, r, []string{"data"})
	if !ok {
		return
	}
	var data string
	if _, ok := field(w, fields, "data", &data, "a string"); !ok {
		return
	}
	p.mu.Lock()
	running, stdin := p.status == processRunning, p.stdin
	p.mu.Unlock()
	switch {
	case !running:
		writeError(w, http.StatusConflict, "NOT_RUNNING", fmt.Sprintf("process %d has ended", p.pid))
		return
	case stdin != nil:
		_ = stdin.SetWriteDeadline(time.Now().Add(stdinWriteTimeout))
		if _, err := io.WriteString(stdin, data); err != nil {
			writeError(w, http.StatusConflict, "NOT_RUNNING", fmt.Sprintf("process %d does not read its stdin: %v", p.pid, err))
			return
		}
	case p.echo:
		for line := range strings.Lines(data) {
			p.write(false, strings.TrimSuffix(line, "\n"))
		}
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

// processStream serves GET /sandboxes/{id}/processes/{pid}/stream as
// server-sent events: every line the process keeps (or, with a
// Last-Event-ID, those after it), then each new line as it is written,
// then the exit event, and the stream ends. Each event carries its id
// (line n has id n; the exit the next), unless the script says NoEventIDs.
// ": keepalive" comments go out at the heartbeat interval.
func (e *engine) processStream(w http.ResponseWriter, r *http.Request) {
	p, ok := e.withProcess(w, r)
	if !ok {
		return
	}
	after := 0
	if !p.noIDs {
		after, _ = strconv.Atoi(strings.TrimSpace(r.Header.Get("Last-Event-ID")))
	}
	send := startEventStream(w)
	// The headers go out at once, even for a process that writes nothing
	// for a while.
	if !send("") {
		return
	}
	heartbeat := time.NewTicker(e.cfg.HeartbeatInterval)
	defer heartbeat.Stop()
	sent := 0
	event := func(id int, name string, data any) bool {
		eventID := ""
		if !p.noIDs {
			eventID = strconv.Itoa(id)
		}
		if !send(eventFrame(name, eventID, data)) {
			return false
		}
		if sent++; sent == p.cutAfter {
			dropConnection(w)
			return false
		}
		return true
	}
	for {
		lines, from, exitCode, changed := p.since(after)
		for i, l := range lines {
			if !event(from+i, outputEventName(l.stderr), map[string]string{"line": l.text}) {
				return
			}
			after = from + i
		}
		if exitCode != nil {
			event(from+len(lines), "exit", map[string]int{"exit_code": *exitCode})
			return
		}
		select {
		case <-changed:
		case <-heartbeat.C:
			if !send(": keepalive\n\n") {
				return
			}
		case <-r.Context().Done():
			return
		case <-e.closing:
			dropConnection(w)
			return
		}
	}
}

// since returns the lines kept after event id after, the id of the first
// of them, the exit code once the process has ended, and the channel
// closed at the next change.
func (p *process) since(after int) (lines []outputLine, from int, exitCode *int, changed <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	skip := min(max(0, after-p.firstLineID+1), len(p.lines))
	return slices.Clone(p.lines[skip:]), p.firstLineID + skip, p.exitCode, p.changed
}

// HandleProcess makes every background process started with exactly
// command (POST /sandboxes/{id}/processes) play script instead of running:
// its lines, each after its delay, then its exit after its run time, or
// running until stopped. A later registration of the same command replaces
// the earlier one.
//
// A command nobody scripted is answered like the blocking exec (HandleExec,
// HandleExecFunc, the default "echo"): a process that writes the result's
// stdout lines, then its stderr lines, and exits with its code at once.
// With WithLocalShell it runs on this machine instead: /bin/sh -c in the
// machine's directory, its stdin a pipe, killed at its timeout (default
// 24 h) or 5 s after a stop's SIGTERM.
//
// Every process keeps its last 10,000 lines (8 MiB) for logs and streams.
// Its stream's events carry ids (ProcessScript.NoEventIDs leaves them out)
// and resume after Last-Event-ID. A stopped process ends "killed" with exit
// code 143 (137 when SIGKILL was needed, 124 at its timeout); every process
// of a machine that stops, fails, is paused or deleted, or whose server
// closes is killed (137).
func (s *Server) HandleProcess(command string, script ProcessScript) {
	s.engine.HandleProcess(command, script)
}
