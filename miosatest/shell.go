package miosatest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sync"
	"time"
)

const (
	// defaultExecTimeout bounds a local command whose request set none.
	defaultExecTimeout = 60 * time.Second
	// defaultWorkingDir is the server's default working directory, here
	// taken inside the machine's own directory.
	defaultWorkingDir = "/home/user"
	// exitTimedOut is the exit code of a command killed at its timeout, as
	// timeout(1) reports it.
	exitTimedOut = 124
	exitNotFound = 127
)

// localShell runs exec requests on this host: one temporary directory per
// machine, created on first use and removed by removeAll. It is not a
// sandbox: commands run as the test process's user, with its environment.
type localShell struct {
	mu   sync.Mutex
	root string
}

// dir returns the directory for one machine and working_dir, created if
// needed, and the machine's home. working_dir is taken relative to the
// machine's directory, whether it is written absolute or not, and cannot
// climb out of it.
func (s *localShell) dir(machineID, workingDir string) (dir, home string, err error) {
	if workingDir == "" {
		workingDir = defaultWorkingDir
	}
	if dir, err = s.hostPath(machineID, workingDir); err != nil {
		return "", "", err
	}
	home, _ = s.hostPath(machineID, defaultWorkingDir)
	return dir, home, os.MkdirAll(dir, 0o755)
}

// hostPath returns where the machine's file at remote lives on this host,
// creating the machine's directory and home on first use. A relative remote
// path is taken from the machine's home; no path climbs out of the machine's
// directory. The file tree served by the files endpoints is this one.
func (s *localShell) hostPath(machineID, remote string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	machineDir, err := s.tree(machineID)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Join(machineDir, defaultWorkingDir), 0o755); err != nil {
		return "", err
	}
	if !path.IsAbs(remote) {
		remote = path.Join(defaultWorkingDir, remote)
	}
	return filepath.Join(machineDir, filepath.FromSlash(path.Clean("/"+remote))), nil
}

// tree returns where the file tree called name (a machine's id, or a
// snapshot's snapshotTree) lives on this host, creating the shell's root
// directory on first use. The caller holds s.mu.
func (s *localShell) tree(name string) (string, error) {
	if s.root == "" {
		root, err := os.MkdirTemp("", "miosatest-shell-")
		if err != nil {
			return "", err
		}
		s.root = root
	}
	return filepath.Join(s.root, name), nil
}

// removeTree deletes one file tree: a machine's directory, as deleting the
// machine deletes its disk, or a snapshot's copy.
func (s *localShell) removeTree(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.root == "" {
		return nil
	}
	return os.RemoveAll(filepath.Join(s.root, name))
}

// removeAll deletes every machine's directory.
func (s *localShell) removeAll() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.root == "" {
		return nil
	}
	err := os.RemoveAll(s.root)
	s.root = ""
	return err
}

// lockedBuffer collects the combined output of stdout and stderr, written
// from two goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// teeWriter writes to its own buffer and the shared combined one.
type teeWriter struct {
	own      bytes.Buffer
	combined *lockedBuffer
}

func (t *teeWriter) Write(p []byte) (int, error) {
	t.own.Write(p)
	return t.combined.Write(p)
}

// command prepares req to run with /bin/sh -c (or python3 -c) in the
// machine's directory, with the request's env added to this process's,
// killed at the request's timeout or when ctx ends: runCtx ends then, and
// the caller must call cancel when done. timeout is the limit applied.
func (s *localShell) command(ctx context.Context, req ExecRequest) (cmd *exec.Cmd, runCtx context.Context, cancel context.CancelFunc, timeout time.Duration, err error) {
	dir, home, err := s.dir(req.ComputerID, req.WorkingDir)
	if err != nil {
		return nil, nil, nil, 0, fmt.Errorf("preparing the working directory: %w", err)
	}
	timeout = req.Timeout
	if timeout <= 0 {
		timeout = defaultExecTimeout
	}
	runCtx, cancel = context.WithTimeout(ctx, timeout)
	if req.Python {
		cmd = exec.CommandContext(runCtx, "python3", "-c", req.Code)
	} else {
		cmd = exec.CommandContext(runCtx, "/bin/sh", "-c", req.Command)
	}
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+home, "PWD="+dir)
	for k, v := range req.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	killWholeGroup(cmd)
	// A child that escaped the group and keeps the pipes open must not
	// keep the answer waiting once the command itself was killed.
	cmd.WaitDelay = time.Second
	return cmd, runCtx, cancel, timeout, nil
}

