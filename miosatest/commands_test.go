package miosatest_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

// heldCommand is a HandleExecFunc command that runs until the test
// releases it or its context ends, and records which came first.
type heldCommand struct {
	started, release, done chan struct{}
	once                   sync.Once
	err                    error // the command's context's error when it ended
}

func newHeldCommand() *heldCommand {
	return &heldCommand{started: make(chan struct{}), release: make(chan struct{}), done: make(chan struct{})}
}

func (h *heldCommand) run(ctx context.Context, _ miosatest.ExecRequest) miosatest.ExecResult {
	defer h.once.Do(func() { close(h.done) })
	close(h.started)
	select {
	case <-h.release:
	case <-ctx.Done():
	}
	h.err = ctx.Err()
	return miosatest.ExecResult{Stdout: "finished\n"}
}

// In a synctest bubble over in-memory pipes, synctest.Wait returns once
// the server has seen the client go (its read of the closed pipe ended),
// so each test below lets the command go on only after that.
func TestCommands_RunOnWhenTheClientGoesAway(t *testing.T) {
	for name, leave := range map[string]func(ctx context.Context, client *miosa.Client, id string){
		"a context that ends during Run": func(ctx context.Context, client *miosa.Client, id string) {
			_, err := client.Exec.Run(ctx, id, miosa.ExecParams{Command: "held"})
			assert.ErrorIs(t, err, context.Canceled)
		},
		"a context that ends during a stream": func(ctx context.Context, client *miosa.Client, id string) {
			for _, err := range client.Exec.Stream(ctx, id, miosa.ExecParams{Command: "held"}) {
				assert.ErrorIs(t, err, context.Canceled)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := miosatest.NewServer(t, miosatest.WithInMemoryNetwork(), miosatest.WithBootDelay(0))
				cmd := newHeldCommand()
				srv.HandleExecFunc(cmd.run)
				id := sandbox(t, srv)

				ctx, cancel := context.WithCancel(t.Context())
				left := make(chan struct{})
				go func() {
					defer close(left)
					leave(ctx, srv.Client(), id)
				}()
				<-cmd.started
				cancel()
				<-left
				synctest.Wait() // the server has seen the client go

				select {
				case <-cmd.done:
					t.Fatalf("the command ended when its client went away (%v)", cmd.err)
				default:
				}
				close(cmd.release)
				<-cmd.done
				assert.NoError(t, cmd.err, "the command ran to its own end")
			})
		})
	}
}

// A scripted stream plays to its end after its client left: its delays
// and its exit are the command's, not the client's.
func TestCommands_AScriptedStreamPlaysOnAfterABreak(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := miosatest.NewServer(t, miosatest.WithInMemoryNetwork(), miosatest.WithBootDelay(0))
		srv.HandleExecStream("build", miosatest.ExecStream{
			Lines:     []miosatest.ExecLine{{Text: "first"}, {Delay: time.Minute, Text: "second"}},
			ExitDelay: time.Minute,
		})
		id := sandbox(t, srv)
		start := time.Now()
		for ev, err := range srv.Client().Exec.Stream(t.Context(), id, miosa.ExecParams{Command: "build"}) {
			require.NoError(t, err)
			require.Equal(t, "first", ev.Line)
			break
		}
		synctest.Wait()
		streams := srv.RequestsTo("POST", "/sandboxes/*/exec/stream")
		require.Len(t, streams, 1)
		assert.Zero(t, streams[0].Status, "the script still plays")

		time.Sleep(2*time.Minute + time.Second)
		synctest.Wait()
		streams = srv.RequestsTo("POST", "/sandboxes/*/exec/stream")
		assert.Equal(t, http.StatusOK, streams[0].Status, "the script ended by itself, after its own delays")
		assert.GreaterOrEqual(t, time.Since(start), 2*time.Minute)
	})
}

