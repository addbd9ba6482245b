package miosa_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

// cancelOnLog is a slog handler that cancels a context at the first debug
// line of a failed attempt that is to be retried: the pipeline logs it
// just before it sleeps until the next attempt.
type cancelOnLog struct{ cancel context.CancelFunc }

func (h cancelOnLog) Enabled(context.Context, slog.Level) bool { return true }
func (h cancelOnLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h cancelOnLog) WithGroup(string) slog.Handler            { return h }
func (h cancelOnLog) Handle(_ context.Context, r slog.Record) error {
	retried := true
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "not_retried" {
			retried = false
		}
		return true
	})
	if retried {
		h.cancel()
	}
	return nil
}

// TestErrorTexts_SayMiosaOnce runs a table of failures, each through the
// public API against the fake, and checks that no error text repeats the
// package's prefix: an error of the SDK's own wrapped in another (a
// sentinel, an *APIError, a call's error) keeps what it matches, not its
// "miosa: ". Joined errors are checked line by line.
func TestErrorTexts_SayMiosaOnce(t *testing.T) {
	tests := []struct {
		name    string
		matches error
		fail    func(t *testing.T, srv *miosatest.Server, c *miosa.Client, sb string) error
	}{
		{"exec whose answer was lost", miosa.ErrOutcomeUnknown, func(t *testing.T, srv *miosatest.Server, c *miosa.Client, sb string) error {
			srv.Inject(miosatest.Fault{Path: "/computers/*/exec", Drop: miosatest.DropAfterAct})
			_, err := c.Exec.Run(t.Context(), sb, miosa.ExecParams{Command: "echo hi"})
			return err
		}},
		{"streamed exec cut before its exit", miosa.ErrOutcomeUnknown, func(t *testing.T, srv *miosatest.Server, c *miosa.Client, sb string) error {
			srv.HandleExecStream("make", miosatest.ExecStream{Lines: []miosatest.ExecLine{{Text: "x"}}, End: miosatest.ExecStreamDrop})
			_, err := c.Exec.Run(t.Context(), sb, miosa.ExecParams{Command: "make", Stdout: io.Discard})
			return err
		}},
		{"streamed exec whose exit carries an error", miosa.ErrOutcomeUnknown, func(t *testing.T, srv *miosatest.Server, c *miosa.Client, sb string) error {
			srv.HandleExecStream("make", miosatest.ExecStream{End: miosatest.ExecStreamError})
			_, err := c.Exec.Run(t.Context(), sb, miosa.ExecParams{Command: "make", Stdout: io.Discard})
			return err
		}},
		{"context ended while waiting to retry", context.Canceled, func(t *testing.T, srv *miosatest.Server, _ *miosa.Client, sb string) error {
			srv.Inject(miosatest.Fault{Path: "/computers/*", Status: http.StatusServiceUnavailable})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			c := srv.Client(miosa.WithRetryDelay(time.Hour, time.Hour), miosa.WithLogger(slog.New(cancelOnLog{cancel})))
			_, err := c.Computers.Get(ctx, sb)
			require.ErrorIs(t, err, miosa.ErrServer, "the last attempt's answer is kept")
			return err
		}},
		{"destroy after Use failed", miosa.ErrServer, func(t *testing.T, srv *miosatest.Server, c *miosa.Client, _ string) error {
			srv.Inject(miosatest.Fault{Method: "DELETE", Path: "/computers/*", Status: http.StatusInternalServerError, Times: miosatest.Always})
			return c.Sandboxes.Use(t.Context(), miosa.ComputerCreateParams{}, func(context.Context, *miosa.Sandbox) error {
				return errors.New("miosa: fn's own error, as another SDK call returns it")
			}, miosa.WithMaxRetries(0))
		}},
		{"sandbox gone during a wait", miosa.ErrNotFound, func(t *testing.T, srv *miosatest.Server, c *miosa.Client, _ string) error {
			sb, err := c.Sandboxes.Create(t.Context(), miosa.ComputerCreateParams{}, miosa.WithMaxRetries(0))
			require.NoError(t, err)
			require.NoError(t, c.Computers.Destroy(t.Context(), sb.ID))
			_, err = c.Sandboxes.WaitUntilReady(t.Context(), sb.ID, miosa.WaitOptions{PollOnly: true})
			return err
		}},
		{"computer gone during a status wait", miosa.ErrNotFound, func(t *testing.T, srv *miosatest.Server, c *miosa.Client, sb string) error {
			require.NoError(t, c.Computers.Destroy(t.Context(), sb))
			_, err := c.Computers.WaitForStatus(t.Context(), sb, miosa.StatusStopped, miosa.WaitOptions{})
			return err
		}},
		{"upload whose reader fails", iotest.ErrTimeout, func(t *testing.T, srv *miosatest.Server, c *miosa.Client, sb string) error {
			return c.Files.Upload(t.Context(), sb, "/tmp/x", iotest.TimeoutReader(strings.NewReader("abc")), miosa.FileUploadParams{})
		}},
		{"download cut halfway", io.ErrUnexpectedEOF, func(t *testing.T, srv *miosatest.Server, c *miosa.Client, sb string) error {
			require.NoError(t, c.Files.Upload(t.Context(), sb, "/tmp/x", bytes.NewReader(make([]byte, 1<<20)), miosa.FileUploadParams{}))
			srv.Inject(miosatest.Fault{Path: "/computers/*/files/download", Drop: miosatest.DropMidAnswer})
			_, err := c.Files.Download(t.Context(), sb, "/tmp/x", io.Discard)
			return err
		}},
		{"answer that does not decode", nil, func(t *testing.T, srv *miosatest.Server, c *miosa.Client, sb string) error {
			srv.Inject(miosatest.Fault{Path: "/computers/*", Status: http.StatusOK, Body: []byte(`{"id":`)})
			_, err := c.Computers.Get(t.Context(), sb)
			return err
		}},
		{"refused call", miosa.ErrNotFound, func(t *testing.T, srv *miosatest.Server, c *miosa.Client, _ string) error {
			_, err := c.Computers.Get(t.Context(), "cmp_nope")
			return err
		}},
		{"invalid params", miosa.ErrInvalidParams, func(t *testing.T, srv *miosatest.Server, c *miosa.Client, _ string) error {
			_, err := c.Exec.Run(t.Context(), "", miosa.ExecParams{Command: "ls"})
			return err
		}},
		{"listing with an ended context", context.Canceled, func(t *testing.T, srv *miosatest.Server, c *miosa.Client, _ string) error {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			for _, err := range c.Computers.All(ctx, miosa.ComputerListParams{}) {
				return err
			}
			return nil
		}},
		{"status wait that times out", miosa.ErrWaitTimeout, func(t *testing.T, srv *miosatest.Server, c *miosa.Client, sb string) error {
			_, err := c.Computers.WaitForStatus(t.Context(), sb, miosa.StatusStopped, miosa.WaitOptions{Timeout: 20 * time.Millisecond})
			return err
		}},
		{"exec writer that fails", io.ErrClosedPipe, func(t *testing.T, srv *miosatest.Server, c *miosa.Client, sb string) error {
			_, err := c.Exec.Run(t.Context(), sb, miosa.ExecParams{Command: "echo hi", Stdout: failingWriter{io.ErrClosedPipe}})
			return err
		}},
		{"exec writer that fails with another call's error", miosa.ErrNotFound, func(t *testing.T, srv *miosatest.Server, c *miosa.Client, sb string) error {
			_, notFound := c.Computers.Get(t.Context(), "cmp_nope")
			_, err := c.Exec.Run(t.Context(), sb, miosa.ExecParams{Command: "echo hi", Stdout: failingWriter{notFound}})
			return err
		}},
		{"upload from a download that failed", miosa.ErrNotFound, func(t *testing.T, srv *miosatest.Server, c *miosa.Client, sb string) error {
			pr, pw := io.Pipe()
			go func() {
				_, err := c.Files.Download(t.Context(), sb, "/no/such/file", pw)
				pw.CloseWithError(err)
			}()
			return c.Files.Upload(t.Context(), sb, "/tmp/copy", pr, miosa.FileUploadParams{})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
			c := srv.Client()
			sb, err := c.Sandboxes.Create(t.Context(), miosa.ComputerCreateParams{})
			require.NoError(t, err)
			err = tt.fail(t, srv, c, sb.ID)
			require.Error(t, err)
			if tt.matches != nil {
				require.ErrorIs(t, err, tt.matches)
			}
			for line := range strings.Lines(err.Error()) {
				assert.True(t, strings.HasPrefix(line, "miosa: "), "every error text starts with the prefix: %q", line)
				assert.Equal(t, 1, strings.Count(line, "miosa:"), "the prefix is said once: %q", line)
			}
		})
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }
