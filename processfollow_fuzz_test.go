package miosa_test

import (
	"bytes"
	"context"
	"encoding/json"
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

// FuzzProcessesFollowStreamBody feeds arbitrary bytes as every answer of a
// process's stream; Get says the process exited with 0. Whatever the bytes,
// Follow must end, with a well-formed sequence (lines, then at most one
// exit or one error, last), on a bounded number of stream requests, never
// yielding the API key, and reading the body one byte at a time must not
// change what it yields.
func FuzzProcessesFollowStreamBody(f *testing.F) {
	for _, seed := range []string{
		"event: stdout\nid: 1\ndata: {\"line\":\"a\"}\n\nevent: exit\nid: 2\ndata: {\"exit_code\":3}\n\n",
		"event: stdout\ndata: raw line\n\n",
		"event: stderr\ndata: {\"line\":null}\n\n",
		"event: stdout\ndata: {\"line\":\"" + sseTestKey + "\"}\n\n",
		"event: exit\ndata: {}\n\n",
		"event: exit\ndata: not json\n\n",
		"event: exit\ndata: {\"exit_code\":1,\"error\":{\"code\":\"X\"}}\n\n",
		"id: 5\nevent: exit\ndata: {\"exit_code\":-1,\"error\":\"gone\"}\n\n",
		"id: \x01\nevent: stdout\ndata: x\n\nevent: exit\ndata: {\"error\":1}\n\n",
		"event: stdout\ndata: {\"line\":\"a\"}\n\nevent: stdout\ndata: {\"line\":\"b\"", // cut mid-event
		"\xef\xbb\xbfevent: stdout\r\ndata: a\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		whole := followStreamBody(t, func() io.Reader { return bytes.NewReader(body) })
		trickle := followStreamBody(t, func() io.Reader { return iotest.OneByteReader(bytes.NewReader(body)) })
		require.Equal(t, whole, trickle, "reading byte by byte changed the outcome")
	})
}

// followStreamBody runs one Follow whose stream answers are newBody() and
// returns what it yielded, an error as "error".
func followStreamBody(t *testing.T, newBody func() io.Reader) []string {
	var streams atomic.Int64
	rt := sseRoundTripFunc(func(r *http.Request) (*http.Response, error) {
		if strings.HasSuffix(r.URL.Path, "/stream") {
			streams.Add(1)
			return &http.Response{
				StatusCode: http.StatusOK,
				Header:     http.Header{"Content-Type": {"text/event-stream"}},
				Body:       io.NopCloser(newBody()),
				Request:    r,
			}, nil
		}
		return &http.Response{
			StatusCode: http.StatusOK,
			Header:     http.Header{"Content-Type": {"application/json"}},
			Body:       io.NopCloser(strings.NewReader(`{"pid":7,"status":"exited","exit_code":0}`)),
			Request:    r,
		}, nil
	})
	c, err := miosa.NewClient(sseTestKey, miosa.WithBaseURL("http://127.0.0.1/api/v1"),
		miosa.WithHTTPClient(&http.Client{Transport: rt}), miosa.WithRetryDelay(0, 0))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var (
		got     []string
		ended   bool
		exitSaw bool
	)
	for ev, err := range c.Processes.Follow(ctx, "sb_1", "7") {
		require.False(t, ended, "nothing follows an exit or an error")
		if err != nil {
			require.Zero(t, ev)
			got, ended = append(got, "error"), true
			continue
		}
		require.NotContains(t, ev.Line, sseTestKey)
		if ev.Kind == miosa.ExecExit {
			require.False(t, exitSaw)
			exitSaw, ended = true, true
		}
		text, _ := json.Marshal(ev)
		got = append(got, string(text))
	}
	require.NoError(t, ctx.Err(), "Follow hung")
	require.True(t, ended, "Follow ends with an exit or an error")
	require.LessOrEqual(t, streams.Load(), int64(7), "reconnects are bounded")
	return got
}
