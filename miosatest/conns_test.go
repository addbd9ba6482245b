package miosatest_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/miosa-ai/miosa-go/miosatest"
)

// openStreams opens n readiness streams on a sandbox that does not boot,
// one after the other, each open (its headers read) before the next; the
// streams end with the test.
func openStreams(t *testing.T, srv *miosatest.Server, n int) {
	t.Helper()
	id := call(t, srv, "POST", "/computers", `{"template_type":"miosa-sandbox"}`).object(t)["id"].(string)
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	for range n {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/sandboxes/"+id+"/readiness/stream", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+miosatest.TestAPIKey)
		res, err := srv.HTTPClient().Do(req)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode)
		t.Cleanup(func() { res.Body.Close() })
	}
}

func TestConns_EachHTTP1StreamHoldsAConnection(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(time.Hour))
	openStreams(t, srv, 3)
	conns := srv.Conns()
	assert.Equal(t, 3, conns.Streams, "three streams are open")
	assert.Equal(t, 3, conns.MaxStreams)
	assert.Equal(t, 3, conns.Accepted, "the create's connection went on to carry the first stream")
	assert.Equal(t, 3, conns.Open)
	assert.Equal(t, 3, conns.MaxOpen)

	srv.ResetConns()
	assert.Equal(t, miosatest.Conns{Accepted: 3, Open: 3, MaxOpen: 3, Streams: 3, MaxStreams: 3}, srv.Conns(),
		"a reset counts from what is open")
}

func TestConns_HTTP2StreamsShareAConnectionUpToItsLimit(t *testing.T) {
	t.Run("default limit", func(t *testing.T) {
		srv := miosatest.NewServer(t, miosatest.WithTLS(), miosatest.WithBootDelay(time.Hour))
		openStreams(t, srv, 4)
		conns := srv.Conns()
		assert.Equal(t, 4, conns.Streams)
		assert.Equal(t, 1, conns.Accepted, "one connection carries every stream")
	})
	t.Run("two streams a connection", func(t *testing.T) {
		srv := miosatest.NewServer(t, miosatest.WithTLS(), miosatest.WithBootDelay(time.Hour), miosatest.WithMaxConcurrentStreams(2))
		openStreams(t, srv, 4)
		conns := srv.Conns()
		assert.Equal(t, 4, conns.Streams)
		assert.Equal(t, 2, conns.Accepted, "the client opened a second connection for the third stream")
	})
}

func TestConns_WithoutHTTP2EachTLSStreamHoldsAConnection(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithTLS(), miosatest.WithoutHTTP2(), miosatest.WithBootDelay(time.Hour))
	openStreams(t, srv, 3)
	assert.Equal(t, 4, srv.Conns().Accepted, "one handshake found no HTTP/2; then each stream needed a connection")
}

func TestConns_ANegativeStreamLimitIsRefused(t *testing.T) {
	_, err := miosatest.Start(miosatest.WithMaxConcurrentStreams(-1))
	require.Error(t, err)
}
