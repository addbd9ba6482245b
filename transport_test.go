package miosa

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// protoServer is a TLS test server that answers a computer and counts the
// connections it accepted and the protocol of every request.
func protoServer(t *testing.T, http2 bool) (srv *httptest.Server, conns *atomic.Int32, protos *sync.Map) {
	t.Helper()
	protos = &sync.Map{}
	srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := protos.LoadOrStore(r.Proto, new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
		writeJSON(w, http.StatusOK, computerJSON)
	}))
	srv.EnableHTTP2 = http2
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes cut short by design
	conns = countConns(srv)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, conns, protos
}

// defaultClientFor is a client with the SDK's default transport, trusting
// srv's certificate.
func defaultClientFor(t *testing.T, srv *httptest.Server, opts ...Option) (*Client, *defaultTransport) {
	t.Helper()
	transport := newDefaultTransport(srv.Client().Transport.(*http.Transport).TLSClientConfig)
	t.Cleanup(transport.CloseIdleConnections)
	c, err := NewClient(testKey, append([]Option{WithBaseURL(srv.URL + "/api/v1"), WithHTTPClient(&http.Client{Transport: transport})}, opts...)...)
	require.NoError(t, err)
	return c, transport
}

func protoCount(protos *sync.Map, proto string) int {
	n, ok := protos.Load(proto)
	if !ok {
		return 0
	}
	return int(n.(*atomic.Int32).Load())
}

func TestDefaultTransport_HTTPSGoesOverHTTP2(t *testing.T) {
	srv, conns, protos := protoServer(t, true)
	c, _ := defaultClientFor(t, srv)
	for _, err := range getConcurrently(t.Context(), c, 50) {
		require.NoError(t, err)
	}
	assert.Equal(t, 50, protoCount(protos, "HTTP/2.0"))
	assert.Equal(t, int32(1), conns.Load(), "a burst of first calls shares one connection")
}

func TestDefaultTransport_AServerWithoutHTTP2IsSpokenToOverHTTP1(t *testing.T) {
	srv, conns, protos := protoServer(t, false)
	c, transport := defaultClientFor(t, srv)
	for range 5 {
		_, err := c.Computers.Get(t.Context(), "cmp_1")
		require.NoError(t, err)
	}
	assert.Equal(t, 5, protoCount(protos, "HTTP/1.1"))
	assert.Equal(t, int32(2), conns.Load(), "one handshake found no HTTP/2, one connection served every call")
	_, known := transport.http1Only.Load(srv.Listener.Addr().String())
	assert.True(t, known, "the server is remembered as HTTP/1.1 only")

	for _, err := range getConcurrently(t.Context(), c, 20) {
		require.NoError(t, err, "concurrent calls each get a connection of their own")
	}
	assert.Equal(t, 25, protoCount(protos, "HTTP/1.1"))
}

func TestDefaultTransport_ProxiedRequestsGoThroughNetHTTP(t *testing.T) {
	srv, _, protos := protoServer(t, true)
	var tunnels atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		tunnels.Add(1)
		upstream, err := net.Dial("tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusOK)
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			upstream.Close()
			return
		}
		go func() { _, _ = io.Copy(upstream, buf); upstream.Close() }()
		_, _ = io.Copy(conn, upstream)
		conn.Close()
	}))
	t.Cleanup(proxy.Close)
	proxyURL, err := url.Parse(proxy.URL)
	require.NoError(t, err)

	c, transport := defaultClientFor(t, srv)
	transport.h1.Proxy = http.ProxyURL(proxyURL)
	_, err = c.Computers.Get(t.Context(), "cmp_1")
	require.NoError(t, err)
	assert.Equal(t, int32(1), tunnels.Load(), "the request went through the proxy")
	assert.Equal(t, 1, protoCount(protos, "HTTP/1.1"))
	transport.CloseIdleConnections()
}
