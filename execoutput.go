package miosa

import (
	"context"
	"io"
)

// runIntoWriters is Run with writers: it streams the command (Stream, with
// its fallback) and writes each output line, with a newline, to the writer
// of its kind as it arrives, then returns the exit code.
func (s *ExecService) runIntoWriters(ctx context.Context, id string, params ExecParams, opts []Option) (*ExecResult, error) {
	var line []byte // reused: one Write per line, without an allocation per line
	for ev, err := range s.Stream(ctx, id, params, opts...) {
		if err != nil {
			return nil, err
		}
		if ev.Kind == ExecExit {
			return &ExecResult{ExitCode: ev.ExitCode}, nil
		}
		w, field := params.writerFor(ev.Kind)
		if w == nil {
			continue
		}
		line = append(append(line[:0], ev.Line...), '\n')
		n, err := w.Write(line)
		if err == nil && n < len(line) {
			err = io.ErrShortWrite
		}
		if err != nil {
			// Returning leaves the loop, which closes the stream.
			return nil, errorf("miosa: exec: writing a line of the command's %s to ExecParams.%s: %w", ev.Kind, field, err)
		}
	}
	// Stream always ends with its exit or an error: this is a guard.
	return nil, errorf("miosa: exec: %w: the stream ended without the command's exit", ErrOutcomeUnknown)
}

// writerFor returns the writer a line of kind goes to, nil when it is
// dropped, and the field that writer came from.
func (p *ExecParams) writerFor(kind ExecEventKind) (io.Writer, string) {
	switch {
	case kind == ExecStdout:
		return p.Stdout, "Stdout"
	case kind == ExecStderr && p.Stderr != nil:
		return p.Stderr, "Stderr"
	case kind == ExecStderr:
		return p.Stdout, "Stdout"
	}
	return nil, ""
}
