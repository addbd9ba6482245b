package miosatest_test

import (
	"context"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

func TestExec_RegisteredResultsAnswerExactCommands(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	srv.HandleExec("ls /nope", miosatest.ExecResult{Stderr: "ls: /nope: No such file\n", ExitCode: 2})
	srv.HandleExec("echo hi", miosatest.ExecResult{Stdout: "registered\n"})
	srv.HandlePython("print(1+1)", miosatest.ExecResult{Stdout: "2\n"})
	client := srv.Client()
	c, err := client.Computers.Create(t.Context(), miosa.ComputerCreateParams{})
	require.NoError(t, err)

	res, err := client.Exec.Run(t.Context(), c.ID, miosa.ExecParams{Command: "ls /nope"})
	require.NoError(t, err, "a non-zero exit is an answer, not an error")
	assert.Equal(t, 2, res.ExitCode)
	assert.Equal(t, "ls: /nope: No such file\n", res.Output, "output defaults to stdout then stderr")
	raw := call(t, srv, "POST", "/computers/"+c.ID+"/exec", `{"command":"ls /nope"}`)
	assert.JSONEq(t, `{"output":"ls: /nope: No such file\n","stdout":"",
		"stderr":"ls: /nope: No such file\n","exit_code":2,"success":false}`, string(raw.body), "wire shape: bare")

	res, err = client.Exec.Run(t.Context(), c.ID, miosa.ExecParams{Command: "echo hi"})
	require.NoError(t, err)
	assert.Equal(t, "registered\n", res.Stdout, "a registration wins over the default")

	res, err = client.Exec.Python(t.Context(), c.ID, miosa.PythonParams{Code: "print(1+1)"})
	require.NoError(t, err)
	assert.Equal(t, "2\n", res.Stdout)
}

func TestExec_DefaultsEchoAndFailUnknownCommands(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	client := srv.Client()
	c, err := client.Computers.Create(t.Context(), miosa.ComputerCreateParams{})
	require.NoError(t, err)

	res, err := client.Exec.Run(t.Context(), c.ID, miosa.ExecParams{Command: `echo "hello  world" again`})
	require.NoError(t, err)
	assert.Equal(t, "hello  world again\n", res.Stdout)
	assert.Zero(t, res.ExitCode)

	res, err = client.Exec.Run(t.Context(), c.ID, miosa.ExecParams{Command: "terraform apply"})
	require.NoError(t, err)
	assert.Equal(t, 127, res.ExitCode)
	assert.Contains(t, res.Stderr, "terraform: not found")
	assert.Contains(t, res.Stderr, "HandleExec")

	res, err = client.Exec.Python(t.Context(), c.ID, miosa.PythonParams{Code: "import os"})
	require.NoError(t, err)
	assert.Equal(t, 1, res.ExitCode)
	assert.Contains(t, res.Stderr, "HandlePython")
}

func TestExec_FuncSeesTheWholeRequest(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	got := make(chan miosatest.ExecRequest, 2)
	srv.HandleExecFunc(func(_ context.Context, req miosatest.ExecRequest) miosatest.ExecResult {
		got <- req
		return miosatest.ExecResult{Stdout: "from func\n", Output: "custom"}
	})
	client := srv.Client()
	c, err := client.Computers.Create(t.Context(), miosa.ComputerCreateParams{})
	require.NoError(t, err)

	res, err := client.Exec.Run(t.Context(), c.ID, miosa.ExecParams{
		Command: "make test", Timeout: 1500 * time.Millisecond, WorkingDir: "/src", Env: map[string]string{"CI": "1"},
	})
	require.NoError(t, err)
	assert.Equal(t, "custom", res.Output, "an explicit Output is sent as it is")
	assert.Equal(t, miosatest.ExecRequest{
		ComputerID: c.ID, Command: "make test", Timeout: 1500 * time.Millisecond, TimeoutSent: "1500",
		WorkingDir: "/src", Env: map[string]string{"CI": "1"},
	}, <-got)

	_, err = client.Exec.Python(t.Context(), c.ID, miosa.PythonParams{Code: "x = 1"})
	require.NoError(t, err)
	py := <-got
	assert.True(t, py.Python)
	assert.Equal(t, "x = 1", py.Code)
	assert.Empty(t, py.Command)

	srv.HandleExecFunc(nil)
	res, err = client.Exec.Run(t.Context(), c.ID, miosa.ExecParams{Command: "make test"})
	require.NoError(t, err)
	assert.Equal(t, 127, res.ExitCode, "nil restores the default")
}

func TestExec_RefusedUnlessTheMachineRuns(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(time.Hour))
	client := srv.Client()
	c, err := client.Computers.Create(t.Context(), miosa.ComputerCreateParams{})
	require.NoError(t, err)

	check := func(state string) {
		t.Helper()
		_, err := client.Exec.Run(t.Context(), c.ID, miosa.ExecParams{Command: "echo hi"})
		var apiErr *miosa.APIError
		require.ErrorAs(t, err, &apiErr, state)
		assert.ErrorIs(t, err, miosa.ErrConflict, state)
		assert.Equal(t, "NOT_RUNNING", apiErr.Code, state)
		assert.Contains(t, apiErr.Message, state)
	}
	check("creating")
	require.NoError(t, client.Computers.Stop(t.Context(), c.ID))
	check("stopped")

	_, err = client.Exec.Run(t.Context(), "cmp_missing", miosa.ExecParams{Command: "echo hi"})
	assert.ErrorIs(t, err, miosa.ErrNotFound)
	res := call(t, srv, "POST", "/computers/"+c.ID+"/exec", `{"command":"  "}`)
	assert.Equal(t, http.StatusUnprocessableEntity, res.status, "a blank command is refused")
}

