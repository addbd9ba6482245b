package miosatest

import (
	"context"

	"github.com/miosa-ai/miosa-go/internal/fakeapi"
)

// ExecRequest is an exec call as a handler sees it: the ComputerID it was
// sent to, the Command (or, when Python is true, the Code) and the
// request's Timeout, WorkingDir and Env. It is declared once, by the engine
// behind Server.
type ExecRequest = fakeapi.ExecRequest

// ExecResult is the answer to an exec call: Output, Stdout, Stderr and
// ExitCode. When Output is empty the server sends Stdout followed by Stderr
// as the combined output. A non-zero ExitCode is still a 200 answer, as
// with the real API. It is declared once, by the engine behind Server.
type ExecResult = fakeapi.ExecResult

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
// exact registration matches. fn may be called concurrently; ctx ends when
// the client goes away or the server closes. nil restores the default.
func (s *Server) HandleExecFunc(fn func(ctx context.Context, req ExecRequest) ExecResult) {
	s.engine.HandleExecFunc(fn)
}