// exitStatus turns how a command ended into its exit code, and a note for
// its stderr when the shell would not have printed why.
func exitStatus(runCtx context.Context, err error, timeout time.Duration) (code int, note string) {
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0, ""
	case runCtx.Err() == context.DeadlineExceeded:
		return exitTimedOut, fmt.Sprintf("miosatest: command timed out after %s\n", timeout)
	case errors.As(err, &exitErr) && exitErr.ExitCode() >= 0:
		return exitErr.ExitCode(), ""
	case errors.Is(err, exec.ErrNotFound):
		return exitNotFound, fmt.Sprintf("miosatest: %v\n", err)
	}
	return 1, fmt.Sprintf("miosatest: %v\n", err)
}

// run executes req (see command) and returns its output once it ended; a
// command killed at its timeout exits with 124.
func (s *localShell) run(ctx context.Context, req ExecRequest) ExecResult {
	cmd, runCtx, cancel, timeout, err := s.command(ctx, req)
	if err != nil {
		return ExecResult{ExitCode: 1, Stderr: fmt.Sprintf("miosatest: %v\n", err)}
	}
	defer cancel()
	combined := &lockedBuffer{}
	stdout, stderr := &teeWriter{combined: combined}, &teeWriter{combined: combined}
	cmd.Stdout, cmd.Stderr = stdout, stderr

	err = cmd.Run()
	res := ExecResult{Stdout: stdout.own.String(), Stderr: stderr.own.String()}
	var note string
	res.ExitCode, note = exitStatus(runCtx, err, timeout)
	res.Stderr += note
	combined.Write([]byte(note))
	res.Output = combined.buf.String()
	return res
}

// outputLine is a line the local shell read from a command.
type outputLine struct {
	stderr bool
	text   string
}

// lineOutput is a local command's stdout and stderr, line by line as the
// command writes them.
type lineOutput struct {
	lines          chan outputLine
	readers        sync.WaitGroup
	stdout, stderr *io.PipeWriter
}

// attachLines makes cmd's output arrive on the returned lineOutput's lines,
// each line as the command writes it. Once ctx has ended lines are read and
// dropped, so the command never blocks on a full pipe.
func attachLines(ctx context.Context, cmd *exec.Cmd) *lineOutput {
	o := &lineOutput{lines: make(chan outputLine)}
	pipe := func(stderr bool) *io.PipeWriter {
		r, w := io.Pipe()
		o.readers.Go(func() { forwardLines(ctx, r, stderr, o.lines) })
		return w
	}
	o.stdout, o.stderr = pipe(false), pipe(true)
	cmd.Stdout, cmd.Stderr = o.stdout, o.stderr
	return o
}

// closePipes ends the output and waits until every line written was read:
// after cmd has exited, or when it never started.
func (o *lineOutput) closePipes() {
	o.stdout.Close()
	o.stderr.Close()
	o.readers.Wait()
}

// waitFor waits for the started cmd in the background: lines is closed once
// it has exited and its every line was received, and then its exit error
// arrives on the returned channel.
func (o *lineOutput) waitFor(cmd *exec.Cmd) <-chan error {
	done := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		o.closePipes()
		close(o.lines)
		done <- err
	}()
	return done
}

// forwardLines sends each line read from r to lines until r ends. Once ctx
// has ended lines are read and dropped, so the command never blocks on a
// full pipe.
func forwardLines(ctx context.Context, r io.Reader, stderr bool, lines chan<- outputLine) {
	br := bufio.NewReaderSize(r, maxStreamLine)
	for {
		text, _, err := br.ReadLine()
		if err != nil {
			return
		}
		select {
		case lines <- outputLine{stderr: stderr, text: string(text)}:
		case <-ctx.Done():
		}
	}
}