func TestLocalShell_RunsCommandsInAPerMachineDirectory(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0), miosatest.WithLocalShell())
	client := srv.Client()
	a, err := client.Computers.Create(t.Context(), miosa.ComputerCreateParams{})
	require.NoError(t, err)
	b, err := client.Computers.Create(t.Context(), miosa.ComputerCreateParams{})
	require.NoError(t, err)

	res, err := client.Exec.Run(t.Context(), a.ID, miosa.ExecParams{
		Command: `echo "$GREETING" > note.txt; echo out; echo err >&2; pwd; exit 3`, Env: map[string]string{"GREETING": "hello"},
	})
	require.NoError(t, err)
	assert.Equal(t, 3, res.ExitCode)
	assert.Equal(t, "err\n", res.Stderr)
	assert.True(t, strings.HasPrefix(res.Stdout, "out\n"), res.Stdout)
	assert.True(t, strings.HasSuffix(strings.TrimSpace(res.Stdout), "/"+a.ID+"/home/user"), "default working_dir inside the machine's directory")
	assert.Contains(t, res.Output, "out\n")
	assert.Contains(t, res.Output, "err\n")

	res, err = client.Exec.Run(t.Context(), a.ID, miosa.ExecParams{Command: "cat note.txt"})
	require.NoError(t, err)
	assert.Equal(t, "hello\n", res.Stdout, "files persist on one machine")
	res, err = client.Exec.Run(t.Context(), b.ID, miosa.ExecParams{Command: "cat note.txt"})
	require.NoError(t, err)
	assert.NotZero(t, res.ExitCode, "another machine has its own directory")

	res, err = client.Exec.Run(t.Context(), a.ID, miosa.ExecParams{Command: `pwd; echo "$HOME"`, WorkingDir: "../../../../tmp/work"})
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
	require.Len(t, lines, 2)
	assert.True(t, strings.HasSuffix(lines[0], "/"+a.ID+"/tmp/work"), "working_dir cannot climb out: %s", lines[0])
	assert.True(t, strings.HasSuffix(lines[1], "/"+a.ID+"/home/user"), "HOME is the machine's home: %s", lines[1])
}

func TestLocalShell_KillsACommandAtItsTimeout(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0), miosatest.WithLocalShell())
	client := srv.Client()
	c, err := client.Computers.Create(t.Context(), miosa.ComputerCreateParams{})
	require.NoError(t, err)
	res, err := client.Exec.Run(t.Context(), c.ID, miosa.ExecParams{Command: "sleep 30", Timeout: 50 * time.Millisecond})
	require.NoError(t, err)
	assert.Equal(t, 124, res.ExitCode)
	assert.Contains(t, res.Stderr, "timed out")
}

func TestLocalShell_RunsPython(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed")
	}
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0), miosatest.WithLocalShell())
	client := srv.Client()
	c, err := client.Computers.Create(t.Context(), miosa.ComputerCreateParams{})
	require.NoError(t, err)
	res, err := client.Exec.Python(t.Context(), c.ID, miosa.PythonParams{
		Code: "import os, sys\nprint(os.environ['X'])\nsys.exit(4)", Env: map[string]string{"X": "from env"},
	})
	require.NoError(t, err)
	assert.Equal(t, "from env\n", res.Stdout)
	assert.Equal(t, 4, res.ExitCode)
}
