package miosa_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/miosa-ai/miosa-go"
)

// startCounting starts srv, over HTTPS with HTTP/2 when overTLS is set, and
// returns a client with a transport of its own that reaches it. It counts
// the connections the server accepts in newConns and those it holds open in
// openConns, so a test can tell a stream that was closed from one that
// leaked. Client and server are closed when the test ends.
func startCounting(t testing.TB, srv *httptest.Server, overTLS bool, newConns, openConns *atomic.Int64) *http.Client {
	t.Helper()
	srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		switch state {
		case http.StateNew:
			newConns.Add(1)
			openConns.Add(1)
		case http.StateClosed, http.StateHijacked:
			openConns.Add(-1)
		}
	}
	var hc *http.Client
	if overTLS {
		srv.EnableHTTP2 = true
		srv.StartTLS()
		hc = srv.Client()
	} else {
		srv.Start()
		hc = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	t.Cleanup(func() {
		hc.CloseIdleConnections()
		srv.Close()
	})
	return hc
}

// countingClient returns a client of the server at baseURL (the API root)
// that reaches it through hc and retries without delay.
func countingClient(t testing.TB, baseURL string, hc *http.Client, opts ...miosa.Option) *miosa.Client {
	t.Helper()
	base := []miosa.Option{miosa.WithBaseURL(baseURL), miosa.WithHTTPClient(hc), miosa.WithRetryDelay(0, 0)}
	c, err := miosa.NewClient(scriptedKey, append(base, opts...)...)
	require.NoError(t, err)
	return c
}
