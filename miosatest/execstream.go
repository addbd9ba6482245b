package miosatest

import "github.com/miosa-ai/miosa-go/internal/fakeapi"

// ExecLine is one line of a scripted streamed command's output: Text (the
// line, without its newline) sent after Delay, as a "stderr" event when
// Stderr is set, else as "stdout".
type ExecLine = fakeapi.ExecLine

// ExecStream is how a scripted streamed command behaves: its Lines, each
// after its delay, then ExitDelay, then its End — by default the exit event
// with ExitCode (or -1 and timed_out when TimedOut is set).
type ExecStream = fakeapi.ExecStream

// ExecStreamEnd says how a scripted streamed command's answer ends.
type ExecStreamEnd = fakeapi.ExecStreamEnd

// How a scripted streamed command's answer ends.
const (
	// ExecStreamExit sends the exit event: the normal end.
	ExecStreamExit = fakeapi.ExecStreamExit
	// ExecStreamError sends an exit event carrying an error object
	// (code STREAM_ABORTED) instead of an outcome, as a server does when it
	// loses track of the command.
	ExecStreamError = fakeapi.ExecStreamError
	// ExecStreamDrop cuts the connection after the lines: no exit event.
	ExecStreamDrop = fakeapi.ExecStreamDrop
	// ExecStreamClose ends the answer cleanly after the lines, without an
	// exit event.
	ExecStreamClose = fakeapi.ExecStreamClose
)

// HandleExecStream makes every streamed exec
// (POST /sandboxes/{id}/exec/stream) of exactly command play stream: its
// lines as server-sent events, each after its delay, then its end. Faults
// mid-stream are ends: ExecStreamDrop after the lines cuts the connection,
// ExecStreamError sends an exit carrying an error. A later registration of
// the same command replaces the earlier one.
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
