package miosa_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/miosa-ai/miosa-go"
)

type sseRoundTripFunc func(*http.Request) (*http.Response, error)

func (f sseRoundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// FuzzWaitUntilReadyStreamBody feeds arbitrary bytes as the readiness
// stream's body (polls answer 404). Whatever the bytes, the wait must end, on
// exactly one stream request, and it may report ready (or the server's
// timeout) only if the body holds a complete event, terminated by a blank
// line, with the exact line "event: ready" ("event: timeout"). Reading the
// body one byte at a time must not change the outcome.
func FuzzWaitUntilReadyStreamBody(f *testing.F) {
	for _, seed := range []string{
		"event: ready\n\n",
		"event: timeout\ndata: {\"reason\":\"not_ready_after_30s\"}\n\n",
		": keepalive\n\nid: 1\nevent: progress\ndata: 1\n\n: hb\n\nevent: ready\r\ndata: {}\r\n\r\n",
		"event:ready\r\r",
		"event: ready ",
		"event: ready",
		"event: ready\n",
		"event: ready\n\r",
		"data: event: ready\n\n",
		"retry: 10\n\nevent: Ready\n\n",
		"event: ready\nevent\n\n",
		"\xef\xbb\xbfevent: ready\n\n",
		"event: ready\n\revent: timeout\n\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		whole := sseWaitOnStreamBody(t, func() io.Reader { return bytes.NewReader(body) })
		trickle := sseWaitOnStreamBody(t, func() io.Reader { return iotest.OneByteReader(bytes.NewReader(body)) })
		require.Equal(t, whole, trickle, "reading byte by byte changed the outcome")

		lines := sseTerminatedEventLines(body)
		switch whole {
		case "ready":
			require.True(t, lines["event: ready"] || lines["event:ready"], "ready without a complete ready event in %q", body)
		case "timeout":
			require.True(t, lines["event: timeout"] || lines["event:timeout"], "timeout without a complete timeout event in %q", body)
		}
	})
}

// sseWaitOnStreamBody runs one wait whose stream body is newBody() and reports
// "ready", "timeout" or "poll" (the stream did not decide).
func sseWaitOnStreamBody(t *testing.T, newBody func() io.Reader) string {
	var streams, polls atomic.Int64
	rt := sseRoundTripFunc(func(r *http.Request) (*http.Response, error) {
		if strings.HasSuffix(r.URL.Path, "/readiness/stream") {
			streams.Add(1)
			return &http.Response{
				StatusCode: http.StatusOK,
				Header:     http.Header{"Content-Type": {"text/event-stream"}},
				Body:       io.NopCloser(newBody()),
				Request:    r,
			}, nil
		}
		if strings.HasSuffix(r.URL.Path, "/readiness") {
			polls.Add(1)
		}
		return &http.Response{
			StatusCode: http.StatusNotFound,
			Header:     http.Header{"Content-Type": {"application/json"}},
			Body:       io.NopCloser(strings.NewReader(`{"error":"not found"}`)),
			Request:    r,
		}, nil
	})
	c, err := miosa.NewClient(sseTestKey, miosa.WithBaseURL("http://127.0.0.1/api/v1"),
		miosa.WithHTTPClient(&http.Client{Transport: rt}))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ready, err := c.Sandboxes.WaitUntilReady(ctx, "sb_1", miosa.WaitOptions{})
	require.NoError(t, ctx.Err(), "the wait hung")
	require.Equal(t, int64(1), streams.Load(), "exactly one stream request")
	switch {
	case ready:
		require.NoError(t, err)
		require.Zero(t, polls.Load())
		return "ready"
	case err == nil:
		require.Zero(t, polls.Load())
		return "timeout"
	}
	require.ErrorIs(t, err, miosa.ErrNotFound)
	var stateErr *miosa.MachineStateError
	require.ErrorAs(t, err, &stateErr, "the sandbox is gone")
	require.Equal(t, int64(1), polls.Load())
	return "poll"
}

// sseTerminatedEventLines returns the set of lines that belong to an event
// ended by a blank line, splitting lines the way the event-stream format
// does (CRLF, LF or CR, after a leading byte-order mark). An unterminated
// last event contributes nothing.
func sseTerminatedEventLines(body []byte) map[string]bool {
	body = bytes.TrimPrefix(body, []byte("\xEF\xBB\xBF"))
	found := map[string]bool{}
	var block []string
	for len(body) > 0 {
		i := bytes.IndexAny(body, "\r\n")
		if i < 0 {
			break // an unterminated last line
		}
		line := string(body[:i])
		if body[i] == '\r' && i+1 < len(body) && body[i+1] == '\n' {
			i++
		}
		body = body[i+1:]
		if line == "" {
			for _, l := range block {
				found[l] = true
			}
			block = block[:0]
			continue
		}
		block = append(block, line)
	}
	return found
}
