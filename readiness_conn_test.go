package miosa

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pipeListener serves an http.Server over in-memory connections, so that
// server and client run inside a synctest bubble; it counts the dials.
type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
	dials  atomic.Int32
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	l.dials.Add(1)
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func TestWaitUntilReady_AnHTTP1StreamEndedAfterItsVerdictKeepsItsConnection(t *testing.T) {
	for _, tc := range []struct {
		name      string
		endAfter  time.Duration // after the verdict, the server ends the response
		wantDials int32
		wantWaits []time.Duration // each wait, from its verdict
	}{
		{"ended 5 ms after the verdict", 5 * time.Millisecond, 1, []time.Duration{5 * time.Millisecond, 5 * time.Millisecond, 5 * time.Millisecond}},
		// Waiting on a server that keeps its streams open would slow every
		// wait: only the first one waits.
		{"kept open", time.Hour, 3, []time.Duration{streamEndWait, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newPipeListener()
				srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "text/event-stream")
					_, _ = io.WriteString(w, "event: ready\ndata: {}\n\n")
					w.(http.Flusher).Flush()
					select {
					case <-time.After(tc.endAfter):
					case <-r.Context().Done():
					}
				})}
				go func() { _ = srv.Serve(l) }()
				transport := &http.Transport{DialContext: l.dial}
				c := newTestClient(t, "http://127.0.0.1:1/api/v1", WithHTTPClient(&http.Client{Transport: transport}))
				for _, want := range tc.wantWaits {
					start := time.Now()
					ready, err := c.Sandboxes.WaitUntilReady(t.Context(), "sb_1", WaitOptions{})
					require.NoError(t, err)
					require.True(t, ready)
					assert.Equal(t, want, time.Since(start))
				}
				assert.Equal(t, tc.wantDials, l.dials.Load())
				transport.CloseIdleConnections()
				require.NoError(t, srv.Close())
			})
		})
	}
}