// A local-shell command writes a file after its client broke out of the
// stream: it was not killed when the client went.
func TestCommands_ALocalShellCommandOutlivesABreak(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0), miosatest.WithLocalShell())
	id := sandbox(t, srv)
	command := `echo started; sleep 0.5; echo "written after the client left" > after.txt`
	for ev, err := range srv.Client().Exec.Stream(t.Context(), id, miosa.ExecParams{Command: command}) {
		require.NoError(t, err)
		require.Equal(t, "started", ev.Line)
		break
	}
	_, err := srv.ReadFile(id, "after.txt")
	require.Error(t, err, "the command is still running")
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		data, err := srv.ReadFile(id, "after.txt")
		assert.NoError(c, err)
		assert.Equal(c, "written after the client left\n", string(data))
	}, 10*time.Second, 10*time.Millisecond)
}

// A command ends with its machine: a stop (or a delete) ends it, and the
// client that waits for it gets no answer, as from a machine that went away.
func TestCommands_EndWhenTheirMachineStops(t *testing.T) {
	for name, end := range map[string]func(t *testing.T, client *miosa.Client, id string){
		"stop": func(t *testing.T, client *miosa.Client, id string) {
			require.NoError(t, client.Computers.Stop(t.Context(), id))
		},
		"destroy": func(t *testing.T, client *miosa.Client, id string) {
			require.NoError(t, client.Sandboxes.Destroy(t.Context(), id))
		},
	} {
		t.Run(name, func(t *testing.T) {
			srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
			cmd := newHeldCommand()
			srv.HandleExecFunc(cmd.run)
			client := srv.Client()
			id := sandbox(t, srv)
			ran := make(chan error, 1)
			go func() {
				_, err := client.Exec.Run(t.Context(), id, miosa.ExecParams{Command: "held"})
				ran <- err
			}()
			<-cmd.started
			end(t, client, id)
			select {
			case <-cmd.done:
			case <-time.After(10 * time.Second):
				t.Fatal("the command runs on after its machine ended")
			}
			assert.ErrorIs(t, cmd.err, context.Canceled, "the machine's end ended the command")
			assert.ErrorIs(t, <-ran, miosa.ErrOutcomeUnknown, "no answer came back")
		})
	}
	t.Run("a local-shell stream", func(t *testing.T) {
		srv := miosatest.NewServer(t, miosatest.WithBootDelay(0), miosatest.WithLocalShell())
		client := srv.Client()
		id := sandbox(t, srv)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // fails, rather than waits, if the stop left it running
		defer cancel()
		var err error
		for ev, e := range client.Exec.Stream(ctx, id, miosa.ExecParams{Command: "echo started; sleep 600"}) {
			if e != nil {
				err = e
				break
			}
			if ev.Line == "started" {
				require.NoError(t, client.Computers.Stop(t.Context(), id))
			}
		}
		assert.ErrorIs(t, err, miosa.ErrOutcomeUnknown, "the stream ends without an exit")
		assert.NoError(t, ctx.Err(), "it ended with the machine")
	})
}

// Close ends the commands still running, instead of waiting for them.
func TestCommands_EndWhenTheServerCloses(t *testing.T) {
	srv, err := miosatest.Start(miosatest.WithBootDelay(0), miosatest.WithLocalShell())
	require.NoError(t, err)
	client := srv.Client()
	c, err := client.Sandboxes.Create(t.Context(), miosa.ComputerCreateParams{})
	require.NoError(t, err)
	for ev, err := range client.Exec.Stream(t.Context(), c.ID, miosa.ExecParams{Command: "echo started; sleep 600"}) {
		require.NoError(t, err)
		require.Equal(t, "started", ev.Line)
		break // the command runs on
	}
	closed := make(chan error)
	go func() { closed <- srv.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("Close waits for a command its client left")
	}
}

// The blocking exec reads its timeout in milliseconds: a client that sends
// seconds sees its command killed after that many milliseconds, as
// WithLocalShell says.
func TestLocalShell_ATimeoutSentInSecondsIsReadAsMilliseconds(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0), miosatest.WithLocalShell())
	id := sandbox(t, srv)
	res := call(t, srv, "POST", "/computers/"+id+"/exec", `{"command":"sleep 5","timeout":30}`)
	require.Equal(t, http.StatusOK, res.status)
	assert.JSONEq(t, `{"output":"miosatest: command timed out after 30ms\n","stdout":"","stderr":"miosatest: command timed out after 30ms\n","exit_code":124,"success":false}`, string(res.body))
}
